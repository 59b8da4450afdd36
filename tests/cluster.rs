//! The Redis Cluster backend against a real local cluster (three masters on
//! free loopback ports, started by `support/cluster.rs`): the macro, the
//! strict API, batches across hash slots, `invalidate_all` on every master
//! and the stampede lock.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cluster.rs"]
mod cluster_support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_memoize::{cache_memoize, registry, store, Cache, CallOptions};
use cluster_support::{shared_cluster, LocalCluster};

/// A cluster cache with a key prefix unique to this test, registered under
/// `alias` when the macro needs it.
fn cluster_cache(cluster: &LocalCluster, prefix: &str) -> Cache {
    Cache::builder()
        .cluster_urls(cluster.urls())
        .prefix(format!("cluster-{}-{prefix}", std::process::id()))
        .response_timeout(Duration::from_secs(2))
        .build()
        .expect("a valid cluster cache configuration")
}

/// How many nodes hold at least one key matching `pattern`, and how many keys.
fn spread(cluster: &LocalCluster, pattern: &str) -> (usize, usize) {
    let per_node: Vec<usize> = cluster
        .nodes
        .iter()
        .map(|node| cluster.keys_on(node, pattern).len())
        .collect();
    (
        per_node.iter().filter(|&&n| n > 0).count(),
        per_node.iter().sum(),
    )
}

static PRICES: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "cluster-macro", ttl = 60)]
async fn price(item: u64) -> u64 {
    PRICES.fetch_add(1, Ordering::SeqCst);
    item * 100
}

static NAMES: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "cluster-macro", ttl = 60)]
async fn name(item: u64) -> String {
    NAMES.fetch_add(1, Ordering::SeqCst);
    format!("item {item}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memoized_functions_hit_and_invalidate_all_clears_every_master() {
    let cluster = shared_cluster();
    let cache = cluster_cache(&cluster, "macro");
    registry::register("cluster-macro", cache.clone());
    assert!(cache.describe_backend().starts_with("redis cluster at "));

    // Miss, then hit.
    assert_eq!(price(1).await, 100);
    assert_eq!(price(1).await, 100);
    assert_eq!(PRICES.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (1, 1));

    // Enough entries that they land on several masters.
    for item in 0..40 {
        assert_eq!(price(item).await, item * 100);
        assert_eq!(name(item).await, format!("item {item}"));
    }
    let price_pattern = format!("{}*", price_cache_key(0).rsplit_once(':').unwrap().0);
    let name_pattern = format!("{}*", name_cache_key(0).rsplit_once(':').unwrap().0);
    let (nodes, keys) = spread(&cluster, &price_pattern);
    assert!(
        nodes >= 2,
        "40 keys should spread over ≥ 2 masters, got {nodes}"
    );
    assert_eq!(keys, 40);
    let node_of_first = cluster.node_of(&price_cache_key(0));
    assert!(cluster
        .keys_on(node_of_first, &price_cache_key(0))
        .contains(&price_cache_key(0)));

    assert_eq!(price_invalidate_all().await, 40);
    assert_eq!(
        spread(&cluster, &price_pattern),
        (0, 0),
        "no price entry left"
    );
    let (_, names_left) = spread(&cluster, &name_pattern);
    assert_eq!(names_left, 40, "the other function's entries remain");

    // Computed again after the invalidation.
    let before = PRICES.load(Ordering::SeqCst);
    assert_eq!(price(3).await, 300);
    assert_eq!(PRICES.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn strict_get_set_delete_and_prefix_delete() {
    let cluster = shared_cluster();
    let cache = cluster_cache(&cluster, "strict");
    cache.ping().await.expect("the cluster answers PING");
    for i in 0..30u32 {
        cache.set(&format!("user:{i}"), &i, None).await.unwrap();
    }
    assert_eq!(cache.get::<u32>("user:7").await.unwrap(), Some(7));
    assert!(cache.delete("user:7").await.unwrap());
    assert!(!cache.delete("user:7").await.unwrap());
    assert_eq!(cache.get::<u32>("user:7").await.unwrap(), None);
    cache.set("other", "kept", None).await.unwrap();

    let pattern = format!("{}*", cache.full_key("user:"));
    assert!(
        spread(&cluster, &pattern).0 >= 2,
        "user keys on ≥ 2 masters"
    );
    assert_eq!(cache.delete_prefix("user:").await.unwrap(), 29);
    assert_eq!(spread(&cluster, &pattern), (0, 0));
    assert_eq!(
        cache.get::<String>("other").await.unwrap().as_deref(),
        Some("kept")
    );
}

#[tokio::test]
async fn batches_split_across_hash_slots() {
    let cluster = shared_cluster();
    let cache = cluster_cache(&cluster, "batch");
    let items: Vec<(String, u64)> = (0..100).map(|i| (format!("k{i}"), i * i)).collect();
    cache.set_many(&items, None).await.unwrap();

    let masters: BTreeSet<u16> = items
        .iter()
        .map(|(k, _)| cluster.node_of(&cache.full_key(k)).port)
        .collect();
    assert_eq!(masters.len(), 3, "100 keys cover every master");

    let mut keys: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
    keys.insert(50, "absent".into());
    let got: Vec<Option<u64>> = cache.get_many(&keys).await.unwrap();
    assert_eq!(got.len(), 101);
    assert_eq!(got[50], None);
    for (i, value) in got.iter().enumerate().filter(|(i, _)| *i != 50) {
        let n = if i < 50 { i } else { i - 1 } as u64;
        assert_eq!(*value, Some(n * n), "key k{n}");
    }

    // get_or_compute_many computes only the missing ones.
    let computed = Arc::new(AtomicUsize::new(0));
    let counter = computed.clone();
    let wanted = ["k1", "new-a", "k2", "new-b"];
    let values: Vec<u64> = cache
        .get_or_compute_many(&wanted, None, |missing| async move {
            counter.fetch_add(missing.len(), Ordering::SeqCst);
            missing.iter().map(|&i| 1000 + i as u64).collect()
        })
        .await;
    assert_eq!(values, [1, 1001, 4, 1003]);
    assert_eq!(computed.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stampede_lock_works_on_a_cluster() {
    let cluster = shared_cluster();
    let runs = Arc::new(AtomicUsize::new(0));
    // Four "processes": separate caches, separate single-flight state.
    let caches: Vec<Cache> = (0..4).map(|_| cluster_cache(&cluster, "lock")).collect();
    let mut tasks = Vec::new();
    for cache in &caches {
        for _ in 0..20 {
            let (cache, runs) = (cache.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .memoize(
                        "cold",
                        CallOptions::ttl(None).locking(true),
                        || async {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            "expensive".to_owned()
                        },
                        store::always,
                        |v| v,
                    )
                    .await
            }));
        }
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), "expensive");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one computation in all");
    let waits: u64 = caches.iter().map(|c| c.stats().lock_waits).sum();
    assert!(waits >= 3, "the other caches waited on the lock ({waits})");
    let lock_key = format!("{}:lock", caches[0].full_key("cold"));
    let holder = cluster.node_of(&lock_key);
    assert!(
        support::redis_cmd(holder.port, &[b"EXISTS", lock_key.as_bytes()]).as_int() == Some(0),
        "the lock was released (compare-and-delete) on its master"
    );
}

static FLAGGED: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "cluster-failed-master")]
async fn flagged(item: u64) -> u64 {
    FLAGGED.fetch_add(1, Ordering::SeqCst);
    item
}

/// A master the others flag `fail` cannot be cleared: the strict API says
/// which one was not reached, the fail-open one warns and counts an error,
/// instead of reporting a count as if every master had been cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_names_a_failed_master_it_could_not_reach() {
    // A cluster of its own: one of its masters is stopped.
    let cluster = LocalCluster::start();
    for node in &cluster.nodes {
        // The healthy masters keep serving their slots meanwhile.
        node.cmd(&[b"CONFIG", b"SET", b"cluster-require-full-coverage", b"no"])
            .expect_ok();
    }
    let cache = Cache::builder()
        .cluster_urls(cluster.urls())
        .prefix("failed-master")
        .response_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    registry::register("cluster-failed-master", cache.clone());
    for item in 0..30 {
        flagged(item).await;
        cache
            .set(&format!("user:{item}"), &item, None)
            .await
            .unwrap();
    }
    let stopped = cluster.node_of(&flagged_cache_key(0));
    let address = format!("127.0.0.1:{}", stopped.port);
    stopped.pause();
    // Wait until a healthy node flags it `fail` (cluster-node-timeout 2 s).
    let healthy = cluster
        .nodes
        .iter()
        .find(|n| n.port != stopped.port)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = healthy.cmd(&[b"CLUSTER", b"NODES"]).as_str().unwrap();
        let line = nodes
            .lines()
            .find(|l| l.contains(&address))
            .unwrap()
            .to_owned();
        if line
            .split_whitespace()
            .nth(2)
            .unwrap()
            .split(',')
            .any(|f| f == "fail")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never flagged: {line}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let strict = cache.delete_prefix("user:").await;
    let fail_open_errors = cache.stats().errors;
    let deleted = flagged_invalidate_all().await;
    let errors_after = cache.stats().errors;
    stopped.resume();

    let error = strict.expect_err("a master was not reached");
    match &error {
        cache_memoize::Error::MastersUnreached { unreached, deleted } => {
            assert_eq!(unreached.len(), 1, "{error}");
            assert!(unreached[0].starts_with(&address), "{error}");
            assert!((1..30).contains(deleted), "{error}");
        }
        other => panic!("expected MastersUnreached, got {other:?}"),
    }
    assert!(
        deleted < 30,
        "the stopped master's entries were not deleted"
    );
    assert!(
        errors_after > fail_open_errors,
        "the fail-open invalidate_all counts an error"
    );
}
