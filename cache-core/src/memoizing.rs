//! The fail-open memoizing path: look up, else compute once (single-flight,
//! optionally under the cross-process lock), store, and share the value
//! with the callers that waited for it.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::blocking::{spawn_detached, spawn_io};
use crate::cache::{Cache, CallOptions, IoMode};
use crate::codec::header::{Lease, Meta, TagStamps};
use crate::codec::{Codec, Payload};
use crate::error::{CodecError, Result};
use crate::fence::Ticket;
use crate::freshness::{now_millis, Verdict};
use crate::lease::LeaseGuard;
use crate::local_tier::{key_hash, LocalStore, LocalTicket};
use crate::local_value::LocalValue;
use crate::read_coalescing::Read;
use crate::single_flight::{self, Landing, LeaderGuard, Role};
use crate::stats::Stats;
use crate::store::StorePolicy;
use crate::value_weight::weight_of;
use futures::FutureExt as _;

/// Values whose compression or inflation takes long enough to stall an async
/// worker (a 128 KiB zlib inflate is ~100 µs) are processed on the
/// low-priority codec pool instead, so small hits keep their latency.
pub(crate) const OFFLOAD_BYTES: usize = 128 * 1024;

enum Lookup<S> {
    /// The decoded value, and the payload it came from (its header's
    /// metadata and tag stamps).
    Hit(S, Payload),
    Miss,
    /// Someone is computing the value (a lease is in the key).
    Leased,
    Unavailable,
}

/// How one memoized call was answered. Each call has exactly one, counted
/// in one place ([`Cache::count`]) for the cache's and the function's stats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Found in the cache.
    Hit,
    /// Another caller's value: a computation in this process it waited for,
    /// or another process's value that appeared while it wanted the lease.
    Shared,
    /// The body ran.
    Computed,
}

/// What the memoizing path reports about one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallReport {
    pub(crate) answer: Answer,
    /// The backend failed during the call (counted and logged where it
    /// happened; the call went on without it).
    pub(crate) backend_failed: bool,
    /// A hit on a value due for a refresh (early refresh, or served stale):
    /// the version token the background refresh is to replace.
    pub(crate) refresh_due: Option<u64>,
}

/// How a miss may write its value.
enum Claim {
    /// Nobody's: someone else holds the lease, or the backend failed.
    Nothing,
    /// Our lease is in the key: store with a compare-and-set on it.
    Lease(LeaseGuard),
    /// An expired value with this version token is in the key: replace
    /// exactly it.
    Version(u64),
}

/// What trying to take the lease of a missing key came to.
enum LeaseOutcome<S> {
    /// We hold it: compute and store.
    Held(LeaseGuard),
    /// A value is there now (someone stored it since our lookup).
    Found(S, Payload),
    /// Someone else holds it (and we did not, or no longer, wait): compute
    /// without storing.
    Busy,
    /// The backend failed: compute without storing.
    Failed,
}

/// Bounds the retries of a caller that keeps finding the key's state
/// changing under it (a lease vanishing, a flight without a value).
const MAX_RETRIES: usize = 64;

impl Cache {
    /// The memoizing path: look up; else join the key's flight in this
    /// process (or lead it), take the lease in the key, compute, and store
    /// with a compare-and-set on the lease. Returns the call's result and
    /// how it was answered (counted here, once).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn memoize_in<R, S, F, Fut>(
        &self,
        mode: IoMode,
        full: &str,
        options: CallOptions,
        tags: &[String],
        compute: F,
        stored: StorePolicy<R, S>,
        wrap: impl FnOnce(S) -> R,
        local: Option<LocalValue<S>>,
    ) -> (R, CallReport)
    where
        S: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        if options.refresh {
            // A refresh is a write: earlier reads and computations of this
            // key must not share or store their (older) values after it.
            self.invalidate_local(full);
        }
        let mut backend_ok = true;
        // An expired value still in the key (kept for the freshness
        // windows): its version token, and the value to fall back on.
        let mut replace = None;
        let mut stale = None;
        // With the local tier, the value read or computed goes in memory if
        // nothing invalidated the key since this point.
        let local = self
            .local_route(local, &options, tags)
            .map(|(tier, value)| {
                tier.count_miss();
                let hash = key_hash(full);
                (value, hash, tier.ticket(hash))
            });
        // A plain call (its thread blocked in `wait_here`) never waits for a
        // flight led by a task: that task may need this very thread.
        let blocking = crate::blocking::waiting_here();
        // The backend steps are boxed: a call in flight then holds only the
        // step it is in, not the largest of them (memory per in-flight call).
        if !options.refresh {
            let lookup = match self.lookup_slot(mode).await {
                // With the local tier, a call reads with a GET of its own,
                // sent after its ticket: a GET shared with a lookup that
                // started earlier may predate an invalidation that this
                // call's ticket already saw (a push, another process's
                // write), and its value would go into memory.
                Ok(_slot) => Box::pin(self.lookup::<S>(mode, full, local.is_none())).await,
                Err(e) => {
                    self.backend_error("get", &e);
                    Lookup::Unavailable
                }
            };
            match lookup {
                Lookup::Hit(value, payload)
                    if options.freshness.is_off() && payload.tags().is_none() =>
                {
                    self.keep_local(&local, &value, &payload);
                    return self.answered(wrap(value), Answer::Hit, true);
                }
                Lookup::Hit(value, payload) => {
                    let meta = payload.meta();
                    let tagged = match payload.tags() {
                        None => Ok(true),
                        Some(stamps) => Box::pin(self.stamps_current(mode, stamps)).await,
                    };
                    let verdict = match tagged {
                        Ok(true) => options
                            .freshness
                            .judge(&meta, now_millis(), fastrand::f64()),
                        // A tag was invalidated since the value was computed.
                        Ok(false) => Verdict::Expired { fallback: false },
                        Err(e) => {
                            self.backend_error("tag versions", &e);
                            backend_ok = false;
                            Verdict::Expired { fallback: false }
                        }
                    };
                    match verdict {
                        Verdict::Fresh => return self.answered(wrap(value), Answer::Hit, true),
                        verdict @ (Verdict::RefreshEarly | Verdict::ServeStale) => {
                            Stats::bump(if verdict == Verdict::ServeStale {
                                &self.inner.stats.stale_served
                            } else {
                                &self.inner.stats.early_refreshes
                            });
                            let (result, mut report) =
                                self.answered(wrap(value), Answer::Hit, true);
                            report.refresh_due = Some(meta.version_token);
                            return (result, report);
                        }
                        Verdict::Expired { fallback } => {
                            replace = Some(meta.version_token);
                            stale = fallback.then_some(value);
                        }
                    }
                }
                Lookup::Miss | Lookup::Leased => {}
                Lookup::Unavailable => backend_ok = false,
            }
        }
        // Taken after the lookup (hits stay lean) and before anything is
        // computed: an invalidation after this point keeps the value from
        // being stored or shared; one before it left nothing to find.
        let ticket = self.inner.fence.ticket(full);
        let mut leader = None;
        let mut alone = false;
        if !options.refresh {
            let mut retries = 0;
            loop {
                match self.inner.flights.join(full) {
                    Role::Leader(guard) => {
                        leader = Some(guard);
                        break;
                    }
                    Role::Follower(_) if blocking || retries == MAX_RETRIES => {
                        alone = true;
                        break;
                    }
                    Role::Follower(flight) => {
                        if let Some(Landing::Value(payload)) = single_flight::wait(flight).await {
                            if let Some(value) = self.deserialize::<S>(full, &payload) {
                                return self.answered(wrap(value), Answer::Shared, backend_ok);
                            }
                        }
                        // The leader stored nothing (an `Err`, a `None` not
                        // to cache) or went away: one of us leads next.
                        retries += 1;
                    }
                }
            }
        }
        let mut claim = Claim::Nothing;
        if let (true, Some(token)) = (backend_ok, replace) {
            claim = Claim::Version(token);
        } else if backend_ok {
            let lock = options.lock.unwrap_or(self.inner.lock.enabled) && !alone;
            match Box::pin(self.take_lease::<S>(mode, full, lock, options.refresh)).await {
                LeaseOutcome::Held(guard) => claim = Claim::Lease(guard),
                LeaseOutcome::Found(value, payload) => {
                    // The same checks as a hit: its tags, its logical expiry.
                    match Box::pin(self.still_good(mode, &payload, options)).await {
                        Ok(true) => {
                            land(leader, Landing::Value(payload));
                            return self.answered(wrap(value), Answer::Shared, backend_ok);
                        }
                        Ok(false) => claim = Claim::Version(payload.meta().version_token),
                        Err(e) => {
                            self.backend_error("tag versions", &e);
                            backend_ok = false;
                        }
                    }
                }
                LeaseOutcome::Busy => {}
                LeaseOutcome::Failed => backend_ok = false,
            }
        }
        // The versions of the call's tags, read before computing: an
        // invalidation of a tag after this point makes the value stale.
        let stamps = if tags.is_empty() || !backend_ok {
            TagStamps::new()
        } else {
            match Box::pin(self.tag_versions(mode, tags)).await {
                Ok(stamps) => stamps,
                Err(e) => {
                    self.backend_error("tag versions", &e);
                    backend_ok = false;
                    claim = Claim::Nothing; // dropping a lease releases it
                    TagStamps::new()
                }
            }
        };
        let started = Instant::now();
        let result = match stale {
            // Stale-if-error: a panicking body falls back on the old value.
            Some(_) => match Box::pin(std::panic::AssertUnwindSafe(compute()).catch_unwind()).await
            {
                Ok(result) => Ok(result),
                Err(panic) => Err(panic),
            },
            None => Ok(compute().await),
        };
        let compute_time = started.elapsed();
        // The body failed (an `Err`, a `None` not to cache, a panic) and the
        // last good value is within its stale-if-error window: fall back on
        // it, but only while nothing invalidated it since (the fence here,
        // and in Redis the key still holds that very value).
        let failed = match &result {
            Ok(result) => stored(result).is_none(),
            Err(_) => true,
        };
        let fall_back = stale.is_some()
            && failed
            && self.inner.fence.current(&ticket)
            && Box::pin(self.still_holds(mode, full, replace)).await;
        let result = match (result, stale) {
            (_, Some(stale)) if fall_back => {
                Stats::bump(&self.inner.stats.stale_on_error);
                if let Claim::Lease(lease) = claim {
                    Box::pin(self.release(mode, full, lease)).await;
                }
                land(leader, Landing::Nothing);
                return self.answered(wrap(stale), Answer::Computed, backend_ok);
            }
            (Ok(result), _) => result,
            (Err(panic), _) => std::panic::resume_unwind(panic),
        };
        let landing = match stored(&result) {
            Some(value) => {
                let written = Box::pin(self.store(
                    mode,
                    full,
                    value,
                    options,
                    claim,
                    &ticket,
                    compute_time,
                    &stamps,
                ))
                .await;
                backend_ok &= written.1;
                written.0
            }
            None => {
                if let Claim::Lease(lease) = claim {
                    Box::pin(self.release(mode, full, lease)).await;
                }
                Landing::Nothing
            }
        };
        if let (Some(value), Landing::Value(payload)) = (stored(&result), &landing) {
            self.keep_local(&local, value, payload);
        }
        land(leader, landing);
        if options.refresh {
            self.forget_reads(full);
        }
        self.answered(result, Answer::Computed, backend_ok)
    }

    /// Recomputes `full` in the background for a hit that was due for it
    /// (early refresh, stale-while-revalidate) and replaces the value whose
    /// version token is `token`, never a newer one and nothing after an
    /// invalidation. One refresh per key per process (single-flight) and one
    /// per fleet (a refresh lease in `{full}:refresh`, the key's own Cluster
    /// slot); the others skip theirs.
    pub(crate) async fn refresh_in_background<R, S, F, Fut>(
        &self,
        full: &str,
        token: u64,
        options: CallOptions,
        tags: &[String],
        compute: F,
        stored: StorePolicy<R, S>,
    ) where
        S: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        let Role::Leader(refreshing) = self.inner.refreshes.join(full) else {
            return;
        };
        let lease_key = refresh_lease_key(full);
        let lease = Lease::new();
        let ttl = self.inner.lock.ttl;
        match self.write_lease(&lease_key, lease, ttl, false).await {
            Ok(true) => {}
            Ok(false) => return, // another process refreshes it
            Err(e) => return self.backend_error("refresh lease", &e),
        }
        let guard = LeaseGuard::new(self.clone(), &lease_key, lease, ttl);
        let ticket = self.inner.fence.ticket(full);
        // Someone refreshed (or invalidated) it since our hit: nothing to do.
        if !self.still_holds(IoMode::Inline, full, Some(token)).await {
            self.release(IoMode::Inline, &lease_key, guard).await;
            refreshing.land(());
            return;
        }
        let stamps = match self.tag_versions(IoMode::Inline, tags).await {
            Ok(stamps) => stamps,
            Err(e) => {
                self.backend_error("tag versions", &e);
                return; // the guard releases the refresh lease
            }
        };
        let started = Instant::now();
        let result = compute().await;
        if let Some(value) = stored(&result) {
            let claim = Claim::Version(token);
            let _ = Box::pin(self.store(
                IoMode::Inline,
                full,
                value,
                options,
                claim,
                &ticket,
                started.elapsed(),
                &stamps,
            ))
            .await;
        }
        self.release(IoMode::Inline, &lease_key, guard).await;
        refreshing.land(());
    }

    /// Writes `lease` into `key` (as `Backend::take_lease`) in a task of its
    /// own on the I/O runtime: when this call is dropped while the `SET` is
    /// on the wire, the task deletes the lease it took, so no lease is left
    /// behind for its ttl.
    async fn write_lease(
        &self,
        key: &str,
        lease: Lease,
        ttl: Duration,
        overwrite: bool,
    ) -> Result<bool> {
        let (taken, outcome) = tokio::sync::oneshot::channel();
        let (cache, key) = (self.clone(), key.to_owned());
        spawn_detached(async move {
            let result = cache
                .inner
                .backend
                .take_lease(&key, &lease, ttl, overwrite)
                .await;
            if let Err(Ok(true)) = taken.send(result) {
                // The caller went away after the lease was written.
                if let Err(e) = cache.inner.backend.release_lease(&key, &lease).await {
                    cache.backend_error("release lease", &e);
                }
            }
        });
        // A task that never answers (its runtime shut down) took nothing we
        // know of: compute without storing.
        outcome.await.unwrap_or(Ok(false))
    }

    /// Whether a value found while taking the lease may be served: its tag
    /// stamps hold and (with freshness on) it has not expired logically.
    async fn still_good(
        &self,
        mode: IoMode,
        payload: &Payload,
        options: CallOptions,
    ) -> Result<bool> {
        if let Some(stamps) = payload.tags() {
            if !self.stamps_current(mode, stamps).await? {
                return Ok(false);
            }
        }
        let meta = payload.meta();
        Ok(options.freshness.is_off()
            || meta.expires_at_millis == 0
            || now_millis() < meta.expires_at_millis)
    }

    /// Whether `full` still holds the value with version token `token`
    /// (and its tag stamps hold): nothing invalidated it since it was read.
    async fn still_holds(&self, mode: IoMode, full: &str, token: Option<u64>) -> bool {
        let Some(token) = token else { return false };
        match self.read_fresh(mode, full).await {
            Read::Found(payload) if payload.meta().version_token == token => match payload.tags() {
                None => true,
                Some(stamps) => self.stamps_current(mode, stamps).await.unwrap_or(false),
            },
            _ => false,
        }
    }

    /// The current versions of `tags` (`None`: the tag has no version key),
    /// in one `MGET` (one per slot on a Cluster).
    async fn read_tag_versions<'t>(
        &self,
        mode: IoMode,
        tags: impl Iterator<Item = &'t str>,
    ) -> Result<Vec<Option<u64>>> {
        let keys: Vec<String> = tags.map(|t| self.inner.keys.tag_key(t)).collect();
        let found = self
            .io(mode, move |cache| async move {
                cache.inner.backend.get_many(&keys).await
            })
            .await?;
        Ok(found.iter().map(|v| parse_version(v.as_deref())).collect())
    }

    /// The versions of `tags` to stamp a value about to be computed with. A
    /// tag without a version key gets a random one first (`SET NX`): a
    /// version is never reused, so a version key that is lost (evicted,
    /// flushed, failed over) makes the values stamped with it stale, never
    /// current again.
    pub(crate) async fn tag_versions(&self, mode: IoMode, tags: &[String]) -> Result<TagStamps> {
        if tags.is_empty() {
            return Ok(TagStamps::new());
        }
        let mut versions = self
            .read_tag_versions(mode, tags.iter().map(String::as_str))
            .await?;
        for (tag, version) in tags.iter().zip(versions.iter_mut()) {
            if version.is_some() {
                continue;
            }
            let key = self.inner.keys.tag_key(tag);
            let fresh = fastrand::u64(1..).to_string();
            self.io(mode, move |cache| async move {
                cache
                    .inner
                    .backend
                    .set_if_absent(&key, fresh.as_bytes())
                    .await
            })
            .await?;
            // Ours, or the one another caller set first.
            *version = self
                .read_tag_versions(mode, std::iter::once(tag.as_str()))
                .await?[0];
        }
        Ok(tags
            .iter()
            .zip(versions)
            .map(|(tag, version)| (tag.clone(), version.unwrap_or(0)))
            .collect())
    }

    /// Whether every tag stamp of a value still holds (a tag whose version
    /// key is gone fails it).
    async fn stamps_current(&self, mode: IoMode, stamps: &TagStamps) -> Result<bool> {
        let tags = stamps.iter().map(|(tag, _)| tag.as_str());
        let now = self.read_tag_versions(mode, tags).await?;
        Ok(now
            .iter()
            .zip(stamps)
            .all(|(now, (_, stamped))| *now == Some(*stamped)))
    }

    /// The local tier and how to keep `S` in it, when this call may use it:
    /// the cache has a tier that is not off, the type can be kept, and the
    /// call has no tags, no freshness windows (their checks need Redis) and
    /// is not a refresh (which must not be answered from memory).
    pub(crate) fn local_route<S>(
        &self,
        local: Option<LocalValue<S>>,
        options: &CallOptions,
        tags: &[String],
    ) -> Option<(&LocalStore, LocalValue<S>)> {
        let tier = self.inner.local.as_deref()?;
        let value = local?;
        (options.local && tags.is_empty() && options.freshness.is_off() && !tier.is_off())
            .then_some((tier, value))
    }

    /// The local tier's value for the key whose [`key_hash`] `hash` gives
    /// (asked only when the cache has a tier that is on), with no check of
    /// the call's options (the caller knows it may use the tier).
    pub(crate) fn local_get<S>(
        &self,
        hash: impl FnOnce() -> u128,
        local: LocalValue<S>,
    ) -> Option<S> {
        let tier = self.inner.local.as_deref()?;
        if tier.is_off() {
            return None;
        }
        tier.get(hash(), local.take)
    }

    /// The local tier's value for `full`, for a call that may use it.
    pub(crate) fn local_hit<S>(
        &self,
        full: &str,
        local: Option<LocalValue<S>>,
        options: &CallOptions,
        tags: &[String],
    ) -> Option<S> {
        if options.refresh {
            return None;
        }
        let (_, value) = self.local_route(local, options, tags)?;
        self.local_get(|| key_hash(full), value)
    }

    /// Puts a value read or computed under the route's ticket in memory.
    fn keep_local<S>(
        &self,
        local: &Option<(LocalValue<S>, u128, LocalTicket)>,
        value: &S,
        payload: &Payload,
    ) {
        let (Some((how, hash, ticket)), Some(tier)) = (local, &self.inner.local) else {
            return;
        };
        let weight = weight_of::<S>(payload.as_bytes(), payload.serializer_id());
        tier.insert(
            *hash,
            ticket,
            (how.put)(value),
            payload.meta().expires_at_millis,
            weight,
        );
    }

    /// Counts a call's answer (once per call) and hands back its result.
    fn answered<R>(&self, result: R, answer: Answer, backend_ok: bool) -> (R, CallReport) {
        let stats = &self.inner.stats;
        match answer {
            Answer::Hit => Stats::bump(&stats.hits),
            Answer::Shared => {
                Stats::bump(&stats.hits);
                Stats::bump(&stats.shared_computations);
            }
            Answer::Computed => Stats::bump(&stats.misses),
        }
        let report = CallReport {
            answer,
            backend_failed: !backend_ok,
            refresh_due: None,
        };
        (result, report)
    }

    /// Deletes our lease from `full` (if it is still there) and waits for
    /// it: the value will not be stored, and nobody should wait for it. (A
    /// cancelled call releases it in the background instead: the guard.)
    async fn release(&self, mode: IoMode, full: &str, lease: LeaseGuard) {
        let (held, key) = (*lease.lease(), full.to_owned());
        let released = self
            .io(mode, move |cache| async move {
                cache.inner.backend.release_lease(&key, &held).await
            })
            .await;
        lease.consume();
        if let Err(e) = released {
            self.backend_error("release lease", &e);
        }
    }

    /// Counts a memoized call that could not use the cache at all (its
    /// arguments do not serialize into a key): a miss, and an error.
    pub(crate) fn uncached_call(&self) -> CallReport {
        Stats::bump(&self.inner.stats.errors);
        self.answered((), Answer::Computed, false).1
    }

    /// Forgets, in this process, what is known or in progress for `full`,
    /// before it is deleted or overwritten: reads and computations that
    /// started earlier neither store nor share their values with later
    /// callers.
    pub(crate) fn invalidate_local(&self, full: &str) {
        self.inner.fence.invalidate(full);
        if let Some(tier) = &self.inner.local {
            tier.invalidate(key_hash(full));
        }
        self.inner.flights.detach(full);
        self.inner.reads.detach(full);
    }

    /// After a write of `full` is acknowledged: a GET sent between
    /// [`invalidate_local`](Self::invalidate_local) and the write's arrival
    /// may have read the old entry, so later lookups must not share it.
    pub(crate) fn forget_reads(&self, full: &str) {
        self.inner.reads.detach(full);
    }

    /// [`invalidate_local`](Self::invalidate_local) for every key (before a
    /// prefix or function delete).
    pub(crate) fn invalidate_local_all(&self) {
        self.inner.fence.invalidate_all();
        if let Some(tier) = &self.inner.local {
            tier.bump_epoch();
            tier.clear();
        }
        self.inner.flights.detach_all();
        self.inner.reads.detach_all();
    }

    /// A lookup slot (see [`LOOKUP_SLOTS`](crate::cache::LOOKUP_SLOTS)), waiting at most the response
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

    /// Writes a lease into the missing key `full` (over whatever it holds,
    /// for a refresh). When someone else's lease is there: with `lock`, waits
    /// for its value (polling) and takes over a lease that vanishes without
    /// one; without, computes alongside without storing.
    async fn take_lease<S: DeserializeOwned>(
        &self,
        mode: IoMode,
        full: &str,
        lock: bool,
        refresh: bool,
    ) -> LeaseOutcome<S> {
        let settings = self.inner.lock;
        let lease = Lease::new();
        let started = Instant::now();
        let mut overwrite = refresh;
        let mut waiting = false;
        for _ in 0..MAX_RETRIES {
            let taken = self.write_lease(full, lease, settings.ttl, overwrite).await;
            match taken {
                Ok(true) => {
                    let guard = LeaseGuard::new(self.clone(), full, lease, settings.ttl);
                    return LeaseOutcome::Held(guard);
                }
                Ok(false) => {}
                Err(e) => {
                    self.backend_error("lease", &e);
                    return LeaseOutcome::Failed;
                }
            }
            // The key holds something: a value stored since our lookup, or
            // someone's lease. Our own GET: a shared one may predate it.
            loop {
                match self.read_fresh(mode, full).await {
                    // (A failure to decode was counted by the lookup.)
                    Read::Found(payload) => match self.inner.codec.deserialize(&payload) {
                        Ok(value) => return LeaseOutcome::Found(value, payload),
                        // Another type (a deploy): overwritten, like any
                        // entry that does not decode.
                        Err(_) => overwrite = true,
                    },
                    Read::Corrupt(_) => overwrite = true,
                    // Expired, released or deleted since: take it with NX.
                    Read::Absent => overwrite = refresh,
                    Read::Failed(e) => {
                        self.backend_error("get", &e);
                        return LeaseOutcome::Failed;
                    }
                    Read::Leased if !lock => return LeaseOutcome::Busy,
                    Read::Leased => {
                        if !waiting {
                            waiting = true;
                            Stats::bump(&self.inner.stats.lock_waits);
                        }
                        if started.elapsed() >= settings.max_wait {
                            tracing::debug!(cache = %self.inner.name, key = full, "gave up waiting for the lease holder's value");
                            return LeaseOutcome::Busy;
                        }
                        self.sleep(mode, settings.poll_interval).await;
                        continue;
                    }
                }
                break;
            }
        }
        LeaseOutcome::Busy
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
            IoMode::Inline if self.inner.coalesce_reads => {
                self.inner.reads.read(full, || self.read_now(full)).await
            }
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
            Ok(Some(entry)) if Lease::is_lease(&entry) => Read::Leased,
            Ok(Some(entry)) => match open(&self.inner.codec, entry).await {
                Ok(payload) => Read::Found(payload),
                Err(e) => Read::Corrupt(e.into()),
            },
            Ok(None) => Read::Absent,
            Err(e) => Read::Failed(e.into()),
        }
    }

    async fn lookup<S: DeserializeOwned>(
        &self,
        mode: IoMode,
        full: &str,
        coalesce: bool,
    ) -> Lookup<S> {
        let read = if coalesce {
            self.read(mode, full).await
        } else {
            self.read_fresh(mode, full).await
        };
        let found = self.value_in(full, read);
        match &found {
            Lookup::Hit(..) => tracing::trace!(cache = %self.inner.name, key = full, "hit"),
            _ => tracing::trace!(cache = %self.inner.name, key = full, "miss"),
        }
        found
    }

    /// The value a read found; a missing entry, or one that does not decode
    /// (logged), is a miss; a lease says someone computes it; a failed read
    /// (logged) is `Unavailable`. Nothing is counted as a hit or miss here:
    /// [`answered`](Self::answered) counts each call once.
    fn value_in<S: DeserializeOwned>(&self, full: &str, read: Read) -> Lookup<S> {
        match read {
            Read::Found(payload) => match self.deserialize::<S>(full, &payload) {
                Some(value) => Lookup::Hit(value, payload),
                None => Lookup::Miss,
            },
            Read::Absent => Lookup::Miss,
            Read::Leased => Lookup::Leased,
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

    /// Encodes the value and, while the call holds the key's lease and no
    /// invalidation of the key happened since `ticket`, stores it in place
    /// of the lease (compare-and-set): what the waiting callers get, and
    /// whether the backend answered (an unencodable value, or a store
    /// refused because the key was invalidated, is not a backend failure).
    #[allow(clippy::too_many_arguments)]
    async fn store<S: Serialize>(
        &self,
        mode: IoMode,
        full: &str,
        value: &S,
        options: CallOptions,
        claim: Claim,
        ticket: &Ticket,
        compute_time: Duration,
        stamps: &TagStamps,
    ) -> (Landing, bool) {
        let (meta, ttl) = self.meta_and_expiry(options, compute_time);
        let sealed = match self.inner.codec.serialize(value) {
            Ok(serialized) => seal(&self.inner.codec, serialized, meta, stamps).await,
            Err(e) => Err(e),
        };
        let (entry, payload) = match sealed {
            Ok(sealed) => sealed,
            Err(e) => {
                Stats::bump(&self.inner.stats.store_skipped);
                tracing::warn!(cache = %self.inner.name, key = full, "value not cached: {e}");
                if let Claim::Lease(lease) = claim {
                    self.release(mode, full, lease).await;
                }
                return (Landing::Nothing, true);
            }
        };
        if matches!(claim, Claim::Nothing) {
            // Someone else holds the lease, or the backend failed: the value
            // is good for the callers waiting on it, and stored by nobody.
            return (Landing::Value(payload), true);
        }
        if !self.inner.fence.current(ticket) {
            // Invalidated while we computed: not stored (and the lease is
            // most likely gone with the key already).
            Stats::bump(&self.inner.stats.stale_stores_refused);
            if let Claim::Lease(lease) = claim {
                self.release(mode, full, lease).await;
            }
            return (Landing::Value(payload), true);
        }
        let key = full.to_owned();
        let (written, lease) = match claim {
            Claim::Lease(lease) => {
                let held = *lease.lease();
                let written = self
                    .io(mode, move |cache| async move {
                        let backend = &cache.inner.backend;
                        backend.store_leased(&key, &held, &entry, ttl).await
                    })
                    .await;
                (written, Some(lease))
            }
            Claim::Version(token) => {
                let written = self
                    .io(mode, move |cache| async move {
                        let backend = &cache.inner.backend;
                        backend.store_if_version(&key, token, &entry, ttl).await
                    })
                    .await;
                (written, None)
            }
            Claim::Nothing => unreachable!("returned above"),
        };
        match written {
            Ok(true) => {
                if let Some(lease) = lease {
                    lease.consume();
                }
                Stats::bump(&self.inner.stats.stores);
                (Landing::Value(payload), true)
            }
            Ok(false) => {
                // The lease was killed, or the value we replace changed (an
                // invalidation somewhere, a newer store, an expiry): this
                // value must be neither stored nor shared (the followers may
                // have come after another process's invalidation; they look
                // up again).
                if let Some(lease) = lease {
                    lease.consume();
                }
                Stats::bump(&self.inner.stats.stale_stores_refused);
                (Landing::Nothing, true)
            }
            Err(e) => {
                self.backend_error("set", &e);
                (Landing::Value(payload), false)
            }
        }
    }

    /// The header metadata of a value computed in `compute_time` under
    /// `options`, and how long Redis keeps it: its ttl, plus the freshness
    /// windows during which it may still be served or fallen back on.
    fn meta_and_expiry(
        &self,
        options: CallOptions,
        compute_time: Duration,
    ) -> (Meta, Option<Duration>) {
        let ttl = self.ttl_or_default(options.ttl);
        let meta = Meta {
            version_token: 0,
            compute_millis: u32::try_from(compute_time.as_millis()).unwrap_or(u32::MAX),
            expires_at_millis: ttl.map_or(0, expiry_millis),
        };
        let kept =
            ttl.map(|ttl| self.ttl_or_default(Some(ttl.saturating_add(options.freshness.grace()))));
        (meta, kept.flatten())
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

/// [`Codec::seal_with`], on the codec pool when the value is large (never
/// on every core at once: see `codec_pool`).
pub(crate) async fn seal(
    codec: &Codec,
    serialized: crate::codec::Serialized,
    meta: Meta,
    stamps: &TagStamps,
) -> Result<(std::sync::Arc<Vec<u8>>, Payload), CodecError> {
    if serialized.len() >= OFFLOAD_BYTES && can_offload() {
        let (codec, stamps) = (codec.clone(), stamps.clone());
        return crate::codec_pool::compress(
            move || codec.seal_tagged(serialized, meta, &stamps),
            "compressing the value panicked",
        )
        .await;
    }
    codec.seal_tagged(serialized, meta, stamps)
}

/// The Unix time in milliseconds `ttl` from now (the logical expiry
/// written into a value's header).
fn expiry_millis(ttl: Duration) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.saturating_add(ttl).as_millis()).unwrap_or(u64::MAX)
}

/// A tag version as stored (ASCII digits); `None` when absent or
/// unreadable.
fn parse_version(stored: Option<&[u8]>) -> Option<u64> {
    stored
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| text.parse().ok())
}

/// The key of the refresh lease of `full`: `{full}:refresh`, whose hash tag
/// puts it in `full`'s Cluster slot.
fn refresh_lease_key(full: &str) -> String {
    format!("{{{full}}}:refresh")
}

fn land(leader: Option<LeaderGuard<'_, Landing>>, landing: Landing) {
    if let Some(leader) = leader {
        leader.land(landing);
    }
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
            &[],
            || async { 1u64 },
            crate::store::always,
            |v| v,
            None,
        );
        let size = std::mem::size_of_val(&call);
        // 640 before the lease, freshness and tags (their options, the claim,
        // the stale fallback and the tag stamps live across the body's await);
        // 840 → 872 when `Error` began to keep the `RedisError` as its source
        // (64 bytes instead of 32; boxing it would hide it from a downcast of
        // `source()`); 872 → 960 with the local tier (its ticket, the
        // value's hooks and the tier handle live across the body's await).
        assert!(size <= 960, "memoize_in future is {size} bytes");
    }
}
