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

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_memoize::Cache;
use cluster_support::LocalCluster;

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

struct Call {
    started: Duration,
    latency: Duration,
    key: usize,
    hit: bool,
    correct: bool,
}

/// When hits came back after `from`: the start of the first 100 ms window
/// (stepped by 10 ms) in which at least half of the calls of `belongs` keys
/// were hits. A lone "hit" can be a value shared by a concurrent caller's
/// computation (single-flight), so one is not enough.
fn hits_back_after(
    calls: &[Call],
    from: Duration,
    belongs: impl Fn(&Call) -> bool,
) -> Option<Duration> {
    let window = Duration::from_millis(100);
    let end = calls.iter().map(|c| c.started).max()?;
    let mut start = from;
    while start + window <= end {
        let (mut n, mut hits) = (0, 0);
        for c in calls
            .iter()
            .filter(|c| belongs(c) && c.started >= start && c.started < start + window)
        {
            n += 1;
            hits += usize::from(c.hit);
        }
        if n > 0 && hits * 2 >= n {
            return Some(start - from);
        }
        start += Duration::from_millis(10);
    }
    None
}

/// The value a key must always produce.
fn expected(key: usize) -> Vec<u64> {
    (0..16).map(|i| (key as u64) * 1_000 + i).collect()
}

async fn call(cache: &Cache, key: usize) -> (bool, bool) {
    let mut computed = false;
    let value: Vec<u64> = cache
        .get_or_compute(&format!("k{key}"), Some(Duration::from_secs(600)), || {
            computed = true;
            async move { expected(key) }
        })
        .await;
    (!computed, value == expected(key))
}

/// Hits per second and the hit fraction of the calls in `window` whose key
/// `belongs`.
fn hit_rate(
    calls: &[Call],
    window: (Duration, Duration),
    belongs: impl Fn(usize) -> bool,
) -> (f64, f64, usize) {
    let chosen: Vec<&Call> = calls
        .iter()
        .filter(|c| belongs(c.key) && c.started >= window.0 && c.started < window.1)
        .collect();
    let hits = chosen.iter().filter(|c| c.hit).count();
    let seconds = (window.1 - window.0).as_secs_f64();
    (
        hits as f64 / seconds,
        hits as f64 / chosen.len().max(1) as f64,
        chosen.len(),
    )
}

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
        .map(|k| cluster.node_of(&cache.full_key(&format!("k{k}"))).port)
        .collect();
    let hung_port = owner[0];
    let on_hung = |k: usize| owner[k] == hung_port;
    let hung_keys = (0..KEYS).filter(|&k| on_hung(k)).count();
    assert!(
        (KEYS / 6..KEYS / 2).contains(&hung_keys),
        "{hung_keys} of {KEYS} keys on the hung master"
    );
    for key in 0..KEYS {
        call(&cache, key).await;
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
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            // Bounded by the clock; every call is bounded by the timeouts.
            while origin.elapsed() < end {
                let key = fastrand::usize(..KEYS);
                let started = origin.elapsed();
                let t0 = Instant::now();
                let (hit, correct) = call(&cache, key).await;
                calls.push(Call {
                    started,
                    latency: t0.elapsed(),
                    key,
                    hit,
                    correct,
                });
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            calls
        }));
    }
    let mut calls = Vec::new();
    for task in tasks {
        calls.append(&mut task.await.expect("a load task panicked"));
    }
    let (paused, resumed) = controller.join().expect("controller thread");

    let failed = calls.iter().filter(|c| !c.correct).count();
    let max_latency = calls.iter().map(|c| c.latency).max().unwrap_or_default();
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
    // The rate depends on the machine's other load (2 cores, shared), so
    // it is bounded far from noise: one breaker for the whole cluster gave
    // 0.02 here, per-master breakers 0.99; the hit share above is the
    // noise-free 90 % check.
    assert!(
        rate_during >= 0.5 * rate_before,
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
