//! One circuit breaker per Redis node, so that a hung Cluster master costs
//! the keys of its hash slots and nothing else.
//!
//! With one breaker for a whole cluster, the timeouts of one stopped master
//! (a third of the keys) opened it for every key: measured with 32 tasks on
//! 3 masters, the healthy masters' keys fell from 100 % hits to 2.6 % while
//! one master was SIGSTOPped. Here each command is charged to the breaker
//! of the master that owns its key's slot, read from a slot map that is
//! refreshed from `CLUSTER SLOTS` at most once a second while commands run
//! (a failover or a slot move changes the owner: the new one gets a fresh,
//! closed breaker). Commands without a key (`PING`, `CLUSTER NODES`) and
//! commands whose slot's owner is not known yet use the backend-wide breaker,
//! which is the only one a single server has.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::circuit_breaker::{BreakerSettings, BreakerState, CircuitBreaker};

/// Hash slots of a Redis Cluster.
pub(crate) const SLOTS: usize = 16384;
/// How often the slot map is read again while commands run.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// An index into [`SlotOwners::nodes`] meaning "owner unknown".
const UNKNOWN: u16 = u16::MAX;

/// Where a command goes, for choosing its breaker.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Route<'a> {
    /// The node that owns this key's slot.
    Key(&'a str),
    /// The node that owns this slot.
    Slot(u16),
    /// This node (`host:port`).
    Node(&'a str),
    /// Any node: the backend-wide breaker.
    Any,
}

/// A slot range and the address (`host:port`) of its master, as `CLUSTER
/// SLOTS` lists them.
pub(crate) type SlotRange = (u16, u16, String);

struct SlotOwners {
    /// Per slot, an index into `nodes`, or [`UNKNOWN`].
    owner: Box<[u16]>,
    nodes: Vec<(String, Arc<CircuitBreaker>)>,
}

/// The breakers of a backend: one for everything (a single server), plus
/// one per master for a cluster.
pub(crate) struct NodeBreakers {
    settings: BreakerSettings,
    any: CircuitBreaker,
    /// `None` for a single server.
    owners: Option<ArcSwap<SlotOwners>>,
    /// When the slot map was last asked for (ms since `started`), 0 never.
    asked_at_millis: AtomicU64,
    started: Instant,
    /// Openings counted by breakers of nodes that left the slot map.
    retired_openings: AtomicU64,
}

impl std::fmt::Debug for NodeBreakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (state, openings) = self.summary();
        f.debug_struct("NodeBreakers")
            .field("state", &state)
            .field("openings", &openings)
            .finish_non_exhaustive()
    }
}

/// The breaker a command uses: borrowed from the backend-wide one or from
/// the slot map current when the command started.
pub(crate) enum BreakerRef<'a> {
    Any(&'a CircuitBreaker),
    Node(Arc<CircuitBreaker>),
}

impl std::ops::Deref for BreakerRef<'_> {
    type Target = CircuitBreaker;

    fn deref(&self) -> &CircuitBreaker {
        match self {
            BreakerRef::Any(b) => b,
            BreakerRef::Node(b) => b,
        }
    }
}

impl NodeBreakers {
    /// One breaker for a single server.
    pub(crate) fn single(settings: BreakerSettings) -> Self {
        Self::new(settings, None)
    }

    /// Per-master breakers for a cluster, once its slot map is known.
    pub(crate) fn cluster(settings: BreakerSettings) -> Self {
        let owners = SlotOwners {
            owner: vec![UNKNOWN; SLOTS].into_boxed_slice(),
            nodes: Vec::new(),
        };
        Self::new(settings, Some(ArcSwap::from_pointee(owners)))
    }

    fn new(settings: BreakerSettings, owners: Option<ArcSwap<SlotOwners>>) -> Self {
        Self {
            settings,
            any: CircuitBreaker::new(settings),
            owners,
            asked_at_millis: AtomicU64::new(0),
            started: Instant::now(),
            retired_openings: AtomicU64::new(0),
        }
    }

    /// The breaker of the node `route` leads to.
    pub(crate) fn for_route(&self, route: Route<'_>) -> BreakerRef<'_> {
        let Some(owners) = &self.owners else {
            return BreakerRef::Any(&self.any);
        };
        let owners = owners.load();
        let index = match route {
            Route::Key(key) => owners.owner[usize::from(super::hash_slot::hash_slot(key))],
            Route::Slot(slot) => owners.owner[usize::from(slot) % SLOTS],
            Route::Node(address) => owners
                .nodes
                .iter()
                .position(|(a, _)| a == address)
                .map_or(UNKNOWN, |i| i as u16),
            Route::Any => UNKNOWN,
        };
        match owners.nodes.get(usize::from(index)) {
            Some((_, breaker)) => BreakerRef::Node(breaker.clone()),
            None => BreakerRef::Any(&self.any),
        }
    }

    /// Whether the caller should read the slot map now and hand it to
    /// [`refreshed`](Self::refreshed): for a cluster, one caller per
    /// [`REFRESH_EVERY`] gets `true` (a refresh that fails or is dropped
    /// is simply tried again a period later, so no flag can stay stuck).
    pub(crate) fn claim_refresh(&self) -> bool {
        if self.owners.is_none() {
            return false;
        }
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let asked = self.asked_at_millis.load(Ordering::Relaxed);
        if asked != 0 && now < asked + REFRESH_EVERY.as_millis() as u64 {
            return false;
        }
        self.asked_at_millis
            .compare_exchange(asked, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Installs a new slot map (`None`: reading it failed; the old one stays
    /// and the next claim after [`REFRESH_EVERY`] tries again). A node keeps
    /// its breaker across refreshes; a new owner starts closed.
    pub(crate) fn refreshed(&self, ranges: Option<Vec<SlotRange>>) {
        if let (Some(owners), Some(ranges)) = (&self.owners, ranges) {
            if ranges.is_empty() {
                return;
            }
            let old = owners.load();
            let mut known: HashMap<&str, &Arc<CircuitBreaker>> =
                old.nodes.iter().map(|(a, b)| (a.as_str(), b)).collect();
            let mut nodes: Vec<(String, Arc<CircuitBreaker>)> = Vec::new();
            let mut owner = vec![UNKNOWN; SLOTS].into_boxed_slice();
            for (start, end, address) in ranges {
                let index = match nodes.iter().position(|(a, _)| *a == address) {
                    Some(i) => i,
                    None => {
                        let breaker = known
                            .remove(address.as_str())
                            .cloned()
                            .unwrap_or_else(|| Arc::new(CircuitBreaker::new(self.settings)));
                        nodes.push((address, breaker));
                        nodes.len() - 1
                    }
                };
                let (start, end) = (usize::from(start), usize::from(end).min(SLOTS - 1));
                if start <= end {
                    owner[start..=end].fill(index as u16);
                }
            }
            let retired: u64 = known.values().map(|b| b.times_opened()).sum();
            self.retired_openings.fetch_add(retired, Ordering::Relaxed);
            owners.store(Arc::new(SlotOwners { owner, nodes }));
        }
    }

    /// The masters with a closed breaker, then the others (`host`, `port`):
    /// the order in which to ask for the slot map.
    pub(crate) fn nodes_to_ask(&self) -> Vec<(String, u16)> {
        let Some(owners) = &self.owners else {
            return Vec::new();
        };
        let owners = owners.load();
        let mut nodes: Vec<(bool, String, u16)> = owners
            .nodes
            .iter()
            .filter_map(|(address, breaker)| {
                let (host, port) = address.rsplit_once(':')?;
                let closed = breaker.state() == BreakerState::Closed;
                Some((!closed, host.to_owned(), port.parse().ok()?))
            })
            .collect();
        nodes.sort_by_key(|(open, _, _)| *open);
        nodes.into_iter().map(|(_, h, p)| (h, p)).collect()
    }

    /// The worst state of any breaker, and how many times they opened.
    pub(crate) fn summary(&self) -> (BreakerState, u64) {
        let mut state = self.any.state();
        let mut openings = self.any.times_opened() + self.retired_openings.load(Ordering::Relaxed);
        if let Some(owners) = &self.owners {
            for (_, breaker) in &owners.load().nodes {
                openings += breaker.times_opened();
                state = worse(state, breaker.state());
            }
        }
        (state, openings)
    }
}

fn worse(a: BreakerState, b: BreakerState) -> BreakerState {
    let rank = |s| match s {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            failure_threshold: 2,
            ..BreakerSettings::default()
        }
    }

    #[test]
    fn a_failing_master_opens_only_its_own_breaker() {
        let breakers = NodeBreakers::cluster(settings());
        // Unknown owners share the backend-wide breaker.
        assert!(matches!(
            breakers.for_route(Route::Slot(5)),
            BreakerRef::Any(_)
        ));
        assert!(breakers.claim_refresh());
        assert!(!breakers.claim_refresh(), "one refresh per period");
        breakers.refreshed(Some(vec![
            (0, 8191, "127.0.0.1:7000".into()),
            (8192, 16383, "127.0.0.1:7001".into()),
        ]));
        for _ in 0..2 {
            breakers.for_route(Route::Slot(100)).permit().failure();
        }
        assert_eq!(
            breakers.for_route(Route::Slot(100)).state(),
            BreakerState::Open
        );
        assert_eq!(
            breakers.for_route(Route::Slot(9000)).state(),
            BreakerState::Closed
        );
        assert_eq!(
            breakers.for_route(Route::Node("127.0.0.1:7000")).state(),
            BreakerState::Open
        );
        assert_eq!(breakers.summary(), (BreakerState::Open, 1));
        assert_eq!(
            breakers.nodes_to_ask(),
            vec![("127.0.0.1".into(), 7001), ("127.0.0.1".into(), 7000)],
            "healthy masters are asked first"
        );
        // A refresh keeps a node's breaker; a new owner (a promoted
        // replica) starts closed.
        breakers.refreshed(Some(vec![
            (0, 99, "127.0.0.1:7002".into()),
            (100, 8191, "127.0.0.1:7000".into()),
            (8192, 16383, "127.0.0.1:7001".into()),
        ]));
        assert_eq!(
            breakers.for_route(Route::Slot(100)).state(),
            BreakerState::Open
        );
        assert_eq!(
            breakers.for_route(Route::Slot(50)).state(),
            BreakerState::Closed
        );
    }

    #[test]
    fn a_single_server_has_one_breaker() {
        let breakers = NodeBreakers::single(settings());
        assert!(!breakers.claim_refresh());
        for _ in 0..2 {
            breakers.for_route(Route::Key("a")).permit().failure();
        }
        assert_eq!(
            breakers.for_route(Route::Key("b")).state(),
            BreakerState::Open
        );
    }
}
