//! `#[cache_memoize]` against a real redis-server: every option and every
//! companion function.
//!
//! Each test registers its own cache alias (a cache is bound to the tokio
//! runtime of the test that first uses it) and memoizes its own functions,
//! so tests run in parallel without sharing entries.

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_memoize::{cache_memoize, registry, Cache};
use serde::{Deserialize, Serialize};
use support::TestRedis;

/// The redis-server of this test binary (see `support::shared_redis`).
fn redis() -> Arc<TestRedis> {
    support::shared_redis()
}

/// A Redis cache registered under `alias`, with a key prefix unique to this
/// run (so an external `$REDIS_URL` server never serves a previous run's
/// entries).
fn cache_for(redis: &TestRedis, alias: &str) -> Cache {
    let prefix = format!("memo-test-{}-{}", std::process::id(), alias);
    let cache = Cache::builder()
        .name(alias)
        .url(redis.url())
        .prefix(prefix)
        .build()
        .expect("a valid test cache configuration");
    registry::register(alias, cache.clone());
    cache
}

fn exists(redis: &TestRedis, full_key: &str) -> bool {
    redis.cmd(&[b"EXISTS", full_key.as_bytes()]).as_int() == Some(1)
}

fn count(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

fn bump(counter: &AtomicUsize) -> usize {
    counter.fetch_add(1, Ordering::SeqCst) + 1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

fn user(id: u64) -> User {
    User {
        id,
        name: format!("user {id}"),
    }
}

// --- miss then hit, the exact key, the default prefix ----------------------

static SQUARES: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "basic", ttl = 60)]
async fn square(n: u64) -> u64 {
    bump(&SQUARES);
    n * n
}

#[tokio::test]
async fn a_call_misses_then_hits_and_is_stored_under_its_cache_key() {
    let redis = redis();
    let cache = cache_for(&redis, "basic");
    assert_eq!(square(7).await, 49);
    assert_eq!(square(7).await, 49);
    assert_eq!(count(&SQUARES), 1);
    assert_eq!(cache.stats().hits, 1);

    let key = square_cache_key(7);
    assert!(exists(&redis, &key), "{key} is not in Redis");
    let default_prefix = format!(
        "{}:memoize_redis::square:",
        cache.full_key("").trim_end_matches(':')
    );
    assert!(
        key.starts_with(&default_prefix),
        "{key} does not start with {default_prefix}"
    );
    let pttl = redis.cmd(&[b"PTTL", key.as_bytes()]).as_int().unwrap();
    assert!(
        (50_000..=60_000).contains(&pttl),
        "ttl = 60 gave PTTL {pttl}"
    );
}

// --- ttl ---------------------------------------------------------------------

static SHORT_LIVED: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "ttl", ttl = 1)]
async fn short_lived(n: u32) -> usize {
    let _ = n;
    bump(&SHORT_LIVED)
}

#[cache_memoize(alias = "ttl", ttl = Duration::from_millis(30_500))]
async fn duration_ttl() -> u8 {
    1
}

#[tokio::test]
async fn ttl_expires_entries() {
    let redis = redis();
    cache_for(&redis, "ttl");
    assert_eq!(short_lived(1).await, 1);
    assert_eq!(short_lived(1).await, 1);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(short_lived(1).await, 2, "the entry outlived ttl = 1");

    duration_ttl().await;
    let pttl = redis
        .cmd(&[b"PTTL", duration_ttl_cache_key().as_bytes()])
        .as_int()
        .unwrap();
    assert!((25_000..=30_500).contains(&pttl), "PTTL {pttl}");
}

static FOREVER: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "forever", ttl = Duration::MAX)]
async fn forever(n: u32) -> u32 {
    bump(&FOREVER);
    n
}

static FOREVER_IN_MEMORY: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "forever-in-memory", ttl = Duration::MAX)]
async fn forever_in_memory(n: u32) -> u32 {
    bump(&FOREVER_IN_MEMORY);
    n
}

/// Redis refuses a `PX` whose expiry time does not fit an i64 of
/// milliseconds; such a ttl means "no expiry", on every backend.
#[tokio::test]
async fn a_ttl_beyond_what_redis_accepts_is_stored_without_expiry() {
    let redis = redis();
    let cache = cache_for(&redis, "forever");
    assert_eq!((forever(1).await, forever(1).await), (1, 1));
    assert_eq!(count(&FOREVER), 1, "the second call is a hit");
    let pttl = |key: &str| redis.cmd(&[b"PTTL", key.as_bytes()]).as_int().unwrap();
    assert_eq!(pttl(&forever_cache_key(1)), -1, "stored without expiry");

    // The same through CallOptions::ttl (what get_or_compute passes).
    for ttl in [Duration::MAX, Duration::from_millis(i64::MAX as u64)] {
        let _: u8 = cache.get_or_compute("max", Some(ttl), || async { 1 }).await;
        assert_eq!(pttl(&cache.full_key("max")), -1, "{ttl:?}");
        cache.delete("max").await.unwrap();
    }
    // A long ttl that Redis can hold keeps its expiry.
    let millennium = Duration::from_secs(1_000 * 365 * 24 * 3_600);
    let _: u8 = cache
        .get_or_compute("long", Some(millennium), || async { 1 })
        .await;
    assert!(pttl(&cache.full_key("long")) > 0);
    assert_eq!(cache.stats().errors, 0, "{:?}", cache.stats());

    // The in-memory backend keeps such values too.
    let memory = Cache::builder().name("forever-in-memory").build().unwrap();
    registry::register("forever-in-memory", memory.clone());
    assert_eq!(
        (forever_in_memory(2).await, forever_in_memory(2).await),
        (2, 2)
    );
    assert_eq!(
        count(&FOREVER_IN_MEMORY),
        1,
        "in memory, the second call is a hit"
    );
    for ttl in [Duration::MAX, millennium] {
        let _: u8 = memory
            .get_or_compute("max", Some(ttl), || async { 1 })
            .await;
        assert_eq!(memory.get::<u8>("max").await.unwrap(), Some(1), "{ttl:?}");
        memory.delete("max").await.unwrap();
    }
}

// --- prefix, key, skip, extra ----------------------------------------------

#[cache_memoize(alias = "keys", prefix = "meaty")]
async fn with_prefix(n: u32) -> u32 {
    n
}

static BY_ID: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "keys", key = user.id)]
async fn greeting(user: &User, punctuation: char) -> String {
    bump(&BY_ID);
    format!("hello {}{punctuation}", user.name)
}

static WITH_LOGGER: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "keys", skip(logger))]
async fn logged(n: u32, logger: &str) -> u32 {
    bump(&WITH_LOGGER);
    let _ = logger;
    n + 1
}

#[cache_memoize(alias = "keys", prefix = "schema")]
async fn unversioned(n: u32) -> u32 {
    n
}

#[cache_memoize(alias = "keys", prefix = "schema", extra = "v2")]
async fn versioned(n: u32) -> u32 {
    n
}

#[tokio::test]
async fn prefix_key_skip_and_extra_shape_the_key() {
    let redis = redis();
    let cache = cache_for(&redis, "keys");

    with_prefix(1).await;
    assert!(with_prefix_cache_key(1).starts_with(&cache.full_key("meaty:")));
    assert!(exists(&redis, &with_prefix_cache_key(1)));

    // key = user.id: the other argument and the other fields do not count.
    let mut renamed = user(5);
    assert_eq!(greeting(&user(5), '!').await, "hello user 5!");
    renamed.name = "someone else".into();
    assert_eq!(greeting(&renamed, '?').await, "hello user 5!");
    assert_eq!(count(&BY_ID), 1);
    assert_eq!(
        greeting_cache_key(&renamed, '.'),
        greeting_cache_key(&user(5), '!')
    );
    assert_ne!(
        greeting_cache_key(&user(6), '!'),
        greeting_cache_key(&user(5), '!')
    );

    // skip(logger): the companions do not even take it.
    assert_eq!(logged(1, "stdout").await, 2);
    assert_eq!(logged(1, "syslog").await, 2);
    assert_eq!(count(&WITH_LOGGER), 1);
    assert!(exists(&redis, &logged_cache_key(1)));

    // extra: same prefix and arguments, different extra, different entry.
    assert_ne!(unversioned_cache_key(1), versioned_cache_key(1));
    assert!(versioned_cache_key(1).starts_with(&cache.full_key("schema:")));
}

// --- hit and miss callbacks: the django-cache-memoize README example --------

static HITS: Mutex<Vec<(u64, bool)>> = Mutex::new(Vec::new());
static MISSES: Mutex<Vec<(u64, bool)>> = Mutex::new(Vec::new());

fn count_hit(user: &User, special: &bool) {
    HITS.lock().unwrap().push((user.id, *special));
}

fn count_miss(user: &User, special: &bool) {
    MISSES.lock().unwrap().push((user.id, *special));
}

#[cache_memoize(alias = "django", ttl = 300, hit = count_hit, miss = count_miss)]
async fn compute_something(user: &User, special: bool) -> Vec<String> {
    vec![format!("{} {special}", user.name)]
}

#[tokio::test]
async fn the_django_cache_memoize_readme_example() {
    let redis = redis();
    cache_for(&redis, "django");
    let u = user(1);
    compute_something(&u, false).await; // miss
    compute_something(&u, false).await; // hit
    compute_something(&u, true).await; // miss
    compute_something(&u, true).await; // hit
    assert_eq!(*MISSES.lock().unwrap(), [(1, false), (1, true)]);
    assert_eq!(*HITS.lock().unwrap(), [(1, false), (1, true)]);

    assert!(compute_something_invalidate(&u, false).await);
    assert!(compute_something_invalidate(&u, true).await);
    assert!(
        !compute_something_invalidate(&u, true).await,
        "nothing left to delete"
    );
    compute_something(&u, false).await; // miss again
    assert_eq!(MISSES.lock().unwrap().len(), 3);
    assert_eq!(HITS.lock().unwrap().len(), 2);
}

// --- invalidate, refresh, invalidate_all -----------------------------------

static STOCK_READS: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "companions")]
async fn stock(item: &str) -> usize {
    let _ = item;
    bump(&STOCK_READS)
}

#[cache_memoize(alias = "companions")]
async fn neighbour(item: &str) -> usize {
    item.len()
}

#[tokio::test]
async fn invalidate_refresh_and_invalidate_all() {
    let redis = redis();
    cache_for(&redis, "companions");
    assert_eq!(stock("a").await, 1);
    assert_eq!(stock("b").await, 2);
    neighbour("a").await;

    // invalidate removes exactly that entry.
    assert!(stock_invalidate("a").await);
    assert!(!exists(&redis, &stock_cache_key("a")));
    assert!(exists(&redis, &stock_cache_key("b")));
    assert_eq!(stock("b").await, 2, "b was invalidated too");
    assert_eq!(stock("a").await, 3);

    // refresh recomputes, stores and returns.
    assert_eq!(stock_refresh("a").await, 4);
    assert_eq!(stock("a").await, 4);

    // invalidate_all removes this function's entries and no others.
    assert_eq!(stock_invalidate_all().await, 2);
    assert!(!exists(&redis, &stock_cache_key("b")));
    assert!(exists(&redis, &neighbour_cache_key("a")));
    assert_eq!(stock("b").await, 5);
    assert_eq!(count(&STOCK_READS), 5);
}

// --- store_result = false ---------------------------------------------------

static EMAILS: AtomicUsize = AtomicUsize::new(0);
static FAILED_SENDS: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "once", ttl = 1, store_result = false)]
async fn send_welcome_email(to: &str) {
    let _ = to;
    bump(&EMAILS);
}

#[cache_memoize(alias = "once", store_result = false)]
async fn send_or_fail(to: &str) -> Result<(), String> {
    bump(&FAILED_SENDS);
    Err(format!("{to} bounced"))
}

#[tokio::test]
async fn store_result_false_runs_the_body_once_per_ttl() {
    let redis = redis();
    cache_for(&redis, "once");
    send_welcome_email("a@example.com").await;
    send_welcome_email("a@example.com").await;
    send_welcome_email("b@example.com").await;
    assert_eq!(count(&EMAILS), 2);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    send_welcome_email("a@example.com").await;
    assert_eq!(count(&EMAILS), 3);

    // A failed run leaves no marker: it is tried again.
    assert!(send_or_fail("c@example.com").await.is_err());
    assert!(send_or_fail("c@example.com").await.is_err());
    assert_eq!(count(&FAILED_SENDS), 2);
}

// --- Result and Option policies ----------------------------------------------

/// Not `Serialize`: the default `Result` policy never stores errors.
#[derive(Debug)]
struct Opaque;

static PARSES: AtomicUsize = AtomicUsize::new(0);
static LOOKUPS: AtomicUsize = AtomicUsize::new(0);
static FINDS: AtomicUsize = AtomicUsize::new(0);
static STRICT_FINDS: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "policies")]
async fn parse(text: &str) -> Result<u32, Opaque> {
    bump(&PARSES);
    let number = text.parse::<u32>().map_err(|_| Opaque)?;
    Ok(number)
}

#[cache_memoize(alias = "policies", cache_errors = true)]
async fn lookup(text: &str) -> Result<u32, String> {
    bump(&LOOKUPS);
    text.parse().map_err(|_| format!("not a number: {text}"))
}

#[cache_memoize(alias = "policies")]
async fn find(id: u64) -> Option<User> {
    bump(&FINDS);
    (id < 10).then(|| user(id))
}

#[cache_memoize(alias = "policies", cache_none = false)]
async fn find_strict(id: u64) -> Option<User> {
    bump(&STRICT_FINDS);
    (id < 10).then(|| user(id))
}

#[tokio::test]
async fn result_and_option_policies() {
    let redis = redis();
    cache_for(&redis, "policies");
    for _ in 0..2 {
        assert_eq!(parse("12").await.unwrap(), 12);
        assert!(parse("x").await.is_err());
        assert_eq!(lookup("x").await, Err("not a number: x".into()));
        assert_eq!(find(1).await, Some(user(1)));
        assert_eq!(find(99).await, None);
        assert_eq!(find_strict(1).await, Some(user(1)));
        assert_eq!(find_strict(99).await, None);
    }
    assert_eq!(count(&PARSES), 3, "Ok cached once, Err computed twice");
    assert_eq!(count(&LOOKUPS), 1, "cache_errors = true caches the Err");
    assert_eq!(count(&FINDS), 2, "None is cached by default");
    assert_eq!(
        count(&STRICT_FINDS),
        3,
        "cache_none = false recomputes None"
    );
}

// --- alias and cache pick the cache ----------------------------------------

#[cache_memoize(alias = "left")]
async fn on_left(n: u8) -> u8 {
    n
}

struct Repository {
    cache: Cache,
    tenant: u32,
    loads: AtomicUsize,
}

impl Repository {
    #[cache_memoize(cache = self.cache)]
    async fn load(&self, id: u64) -> User {
        bump(&self.loads);
        user(id)
    }

    #[cache_memoize(cache = self.cache, key = (self.tenant, id))]
    async fn load_for_tenant(&self, id: u64) -> String {
        format!("{}/{id}", self.tenant)
    }
}

#[tokio::test]
async fn alias_and_cache_pick_the_cache() {
    let redis = redis();
    let left = cache_for(&redis, "left");
    let right = cache_for(&redis, "right");
    on_left(1).await;
    assert!(on_left_cache_key(1).starts_with(&left.full_key("")));
    assert!(exists(&redis, &on_left_cache_key(1)));

    let repo = |tenant| Repository {
        cache: right.clone(),
        tenant,
        loads: AtomicUsize::new(0),
    };
    let (a, b) = (repo(1), repo(2));
    assert_eq!(a.load(3).await, user(3));
    assert_eq!(b.load(3).await, user(3));
    assert_eq!(
        count(&a.loads) + count(&b.loads),
        1,
        "self is not part of the key"
    );
    let key = a.load_cache_key(3);
    assert!(
        key.starts_with(&right.full_key("memoize_redis::Repository::load:")),
        "{key}"
    );
    assert!(exists(&redis, &key));

    assert_eq!(a.load_for_tenant(3).await, "1/3");
    assert_eq!(b.load_for_tenant(3).await, "2/3");
    assert_ne!(
        a.load_for_tenant_cache_key(3),
        b.load_for_tenant_cache_key(3)
    );
    assert_eq!(a.load_for_tenant_invalidate_all().await, 2);
    assert!(a.load_invalidate(3).await);
}

// --- the default cache --------------------------------------------------------

static DEFAULTS: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize]
async fn uses_the_default_cache(n: u32) -> u32 {
    bump(&DEFAULTS);
    n
}

#[tokio::test]
async fn without_alias_or_cache_the_default_cache_is_used() {
    let redis = redis();
    let cache = cache_for(&redis, "default-for-test");
    registry::set_default(cache.clone());
    uses_the_default_cache(1).await;
    uses_the_default_cache(1).await;
    assert_eq!(count(&DEFAULTS), 1);
    assert!(exists(&redis, &uses_the_default_cache_cache_key(1)));
}

// --- plain fns: any thread, any context ------------------------------------

static SLOW_SUMS: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "blocking", ttl = 60)]
fn slow_sum(items: &[u32], label: &str) -> String {
    bump(&SLOW_SUMS);
    format!("{label}: {}", items.iter().sum::<u32>())
}

static SLOW_PRODUCTS: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "blocking")]
fn slow_product(items: Vec<u32>) -> u32 {
    bump(&SLOW_PRODUCTS);
    items.iter().product()
}

/// The server for a plain-fn test, with the "blocking" alias (re)pointed at
/// it: plain fns do their I/O on the crate's own runtime, so one cache
/// serves every test, but the server may have been restarted in between.
fn sync_cache() -> Arc<TestRedis> {
    let redis = redis();
    cache_for(&redis, "blocking");
    redis
}

#[test]
fn a_plain_fn_works_on_a_thread_without_a_runtime() {
    let redis = sync_cache();
    let sum = std::thread::spawn(|| slow_sum(&[1, 2, 3], "thread"))
        .join()
        .unwrap();
    assert_eq!(sum, "thread: 6");
    assert_eq!(slow_sum(&[1, 2, 3], "thread"), "thread: 6");
    assert!(exists(&redis, &slow_sum_cache_key(&[1, 2, 3], "thread")));
    assert!(slow_sum_invalidate(&[1, 2, 3], "thread"));
    assert!(!exists(&redis, &slow_sum_cache_key(&[1, 2, 3], "thread")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_fn_works_inside_spawn_blocking() {
    let _redis = sync_cache();
    let first = tokio::task::spawn_blocking(|| slow_sum(&[4, 5], "blocking"))
        .await
        .unwrap();
    let again = tokio::task::spawn_blocking(|| slow_sum(&[4, 5], "blocking"))
        .await
        .unwrap();
    assert_eq!(
        (first.as_str(), again.as_str()),
        ("blocking: 9", "blocking: 9")
    );
    assert_eq!(slow_sum_refresh(&[4, 5], "blocking"), "blocking: 9");
}

#[tokio::test(flavor = "current_thread")]
async fn a_plain_fn_called_from_async_code_does_not_panic() {
    let _redis = sync_cache();
    assert_eq!(slow_product(vec![2, 3]), 6);
    assert_eq!(slow_product(vec![2, 3]), 6);
    assert_eq!(count(&SLOW_PRODUCTS), 1);
    assert_eq!(slow_product_invalidate_all(), 1);
}

static NESTED_INNER: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "blocking")]
fn nested_inner(n: u32) -> u32 {
    bump(&NESTED_INNER);
    n + 1
}

static NESTED_OUTER: AtomicUsize = AtomicUsize::new(0);

/// A plain memoized fn whose body uses the cache from plain code: another
/// memoized plain fn, its `_invalidate`, and `Cache::block_on`.
#[cache_memoize(alias = "blocking")]
fn nested_outer(n: u32) -> u32 {
    bump(&NESTED_OUTER);
    let inner = nested_inner(n);
    nested_inner_invalidate(n + 1_000);
    let cache = registry::get("blocking").expect("registered by the test");
    let stored: Option<u32> = cache
        .block_on(|cache| async move { cache.get::<u32>("nested-absent").await })
        .expect("Redis answers");
    assert_eq!(stored, None);
    inner * 10
}

#[test]
fn plain_memoized_fns_nest() {
    let _redis = sync_cache();
    let outer = std::thread::spawn(|| (nested_outer(1), nested_outer(1)))
        .join()
        .expect("a plain memoized fn may call another one");
    assert_eq!(outer, (20, 20));
    assert_eq!(nested_inner(1), 2, "the inner call was stored");
    assert_eq!((count(&NESTED_OUTER), count(&NESTED_INNER)), (1, 1));

    // The same inside a runtime's task, and with the in-memory backend.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(nested_outer(2), 30);
        let memory = Cache::memory();
        let value: u32 = memory.get_or_compute_blocking("outer", None, || {
            let inner: u32 = memory.get_or_compute_blocking("inner", None, || 7);
            inner * 2
        });
        assert_eq!(value, 14);
        assert_eq!(memory.get::<u32>("inner").await.unwrap(), Some(7));
    });
}

// --- generics, Send futures ---------------------------------------------------

static DESCRIBED: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "generic")]
async fn describe<T: Serialize + std::fmt::Debug + Send>(value: T) -> String {
    bump(&DESCRIBED);
    format!("{value:?}")
}

#[tokio::test]
async fn generic_parameters_are_part_of_the_key() {
    let redis = redis();
    cache_for(&redis, "generic");
    assert_eq!(describe(1u8).await, "1");
    assert_eq!(describe(1u16).await, "1");
    assert_eq!(describe(1u8).await, "1");
    assert_eq!(
        count(&DESCRIBED),
        2,
        "f::<u8>(1) and f::<u16>(1) share an entry"
    );
    assert_ne!(describe_cache_key(1u8), describe_cache_key(1u16));
    assert_eq!(describe_invalidate_all().await, 2);
}

fn ignore_hit(_: &User, _: &bool) {}

#[cache_memoize(alias = "send", hit = ignore_hit)]
async fn spawnable(user: &User, special: bool) -> Vec<String> {
    tokio::task::yield_now().await;
    vec![format!("{} {special}", user.name)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memoized_futures_are_send() {
    let redis = redis();
    cache_for(&redis, "send");
    for _ in 0..2 {
        let task = tokio::spawn(async { spawnable(&user(42), false).await });
        assert_eq!(task.await.unwrap(), ["user 42 false"]);
    }
    // The companions' futures are `Send` too (they hold no borrow of the
    // key's temporaries across their `.await`).
    let invalidating = tokio::spawn(async { spawnable_invalidate(&user(42), false).await });
    assert!(invalidating.await.unwrap());
}
