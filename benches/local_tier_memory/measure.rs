//! The measurement of `local_tier_memory` and `local_tier_memory_mimalloc`
//! (the same run under two global allocators).

use std::time::Instant;

use cache_memoize::{cache_memoize, registry, Cache, LocalTier};

const BUDGET: u64 = 32 << 20;
const TASKS: u64 = 64;

#[cache_memoize(ttl = 3600, alias = "memory", prefix = "tier::memory")]
async fn value(id: u64) -> Vec<String> {
    let _ = id;
    crate::fixtures::small()
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

/// Samples the live heap every millisecond until dropped; keeps the
/// highest growth over `base`.
struct PeakHeap {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakHeap {
    fn watch(heap: fn() -> u64, base: u64) -> PeakHeap {
        use std::sync::atomic::Ordering;
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(heap().saturating_sub(base), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        PeakHeap {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the sampler");
        }
        self.peak.load(Ordering::Relaxed)
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Runs the measurement and prints its table. `allocator` names the global
/// allocator; `heap` reads its live bytes, when it counts them.
pub async fn main(allocator: &str, heap: Option<fn() -> u64>) {
    let heap_now = || heap.map_or(0, |read| read());
    let shown = |bytes: u64| {
        if heap.is_some() {
            format!("{:.1}Mi", mib(bytes))
        } else {
            "-".to_owned()
        }
    };
    let benching = std::env::args().any(|a| a == "--bench");
    let keys: u64 = if benching { 1_000_000 } else { 2_000 };
    let server = crate::support::RedisServer::start();
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
        "{keys} distinct keys of SMALL, 64 tasks, tier budget {} MiB, allocator: {allocator}\n",
        mib(BUDGET)
    );
    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "run",
        "RSS before",
        "RSS after",
        "RSS growth",
        "heap growth",
        "heap peak",
        "tier bytes",
        "entries"
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
        let heap_before = heap_now();
        let started = Instant::now();
        let peak = heap.map(|read| PeakHeap::watch(read, heap_before));
        let offset = if tier { keys * 2 } else { 0 };
        through(offset..offset + keys).await;
        through(offset..offset + keys).await;
        let after = rss();
        let heap_growth = heap_now().saturating_sub(heap_before);
        let heap_peak = peak.map_or(0, PeakHeap::finish);
        let local = cache.stats().local.unwrap_or_default();
        println!(
            "{:<34} {:>10.1}Mi {:>10.1}Mi {:>10.1}Mi {:>12} {:>12} {:>10.1}Mi {:>10}   ({:.1} s)",
            run,
            mib(before),
            mib(after),
            mib(after.saturating_sub(before)),
            shown(heap_growth),
            shown(heap_peak),
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
            let heap_part = if heap.is_some() {
                format!(
                    "live heap {:.1} MiB ({:.2}x)",
                    mib(heap_share),
                    heap_share as f64 / BUDGET as f64
                )
            } else {
                "live heap not counted".to_owned()
            };
            println!(
                "\nthe tier's share over the baseline, budget {:.0} MiB: RSS {:.1} MiB ({:.2}x the budget), \
                 {heap_part}; {} values evicted",
                mib(BUDGET),
                mib(rss_share),
                rss_share as f64 / BUDGET as f64,
                local.evictions
            );
        }
    }
}
