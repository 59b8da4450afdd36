//! Watch the cache ride out Redis trouble.
//!
//! ```text
//! cargo run --release --example chaos
//! ```
//!
//! Starts its own redis-server on a free loopback port (so `redis-server`
//! must be installed), runs 32 tasks of memoized calls, and in the middle
//! kills it with SIGKILL and restarts it, then (second run) pauses it with
//! SIGSTOP and resumes it. Prints each event, the breaker state once per
//! 250 ms, and a summary line per run that includes the number of failed calls.
//!
//! Then the failovers: a Sentinel group (master, 2 replicas, 3 sentinels)
//! whose master is killed, and a local 3-master Cluster with a replica each
//! whose first master is killed, each under 32 tasks of memoized calls; and
//! what a failover can lose: invalidations acknowledged just before the
//! master dies, with and without `wait_for_replicas`. Prints a table of each.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/support/chaos.rs"]
mod chaos;
#[path = "../tests/support/cluster.rs"]
mod cluster_support;
#[path = "../tests/support/failover.rs"]
mod failover;
#[path = "../tests/support/load.rs"]
mod load;
#[path = "../tests/support/sentinel.rs"]
mod sentinel_support;

use std::time::Duration;

use cache_memoize::Cache;
use chaos::{Fault, Plan};
use failover::Replication;

#[tokio::main]
async fn main() {
    let plan = Plan::default();
    println!(
        "32 tasks x {} memoized calls; connect timeout {:?}, response timeout {:?}",
        plan.calls_per_task, plan.connect_timeout, plan.response_timeout
    );
    let mut failed = 0;
    for fault in [Fault::Kill, Fault::Pause] {
        println!("\n--- {fault:?} ---");
        let server = support::RedisServer::start();
        println!("    0.0s  redis-server started at {}", server.url());
        let report = chaos::run(server, fault, plan, |line| println!("{line}")).await;
        println!("summary: {}", report.summary());
        failed += report.failed;
    }

    println!("\n--- failovers (32 tasks, connect timeout 100 ms, response timeout 200 ms) ---");
    let builder = || {
        Cache::builder()
            .connect_timeout(Duration::from_millis(100))
            .response_timeout(Duration::from_millis(200))
            .prefix("chaos-failover")
    };
    let mut rows = Vec::new();
    for fault in [failover::Fault::Kill, failover::Fault::Pause] {
        let group = sentinel_support::SentinelGroup::start(Duration::from_secs(1));
        let cache = builder()
            .sentinel(sentinel_support::MASTER_NAME, group.sentinel_urls())
            .build()
            .expect("valid cache settings");
        let scenario = format!("Sentinel: {fault:?} of the master");
        let report = failover::sentinel(&scenario, &cache, group, fault, false).await;
        println!("{}", report.summary());
        failed += report.failed;
        rows.push(report.row());
    }
    let cluster = cluster_support::LocalCluster::start_with_replicas(Duration::from_secs(1));
    let cache = builder()
        .cluster_urls(cluster.urls())
        .build()
        .expect("valid cache settings");
    let report =
        failover::cluster("Cluster: Kill of a master with a replica", &cache, cluster).await;
    println!("{}", report.summary());
    failed += report.failed;
    rows.push(report.row());
    println!("\n{}", failover::TABLE_HEADER);
    for row in &rows {
        println!("{row}");
    }

    println!("\n--- what a failover can lose (8 tasks invalidating 3,000 stored values) ---");
    let mut lost = Vec::new();
    for replication in [Replication::InSync, Replication::Cut] {
        for wait in [false, true] {
            let group = sentinel_support::SentinelGroup::start(Duration::from_secs(1));
            lost.push(
                failover::lost_invalidations(group, replication, wait)
                    .await
                    .row(),
            );
        }
    }
    println!("{}", failover::LOST_TABLE_HEADER);
    for row in &lost {
        println!("{row}");
    }

    println!("\nfailed calls in total: {failed}");
    if failed > 0 {
        std::process::exit(1);
    }
}
