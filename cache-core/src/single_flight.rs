//! One leader per key per process; the others wait for its result.
//!
//! Used twice: for computations (the first caller of a missing key
//! computes, the others get its value) and for reads (overlapping lookups
//! of one key share one GET, see [`crate::read_coalescing`]).
//!
//! Results travel as serialized payloads, so values need no `Clone` bound
//! and every caller gets its own decoded copy. When the leader has nothing
//! to share (it was cancelled, or its value is not to be cached, such as an
//! `Err`), the waiters are told so and do the work themselves.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::codec::Payload;

/// What a computing leader hands its followers.
#[derive(Clone, Debug)]
pub(crate) enum Landing {
    /// The value's payload, as stored (uncompressed).
    Value(Payload),
    /// Nothing to share; compute yourself.
    Nothing,
}

/// One flight: its outcome once known, and the waiters' wake-up. (Lighter
/// than a `watch` channel, whose eight-way notifier costs ~450 bytes per
/// flight; this matters with thousands of calls in flight.)
#[derive(Debug)]
pub(crate) struct FlightState<V> {
    /// `None` while in flight; then `Some(Some(result))`, or `Some(None)` if
    /// the leader went away without one.
    outcome: Mutex<Option<Option<V>>>,
    done: Notify,
}

type Flight<V> = Arc<FlightState<V>>;

/// Lock shards, so that flights of different keys rarely contend.
const SHARDS: usize = 16;

/// Slots of the landing marks (see [`SingleFlight::landing_mark`]).
const MARKS: usize = 1024;

#[derive(Debug)]
pub(crate) struct SingleFlight<V> {
    shards: [Mutex<HashMap<Arc<str>, Flight<V>>>; SHARDS],
    /// Bumped when a flight lands, in the slot of its key's hash: a caller
    /// that read the mark before its lookup and finds it changed after
    /// becoming leader knows a flight of (probably) its key landed meanwhile.
    marks: Box<[AtomicU64]>,
    hasher: RandomState,
}

impl<V> Default for SingleFlight<V> {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
            marks: (0..MARKS).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl<V> SingleFlight<V> {
    /// The landing mark of `key`'s slot. Keys share slots, so a change may
    /// be another key's landing: the cost is one extra lookup, never a
    /// wrong value.
    pub(crate) fn landing_mark(&self, key: &str) -> u64 {
        self.marks[self.hasher.hash_one(key) as usize % MARKS].load(Ordering::Acquire)
    }
}

pub(crate) enum Role<'a, V: Clone> {
    Leader(LeaderGuard<'a, V>),
    Follower(Flight<V>),
}

impl<V: Clone> SingleFlight<V> {
    fn shard(&self, key: &str) -> &Mutex<HashMap<Arc<str>, Flight<V>>> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// Joins the flight for `key`, starting it if there is none.
    pub(crate) fn join(&self, key: &str) -> Role<'_, V> {
        let mut flights = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        if let Some(flight) = flights.get(key) {
            return Role::Follower(flight.clone());
        }
        let flight = Arc::new(FlightState {
            outcome: Mutex::new(None),
            done: Notify::new(),
        });
        // One allocation of the key, shared by the map and the guard.
        let key: Arc<str> = Arc::from(key);
        flights.insert(key.clone(), flight.clone());
        Role::Leader(LeaderGuard {
            flights: self,
            key,
            flight,
        })
    }

    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }
}

/// Held by the caller that does the work. Dropping it without
/// [`land`](Self::land) (cancellation, panic) releases the followers.
pub(crate) struct LeaderGuard<'a, V: Clone> {
    flights: &'a SingleFlight<V>,
    key: Arc<str>,
    flight: Flight<V>,
}

impl<V: Clone> LeaderGuard<'_, V> {
    /// Hands `result` to every follower.
    pub(crate) fn land(self, result: V) {
        self.finish(Some(result));
    }

    fn finish(&self, result: Option<V>) {
        if result.is_some() {
            // Before the removal, so whoever joins after it sees the mark.
            let slot = self.flights.hasher.hash_one(&self.key) as usize % MARKS;
            self.flights.marks[slot].fetch_add(1, Ordering::AcqRel);
        }
        // Remove first: a caller arriving after this point starts afresh.
        self.remove();
        let mut outcome = self
            .flight
            .outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if outcome.is_none() {
            *outcome = Some(result);
        }
        drop(outcome);
        self.flight.done.notify_waiters();
    }

    fn remove(&self) {
        let mut flights = self
            .flights
            .shard(&self.key)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Only remove our own flight, never a newer one.
        if flights
            .get(&self.key)
            .is_some_and(|flight| Arc::ptr_eq(flight, &self.flight))
        {
            flights.remove(&self.key);
        }
    }
}

impl<V: Clone> Drop for LeaderGuard<'_, V> {
    fn drop(&mut self) {
        // Releases the followers with "nothing" if no result landed.
        self.finish(None);
    }
}

/// Waits for the leader; `None` if it went away without a result.
pub(crate) async fn wait<V: Clone>(flight: Flight<V>) -> Option<V> {
    loop {
        // Register before checking, so a landing in between is not missed.
        let notified = flight.done.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(outcome) = &*flight.outcome.lock().unwrap_or_else(|p| p.into_inner()) {
            return outcome.clone();
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_result() {
        let sf = SingleFlight::<String>::default();
        let Role::Leader(leader) = sf.join("k") else {
            panic!("first caller must lead")
        };
        let Role::Follower(f1) = sf.join("k") else {
            panic!("second caller must follow")
        };
        let waiter = tokio::spawn(wait(f1));
        leader.land("v".to_string());
        assert_eq!(waiter.await.unwrap().as_deref(), Some("v"));
        assert_eq!(sf.in_flight(), 0);
        assert!(matches!(sf.join("k"), Role::Leader(_)));
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_followers() {
        let sf = SingleFlight::<String>::default();
        let leader = sf.join("k");
        let Role::Follower(f) = sf.join("k") else {
            panic!()
        };
        drop(leader);
        assert_eq!(wait(f).await, None);
        assert_eq!(sf.in_flight(), 0);
    }

    #[test]
    fn landings_carry_payloads() {
        let codec = crate::Codec::default();
        let payload = codec.open(codec.encode("v").unwrap()).unwrap();
        let sf = SingleFlight::<Landing>::default();
        let Role::Leader(leader) = sf.join("k") else {
            panic!()
        };
        let Role::Follower(f) = sf.join("k") else {
            panic!()
        };
        leader.land(Landing::Value(payload));
        match futures::executor::block_on(wait(f)) {
            Some(Landing::Value(p)) => assert_eq!(codec.deserialize::<String>(&p).unwrap(), "v"),
            other => panic!("expected the value, got {other:?}"),
        }
    }
}
