//! Turns a [`FinalConfig`] into tokens, deciding nothing. The generated
//! code is a thin shim over `cache_core::memoized::Memoized`, reached
//! through `{crate}::__private`, with items and locals named `__cache_*`.

use proc_macro2::{Group, Literal, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, Ident};

use crate::attr::Ttl;
use crate::config::{
    Body, CacheChoice, CallMethod, Callback, Companion, CompanionKind, FinalConfig, Freshness,
    GenericPart, KeyValues, Prefix, Scope, Storage, Wrapper,
};

/// The memoized function, its body and its four companions.
pub(crate) fn expand(config: &FinalConfig) -> TokenStream {
    let memoized = wrapper(config, &config.memoized);
    let refresh = wrapper(config, &config.refresh);
    let body = body_fn(&config.body);
    let cache_key = companion(config, &config.cache_key);
    let invalidate = companion(config, &config.invalidate);
    let invalidate_all = companion(config, &config.invalidate_all);
    quote! {
        #memoized
        #refresh
        #body
        #cache_key
        #invalidate
        #invalidate_all
    }
}

fn private(config: &FinalConfig) -> TokenStream {
    let krate = &config.krate;
    quote!(#krate::__private)
}

/// `foo` or `foo_refresh`: the user's signature; the key is built, then the
/// runtime calls the body fn on a miss.
fn wrapper(config: &FinalConfig, wrapper: &Wrapper) -> TokenStream {
    let Wrapper {
        attrs,
        vis,
        sig,
        refreshing,
    } = wrapper;
    let call = &config.call;
    let memo = memoized(config, Some(*refreshing));
    let parts = key_parts(config);
    // Spanned at the return type: a return type that is not
    // `Serialize + DeserializeOwned` is reported there.
    let span = call.return_span;
    let (method, wait) = match call.method {
        CallMethod::Async => (quote!(call), Some(quote_spanned!(span=> .await))),
        CallMethod::AsyncRefreshing => {
            (quote!(call_refreshing), Some(quote_spanned!(span=> .await)))
        }
        CallMethod::Blocking => (quote!(call_blocking), None),
    };
    if call.local_fast_path && !refreshing {
        return local_first(config, wrapper, method, wait);
    }
    let run = memo_call(config, &method, policy(config));
    quote! {
        #(#attrs)*
        #vis #sig {
            let __cache_memo = #memo;
            let __cache_key = __cache_memo.key(#parts);
            #run #wait
        }
    }
}

/// `foo` asking the local tier first: the key and a hit from memory cost
/// no `Memoized`, no clone of the cache and no call future; a miss goes on
/// with the same key, prefix and policy.
fn local_first(
    config: &FinalConfig,
    wrapper: &Wrapper,
    method: TokenStream,
    wait: Option<TokenStream>,
) -> TokenStream {
    let Wrapper {
        attrs, vis, sig, ..
    } = wrapper;
    let p = private(config);
    let call = &config.call;
    let parts = key_parts(config);
    let args = &call.args;
    let hit = callback(&call.hit);
    let policy = policy(config);
    let prefix = prefix(config);
    let lookup = quote! {
        #p::local_lookup(__cache, ::core::convert::AsRef::<str>::as_ref(&__cache_prefix), #parts, &__cache_policy)
    };
    let lookup = match &config.place.cache {
        CacheChoice::Explicit(expr) => quote_spanned! {expr.span()=> {
            let __cache: &#p::Cache = &(#expr);
            #lookup
        }},
        CacheChoice::Alias(alias) => {
            quote!(#p::registry::with(::core::option::Option::Some(#alias), |__cache| #lookup))
        }
        CacheChoice::Default => {
            quote!(#p::registry::with(::core::option::Option::None, |__cache| #lookup))
        }
    };
    let yield_now = wait
        .as_ref()
        .map(|_| quote!(#p::yield_now_and_then().await;));
    let memo = memoized_with_prefix(config, Some(false), quote!(__cache_prefix));
    // The policy's name spanned at the return type, as the policy itself.
    let policy_name = quote_spanned!(call.return_span=> __cache_policy);
    let run = memo_call(config, &method, policy_name);
    quote! {
        #(#attrs)*
        #vis #sig {
            let __cache_policy = #policy;
            let __cache_prefix = #prefix;
            // Its own statement: the key parts (borrowing the arguments)
            // are gone before any `.await`, so the future stays `Send`.
            let __cache_found = #lookup;
            let __cache_key = match __cache_found {
                #p::LocalLookup::Hit(__cache_hit) => {
                    #p::hit_callback(&(#(#args,)*), #hit);
                    #yield_now
                    return __cache_hit;
                }
                #p::LocalLookup::Miss(__cache_key) => __cache_key,
            };
            let __cache_memo = #memo;
            #run #wait
        }
    }
}

/// `__cache_memo.call(key, (args…), body, policy, hit, miss)` (or
/// `call_refreshing` / `call_blocking`), spanned at the return type: a
/// return type that is not `Serialize + DeserializeOwned` is reported there.
fn memo_call(config: &FinalConfig, method: &TokenStream, policy: TokenStream) -> TokenStream {
    let call = &config.call;
    let args = &call.args;
    let body = body_call(&config.body);
    let hit = callback(&call.hit);
    let miss = callback(&call.miss);
    quote_spanned! {call.return_span=>
        __cache_memo.#method(
            __cache_key,
            (#(#args,)*),
            move |(#(#args,)*)| #body,
            #policy,
            #hit,
            #miss,
        )
    }
}

/// The user's body, once, in a private fn of its own.
fn body_fn(body: &Body) -> TokenStream {
    let Body {
        attrs, sig, block, ..
    } = body;
    quote! {
        #(#attrs)*
        #[doc(hidden)]
        #sig #block
    }
}

/// `Self::__cache_body_foo::<T>(self, a, b)`, or without `Self::` and
/// `self` for a free fn.
fn body_call(body: &Body) -> TokenStream {
    let ident = &body.sig.ident;
    let generics = &body.generics;
    let turbofish = (!generics.is_empty()).then(|| quote!(::<#(#generics),*>));
    let path = match body.scope {
        Scope::Impl => quote!(Self::#ident #turbofish),
        Scope::Module => quote!(#ident #turbofish),
    };
    let receiver = body.takes_self.then(|| quote!(self,));
    let args = &body.args;
    let call = quote!(#path(#receiver #(#args),*));
    if body.unsafety {
        quote!(unsafe { #call })
    } else {
        call
    }
}

/// A companion that works on the key.
fn companion(config: &FinalConfig, companion: &Companion) -> TokenStream {
    let Companion {
        attrs,
        vis,
        ident,
        is_async,
        takes_self,
        generics,
        params,
        kind,
    } = companion;
    let asyncness = is_async.then(|| quote!(async));
    let receiver = takes_self.then(|| quote!(&self,));
    let params = params.iter().map(|(ident, ty)| quote!(#ident: #ty));
    let where_clause = &generics.where_clause;
    let memo = memoized(config, None);
    let (returns, body) = match (kind, is_async) {
        (CompanionKind::CacheKey, _) => {
            let parts = key_parts(config);
            (
                quote!(::std::string::String),
                quote!(#memo.cache_key(#parts)),
            )
        }
        // The key is built in its own statement, so the temporaries that
        // borrow the arguments are gone before the `.await` (the future is
        // then `Send`).
        (CompanionKind::Invalidate, true) => {
            let parts = key_parts(config);
            let body = quote! {
                let __cache_invalidating = #memo.invalidate(#parts);
                __cache_invalidating.await
            };
            (quote!(bool), body)
        }
        (CompanionKind::Invalidate, false) => {
            let parts = key_parts(config);
            (quote!(bool), quote!(#memo.invalidate_blocking(#parts)))
        }
        (CompanionKind::InvalidateAll, true) => (quote!(u64), quote!(#memo.invalidate_all().await)),
        (CompanionKind::InvalidateAll, false) => {
            (quote!(u64), quote!(#memo.invalidate_all_blocking()))
        }
    };
    quote! {
        #(#attrs)*
        #vis #asyncness fn #ident #generics (#receiver #(#params),*) -> #returns #where_clause {
            #body
        }
    }
}

/// `Memoized::new(cache, prefix)`; for a call (`Some(refreshing)`), with
/// its ttl, refresh, lock, freshness and tags.
fn memoized(config: &FinalConfig, call: Option<bool>) -> TokenStream {
    memoized_with_prefix(config, call, prefix(config))
}

/// The function prefix expression.
fn prefix(config: &FinalConfig) -> TokenStream {
    let p = private(config);
    match &config.place.prefix {
        Prefix::Given(prefix) => prefix.to_token_stream(),
        Prefix::Method(name) => quote!(#p::method_prefix::<Self>(#name)),
        Prefix::Module(name) => quote!(::core::concat!(::core::module_path!(), "::", #name)),
    }
}

/// [`memoized`] with the prefix given as tokens.
fn memoized_with_prefix(
    config: &FinalConfig,
    call: Option<bool>,
    prefix: TokenStream,
) -> TokenStream {
    let p = private(config);
    let cache = match &config.place.cache {
        CacheChoice::Explicit(expr) => quote_spanned!(expr.span()=> #p::Cache::clone(&(#expr))),
        CacheChoice::Alias(alias) => {
            quote!(#p::registry::resolve(::core::option::Option::Some(#alias)))
        }
        CacheChoice::Default => quote!(#p::registry::resolve(::core::option::Option::None)),
    };
    let new = quote!(#p::Memoized::new(#cache, #prefix));
    let Some(refreshing) = call else {
        return new;
    };
    let call = &config.call;
    let ttl = call.ttl.as_ref().map(|ttl| match ttl {
        Ttl::Seconds(_) => {
            let ttl = duration(ttl);
            quote!(.ttl(#ttl))
        }
        // The whole call at the expression: a wrong type is reported there,
        // not also at the attribute.
        Ttl::Duration(expr) => quote_spanned!(expr.span()=> .ttl(#expr)),
    });
    let refreshing = refreshing.then(|| quote!(.refreshing()));
    let lock = call.lock.as_ref().map(|lock| quote!(.locking(#lock)));
    let local = call.local.as_ref().map(|local| quote!(.local(#local)));
    let freshness = call
        .freshness
        .as_ref()
        .map(|freshness| self::freshness(config, freshness));
    let tags = (!call.tags.is_empty()).then(|| {
        let tags = call
            .tags
            .iter()
            .map(|tag| quote_spanned!(tag.span()=> ::std::string::ToString::to_string(&(#tag))));
        quote!(.tags([#(#tags),*]))
    });
    quote!(#new #ttl #refreshing #lock #local #freshness #tags)
}

/// A duration option as a `Duration` expression, spanned at the user's
/// expression (a wrong type is reported there).
fn duration(ttl: &Ttl) -> TokenStream {
    match ttl {
        Ttl::Seconds(seconds) => {
            let seconds = Literal::u64_unsuffixed(*seconds);
            quote!(::core::time::Duration::from_secs(#seconds))
        }
        Ttl::Duration(expr) => quote_spanned!(expr.span()=> #expr),
    }
}

/// `.freshness(Freshness::default().early_refresh(β)…)`.
fn freshness(config: &FinalConfig, freshness: &Freshness) -> TokenStream {
    let p = private(config);
    let early = freshness.early_refresh.map(|beta| {
        let beta = Literal::f64_suffixed(beta);
        quote!(.early_refresh(#beta))
    });
    let swr = freshness.stale_while_revalidate.as_ref().map(|window| {
        let window = duration(window);
        quote!(.stale_while_revalidate(#window))
    });
    let sie = freshness.stale_if_error.as_ref().map(|window| {
        let window = duration(window);
        quote!(.stale_if_error(#window))
    });
    quote!(.freshness(#p::Freshness::default() #early #swr #sie))
}

/// `&[key_part(..), …]`. Each part is spanned at its source, so a value
/// that is not `Serialize` is reported there.
fn key_parts(config: &FinalConfig) -> TokenStream {
    let p = private(config);
    let key = &config.key;
    let generics = key.generics.iter().map(|part| match part {
        GenericPart::Type(ident) => quote!(#p::key_part(&::core::any::type_name::<#ident>())),
        GenericPart::Const(ident) => quote!(#p::key_part(&#ident)),
    });
    let expr_part = |expr: &Expr| quote_spanned!(expr.span()=> #p::key_part(&(#expr)));
    let values: Vec<TokenStream> = match &key.values {
        KeyValues::Expr(expr) => vec![expr_part(expr)],
        KeyValues::Args(args) => args
            .iter()
            .map(|ident| quote_spanned!(ident.span()=> #p::key_part(&#ident)))
            .collect(),
    };
    let extra = key.extra.iter().map(expr_part);
    quote!(&[#(#generics,)* #(#values,)* #(#extra,)*])
}

/// A `hit`/`miss` closure; `|_| {}` without a callback.
fn callback(callback: &Option<Callback>) -> TokenStream {
    let Some(Callback { path, args }) = callback else {
        return quote!(|_| {});
    };
    let idents = args.iter().map(|(ident, _)| ident);
    let passed = args.iter().map(|(ident, is_reference)| {
        if *is_reference {
            quote!(&**#ident)
        } else {
            quote!(#ident)
        }
    });
    quote_spanned!(path.span()=> |(#(#idents,)*)| (#path)(#(#passed),*))
}

/// The store policy, spanned at the return type.
fn policy(config: &FinalConfig) -> TokenStream {
    let call = &config.call;
    let span = call.return_span;
    let constructor = match call.storage {
        Storage::Always => "always",
        Storage::Ok => "ok",
        Storage::Some => "some",
    };
    let constructor = Ident::new(constructor, span);
    let returns = &call.returns;
    // The crate path is respanned too: tokens that kept the attribute's
    // span would pull the error back onto the attribute.
    let krate = respan(config.krate.to_token_stream(), span);
    // Then whether the stored type can be kept in the local tier: chosen
    // by autoref specialization on the now concrete stored type
    // (`Clone + Send + Sync + 'static` or not; a generic one never is).
    quote_spanned! {span=> {
        #[allow(unused_imports)]
        use #krate::__private::{LocalByClone as _, LocalNever as _};
        let __cache_policy = #krate::__private::Policy::<#returns, _>::#constructor();
        let __cache_local = (&&#krate::__private::LocalProbe::of(&__cache_policy)).local_value();
        __cache_policy.local(__cache_local)
    }}
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                tree = TokenTree::Group(respanned);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proc_macro2::{TokenStream, TokenTree};
    use quote::quote;

    /// One function per shape the expansion distinguishes, together using
    /// every option. Each body declares `__MARKER`.
    fn shapes() -> Vec<(TokenStream, TokenStream)> {
        vec![
            (
                quote!(),
                quote!(
                    fn plain(n: u32) -> u32 {
                        static __MARKER: u8 = 0;
                        n
                    }
                ),
            ),
            (
                quote!(
                    ttl = 60,
                    key = n,
                    extra = 1,
                    hit = on_hit,
                    miss = on_miss,
                    alias = "a",
                    lock = true,
                    tags = ["t"]
                ),
                quote!(
                    async fn keyed(n: u32, label: &str) -> Result<u32, String> {
                        static __MARKER: u8 = 0;
                        Ok(n)
                    }
                ),
            ),
            (
                quote!(ttl = 60),
                quote!(
                    async fn plain_async(n: u32) -> u32 {
                        static __MARKER: u8 = 0;
                        n
                    }
                ),
            ),
            (
                quote!(
                    cache = self.cache,
                    ttl = Duration::from_secs(1),
                    stale_if_error = 5
                ),
                quote!(
                    async fn method(&self, mut n: u32) -> Option<u32> {
                        static __MARKER: u8 = 0;
                        n += 1;
                        Some(n)
                    }
                ),
            ),
            (
                quote!(
                    early_refresh,
                    stale_while_revalidate = 30,
                    prefix = "p",
                    cache_none = false
                ),
                quote!(
                    async fn generic<T: Serialize, const N: usize>(x: T) -> Option<u32> {
                        static __MARKER: u8 = 0;
                        None
                    }
                ),
            ),
            (
                quote!(store_result = false, skip(pool)),
                quote!(
                    fn effect(pool: &Pool, n: u32) {
                        static __MARKER: u8 = 0;
                    }
                ),
            ),
            (
                quote!(cache_errors = true),
                quote!(
                    unsafe fn fallible(n: u32) -> Result<u32, String> {
                        static __MARKER: u8 = 0;
                        Ok(n)
                    }
                ),
            ),
        ]
    }

    fn expand(args: TokenStream, func: TokenStream) -> TokenStream {
        let args: crate::attr::Args = syn::parse2(args).expect("options parse");
        let func: syn::ItemFn = syn::parse2(func).expect("a fn");
        match crate::check::check(args, &func) {
            Ok(config) => super::expand(&config),
            Err(e) => panic!("{e}"),
        }
    }

    fn idents(tokens: TokenStream) -> Vec<String> {
        let mut found = Vec::new();
        for tree in tokens {
            match tree {
                TokenTree::Ident(ident) => found.push(ident.to_string()),
                TokenTree::Group(group) => found.extend(idents(group.stream())),
                _ => {}
            }
        }
        found
    }

    /// The names used right after `__private ::`.
    fn private_items(tokens: TokenStream) -> BTreeSet<String> {
        let text = tokens.to_string();
        let ident = |text: &str| {
            text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        text.split("__private :: ")
            .skip(1)
            .flat_map(|rest| match rest.strip_prefix('{') {
                // `use __private::{A as _, B as _}`
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|item| ident(item.trim()))
                    .collect::<Vec<_>>(),
                None => vec![ident(rest)],
            })
            .collect()
    }

    #[test]
    fn the_body_is_emitted_once() {
        for (args, func) in shapes() {
            let expanded = expand(args, func);
            let copies = idents(expanded.clone())
                .iter()
                .filter(|ident| *ident == "__MARKER")
                .count();
            assert_eq!(copies, 1, "{expanded}");
        }
    }

    #[test]
    fn every_path_goes_through_the_crate_option() {
        for (args, func) in shapes() {
            let args = quote!(crate = renamed::facade, #args);
            let expanded = expand(args, func);
            let idents = idents(expanded.clone());
            assert!(!idents.iter().any(|i| i == "cache_memoize"), "{expanded}");
            assert!(idents.iter().any(|i| i == "renamed"), "{expanded}");
        }
        let expanded = expand(
            quote!(),
            quote!(
                fn f() {}
            ),
        );
        assert!(expanded
            .to_string()
            .contains(":: cache_memoize :: __private"));
    }

    /// `src/private.rs` of the `cache-memoize` crate exports exactly these.
    #[test]
    fn private_exports_only_what_expansions_use() {
        let used: BTreeSet<String> = shapes()
            .into_iter()
            .flat_map(|(args, func)| private_items(expand(args, func)))
            .collect();
        let exported = [
            "Cache",
            "Freshness",
            "LocalByClone",
            "LocalNever",
            "LocalLookup",
            "LocalProbe",
            "Memoized",
            "Policy",
            "hit_callback",
            "key_part",
            "local_lookup",
            "method_prefix",
            "registry",
            "yield_now_and_then",
        ];
        assert_eq!(used, exported.map(String::from).into());
    }
}
