//! Freshness controls: what a call does with a value near or past its
//! logical expiry (`../shared/COHERENCE.md` §5).
//!
//! A value's header carries its logical expiry and how long it took to
//! compute (format 2). With any control on, Redis keeps the value for the
//! ttl plus the longest window below, so it can still be served or fallen
//! back on after its logical expiry:
//!
//! * **early refresh** (XFetch, Vattani et al., VLDB 2015): a hit recomputes
//!   in the background with probability `exp(-(expiry - now) / (β·δ))`,
//!   δ the stored compute time, so hot keys are refreshed before they expire
//!   and nobody waits for the body;
//! * **stale-while-revalidate**: within the window after the logical expiry,
//!   a hit serves the old value at once and refreshes in the background;
//! * **stale-if-error**: within the window after the logical expiry, a call
//!   whose body fails (an `Err`, or a panic) returns the last good value.
//!
//! Only ttl staleness: an invalidation deletes the key, so an invalidated
//! value is never served.

use std::time::Duration;

use crate::codec::header::Meta;

/// How a memoized call treats values near and past their logical expiry.
/// All off by default.
///
/// ```
/// use std::time::Duration;
/// use cache_core::Freshness;
/// let fresh = Freshness::default()
///     .early_refresh(1.0)
///     .stale_while_revalidate(Duration::from_secs(30))
///     .stale_if_error(Duration::from_secs(600));
/// assert_eq!(fresh.grace(), Duration::from_secs(600));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Freshness {
    /// XFetch's β (1 is the paper's default; larger refreshes earlier);
    /// `None`: no early refresh.
    pub early_refresh: Option<f64>,
    /// Serve a value this long past its logical expiry while one refresh
    /// runs in the background.
    pub stale_while_revalidate: Option<Duration>,
    /// Return a value this long past its logical expiry when the body fails.
    pub stale_if_error: Option<Duration>,
}

impl Freshness {
    /// With early refresh at `beta` (XFetch's β, > 0; 1 is the default).
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.early_refresh = Some(beta);
        self
    }

    /// With a stale-while-revalidate window.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_while_revalidate = Some(window);
        self
    }

    /// With a stale-if-error window.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = Some(window);
        self
    }

    /// Whether every control is off (values are then judged by Redis's
    /// expiry alone).
    pub fn is_off(&self) -> bool {
        self.early_refresh.is_none()
            && self.stale_while_revalidate.is_none()
            && self.stale_if_error.is_none()
    }

    /// How much longer than its ttl a value is kept: the longest window.
    pub fn grace(&self) -> Duration {
        let window = |w: Option<Duration>| w.unwrap_or(Duration::ZERO);
        window(self.stale_while_revalidate).max(window(self.stale_if_error))
    }

    /// What a hit on a value with header `meta` does at `now_ms` (Unix
    /// milliseconds); `coin` is uniform in [0, 1), for XFetch's draw.
    pub(crate) fn judge(&self, meta: &Meta, now_ms: u64, coin: f64) -> Verdict {
        let expiry = meta.expires_at_millis;
        if self.is_off() || expiry == 0 {
            return Verdict::Fresh;
        }
        if now_ms < expiry {
            let refresh = self.early_refresh.is_some_and(|beta| {
                coin < xfetch_probability(expiry - now_ms, meta.compute_millis, beta)
            });
            return if refresh {
                Verdict::RefreshEarly
            } else {
                Verdict::Fresh
            };
        }
        let late = Duration::from_millis(now_ms - expiry);
        if self.stale_while_revalidate.is_some_and(|w| late < w) {
            return Verdict::ServeStale;
        }
        Verdict::Expired {
            fallback: self.stale_if_error.is_some_and(|w| late < w),
        }
    }
}

/// What a hit does with the value it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve it.
    Fresh,
    /// Serve it and refresh it in the background (XFetch drew it).
    RefreshEarly,
    /// Serve it although it expired (stale-while-revalidate) and refresh it
    /// in the background.
    ServeStale,
    /// Treat it as a miss (recompute and replace it); keep it as the
    /// fallback when the body fails if `fallback`.
    Expired { fallback: bool },
}

/// XFetch's probability of recomputing now: `exp(-remaining / (β·δ))`.
/// A value computed in no measurable time is never refreshed early.
pub(crate) fn xfetch_probability(remaining_ms: u64, compute_ms: u32, beta: f64) -> f64 {
    let scale = beta * f64::from(compute_ms);
    if scale <= 0.0 || !scale.is_finite() {
        return 0.0;
    }
    (-(remaining_ms as f64) / scale).exp()
}

/// Now, in Unix milliseconds.
pub(crate) fn now_millis() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(expires_at_millis: u64, compute_millis: u32) -> Meta {
        Meta {
            version_token: 1,
            compute_millis,
            expires_at_millis,
        }
    }

    #[test]
    fn xfetch_follows_the_formula() {
        assert!((xfetch_probability(1_000, 1_000, 1.0) - (-1.0f64).exp()).abs() < 1e-12);
        assert!((xfetch_probability(1_000, 500, 2.0) - (-1.0f64).exp()).abs() < 1e-12);
        assert_eq!(xfetch_probability(0, 100, 1.0), 1.0);
        assert_eq!(xfetch_probability(1_000, 0, 1.0), 0.0);
        assert_eq!(xfetch_probability(1_000, 100, 0.0), 0.0);
    }

    #[test]
    fn verdicts_by_time_and_window() {
        let all = Freshness::default()
            .early_refresh(1.0)
            .stale_while_revalidate(Duration::from_secs(10))
            .stale_if_error(Duration::from_secs(60));
        let m = meta(100_000, 1_000);
        // Far from expiry: fresh whatever the draw but the luckiest.
        assert_eq!(all.judge(&m, 50_000, 0.5), Verdict::Fresh);
        // Close to expiry: the draw decides.
        assert_eq!(all.judge(&m, 99_900, 0.5), Verdict::RefreshEarly);
        assert_eq!(all.judge(&m, 99_900, 0.99), Verdict::Fresh);
        assert_eq!(all.judge(&m, 105_000, 0.0), Verdict::ServeStale);
        assert_eq!(
            all.judge(&m, 130_000, 0.0),
            Verdict::Expired { fallback: true }
        );
        assert_eq!(
            all.judge(&m, 170_000, 0.0),
            Verdict::Expired { fallback: false }
        );
        // Off, or no logical expiry: Redis's expiry decides.
        assert_eq!(Freshness::default().judge(&m, 130_000, 0.0), Verdict::Fresh);
        assert_eq!(all.judge(&meta(0, 1_000), 130_000, 0.0), Verdict::Fresh);
        assert_eq!(all.grace(), Duration::from_secs(60));
    }
}
