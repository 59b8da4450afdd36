//! The local tier against a real redis-server: hits from memory, an
//! invalidation from another cache (its own connections, as another
//! process has) seen within the bound, epochs, the fallback when tracking
//! is refused, and what is kept out.
//!
//! The multi-process checker under faults is `tests/coherence.rs`.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cluster.rs"]
mod cluster_support;

#[path = "support/sentinel.rs"]
mod sentinel_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_memoize::{cache_memoize, registry, Cache, LocalTier, LocalTierState};
use serde::{Deserialize, Serialize};

/// The bound of every tier here.
const BOUND: Duration = Duration::from_millis(5);

/// The server of this binary's tests (stopped when the last test ends:
/// hold it for the whole test).
fn server() -> std::sync::Arc<support::TestRedis> {
    support::shared_redis()
}

fn tiered(redis: &support::TestRedis, prefix: &str) -> Cache {
    Cache::builder()
        .url(redis.url())
        .prefix(prefix)
        .local_tier(LocalTier::new(16 << 20).staleness_bound(BOUND))
        .build()
        .expect("a valid cache")
}

fn plain(redis: &support::TestRedis, prefix: &str) -> Cache {
    Cache::builder()
        .url(redis.url())
        .prefix(prefix)
        .build()
        .expect("a valid cache")
}

/// Waits (bounded) until the tier serves from memory.
async fn serving(cache: &Cache) {
    let deadline = Instant::now() + Duration::from_secs(5);
    // A lookup wakes the heartbeat when the lease has lapsed.
    while cache.local_tier_state() != Some(LocalTierState::Serving) {
        assert!(
            Instant::now() < deadline,
            "the tier never started serving: {:?}",
            cache.local_tier_state()
        );
        let _ = cache.get::<u8>("wake").await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

static SOURCE: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "lt-reader", prefix = "source", ttl = 60)]
async fn source_via_reader(key: u32) -> usize {
    let _ = key;
    SOURCE.load(Ordering::SeqCst)
}

#[cache_memoize(alias = "lt-writer", prefix = "source", ttl = 60)]
async fn source_via_writer(key: u32) -> usize {
    let _ = key;
    SOURCE.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_come_from_memory_and_an_invalidation_elsewhere_reaches_them_within_the_bound() {
    let redis = server();
    let reader = tiered(&redis, "lt-basic");
    registry::register("lt-reader", reader.clone());
    registry::register("lt-writer", plain(&redis, "lt-basic"));
    serving(&reader).await;
    SOURCE.store(1, Ordering::SeqCst);
    assert_eq!(source_via_reader(1).await, 1, "a miss computes");
    assert_eq!(
        source_via_reader(1).await,
        1,
        "a hit from Redis fills memory"
    );
    let before = reader.stats().local_hits;
    for _ in 0..100 {
        assert_eq!(source_via_reader(1).await, 1);
    }
    let after = reader.stats();
    assert!(
        after.local_hits >= before + 90,
        "hits were not served from memory: {after:?}"
    );

    // Another cache (its own connections, as in another process) changes
    // the source and invalidates: after the bound, the reader sees it.
    for round in 2..20 {
        SOURCE.store(round, Ordering::SeqCst);
        assert!(source_via_writer_invalidate(1).await, "the entry existed");
        tokio::time::sleep(BOUND + Duration::from_millis(1)).await;
        assert_eq!(
            source_via_reader(1).await,
            round,
            "round {round}: memory served a value older than an invalidation acknowledged {BOUND:?} ago"
        );
        // And a refresh (a `set`) elsewhere too.
        SOURCE.store(round * 100, Ordering::SeqCst);
        assert_eq!(source_via_writer_refresh(1).await, round * 100);
        tokio::time::sleep(BOUND + Duration::from_millis(1)).await;
        assert_eq!(source_via_reader(1).await, round * 100);
    }
    let stats = reader.stats().local.expect("a tier");
    assert!(stats.pushes > 0, "{stats:?}");
}

static FLUSH_SOURCE: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "lt-flush", ttl = 60)]
async fn flushed(key: u32) -> usize {
    let _ = key;
    FLUSH_SOURCE.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushall_empties_memory() {
    // FLUSHALL would wipe the other tests' entries: a server of its own.
    let server = support::RedisServer::start();
    let cache = Cache::builder()
        .url(server.url())
        .local_tier(LocalTier::new(1 << 20).staleness_bound(BOUND))
        .build()
        .unwrap();
    registry::register("lt-flush", cache.clone());
    serving(&cache).await;
    FLUSH_SOURCE.store(1, Ordering::SeqCst);
    flushed(1).await;
    flushed(1).await;
    let bumps = cache.stats().local_epoch_bumps;
    FLUSH_SOURCE.store(2, Ordering::SeqCst);
    server.cmd(&[b"FLUSHALL"]).expect_ok();
    tokio::time::sleep(BOUND + Duration::from_millis(1)).await;
    assert_eq!(flushed(1).await, 2);
    assert!(cache.stats().local_epoch_bumps > bumps);
}

/// Counts its clones: an `Arc<Counted>` hit must clone the `Arc` only.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Counted(u64);

static CLONES: AtomicUsize = AtomicUsize::new(0);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, Ordering::SeqCst);
        Counted(self.0)
    }
}

#[cache_memoize(alias = "lt-arc", ttl = 60)]
async fn shared(key: u64) -> Arc<Counted> {
    Arc::new(Counted(key))
}

#[cache_memoize(alias = "lt-arc", ttl = 60, local = false)]
async fn kept_out(key: u64) -> u64 {
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arc_hit_clones_no_value_and_local_false_keeps_a_function_out() {
    let redis = server();
    let cache = tiered(&redis, "lt-arc");
    registry::register("lt-arc", cache.clone());
    serving(&cache).await;
    shared(7).await;
    shared(7).await;
    let before = cache.stats().local_hits;
    CLONES.store(0, Ordering::SeqCst);
    for _ in 0..50 {
        assert_eq!(*shared(7).await, Counted(7));
    }
    assert!(cache.stats().local_hits >= before + 45);
    assert_eq!(CLONES.load(Ordering::SeqCst), 0, "a hit cloned the value");

    let before = cache.stats();
    for _ in 0..20 {
        kept_out(1).await;
    }
    let after = cache.stats();
    assert_eq!(
        after.local_hits, before.local_hits,
        "local = false was served from memory"
    );
    assert!(after.hits >= before.hits + 19);
}

#[tokio::test]
async fn where_tracking_is_refused_the_tier_turns_off_and_calls_still_work() {
    // An ACL user without `CLIENT`: tracking is refused.
    let server = support::RedisServer::start_with_args(&[
        "--user", "app", "on", ">pw", "~*", "+@all", "-client",
    ]);
    let cache = Cache::builder()
        .url(format!("redis://app:pw@127.0.0.1:{}/", server.port))
        .local_tier(LocalTier::new(1 << 20))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let reason = loop {
        if let Some(LocalTierState::Off(reason)) = cache.local_tier_state() {
            break reason;
        }
        assert!(Instant::now() < deadline, "{:?}", cache.local_tier_state());
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(reason.contains("refused"), "{reason}");
    assert!(
        !reason.contains("pw@"),
        "the reason shows the password: {reason}"
    );
    let computed = AtomicUsize::new(0);
    for _ in 0..3 {
        let value = cache
            .get_or_compute("k", Some(Duration::from_secs(60)), || async {
                computed.fetch_add(1, Ordering::SeqCst);
                5u8
            })
            .await;
        assert_eq!(value, 5);
    }
    assert_eq!(
        computed.load(Ordering::SeqCst),
        1,
        "Redis still serves the hits"
    );
}

#[test]
fn an_in_memory_cache_says_why_it_has_no_tier() {
    let cache = Cache::builder()
        .local_tier(LocalTier::new(1 << 20))
        .build()
        .unwrap();
    assert!(matches!(
        cache.local_tier_state(),
        Some(LocalTierState::Off(_))
    ));
    assert!(Cache::builder()
        .url("redis://127.0.0.1:1/")
        .local_tier(LocalTier::new(0))
        .build()
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tracking_connection_stops_memory_hits_until_it_is_back() {
    // Its own server: the only tracking connection in CLIENT LIST is ours.
    let redis = support::RedisServer::start();
    let cache = Cache::builder()
        .url(redis.url())
        .local_tier(LocalTier::new(1 << 20).staleness_bound(BOUND))
        .build()
        .unwrap();
    serving(&cache).await;
    let bumps = cache.stats().local_epoch_bumps;
    let list = redis.cmd(&[b"CLIENT", b"LIST"]).as_str().unwrap();
    let id = list
        .lines()
        .filter(|line| line.contains("name=cache-memoize-tracking"))
        .filter_map(|line| line.split_whitespace().next()?.strip_prefix("id="))
        .next_back()
        .expect("a tracking connection in CLIENT LIST")
        .to_owned();
    redis.cmd(&[b"CLIENT", b"KILL", b"ID", id.as_bytes()]);
    // Lost: everything before is invalid; then tracked again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.stats().local_epoch_bumps < bumps + 2 {
        assert!(Instant::now() < deadline, "{:?}", cache.stats().local);
        let _ = cache.get::<u8>("wake").await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    serving(&cache).await;
}

static CLUSTER_SOURCE: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "lt-cluster-reader", prefix = "cluster-source", ttl = 60)]
async fn cluster_source(key: u32) -> usize {
    let _ = key;
    CLUSTER_SOURCE.load(Ordering::SeqCst)
}

#[cache_memoize(alias = "lt-cluster-writer", prefix = "cluster-source", ttl = 60)]
async fn cluster_source_elsewhere(key: u32) -> usize {
    let _ = key;
    CLUSTER_SOURCE.load(Ordering::SeqCst)
}

/// On a 3-master cluster every primary is tracked: keys on each master are
/// served from memory, and an invalidation by another cache reaches the
/// reader within the bound whichever master holds the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_every_primary_is_tracked() {
    let cluster = cluster_support::shared_cluster();
    let prefix = format!("lt-cluster-{}", std::process::id());
    let cluster_cache = |tier: bool| {
        let builder = Cache::builder()
            .cluster_urls(cluster.urls())
            .prefix(prefix.clone());
        let builder = if tier {
            builder.local_tier(LocalTier::new(1 << 20).staleness_bound(BOUND))
        } else {
            builder
        };
        builder.build().expect("a valid cluster cache")
    };
    let reader = cluster_cache(true);
    registry::register("lt-cluster-reader", reader.clone());
    registry::register("lt-cluster-writer", cluster_cache(false));
    serving(&reader).await;
    // Keys until every master holds one.
    let keys: Vec<u32> = (0..64).collect();
    let masters: std::collections::BTreeSet<u16> = keys
        .iter()
        .map(|&k| cluster.node_of(&cluster_source_cache_key(k)).port)
        .collect();
    assert_eq!(masters.len(), 3, "64 keys land on every master");
    CLUSTER_SOURCE.store(1, Ordering::SeqCst);
    // Fill memory: a miss, then reads from Redis until memory serves.
    let deadline = Instant::now() + Duration::from_secs(10);
    for &key in &keys {
        loop {
            assert!(
                Instant::now() < deadline,
                "key {key} never served from memory: {:?}",
                reader.stats().local
            );
            let before = reader.stats().local_hits;
            assert_eq!(cluster_source(key).await, 1);
            if reader.stats().local_hits > before {
                break;
            }
        }
    }
    for round in 2..6 {
        CLUSTER_SOURCE.store(round, Ordering::SeqCst);
        for &key in &keys {
            assert!(
                cluster_source_elsewhere_invalidate(key).await,
                "key {key} was stored"
            );
        }
        tokio::time::sleep(BOUND + Duration::from_millis(1)).await;
        for &key in &keys {
            assert_eq!(
                cluster_source(key).await,
                round,
                "key {key} (on master {}): memory served a value older than an invalidation acknowledged {BOUND:?} ago",
                cluster.node_of(&cluster_source_cache_key(key)).port
            );
        }
    }
    let stats = reader.stats().local.expect("a tier");
    assert!(
        stats.pushes >= 64 * 4,
        "pushes from every master: {stats:?}"
    );
    assert_eq!(reader.local_tier_state(), Some(LocalTierState::Serving));
}

static SENTINEL_SOURCE: AtomicUsize = AtomicUsize::new(0);

#[cache_memoize(alias = "lt-sentinel-reader", prefix = "sentinel-source", ttl = 60)]
async fn sentinel_source(key: u32) -> usize {
    let _ = key;
    SENTINEL_SOURCE.load(Ordering::SeqCst)
}

#[cache_memoize(alias = "lt-sentinel-writer", prefix = "sentinel-source", ttl = 60)]
async fn sentinel_source_elsewhere(key: u32) -> usize {
    let _ = key;
    SENTINEL_SOURCE.load(Ordering::SeqCst)
}

/// Reads `key` through the reader until memory serves it (bounded).
async fn until_served_from_memory(reader: &Cache, key: u32, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "key {key} never served from memory: {:?} {:?}",
            reader.local_tier_state(),
            reader.stats().local
        );
        let before = reader.stats().local_hits;
        assert_eq!(sentinel_source(key).await, expected);
        if reader.stats().local_hits > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Behind Sentinel the tier tracks the master the sentinels name, and
/// after a failover (`SENTINEL FAILOVER`) it tracks the new one: an
/// invalidation by another cache is seen within the bound before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_sentinel_the_tier_follows_a_failover() {
    use sentinel_support::{SentinelGroup, MASTER_NAME};
    let group = SentinelGroup::start(Duration::from_secs(1));
    let sentinel_cache = |tier: bool| {
        let builder = Cache::builder()
            .sentinel(MASTER_NAME, group.sentinel_urls())
            .prefix("lt-sentinel")
            .connect_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(2));
        let builder = if tier {
            builder.local_tier(LocalTier::new(1 << 20).staleness_bound(BOUND))
        } else {
            builder
        };
        builder.build().expect("a valid sentinel cache")
    };
    let reader = sentinel_cache(true);
    registry::register("lt-sentinel-reader", reader.clone());
    registry::register("lt-sentinel-writer", sentinel_cache(false));
    serving(&reader).await;
    SENTINEL_SOURCE.store(1, Ordering::SeqCst);
    until_served_from_memory(&reader, 1, 1).await;
    SENTINEL_SOURCE.store(2, Ordering::SeqCst);
    assert!(sentinel_source_elsewhere_invalidate(1).await);
    tokio::time::sleep(BOUND + Duration::from_millis(1)).await;
    assert_eq!(sentinel_source(1).await, 2, "an invalidation on the master");

    let old_master = group.master_port().expect("a master");
    let bumps = reader.stats().local_epoch_bumps;
    group
        .sentinel_cmd(
            group.sentinels[0].port,
            &[b"SENTINEL", b"FAILOVER", MASTER_NAME.as_bytes()],
        )
        .expect("SENTINEL FAILOVER answers")
        .expect_ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    while group.master_port() == Some(old_master) || reader.stats().local_epoch_bumps == bumps {
        assert!(
            Instant::now() < deadline,
            "no failover seen: master {:?}, {:?}",
            group.master_port(),
            reader.stats().local
        );
        // Calls keep going through the failover.
        let _ = sentinel_source(1).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The new master is tracked: fill, then an invalidation there is seen.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        SENTINEL_SOURCE.store(3, Ordering::SeqCst);
        let written = sentinel_source_elsewhere_invalidate(1).await;
        let read = sentinel_source(1).await;
        if written && read == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new master never took writes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_served_from_memory(&reader, 1, 3).await;
    SENTINEL_SOURCE.store(4, Ordering::SeqCst);
    // A refresh elsewhere stores 4 (a SET the master acknowledges; the
    // other cache may still hold a connection to the old master, now a
    // replica that refuses writes: until its store is counted).
    let writer = registry::get("lt-sentinel-writer").expect("registered");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stores = writer.stats().stores;
        assert_eq!(sentinel_source_elsewhere_refresh(1).await, 4);
        if writer.stats().stores > stores {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new master never acknowledged a store: {:?}",
            writer.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(BOUND + Duration::from_millis(1)).await;
    assert_eq!(
        sentinel_source(1).await,
        4,
        "an invalidation on the new master reaches memory within the bound"
    );
}
