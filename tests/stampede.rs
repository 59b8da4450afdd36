//! Many callers missing one key at once: one computation.

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_memoize::{store, Cache, CallOptions, LockSettings};
use support::TestRedis;

/// The redis-server of this test binary; each test holds it (`let _redis =
/// redis();`) so it stops when the last test is done.
fn redis() -> Arc<TestRedis> {
    support::shared_redis()
}

fn cache(prefix: &str, lock: LockSettings) -> Cache {
    Cache::builder()
        .url(redis().url())
        .prefix(prefix)
        .stampede_lock(lock)
        .build()
        .unwrap()
}

/// Runs `call(i)` for `callers` concurrent tasks and checks that every one
/// got the expensive value.
async fn call_concurrently<Fut>(callers: usize, call: impl Fn(usize) -> Fut)
where
    Fut: std::future::Future<Output = String> + Send + 'static,
{
    let tasks: Vec<_> = (0..callers).map(|i| tokio::spawn(call(i))).collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), "expensive");
    }
}

async fn slow_value(runs: &AtomicUsize) -> String {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    "expensive".to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_in_one_process_share_one_computation() {
    let _redis = redis();
    let cache = cache("stampede-local", LockSettings::default());
    let runs = Arc::new(AtomicUsize::new(0));
    call_concurrently(1_000, |_| {
        let (cache, runs) = (cache.clone(), runs.clone());
        async move {
            cache
                .get_or_compute("cold", None, || slow_value(&runs))
                .await
        }
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    println!(
        "1000 callers, body ran {} time(s); {:?}",
        runs.load(Ordering::SeqCst),
        cache.stats()
    );
}

/// Four processes' worth of caches (separate connections, separate
/// single-flight state), 50 callers each.
async fn four_instances(prefix: &str, lock: LockSettings, runs: Arc<AtomicUsize>) -> Vec<Cache> {
    let caches: Vec<Cache> = (0..4).map(|_| cache(prefix, lock)).collect();
    call_concurrently(200, |i| {
        let (cache, runs) = (caches[i % 4].clone(), runs.clone());
        async move {
            cache
                .memoize(
                    "cold",
                    CallOptions::ttl(None).locking(true),
                    || slow_value(&runs),
                    store::always,
                    |v| v,
                )
                .await
        }
    })
    .await;
    caches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_redis_lock_four_instances_compute_once() {
    let _redis = redis();
    let runs = Arc::new(AtomicUsize::new(0));
    let caches = four_instances("stampede-lock", LockSettings::default(), runs.clone()).await;
    let stats: Vec<_> = caches.iter().map(|c| c.stats()).collect();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "one computation across four instances; their stats: {stats:#?}"
    );
    let waits: u64 = caches.iter().map(|c| c.stats().lock_waits).sum();
    assert!(
        waits >= 3,
        "the other instances waited on the lock ({waits})"
    );
    // The lease was replaced by the value, and no lock key is left behind.
    let key = caches[0].full_key("cold");
    let lock_key = format!("{key}:lock");
    assert!(redis().cmd(&[b"GET", lock_key.as_bytes()]).is_nil());
    let stored: Option<String> = caches[0].get("cold").await.unwrap();
    assert_eq!(stored.as_deref(), Some("expensive"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_lock_each_instance_computes() {
    let _redis = redis();
    let runs = Arc::new(AtomicUsize::new(0));
    let caches: Vec<Cache> = (0..4)
        .map(|_| cache("stampede-nolock", LockSettings::default()))
        .collect();
    let tasks: Vec<_> = caches
        .iter()
        .map(|c| {
            let (cache, runs) = (c.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_compute("cold", None, || slow_value(&runs))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Single-flight is per process: this is what the lock is for.
    assert!(runs.load(Ordering::SeqCst) > 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lease_holder_delays_others_by_at_most_the_lease_ttl() {
    let _redis = redis();
    // Live holders keep the lock for up to 2 s (the computation takes 300 ms,
    // more on a loaded machine); the dead holder's lock expires after 500 ms.
    let mut lock = LockSettings::default();
    lock.ttl = Duration::from_secs(2);
    let probe = cache("stampede-dead", lock);
    // A holder that wrote its lease into the key and died: nobody will
    // release it (format 2: 0xCB, version 2, a 16-byte token).
    let key = probe.full_key("cold");
    let mut dead_lease = vec![0xCB, 0x02];
    dead_lease.extend_from_slice(b"dead-holder-0001");
    redis()
        .cmd(&[b"SET", key.as_bytes(), &dead_lease, b"PX", b"500"])
        .expect_ok();
    let started = Instant::now();
    let runs = Arc::new(AtomicUsize::new(0));
    four_instances("stampede-dead", lock, runs.clone()).await;
    let elapsed = started.elapsed();
    println!(
        "dead holder: all 200 callers served after {elapsed:?}, body ran {} time(s)",
        runs.load(Ordering::SeqCst)
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "one waiter took the expired lock over"
    );
    // lock ttl (500 ms) + poll (20 ms) + the computation (300 ms) + slack.
    assert!(elapsed < Duration::from_millis(1_500), "{elapsed:?}");
    assert!(
        elapsed >= Duration::from_millis(700),
        "they did wait for the dead holder: {elapsed:?}"
    );
}

/// A service object per "process", each with its own cache (own connections,
/// own single-flight state), memoizing with `lock = true`.
struct PriceService {
    cache: Cache,
    runs: Arc<AtomicUsize>,
}

impl PriceService {
    #[cache_memoize::cache_memoize(ttl = 60, lock = true, cache = self.cache, prefix = "stampede::price")]
    async fn price(&self, id: u64) -> String {
        let _ = id;
        slow_value(&self.runs).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_option_of_the_attribute_makes_four_instances_compute_once() {
    let _redis = redis();
    let runs = Arc::new(AtomicUsize::new(0));
    let services: Vec<Arc<PriceService>> = (0..4)
        .map(|_| {
            Arc::new(PriceService {
                cache: cache("stampede-attr", LockSettings::default()),
                runs: runs.clone(),
            })
        })
        .collect();
    call_concurrently(200, |i| {
        let service = services[i % 4].clone();
        async move { service.price(7).await }
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// The lease outlives its ttl while the computation runs (a keeper extends
/// it), so a computation longer than the lease's ttl still stores its value;
/// without the keeper the lease expired mid-computation and the store was
/// refused as stale on every call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computation_longer_than_the_lease_ttl_is_still_stored() {
    let _redis = redis();
    let mut lock = LockSettings::default();
    lock.ttl = Duration::from_millis(200);
    let cache = cache("stampede-long", lock);
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let runs = runs.clone();
        let value: String = cache
            .get_or_compute("slow", None, || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(700)).await;
                "slow but worth it".to_string()
            })
            .await;
        assert_eq!(value, "slow but worth it");
    }
    let stats = cache.stats();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the first computation (3.5 lease ttls long) was stored: {stats:?}"
    );
    assert_eq!(stats.stale_stores_refused, 0, "{stats:?}");
}
