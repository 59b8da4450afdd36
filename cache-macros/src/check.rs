//! Cross-checks the options against the function they annotate, collecting
//! every mistake (as serde_derive's `Ctxt`), and makes every decision the
//! expansion follows: the [`FinalConfig`].

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    parse_quote, Attribute, Expr, FnArg, GenericParam, Generics, Ident, ItemFn, Pat, PatIdent,
    Receiver, ReturnType, Signature, Type,
};

use crate::attr::{Args, Setting};
use crate::config::{
    Body, CacheChoice, Call, CallMethod, Callback, Companion, CompanionKind, FinalConfig,
    Freshness, GenericPart, Key, KeyValues, Place, Prefix, Scope, Storage, Wrapper,
};

/// The mistakes found so far.
#[derive(Default)]
struct Errors(Vec<syn::Error>);

impl Errors {
    fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.0.push(syn::Error::new(span, message));
    }

    fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.0.push(syn::Error::new_spanned(tokens, message));
    }

    fn into_result(self) -> syn::Result<()> {
        let mut errors = self.0.into_iter();
        let Some(mut first) = errors.next() else {
            return Ok(());
        };
        first.extend(errors);
        Err(first)
    }
}

/// An argument of the function (not `self`).
struct Param {
    ident: Ident,
    ty: Type,
    /// Listed in `skip(...)`: not part of the key.
    skipped: bool,
}

/// The shape of the return type, as far as the options care.
#[derive(PartialEq, Eq)]
enum Returns {
    Unit,
    Result { ok_is_unit: bool },
    Option,
    Other,
}

/// Checks `args` against `func`, all mistakes at once, and decides
/// everything the expansion does.
pub(crate) fn check(mut args: Args, func: &ItemFn) -> syn::Result<FinalConfig> {
    let mut errors = Errors(std::mem::take(&mut args.errors));
    let sig = &func.sig;
    let name = &sig.ident;
    if let Some(constness) = &sig.constness {
        errors.at(
            constness.span,
            "a `const fn` cannot be memoized: the cache is looked up at run time; remove `const`",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.at(
            abi.span(),
            "an `extern` fn cannot be memoized; remove the ABI, or memoize a Rust fn \
             and call it from a thin `extern` wrapper",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(
            variadic.span(),
            "a variadic fn cannot be memoized: its arguments cannot be part of a key",
        );
    }
    let mut receiver = None;
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => receiver = Some(r),
            FnArg::Typed(typed) => {
                if let Some(impl_trait) = impl_trait_in(&typed.ty) {
                    errors.spanned(
                        impl_trait,
                        "`impl Trait` arguments are not supported by #[cache_memoize]: \
                         name a generic parameter instead, e.g. `fn f<T: Trait + Serialize>(x: T)`",
                    );
                }
                match &*typed.pat {
                    Pat::Ident(PatIdent {
                        by_ref: None,
                        subpat: None,
                        ident,
                        ..
                    }) => params.push(Param {
                        ident: ident.clone(),
                        ty: (*typed.ty).clone(),
                        skipped: false,
                    }),
                    pat => errors.spanned(
                        pat,
                        "#[cache_memoize] needs a plain name for each argument: write \
                         `pair: (u8, u8)` and destructure it in the body",
                    ),
                }
            }
        }
    }
    check_skip(&args, &mut params, &mut errors);
    let returns = check_return(&sig.output, &mut errors);
    check_return_options(&args, &returns, name, &sig.output, &mut errors);
    check_cache_choice(&args, &params, name, &mut errors);
    check_freshness(&args, sig, receiver, &params, &returns, &mut errors);
    if let Some(prefix) = &args.prefix {
        if prefix.value.value().is_empty() {
            errors.at(
                prefix.value.span(),
                "`prefix` must not be empty; leave it out for the default (module path and fn name)",
            );
        }
    }
    errors.into_result()?;
    Ok(decide(args, func, receiver.is_some(), params, &returns))
}

/// The final configuration of a function whose options passed every check.
fn decide(
    args: Args,
    func: &ItemFn,
    is_method: bool,
    params: Vec<Param>,
    returns: &Returns,
) -> FinalConfig {
    let decider = Decider {
        inherited: inherited_attrs(&func.attrs),
        args,
        func,
        is_method,
        params,
    };
    let (memoized, refresh) = decider.wrappers();
    let (cache_key, invalidate, invalidate_all) = decider.companions();
    FinalConfig {
        memoized,
        refresh,
        body: decider.body(),
        call: decider.call(returns),
        place: decider.place(),
        key: decider.key(),
        cache_key,
        invalidate,
        invalidate_all,
        krate: decider
            .args
            .krate
            .map_or_else(|| parse_quote!(::cache_memoize), |krate| krate.value),
    }
}

/// What the decisions are made from.
struct Decider<'a> {
    args: Args,
    func: &'a ItemFn,
    /// The function takes `self`.
    is_method: bool,
    params: Vec<Param>,
    /// The user's attributes that every generated item carries.
    inherited: Vec<Attribute>,
}

impl Decider<'_> {
    fn name(&self) -> &Ident {
        &self.func.sig.ident
    }

    /// A generated doc, then the inherited attributes.
    fn attrs(&self, doc: String) -> Vec<Attribute> {
        let mut attrs: Vec<Attribute> = vec![parse_quote!(#[doc = #doc])];
        attrs.extend(self.inherited.iter().cloned());
        attrs
    }

    fn arg_idents(&self) -> Vec<Ident> {
        self.params.iter().map(|p| p.ident.clone()).collect()
    }

    /// `foo` (with all the user's attributes) and `foo_refresh`.
    fn wrappers(&self) -> (Wrapper, Wrapper) {
        let name = self.name();
        let mut sig = self.func.sig.clone();
        strip_mut_from_inputs(&mut sig);
        let mut refresh_sig = sig.clone();
        refresh_sig.ident = format_ident!("{name}_refresh");
        let memoized = Wrapper {
            attrs: self.func.attrs.clone(),
            vis: self.func.vis.clone(),
            sig,
            refreshing: false,
        };
        let refresh = Wrapper {
            attrs: self.attrs(format!(
                "Runs `{name}` without looking in the cache, stores the result and returns \
                 it. Generated by `#[cache_memoize]`."
            )),
            vis: self.func.vis.clone(),
            sig: refresh_sig,
            refreshing: true,
        };
        (memoized, refresh)
    }

    fn body(&self) -> Body {
        let sig = &self.func.sig;
        let mut body_sig = sig.clone();
        let name = self.name();
        body_sig.ident = format_ident!("__cache_body_{}", name.unraw(), span = name.span());
        let scope = if self.is_method || mentions_self_type(sig, &self.func.block) {
            Scope::Impl
        } else {
            Scope::Module
        };
        Body {
            attrs: self.inherited.clone(),
            sig: body_sig,
            block: self.func.block.clone(),
            scope,
            takes_self: self.is_method,
            args: self.arg_idents(),
            generics: self
                .generic_parts()
                .into_iter()
                .map(|part| match part {
                    GenericPart::Type(ident) | GenericPart::Const(ident) => ident,
                })
                .collect(),
            unsafety: sig.unsafety.is_some(),
        }
    }

    fn call(&self, returns: &Returns) -> Call {
        let args = &self.args;
        let refreshes = args.early_refresh.is_some() || args.stale_while_revalidate.is_some();
        let method = match (self.func.sig.asyncness.is_some(), refreshes) {
            (false, _) => CallMethod::Blocking,
            (true, false) => CallMethod::Async,
            (true, true) => CallMethod::AsyncRefreshing,
        };
        let freshness = (refreshes || args.stale_if_error.is_some()).then(|| Freshness {
            early_refresh: args.early_refresh.as_ref().map(|beta| beta.value),
            stale_while_revalidate: value(&args.stale_while_revalidate),
            stale_if_error: value(&args.stale_if_error),
        });
        let storage = match returns {
            Returns::Result { .. } if !is_true(&args.cache_errors) => Storage::Ok,
            Returns::Option if is_false(&args.cache_none) => Storage::Some,
            _ => Storage::Always,
        };
        // Answered from the local tier before anything else is built,
        // unless the function opts out or needs Redis for every hit (its
        // tags' versions, its freshness windows).
        let local_fast_path = !is_false(&args.local) && args.tags.is_none() && freshness.is_none();
        let (returns, return_span) = match &self.func.sig.output {
            ReturnType::Default => (parse_quote!(()), Span::call_site()),
            ReturnType::Type(_, ty) => ((**ty).clone(), ty.span()),
        };
        Call {
            method,
            args: self.arg_idents(),
            ttl: value(&args.ttl),
            lock: value(&args.lock),
            local: value(&args.local),
            local_fast_path,
            freshness,
            tags: value(&args.tags).unwrap_or_default(),
            storage,
            returns,
            return_span,
            hit: self.callback(&args.hit),
            miss: self.callback(&args.miss),
        }
    }

    fn callback(&self, setting: &Option<Setting<Expr>>) -> Option<Callback> {
        let path = value(setting)?;
        let args = self.params.iter().map(|p| {
            let is_reference = matches!(p.ty, Type::Reference(_));
            (p.ident.clone(), is_reference)
        });
        Some(Callback {
            path,
            args: args.collect(),
        })
    }

    fn place(&self) -> Place {
        let args = &self.args;
        let name = self.name().to_string();
        Place {
            cache: match (&args.cache, &args.alias) {
                (Some(cache), _) => CacheChoice::Explicit(cache.value.clone()),
                (None, Some(alias)) => CacheChoice::Alias(alias.value.clone()),
                (None, None) => CacheChoice::Default,
            },
            prefix: match &args.prefix {
                Some(prefix) => Prefix::Given(prefix.value.clone()),
                None if self.is_method => Prefix::Method(name),
                None => Prefix::Module(name),
            },
        }
    }

    fn generic_parts(&self) -> Vec<GenericPart> {
        let params = self.func.sig.generics.params.iter();
        params
            .filter_map(|param| match param {
                GenericParam::Type(t) => Some(GenericPart::Type(t.ident.clone())),
                GenericParam::Const(c) => Some(GenericPart::Const(c.ident.clone())),
                GenericParam::Lifetime(_) => None,
            })
            .collect()
    }

    fn key(&self) -> Key {
        let values = match value(&self.args.key) {
            Some(expr) => KeyValues::Expr(expr),
            None => KeyValues::Args(
                self.params
                    .iter()
                    .filter(|p| !p.skipped)
                    .map(|p| p.ident.clone())
                    .collect(),
            ),
        };
        Key {
            generics: self.generic_parts(),
            values,
            extra: value(&self.args.extra),
        }
    }

    /// `foo_cache_key`, `foo_invalidate` and `foo_invalidate_all`.
    fn companions(&self) -> (Companion, Companion, Companion) {
        let name = self.name();
        let is_async = self.func.sig.asyncness.is_some();
        let cache_key = self.key_companion(
            CompanionKind::CacheKey,
            "cache_key",
            format!(
                "The exact Redis key under which `{name}` stores its result for these \
                 arguments. Generated by `#[cache_memoize]`."
            ),
            // It does no I/O, so it is sync even for an `async fn`.
            false,
        );
        let invalidate = self.key_companion(
            CompanionKind::Invalidate,
            "invalidate",
            format!(
                "Deletes the cached result of `{name}` for these arguments: `true` when an \
                 entry was deleted, `false` when there was none or the cache could not be \
                 reached (logged). Generated by `#[cache_memoize]`."
            ),
            is_async,
        );
        let invalidate_all = Companion {
            attrs: self.attrs(format!(
                "Deletes every cached result of `{name}`, and none of any other function: \
                 how many were deleted, `0` when the cache could not be reached (logged). \
                 Generated by `#[cache_memoize]`."
            )),
            vis: self.func.vis.clone(),
            ident: format_ident!("{name}_invalidate_all"),
            is_async,
            takes_self: self.uses_self(&[&self.args.cache]),
            generics: Generics::default(),
            params: Vec::new(),
            kind: CompanionKind::InvalidateAll,
        };
        (cache_key, invalidate, invalidate_all)
    }

    /// A companion that takes the arguments that can be in the key: all of
    /// them with `key = …` (which may use any), else those not skipped.
    fn key_companion(
        &self,
        kind: CompanionKind,
        suffix: &str,
        doc: String,
        is_async: bool,
    ) -> Companion {
        let args = &self.args;
        let keyed_by_expr = args.key.is_some();
        let mut attrs = self.attrs(doc);
        // The arguments the key expression does not use must not warn.
        if keyed_by_expr {
            attrs.push(parse_quote!(#[allow(unused_variables)]));
        }
        let params = self.params.iter().filter(|p| keyed_by_expr || !p.skipped);
        let name = self.name();
        Companion {
            attrs,
            vis: self.func.vis.clone(),
            ident: format_ident!("{name}_{suffix}"),
            is_async,
            takes_self: self.uses_self(&[&args.key, &args.extra, &args.cache]),
            generics: self.func.sig.generics.clone(),
            params: params.map(|p| (p.ident.clone(), p.ty.clone())).collect(),
            kind,
        }
    }

    /// A method whose `key`, `extra` or `cache` (as given) uses `self`.
    fn uses_self(&self, settings: &[&Option<Setting<Expr>>]) -> bool {
        self.is_method
            && settings.iter().any(|setting| {
                setting.as_ref().is_some_and(|s| {
                    free_idents(s.value.to_token_stream())
                        .iter()
                        .any(|ident| ident == "self")
                })
            })
    }
}

fn value<T: Clone>(setting: &Option<Setting<T>>) -> Option<T> {
    setting.as_ref().map(|setting| setting.value.clone())
}

/// The attributes of the user's function that decide whether a generated
/// item exists or how it is linted: every generated item carries them.
fn inherited_attrs(attrs: &[Attribute]) -> Vec<Attribute> {
    attrs
        .iter()
        .filter(|attr| {
            ["cfg", "cfg_attr", "allow", "expect", "warn", "deny"]
                .iter()
                .any(|name| attr.path().is_ident(name))
        })
        .cloned()
        .collect()
}

/// `mut x: T` becomes `x: T` (and `mut self`, `self`) in the wrappers'
/// signature: they only pass the arguments on, and the body binds them
/// `mut`, so no "unused mut" warning appears.
fn strip_mut_from_inputs(sig: &mut Signature) {
    for input in &mut sig.inputs {
        match input {
            FnArg::Typed(typed) => {
                if let Pat::Ident(pat) = &mut *typed.pat {
                    pat.mutability = None;
                }
            }
            FnArg::Receiver(receiver) => {
                if receiver.reference.is_none() {
                    receiver.mutability = None;
                }
            }
        }
    }
}

/// Whether `Self` appears in the signature, or in the body outside the
/// items nested in it: then a function without `self` is an associated
/// fn, and its body fn is reached as `Self::…`. (The attribute sees only
/// the function, not the `impl` around it.)
fn mentions_self_type(sig: &Signature, block: &syn::Block) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_ident(&mut self, ident: &Ident) {
            self.0 |= ident == "Self";
        }
        fn visit_item(&mut self, _: &syn::Item) {
            // A nested item has a `Self` of its own, if any.
        }
        fn visit_macro(&mut self, mac: &syn::Macro) {
            self.visit_path(&mac.path);
            self.0 |= tokens_mention_self(mac.tokens.clone());
        }
    }
    let mut finder = Finder(tokens_mention_self(sig.to_token_stream()));
    finder.visit_block(block);
    finder.0
}

fn tokens_mention_self(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => ident == "Self",
        TokenTree::Group(group) => tokens_mention_self(group.stream()),
        _ => false,
    })
}

/// Early refresh and stale-while-revalidate recompute in a background task,
/// which must own the arguments; stale-if-error needs a body that can fail.
fn check_freshness(
    args: &Args,
    sig: &syn::Signature,
    receiver: Option<&Receiver>,
    params: &[Param],
    returns: &Returns,
    errors: &mut Errors,
) {
    let background = [
        args.early_refresh
            .as_ref()
            .map(|s| ("early_refresh", s.name)),
        args.stale_while_revalidate
            .as_ref()
            .map(|s| ("stale_while_revalidate", s.name)),
    ];
    for (option, name) in background.into_iter().flatten() {
        if sig.asyncness.is_none() {
            errors.at(
                name,
                format!(
                    "`{option}` refreshes in a background task, which needs an `async fn`; \
                     make the function `async`, or remove `{option}`"
                ),
            );
        }
        if let Some(receiver) = receiver {
            errors.spanned(
                receiver,
                format!(
                    "`{option}` refreshes in a background task, which cannot borrow `self`; \
                     memoize a free `async fn` that takes what it needs by value"
                ),
            );
        }
        for param in params {
            if let Type::Reference(reference) = &param.ty {
                errors.spanned(
                    reference,
                    format!(
                        "`{option}` refreshes in a background task, which needs owned \
                         arguments: take an owned type instead of `{}` (e.g. `String` for \
                         `&str`, `Vec<T>` for `&[T]`)",
                        reference.to_token_stream().to_string().replace("& ", "&")
                    ),
                );
            }
        }
    }
    if let Some(stale_if_error) = &args.stale_if_error {
        if !matches!(returns, Returns::Result { .. } | Returns::Option) {
            errors.at(
                stale_if_error.name,
                "`stale_if_error` returns the last good value when the body fails, so the \
                 function must return a `Result` (an `Err` is a failure; `None` with \
                 `cache_none = false` too); change the return type, or remove `stale_if_error`",
            );
        }
    }
}

fn is_true(setting: &Option<Setting<syn::LitBool>>) -> bool {
    setting.as_ref().is_some_and(|s| s.value.value)
}

fn is_false(setting: &Option<Setting<syn::LitBool>>) -> bool {
    setting.as_ref().is_some_and(|s| !s.value.value)
}

fn check_skip(args: &Args, params: &mut [Param], errors: &mut Errors) {
    let Some(skip) = &args.skip else { return };
    if args.key.is_some() {
        errors.at(
            skip.name,
            "`skip` has no effect together with `key = …`: the key expression alone makes \
             the key; remove `skip(...)`",
        );
    }
    let names: Vec<String> = params.iter().map(|p| p.ident.to_string()).collect();
    for (i, skipped) in skip.value.iter().enumerate() {
        if skipped == "self" {
            errors.at(
                skipped.span(),
                "`self` is never part of the key (use `key = …` to put it in); remove it from `skip`",
            );
        } else if skip.value[..i].contains(skipped) {
            errors.at(skipped.span(), format!("`{skipped}` is skipped twice"));
        } else if let Some(param) = params.iter_mut().find(|p| p.ident == *skipped) {
            param.skipped = true;
        } else {
            errors.at(
                skipped.span(),
                format!(
                    "`skip({skipped})`: this function has no argument `{skipped}`; its arguments are: {}",
                    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                ),
            );
        }
    }
}

fn check_return(output: &ReturnType, errors: &mut Errors) -> Returns {
    let ReturnType::Type(_, ty) = output else {
        return Returns::Unit;
    };
    match &**ty {
        Type::Tuple(t) if t.elems.is_empty() => Returns::Unit,
        Type::ImplTrait(t) => {
            errors.spanned(
                t,
                "a memoized function cannot return `impl Trait`: a cached value is decoded \
                 into a named type; return that type",
            );
            Returns::Other
        }
        Type::Reference(r) => {
            errors.spanned(
                r,
                "a memoized function returns a value decoded from the cache, so it cannot \
                 return a reference; return an owned type (e.g. `String` for `&str`, `Vec<T>` for `&[T]`)",
            );
            Returns::Other
        }
        Type::Path(p) => match p.path.segments.last() {
            Some(last) if last.ident == "Result" => Returns::Result {
                ok_is_unit: first_type_arg(last).is_some_and(is_unit),
            },
            Some(last) if last.ident == "Option" => Returns::Option,
            _ => Returns::Other,
        },
        _ => Returns::Other,
    }
}

fn first_type_arg(segment: &syn::PathSegment) -> Option<&Type> {
    let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        syn::GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

fn check_return_options(
    args: &Args,
    returns: &Returns,
    name: &Ident,
    output: &ReturnType,
    errors: &mut Errors,
) {
    let shown = match output {
        ReturnType::Default => "()".to_owned(),
        ReturnType::Type(_, ty) => readable(ty),
    };
    if let Some(option) = &args.cache_errors {
        if !matches!(returns, Returns::Result { .. }) {
            errors.at(
                option.name,
                format!(
                    "`cache_errors` is for functions returning `Result<T, E>`, and `{name}` \
                     returns `{shown}`; remove `cache_errors`"
                ),
            );
        }
    }
    if let Some(option) = &args.cache_none {
        if *returns != Returns::Option {
            errors.at(
                option.name,
                format!(
                    "`cache_none` is for functions returning `Option<T>`, and `{name}` \
                     returns `{shown}`; remove `cache_none`"
                ),
            );
        }
    }
    if is_false(&args.store_result)
        && !matches!(
            returns,
            Returns::Unit | Returns::Result { ok_is_unit: true }
        )
    {
        let option = args
            .store_result
            .as_ref()
            .map_or(Span::call_site(), |s| s.name);
        errors.at(
            option,
            format!(
                "`store_result = false` stores only a marker that `{name}` ran, so it must \
                 return `()` or `Result<(), E>`, not `{shown}`; remove `store_result = false` \
                 to cache the value itself"
            ),
        );
    }
}

fn check_cache_choice(args: &Args, params: &[Param], name: &Ident, errors: &mut Errors) {
    if let (Some(_), Some(alias)) = (&args.cache, &args.alias) {
        errors.at(
            alias.name,
            "`cache` and `alias` both choose the cache; keep `cache = <expr>` for an explicit \
             cache or `alias = \"name\"` for a registered one",
        );
    }
    if let Some(alias) = &args.alias {
        if alias.value.value().is_empty() {
            errors.at(
                alias.value.span(),
                "`alias` names a registered cache and must not be empty; leave it out for the default cache",
            );
        }
    }
    let Some(cache) = &args.cache else { return };
    for ident in free_idents(cache.value.to_token_stream()) {
        if params.iter().any(|p| p.ident == ident) {
            errors.at(
                ident.span(),
                format!(
                    "`cache = …` cannot use the argument `{ident}`: `{name}_invalidate_all()` \
                     takes no arguments; choose the cache from `self` or a global"
                ),
            );
        }
    }
}

/// A type as a user writes it: `Option<u64>`, not `Option < u64 >`.
fn readable(ty: &Type) -> String {
    let mut text = ty.to_token_stream().to_string();
    for (spaced, tight) in [
        (" < ", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        ("& ", "&"),
    ] {
        text = text.replace(spaced, tight);
    }
    text
}

/// The first `impl Trait` anywhere inside `ty`.
fn impl_trait_in(ty: &Type) -> Option<&syn::TypeImplTrait> {
    struct Finder<'ast>(Option<&'ast syn::TypeImplTrait>);
    impl<'ast> Visit<'ast> for Finder<'ast> {
        fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
            self.0.get_or_insert(t);
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// Identifiers that name a variable or a path start in `tokens`: not a
/// field or method after `.`, nor a later path segment after `::`.
fn free_idents(tokens: TokenStream) -> Vec<Ident> {
    let mut found = Vec::new();
    let mut after_accessor = false;
    let mut colons = 0;
    for tree in tokens {
        let mut accessor = false;
        match &tree {
            TokenTree::Ident(ident) if !after_accessor => found.push(ident.clone()),
            TokenTree::Group(group) => found.extend(free_idents(group.stream())),
            TokenTree::Punct(p) if p.as_char() == '.' => accessor = true,
            TokenTree::Punct(p) if p.as_char() == ':' => {
                colons += 1;
                accessor = colons == 2;
            }
            _ => {}
        }
        if !matches!(&tree, TokenTree::Punct(p) if p.as_char() == ':') {
            colons = 0;
        }
        after_accessor = accessor;
    }
    found
}
