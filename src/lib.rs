//! Redis-backed memoizing cache: `#[cache_memoize]` for sync and async
//! functions, MessagePack + zlib values, pooled Redis, in-memory fallback.
//!
//! This crate is the one to depend on: it re-exports the runtime
//! ([`cache_core`]) and the attribute.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use cache_memoize::Cache;
//!
//! let cache = Cache::memory(); // or Cache::builder().url("redis://127.0.0.1/").build()?
//! let n: usize = cache.get_or_compute("answer", None, || async { 42 }).await;
//! assert_eq!(n, 42);
//! assert_eq!(cache.stats().misses, 1);
//! # }
//! ```

pub use cache_core::*;
pub use cache_macros::cache_memoize;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
