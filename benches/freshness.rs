//! One hot key across its expiry: how long callers wait, and how often the
//! body runs, with early refresh (XFetch), with stale-while-revalidate, and
//! with neither. 64 tasks call a memoized fn (ttl 500 ms, body 50 ms) in a
//! loop for 20 expiries, against a private redis-server.
//!
//! ```text
//! cargo bench --bench freshness
//! ```
//!
//! Under `cargo test` it runs two expiries as a smoke test.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_memoize::{cache_memoize, registry, Cache};

const TTL: Duration = Duration::from_millis(500);
const BODY: Duration = Duration::from_millis(50);
const TASKS: usize = 64;

static RUNS: AtomicU64 = AtomicU64::new(0);

async fn body(id: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(BODY).await;
    id
}

#[cache_memoize(prefix = "bench::plain", ttl = TTL)]
async fn plain(id: u64) -> u64 {
    body(id).await
}

#[cache_memoize(prefix = "bench::xfetch", ttl = TTL, early_refresh)]
async fn xfetch(id: u64) -> u64 {
    body(id).await
}

#[cache_memoize(prefix = "bench::swr", ttl = TTL, stale_while_revalidate = 5)]
async fn swr(id: u64) -> u64 {
    body(id).await
}

#[derive(Clone, Copy)]
enum Mode {
    Neither,
    EarlyRefresh,
    StaleWhileRevalidate,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Neither => "neither",
            Mode::EarlyRefresh => "early_refresh (β = 1)",
            Mode::StaleWhileRevalidate => "stale_while_revalidate = 5 s",
        }
    }

    async fn call(self) -> u64 {
        match self {
            Mode::Neither => plain(1).await,
            Mode::EarlyRefresh => xfetch(1).await,
            Mode::StaleWhileRevalidate => swr(1).await,
        }
    }
}

/// Runs `mode` for `expiries` ttls: (max caller latency, p99.9, body runs,
/// calls).
async fn run(mode: Mode, expiries: u32) -> (Duration, Duration, u64, usize) {
    mode.call().await; // the first value
    let runs_before = RUNS.load(Ordering::Relaxed);
    let until = Instant::now() + TTL * expiries;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                // Bounded by the deadline; each call takes at most the body.
                while Instant::now() < until {
                    let started = Instant::now();
                    assert_eq!(mode.call().await, 1);
                    latencies.push(started.elapsed());
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    let runs = RUNS.load(Ordering::Relaxed) - runs_before;
    let p999 = all[(all.len() * 999 / 1000).min(all.len() - 1)];
    (*all.last().unwrap(), p999, runs, all.len())
}

#[tokio::main]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let server = support::RedisServer::start();
    registry::set_default(
        Cache::builder()
            .url(server.url())
            .prefix("bench-freshness")
            .connect()
            .await
            .expect("the benchmark's redis-server answers"),
    );
    let expiries = if benching { 20 } else { 2 };
    println!("{TASKS} tasks on one hot key, ttl {TTL:?}, body {BODY:?}, {expiries} expiries\n");
    println!(
        "{:<30} {:>10} {:>10} {:>10} {:>10}",
        "mode", "calls", "body runs", "p99.9", "max wait"
    );
    for mode in [
        Mode::Neither,
        Mode::EarlyRefresh,
        Mode::StaleWhileRevalidate,
    ] {
        let (max, p999, runs, calls) = run(mode, expiries).await;
        println!(
            "{:<30} {:>10} {:>10} {:>10.1?} {:>10.1?}",
            mode.label(),
            calls,
            runs,
            p999,
            max
        );
    }
    let stats = registry::default_cache().stats();
    println!(
        "\nearly refreshes drawn: {}, stale values served: {}",
        stats.early_refreshes, stats.stale_served
    );
    assert_eq!(stats.errors, 0, "no cache errors: {stats:?}");
}
