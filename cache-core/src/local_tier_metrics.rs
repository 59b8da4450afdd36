//! The local tier's counters exported through the `metrics` crate, labeled
//! with the cache's key namespace, published a few times a second by the
//! tracking task (off the hit path: a hit writes only its own sharded
//! counter).

use std::time::Duration;

use crate::local_tier::LocalTierStats;

/// How often the tier's counters are published.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// The exported handles of one cache's tier.
pub(crate) struct LocalTierMetrics {
    hits: metrics::Counter,
    misses: metrics::Counter,
    epoch_bumps: metrics::Counter,
    fence_rejections: metrics::Counter,
    pushes: metrics::Counter,
    evictions: metrics::Counter,
    entries: metrics::Gauge,
    bytes: metrics::Gauge,
    lease_age: metrics::Gauge,
    push_lag: metrics::Gauge,
}

impl LocalTierMetrics {
    /// Registers the handles with the installed recorder (if any).
    pub(crate) fn new(namespace: &str) -> Self {
        let label = namespace.to_owned();
        LocalTierMetrics {
            hits: metrics::counter!("cache_memoize_local_hits_total", "cache" => label.clone()),
            misses: metrics::counter!("cache_memoize_local_misses_total", "cache" => label.clone()),
            epoch_bumps: metrics::counter!("cache_memoize_local_epoch_bumps_total", "cache" => label.clone()),
            fence_rejections: metrics::counter!("cache_memoize_local_fence_rejections_total", "cache" => label.clone()),
            pushes: metrics::counter!("cache_memoize_local_pushes_total", "cache" => label.clone()),
            evictions: metrics::counter!("cache_memoize_local_evictions_total", "cache" => label.clone()),
            entries: metrics::gauge!("cache_memoize_local_entries", "cache" => label.clone()),
            bytes: metrics::gauge!("cache_memoize_local_bytes", "cache" => label.clone()),
            lease_age: metrics::gauge!("cache_memoize_local_lease_age_seconds", "cache" => label.clone()),
            push_lag: metrics::gauge!("cache_memoize_local_push_lag_seconds", "cache" => label),
        }
    }

    /// Publishes a snapshot: counters as their totals, gauges as they are
    /// now. No lease yet reads as an infinite age.
    pub(crate) fn publish(&self, stats: &LocalTierStats) {
        self.hits.absolute(stats.hits);
        self.misses.absolute(stats.misses);
        self.epoch_bumps.absolute(stats.epoch_bumps);
        self.fence_rejections.absolute(stats.fence_rejections);
        self.pushes.absolute(stats.pushes);
        self.evictions.absolute(stats.evictions);
        self.entries.set(stats.entries as f64);
        self.bytes.set(stats.bytes as f64);
        self.lease_age.set(
            stats
                .lease_age
                .map_or(f64::INFINITY, |age| age.as_secs_f64()),
        );
        if let Some(lag) = stats.push_lag {
            self.push_lag.set(lag.as_secs_f64());
        }
    }
}
