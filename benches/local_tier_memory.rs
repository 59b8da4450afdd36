//! Memory of the local tier: 1,000,000 distinct keys of SMALL values (30
//! three-letter strings) go through a tier with a 32 MiB budget; the
//! process's resident memory is read before and after, against a baseline
//! in the same run: the same calls on the same Redis without a tier. The
//! live heap (counted by `stats_alloc`'s allocator wrapper) is printed beside it:
//! RSS minus heap is what the allocator keeps (fragmentation, arenas).
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

use std::alloc::System;
use std::time::Instant;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

use cache_memoize::{cache_memoize, registry, Cache, LocalTier};

const BUDGET: u64 = 32 << 20;
const TASKS: u64 = 64;

#[cache_memoize(ttl = 3600, alias = "memory", prefix = "tier::memory")]
async fn value(id: u64) -> Vec<String> {
    let _ = id;
    fixtures::small()
}

/// The system allocator, counting the bytes allocated and freed.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed.
fn heap() -> u64 {
    let stats = ALLOCATOR.stats();
    // Reallocations are counted in both (their growth or shrinkage).
    stats
        .bytes_allocated
        .saturating_sub(stats.bytes_deallocated) as u64
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
        "{:<34} {:>12} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "run", "RSS before", "RSS after", "RSS growth", "heap growth", "tier bytes", "entries"
    );
    // Without the tier first (its growth is the baseline: connections,
    // buffers, the allocator), then with it. Each run stores the values
    // (misses) and reads them back (hits from Redis, which fill the tier).
    let mut growths = Vec::new();
    let mut heap_growths = Vec::new();
    for (run, tier) in [
        ("without a tier (baseline)", false),
        ("with the tier", true),
    ] {
        let cache = build(tier);
        registry::register("memory", cache.clone());
        // Warm up: connections, the runtime's workers, the registries.
        through(0..TASKS * 10).await;
        let before = rss();
        let heap_before = heap();
        let started = Instant::now();
        let offset = if tier { keys * 2 } else { 0 };
        through(offset..offset + keys).await;
        through(offset..offset + keys).await;
        let after = rss();
        let heap_growth = heap().saturating_sub(heap_before);
        let local = cache.stats().local.unwrap_or_default();
        println!(
            "{:<34} {:>10.1}Mi {:>10.1}Mi {:>10.1}Mi {:>10.1}Mi {:>10.1}Mi {:>10}   ({:.1} s)",
            run,
            mib(before),
            mib(after),
            mib(after.saturating_sub(before)),
            mib(heap_growth),
            mib(local.bytes),
            local.entries,
            started.elapsed().as_secs_f64()
        );
        growths.push(after.saturating_sub(before));
        heap_growths.push(heap_growth);
        if tier {
            assert!(
                local.bytes <= BUDGET,
                "the tier's estimate is over budget: {local:?}"
            );
            assert!(
                local.hits + local.inserts > 0,
                "the tier was not used: {local:?}"
            );
            let rss_share = growths[1].saturating_sub(growths[0]);
            let heap_share = heap_growths[1].saturating_sub(heap_growths[0]);
            println!(
                "\nthe tier's share over the baseline, budget {:.0} MiB: RSS {:.1} MiB ({:.2}x the budget), \
                 live heap {:.1} MiB ({:.2}x); {} values evicted",
                mib(BUDGET),
                mib(rss_share),
                rss_share as f64 / BUDGET as f64,
                mib(heap_share),
                heap_share as f64 / BUDGET as f64,
                local.evictions
            );
        }
    }
}
