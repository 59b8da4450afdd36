//! Partial failure stays partial on a Redis Cluster: one of three masters
//! hangs (SIGSTOP) under a concurrent load of memoized calls, and the keys
//! of the other two keep their hits, no call fails, and the hung master's
//! keys hit again within a second of SIGCONT.
//!
//! The cluster runs with Redis's default `cluster-node-timeout` (15 s), so
//! the 10 s stall goes unflagged by the other nodes: the client alone has
//! to keep the damage to the hung master's slots.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cluster.rs"]
mod cluster_support;
#[path = "support/load.rs"]
mod load;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_memoize::Cache;
use cluster_support::LocalCluster;
use load::{hit_rate, hits_back_after};

const TASKS: usize = 32;
const KEYS: usize = 300;
/// When the measured load starts (after the warm-up) and the fault begins.
const BEFORE: Duration = Duration::from_secs(1);
const FAULT_AT: Duration = Duration::from_secs(4);
const FAULT_FOR: Duration = Duration::from_secs(10);
/// How long the load goes on after SIGCONT.
const AFTER: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(100);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_master_costs_only_its_own_keys() {
    let cluster = Arc::new(LocalCluster::start_with_node_timeout(Duration::from_secs(
        15,
    )));
    let cache = Cache::builder()
        .cluster_urls(cluster.urls())
        .prefix("ha-cluster")
        .connect_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .build()
        .expect("valid cache settings");
    let owner: Vec<u16> = (0..KEYS)
        .map(|k| cluster.node_of(&cache.full_key(&load::cache_key(k))).port)
        .collect();
    let hung_port = owner[0];
    let on_hung = |k: usize| owner[k] == hung_port;
    let hung_keys = (0..KEYS).filter(|&k| on_hung(k)).count();
    assert!(
        (KEYS / 6..KEYS / 2).contains(&hung_keys),
        "{hung_keys} of {KEYS} keys on the hung master"
    );
    for key in 0..KEYS {
        load::call(&cache, key).await;
    }

    let origin = Instant::now();
    let end = FAULT_AT + FAULT_FOR + AFTER;
    let controller = {
        let cluster = cluster.clone();
        std::thread::spawn(move || {
            let hung = cluster.nodes.iter().find(|n| n.port == hung_port).unwrap();
            std::thread::sleep(FAULT_AT.saturating_sub(origin.elapsed()));
            hung.pause();
            let paused = origin.elapsed();
            std::thread::sleep((FAULT_AT + FAULT_FOR).saturating_sub(origin.elapsed()));
            hung.resume();
            (paused, origin.elapsed())
        })
    };
    let calls = load::run(&cache, TASKS, KEYS, origin, Arc::new(move |now| now < end)).await;
    let (paused, resumed) = controller.join().expect("controller thread");

    let (failed, max_latency) = load::failures_and_max_latency(&calls);
    let (rate_before, share_before, n_before) = hit_rate(&calls, (BEFORE, paused), |k| !on_hung(k));
    let (rate_during, share_during, n_during) =
        hit_rate(&calls, (paused, resumed), |k| !on_hung(k));
    let (_, hung_share_during, _) = hit_rate(&calls, (paused, resumed), on_hung);
    let hits_back_after = hits_back_after(&calls, resumed, |c| on_hung(c.key));
    let stats = cache.stats();
    println!(
        "hung master {hung_port} ({hung_keys}/{KEYS} keys), paused {paused:.1?} → {resumed:.1?}\n\
         calls={} failed={failed} max_latency={max_latency:.1?}\n\
         healthy keys: before {rate_before:.0} hits/s ({:.1}% of {n_before} calls), \
         during {rate_during:.0} hits/s ({:.1}% of {n_during} calls): rate ratio {:.2}\n\
         hung keys: {:.1}% hits during the stall; hits back {} after SIGCONT\n\
         breaker openings={} errors={}",
        calls.len(),
        share_before * 100.0,
        share_during * 100.0,
        rate_during / rate_before,
        hung_share_during * 100.0,
        hits_back_after.map_or("never".into(), |d| format!("{d:.1?}")),
        stats.breaker_openings,
        stats.errors,
    );
    assert_eq!(failed, 0, "every call returns its value");
    assert!(
        share_during >= 0.9 * share_before,
        "healthy keys' hits fell from {share_before:.3} to {share_during:.3} of their calls"
    );
    // The hit rate, as the issue states the bar (measured 0.96–0.99 here;
    // one breaker for the whole cluster gave 0.02).
    assert!(
        rate_during >= 0.9 * rate_before,
        "healthy keys' hit rate fell from {rate_before:.0}/s to {rate_during:.0}/s"
    );
    // A call waits at most for a connection and a reply per Redis request
    // it makes (a lookup, then a store); 300 ms of slack for a busy machine.
    let bound = 2 * (CONNECT_TIMEOUT + RESPONSE_TIMEOUT) + Duration::from_millis(300);
    assert!(
        max_latency < bound,
        "max latency {max_latency:?} ≥ {bound:?}"
    );
    let back = hits_back_after.expect("the hung master's keys hit again");
    // The breaker's longest back-off is 1 s.
    assert!(
        back < Duration::from_secs(2),
        "hits on the hung master's keys resumed only {back:?} after SIGCONT"
    );
}
