//! One computation per key per process: the first caller of a missing key
//! computes, later callers of the same key wait for its encoded result.
//!
//! The result travels as the encoded entry, so values need no `Clone` bound
//! and every caller gets its own decoded copy. When the leader has nothing to
//! share (it was cancelled, or its value is not to be cached, such as an
//! `Err`), the waiters compute for themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// What a leader hands its followers.
#[derive(Clone, Debug)]
pub(crate) enum Landing {
    /// The encoded entry, as stored.
    Entry(Arc<[u8]>),
    /// Nothing to share; compute yourself.
    Nothing,
}

type Flight = watch::Receiver<Option<Landing>>;

#[derive(Debug, Default)]
pub(crate) struct SingleFlight {
    flights: Mutex<HashMap<String, Flight>>,
}

pub(crate) enum Role<'a> {
    Leader(LeaderGuard<'a>),
    Follower(Flight),
}

impl SingleFlight {
    /// Joins the flight for `key`, starting it if there is none.
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(flight) = flights.get(key) {
            return Role::Follower(flight.clone());
        }
        let (tx, rx) = watch::channel(None);
        flights.insert(key.to_owned(), rx);
        Role::Leader(LeaderGuard {
            flights: self,
            key: key.to_owned(),
            tx,
        })
    }

    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.flights.lock().unwrap().len()
    }
}

/// Held by the caller that computes. Dropping it without [`land`](Self::land)
/// (cancellation, panic) releases the followers to compute themselves.
pub(crate) struct LeaderGuard<'a> {
    flights: &'a SingleFlight,
    key: String,
    tx: watch::Sender<Option<Landing>>,
}

impl LeaderGuard<'_> {
    pub(crate) fn land(self, landing: Landing) {
        // Remove first: a caller arriving after this point reads the store.
        self.remove();
        self.tx.send_replace(Some(landing));
    }

    fn remove(&self) {
        let mut flights = self
            .flights
            .flights
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Only remove our own flight (same channel), never a newer one.
        if flights
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            flights.remove(&self.key);
        }
    }
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        self.remove();
        // Dropping `tx` wakes the followers with "closed" if nothing landed.
    }
}

/// Waits for the leader; `Landing::Nothing` if it went away without a result.
pub(crate) async fn wait(mut flight: Flight) -> Landing {
    match flight.wait_for(Option::is_some).await {
        Ok(landing) => landing.clone().unwrap_or(Landing::Nothing),
        Err(_) => Landing::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_entry() {
        let sf = SingleFlight::default();
        let Role::Leader(leader) = sf.join("k") else {
            panic!("first caller must lead")
        };
        let Role::Follower(f1) = sf.join("k") else {
            panic!("second caller must follow")
        };
        let waiter = tokio::spawn(wait(f1));
        leader.land(Landing::Entry(Arc::from(&b"v"[..])));
        match waiter.await.unwrap() {
            Landing::Entry(e) => assert_eq!(&*e, b"v"),
            Landing::Nothing => panic!("expected the entry"),
        }
        assert_eq!(sf.in_flight(), 0);
        assert!(matches!(sf.join("k"), Role::Leader(_)));
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_followers() {
        let sf = SingleFlight::default();
        let leader = sf.join("k");
        let Role::Follower(f) = sf.join("k") else {
            panic!()
        };
        drop(leader);
        assert!(matches!(wait(f).await, Landing::Nothing));
        assert_eq!(sf.in_flight(), 0);
    }
}
