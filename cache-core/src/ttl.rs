//! Which ttls mean "no expiry".
//!
//! Redis refuses a `SET … PX ms` whose expiry time (now + ms, in
//! milliseconds since 1970) does not fit an i64 ("invalid expire time"), so
//! `Duration::MAX` would never be stored and every call would count an error.
//! A ttl longer than [`MAX_TTL`] is therefore stored without expiry, on every
//! backend alike.

use std::time::Duration;

/// The longest ttl that expires: `i64::MAX / 2` milliseconds, about 146
/// million years. Redis accepts every ttl up to this (now + it fits an i64
/// of milliseconds for the next 146 million years); a longer one (such as
/// `Duration::MAX`) means no expiry.
pub const MAX_TTL: Duration = Duration::from_millis(i64::MAX as u64 / 2);

/// `ttl`, with a ttl beyond [`MAX_TTL`] turned into no expiry.
pub(crate) fn expiring(ttl: Option<Duration>) -> Option<Duration> {
    ttl.filter(|ttl| *ttl <= MAX_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_redis_cannot_hold_mean_no_expiry() {
        assert_eq!(expiring(Some(Duration::MAX)), None);
        assert_eq!(expiring(Some(MAX_TTL + Duration::from_millis(1))), None);
        assert_eq!(expiring(Some(MAX_TTL)), Some(MAX_TTL));
        assert_eq!(
            expiring(Some(Duration::from_secs(60))),
            Some(Duration::from_secs(60))
        );
        assert_eq!(expiring(None), None);
    }
}
