//! A concurrent load of memoized calls, recorded call by call, and what the
//! high-availability tests read off it: failures, latency, hit rates, and
//! when hits came back after a fault. Shared by `tests/ha_*.rs` and the
//! failover scenarios of `examples/chaos.rs`.
//!
//! Include with `#[path = "support/load.rs"] mod load;` at the crate root.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_memoize::Cache;

/// One memoized call as the load saw it.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    /// When it started, from the run's origin.
    pub started: Duration,
    pub latency: Duration,
    pub key: usize,
    /// The value came from the cache (the computation did not run).
    pub hit: bool,
    /// The value was the one the key must produce.
    pub correct: bool,
}

/// The value `key` must always produce.
pub fn expected(key: usize) -> Vec<u64> {
    (0..16).map(|i| (key as u64) * 1_000 + i).collect()
}

/// The cache key of load key `key`.
pub fn cache_key(key: usize) -> String {
    format!("k{key}")
}

/// One memoized call: (hit, correct).
pub async fn call(cache: &Cache, key: usize) -> (bool, bool) {
    let mut computed = false;
    let value: Vec<u64> = cache
        .get_or_compute(&cache_key(key), Some(Duration::from_secs(600)), || {
            computed = true;
            async move { expected(key) }
        })
        .await;
    (!computed, value == expected(key))
}

/// Runs `tasks` tasks of memoized calls on keys drawn uniformly from
/// `0..keys`, 1 ms apart, until `keep_going(time since origin)` says no.
/// Every call is bounded by the cache's timeouts and the caller's clock.
pub async fn run(
    cache: &Cache,
    tasks: usize,
    keys: usize,
    origin: Instant,
    keep_going: Arc<dyn Fn(Duration) -> bool + Send + Sync>,
) -> Vec<Call> {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let cache = cache.clone();
        let keep_going = keep_going.clone();
        handles.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            loop {
                let started = origin.elapsed();
                if !keep_going(started) {
                    break;
                }
                let key = fastrand::usize(..keys);
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
    for handle in handles {
        calls.append(&mut handle.await.expect("a load task panicked"));
    }
    calls
}

/// When hits came back after `from`: the start of the first 100 ms window
/// (stepped by 10 ms) in which at least half of the calls of `belongs` keys
/// were hits. A lone "hit" can be a value shared by a concurrent caller's
/// computation (single-flight), so one is not enough.
pub fn hits_back_after(
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

/// Hits per second, the hit fraction, and the number of the calls that
/// started in `window` and whose key `belongs`.
pub fn hit_rate(
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

/// Calls whose value was wrong, and the longest call.
pub fn failures_and_max_latency(calls: &[Call]) -> (usize, Duration) {
    (
        calls.iter().filter(|c| !c.correct).count(),
        calls.iter().map(|c| c.latency).max().unwrap_or_default(),
    )
}
