//! Logs backend trouble once per burst instead of once per call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Minimum time between two warnings of one cache.
const QUIET_MILLIS: u64 = 1_000;

#[derive(Debug, Default)]
pub(crate) struct ThrottledLog {
    last_logged_millis: AtomicU64,
    suppressed: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl ThrottledLog {
    /// Warns about `error` unless another warning was logged within the last
    /// second; the next warning reports how many were suppressed.
    pub(crate) fn warn(&self, cache: &str, operation: &str, error: &dyn std::fmt::Display) {
        // +1 so that the first warning is never mistaken for "just logged".
        let now = epoch().elapsed().as_millis() as u64 + QUIET_MILLIS + 1;
        let last = self.last_logged_millis.load(Ordering::Relaxed);
        if now.saturating_sub(last) < QUIET_MILLIS
            || self
                .last_logged_millis
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        tracing::warn!(
            cache,
            operation,
            suppressed,
            "cache unavailable, computing without it: {error}"
        );
    }
}
