//! The local tier: decoded values in process memory, in front of Redis,
//! served only while this process provably knows of every invalidation
//! older than the staleness bound.
//!
//! Three things make a local hit safe:
//! - **the freshness lease**: the tracking connections' heartbeats set
//!   `fresh_until` = the earliest, over the tracked primaries, of the send
//!   time of the last answered check + bound; a check
//!   sent after a writer's acknowledgement returns after that write's
//!   invalidation push, so while `now < fresh_until` every invalidation
//!   acknowledged before `now - bound` has been applied here;
//! - **the local fence**: a Redis read or a computation takes a
//!   [`LocalTicket`] before it starts; an invalidation (a push, or this
//!   process's own write) advances the key's stripe before removing the
//!   entry, and an insert is undone when the ticket moved (insert, then
//!   check: whichever comes second sees the other);
//! - **the epoch**: a lost or re-established tracking connection, a
//!   changed set of Cluster primaries or a `FLUSHALL` makes every entry
//!   invalid at once (a late heartbeat only stops hits until it answers).

use std::any::Any;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::fence::{Fence, Ticket};
use crate::sharded_counter::ShardedCounter;

/// Settings of a cache's local tier (see
/// [`CacheBuilder::local_tier`](crate::CacheBuilder::local_tier)).
///
/// ```
/// use cache_core::{Cache, LocalTier};
/// use std::time::Duration;
///
/// let cache = Cache::builder()
///     .url("redis://127.0.0.1:6379/")
///     .local_tier(LocalTier::new(64 << 20).staleness_bound(Duration::from_millis(5)))
///     .build()
///     .unwrap();
/// # drop(cache);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalTier {
    pub(crate) budget_bytes: u64,
    pub(crate) staleness_bound: Duration,
    pub(crate) max_value_bytes: u64,
    pub(crate) tracking_url: Option<String>,
}

impl LocalTier {
    /// A local tier holding at most about `budget_bytes` of values (their
    /// estimated size in memory, see [`max_value_bytes`](Self::max_value_bytes)),
    /// with the default staleness bound of 5 ms.
    pub fn new(budget_bytes: u64) -> Self {
        LocalTier {
            budget_bytes,
            staleness_bound: Duration::from_millis(5),
            max_value_bytes: 1 << 20,
            tracking_url: None,
        }
    }

    /// After an invalidation is acknowledged in any process, no process
    /// serves the old value from memory for longer than this (default
    /// 5 ms). A shorter bound costs more heartbeat PINGs (one per
    /// bound / 4 while hits happen) and more reads from Redis when a
    /// heartbeat is late.
    pub fn staleness_bound(mut self, bound: Duration) -> Self {
        self.staleness_bound = bound;
        self
    }

    /// Values whose estimated size in memory is above this (default 1 MiB)
    /// are not admitted: they are read from Redis on every call. The
    /// estimate: 128 bytes + `size_of::<T>()` + the serialized bytes + 48
    /// bytes per string, binary, array and map in it (MessagePack; other
    /// serializers: 4 × the serialized bytes).
    pub fn max_value_bytes(mut self, bytes: u64) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// Connects the tracking connection to this URL instead of the cache's
    /// (same server, another route: a proxy, a sidecar). Data reads keep
    /// the cache's URL. A single server only: on a Cluster, each primary is
    /// reached at the address the cluster gives.
    pub fn tracking_url(mut self, url: impl Into<String>) -> Self {
        self.tracking_url = Some(url.into());
        self
    }
}

/// The stored value, type-erased, with what decides whether it may be served.
struct Entry {
    value: Box<dyn Any + Send + Sync>,
    /// The epoch it was inserted in.
    epoch: u64,
    /// Its expiry in Redis, in nanoseconds since [`LocalStore::origin`].
    expires: u64,
    weight: u64,
}

/// A key hash is already uniformly distributed: hashing it again for the
/// map's buckets would only cost time.
#[derive(Clone, Copy, Default)]
struct KeyHashPassThrough;

impl BuildHasher for KeyHashPassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed; keep something sensible anyway.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64 ^ (key >> 64) as u64;
    }
}

/// The 128-bit hash a full key is kept under (also the local fence's stripe).
pub(crate) fn key_hash(full: impl AsRef<[u8]>) -> u128 {
    xxhash_rust::xxh3::xxh3_128(full.as_ref())
}

/// What a reader or computation saw before it started: the key's stripe
/// and the epoch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalTicket {
    fence: Ticket,
    epoch: u64,
}

/// Why the tier serves nothing from memory right now, or that it does.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalTierState {
    /// Tracking is on and the last heartbeat is recent: hits are served
    /// from memory.
    Serving,
    /// The tracking connection is being (re-)established, or its heartbeat
    /// is late: every call reads Redis until it answers.
    Waiting,
    /// The tier turned itself off for good (the reason, e.g. `CLIENT
    /// TRACKING` refused by an ACL); calls work as without it.
    Off(String),
}

/// The counters of a local tier, in [`StatsSnapshot`](crate::StatsSnapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalTierStats {
    /// Calls answered from memory.
    pub hits: u64,
    /// Calls that looked in memory and went on to Redis (absent, expired,
    /// or the freshness lease had lapsed).
    pub misses: u64,
    /// Values put in memory.
    pub inserts: u64,
    /// Inserts undone because an invalidation of their key (or an epoch
    /// change) came while they were being read or computed.
    pub fence_rejections: u64,
    /// Times everything in memory was invalidated at once (a lost or new
    /// tracking connection, a changed set of Cluster primaries, a
    /// `FLUSHALL`).
    pub epoch_bumps: u64,
    /// Invalidation pushes received (keys invalidated).
    pub pushes: u64,
    /// Values evicted to stay within the byte budget.
    pub evictions: u64,
    /// Estimated bytes held now.
    pub bytes: u64,
    /// Entries held now.
    pub entries: u64,
    /// How long ago the PING that the current freshness lease rests on was
    /// sent; `None` when there is none.
    pub lease_age: Option<Duration>,
    /// Round trip of the last heartbeat check: how far behind Redis the
    /// tracking connection is now (pushes travel the same way).
    pub push_lag: Option<Duration>,
}

/// The members of the freshness lease: hits are served only while every
/// one of them was renewed less than the bound ago.
#[derive(Debug)]
struct LeaseMembers {
    /// Per member: serving allowed before this (nanoseconds since origin).
    until: Vec<u64>,
    /// Per member: when its last answered check was sent.
    sent: Vec<u64>,
}

impl LeaseMembers {
    fn new(count: usize) -> Self {
        LeaseMembers {
            until: vec![0; count],
            sent: vec![0; count],
        }
    }
}

/// One cache's local tier at run time.
pub(crate) struct LocalStore {
    /// Lock-free reads (`peek_with`): a hot key's hits write no shared
    /// memory. Removed entries are dropped once no reader can see them.
    map: scc::HashIndex<u128, Entry, KeyHashPassThrough>,
    fence: Fence,
    epoch: AtomicU64,
    /// Nanoseconds since `origin` before which hits may be served.
    fresh_until: AtomicU64,
    /// When the PING behind `fresh_until` was sent (nanoseconds since `origin`).
    lease_sent: AtomicU64,
    /// The lease's members; `fresh_until` is the earliest of theirs.
    members: Mutex<LeaseMembers>,
    last_rtt_nanos: AtomicU64,
    origin: Instant,
    settings: LocalTier,
    weight: AtomicU64,
    evicting: AtomicBool,
    /// Where the next eviction sweep starts in the hash space.
    evict_hand: AtomicU64,
    off: Mutex<Option<String>>,
    is_off: AtomicBool,
    /// Set by a lookup that found the lease lapsed: the heartbeat hurries.
    pub(crate) wake: tokio::sync::Notify,
    /// Set by the first lookup that wakes the heartbeats, cleared by them:
    /// the others skip the `Notify`'s lock.
    wake_sent: AtomicBool,
    hits: ShardedCounter,
    misses: ShardedCounter,
    inserts: AtomicU64,
    fence_rejections: AtomicU64,
    epoch_bumps: AtomicU64,
    pushes: AtomicU64,
    evictions: AtomicU64,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("settings", &self.settings)
            .field("entries", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    pub(crate) fn new(settings: LocalTier) -> Self {
        LocalStore {
            map: scc::HashIndex::with_hasher(KeyHashPassThrough),
            fence: Fence::default(),
            epoch: AtomicU64::new(0),
            fresh_until: AtomicU64::new(0),
            lease_sent: AtomicU64::new(0),
            members: Mutex::new(LeaseMembers::new(1)),
            last_rtt_nanos: AtomicU64::new(u64::MAX),
            origin: Instant::now(),
            settings,
            weight: AtomicU64::new(0),
            evicting: AtomicBool::new(false),
            evict_hand: AtomicU64::new(0),
            off: Mutex::new(None),
            is_off: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            wake_sent: AtomicBool::new(false),
            hits: ShardedCounter::default(),
            misses: ShardedCounter::default(),
            inserts: AtomicU64::new(0),
            fence_rejections: AtomicU64::new(0),
            epoch_bumps: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_off(&self) -> bool {
        self.is_off.load(Ordering::Relaxed)
    }

    pub(crate) fn settings(&self) -> &LocalTier {
        &self.settings
    }

    fn nanos_since_origin(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    fn now(&self) -> u64 {
        self.nanos_since_origin(Instant::now())
    }

    /// The value under `hash`, when the freshness lease holds, it was
    /// inserted in the current epoch, it has not expired, and it is an `S`
    /// (`take` clones it out).
    #[inline]
    pub(crate) fn get<S>(
        &self,
        hash: u128,
        take: fn(&(dyn Any + Send + Sync)) -> Option<S>,
    ) -> Option<S> {
        let now = self.now();
        if now >= self.fresh_until.load(Ordering::Acquire) {
            if !self.is_off.load(Ordering::Relaxed) {
                self.wake_heartbeats();
            }
            return None;
        }
        let found = self
            .map
            .peek_with(&hash, |_, entry| {
                (entry.epoch == self.epoch.load(Ordering::Acquire) && now < entry.expires)
                    .then(|| take(&*entry.value))
                    .flatten()
            })
            .flatten();
        if found.is_some() {
            self.hits.add(1);
        }
        found
    }

    /// Wakes the idle heartbeats (once until they answer).
    fn wake_heartbeats(&self) {
        if !self.wake_sent.load(Ordering::Relaxed) && !self.wake_sent.swap(true, Ordering::AcqRel) {
            self.wake.notify_waiters();
        }
    }

    /// A heartbeat woke or checked: the next lapsed lookup wakes them again.
    pub(crate) fn heartbeat_awake(&self) {
        self.wake_sent.store(false, Ordering::Release);
    }

    /// Counts a call that could have been answered from memory and went
    /// on to Redis (counted once, where its Redis lookup starts).
    pub(crate) fn count_miss(&self) {
        self.misses.add(1);
    }

    /// Taken before the Redis read or the computation whose value may be
    /// inserted.
    pub(crate) fn ticket(&self, hash: u128) -> LocalTicket {
        // Epoch first, as in the fence: a bump after this read is seen later.
        let epoch = self.epoch.load(Ordering::Acquire);
        LocalTicket {
            fence: self.fence.ticket_hashed(hash as u64),
            epoch,
        }
    }

    fn current(&self, ticket: &LocalTicket) -> bool {
        self.fence.current(&ticket.fence) && self.epoch.load(Ordering::Acquire) == ticket.epoch
    }

    /// Puts a value read or computed under `ticket` in memory, unless an
    /// invalidation came since the ticket. `expires_at_millis` is its
    /// logical expiry (Unix ms, 0 = unknown: not admitted), `weight` its
    /// estimated size.
    pub(crate) fn insert(
        &self,
        hash: u128,
        ticket: &LocalTicket,
        value: Box<dyn Any + Send + Sync>,
        expires_at_millis: u64,
        weight: u64,
    ) {
        if weight > self.settings.max_value_bytes || expires_at_millis == 0 {
            return;
        }
        let remaining = expires_at_millis.saturating_sub(crate::freshness::now_millis());
        if remaining == 0 {
            return;
        }
        let expires = self
            .now()
            .saturating_add(remaining.saturating_mul(1_000_000));
        if !self.current(ticket) {
            self.fence_rejections.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let entry = Entry {
            value,
            epoch: ticket.epoch,
            expires,
            weight,
        };
        self.weight.fetch_add(weight, Ordering::SeqCst);
        match self.map.entry_sync(hash) {
            scc::hash_index::Entry::Occupied(mut occupied) => {
                self.unweigh(occupied.get().weight);
                occupied.update(entry);
            }
            scc::hash_index::Entry::Vacant(vacant) => {
                vacant.insert_entry(entry);
            }
        }
        // Insert, then check: an invalidation that bumped after the check
        // above removes this entry after it; one that bumped before this
        // check is seen here.
        if !self.current(ticket) {
            self.fence_rejections.fetch_add(1, Ordering::Relaxed);
            self.remove(hash);
            return;
        }
        self.inserts.fetch_add(1, Ordering::Relaxed);
        if self.weight.load(Ordering::SeqCst) > self.settings.budget_bytes {
            self.evict();
        }
    }

    /// Removes `hash`'s entry; whether there was one.
    fn remove(&self, hash: u128) -> bool {
        let mut weight = 0;
        let removed = self.map.remove_if_sync(&hash, |entry| {
            weight = entry.weight;
            true
        });
        if removed {
            self.unweigh(weight);
        }
        removed
    }

    /// Takes `weight` off the byte count, never below zero (a `retain`
    /// that meets a resize may visit an entry twice).
    fn unweigh(&self, weight: u64) {
        let _ = self
            .weight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                Some(held.saturating_sub(weight))
            });
    }

    /// An invalidation of one key (a push, or this process's own write):
    /// the stripe moves first, then the entry goes.
    pub(crate) fn invalidate(&self, hash: u128) {
        self.fence.invalidate_hashed(hash as u64);
        self.remove(hash);
    }

    /// An invalidation pushed by Redis for `key`.
    pub(crate) fn invalidate_pushed(&self, key: &[u8]) {
        self.invalidate_pushed_hash(key_hash(key));
    }

    fn invalidate_pushed_hash(&self, hash: u128) {
        self.pushes.fetch_add(1, Ordering::Relaxed);
        self.invalidate(hash);
    }

    /// Everything in memory becomes invalid at once (O(1)); the memory is
    /// given back by [`clear`](Self::clear), off the hot path.
    pub(crate) fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.epoch_bumps.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes every entry (after an epoch bump).
    pub(crate) fn clear(&self) {
        self.map.retain_sync(|_, entry| {
            self.unweigh(entry.weight);
            false
        });
    }

    /// No hit is served until every member of the lease is renewed again.
    pub(crate) fn lapse(&self) {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        members.until.fill(0);
        self.fresh_until.store(0, Ordering::Release);
    }

    /// The lease gets `count` members (one per tracked primary, plus the
    /// topology check on a Cluster), none renewed yet: nothing is served
    /// until each has been.
    pub(crate) fn set_lease_members(&self, count: usize) {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        *members = LeaseMembers::new(count.max(1));
        self.fresh_until.store(0, Ordering::Release);
    }

    /// A heartbeat PING sent at `sent` was answered (after every push that
    /// Redis sent before it): hits may be served until `sent + bound`
    /// (a single-member lease, as the tests use it).
    #[cfg(test)]
    pub(crate) fn renew(&self, sent: Instant) {
        self.renew_member(0, sent);
    }

    /// Member `member`'s check sent at `sent` was answered: hits may be
    /// served until the earliest of the members' `sent + bound`.
    pub(crate) fn renew_member(&self, member: usize, sent: Instant) {
        let sent_nanos = self.nanos_since_origin(sent);
        let until = sent_nanos.saturating_add(
            u64::try_from(self.settings.staleness_bound.as_nanos()).unwrap_or(u64::MAX),
        );
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = members.until.get_mut(member) else {
            return;
        };
        *slot = (*slot).max(until);
        members.sent[member] = members.sent[member].max(sent_nanos);
        let earliest = members.until.iter().copied().min().unwrap_or(0);
        let oldest = members.sent.iter().copied().min().unwrap_or(0);
        // Under the lock: a lapse ordered after this store is not undone.
        self.fresh_until.store(earliest, Ordering::Release);
        self.lease_sent.store(oldest, Ordering::Release);
        drop(members);
        let rtt = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_rtt_nanos.store(rtt, Ordering::Relaxed);
    }

    /// Whether hits are being served now.
    pub(crate) fn serving(&self) -> bool {
        self.now() < self.fresh_until.load(Ordering::Acquire)
    }

    /// Lookups so far (hits and misses): the heartbeat keeps its fast pace
    /// while this moves.
    pub(crate) fn lookups(&self) -> u64 {
        self.hits.sum() + self.misses.sum()
    }

    /// Turns the tier off for good (logged once by the caller).
    pub(crate) fn turn_off(&self, reason: String) {
        self.lapse();
        self.bump_epoch();
        *self.off.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.is_off.store(true, Ordering::Release);
        self.clear();
    }

    pub(crate) fn state(&self) -> LocalTierState {
        if let Some(reason) = &*self.off.lock().unwrap_or_else(|p| p.into_inner()) {
            return LocalTierState::Off(reason.clone());
        }
        if self.serving() {
            LocalTierState::Serving
        } else {
            LocalTierState::Waiting
        }
    }

    pub(crate) fn stats(&self) -> LocalTierStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let sent = read(&self.lease_sent);
        let now = self.now();
        let rtt = read(&self.last_rtt_nanos);
        LocalTierStats {
            hits: self.hits.sum(),
            misses: self.misses.sum(),
            inserts: read(&self.inserts),
            fence_rejections: read(&self.fence_rejections),
            epoch_bumps: read(&self.epoch_bumps),
            pushes: read(&self.pushes),
            evictions: read(&self.evictions),
            bytes: read(&self.weight),
            entries: self.map.len() as u64,
            lease_age: (sent > 0).then(|| Duration::from_nanos(now.saturating_sub(sent))),
            push_lag: (rtt != u64::MAX).then(|| Duration::from_nanos(rtt)),
        }
    }

    /// Evicts entries until the tier holds at most 90 % of its budget: a
    /// sweep over the hash space (a clock hand over randomly placed keys),
    /// removing the slice after the hand whose share of the keys matches
    /// the share of the weight to give back, then moving the hand past it.
    /// Every key is evicted once per turn of the hand, hot or not (no
    /// recency is kept: a hit stays free of writes). One caller evicts at a
    /// time; the others go on.
    fn evict(&self) {
        // SeqCst on `weight` and `evicting`: an insert that adds weight and
        // finds another caller evicting is seen by that caller's check after
        // it stops, or finds it stopped and evicts itself.
        while !self.evicting.swap(true, Ordering::SeqCst) {
            let evicted = self.evict_once();
            self.evicting.store(false, Ordering::SeqCst);
            // Done when within budget, or when a sweep found nothing to
            // evict (the weight of entries still being inserted).
            if evicted == 0 || self.weight.load(Ordering::SeqCst) <= self.settings.budget_bytes {
                return;
            }
        }
    }

    /// One sweep; how many entries it removed.
    fn evict_once(&self) -> u64 {
        let held = self.weight.load(Ordering::Relaxed);
        let target = self.settings.budget_bytes / 10 * 9;
        let excess = held.saturating_sub(target);
        if excess == 0 {
            return 0;
        }
        let share = (excess as f64 / held.max(1) as f64).min(1.0);
        let window = (share * u64::MAX as f64) as u64;
        let hand = self.evict_hand.load(Ordering::Relaxed);
        let mut victims = Vec::new();
        self.map.iter_sync(|hash, _| {
            if (*hash as u64).wrapping_sub(hand) <= window {
                victims.push(*hash);
            }
            true
        });
        let evicted = victims.iter().filter(|hash| self.remove(**hash)).count() as u64;
        self.evict_hand
            .store(hand.wrapping_add(window).wrapping_add(1), Ordering::Relaxed);
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> LocalStore {
        let store = LocalStore::new(LocalTier::new(1 << 20));
        store.renew(Instant::now());
        store
    }

    fn take_u64(value: &(dyn Any + Send + Sync)) -> Option<u64> {
        value.downcast_ref::<u64>().copied()
    }

    fn later() -> u64 {
        crate::freshness::now_millis() + 60_000
    }

    #[test]
    fn a_value_inserted_under_a_current_ticket_is_served() {
        let store = store();
        let ticket = store.ticket(7);
        store.insert(7, &ticket, Box::new(42u64), later(), 200);
        assert_eq!(store.get(7, take_u64), Some(42));
        assert_eq!(store.get(8, take_u64), None);
    }

    #[test]
    fn a_value_of_another_type_is_a_miss() {
        let store = store();
        let ticket = store.ticket(7);
        store.insert(7, &ticket, Box::new("text"), later(), 200);
        assert_eq!(store.get(7, take_u64), None);
    }

    #[test]
    fn with_two_members_both_must_renew() {
        let store = LocalStore::new(LocalTier::new(1 << 20));
        store.set_lease_members(2);
        let ticket = store.ticket(7);
        store.insert(7, &ticket, Box::new(42u64), later(), 200);
        store.renew_member(0, Instant::now());
        assert_eq!(store.get(7, take_u64), None, "member 1 never answered");
        store.renew_member(1, Instant::now());
        assert_eq!(store.get(7, take_u64), Some(42));
        store.lapse();
        store.renew_member(1, Instant::now());
        assert_eq!(store.get(7, take_u64), None, "member 0 lapsed");
        // A member whose last answered check was sent more than the bound
        // ago holds the lease back.
        let long_ago = Instant::now();
        std::thread::sleep(store.settings().staleness_bound + Duration::from_millis(1));
        store.renew_member(1, Instant::now());
        store.renew_member(0, long_ago);
        assert_eq!(store.get(7, take_u64), None);
        store.renew_member(0, Instant::now());
        assert_eq!(store.get(7, take_u64), Some(42));
    }

    #[test]
    fn nothing_is_served_once_the_lease_lapses() {
        let store = store();
        let ticket = store.ticket(7);
        store.insert(7, &ticket, Box::new(42u64), later(), 200);
        store.lapse();
        assert_eq!(store.get(7, take_u64), None);
        store.renew(Instant::now());
        assert_eq!(store.get(7, take_u64), Some(42));
    }

    #[test]
    fn an_epoch_bump_invalidates_everything() {
        let store = store();
        let ticket = store.ticket(7);
        store.insert(7, &ticket, Box::new(42u64), later(), 200);
        store.bump_epoch();
        assert_eq!(store.get(7, take_u64), None);
        // And a read that started before the bump is refused.
        store.insert(7, &ticket, Box::new(43u64), later(), 200);
        assert_eq!(store.get(7, take_u64), None);
        assert_eq!(store.stats().fence_rejections, 1);
    }

    #[test]
    fn the_budget_holds() {
        let store = LocalStore::new(LocalTier::new(100_000));
        store.renew(Instant::now());
        for hash in 0..10_000u128 {
            let ticket = store.ticket(hash);
            store.insert(hash, &ticket, Box::new(hash as u64), later(), 200);
        }
        let stats = store.stats();
        assert!(stats.bytes <= 100_000, "{stats:?}");
        assert!(stats.evictions > 0);
    }

    #[test]
    fn large_values_and_values_without_expiry_are_not_admitted() {
        let store = store();
        let ticket = store.ticket(1);
        store.insert(1, &ticket, Box::new(1u64), later(), (1 << 20) + 1);
        store.insert(2, &store.ticket(2), Box::new(1u64), 0, 200);
        assert_eq!(store.get(1, take_u64), None);
        assert_eq!(store.get(2, take_u64), None);
    }

    /// One step of an interleaving of readers (ticket, GET executed by
    /// Redis, reply inserted), a writer (a write executed by Redis, whose
    /// push is delivered later, in order) and epoch bumps.
    #[derive(Clone, Debug)]
    enum Step {
        Capture(u8),
        Execute(u8),
        Insert(u8),
        Write,
        Push,
        Bump,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0..3u8).prop_map(Step::Capture),
            (0..3u8).prop_map(Step::Execute),
            (0..3u8).prop_map(Step::Insert),
            Just(Step::Write),
            Just(Step::Push),
            Just(Step::Bump),
        ]
    }

    #[derive(Clone, Copy, Default)]
    struct Reader {
        ticket: Option<LocalTicket>,
        /// The version its GET returned.
        read: Option<u64>,
    }

    proptest::proptest! {
        /// Whatever the order of captures, replies, writes, pushes and
        /// epoch bumps: once every push of the writes so far has been
        /// applied, memory holds nothing or the latest version.
        #[test]
        fn never_a_stale_entry(steps in proptest::collection::vec(step(), 1..60)) {
            let store = store();
            let key = 99u128;
            let mut version = 0u64; // in Redis
            let mut pending_pushes = 0usize;
            let mut readers = [Reader::default(); 3];
            for step in steps {
                match step {
                    Step::Capture(r) => {
                        readers[r as usize] = Reader { ticket: Some(store.ticket(key)), read: None };
                    }
                    Step::Execute(r) => {
                        let reader = &mut readers[r as usize];
                        if reader.ticket.is_some() && reader.read.is_none() {
                            reader.read = Some(version);
                        }
                    }
                    Step::Insert(r) => {
                        let reader = &mut readers[r as usize];
                        if let (Some(ticket), Some(read)) = (reader.ticket, reader.read) {
                            store.insert(key, &ticket, Box::new(read), later(), 200);
                            *reader = Reader::default();
                        }
                    }
                    Step::Write => {
                        version += 1;
                        pending_pushes += 1;
                    }
                    Step::Push => {
                        if pending_pushes > 0 {
                            pending_pushes -= 1;
                            store.invalidate(key);
                        }
                    }
                    Step::Bump => store.bump_epoch(),
                }
                if pending_pushes == 0 {
                    let held = store.get(key, take_u64);
                    proptest::prop_assert!(
                        held.is_none() || held == Some(version),
                        "held {:?}, latest {}", held, version
                    );
                }
            }
        }
    }

    /// The orders one by one: a push before the capture, between capture
    /// and reply, and after the insert.
    #[test]
    fn a_push_in_any_place_leaves_no_stale_entry() {
        // After the insert: removes it.
        let s = store();
        let ticket = s.ticket(5);
        s.insert(5, &ticket, Box::new(1u64), later(), 200);
        s.invalidate_pushed_hash(5);
        assert_eq!(s.get(5, take_u64), None);
        // Between capture and reply: the insert is refused.
        let s = store();
        let ticket = s.ticket(5);
        s.invalidate_pushed_hash(5);
        s.insert(5, &ticket, Box::new(1u64), later(), 200);
        assert_eq!(s.get(5, take_u64), None);
        assert_eq!(s.stats().fence_rejections, 1);
        // Before the capture: the read came after it, the value is new.
        let s = store();
        s.invalidate_pushed_hash(5);
        let ticket = s.ticket(5);
        s.insert(5, &ticket, Box::new(2u64), later(), 200);
        assert_eq!(s.get(5, take_u64), Some(2));
    }

    /// Four threads churning 200,000 distinct keys through a small budget:
    /// the byte count matches what is held and stays within the budget.
    /// (An earlier map grew without bound under this load; the memory
    /// itself is measured by `cargo bench --bench local_tier_memory`.)
    #[test]
    fn churn_from_many_threads_stays_within_the_budget() {
        let store = std::sync::Arc::new(LocalStore::new(LocalTier::new(1 << 20)));
        store.renew(Instant::now() + Duration::from_secs(600));
        let threads: Vec<_> = (0..4u128)
            .map(|thread| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..50_000u64 {
                        let key = xxhash_rust::xxh3::xxh3_128(
                            &(thread << 64 | u128::from(i)).to_le_bytes(),
                        );
                        let ticket = store.ticket(key);
                        store.insert(key, &ticket, Box::new(i), later(), 1_000);
                        // Served, or already evicted by another thread.
                        let found = store.get(key, take_u64);
                        assert!(found.is_none() || found == Some(i), "{found:?}");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let stats = store.stats();
        let mut held = 0;
        store.map.iter_sync(|_, entry| {
            held += entry.weight;
            true
        });
        assert_eq!(stats.bytes, held);
        assert!(stats.bytes <= 1 << 20, "{stats:?}");
        assert_eq!(stats.inserts, 200_000);
        assert_eq!(stats.evictions + stats.entries, 200_000, "{stats:?}");
    }
}
