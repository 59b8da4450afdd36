//! The `#[cache_memoize]` attribute.
use proc_macro::TokenStream;

/// Memoizes a function in a cache.
#[proc_macro_attribute]
pub fn cache_memoize(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
