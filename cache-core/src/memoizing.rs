//! The fail-open memoizing path: look up, else compute once (single-flight,
//! optionally under the cross-process lock), store, and share the value
//! with the callers that waited for it.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::blocking::spawn_io;
use crate::cache::{Cache, CallOptions, IoMode};
use crate::codec::{Codec, Payload};
use crate::error::{CodecError, Result};
use crate::read_coalescing::Read;
use crate::single_flight::{self, Landing, LeaderGuard, Role};
use crate::stampede_lock::{lock_key, new_token};
use crate::stats::Stats;
use crate::store::StorePolicy;

/// Values whose compression or inflation takes long enough to stall an async
/// worker (a 128 KiB zlib inflate is ~100 µs) are processed on the
/// low-priority codec pool instead, so small hits keep their latency.
pub(crate) const OFFLOAD_BYTES: usize = 128 * 1024;

/// Memoized calls of one cache that look up at the same time. A lookup in
/// progress holds ~2 KB (its state and redis-rs's request); a call beyond
/// this many waits for a slot holding almost nothing, so 10,000 concurrent
/// calls do not hold 10,000 lookups' worth of memory. 512 pipelined lookups
/// keep Redis busy, so the wait costs no throughput.
pub(crate) const LOOKUP_SLOTS: usize = 512;

enum Lookup<S> {
    /// The decoded value, and the payload it came from.
    Hit(S, Payload),
    Miss,
    Unavailable,
}

enum LockOutcome<S> {
    Acquired(String),
    /// Another caller's value; `true` when releasing our lock failed (the
    /// double-check found the value after we took it).
    Hit(S, Payload, bool),
    /// Waited `max_wait` in vain: compute without the lock.
    GaveUp,
    /// The backend failed: compute without the lock.
    Failed,
}

impl Cache {
    /// The memoizing path. Also says whether the backend failed during the
    /// call (each failure is counted and logged where it happens; this is
    /// for the per-function numbers of [`crate::memoized::Memoized`]).
    pub(crate) async fn memoize_in<R, S, F, Fut>(
        &self,
        mode: IoMode,
        full: &str,
        options: CallOptions,
        compute: F,
        stored: StorePolicy<R, S>,
        wrap: impl FnOnce(S) -> R,
    ) -> (R, bool)
    where
        S: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        let mark_before = self.inner.flights.landing_mark(full);
        let mut backend_ok = true;
        // The backend steps are boxed: a call in flight then holds only the
        // step it is in, not the largest of them (memory per in-flight call).
        if !options.refresh {
            let lookup = match self.lookup_slot(mode).await {
                Ok(_slot) => Box::pin(self.lookup::<S>(mode, full)).await,
                Err(e) => {
                    Stats::bump(&self.inner.stats.misses);
                    self.backend_error("get", &e);
                    Lookup::Unavailable
                }
            };
            match lookup {
                Lookup::Hit(value, _) => return (wrap(value), false),
                Lookup::Miss => {}
                Lookup::Unavailable => backend_ok = false,
            }
        }
        let leader = if options.refresh {
            None
        } else {
            match self.inner.flights.join(full) {
                Role::Leader(guard) => Some(guard),
                Role::Follower(flight) => {
                    Stats::bump(&self.inner.stats.shared_computations);
                    if let Some(Landing::Value(payload)) = single_flight::wait(flight).await {
                        if let Some(value) = self.deserialize::<S>(full, &payload) {
                            return (wrap(value), !backend_ok);
                        }
                    }
                    None
                }
            }
        };
        // A flight for this key may have landed between our lookup and our
        // join; then its value is in the store and computing again is waste.
        if leader.is_some() && backend_ok && self.inner.flights.landing_mark(full) != mark_before {
            if let Lookup::Hit(value, payload) = Box::pin(self.lookup::<S>(mode, full)).await {
                self.land(leader, Landing::Value(payload));
                return (wrap(value), !backend_ok);
            }
        }
        let mut lock_token = None;
        let use_lock = options.lock.unwrap_or(self.inner.lock.enabled);
        if use_lock && backend_ok && !options.refresh && !self.inner.backend.is_memory() {
            match Box::pin(self.acquire_lock::<S>(mode, full)).await {
                LockOutcome::Acquired(token) => lock_token = Some(token),
                LockOutcome::Hit(value, payload, unlock_failed) => {
                    self.land(leader, Landing::Value(payload));
                    return (wrap(value), unlock_failed);
                }
                LockOutcome::GaveUp => {}
                LockOutcome::Failed => backend_ok = false,
            }
        }
        let result = compute().await;
        // Even when the backend is unavailable, waiting callers get the value.
        let write = backend_ok;
        let landing = match stored(&result) {
            Some(value) => {
                let (landing, written) =
                    Box::pin(self.store(mode, full, value, options.ttl, write)).await;
                backend_ok &= written;
                landing
            }
            None => Landing::Nothing,
        };
        self.land(leader, landing);
        if let Some(token) = lock_token {
            backend_ok &= Box::pin(self.release_lock(mode, full, token)).await;
        }
        (result, !backend_ok)
    }

    /// Releases the stampede lock if it still holds `token`; whether the
    /// backend answered.
    async fn release_lock(&self, mode: IoMode, full: &str, token: String) -> bool {
        let lock = lock_key(full);
        let released = self
            .io(mode, move |cache| async move {
                cache.inner.backend.unlock(&lock, &token).await
            })
            .await;
        if let Err(e) = &released {
            self.backend_error("unlock", e);
        }
        released.is_ok()
    }

    /// A lookup slot (see [`LOOKUP_SLOTS`]), waiting at most the response
    /// timeout. Plain functions (their own threads) and the in-memory
    /// backend need none.
    async fn lookup_slot(&self, mode: IoMode) -> Result<Option<tokio::sync::SemaphorePermit<'_>>> {
        if mode == IoMode::IoRuntime || self.inner.backend.is_memory() {
            return Ok(None);
        }
        if let Ok(slot) = self.inner.lookup_slots.try_acquire() {
            return Ok(Some(slot));
        }
        let waited = Box::pin(tokio::time::timeout(
            self.inner.slot_wait,
            self.inner.lookup_slots.acquire(),
        ))
        .await;
        match waited {
            Ok(Ok(slot)) => Ok(Some(slot)),
            _ => Err(crate::Error::Overloaded {
                waited: self.inner.slot_wait,
            }),
        }
    }

    fn land(&self, leader: Option<LeaderGuard<'_, Landing>>, landing: Landing) {
        if let Some(leader) = leader {
            leader.land(landing);
        }
    }

    /// Takes the stampede lock, or waits for the holder's value.
    async fn acquire_lock<S: DeserializeOwned>(&self, mode: IoMode, full: &str) -> LockOutcome<S> {
        let settings = self.inner.lock;
        let lock = lock_key(full);
        let token = new_token();
        let started = Instant::now();
        let mut waiting = false;
        loop {
            let (l, t) = (lock.clone(), token.clone());
            let taken = self
                .io(mode, move |cache| async move {
                    cache.inner.backend.try_lock(&l, &t, settings.ttl).await
                })
                .await;
            match taken {
                Ok(true) => {
                    // The previous holder may have stored the value and let
                    // go between our lookup and now: look once more, with a
                    // GET of our own (a shared one may predate the lock).
                    let read = self.read_fresh(mode, full).await;
                    return match self.value_in::<S>(full, read) {
                        Lookup::Hit(value, payload) => {
                            let released = self.release_lock(mode, full, token).await;
                            LockOutcome::Hit(value, payload, !released)
                        }
                        // A failed read while we hold the lock: compute, and
                        // let the store report how the backend is doing.
                        Lookup::Miss | Lookup::Unavailable => LockOutcome::Acquired(token),
                    };
                }
                Ok(false) => {}
                Err(e) => {
                    self.backend_error("lock", &e);
                    return LockOutcome::Failed;
                }
            }
            if !waiting {
                waiting = true;
                Stats::bump(&self.inner.stats.lock_waits);
            }
            if started.elapsed() >= settings.max_wait {
                tracing::debug!(cache = %self.inner.name, key = full, "gave up waiting for the stampede lock");
                return LockOutcome::GaveUp;
            }
            self.sleep(mode, settings.poll_interval).await;
            let read = self.read(mode, full).await;
            match self.value_in::<S>(full, read) {
                Lookup::Hit(value, payload) => return LockOutcome::Hit(value, payload, false),
                Lookup::Miss => {}
                Lookup::Unavailable => return LockOutcome::Failed,
            }
        }
    }

    /// Runs a rare backend operation that owns its data, in `mode`.
    async fn io<T, F, Fut>(&self, mode: IoMode, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Cache) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        match mode {
            IoMode::Inline => op(self.clone()).await,
            IoMode::IoRuntime => spawn_io(op(self.clone())).await,
        }
    }

    async fn sleep(&self, mode: IoMode, duration: Duration) {
        match mode {
            IoMode::Inline => tokio::time::sleep(duration).await,
            IoMode::IoRuntime => spawn_io(tokio::time::sleep(duration)).await,
        }
    }

    /// Reads and opens the entry under `full`. Inline reads of one key that
    /// overlap share one GET (see [`crate::read_coalescing`]).
    async fn read(&self, mode: IoMode, full: &str) -> Read {
        match mode {
            IoMode::Inline if self.inner.coalesce_reads => self.coalesced_read(full).await,
            _ => self.read_fresh(mode, full).await,
        }
    }

    /// [`read`](Self::read) with a GET sent now, never one shared with
    /// lookups that started earlier.
    async fn read_fresh(&self, mode: IoMode, full: &str) -> Read {
        match mode {
            IoMode::Inline => self.read_now(full).await,
            IoMode::IoRuntime => {
                let cache = self.clone();
                let key = full.to_owned();
                spawn_io(async move { cache.read_now(&key).await }).await
            }
        }
    }

    /// One GET, then the header check and (off the async workers when large)
    /// inflation.
    pub(crate) async fn read_now(&self, full: &str) -> Read {
        match self.inner.backend.get(full).await {
            Ok(Some(entry)) => match open(&self.inner.codec, entry).await {
                Ok(payload) => Read::Found(payload),
                Err(e) => Read::Corrupt(e.into()),
            },
            Ok(None) => Read::Absent,
            Err(e) => Read::Failed(e.into()),
        }
    }

    async fn lookup<S: DeserializeOwned>(&self, mode: IoMode, full: &str) -> Lookup<S> {
        let read = self.read(mode, full).await;
        let found = self.value_in(full, read);
        match &found {
            Lookup::Hit(..) => tracing::trace!(cache = %self.inner.name, key = full, "hit"),
            Lookup::Miss | Lookup::Unavailable => {
                Stats::bump(&self.inner.stats.misses);
                tracing::trace!(cache = %self.inner.name, key = full, "miss");
            }
        }
        found
    }

    /// The value a read found (counted as a hit); a missing entry, or one
    /// that does not decode (logged), is a miss; a failed read (logged) is
    /// `Unavailable`. Misses are counted by the caller, which knows whether
    /// this was the call's own lookup.
    fn value_in<S: DeserializeOwned>(&self, full: &str, read: Read) -> Lookup<S> {
        match read {
            Read::Found(payload) => match self.deserialize::<S>(full, &payload) {
                Some(value) => {
                    Stats::bump(&self.inner.stats.hits);
                    Lookup::Hit(value, payload)
                }
                None => Lookup::Miss,
            },
            Read::Absent => Lookup::Miss,
            Read::Corrupt(e) => {
                self.decode_failure(full, &e);
                Lookup::Miss
            }
            Read::Failed(e) => {
                self.backend_error("get", &e);
                Lookup::Unavailable
            }
        }
    }

    /// Encodes and (when `write`) stores the value: what the waiting callers
    /// get, and whether the backend took it (an unencodable value is not a
    /// backend failure).
    async fn store<S: Serialize>(
        &self,
        mode: IoMode,
        full: &str,
        value: &S,
        ttl: Option<std::time::Duration>,
        write: bool,
    ) -> (Landing, bool) {
        let sealed = match self.inner.codec.serialize(value) {
            Ok(serialized) => seal(&self.inner.codec, serialized).await,
            Err(e) => Err(e),
        };
        let (entry, payload) = match sealed {
            Ok(sealed) => sealed,
            Err(e) => {
                Stats::bump(&self.inner.stats.store_skipped);
                tracing::warn!(cache = %self.inner.name, key = full, "value not cached: {e}");
                return (Landing::Nothing, true);
            }
        };
        if !write {
            return (Landing::Value(payload), true);
        }
        let ttl = self.ttl_or_default(ttl);
        let written = match mode {
            IoMode::Inline => self.inner.backend.set(full, &entry, ttl).await,
            IoMode::IoRuntime => {
                let cache = self.clone();
                let key = full.to_owned();
                spawn_io(async move { cache.inner.backend.set(&key, &entry, ttl).await }).await
            }
        };
        let written = match written {
            Ok(()) => {
                Stats::bump(&self.inner.stats.stores);
                true
            }
            Err(e) => {
                self.backend_error("set", &e);
                false
            }
        };
        // The value is good for the callers waiting on it either way.
        (Landing::Value(payload), written)
    }

    pub(crate) fn deserialize<S: DeserializeOwned>(
        &self,
        full: &str,
        payload: &Payload,
    ) -> Option<S> {
        match self.inner.codec.deserialize(payload) {
            Ok(value) => Some(value),
            Err(e) => {
                self.decode_failure(full, &e);
                None
            }
        }
    }

    pub(crate) fn decode_failure(&self, full: &str, error: &CodecError) {
        Stats::bump(&self.inner.stats.decode_failures);
        tracing::debug!(
            cache = %self.inner.name,
            key = full,
            "entry does not decode, treating it as a miss: {error}"
        );
    }
}

/// Whether large values go to the codec pool: for an async caller, under a
/// tokio runtime. Plain functions (blocked in `wait_here`, even on a
/// runtime's thread) compress and inflate on their own thread.
fn can_offload() -> bool {
    !crate::blocking::waiting_here() && tokio::runtime::Handle::try_current().is_ok()
}

/// [`Codec::open`], on the codec pool when the entry is large and compressed.
pub(crate) async fn open(codec: &Codec, entry: Vec<u8>) -> Result<Payload, CodecError> {
    if entry.len() >= OFFLOAD_BYTES / 4 && Codec::is_compressed(&entry) && can_offload() {
        let codec = codec.clone();
        return crate::codec_pool::run(move || codec.open(entry), "inflating the entry panicked")
            .await;
    }
    codec.open(entry)
}

/// [`Codec::seal`], on the codec pool when the value is large (never on
/// every core at once: see `codec_pool`).
pub(crate) async fn seal(
    codec: &Codec,
    serialized: crate::codec::Serialized,
) -> Result<(std::sync::Arc<Vec<u8>>, Payload), CodecError> {
    if serialized.len() >= OFFLOAD_BYTES && can_offload() {
        let codec = codec.clone();
        return crate::codec_pool::compress(
            move || codec.seal(serialized),
            "compressing the value panicked",
        )
        .await;
    }
    codec.seal(serialized)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::RecvTimeoutError;
    use std::time::Duration;

    /// A memoized plain function called from inside an async task blocks
    /// the task's thread; storing its large value must not wait for a codec
    /// slot that a task of that (now blocked) runtime holds or is next in
    /// line for.
    #[test]
    fn a_blocking_call_inside_a_runtime_never_waits_for_the_codec_pool() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let cache = crate::Cache::memory();
                let big = "cache ".repeat(50_000); // 300 KB: compressed on the pool
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
                let writers: Vec<_> = (0..2 * cores)
                    .map(|i| {
                        let (cache, big) = (cache.clone(), big.clone());
                        tokio::spawn(async move { cache.set(&format!("w{i}"), &big, None).await })
                    })
                    .collect();
                // Every writer now holds a slot or waits in line for one.
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
                let value: String = cache.get_or_compute_blocking("plain", None, || big.clone());
                assert_eq!(value.len(), big.len());
                for writer in writers {
                    writer.await.unwrap().unwrap();
                }
            });
            let _ = done.send(());
        });
        match finished.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => panic!("the blocking call never finished"),
            Err(RecvTimeoutError::Disconnected) => panic!("the test thread panicked"),
        }
    }

    /// A memoized call in flight holds this future (boxed); its size is
    /// most of the per-call memory at 10,000 concurrent calls, so keep it
    /// from growing unnoticed (it was 8 KB before the backend steps were boxed).
    #[test]
    fn the_memoizing_future_stays_small() {
        let cache = crate::Cache::memory();
        let call = cache.memoize_in(
            crate::cache::IoMode::Inline,
            "k",
            crate::CallOptions::default(),
            || async { 1u64 },
            crate::store::always,
            |v| v,
        );
        let size = std::mem::size_of_val(&call);
        assert!(size <= 640, "memoize_in future is {size} bytes");
    }
}
