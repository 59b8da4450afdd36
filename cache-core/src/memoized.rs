//! What a `#[cache_memoize]` function does at run time.
//!
//! The attribute expands a memoized function into a few calls on a
//! [`Memoized`]: where its entries live (cache, function prefix, ttl), the
//! key of this call built from [`KeyPart`]s, then [`Memoized::call`] (or
//! [`Memoized::call_blocking`] for a plain `fn`). Everything that can be an
//! ordinary function lives here, so the generated code stays a thin shim.

use std::borrow::Cow;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::{Cache, CallOptions};
use crate::error::CodecError;
use crate::function_stats::{self, Outcome};
use crate::key::{args_hash, FullKey};
pub use crate::local_value::{LocalByClone, LocalNever, LocalProbe, LocalValue};
use crate::memoizing::{Answer, CallReport};
use crate::store::{self, StorePolicy};

/// What the local tier's fast path of a memoized call found: the result,
/// or the call's key for the rest of the path.
#[derive(Debug)]
pub enum LocalLookup<R> {
    /// Answered from memory (counted).
    Hit(R),
    /// Not in memory (or no tier): the key, for [`Memoized::call`].
    Miss(Result<FullKey, CodecError>),
}

/// The first step of a memoized call that may use the local tier (no
/// `local = false`, no tags, no freshness windows), before anything else
/// is built: the key of `parts` under `prefix` and, when the cache has a
/// local tier, the value from memory. A hit is counted here;
/// the caller runs its `hit` callback and, in async code, awaits
/// [`yield_now_and_then`].
///
/// ```
/// use cache_core::memoized::{key_part, local_lookup, LocalLookup, Policy};
/// use cache_core::Cache;
///
/// let cache = Cache::memory(); // no local tier: always a miss with the key
/// let policy = Policy::<u64, _>::always();
/// match local_lookup(&cache, "docs::f", &[key_part(&1u8)], &policy) {
///     LocalLookup::Hit(_) => unreachable!(),
///     LocalLookup::Miss(key) => assert!(key.unwrap().as_str().starts_with("memo:1:docs::f:")),
/// }
/// ```
pub fn local_lookup<R, S>(
    cache: &Cache,
    prefix: &str,
    parts: &[KeyPart<'_>],
    policy: &Policy<R, S>,
) -> LocalLookup<R> {
    let keys = cache.keys();
    let args = match args_hash(parts) {
        Ok(args) => args,
        Err(e) => return LocalLookup::Miss(Err(e)),
    };
    if let Some(how) = policy.local {
        // The tier's key is the hash of the full key's bytes, which are
        // built only on a miss.
        if let Some(value) = cache.local_get(|| keys.function_key_hash(prefix, args), how) {
            function_stats::record_local_hit(prefix);
            return LocalLookup::Hit((policy.wrap)(value));
        }
    }
    LocalLookup::Miss(Ok(keys.function_key_of(prefix, args)))
}

/// Runs a memoized function's `hit` callback on its arguments (for a hit
/// from [`local_lookup`]; [`Memoized::call`] runs it for the others).
pub fn hit_callback<Args>(args: &Args, on_hit: impl FnOnce(&Args)) {
    on_hit(args);
}

impl<S> LocalProbe<S> {
    /// The probe for `policy`'s stored type.
    pub fn of<R>(_policy: &Policy<R, S>) -> Self {
        LocalProbe(std::marker::PhantomData)
    }
}

/// Lets the runtime run its timers and other tasks now and then: a task
/// whose calls are all answered from memory would otherwise never yield
/// (`tokio::task::coop::consume_budget`; outside tokio, nothing).
pub async fn yield_now_and_then() {
    tokio::task::coop::consume_budget().await;
}

/// One value that goes into a key: an argument, the `key = …` expression,
/// the `extra = …` expression or the name of a generic type parameter.
pub type KeyPart<'a> = &'a dyn erased_serde::Serialize;

/// `value` as a [`KeyPart`]. The generated code calls this once per
/// argument, spanned at that argument, so a non-`Serialize` argument is
/// reported where it is declared.
pub fn key_part<T: Serialize>(value: &T) -> KeyPart<'_> {
    value
}

/// The default function prefix of a method: `{type name of Self}::{function}`,
/// so two types in one module with a method of the same name never share
/// entries. `std::any::type_name` may change between compiler releases; set
/// `prefix = "…"` when entries must outlive a compiler upgrade.
pub fn method_prefix<T: ?Sized>(function: &str) -> String {
    format!("{}::{function}", std::any::type_name::<T>())
}

/// What `ttl = <expr>` accepts.
#[diagnostic::on_unimplemented(
    message = "`ttl = <expression>` must be a `std::time::Duration`, not `{Self}`",
    label = "write `Duration::from_secs(..)` here; only a literal number is read as seconds (`ttl = 300`)"
)]
pub trait Ttl {
    /// The expiry.
    fn into_duration(self) -> Duration;
}

impl Ttl for Duration {
    fn into_duration(self) -> Duration {
        self
    }
}

/// Which results of a call are stored and how a stored value becomes a
/// result again (see [`crate::store`]).
pub struct Policy<R, S> {
    stored: StorePolicy<R, S>,
    wrap: fn(S) -> R,
    local: Option<LocalValue<S>>,
}

impl<R, S> Policy<R, S> {
    /// Keeps values in the cache's local tier (when it has one) this way;
    /// `None` (the default) reads Redis on every call. The attribute sets
    /// it for every return type that can be kept (see [`LocalValue`]).
    pub fn local(mut self, local: Option<LocalValue<S>>) -> Self {
        self.local = local;
        self
    }
}

// The bounds sit on the constructors, not the impls, so a return type that
// cannot be cached is reported as "`T: Serialize` is not satisfied" with
// serde's hint to derive it.
impl<R> Policy<R, R> {
    /// Store every result (the default, `cache_errors = true`, and
    /// `cache_none = true`).
    pub fn always() -> Self
    where
        R: Serialize + DeserializeOwned,
    {
        Policy {
            stored: store::always,
            wrap: std::convert::identity,
            local: None,
        }
    }
}

impl<T, E> Policy<Result<T, E>, T> {
    /// Store only the `Ok` value of a `Result` (the default for `Result`);
    /// the error type needs no serde impls.
    pub fn ok() -> Self
    where
        T: Serialize + DeserializeOwned,
    {
        Policy {
            stored: store::ok,
            wrap: Ok,
            local: None,
        }
    }
}

impl<T> Policy<Option<T>, Option<T>> {
    /// Store `Some`, never `None` (`cache_none = false`).
    pub fn some() -> Self
    where
        T: Serialize + DeserializeOwned,
    {
        Policy {
            stored: store::some,
            wrap: std::convert::identity,
            local: None,
        }
    }
}

/// Where one memoized function keeps its entries, and how this call treats
/// them.
#[must_use]
#[derive(Clone, Debug)]
pub struct Memoized {
    cache: Cache,
    prefix: Cow<'static, str>,
    options: CallOptions,
    /// Tags of this call's value (`tags = [...]`).
    tags: Vec<String>,
}

impl Memoized {
    /// The function with this prefix, in `cache`, with the cache's default ttl.
    pub fn new(cache: Cache, prefix: impl Into<Cow<'static, str>>) -> Self {
        Memoized {
            cache,
            prefix: prefix.into(),
            options: CallOptions::default(),
            tags: Vec::new(),
        }
    }

    /// Makes the value of this call depend on `tags`: after
    /// [`Cache::invalidate_tag`] of any of them (in any process), the value
    /// is recomputed on its next call.
    pub fn tags<T: ToString>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        self.tags = tags.into_iter().map(|tag| tag.to_string()).collect();
        self
    }

    /// Stores values for `ttl` instead of the cache's default (beyond
    /// [`MAX_TTL`](crate::MAX_TTL), e.g. `Duration::MAX`: without expiry).
    pub fn ttl(mut self, ttl: impl Ttl) -> Self {
        self.options.ttl = Some(ttl.into_duration());
        self
    }

    /// Takes the cross-process stampede lock on a miss (`lock = true`), or
    /// never (`lock = false`), whatever the cache's default.
    pub fn locking(mut self, lock: bool) -> Self {
        self.options = self.options.locking(lock);
        self
    }

    /// With these freshness controls (early refresh, stale-while-revalidate,
    /// stale-if-error; see [`Freshness`](crate::Freshness)).
    pub fn freshness(mut self, freshness: crate::Freshness) -> Self {
        self.options = self.options.with_freshness(freshness);
        self
    }

    /// Whether calls may be answered from the cache's local tier (default
    /// `true`; `local = false` in the attribute keeps a function out).
    pub fn local(mut self, local: bool) -> Self {
        self.options = self.options.with_local(local);
        self
    }

    /// Computes and stores without looking up first (`foo_refresh`).
    pub fn refreshing(mut self) -> Self {
        self.options = self.options.refreshing();
        self
    }

    /// The function prefix: the readable part of every key of this function.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The cache entries are kept in.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The full key of the call with these key parts
    /// (`{cache prefix}:{version}:{function prefix}:{hash}`).
    pub fn key(&self, parts: &[KeyPart<'_>]) -> Result<FullKey, CodecError> {
        self.cache.keys().function_key(&self.prefix, parts)
    }

    /// The exact Redis key of the call with these key parts (`foo_cache_key`).
    ///
    /// # Panics
    /// When an argument's `Serialize` impl returns an error; such a call is
    /// never cached, so it has no key.
    pub fn cache_key(&self, parts: &[KeyPart<'_>]) -> String {
        match self.key(parts) {
            Ok(key) => key.into_string(),
            Err(e) => panic!(
                "the arguments of `{}` do not serialize, so the call has no cache key: {e}",
                self.prefix
            ),
        }
    }

    /// Runs a memoized `async fn`: the stored value for `key` if there is
    /// one (then `on_hit(&args)`), else `on_miss(&args)` and `body(args)`,
    /// stored as `policy` says. Never fails: cache trouble means computing.
    pub async fn call<Args, R, S, Fut>(
        &self,
        key: Result<FullKey, CodecError>,
        args: Args,
        body: impl FnOnce(Args) -> Fut,
        policy: Policy<R, S>,
        on_hit: impl FnOnce(&Args),
        on_miss: impl FnOnce(&Args),
    ) -> R
    where
        S: Serialize + DeserializeOwned,
        Fut: Future<Output = R>,
    {
        self.call_reporting(key, args, body, policy, on_hit, on_miss)
            .await
            .0
    }

    /// [`call`](Self::call) with background refreshes: a hit that early
    /// refresh draws, or that is served stale within the
    /// stale-while-revalidate window, returns at once and recomputes in a
    /// task of its own (see [`Freshness`](crate::Freshness)). So the
    /// arguments and the body must be `'static` and `Send`: the attribute
    /// uses this for an `async fn` with `early_refresh` or
    /// `stale_while_revalidate`.
    pub async fn call_refreshing<Args, R, S, B, Fut>(
        &self,
        key: Result<FullKey, CodecError>,
        args: Args,
        body: B,
        policy: Policy<R, S>,
        on_hit: impl FnOnce(&Args),
        on_miss: impl FnOnce(&Args),
    ) -> R
    where
        Args: Send + 'static,
        B: FnOnce(Args) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: Send + 'static,
        S: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let (refresh_body, stored) = (body.clone(), policy.stored);
        let (result, due) = self
            .call_reporting(key, args, body, policy, on_hit, on_miss)
            .await;
        if let Some(Due { key, token, args }) = due {
            let (cache, options, tags) = (self.cache.clone(), self.options, self.tags.clone());
            let refresh = async move {
                let compute = move || refresh_body(args);
                cache
                    .refresh_in_background(key.as_str(), token, options, &tags, compute, stored)
                    .await;
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(refresh)),
                Err(_) => drop(crate::blocking::spawn_detached(refresh)),
            }
        }
        result
    }

    /// The path of [`call`](Self::call) and
    /// [`call_refreshing`](Self::call_refreshing): the result, and for a
    /// hit due for a background refresh, what that refresh needs.
    async fn call_reporting<Args, R, S, Fut>(
        &self,
        key: Result<FullKey, CodecError>,
        args: Args,
        body: impl FnOnce(Args) -> Fut,
        policy: Policy<R, S>,
        on_hit: impl FnOnce(&Args),
        on_miss: impl FnOnce(&Args),
    ) -> (R, Option<Due<Args>>)
    where
        S: Serialize + DeserializeOwned,
        Fut: Future<Output = R>,
    {
        let started = Instant::now();
        let Some(key) = self.usable(key) else {
            on_miss(&args);
            let result = body(args).await;
            self.record(self.cache.uncached_call(), started, &tracing::Span::none());
            return (result, None);
        };
        if let Some(value) = self.local_hit(&key, policy.local) {
            on_hit(&args);
            function_stats::record_local_hit(&self.prefix);
            yield_now_and_then().await;
            return ((policy.wrap)(value), None);
        }
        let span = self.span(&key);
        let mut pending = Pending(Some(args));
        let compute = || body(pending.start(on_miss));
        let memoizing = self.cache.memoize_reporting(
            &key,
            self.options,
            &self.tags,
            compute,
            policy.stored,
            policy.wrap,
            policy.local,
        );
        let (result, report) = tracing::Instrument::instrument(memoizing, span.clone()).await;
        self.record(report, started, &span);
        let args = pending.finish(on_hit);
        let due = report
            .refresh_due
            .zip(args)
            .map(|(token, args)| Due { key, token, args });
        (result, due)
    }

    /// [`call`](Self::call) for a plain `fn`: callable from any thread, with
    /// or without a tokio runtime, inside `spawn_blocking` and even inside an
    /// async task, because cache I/O runs on the crate's own I/O runtime
    /// (see [`crate::blocking`]) and `body` runs on the calling thread.
    pub fn call_blocking<Args, R, S>(
        &self,
        key: Result<FullKey, CodecError>,
        args: Args,
        body: impl FnOnce(Args) -> R,
        policy: Policy<R, S>,
        on_hit: impl FnOnce(&Args),
        on_miss: impl FnOnce(&Args),
    ) -> R
    where
        S: Serialize + DeserializeOwned,
    {
        let started = Instant::now();
        let Some(key) = self.usable(key) else {
            on_miss(&args);
            let result = body(args);
            self.record(self.cache.uncached_call(), started, &tracing::Span::none());
            return result;
        };
        if let Some(value) = self.local_hit(&key, policy.local) {
            on_hit(&args);
            function_stats::record_local_hit(&self.prefix);
            return (policy.wrap)(value);
        }
        let span = self.span(&key);
        let mut pending = Pending(Some(args));
        let compute = || body(pending.start(on_miss));
        let (result, report) = span.in_scope(|| {
            self.cache.memoize_blocking_reporting(
                &key,
                self.options,
                &self.tags,
                compute,
                policy.stored,
                policy.wrap,
                policy.local,
            )
        });
        self.record(report, started, &span);
        let _ = pending.finish(on_hit);
        result
    }

    /// The local tier's value for this call, if it has one to serve.
    fn local_hit<S>(&self, key: &FullKey, local: Option<LocalValue<S>>) -> Option<S> {
        self.cache
            .local_hit(key.as_str(), local, &self.options, &self.tags)
    }

    /// The `tracing` span of one call (DEBUG; its fields are only computed
    /// when a subscriber wants it).
    fn span(&self, key: &FullKey) -> tracing::Span {
        let key = key.as_str();
        tracing::debug_span!(
            "memoized",
            function = %self.prefix,
            key_hash = key.rsplit_once(':').map_or(key, |(_, hash)| hash),
            outcome = tracing::field::Empty,
        )
    }

    /// Counts the call in the function's stats and metrics, and puts its
    /// outcome on its span.
    fn record(&self, report: CallReport, started: Instant, span: &tracing::Span) {
        let outcome = match (report.backend_failed, report.answer) {
            (true, Answer::Computed) => Outcome::Error,
            (_, Answer::Hit | Answer::Shared) => Outcome::Hit,
            (false, Answer::Computed) => Outcome::Miss,
        };
        function_stats::record(&self.prefix, outcome, started.elapsed());
        span.record("outcome", outcome.as_str());
    }

    /// Deletes the entry of the call with these key parts (`foo_invalidate`):
    /// `true` when there was one. Fail-open like the memoizing path: when the
    /// cache cannot be reached this logs a warning and returns `false`.
    pub fn invalidate(&self, parts: &[KeyPart<'_>]) -> impl Future<Output = bool> + Send + 'static {
        // The key is built now, so the future holds no borrowed arguments.
        let key = self.key(parts);
        let this = self.clone();
        async move {
            let Some(key) = this.usable(key) else {
                return false;
            };
            this.deleted(this.cache.delete(&key).await)
        }
    }

    /// [`invalidate`](Self::invalidate) for a plain `fn`.
    pub fn invalidate_blocking(&self, parts: &[KeyPart<'_>]) -> bool {
        let deleting = self.invalidate(parts);
        self.cache.block_on(|_| deleting)
    }

    /// Deletes every entry of this function and of no other function
    /// (`foo_invalidate_all`): how many were deleted; `0` (and a logged
    /// warning) when the cache cannot be reached. On a Redis Cluster with
    /// masters that cannot be reached, the count from the others, a warning
    /// naming those masters, and an error in [`Cache::stats`].
    pub fn invalidate_all(&self) -> impl Future<Output = u64> + Send + 'static {
        let this = self.clone();
        async move {
            match this.cache.delete_function(&this.prefix).await {
                Err(e @ crate::Error::MastersUnreached { deleted, .. }) => {
                    this.deleted::<u64>(Err(e));
                    deleted
                }
                outcome => this.deleted(outcome),
            }
        }
    }

    /// [`invalidate_all`](Self::invalidate_all) for a plain `fn`.
    pub fn invalidate_all_blocking(&self) -> u64 {
        let deleting = self.invalidate_all();
        self.cache.block_on(|_| deleting)
    }

    /// The key, or `None` (logged) when the arguments do not serialize: such
    /// a call runs uncached rather than failing.
    fn usable(&self, key: Result<FullKey, CodecError>) -> Option<FullKey> {
        key.map_err(|e| {
            tracing::warn!(
                function = %self.prefix,
                "arguments do not serialize, calling without the cache: {e}"
            );
        })
        .ok()
    }

    /// The outcome of an invalidation, fail-open: a failure is counted as
    /// an error in the cache's stats, logged, and answered with the default.
    fn deleted<T: Default>(&self, outcome: crate::Result<T>) -> T {
        outcome.unwrap_or_else(|e| {
            crate::stats::Stats::bump(&self.cache.inner.stats.errors);
            tracing::warn!(
                cache = self.cache.name(),
                function = %self.prefix,
                "invalidation failed: {e}"
            );
            T::default()
        })
    }
}

/// A hit due for a background refresh: its key, the version token the
/// refresh replaces, and the call's arguments.
struct Due<Args> {
    key: FullKey,
    token: u64,
    args: Args,
}

/// The arguments of a call until the body takes them. Whatever is left after
/// the lookup belongs to a hit, which the `hit` callback gets to see.
struct Pending<Args>(Option<Args>);

impl<Args> Pending<Args> {
    /// Hands the arguments to the body (a miss).
    fn start(&mut self, on_miss: impl FnOnce(&Args)) -> Args {
        let args = self
            .0
            .take()
            .expect("a memoized body is computed at most once per call");
        on_miss(&args);
        args
    }

    /// Reports a hit when the body never ran, and hands the arguments back
    /// (for a background refresh).
    fn finish(self, on_hit: impl FnOnce(&Args)) -> Option<Args> {
        if let Some(args) = &self.0 {
            on_hit(args);
        }
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn second_call_is_a_hit_and_sees_the_arguments() {
        let memo = Memoized::new(Cache::memory(), "tests::double");
        let (hits, misses) = (Cell::new(0), Cell::new(0));
        for _ in 0..2 {
            let key = memo.key(&[key_part(&21u32)]);
            let doubled = memo.call_blocking(
                key,
                (21u32,),
                |(n,)| n * 2,
                Policy::always(),
                |(n,)| hits.set(hits.get() + n),
                |(n,)| misses.set(misses.get() + n),
            );
            assert_eq!(doubled, 42);
        }
        assert_eq!((hits.get(), misses.get()), (21, 21));
    }

    #[test]
    fn errors_are_not_stored_by_the_ok_policy() {
        let memo = Memoized::new(Cache::memory(), "tests::fallible");
        let calls = Cell::new(0);
        for _ in 0..2 {
            let key = memo.key(&[]);
            let result: Result<u8, String> = memo.call_blocking(
                key,
                (),
                |()| {
                    calls.set(calls.get() + 1);
                    Err("down".to_owned())
                },
                Policy::ok(),
                |_| {},
                |_| {},
            );
            assert!(result.is_err());
        }
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn method_prefix_names_the_type() {
        assert_eq!(
            method_prefix::<Memoized>("get"),
            "cache_core::memoized::Memoized::get"
        );
    }
}
