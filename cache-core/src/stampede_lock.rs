//! The optional cross-process stampede lock.
//!
//! With the lock on, the caller that misses a key takes `{key}:lock` with
//! `SET NX PX` and a random token, computes, stores and releases the lock
//! with a compare-and-delete script (never deleting a lock that expired and
//! was taken by someone else). Other processes that miss meanwhile poll for
//! the value instead of computing. When the holder dies, its lock expires
//! after `ttl`, and a waiter takes it over: so a dead holder delays the
//! others by at most `ttl` plus one poll interval. A waiter that has waited
//! `max_wait` in total computes by itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Settings of the cross-process stampede lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockSettings {
    /// Whether memoized calls take the lock by default (default `false`; the
    /// attribute's `lock = true` turns it on per function).
    pub enabled: bool,
    /// Expiry of a lock, the longest a dead holder blocks others (default 10 s).
    /// Make it longer than the computation takes.
    pub ttl: Duration,
    /// The longest a caller waits for another process's value before
    /// computing itself (default 10 s).
    pub max_wait: Duration,
    /// Time between two polls of a waiting caller (default 20 ms).
    pub poll_interval: Duration,
}

impl Default for LockSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            ttl: Duration::from_secs(10),
            max_wait: Duration::from_secs(10),
            poll_interval: Duration::from_millis(20),
        }
    }
}

/// The lock key of a full key. Its extra suffix keeps it out of the
/// function's entries (`invalidate_all` leaves it to expire).
pub(crate) fn lock_key(full_key: &str) -> String {
    format!("{full_key}:lock")
}

/// A token no other holder has: process id, time and a counter.
pub(crate) fn new_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
