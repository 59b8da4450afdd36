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
//!
//! Requests sent from the crate's I/O runtime (those of plain memoized
//! functions, see [`crate::blocking`]) use a set of connections of their
//! own, made on that runtime: a connection's driver task lives on the
//! runtime that made it, and a plain call that blocks the thread of the
//! caller's runtime (all of a `current_thread` runtime) must not wait for a
//! connection driven there. Async callers keep connections driven by their
//! own runtime: a request then needs no hop to another thread.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::{Pool, PoolError};

use super::node_breakers::SlotRange;

/// A deadpool pool whose objects are multiplexed connections that can be
/// cloned and shared: a single Redis ([`Pool`] of `MultiplexedConnection`s)
/// or a Redis Cluster (see `super::cluster`).
pub(crate) trait LeasePool: Clone + Send + Sync + 'static {
    /// The shared connection handed to each request.
    type Conn: Clone + Send + Sync;
    /// The pool object a slot holds while it leases its connection.
    type Object: Send;
    /// Checks an object out of the pool (creating or recycling a connection).
    fn checkout(&self) -> impl Future<Output = Result<Self::Object, PoolError>> + Send;
    /// The object's connection.
    fn connection(object: &Self::Object) -> Self::Conn;
    /// Removes a broken object from the pool for good.
    fn detach(object: Self::Object);
    /// A cluster's slot ranges and their masters, asked of `nodes` in turn
    /// (any node when empty); `None` for a single server or when no node
    /// answered.
    fn slot_ranges(
        conn: Self::Conn,
        nodes: Vec<(String, u16)>,
    ) -> impl Future<Output = Option<Vec<SlotRange>>> + Send + 'static;
}

impl LeasePool for Pool {
    type Conn = MultiplexedConnection;
    type Object = deadpool_redis::Connection;

    fn checkout(&self) -> impl Future<Output = Result<Self::Object, PoolError>> + Send {
        self.get()
    }

    fn connection(object: &Self::Object) -> MultiplexedConnection {
        (**object).clone()
    }

    fn detach(object: Self::Object) {
        drop(deadpool_redis::Connection::take(object));
    }

    fn slot_ranges(
        _: MultiplexedConnection,
        _: Vec<(String, u16)>,
    ) -> impl Future<Output = Option<Vec<SlotRange>>> + Send + 'static {
        std::future::ready(None)
    }
}

/// How long a slot keeps one pool object before returning it, so that
/// deadpool's recycle check (`PING`) runs now and then.
const LEASE_RENEW_AFTER: Duration = Duration::from_secs(30);

struct Lease<P: LeasePool> {
    conn: P::Conn,
    /// Taken out when the lease is discarded (the connection broke).
    object: std::sync::Mutex<Option<P::Object>>,
    generation: u64,
    leased_at: Instant,
}

struct Slot<P: LeasePool> {
    /// Read on every request: lock-free, so concurrent requests on two cores
    /// do not bounce a lock's cache line.
    lease: ArcSwapOption<Lease<P>>,
    renewing: tokio::sync::Mutex<()>,
}

/// A handle on one leased connection; report failures through
/// [`SharedConnection::discard`] with it.
pub(crate) struct Leased<C> {
    pub(crate) conn: C,
    slot: usize,
    generation: u64,
}

pub(crate) struct SharedConnection<P: LeasePool = Pool> {
    pool: P,
    /// The slots of callers' runtimes, then as many for the I/O runtime.
    slots: Vec<Slot<P>>,
    next_slot: AtomicUsize,
    generations: AtomicU64,
}

impl<P: LeasePool> SharedConnection<P> {
    /// `connections` shared connections for ordinary requests, plus one
    /// bulk lane for large writes (see [`bulk_slot`](Self::bulk_slot)).
    pub(crate) fn new(pool: P, connections: usize) -> Self {
        let slots = (0..2 * (connections.max(1) + 1))
            .map(|_| Slot {
                lease: ArcSwapOption::empty(),
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

    /// The pool connections come from.
    pub(crate) fn pool(&self) -> &P {
        &self.pool
    }

    /// Slots per set (the ordinary ones and the bulk lane).
    fn per_set(&self) -> usize {
        self.slots.len() / 2
    }

    /// The first slot of the set the calling thread uses.
    fn set_start(&self) -> usize {
        if crate::blocking::on_io_runtime() {
            self.per_set()
        } else {
            0
        }
    }

    /// The slot the next ordinary request goes to (round robin).
    pub(crate) fn pick_slot(&self) -> usize {
        let ordinary = self.per_set() - 1;
        let start = self.set_start();
        if ordinary == 1 {
            start
        } else {
            start + self.next_slot.fetch_add(1, Ordering::Relaxed) % ordinary
        }
    }

    /// The slot of the bulk lane: a connection of its own for large writes,
    /// so that small requests never queue behind hundreds of kilobytes on
    /// one multiplexed connection (head-of-line blocking).
    pub(crate) fn bulk_slot(&self) -> usize {
        self.set_start() + self.per_set() - 1
    }

    /// The slot's connection, if it has a fresh one (the fast path).
    pub(crate) fn current(&self, slot_index: usize) -> Option<Leased<P::Conn>> {
        let guard = self.slots[slot_index].lease.load();
        guard
            .as_ref()
            .filter(|lease| lease.leased_at.elapsed() < LEASE_RENEW_AFTER)
            .map(|lease| Leased {
                conn: lease.conn.clone(),
                slot: slot_index,
                generation: lease.generation,
            })
    }

    /// Leases a new connection for the slot (the slow path): waits for the
    /// pool, which creates and health-checks connections.
    pub(crate) async fn renew(&self, slot_index: usize) -> Result<Leased<P::Conn>, PoolError> {
        let slot = &self.slots[slot_index];
        // One renewal per slot at a time; the others wait and take its result.
        let _renewing = slot.renewing.lock().await;
        if let Some(leased) = self.current(slot_index) {
            return Ok(leased);
        }
        // Return the old object first, so the pool recycles (PINGs) it and
        // may hand it straight back.
        drop(self.slots[slot_index].lease.swap(None));
        // Made on the runtime that asks (a slot of the I/O runtime's set is
        // only renewed from it): its driver task lives there.
        let object = self.pool.checkout().await?;
        let conn = P::connection(&object);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let leased = Leased {
            conn: conn.clone(),
            slot: slot_index,
            generation,
        };
        slot.lease.store(Some(Arc::new(Lease {
            conn,
            object: std::sync::Mutex::new(Some(object)),
            generation,
            leased_at: Instant::now(),
        })));
        Ok(leased)
    }

    /// Drops the connection `leased` came from (if it is still the slot's),
    /// removing it from the pool: it broke, and the next request must not
    /// reuse it.
    pub(crate) fn discard(&self, leased: &Leased<P::Conn>) {
        let slot = &self.slots[leased.slot];
        let current = slot.lease.load_full();
        let Some(lease) = current.filter(|l| l.generation == leased.generation) else {
            return;
        };
        // Only the caller whose swap removes this very lease detaches it.
        let previous = slot.lease.compare_and_swap(&Some(lease.clone()), None);
        if previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, &lease)) {
            let object = lease
                .object
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(object) = object {
                // Detach from the pool so deadpool creates a new connection.
                P::detach(object);
            }
        }
    }
}
