//! The lease in the key (Facebook memcache's leases, NSDI 2013), and the
//! stampede lock built on it.
//!
//! On a miss, the computing caller writes a [`Lease`] into the key itself
//! (`SET key <lease> NX PX ttl`), computes, and stores its value with a
//! compare-and-set on the lease. An invalidation is a plain `DEL`, which
//! kills the lease, so a value computed from data older than the
//! invalidation is never stored, in this process or any other. A caller
//! that finds someone else's lease either computes without storing, or,
//! with the stampede lock on, waits for the holder's value (polling) and
//! takes the lease over when it disappears. A cancelled or panicking
//! holder releases its lease at once ([`LeaseGuard`]); a holder that dies
//! with its process leaves it to expire after `ttl`.

use std::time::Duration;

use crate::blocking::spawn_detached;
use crate::cache::Cache;
use crate::codec::header::Lease;

/// Settings of the cross-process stampede lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockSettings {
    /// Whether memoized calls take the lock by default (default `false`; the
    /// attribute's `lock = true` turns it on per function).
    pub enabled: bool,
    /// Expiry of a lease, the longest a holder whose process died blocks
    /// the waiters of the lock (default 10 s). Make it longer than the
    /// computation takes: a value computed after its lease expired is not
    /// stored.
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

/// A lease this caller holds in `key`, kept alive while the computation
/// runs: a keeper task on the I/O runtime extends its expiry every half
/// ttl for as long as the key holds it, so a computation longer than the
/// ttl still stores its value, while a holder whose process died stops
/// blocking others after one ttl. Dropped without being
/// [`consumed`](Self::consume) (the call was cancelled, the body panicked,
/// or the value is not to be stored), it deletes the lease if the key still
/// holds it, on the I/O runtime, so that nobody waits for it.
pub(crate) struct LeaseGuard {
    cache: Cache,
    key: String,
    lease: Lease,
    held: bool,
    keeper: tokio::task::AbortHandle,
}

impl LeaseGuard {
    /// Guards `lease`, written into `key` for `ttl`.
    pub(crate) fn new(cache: Cache, key: &str, lease: Lease, ttl: Duration) -> Self {
        let keeper = {
            let (cache, key) = (cache.clone(), key.to_owned());
            spawn_detached(async move {
                loop {
                    tokio::time::sleep(ttl / 2).await;
                    match cache.inner.backend.renew_lease(&key, &lease, ttl).await {
                        Ok(true) => {}
                        // Gone (stored, invalidated, released) or Redis is
                        // failing: nothing left to keep.
                        _ => return,
                    }
                }
            })
        };
        Self {
            cache,
            key: key.to_owned(),
            lease,
            held: true,
            keeper,
        }
    }

    pub(crate) fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The lease was used up by a store (or is known to be gone).
    pub(crate) fn consume(mut self) {
        self.held = false;
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.keeper.abort();
        if !self.held {
            return;
        }
        let (cache, key, lease) = (
            self.cache.clone(),
            std::mem::take(&mut self.key),
            self.lease,
        );
        spawn_detached(async move {
            if let Err(e) = cache.inner.backend.release_lease(&key, &lease).await {
                cache.backend_error("release lease", &e);
            }
        });
    }
}
