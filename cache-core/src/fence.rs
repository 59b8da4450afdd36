//! The invalidation fence of one cache in this process.
//!
//! Striped generation counters plus one epoch. A computation or read takes a
//! [`Ticket`] before it starts; an invalidation of a key (`delete`, `set`,
//! `refresh`) advances the key's stripe, and a delete of many keys (a prefix,
//! a whole function) advances the epoch. A value is stored or shared with
//! later callers only while its ticket is still [`current`](Fence::current);
//! otherwise it goes back to its own caller and nowhere else. Keys share
//! stripes, so an invalidation of one can cost another a spurious miss, never
//! a stale value. (`../shared/COHERENCE.md` §1; the lease in the key does
//! the same across processes.)

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Stripes of generation counters: 4,096 × 8 bytes per cache.
const STRIPES: usize = 4096;

/// What a reader or computation saw of the fence when it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    epoch: u64,
    generation: u64,
    stripe: usize,
}

#[derive(Debug)]
pub(crate) struct Fence {
    epoch: AtomicU64,
    generations: Box<[AtomicU64]>,
    hasher: std::hash::RandomState,
}

impl Default for Fence {
    fn default() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            generations: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            hasher: std::hash::RandomState::new(),
        }
    }
}

impl Fence {
    fn stripe(&self, key: &str) -> usize {
        self.hasher.hash_one(key) as usize % STRIPES
    }

    /// Taken before a read or computation of `key` starts.
    pub(crate) fn ticket(&self, key: &str) -> Ticket {
        let stripe = self.stripe(key);
        // Epoch first: an invalidation bumps its counter before it acts, so
        // whichever word we read before it moved is seen as moved later.
        let epoch = self.epoch.load(Ordering::Acquire);
        Ticket {
            epoch,
            generation: self.generations[stripe].load(Ordering::Acquire),
            stripe,
        }
    }

    /// Whether nothing that could concern the ticket's key was invalidated
    /// since the ticket was taken.
    pub(crate) fn current(&self, ticket: &Ticket) -> bool {
        self.generations[ticket.stripe].load(Ordering::Acquire) == ticket.generation
            && self.epoch.load(Ordering::Acquire) == ticket.epoch
    }

    /// Before `key` is deleted or overwritten.
    pub(crate) fn invalidate(&self, key: &str) {
        self.generations[self.stripe(key)].fetch_add(1, Ordering::AcqRel);
    }

    /// [`ticket`](Self::ticket) for a key known by a well-mixed hash of it.
    pub(crate) fn ticket_hashed(&self, hash: u64) -> Ticket {
        let stripe = hash as usize % STRIPES;
        let epoch = self.epoch.load(Ordering::Acquire);
        Ticket {
            epoch,
            generation: self.generations[stripe].load(Ordering::Acquire),
            stripe,
        }
    }

    /// [`invalidate`](Self::invalidate) for a key known by a well-mixed hash of it.
    pub(crate) fn invalidate_hashed(&self, hash: u64) {
        self.generations[hash as usize % STRIPES].fetch_add(1, Ordering::AcqRel);
    }

    /// Before many keys are deleted at once.
    pub(crate) fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_invalidation_of_the_key_or_of_everything_moves_the_ticket() {
        let fence = Fence::default();
        let ticket = fence.ticket("a");
        assert!(fence.current(&ticket));
        fence.invalidate("a");
        assert!(!fence.current(&ticket));
        let ticket = fence.ticket("a");
        fence.invalidate_all();
        assert!(!fence.current(&ticket));
        assert!(fence.current(&fence.ticket("a")));
    }

    /// One step of an interleaving of a reader (ticket, reply, insert) with
    /// invalidations of its key, of other keys and of everything.
    #[derive(Clone, Debug)]
    enum Step {
        Ticket,
        InvalidateKey,
        InvalidateOther(u8),
        InvalidateAll,
        Insert,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            Just(Step::Ticket),
            Just(Step::InvalidateKey),
            any::<u8>().prop_map(Step::InvalidateOther),
            Just(Step::InvalidateAll),
            Just(Step::Insert),
        ]
    }

    proptest! {
        /// Whatever the order: an insert is accepted only if no invalidation
        /// of its key (or of everything) happened since its ticket, so a value
        /// never outlives an invalidation that followed its start.
        #[test]
        fn no_insert_survives_an_invalidation_after_its_ticket(steps in prop::collection::vec(step(), 1..40)) {
            let fence = Fence::default();
            let mut ticket = None;
            let mut invalidated_since_ticket = false;
            for step in steps {
                match step {
                    Step::Ticket => {
                        ticket = Some(fence.ticket("key"));
                        invalidated_since_ticket = false;
                    }
                    Step::InvalidateKey => {
                        fence.invalidate("key");
                        invalidated_since_ticket = true;
                    }
                    Step::InvalidateOther(n) => fence.invalidate(&format!("other{n}")),
                    Step::InvalidateAll => {
                        fence.invalidate_all();
                        invalidated_since_ticket = true;
                    }
                    Step::Insert => {
                        if let Some(ticket) = &ticket {
                            let accepted = fence.current(ticket);
                            // Never stale; a stripe collision may refuse a fresh one.
                            prop_assert!(!(accepted && invalidated_since_ticket));
                        }
                    }
                }
            }
        }
    }
}
