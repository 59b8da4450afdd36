//! Memory of the local tier: 1,000,000 distinct keys of SMALL values (30
//! three-letter strings) go through a tier with a 32 MiB budget; the
//! process's resident memory is read before and after, against a baseline
//! in the same run: the same calls on the same Redis without a tier.
//!
//! ```text
//! cargo bench --bench local_tier_memory
//! ```
//!
//! Under `cargo test` it runs 2,000 keys as a smoke test.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "support/fixtures.rs"]
mod fixtures;

use std::time::Instant;

use cache_memoize::{cache_memoize, registry, Cache, LocalTier};

const BUDGET: u64 = 32 << 20;
const TASKS: u64 = 64;

#[cache_memoize(ttl = 3600, alias = "memory", prefix = "tier::memory")]
async fn value(id: u64) -> Vec<String> {
    let _ = id;
    fixtures::small()
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm's resident field");
    pages * 4096
}

/// Calls `value(id)` for every id in `ids`, 64 tasks at a time.
async fn through(ids: std::ops::Range<u64>) {
    let per_task = (ids.end - ids.start) / TASKS;
    let start = ids.start;
    let handles: Vec<_> = (0..TASKS)
        .map(|task| {
            tokio::spawn(async move {
                let from = start + task * per_task;
                for id in from..from + per_task {
                    assert_eq!(value(id).await.len(), 30);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

#[tokio::main]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let keys: u64 = if benching { 1_000_000 } else { 2_000 };
    let server = support::RedisServer::start();
    let build = |tier: bool| {
        let builder = Cache::builder().url(server.url()).prefix("bench-memory");
        let builder = if tier {
            builder.local_tier(LocalTier::new(BUDGET))
        } else {
            builder
        };
        builder.build().expect("a valid cache")
    };
    println!(
        "{keys} distinct keys of SMALL, 64 tasks, tier budget {} MiB\n",
        mib(BUDGET)
    );
    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "run", "RSS before", "RSS after", "growth", "tier bytes", "entries"
    );
    // Without the tier first (its growth is the baseline: connections,
    // buffers, the allocator), then with it. Each run stores the values
    // (misses) and reads them back (hits from Redis, which fill the tier).
    let mut growths = Vec::new();
    for (run, tier) in [
        ("without a tier (baseline)", false),
        ("with the tier", true),
    ] {
        let cache = build(tier);
        registry::register("memory", cache.clone());
        // Warm up: connections, the runtime's workers, the registries.
        through(0..TASKS * 10).await;
        let before = rss();
        let started = Instant::now();
        let offset = if tier { keys * 2 } else { 0 };
        through(offset..offset + keys).await;
        through(offset..offset + keys).await;
        let after = rss();
        let local = cache.stats().local.unwrap_or_default();
        println!(
            "{:<34} {:>10.1}Mi {:>10.1}Mi {:>10.1}Mi {:>10.1}Mi {:>10}   ({:.1} s)",
            run,
            mib(before),
            mib(after),
            mib(after.saturating_sub(before)),
            mib(local.bytes),
            local.entries,
            started.elapsed().as_secs_f64()
        );
        growths.push(after.saturating_sub(before));
        if tier {
            assert!(
                local.bytes <= BUDGET,
                "the tier's estimate is over budget: {local:?}"
            );
            assert!(
                local.hits + local.inserts > 0,
                "the tier was not used: {local:?}"
            );
            println!(
                "\nthe tier's share: {:.1} MiB over the baseline's growth, budget {:.0} MiB ({:.2}x); \
                 {} values evicted",
                mib(growths[1].saturating_sub(growths[0])),
                mib(BUDGET),
                growths[1].saturating_sub(growths[0]) as f64 / BUDGET as f64,
                local.evictions
            );
        }
    }
}
