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
//!
//! # Cargo features
//!
//! None is enabled by default; each one enables the feature of the same
//! name of [`cache_core`].
//!
//! - `tls`: `rediss://` URLs, TLS through rustls (with the webpki roots, or
//!   a private CA given to [`CacheBuilder::tls_ca_file`]).
//! - `postcard`, `cbor`: the optional serializers, and `gzip`, `zstd`, `lz4`,
//!   `xz`, `brotli`, `snappy`: the optional compressors (see [`codec`]).
//! - `all-codecs`: every optional serializer and compressor.

#![cfg_attr(docsrs, feature(doc_cfg))]

// By name, so that what this crate offers is decided here: a new public
// item of cache-core is not public here until it is added to this list.
pub use cache_core::{batch, blocking, codec, key, memoized, registry, stats, store};
pub use cache_core::{
    BreakerSettings, BreakerState, Cache, CacheBuilder, CallOptions, Codec, CodecBuilder,
    CodecError, Error, ErrorKind, Freshness, KeyBuilder, KeyMatcher, LocalTier, LocalTierState,
    LocalTierStats, LockSettings, RedactedUrl, Result, StatsSnapshot, MAX_TTL,
};
// Shown as re-exports, not as copies of the whole redis and serde docs.
#[doc(no_inline)]
pub use cache_core::{redis, serde};
pub use cache_macros::cache_memoize;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
