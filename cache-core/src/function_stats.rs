//! Per-function numbers of memoized calls: hits, misses, backend errors and
//! latency, kept as plain counters ([`function_stats`]) and exported through
//! the [`metrics`] crate with a `function` label:
//!
//! | metric | kind |
//! |---|---|
//! | `cache_memoize_hits_total` | counter |
//! | `cache_memoize_misses_total` | counter |
//! | `cache_memoize_errors_total` | counter (backend errors, each failed call once) |
//! | `cache_memoize_call_seconds` | histogram (whole call: lookup, and on a miss the body and the store) |
//!
//! Metric handles are registered on a function's first call, with whatever
//! recorder is installed then: install yours (e.g. Prometheus) before the
//! first memoized call. Without a recorder the handles are no-ops, and the
//! per-call cost is a registry lookup, two clock reads and a few atomic
//! increments, with no allocation.
//!
//! Every memoized call also runs in a `tracing` span `memoized` (level
//! DEBUG) with the fields `function`, `key_hash` and `outcome`
//! (`hit`/`miss`/`error`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::sharded_counter::ShardedCounter;

/// What a memoized call turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Hit,
    Miss,
    /// The cache failed during the call (the body ran, fail-open).
    Error,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Error => "error",
        }
    }
}

/// One function's live counters and metric handles.
pub(crate) struct FunctionCounters {
    hits: AtomicU64,
    /// Hits from the local tier: millions a second on every core, so on
    /// cache lines of their own, and not timed.
    local_hits: ShardedCounter,
    misses: AtomicU64,
    errors: AtomicU64,
    latency_nanos: AtomicU64,
    max_latency_nanos: AtomicU64,
    exported: Exported,
}

struct Exported {
    hits: metrics::Counter,
    misses: metrics::Counter,
    errors: metrics::Counter,
    latency: metrics::Histogram,
}

impl FunctionCounters {
    fn new(function: &str) -> Self {
        let label = function.to_owned();
        FunctionCounters {
            hits: AtomicU64::new(0),
            local_hits: ShardedCounter::default(),
            misses: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency_nanos: AtomicU64::new(0),
            max_latency_nanos: AtomicU64::new(0),
            exported: Exported {
                hits: metrics::counter!("cache_memoize_hits_total", "function" => label.clone()),
                misses: metrics::counter!("cache_memoize_misses_total", "function" => label.clone()),
                errors: metrics::counter!("cache_memoize_errors_total", "function" => label.clone()),
                latency: metrics::histogram!("cache_memoize_call_seconds", "function" => label),
            },
        }
    }

    /// Counts one call: a hit or a miss (a failed call computed, so it is a
    /// miss too), plus an error when the cache failed, and its latency.
    fn record(&self, outcome: Outcome, latency: Duration) {
        let (counter, exported) = match outcome {
            Outcome::Hit => (&self.hits, &self.exported.hits),
            Outcome::Miss | Outcome::Error => (&self.misses, &self.exported.misses),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        exported.increment(1);
        if outcome == Outcome::Error {
            self.errors.fetch_add(1, Ordering::Relaxed);
            self.exported.errors.increment(1);
        }
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency_nanos.fetch_add(nanos, Ordering::Relaxed);
        // A read first: the maximum rarely changes, and a contended
        // read-modify-write on every call would bounce the cache line.
        if nanos > self.max_latency_nanos.load(Ordering::Relaxed) {
            self.max_latency_nanos.fetch_max(nanos, Ordering::Relaxed);
        }
        self.exported.latency.record(latency.as_secs_f64());
    }

    fn snapshot(&self, function: &str) -> FunctionStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FunctionStats {
            function: function.to_owned(),
            hits: read(&self.hits) + self.local_hits.sum(),
            misses: read(&self.misses),
            errors: read(&self.errors),
            total_latency: Duration::from_nanos(read(&self.latency_nanos)),
            max_latency: Duration::from_nanos(read(&self.max_latency_nanos)),
        }
    }
}

/// Looked up by function prefix on every call: foldhash, not SipHash (the
/// prefixes are the program's own, not untrusted input).
type Registry = HashMap<Box<str>, Arc<FunctionCounters>, foldhash::fast::FixedState>;

fn registry() -> &'static ArcSwap<Registry> {
    static REGISTRY: std::sync::OnceLock<ArcSwap<Registry>> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Counts a hit from the local tier (not timed: a clock read would cost
/// as much as the hit).
pub(crate) fn record_local_hit(function: &str) {
    if let Some(counters) = registry().load().get(function) {
        counters.local_hits.add(1);
        counters.exported.hits.increment(1);
        return;
    }
    record(function, Outcome::Hit, Duration::ZERO);
}

/// Counts one call of the function with this prefix: a lock-free lookup
/// after the function's first call, which registers its counters.
pub(crate) fn record(function: &str, outcome: Outcome, latency: Duration) {
    if let Some(counters) = registry().load().get(function) {
        return counters.record(outcome, latency);
    }
    let mut created: Option<Arc<FunctionCounters>> = None;
    registry().rcu(|current| {
        let mut next = Registry::clone(current);
        let counters = created
            .get_or_insert_with(|| Arc::new(FunctionCounters::new(function)))
            .clone();
        next.entry(function.into()).or_insert(counters);
        next
    });
    if let Some(counters) = registry().load().get(function) {
        counters.record(outcome, latency);
    }
}

/// A copy of one memoized function's counters at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FunctionStats {
    /// The function prefix (`#[cache_memoize(prefix = …)]`, default the
    /// module path and name).
    pub function: String,
    /// Calls answered from the cache.
    pub hits: u64,
    /// Calls that ran the body (including those where the cache failed).
    pub misses: u64,
    /// Calls during which the cache failed (and the body ran: fail-open).
    pub errors: u64,
    /// Time spent in all calls, body included.
    pub total_latency: Duration,
    /// The slowest call.
    pub max_latency: Duration,
}

impl FunctionStats {
    /// Every call counted.
    pub fn calls(&self) -> u64 {
        self.hits + self.misses
    }

    /// Average time of a call (zero before the first).
    pub fn mean_latency(&self) -> Duration {
        match self.calls() {
            0 => Duration::ZERO,
            n => self.total_latency / u32::try_from(n).unwrap_or(u32::MAX),
        }
    }

    /// Share of calls that were hits, from 0 to 1 (0 before the first call).
    pub fn hit_ratio(&self) -> f64 {
        match self.calls() {
            0 => 0.0,
            n => self.hits as f64 / n as f64,
        }
    }
}

/// The counters of every memoized function called so far in this process,
/// sorted by function prefix.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cache_core::memoized::{key_part, Memoized, Policy};
/// use cache_core::Cache;
///
/// let memo = Memoized::new(Cache::memory(), "docs::double");
/// for _ in 0..3 {
///     let key = memo.key(&[key_part(&21u32)]);
///     memo.call(key, 21u32, |n| async move { n * 2 }, Policy::always(), |_| {}, |_| {}).await;
/// }
/// let stats = cache_core::stats::function_stats_of("docs::double").unwrap();
/// assert_eq!((stats.hits, stats.misses, stats.errors), (2, 1, 0));
/// # }
/// ```
pub fn function_stats() -> Vec<FunctionStats> {
    let registry = registry().load();
    let mut all: Vec<FunctionStats> = registry
        .iter()
        .map(|(function, counters)| counters.snapshot(function))
        .collect();
    all.sort_by(|a, b| a.function.cmp(&b.function));
    all
}

/// The counters of one memoized function, by its prefix; `None` before its
/// first call.
pub fn function_stats_of(function: &str) -> Option<FunctionStats> {
    registry()
        .load()
        .get(function)
        .map(|counters| counters.snapshot(function))
}
