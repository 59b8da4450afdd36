//! The `#[cache_memoize]` attribute of the `cache-memoize` crate.
//!
//! Use it through `cache_memoize::cache_memoize`; the generated code calls
//! `::cache_memoize::__private` (or `{crate}::__private` with `crate = …`).
//! Arguments are parsed into a model (`attr`), checked against the function
//! and resolved into a final configuration (`check`, `config`), then turned
//! into tokens (`expand`).

#![cfg_attr(docsrs, feature(doc_cfg))]

use proc_macro::TokenStream;
use quote::ToTokens;
use syn::ItemFn;

mod attr;
mod check;
mod config;
mod expand;

// The documentation's examples are compiled and run as doctests of the
// `cache-memoize` crate, which can use the attribute; this crate cannot.
#[cfg_attr(not(doctest), doc = include_str!("attribute.md"))]
#[proc_macro_attribute]
pub fn cache_memoize(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(e) => {
            let message = format!("#[cache_memoize] goes on a `fn` or `async fn` with a body: {e}");
            let error = syn::Error::new(e.span(), message).to_compile_error();
            return [error.into(), item].into_iter().collect();
        }
    };
    let args = match syn::parse::<attr::Args>(args) {
        Ok(args) => args,
        Err(e) => return with_original(e, &func),
    };
    match check::check(args, &func) {
        Ok(config) => expand::expand(&config).into(),
        Err(e) => with_original(e, &func),
    }
}

/// The errors plus the function unchanged, so that a mistake in the
/// attribute does not also break every caller (as tokio's `#[main]` does).
fn with_original(errors: syn::Error, func: &ItemFn) -> TokenStream {
    let mut tokens = errors.to_compile_error();
    func.to_tokens(&mut tokens);
    tokens.into()
}
