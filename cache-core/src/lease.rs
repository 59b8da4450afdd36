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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

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
/// runs: the cache's [`LeaseKeeper`] extends its expiry every half ttl for
/// as long as the key holds it, so a computation longer than the ttl still
/// stores its value, while a holder whose process died stops blocking
/// others after one ttl. Dropped without being [`consumed`](Self::consume)
/// (the call was cancelled, the body panicked, or the value is not to be
/// stored), it deletes the lease if the key still holds it, on the I/O
/// runtime, so that nobody waits for it.
pub(crate) struct LeaseGuard {
    cache: Cache,
    key: Arc<str>,
    lease: Lease,
    held: bool,
    kept: u64,
}

impl LeaseGuard {
    /// Guards `lease`, written into `key` for `ttl`.
    pub(crate) fn new(cache: Cache, key: &str, lease: Lease, ttl: Duration) -> Self {
        let key: Arc<str> = Arc::from(key);
        let kept = cache.inner.keeper.keep(&cache, key.clone(), lease, ttl);
        Self {
            cache,
            key,
            lease,
            held: true,
            kept,
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
        self.cache.inner.keeper.forget(self.kept);
        if !self.held {
            return;
        }
        let (cache, key, lease) = (self.cache.clone(), self.key.clone(), self.lease);
        spawn_detached(async move {
            if let Err(e) = cache.inner.backend.release_lease(&key, &lease).await {
                cache.backend_error("release lease", &e);
            }
        });
    }
}

/// One lease being kept alive.
struct Kept {
    key: Arc<str>,
    lease: Lease,
    ttl: Duration,
    renewed: Instant,
}

/// Keeps a cache's leases alive while their computations run: one task per
/// cache (on the I/O runtime, started with the first lease) renews every
/// lease held longer than half its ttl, so a call in flight holds a map
/// entry, not a task of its own (memory per in-flight call).
#[derive(Default)]
pub(crate) struct LeaseKeeper {
    held: Mutex<HashMap<u64, Kept>>,
    next: AtomicU64,
    started: AtomicBool,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper").finish_non_exhaustive()
    }
}

/// How often the keeper looks at its leases (each is renewed at half its
/// ttl; with the default 10 s ttl, every 5 s).
const KEEPER_TICK: Duration = Duration::from_millis(50);

impl LeaseKeeper {
    fn keep(&self, cache: &Cache, key: Arc<str>, lease: Lease, ttl: Duration) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let kept = Kept {
            key,
            lease,
            ttl,
            renewed: Instant::now(),
        };
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, kept);
        if !self.started.swap(true, Ordering::AcqRel) {
            let inner = Arc::downgrade(&cache.inner);
            spawn_detached(async move { keep_renewing(inner).await });
        }
        id
    }

    fn forget(&self, id: u64) {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

/// The keeper's task: runs while the cache lives.
async fn keep_renewing(inner: Weak<crate::cache::Inner>) {
    loop {
        tokio::time::sleep(KEEPER_TICK).await;
        let Some(inner) = inner.upgrade() else { return };
        let cache = Cache { inner };
        let due: Vec<(u64, Arc<str>, Lease, Duration)> = {
            let held = cache
                .inner
                .keeper
                .held
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            held.iter()
                .filter(|(_, k)| k.renewed.elapsed() >= k.ttl / 2)
                .map(|(id, k)| (*id, k.key.clone(), k.lease, k.ttl))
                .collect()
        };
        for (id, key, lease, ttl) in due {
            let renewed = Box::pin(cache.inner.backend.renew_lease(&key, &lease, ttl)).await;
            let mut held = cache
                .inner
                .keeper
                .held
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match renewed {
                Ok(true) => {
                    if let Some(kept) = held.get_mut(&id) {
                        kept.renewed = Instant::now();
                    }
                }
                // Gone (stored, invalidated, released): nothing to keep.
                Ok(false) => {
                    held.remove(&id);
                }
                // Redis is failing: try again at the next tick.
                Err(_) => {}
            }
        }
    }
}
