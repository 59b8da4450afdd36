//! The cache handle: strict operations that return errors, and the
//! fail-open memoizing path the `#[cache_memoize]` attribute calls.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::Backend;
use crate::backend::Tracking;
use crate::blocking::{block_on_io, wait_here};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::fence::Fence;
use crate::freshness::Freshness;
use crate::key::{CacheKey, KeyBuilder};
use crate::lease::LockSettings;
use crate::local_tier::{LocalStore, LocalTierState};
use crate::local_value::LocalValue;
use crate::memoizing::CallReport;
use crate::read_coalescing::ReadCoalescer;
use crate::single_flight::{Landing, SingleFlight};
use crate::stats::{Stats, StatsSnapshot};
use crate::store::{self, StorePolicy};
use crate::throttled_log::ThrottledLog;

/// A cache: a backend (Redis or in-memory), a codec and a key namespace.
///
/// Cheap to clone; clones share connections, counters and single-flight state.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cache_core::Cache;
/// use std::time::Duration;
///
/// let cache = Cache::memory(); // or Cache::builder().url("redis://127.0.0.1/").build()?
/// let price = cache
///     .get_or_compute("price:42", Some(Duration::from_secs(60)), || async { 19.99_f64 })
///     .await;
/// assert_eq!(price, 19.99);
/// assert_eq!(cache.get::<f64>("price:42").await.unwrap(), Some(19.99));
/// # }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

/// Memoized calls of one cache that look up at the same time. A lookup in
/// progress holds ~2 KB (its state and redis-rs's request); a call beyond
/// this many waits for a slot holding almost nothing, so 10,000 concurrent
/// calls do not hold 10,000 lookups' worth of memory. 512 pipelined lookups
/// keep Redis busy, so the wait costs no throughput.
pub(crate) const LOOKUP_SLOTS: usize = 512;

pub(crate) struct Inner {
    pub(crate) name: String,
    pub(crate) backend: Backend,
    pub(crate) codec: Codec,
    pub(crate) keys: KeyBuilder,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) stats: Stats,
    pub(crate) flights: SingleFlight<Landing>,
    /// What was invalidated in this process since a call started.
    pub(crate) fence: Fence,
    /// Keeps this cache's leases alive while their computations run.
    pub(crate) keeper: crate::lease::LeaseKeeper,
    /// Background refreshes in progress, one per key.
    pub(crate) refreshes: SingleFlight<()>,
    pub(crate) log: ThrottledLog,
    pub(crate) lock: LockSettings,
    pub(crate) reads: ReadCoalescer,
    pub(crate) coalesce_reads: bool,
    /// Memoized calls looking up at once (see [`LOOKUP_SLOTS`]).
    pub(crate) lookup_slots: tokio::sync::Semaphore,
    /// How long a call waits for a lookup slot: the response timeout.
    pub(crate) slot_wait: Duration,
    /// Decoded values in process memory, when the cache has a local tier.
    pub(crate) local: Option<Arc<LocalStore>>,
    /// The local tier's tracking connection (stops when dropped).
    pub(crate) _tracking: Option<Tracking>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.inner.name)
            .field("backend", &self.inner.backend)
            .field("keys", &self.inner.keys)
            .field("default_ttl", &self.inner.default_ttl)
            .finish_non_exhaustive()
    }
}

/// Where backend calls run: on the caller's runtime, or (for plain `fn`s) on
/// the crate's own I/O runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IoMode {
    Inline,
    IoRuntime,
}

/// How one memoized call behaves.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct CallOptions {
    /// Expiry of a stored value; `None` uses the cache's default ttl. A ttl
    /// longer than [`MAX_TTL`](crate::MAX_TTL) (about 146 million years,
    /// e.g. `Duration::MAX`) stores the value without expiry.
    pub ttl: Option<Duration>,
    /// Skip the lookup: compute, store and return (django's `_refresh=True`).
    pub refresh: bool,
    /// Take the cross-process stampede lock on a miss; `None` uses the
    /// cache's [`LockSettings::enabled`].
    pub lock: Option<bool>,
    /// Early refresh, stale-while-revalidate, stale-if-error (all off by
    /// default). A value is then kept in Redis for its ttl plus the longest
    /// window; early refresh and stale-while-revalidate refresh in the
    /// background only through [`Memoized::call_refreshing`](crate::memoized::Memoized::call_refreshing)
    /// (the attribute on an `async fn`).
    pub freshness: Freshness,
    /// Whether this call may be answered from (and fill) the cache's local
    /// tier, when it has one (`true` by default; `local = false` in the
    /// attribute).
    pub local: bool,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions::ttl(None)
    }
}

impl CallOptions {
    /// Options with this ttl (`None`: the cache's default). A ttl longer
    /// than [`MAX_TTL`](crate::MAX_TTL), such as `Duration::MAX`, means no
    /// expiry: Redis refuses an expiry time that does not fit an i64 of
    /// milliseconds, and the in-memory backend does the same as Redis.
    pub fn ttl(ttl: Option<Duration>) -> Self {
        Self {
            ttl,
            refresh: false,
            lock: None,
            freshness: Freshness::default(),
            local: true,
        }
    }

    /// The same options, with the local tier used or not.
    pub fn with_local(mut self, local: bool) -> Self {
        self.local = local;
        self
    }

    /// The same options, with these freshness controls.
    pub fn with_freshness(mut self, freshness: Freshness) -> Self {
        self.freshness = freshness;
        self
    }

    /// The same options, with the stampede lock on or off.
    pub fn locking(mut self, lock: bool) -> Self {
        self.lock = Some(lock);
        self
    }

    /// The same options, recomputing instead of looking up.
    pub fn refreshing(mut self) -> Self {
        self.refresh = true;
        self
    }
}

impl Cache {
    pub(crate) fn from_inner(inner: Inner) -> Cache {
        Cache {
            inner: Arc::new(inner),
        }
    }

    /// The name this cache was built with (`"default"` unless set).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// "redis at redis://host:6379/" or "in-memory", password redacted.
    pub fn describe_backend(&self) -> String {
        self.inner.backend.describe()
    }

    /// Whether this cache keeps entries in process memory.
    pub fn is_in_memory(&self) -> bool {
        self.inner.backend.is_memory()
    }

    /// The key layout of this cache.
    pub fn keys(&self) -> &KeyBuilder {
        &self.inner.keys
    }

    /// The full key stored for `key`: `{prefix}:{version}:{key}`.
    pub fn full_key(&self, key: &str) -> String {
        self.inner.keys.full_key(key)
    }

    /// The codec values are written with.
    pub fn codec(&self) -> &Codec {
        &self.inner.codec
    }

    /// The ttl used when a call gives none.
    pub fn default_ttl(&self) -> Option<Duration> {
        self.inner.default_ttl
    }

    /// A snapshot of this cache's counters.
    pub fn stats(&self) -> StatsSnapshot {
        let local = self.inner.local.as_deref().map(LocalStore::stats);
        self.inner
            .stats
            .snapshot(self.inner.backend.breaker(), local)
    }

    /// Whether the local tier serves hits from memory now, waits for its
    /// tracking connection, or turned itself off (and why); `None` without
    /// a local tier.
    pub fn local_tier_state(&self) -> Option<LocalTierState> {
        self.inner.local.as_deref().map(LocalStore::state)
    }

    /// Checks that the backend answers.
    pub async fn ping(&self) -> Result<()> {
        self.inner.backend.ping().await
    }

    /// The value stored under `key`; `Ok(None)` when there is none or it does
    /// not decode (counted in [`StatsSnapshot::decode_failures`]).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let full = self.full_key(key);
        let entry = self.inner.backend.get(&full).await?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        if crate::codec::header::Lease::is_lease(&entry) {
            return Ok(None); // being computed: no value yet
        }
        match crate::memoizing::open(&self.inner.codec, entry).await {
            Ok(payload) => Ok(self.deserialize(&full, &payload)),
            Err(e) => {
                self.decode_failure(&full, &e);
                Ok(None)
            }
        }
    }

    /// The raw stored entry (header and payload) under `key`.
    pub async fn get_entry(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.backend.get(&self.full_key(key)).await
    }

    /// Stores `value` under `key` for `ttl` (`None`: the default ttl).
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let serialized = self.inner.codec.serialize(value).map_err(Error::Encode)?;
        let meta = crate::codec::header::Meta::default();
        let no_tags = crate::codec::header::TagStamps::new();
        let (entry, _) = crate::memoizing::seal(&self.inner.codec, serialized, meta, &no_tags)
            .await
            .map_err(Error::Encode)?;
        let full = self.full_key(key);
        // Before the write: computations that started earlier must not
        // store or share their older values after it (and the SET kills
        // their leases in Redis).
        self.invalidate_local(&full);
        let written = self
            .inner
            .backend
            .set(&full, &entry, self.ttl_or_default(ttl))
            .await;
        self.forget_reads(&full);
        written
    }

    /// Deletes `key` (a user key or a [`FullKey`](crate::key::FullKey)); whether it existed.
    ///
    /// When it returns, no call that started before it stores or shares its
    /// value (in this process: the fence; in every process: the `DEL` kills
    /// the computing caller's lease, so its store fails).
    pub async fn delete(&self, key: &(impl CacheKey + ?Sized)) -> Result<bool> {
        let full = key.full_key(&self.inner.keys);
        self.invalidate_local(&full);
        let deleted = self.inner.backend.delete(&full).await;
        self.forget_reads(&full);
        deleted
    }

    /// Invalidates every value that depends on `tag` (memoized with
    /// `tags = [...]` naming it), in every process and on every node: one
    /// `SET` of a new random version into the tag's version key. Values
    /// computed before it (even those still computing: their stamps were
    /// read before) are recomputed on their next call; nothing is deleted
    /// (old entries expire with their ttl). Returns the tag's new version.
    /// With [`CacheBuilder::wait_for_replicas`](crate::CacheBuilder::wait_for_replicas)
    /// it waits for the replicas as a delete does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = cache_core::Cache::memory();
    /// let first = cache.invalidate_tag("user:7").await.unwrap();
    /// assert_ne!(cache.invalidate_tag("user:7").await.unwrap(), first);
    /// # }
    /// ```
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        // Callers from now on must not join a computation (possibly tagged)
        // that started before; its store is kept in check by its stamps.
        self.inner.flights.detach_all();
        let version = fastrand::u64(1..);
        let key = self.inner.keys.tag_key(tag);
        self.inner
            .backend
            .set_invalidating(&key, version.to_string().as_bytes())
            .await?;
        Ok(version)
    }

    /// [`invalidate_tag`](Self::invalidate_tag) for several tags (one `SET`
    /// each; they may live on different Cluster nodes).
    pub async fn invalidate_tags<T: AsRef<str>>(&self, tags: &[T]) -> Result<()> {
        for tag in tags {
            self.invalidate_tag(tag.as_ref()).await?;
        }
        Ok(())
    }

    /// Deletes every key starting with `prefix` (`SCAN` + `UNLINK` on Redis,
    /// never `KEYS`); how many were deleted.
    ///
    /// A `prefix` longer than 256 bytes also deletes user keys over 1,024
    /// bytes that share its first 256 bytes without starting with it: such
    /// keys are stored shortened to those bytes and a hash, so the rest of
    /// them cannot be compared (see [`KeyBuilder::matcher_for_prefix`]).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let matcher = self.inner.keys.matcher_for_prefix(prefix);
        self.invalidate_local_all();
        let deleted = self.inner.backend.delete_matching(&matcher).await;
        self.inner.reads.detach_all();
        deleted
    }

    /// Deletes every entry of the memoized function with this prefix, and no
    /// entry of any other function.
    pub async fn delete_function(&self, function_prefix: &str) -> Result<u64> {
        let matcher = self.inner.keys.matcher_for_function(function_prefix);
        self.invalidate_local_all();
        let deleted = self.inner.backend.delete_matching(&matcher).await;
        self.inner.reads.detach_all();
        deleted
    }

    /// The memoizing path: the value under `key` if there is one that
    /// decodes, else `compute()`'s value, stored for `ttl`.
    ///
    /// Never fails: backend trouble is counted, logged once per burst and
    /// answered by computing. Concurrent callers of one missing key in this
    /// process share one computation.
    pub async fn get_or_compute<T, F, Fut>(&self, key: &str, ttl: Option<Duration>, compute: F) -> T
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.memoize(key, CallOptions::ttl(ttl), compute, store::always, |v| v)
            .await
    }

    /// [`get_or_compute`](Self::get_or_compute) for fallible computations:
    /// only `Ok` values are stored; errors are returned and not cached.
    pub async fn try_get_or_compute<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.memoize(key, CallOptions::ttl(ttl), compute, store::ok, Ok)
            .await
    }

    /// The general memoizing path the attribute expands to.
    ///
    /// The call returns `R`; what is stored is an `S` extracted from it by
    /// `stored` (`None`: do not store this result, e.g. an `Err`), and a hit
    /// is turned back into an `R` by `wrap`.
    pub async fn memoize<R, S, F, Fut>(
        &self,
        key: &(impl CacheKey + ?Sized),
        options: CallOptions,
        compute: F,
        stored: StorePolicy<R, S>,
        wrap: impl FnOnce(S) -> R,
    ) -> R
    where
        S: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        self.memoize_reporting(key, options, &[], compute, stored, wrap, None)
            .await
            .0
    }

    /// [`memoize`](Self::memoize), also saying how the call was answered
    /// (for per-function numbers).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn memoize_reporting<R, S, F, Fut>(
        &self,
        key: &(impl CacheKey + ?Sized),
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
        // Boxed: the nested state machine is deep enough to overflow rustc's
        // query depth limit in small user crates (seen in doctests).
        let full = key.full_key(&self.inner.keys);
        let memoizing = self.memoize_in(
            IoMode::Inline,
            &full,
            options,
            tags,
            compute,
            stored,
            wrap,
            local,
        );
        Box::pin(memoizing).await
    }

    /// [`memoize`](Self::memoize) for plain (blocking) functions: callable
    /// from any thread, with or without a tokio runtime, including
    /// `spawn_blocking`. Backend I/O runs on the crate's I/O runtime;
    /// `compute` runs on the calling thread.
    pub fn memoize_blocking<R, S, F>(
        &self,
        key: &(impl CacheKey + ?Sized),
        options: CallOptions,
        compute: F,
        stored: StorePolicy<R, S>,
        wrap: impl FnOnce(S) -> R,
    ) -> R
    where
        S: Serialize + DeserializeOwned,
        F: FnOnce() -> R,
    {
        self.memoize_blocking_reporting(key, options, &[], compute, stored, wrap, None)
            .0
    }

    /// [`memoize_blocking`](Self::memoize_blocking), also saying how the
    /// call was answered.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn memoize_blocking_reporting<R, S, F>(
        &self,
        key: &(impl CacheKey + ?Sized),
        options: CallOptions,
        tags: &[String],
        compute: F,
        stored: StorePolicy<R, S>,
        wrap: impl FnOnce(S) -> R,
        local: Option<LocalValue<S>>,
    ) -> (R, CallReport)
    where
        S: Serialize + DeserializeOwned,
        F: FnOnce() -> R,
    {
        let mode = if self.inner.backend.is_memory() {
            IoMode::Inline
        } else {
            IoMode::IoRuntime
        };
        let full = key.full_key(&self.inner.keys);
        wait_here(Box::pin(self.memoize_in(
            mode,
            &full,
            options,
            tags,
            || async { compute() },
            stored,
            wrap,
            local,
        )))
    }

    /// [`get_or_compute`](Self::get_or_compute) for plain (blocking) code.
    pub fn get_or_compute_blocking<T, F>(&self, key: &str, ttl: Option<Duration>, compute: F) -> T
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T,
    {
        self.memoize_blocking(key, CallOptions::ttl(ttl), compute, store::always, |v| v)
    }

    /// Runs a strict operation from plain code (any thread, any context).
    pub fn block_on<F, Fut, T>(&self, op: F) -> T
    where
        F: FnOnce(Cache) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        block_on_io(op(self.clone()))
    }

    pub(crate) fn backend_error(&self, operation: &str, error: &Error) {
        Stats::bump(&self.inner.stats.errors);
        self.inner.log.warn(&self.inner.name, operation, error);
    }

    /// The ttl to store with; beyond [`MAX_TTL`](crate::MAX_TTL), none.
    pub(crate) fn ttl_or_default(&self, ttl: Option<Duration>) -> Option<Duration> {
        crate::ttl::expiring(ttl.or(self.inner.default_ttl))
    }
}
