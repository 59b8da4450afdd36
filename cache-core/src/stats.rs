//! Counters a cache keeps about itself ([`StatsSnapshot`], from
//! [`Cache::stats`](crate::Cache::stats)), and counters per memoized
//! function ([`function_stats`], also exported through the `metrics` crate).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::circuit_breaker::BreakerState;
pub use crate::function_stats::{function_stats, function_stats_of, FunctionStats};

/// Live counters; read them with [`Cache::stats`](crate::Cache::stats).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) decode_failures: AtomicU64,
    pub(crate) stores: AtomicU64,
    pub(crate) store_skipped: AtomicU64,
    pub(crate) shared_computations: AtomicU64,
    pub(crate) lock_waits: AtomicU64,
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, breaker: (BreakerState, u64)) -> StatsSnapshot {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            hits: read(&self.hits),
            misses: read(&self.misses),
            errors: read(&self.errors),
            decode_failures: read(&self.decode_failures),
            stores: read(&self.stores),
            store_skipped: read(&self.store_skipped),
            shared_computations: read(&self.shared_computations),
            lock_waits: read(&self.lock_waits),
            breaker: breaker.0,
            breaker_openings: breaker.1,
        }
    }
}

/// A copy of a cache's counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Lookups that found a decodable entry.
    pub hits: u64,
    /// Lookups that found nothing (or an entry that did not decode).
    pub misses: u64,
    /// Backend errors swallowed by the fail-open memoizing path.
    pub errors: u64,
    /// Entries that did not decode (corrupt, another type, unknown codec,
    /// too large); each was treated as a miss and overwritten.
    pub decode_failures: u64,
    /// Values written.
    pub stores: u64,
    /// Values not written because they could not be encoded or exceeded the
    /// maximum value size.
    pub store_skipped: u64,
    /// Callers that waited for another caller's computation of the same key
    /// instead of computing themselves (single-flight).
    pub shared_computations: u64,
    /// Callers that found another process holding the stampede lock and
    /// waited for its value.
    pub lock_waits: u64,
    /// The circuit breaker's state now (always closed for in-memory caches).
    pub breaker: BreakerState,
    /// How many times the breaker has opened.
    pub breaker_openings: u64,
}
