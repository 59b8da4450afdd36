//! Counters a cache keeps about itself ([`StatsSnapshot`], from
//! [`Cache::stats`](crate::Cache::stats)), and counters per memoized
//! function ([`function_stats`], also exported through the `metrics` crate).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::circuit_breaker::BreakerState;
pub use crate::function_stats::{function_stats, function_stats_of, FunctionStats};
use crate::local_tier::LocalTierStats;

/// Live counters; read them with [`Cache::stats`](crate::Cache::stats).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) decode_failures: AtomicU64,
    pub(crate) stores: AtomicU64,
    pub(crate) store_skipped: AtomicU64,
    pub(crate) stale_stores_refused: AtomicU64,
    pub(crate) early_refreshes: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) stale_on_error: AtomicU64,
    pub(crate) shared_computations: AtomicU64,
    pub(crate) lock_waits: AtomicU64,
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(
        &self,
        breaker: (BreakerState, u64),
        local: Option<LocalTierStats>,
    ) -> StatsSnapshot {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let local_hits = local.map_or(0, |l| l.hits);
        StatsSnapshot {
            hits: read(&self.hits) + local_hits,
            local_hits,
            local_epoch_bumps: local.map_or(0, |l| l.epoch_bumps),
            local_fence_rejections: local.map_or(0, |l| l.fence_rejections),
            local,
            misses: read(&self.misses),
            errors: read(&self.errors),
            decode_failures: read(&self.decode_failures),
            stores: read(&self.stores),
            store_skipped: read(&self.store_skipped),
            stale_stores_refused: read(&self.stale_stores_refused),
            early_refreshes: read(&self.early_refreshes),
            stale_served: read(&self.stale_served),
            stale_on_error: read(&self.stale_on_error),
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
    /// Memoized calls answered without running the body: found in the
    /// cache, or another caller's value (see `shared_computations`).
    pub hits: u64,
    /// Memoized calls that ran the body. Every memoized call is counted
    /// once, as a hit or a miss.
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
    /// Computed values not stored because their key was invalidated (or
    /// overwritten, or its lease expired) while they were computed: storing
    /// them would have brought back data older than the invalidation.
    pub stale_stores_refused: u64,
    /// Hits that XFetch drew for an early refresh in the background.
    pub early_refreshes: u64,
    /// Hits served past their logical expiry within the
    /// stale-while-revalidate window (each also started a refresh).
    pub stale_served: u64,
    /// Calls whose body failed and that returned the last good value within
    /// the stale-if-error window.
    pub stale_on_error: u64,
    /// Calls answered with another caller's value instead of computing
    /// (single-flight in this process, or a value another process stored
    /// while this call wanted the lease); counted in `hits` too.
    pub shared_computations: u64,
    /// Callers that found another caller's lease with the stampede lock on
    /// and waited for its value.
    pub lock_waits: u64,
    /// The circuit breaker's state now (always closed for in-memory caches).
    pub breaker: BreakerState,
    /// How many times the breaker has opened.
    pub breaker_openings: u64,
    /// Memoized calls answered from the local tier (counted in `hits` too).
    pub local_hits: u64,
    /// Times the local tier invalidated everything it held at once
    /// (tracking connection lost or re-established, `FLUSHALL`, a prefix
    /// or function delete).
    pub local_epoch_bumps: u64,
    /// Values the local tier refused because an invalidation of their key
    /// came while they were being read or computed.
    pub local_fence_rejections: u64,
    /// All of the local tier's numbers; `None` without a local tier.
    pub local: Option<LocalTierStats>,
}
