//! placeholder: the facade crate; docs come with the README.
pub use cache_core::*;
pub use cache_macros::cache_memoize;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
