//! Runtime of `cache-memoize`: a [`Cache`] over pooled, multiplexed Redis
//! connections or process memory, a pluggable [`Codec`] (MessagePack + zlib by
//! default), stable keys and single-flight memoization.
//!
//! Most users depend on the `cache-memoize` crate, which re-exports this one
//! and adds the `#[cache_memoize]` attribute.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use cache_core::Cache;
//!
//! let cache = Cache::memory();
//! let squares: Vec<u64> = cache
//!     .get_or_compute("squares:10", None, || async { (0..10).map(|i| i * i).collect() })
//!     .await;
//! assert_eq!(squares[9], 81);
//! assert_eq!(cache.stats().misses, 1);
//! # }
//! ```
//!
//! # Cargo features
//!
//! None is enabled by default.
//!
//! - `tls`: `rediss://` URLs, TLS through rustls (with the webpki roots, or
//!   a private CA given to [`CacheBuilder::tls_ca_file`]).
//! - `postcard`, `cbor`: the optional serializers, and `gzip`, `zstd`, `lz4`,
//!   `xz`, `brotli`, `snappy`: the optional compressors (see [`codec`]).
//! - `all-codecs`: every optional serializer and compressor.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
pub mod batch;
pub mod blocking;
mod builder;
mod cache;
mod circuit_breaker;
pub mod codec;
mod codec_pool;
mod error;
mod fence;
mod freshness;
mod function_stats;
pub mod key;
mod lease;
mod local_tier;
mod local_tier_metrics;
mod local_value;
pub mod memoized;
mod memoizing;
mod read_coalescing;
mod redacted_url;
pub mod registry;
mod sharded_counter;
mod single_flight;
pub mod stats;
pub mod store;
mod thread_flag;
mod throttled_log;
mod ttl;
mod value_weight;

pub use builder::CacheBuilder;
pub use cache::{Cache, CallOptions};
pub use circuit_breaker::{BreakerSettings, BreakerState};
pub use codec::{Codec, CodecBuilder};
pub use error::{CodecError, Error, ErrorKind, Result};
pub use freshness::Freshness;
pub use key::{KeyBuilder, KeyMatcher};
pub use lease::LockSettings;
pub use local_tier::{LocalTier, LocalTierState, LocalTierStats};
pub use redacted_url::RedactedUrl;
pub use stats::StatsSnapshot;
pub use ttl::MAX_TTL;

/// Crates the generated code and users need, at the versions this crate uses.
pub use deadpool_redis::redis;
pub use serde;

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
