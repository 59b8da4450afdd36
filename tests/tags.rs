//! Tag invalidation against a real redis-server and the local 3-master
//! cluster (issue 14): `tags = [...]` on the attribute, `invalidate_tag`
//! through another `Cache` instance, and no value computed before an
//! invalidation survives it.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cluster.rs"]
mod cluster_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use cache_memoize::memoized::{key_part, Memoized, Policy};
use cache_memoize::{cache_memoize, registry, Cache};

static PROFILE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cache_memoize(prefix = "tags::profile", alias = "tags", ttl = 300, tags = [format!("user:{user}"), "profiles"])]
async fn profile(user: u64) -> String {
    let run = PROFILE_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    format!("profile of {user}, run {run}")
}

static ORDER_RUNS: AtomicU64 = AtomicU64::new(0);

#[cache_memoize(prefix = "tags::orders", alias = "tags", ttl = 300, tags = [format!("user:{user}")])]
async fn orders(user: u64) -> u64 {
    ORDER_RUNS.fetch_add(1, Ordering::SeqCst);
    user * 2
}

fn cache_on(url: &str, prefix: &str) -> Cache {
    Cache::builder()
        .url(url)
        .prefix(prefix)
        .build()
        .expect("a valid Redis cache")
}

/// "Everything about user 7" across two functions goes in one call made
/// through another `Cache` instance (standing for another process); user 8
/// and the untagged values stay cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidating_a_tag_recomputes_every_value_that_depends_on_it() {
    let redis = support::shared_redis();
    let prefix = format!("tags-{}", std::process::id());
    registry::register("tags", cache_on(redis.url(), &prefix));
    let other = cache_on(redis.url(), &prefix);
    for user in [7, 8] {
        profile(user).await;
        orders(user).await;
    }
    let (profiles, order_runs) = (
        PROFILE_RUNS.load(Ordering::SeqCst),
        ORDER_RUNS.load(Ordering::SeqCst),
    );
    for user in [7, 8] {
        profile(user).await;
        orders(user).await;
    }
    assert_eq!(
        PROFILE_RUNS.load(Ordering::SeqCst),
        profiles,
        "hits before the invalidation"
    );
    assert_eq!(ORDER_RUNS.load(Ordering::SeqCst), order_runs);

    other.invalidate_tag("user:7").await.unwrap();
    assert!(
        profile(7).await.ends_with(&format!("run {}", profiles + 1)),
        "recomputed"
    );
    orders(7).await;
    assert_eq!(
        ORDER_RUNS.load(Ordering::SeqCst),
        order_runs + 1,
        "orders of 7 recomputed"
    );
    profile(8).await;
    orders(8).await;
    assert_eq!(
        PROFILE_RUNS.load(Ordering::SeqCst),
        profiles + 1,
        "user 8 still cached"
    );
    assert_eq!(ORDER_RUNS.load(Ordering::SeqCst), order_runs + 1);
    // The recomputed values are cached again, under the new version.
    profile(7).await;
    assert_eq!(PROFILE_RUNS.load(Ordering::SeqCst), profiles + 1);
    // A tag shared by every profile.
    other.invalidate_tags(&["profiles"]).await.unwrap();
    profile(7).await;
    profile(8).await;
    assert_eq!(PROFILE_RUNS.load(Ordering::SeqCst), profiles + 3);
}

/// The race of §6: a computation that read its data before `invalidate_tag`
/// and stores after it must not leave its value behind. 300 runs over
/// distinct keys: the body reads a version, the test bumps it and
/// invalidates the tag mid-computation, the next call must see the new one.
async fn no_value_outlives_a_tag_invalidation(cache: Cache, other: Cache, label: &str) {
    let db: &'static Mutex<HashMap<u64, u64>> = Box::leak(Box::default());
    let mut stale = 0;
    let runs = 300u64;
    let mut batch = Vec::new();
    for key in 0..runs {
        let (cache, other) = (cache.clone(), other.clone());
        batch.push(tokio::spawn(async move {
            let tag = format!("row:{key}");
            // Set once the body has read its data: the invalidation then
            // comes while it computes.
            let has_read = std::sync::Arc::new(tokio::sync::Notify::new());
            let read = |signal: Option<std::sync::Arc<tokio::sync::Notify>>| {
                let (cache, tag) = (cache.clone(), tag.clone());
                async move {
                    let memo = Memoized::new(cache, "tags::row").tags([tag]);
                    let full = memo.key(&[key_part(&key)]);
                    let body = |key| async move {
                        let version = *db.lock().unwrap().entry(key).or_insert(0);
                        if let Some(signal) = signal {
                            signal.notify_one();
                        }
                        tokio::time::sleep(Duration::from_millis(40)).await;
                        version
                    };
                    memo.call(full, key, body, Policy::always(), |_| {}, |_| {})
                        .await
                }
            };
            let first = tokio::spawn(read(Some(has_read.clone())));
            has_read.notified().await;
            *db.lock().unwrap().entry(key).or_insert(0) += 1;
            other.invalidate_tag(&tag).await.unwrap();
            let _ = first.await.unwrap();
            read(None).await
        }));
    }
    for run in batch {
        if run.await.unwrap() != 1 {
            stale += 1;
        }
    }
    println!("{label}: {stale} of {runs} calls after invalidate_tag returned older data");
    assert_eq!(
        stale, 0,
        "{label}: values computed before invalidate_tag survived it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computation_started_before_invalidate_tag_leaves_nothing_behind() {
    let redis = support::shared_redis();
    let prefix = format!("tags-race-{}", std::process::id());
    let cache = cache_on(redis.url(), &prefix);
    let other = cache_on(redis.url(), &prefix);
    no_value_outlives_a_tag_invalidation(cache, other, "single server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_tags_in_other_slots_invalidate_too() {
    let cluster = cluster_support::shared_cluster();
    let prefix = format!("tags-cluster-{}", std::process::id());
    let build = || {
        Cache::builder()
            .cluster_urls(cluster.urls())
            .prefix(&prefix)
            .response_timeout(Duration::from_secs(2))
            .build()
            .expect("a valid cluster cache")
    };
    no_value_outlives_a_tag_invalidation(build(), build(), "cluster").await;
}

/// Env vars of the child process of the two-process test.
const CHILD_URL: &str = "TAGS_CHILD_URL";
const CHILD_PREFIX: &str = "TAGS_CHILD_PREFIX";

static REPORT_RUNS: AtomicU64 = AtomicU64::new(0);

#[cache_memoize(prefix = "tags::report", alias = "tags-process", ttl = 300, tags = [format!("team:{team}")])]
async fn team_report(team: u64) -> u64 {
    REPORT_RUNS.fetch_add(1, Ordering::SeqCst);
    team + 100
}

/// Another OS process (this test binary, run again as the child) invalidates
/// the tag; this process's next call recomputes, and other tags stay cached.
#[test]
fn a_tag_invalidated_in_another_process_recomputes_here() {
    if let (Ok(url), Ok(prefix)) = (std::env::var(CHILD_URL), std::env::var(CHILD_PREFIX)) {
        // The child: invalidate one tag through its own cache, and exit.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let version = runtime
            .block_on(cache_on(&url, &prefix).invalidate_tag("team:1"))
            .expect("the child invalidates the tag");
        println!("child: team:1 is now at version {version}");
        return;
    }
    let redis = support::shared_redis();
    let prefix = format!("tags-process-{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        registry::register("tags-process", cache_on(redis.url(), &prefix));
        team_report(1).await;
        team_report(2).await;
        team_report(1).await;
        assert_eq!(REPORT_RUNS.load(Ordering::SeqCst), 2, "cached before");
    });
    let child = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "a_tag_invalidated_in_another_process_recomputes_here",
            "--nocapture",
        ])
        .env(CHILD_URL, redis.url())
        .env(CHILD_PREFIX, &prefix)
        .output()
        .expect("the child process runs");
    assert!(
        child.status.success(),
        "the child failed: {}",
        String::from_utf8_lossy(&child.stderr)
    );
    runtime.block_on(async {
        team_report(1).await;
        assert_eq!(
            REPORT_RUNS.load(Ordering::SeqCst),
            3,
            "team 1 recomputed here"
        );
        team_report(2).await;
        assert_eq!(REPORT_RUNS.load(Ordering::SeqCst), 3, "team 2 still cached");
    });
}
