//! Cross-checks the options against the function they annotate, collecting
//! every mistake (as serde_derive's `Ctxt`), and produces the [`Plan`] the
//! expansion follows.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, Ident, ItemFn, Pat, PatIdent, Receiver, ReturnType, Type};

use crate::attr::{Args, Setting};

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
pub(crate) struct Param {
    pub ident: Ident,
    pub mutability: Option<syn::token::Mut>,
    pub ty: Type,
    /// Listed in `skip(...)`: not part of the key.
    pub skipped: bool,
}

/// Which results are stored (maps to `Policy::{always, ok, some}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Storage {
    Always,
    Ok,
    Some,
}

/// Everything the expansion needs, checked.
pub(crate) struct Plan<'a> {
    pub args: &'a Args,
    pub func: &'a ItemFn,
    pub receiver: Option<&'a Receiver>,
    pub params: Vec<Param>,
    pub storage: Storage,
}

/// The shape of the return type, as far as the options care.
#[derive(PartialEq, Eq)]
enum Returns {
    Unit,
    Result { ok_is_unit: bool },
    Option,
    Other,
}

/// Checks `args` against `func`; all mistakes at once.
pub(crate) fn check<'a>(args: &'a Args, func: &'a ItemFn) -> syn::Result<Plan<'a>> {
    let mut errors = Errors(args.errors.clone());
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
                        mutability,
                        ..
                    }) => params.push(Param {
                        ident: ident.clone(),
                        mutability: *mutability,
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
    check_skip(args, &mut params, &mut errors);
    let returns = check_return(&sig.output, &mut errors);
    check_return_options(args, &returns, name, &sig.output, &mut errors);
    check_cache_choice(args, &params, name, &mut errors);
    check_freshness(args, sig, receiver, &params, &returns, &mut errors);
    if let Some(prefix) = &args.prefix {
        if prefix.value.value().is_empty() {
            errors.at(
                prefix.value.span(),
                "`prefix` must not be empty; leave it out for the default (module path and fn name)",
            );
        }
    }
    errors.into_result()?;
    let storage = match returns {
        Returns::Result { .. } if !is_true(&args.cache_errors) => Storage::Ok,
        Returns::Option if is_false(&args.cache_none) => Storage::Some,
        _ => Storage::Always,
    };
    Ok(Plan {
        args,
        func,
        receiver,
        params,
        storage,
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
pub(crate) fn free_idents(tokens: TokenStream) -> Vec<Ident> {
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
