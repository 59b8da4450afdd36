//! Freshness controls against a real redis-server: early refresh (XFetch),
//! stale-while-revalidate and stale-if-error (issue 14).

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_memoize::codec::header::Meta;
use cache_memoize::{cache_memoize, registry, Cache, Codec};

/// Registers the test's cache under `alias` (one Redis, one prefix per test).
fn register(alias: &str, redis: &support::TestRedis) -> Cache {
    let cache = Cache::builder()
        .url(redis.url())
        .prefix(format!("fresh-{}-{alias}", std::process::id()))
        .build()
        .expect("a valid Redis cache");
    registry::register(alias, cache.clone());
    cache
}

/// Writes `value` under `key` with a chosen header: computed in
/// `compute_ms`, logically expiring `remaining_ms` from now (Redis keeps it
/// a minute).
fn plant(redis: &support::TestRedis, key: &str, value: u64, compute_ms: u32, remaining_ms: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let codec = Codec::default();
    let meta = Meta {
        version_token: 42,
        compute_millis: compute_ms,
        expires_at_millis: now + remaining_ms,
    };
    let (entry, _) = codec
        .seal_with(codec.serialize(&value).unwrap(), meta)
        .unwrap();
    redis.cmd(&[b"SET", key.as_bytes(), &entry, b"PX", b"60000"]);
}

#[cache_memoize(prefix = "fresh::beta1", alias = "xfetch", ttl = 60, early_refresh)]
async fn beta_one(id: u64) -> Result<u64, String> {
    // Refreshes fail, so the planted value (and its expiry) stays put.
    Err(format!("no refresh of {id}"))
}

#[cache_memoize(
    prefix = "fresh::beta2",
    alias = "xfetch",
    ttl = 60,
    early_refresh = 2.0
)]
async fn beta_two(id: u64) -> Result<u64, String> {
    Err(format!("no refresh of {id}"))
}

/// XFetch: with δ = 1,000 s stored and 1,000 s left, a hit refreshes early
/// with probability exp(-1000/(β·1000)): e^-1 ≈ 0.368 for β = 1,
/// e^-0.5 ≈ 0.607 for β = 2 (the time the test takes moves it by less than
/// 0.001). 2,000 hits each; the fraction drawn is within ±0.05 (over 4
/// standard deviations) of the formula.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refresh_draws_follow_the_xfetch_formula() {
    let redis = support::shared_redis();
    let cache = register("xfetch", &redis);
    for (beta, expected) in [(1.0f64, (-1.0f64).exp()), (2.0, (-0.5f64).exp())] {
        let key = if beta == 1.0 {
            beta_one_cache_key(1)
        } else {
            beta_two_cache_key(1)
        };
        plant(&redis, &key, 7, 1_000_000, 1_000_000);
        let before = cache.stats().early_refreshes;
        const HITS: u64 = 2_000;
        for _ in 0..HITS {
            let value = if beta == 1.0 {
                beta_one(1).await
            } else {
                beta_two(1).await
            };
            assert_eq!(value, Ok(7), "every call is a hit on the planted value");
        }
        let drawn = (cache.stats().early_refreshes - before) as f64 / HITS as f64;
        println!("β = {beta}: {drawn:.3} of hits drew an early refresh (formula {expected:.3})");
        assert!(
            (drawn - expected).abs() < 0.05,
            "β = {beta}: drew {drawn:.3}, the formula says {expected:.3}"
        );
    }
}

static SWR_RUNS: AtomicU64 = AtomicU64::new(0);

#[cache_memoize(
    prefix = "fresh::swr",
    alias = "swr",
    ttl = 1,
    stale_while_revalidate = 30
)]
async fn report(id: u64) -> u64 {
    let run = SWR_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(300)).await;
    id * 1_000 + run
}

/// Past its ttl, within the window: 64 concurrent callers get the old value
/// at hit latency (none waits for the 300 ms body), exactly one refresh
/// runs, and the callers after it get the new value. An invalidated value is
/// never served stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_at_once_while_one_refresh_runs() {
    let redis = support::shared_redis();
    let cache = register("swr", &redis);
    assert_eq!(report(1).await, 1_001, "first call computes");
    tokio::time::sleep(Duration::from_millis(1_100)).await; // logically expired
    let callers: Vec<_> = (0..64)
        .map(|_| {
            tokio::spawn(async {
                let started = Instant::now();
                (report(1).await, started.elapsed())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for caller in callers {
        let (value, took) = caller.await.unwrap();
        assert_eq!(value, 1_001, "served the old value");
        slowest = slowest.max(took);
    }
    println!("64 callers past the ttl: slowest {slowest:?} (the body takes 300 ms)");
    assert!(
        slowest < Duration::from_millis(250),
        "a caller waited for the body: {slowest:?}"
    );
    // The one background refresh lands.
    let deadline = Instant::now() + Duration::from_secs(5);
    while report(1).await == 1_001 {
        assert!(Instant::now() < deadline, "the refresh never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        SWR_RUNS.load(Ordering::SeqCst),
        2,
        "one refresh for 64 stale hits"
    );
    assert_eq!(report(1).await, 1_002);
    assert!(cache.stats().stale_served >= 64);

    // Invalidated past its ttl: computed again, never served stale.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(report_invalidate(1).await);
    let started = Instant::now();
    assert_eq!(
        report(1).await,
        1_003,
        "computed, not the invalidated value"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the body ran"
    );
}

static FAIL: AtomicBool = AtomicBool::new(false);
static PANIC: AtomicBool = AtomicBool::new(false);

#[cache_memoize(prefix = "fresh::sie", alias = "sie", ttl = 1, stale_if_error = 30)]
async fn price(id: u64) -> Result<u64, String> {
    if PANIC.load(Ordering::SeqCst) {
        panic!("the pricing service panicked");
    }
    if FAIL.load(Ordering::SeqCst) {
        return Err("the pricing service is down".to_owned());
    }
    Ok(id * 10)
}

/// Past its ttl, a failing body (an `Err`, or a panic) returns the last good
/// value within the window, counted; after an invalidation the error shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_returns_the_last_good_value() {
    let redis = support::shared_redis();
    let cache = register("sie", &redis);
    assert_eq!(price(3).await, Ok(30));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    FAIL.store(true, Ordering::SeqCst);
    assert_eq!(price(3).await, Ok(30), "the last good value");
    assert_eq!(cache.stats().stale_on_error, 1);
    PANIC.store(true, Ordering::SeqCst);
    let panicked = tokio::spawn(price(3)).await;
    assert_eq!(panicked.ok(), Some(Ok(30)), "a panic falls back too");
    PANIC.store(false, Ordering::SeqCst);
    assert_eq!(cache.stats().stale_on_error, 2);
    // Invalidated: nothing to fall back on.
    assert!(price_invalidate(3).await);
    assert!(price(3).await.is_err());
    // Recovered: computed and stored again.
    FAIL.store(false, Ordering::SeqCst);
    assert_eq!(price(3).await, Ok(30));
}
