//! A Redis Cluster master with a replica is killed (SIGKILL) under a
//! concurrent load of memoized calls: its replica promotes itself, the
//! cache follows (`MOVED`, and its own slot map for the per-master
//! breakers), no call fails or waits past the timeouts, and hits on the
//! dead master's keys resume on the promoted replica.

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

use std::time::Duration;

use cache_memoize::Cache;
use cluster_support::LocalCluster;
use failover::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT};

/// How long a silent master goes before its replica takes over.
const NODE_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cluster_master_is_replaced_by_its_replica_without_a_failed_call() {
    let cluster = LocalCluster::start_with_replicas(NODE_TIMEOUT);
    let cache = Cache::builder()
        .cluster_urls(cluster.urls())
        .prefix("ha-cluster-failover")
        .connect_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .build()
        .expect("valid cache settings");
    let report = failover::cluster(
        "Cluster: SIGKILL of a master with a replica",
        &cache,
        cluster,
    )
    .await;
    println!("{}", report.summary());
    // The slot map is read at most once a second, the breaker's longest
    // back-off is 1 s.
    report.assert_survived(Duration::from_secs(3));
}
