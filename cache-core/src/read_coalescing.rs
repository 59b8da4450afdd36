//! Overlapping lookups of one key share one GET.
//!
//! When many tasks read a hot key at once (a popular product, the front
//! page), each would send its own GET and inflate its own copy. Instead the
//! first lookup reads, and lookups of the same key that arrive while its GET
//! is in flight wait for it and deserialize the same payload: the shared
//! result is never older than one round trip. A lookup with no overlapping
//! twin pays only a map insert and remove; lookups of different keys are
//! unaffected. A reader that is cancelled releases its waiters, which then
//! read for themselves.

use std::future::Future;
use std::sync::Arc;

use crate::codec::Payload;
use crate::error::{CodecError, Error};
use crate::single_flight::{self, Role, SingleFlight};

/// What one read found.
#[derive(Clone, Debug)]
pub(crate) enum Read {
    Found(Payload),
    Absent,
    /// A lease: someone is computing the value.
    Leased,
    Corrupt(Arc<CodecError>),
    Failed(Arc<Error>),
}

/// Reads in flight, by full key.
#[derive(Debug, Default)]
pub(crate) struct ReadCoalescer {
    flights: SingleFlight<Read>,
}

impl ReadCoalescer {
    /// Reads `full` with `read` (one GET), or waits for the read of it
    /// already in flight; reads again itself if that reader was cancelled.
    pub(crate) async fn read<F, Fut>(&self, full: &str, read: F) -> Read
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Read>,
    {
        match self.flights.join(full) {
            Role::Leader(leader) => {
                let found = read().await;
                leader.land_copy(&found);
                found
            }
            Role::Follower(flight) => match single_flight::wait(flight).await {
                Some(found) => found,
                None => read().await,
            },
        }
    }

    /// Reads of `full` from now on do not join one that started before.
    pub(crate) fn detach(&self, full: &str) {
        self.flights.detach(full);
    }

    /// [`detach`](Self::detach) for every key.
    pub(crate) fn detach_all(&self) {
        self.flights.detach_all();
    }
}
