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

use std::sync::Arc;

use crate::cache::Cache;
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
pub(crate) type ReadCoalescer = SingleFlight<Read>;

impl Cache {
    /// Reads `full`, or waits for the read of it already in flight.
    pub(crate) async fn coalesced_read(&self, full: &str) -> Read {
        match self.inner.reads.join(full) {
            Role::Leader(leader) => {
                let read = self.read_now(full).await;
                leader.land_copy(&read);
                read
            }
            Role::Follower(flight) => match single_flight::wait(flight).await {
                Some(read) => read,
                None => self.read_now(full).await,
            },
        }
    }
}
