//! Stops paying the timeout on every call while the backend is down.
//!
//! Closed: calls go to the backend. After `failure_threshold` consecutive
//! failures the breaker opens: calls skip the backend (memoized calls just
//! compute) for a back-off period. Then one call is let through as a probe;
//! if it succeeds the breaker closes, otherwise it opens again with a doubled
//! back-off, up to `max_backoff`. So the cache comes back by itself within
//! `max_backoff` of the backend's return.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Settings of the circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker (default 5; 0 disables it).
    pub failure_threshold: u32,
    /// First back-off after opening (default 100 ms).
    pub initial_backoff: Duration,
    /// Longest back-off (default 1 s): the longest the cache stays off after
    /// the backend is back.
    pub max_backoff: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl BreakerSettings {
    /// A breaker that never opens.
    pub fn disabled() -> Self {
        Self {
            failure_threshold: 0,
            ..Self::default()
        }
    }
}

/// The breaker's state, as reported in stats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls reach the backend.
    Closed,
    /// Calls skip the backend until the back-off ends.
    Open,
    /// One probe call is testing the backend.
    HalfOpen,
}

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    settings: BreakerSettings,
    consecutive_failures: AtomicU32,
    /// 0 while closed; else the epoch-millis at which a probe may go.
    open_until_millis: AtomicU64,
    backoff_millis: AtomicU64,
    /// Whether a probe call is out. Its [`Permit`] gives the slot back when
    /// it is dropped, reported or not (a cancelled call), so the next call
    /// can probe at once.
    probing: AtomicBool,
    opened: AtomicU64,
}

/// Whether a call may use the backend. Report the outcome with
/// [`success`](Permit::success) or [`failure`](Permit::failure); a permit
/// dropped without either (its call was cancelled) says nothing about the
/// backend, and a probe's slot goes back to the breaker.
#[derive(Debug)]
#[must_use = "report the call's outcome with the permit"]
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    kind: PermitKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PermitKind {
    Go,
    /// The one call that tests the backend after a back-off.
    Probe,
    Skip,
}

fn now_millis() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    // +1 keeps 0 free to mean "closed".
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

impl Permit<'_> {
    pub(crate) fn kind(&self) -> PermitKind {
        self.kind
    }

    /// The call reached the backend and got an answer.
    pub(crate) fn success(mut self) {
        let kind = std::mem::replace(&mut self.kind, PermitKind::Skip);
        self.breaker.success(kind);
    }

    /// The call failed (timeout, connection, error reply).
    pub(crate) fn failure(mut self) {
        let kind = std::mem::replace(&mut self.kind, PermitKind::Skip);
        self.breaker.failure(kind);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.kind == PermitKind::Probe {
            // Cancelled before an outcome: free the slot, keep the breaker
            // open; the next call after the back-off probes again.
            self.breaker.probing.store(false, Ordering::Release);
        }
    }
}

impl CircuitBreaker {
    pub(crate) fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            consecutive_failures: AtomicU32::new(0),
            open_until_millis: AtomicU64::new(0),
            backoff_millis: AtomicU64::new(settings.initial_backoff.as_millis() as u64),
            probing: AtomicBool::new(false),
            opened: AtomicU64::new(0),
        }
    }

    pub(crate) fn permit(&self) -> Permit<'_> {
        Permit {
            breaker: self,
            kind: self.permit_kind(),
        }
    }

    fn permit_kind(&self) -> PermitKind {
        let open_until = self.open_until_millis.load(Ordering::Acquire);
        if open_until == 0 {
            return PermitKind::Go;
        }
        if now_millis() < open_until {
            return PermitKind::Skip;
        }
        // Back-off over: exactly one caller probes.
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            PermitKind::Probe
        } else {
            PermitKind::Skip
        }
    }

    fn success(&self, permit: PermitKind) {
        if permit == PermitKind::Skip {
            return;
        }
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if permit == PermitKind::Probe || self.open_until_millis.load(Ordering::Relaxed) != 0 {
            self.backoff_millis.store(
                self.settings.initial_backoff.as_millis() as u64,
                Ordering::Relaxed,
            );
            self.open_until_millis.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
            tracing::info!("cache backend is back; circuit breaker closed");
        }
    }

    fn failure(&self, permit: PermitKind) {
        if permit == PermitKind::Skip || self.settings.failure_threshold == 0 {
            return;
        }
        if permit == PermitKind::Probe {
            let backoff = self.backoff_millis.load(Ordering::Relaxed);
            let doubled = (backoff * 2).min(self.settings.max_backoff.as_millis() as u64);
            self.backoff_millis.store(doubled, Ordering::Relaxed);
            self.open_until_millis
                .store(now_millis() + doubled, Ordering::Release);
            self.probing.store(false, Ordering::Release);
            return;
        }
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.settings.failure_threshold
            && self.open_until_millis.load(Ordering::Relaxed) == 0
        {
            let backoff = self.backoff_millis.load(Ordering::Relaxed);
            self.open_until_millis
                .store(now_millis() + backoff, Ordering::Release);
            self.opened.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                failures,
                backoff_ms = backoff,
                "cache backend keeps failing; circuit breaker open, calls compute without it"
            );
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        if self.open_until_millis.load(Ordering::Acquire) == 0 {
            BreakerState::Closed
        } else if self.probing.load(Ordering::Acquire) {
            BreakerState::HalfOpen
        } else {
            BreakerState::Open
        }
    }

    pub(crate) fn times_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings {
            failure_threshold: 3,
            initial_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_millis(60),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_a_probe() {
        let b = breaker();
        for _ in 0..2 {
            b.permit().failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.permit().success(); // a success resets the count
        for _ in 0..3 {
            b.permit().failure();
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.permit().kind(), PermitKind::Skip);
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.permit();
        assert_eq!(probe.kind(), PermitKind::Probe);
        assert_eq!(b.permit().kind(), PermitKind::Skip, "one probe at a time");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.permit().kind(), PermitKind::Skip);
        std::thread::sleep(Duration::from_millis(70));
        let probe = b.permit();
        assert_eq!(probe.kind(), PermitKind::Probe);
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.permit().kind(), PermitKind::Go);
        assert_eq!(b.times_opened(), 1);
    }

    #[test]
    fn a_dropped_probe_frees_the_slot_at_once() {
        let b = breaker();
        for _ in 0..3 {
            b.permit().failure();
        }
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.permit();
        assert_eq!(probe.kind(), PermitKind::Probe);
        assert_eq!(b.permit().kind(), PermitKind::Skip);
        drop(probe); // its call was cancelled
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "still open: nothing was learnt"
        );
        let next = b.permit();
        assert_eq!(
            next.kind(),
            PermitKind::Probe,
            "the next call probes at once"
        );
        next.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_disabled_breaker_never_opens() {
        let b = CircuitBreaker::new(BreakerSettings::disabled());
        for _ in 0..100 {
            b.permit().failure();
        }
        assert_eq!(b.permit().kind(), PermitKind::Go);
    }
}
