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

#[derive(Debug)]
pub(crate) struct SingleFlight<V> {
    shards: [Mutex<HashMap<Arc<str>, Flight<V>>>; SHARDS],
    hasher: RandomState,
}

impl<V> Default for SingleFlight<V> {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
            hasher: RandomState::new(),
        }
    }
}

pub(crate) enum Role<'a, V: Clone> {
    Leader(LeaderGuard<'a, V>),
    Follower(Flight<V>),
}

impl<V: Clone> SingleFlight<V> {
    fn shard_of(&self, key: &str) -> usize {
        self.hasher.hash_one(key) as usize % SHARDS
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<Arc<str>, Flight<V>>> {
        &self.shards[self.shard_of(key)]
    }

    /// Joins the flight for `key`, starting it if there is none.
    pub(crate) fn join(&self, key: &str) -> Role<'_, V> {
        let shard = self.shard_of(key);
        let mut flights = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
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
            shard,
            key,
            flight,
            removed: std::cell::Cell::new(false),
        })
    }

    /// Detaches the flight of `key`, if any: callers from now on start a
    /// new one, and its leader still lands for the followers it has (they
    /// joined before the invalidation that detaches it).
    pub(crate) fn detach(&self, key: &str) {
        self.shard(key)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Detaches every flight (see [`detach`](Self::detach)).
    pub(crate) fn detach_all(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    #[cfg(test)]
    fn is_in_flight(&self, key: &str) -> bool {
        self.shard(key)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
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
    /// The index of the key's shard (hashed once, in `join`).
    shard: usize,
    key: Arc<str>,
    flight: Flight<V>,
    /// Whether the flight left the map (landing, then drop, both finish).
    removed: std::cell::Cell<bool>,
}

impl<V: Clone> LeaderGuard<'_, V> {
    /// Hands `result` to every follower.
    pub(crate) fn land(self, result: V) {
        self.finish(|| Some(result));
    }

    /// Hands a copy of `result` to every follower; with none (the common
    /// case for reads of keys spread wide), copies nothing.
    pub(crate) fn land_copy(self, result: &V) {
        self.finish(|| Some(result.clone()));
    }

    fn finish(&self, result: impl FnOnce() -> Option<V>) {
        // Remove first: a caller arriving after this point starts afresh.
        self.remove();
        // No follower joined (only this guard holds the flight now), and
        // none can: the map no longer has it. Nothing to hand over.
        if Arc::strong_count(&self.flight) == 1 {
            return;
        }
        let result = result();
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
        if self.removed.replace(true) {
            return;
        }
        let mut flights = self.flights.shards[self.shard]
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
        self.finish(|| None);
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

    #[tokio::test]
    async fn a_detached_flight_takes_no_new_followers_but_lands_for_its_own() {
        let sf = SingleFlight::<String>::default();
        let Role::Leader(old) = sf.join("k") else {
            panic!("first caller must lead")
        };
        let Role::Follower(early) = sf.join("k") else {
            panic!("second caller must follow")
        };
        sf.detach("k");
        let Role::Leader(new) = sf.join("k") else {
            panic!("a caller after the detach must lead a new flight")
        };
        old.land("old".to_string());
        assert_eq!(wait(early).await.as_deref(), Some("old"));
        // The old leader's landing left the new flight in place.
        assert!(sf.is_in_flight("k"));
        new.land("new".to_string());
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
