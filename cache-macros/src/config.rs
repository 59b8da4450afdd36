//! The final configuration of one memoized function: every decision made
//! by [`check`](crate::check) (as tokio-macros' `FinalConfig`), so that
//! [`expand`](crate::expand) only turns it into tokens.

use proc_macro2::Span;
use syn::{
    Attribute, Block, Expr, Generics, Ident, LitBool, LitStr, Path, Signature, Type, Visibility,
};

use crate::attr::Ttl;

/// Everything `expand` emits, decided.
pub(crate) struct FinalConfig {
    /// Where the `cache_memoize` crate is: `::cache_memoize` or `crate = …`.
    pub krate: Path,
    /// The function users call: their signature, running the body through
    /// the cache.
    pub memoized: Wrapper,
    /// `foo_refresh`: the same, without the lookup.
    pub refresh: Wrapper,
    /// The user's body, in a function of its own that both wrappers call.
    pub body: Body,
    /// How the wrappers call the runtime.
    pub call: Call,
    /// The cache and function prefix, shared by the wrappers and companions.
    pub place: Place,
    /// What the key of a call is made of.
    pub key: Key,
    /// `foo_cache_key`, `foo_invalidate`, `foo_invalidate_all`.
    pub cache_key: Companion,
    pub invalidate: Companion,
    pub invalidate_all: Companion,
}

/// `foo` or `foo_refresh`.
pub(crate) struct Wrapper {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    /// The user's signature under this name, without `mut` on arguments
    /// (the body binds them `mut`).
    pub sig: Signature,
    /// `foo_refresh` computes and stores without looking up first.
    pub refreshing: bool,
}

/// The user's function body, emitted once (so a `static` inside it is one
/// static), as a private fn next to the wrappers.
pub(crate) struct Body {
    /// The lint and `cfg` attributes of the user's function.
    pub attrs: Vec<Attribute>,
    /// The user's signature under a reserved name.
    pub sig: Signature,
    pub block: Box<Block>,
    /// How the wrappers reach it.
    pub scope: Scope,
    /// `self` (any receiver) is passed first.
    pub takes_self: bool,
    /// The arguments, in order.
    pub args: Vec<Ident>,
    /// The type and const generic parameters, passed by turbofish.
    pub generics: Vec<Ident>,
    /// The user wrote `unsafe fn`: the wrappers call it in `unsafe {}`
    /// (their callers upheld the same contract).
    pub unsafety: bool,
}

/// Where the body fn lives, so how the wrappers name it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// In an `impl` (or a trait): `Self::body`.
    Impl,
    /// In a module: `body`.
    Module,
}

/// The runtime call in `foo` and `foo_refresh`.
pub(crate) struct Call {
    pub method: CallMethod,
    /// The arguments handed to the body (all of them, `self` apart).
    pub args: Vec<Ident>,
    pub ttl: Option<Ttl>,
    /// `Some(lock)` when `lock = …` overrides the cache's default.
    pub lock: Option<LitBool>,
    /// `Some(local)` when `local = …` is given (the tier is used by default).
    pub local: Option<LitBool>,
    /// Whether `foo` first asks the local tier (`local_lookup`), before
    /// the call is built.
    pub local_fast_path: bool,
    pub freshness: Option<Freshness>,
    /// Expressions of the arguments, each `ToString`.
    pub tags: Vec<Expr>,
    pub storage: Storage,
    /// The return type as `Policy::<R, _>` needs it (`()` for none).
    pub returns: Type,
    /// Where a return type that cannot be cached is reported.
    pub return_span: Span,
    pub hit: Option<Callback>,
    pub miss: Option<Callback>,
}

/// Which `Memoized` method runs the call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallMethod {
    /// `call(..).await`: an `async fn`.
    Async,
    /// `call_refreshing(..).await`: an `async fn` that refreshes in the
    /// background (`early_refresh`, `stale_while_revalidate`).
    AsyncRefreshing,
    /// `call_blocking(..)`: a plain `fn`.
    Blocking,
}

/// `.freshness(Freshness::default()…)`: at least one of these is set.
pub(crate) struct Freshness {
    /// XFetch's β.
    pub early_refresh: Option<f64>,
    pub stale_while_revalidate: Option<Ttl>,
    pub stale_if_error: Option<Ttl>,
}

/// Which results are stored (maps to `Policy::{always, ok, some}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Storage {
    Always,
    Ok,
    Some,
}

/// A `hit`/`miss` callback, called with a reference to each argument.
pub(crate) struct Callback {
    pub path: Expr,
    /// Each argument, and whether it is itself a reference (then it is
    /// passed as `&T`, not `&&T`).
    pub args: Vec<(Ident, bool)>,
}

/// The cache and the function prefix.
pub(crate) struct Place {
    pub cache: CacheChoice,
    pub prefix: Prefix,
}

pub(crate) enum CacheChoice {
    /// `cache = expr`.
    Explicit(Expr),
    /// `alias = "name"`.
    Alias(LitStr),
    /// The registry's default cache.
    Default,
}

pub(crate) enum Prefix {
    /// `prefix = "…"`.
    Given(LitStr),
    /// A method: `{type name of Self}::{name}`.
    Method(String),
    /// `{module path}::{name}`.
    Module(String),
}

/// The key parts of a call, in order: the generic parameters, then the key
/// expression or the arguments not skipped, then the extra expression.
pub(crate) struct Key {
    pub generics: Vec<GenericPart>,
    pub values: KeyValues,
    pub extra: Option<Expr>,
}

pub(crate) enum GenericPart {
    /// A type parameter: its `type_name`.
    Type(Ident),
    /// A const parameter: its value.
    Const(Ident),
}

pub(crate) enum KeyValues {
    /// `key = expr`.
    Expr(Expr),
    /// These arguments.
    Args(Vec<Ident>),
}

/// A companion that works on the key: its whole signature, decided.
pub(crate) struct Companion {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub ident: Ident,
    pub is_async: bool,
    /// Takes `&self` (a method whose key, extra or cache uses `self`).
    pub takes_self: bool,
    /// The function's generics when they are part of the key (none for
    /// `foo_invalidate_all`).
    pub generics: Generics,
    pub params: Vec<(Ident, Type)>,
    pub kind: CompanionKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompanionKind {
    /// `foo_cache_key(args…) -> String`.
    CacheKey,
    /// `foo_invalidate(args…) -> bool`.
    Invalidate,
    /// `foo_invalidate_all() -> u64`.
    InvalidateAll,
}
