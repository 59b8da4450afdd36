//! Redis Sentinel: the cache finds the master through the sentinels, stays
//! fail-open while there is none, and follows the promoted replica after
//! the master is killed, under a concurrent load of memoized calls.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cluster.rs"]
mod cluster_support;
#[path = "support/failover.rs"]
mod failover;
#[path = "support/load.rs"]
mod load;
#[path = "support/sentinel.rs"]
mod sentinel_support;

use std::time::{Duration, Instant};

use cache_memoize::Cache;
use failover::{Fault, CONNECT_TIMEOUT, RESPONSE_TIMEOUT};
use sentinel_support::{SentinelGroup, MASTER_NAME};

const DOWN_AFTER: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_follows_a_sentinel_failover_and_fails_no_call() {
    failover(SentinelGroup::start(DOWN_AFTER), None, false, Fault::Kill).await;
}

/// A stalled master (SIGSTOP) keeps its connections open: the cache must
/// still leave it for the promoted replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_leaves_a_stalled_master_for_the_promoted_one() {
    failover(SentinelGroup::start(DOWN_AFTER), None, false, Fault::Pause).await;
}

/// The same with passwords on the data nodes and on the sentinels, and
/// the first sentinel listed hung (SIGSTOP) before the master dies: the
/// others find the new master, and no secret shows in the cache's errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_sentinel_and_passwords_do_not_stop_the_failover() {
    let group = SentinelGroup::start_with_passwords(
        DOWN_AFTER,
        Some("data-secret-pw"),
        Some("sentinel-secret-pw"),
    );
    failover(group, Some("data-secret-pw"), true, Fault::Kill).await;
}

async fn failover(
    group: SentinelGroup,
    data_password: Option<&str>,
    hang_first_sentinel: bool,
    fault: Fault,
) {
    let mut builder = Cache::builder()
        .sentinel(MASTER_NAME, group.sentinel_urls())
        .prefix("ha-sentinel")
        .connect_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT);
    if let Some(pw) = data_password {
        // A wrong password first: refused, and the error shows no secret.
        let wrong = builder
            .clone()
            .sentinel_master_auth(None, "wrong-secret-pw")
            .build()
            .unwrap();
        let error = wrong.ping().await.expect_err("a wrong password is refused");
        let shown = format!("{error} {error:?} {}", wrong.describe_backend());
        assert!(!shown.contains("secret-pw"), "{shown}");
        builder = builder.sentinel_master_auth(None, pw);
    }
    let cache = builder.build().expect("valid cache settings");
    assert!(cache
        .describe_backend()
        .starts_with("redis sentinel master `mymaster` via redis://"));
    assert!(!cache.describe_backend().contains("secret-pw"));
    cache
        .ping()
        .await
        .expect("the master answers through the sentinels");
    assert_eq!(group.master_port(), Some(group.nodes[0].port));
    let scenario = format!(
        "Sentinel: {fault:?} of the master{}",
        if hang_first_sentinel {
            ", first sentinel SIGSTOPped, passwords on"
        } else {
            ""
        }
    );
    let report = failover::sentinel(&scenario, &cache, group, fault, hang_first_sentinel).await;
    println!("{}", report.summary());
    // The breaker's longest back-off is 1 s; the rest is the sentinels
    // telling the new master's address to a new connection.
    report.assert_survived(Duration::from_secs(3));
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// `wait_for_replicas`: a delete returns only once the replicas have it,
/// and says so when they do not; what that costs per invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_can_wait_for_the_replicas() {
    const ROUNDS: usize = 300;
    let group = SentinelGroup::start(Duration::from_secs(5));
    let cache = |wait: bool| {
        let builder = Cache::builder()
            .sentinel(MASTER_NAME, group.sentinel_urls())
            .prefix(if wait { "waiting" } else { "not-waiting" })
            .response_timeout(Duration::from_millis(500));
        let builder = if wait {
            builder.wait_for_replicas(2, Duration::from_millis(200))
        } else {
            builder
        };
        builder.build().expect("valid cache settings")
    };
    let replicas = &group.nodes[1..];
    let mut report = Vec::new();
    for wait in [false, true] {
        let cache = cache(wait);
        let mut latencies = Vec::with_capacity(ROUNDS);
        let mut still_on_a_replica = 0;
        for round in 0..ROUNDS {
            let key = format!("k{round}");
            cache.set(&key, &round, None).await.unwrap();
            let t0 = Instant::now();
            assert!(cache
                .delete(key.as_str())
                .await
                .expect("the delete succeeds"));
            latencies.push(t0.elapsed());
            let full = cache.full_key(&key);
            still_on_a_replica += replicas
                .iter()
                .filter(|r| r.cmd(&[b"EXISTS", full.as_bytes()]).as_int() == Some(1))
                .count();
        }
        latencies.sort();
        if wait {
            assert_eq!(
                still_on_a_replica, 0,
                "after a waiting delete, no replica has the key"
            );
        }
        report.push(format!(
            "{:<28} p50 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}  (key still on a replica right after: {still_on_a_replica} of {})",
            if wait { "delete + WAIT 2 200ms" } else { "delete" },
            percentile(&latencies, 50),
            percentile(&latencies, 99),
            latencies[ROUNDS - 1],
            ROUNDS * replicas.len(),
        ));
    }
    println!("{ROUNDS} deletes each, master + 2 replicas on loopback:");
    for line in &report {
        println!("  {line}");
    }

    // A stalled replica: the delete reaches the master, and says that
    // only one replica has it.
    let cache = cache(true);
    cache.set("lagging", &1u8, None).await.unwrap();
    replicas[0].pause();
    let outcome = cache.delete("lagging").await;
    replicas[0].resume();
    match outcome {
        Err(cache_memoize::Error::ReplicasBehind { acked, wanted, .. }) => {
            assert_eq!((acked, wanted), (1, 2));
        }
        other => panic!("expected ReplicasBehind, got {other:?}"),
    }
    assert!(
        group.nodes[0]
            .cmd(&[b"EXISTS", cache.full_key("lagging").as_bytes()])
            .as_int()
            == Some(0),
        "the master applied the delete"
    );
    // A tag's invalidation (a new version) waits the same way.
    replicas[0].pause();
    let outcome = cache.invalidate_tag("lagging-tag").await;
    replicas[0].resume();
    assert!(
        matches!(
            outcome,
            Err(cache_memoize::Error::ReplicasBehind {
                acked: 1,
                wanted: 2,
                ..
            })
        ),
        "expected ReplicasBehind for the tag's new version, got {outcome:?}"
    );
}
