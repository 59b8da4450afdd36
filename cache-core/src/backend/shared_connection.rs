//! Multiplexed connections leased from a deadpool-redis pool.
//!
//! Taking a pooled connection exclusively per request serializes requests per
//! connection and makes deadpool-redis send `UNWATCH` + `PING` on every
//! checkout: about 92k hits/s with 4 connections on the reference machine,
//! against about 849k/s for one shared `MultiplexedConnection`, which
//! pipelines concurrent requests by itself. So each slot here holds one pool
//! object for a while and hands out clones of its multiplexed connection;
//! deadpool-redis still creates connections (with the connect timeout),
//! health-checks them (the recycle `PING` when a lease is renewed every
//! `LEASE_RENEW_AFTER`), and replaces them: a lease whose connection broke is
//! detached from the pool, and the next request checks out a fresh one.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::{Pool, PoolError};

/// How long a slot keeps one pool object before returning it, so that
/// deadpool's recycle check (`PING`) runs now and then.
const LEASE_RENEW_AFTER: Duration = Duration::from_secs(30);

struct Lease {
    conn: MultiplexedConnection,
    object: deadpool_redis::Connection,
    generation: u64,
    leased_at: Instant,
}

struct Slot {
    lease: RwLock<Option<Lease>>,
    renewing: tokio::sync::Mutex<()>,
}

/// A handle on one leased connection; report failures through
/// [`SharedConnection::discard`] with it.
pub(crate) struct Leased {
    pub(crate) conn: MultiplexedConnection,
    slot: usize,
    generation: u64,
}

pub(crate) struct SharedConnection {
    pool: Pool,
    slots: Vec<Slot>,
    next_slot: AtomicUsize,
    generations: AtomicU64,
}

impl SharedConnection {
    pub(crate) fn new(pool: Pool, connections: usize) -> Self {
        let slots = (0..connections.max(1))
            .map(|_| Slot {
                lease: RwLock::new(None),
                renewing: tokio::sync::Mutex::new(()),
            })
            .collect();
        Self {
            pool,
            slots,
            next_slot: AtomicUsize::new(0),
            generations: AtomicU64::new(1),
        }
    }

    /// A connection to send one request on.
    pub(crate) async fn get(&self) -> Result<Leased, PoolError> {
        let slot_index = if self.slots.len() == 1 {
            0
        } else {
            self.next_slot.fetch_add(1, Ordering::Relaxed) % self.slots.len()
        };
        if let Some(leased) = self.current(slot_index) {
            return Ok(leased);
        }
        self.renew(slot_index).await
    }

    fn current(&self, slot_index: usize) -> Option<Leased> {
        let guard = self.slots[slot_index]
            .lease
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard
            .as_ref()
            .filter(|lease| lease.leased_at.elapsed() < LEASE_RENEW_AFTER)
            .map(|lease| Leased {
                conn: lease.conn.clone(),
                slot: slot_index,
                generation: lease.generation,
            })
    }

    async fn renew(&self, slot_index: usize) -> Result<Leased, PoolError> {
        let slot = &self.slots[slot_index];
        // One renewal per slot at a time; the others wait and take its result.
        let _renewing = slot.renewing.lock().await;
        if let Some(leased) = self.current(slot_index) {
            return Ok(leased);
        }
        // Return the old object first, so the pool recycles (PINGs) it and
        // may hand it straight back.
        let old = self.take_lease(slot_index);
        drop(old);
        let object = self.pool.get().await?;
        let conn = (*object).clone();
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let leased = Leased {
            conn: conn.clone(),
            slot: slot_index,
            generation,
        };
        *slot.lease.write().unwrap_or_else(|p| p.into_inner()) = Some(Lease {
            conn,
            object,
            generation,
            leased_at: Instant::now(),
        });
        Ok(leased)
    }

    fn take_lease(&self, slot_index: usize) -> Option<Lease> {
        self.slots[slot_index]
            .lease
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Drops the connection `leased` came from (if it is still the slot's),
    /// removing it from the pool: it broke, and the next request must not
    /// reuse it.
    pub(crate) fn discard(&self, leased: &Leased) {
        let mut guard = self.slots[leased.slot]
            .lease
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().map(|l| l.generation) == Some(leased.generation) {
            if let Some(lease) = guard.take() {
                // Detach from the pool so deadpool creates a new connection.
                drop(deadpool_redis::Connection::take(lease.object));
            }
        }
    }
}
