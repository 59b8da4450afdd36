//! Large values, three questions in one run:
//!
//! 1. A bundle of 25 documents of ~300 KB: compressed one after the other,
//!    or in parallel by `encode_all` (the codec pool, every core)?
//! 2. Does writing large values hurt small hits? The p99 of SMALL hits from
//!    16 tasks alone, then while 2 tasks keep writing 300 KB values; three
//!    rounds of each, printed one by one, and the verdict compares the
//!    median rounds. The hits saturate the cores on purpose: that is when
//!    the writes' compression could take CPU from them.
//! 3. And reads? 300 KB hits from one task beside the same small hits: how
//!    much each slows the other down (inflation runs at idle priority, so
//!    the small hits win; no target).
//!
//! ```text
//! cargo bench --bench large_values
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "support/fixtures.rs"]
mod fixtures;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_memoize::batch::encode_all;
use cache_memoize::{Cache, Codec};

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

// Percentiles of the sorted latencies `small_hits` returns.

fn p50(lat: &[Duration]) -> Duration {
    lat[lat.len() / 2]
}

fn p99(lat: &[Duration]) -> Duration {
    lat[lat.len() * 99 / 100]
}

fn p999(lat: &[Duration]) -> Duration {
    lat[lat.len() * 999 / 1000]
}

async fn bundle(benching: bool) {
    let codec = Codec::default();
    let docs: Vec<String> = (0..25)
        .map(|i| fixtures::document(300_000, i + 1))
        .collect();
    let rounds = if benching { 15 } else { 1 };
    let (mut serial, mut parallel) = (Vec::new(), Vec::new());
    let mut stored = 0;
    for round in 0..rounds {
        for parallel_first in [round % 2 == 0, round % 2 != 0] {
            if parallel_first {
                let t0 = Instant::now();
                let entries = encode_all(&codec, &docs).await;
                parallel.push(t0.elapsed());
                stored = entries.iter().map(|e| e.as_ref().unwrap().len()).sum();
            } else {
                let t0 = Instant::now();
                for doc in &docs {
                    std::hint::black_box(codec.encode(doc).unwrap());
                }
                serial.push(t0.elapsed());
            }
        }
    }
    let (s, p) = (median(serial), median(parallel));
    println!("bundle of 25 x 300 KB documents (zlib level 6), median of {rounds} rounds");
    println!("  serial   {s:>10.1?}");
    println!(
        "  parallel {p:>10.1?}   {:.2}x faster; {:.1} MB -> {:.1} MB",
        s.as_secs_f64() / p.as_secs_f64(),
        7.5,
        stored as f64 / 1e6
    );
}

async fn small_hits(cache: &Cache, tasks: usize, per_task: usize) -> Vec<Duration> {
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task);
                for i in 0..per_task {
                    let key = format!("small:{}", (t + i) % 50);
                    let t0 = Instant::now();
                    let v: Vec<String> = cache
                        .get_or_compute(&key, None, || async { fixtures::small() })
                        .await;
                    lat.push(t0.elapsed());
                    assert_eq!(v.len(), 30);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort();
    all
}

/// Two tasks setting 300 KB documents until `stop` or `each` sets apiece;
/// how long every set took.
fn write_large(
    cache: &Cache,
    docs: &Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
    each: usize,
) -> impl std::future::Future<Output = Vec<Duration>> + Send + 'static {
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let (cache, stop, docs) = (cache.clone(), stop.clone(), docs.clone());
            tokio::spawn(async move {
                let mut took = Vec::new();
                while !stop.load(Ordering::Relaxed) && took.len() < each {
                    let n = took.len();
                    let t0 = Instant::now();
                    cache
                        .set(&format!("doc:{w}:{}", n % 20), &docs[n % 20], None)
                        .await
                        .unwrap();
                    took.push(t0.elapsed());
                }
                took
            })
        })
        .collect();
    async move {
        let mut took = Vec::new();
        for w in writers {
            took.extend(w.await.unwrap());
        }
        took
    }
}

async fn hits_under_large_writes(cache: &Cache, benching: bool) {
    let per_task = if benching { 3_000 } else { 20 };
    small_hits(cache, 16, 50).await; // fill and warm
    let mut alone = Vec::new();
    let mut loaded = Vec::new();
    let mut written = 0;
    // Made up front: the writers measure the cache, not the text generator.
    let docs: Arc<Vec<String>> = Arc::new(
        (0..20)
            .map(|i| fixtures::document(300_000, i + 1))
            .collect(),
    );
    // The writers' own cost, with nothing else running: the same two
    // concurrent writers as below, 10 sets each.
    let quiet = write_large(cache, &docs, Arc::new(AtomicBool::new(false)), 10).await;
    println!(
        "2 tasks writing 300 KB values, nothing else running: median {:.1?} per set",
        median(quiet)
    );
    println!("SMALL hits from 16 tasks, alone and while 2 tasks write 300 KB values");
    for _round in 0..if benching { 3 } else { 1 } {
        alone.push(small_hits(cache, 16, per_task).await);
        let stop = Arc::new(AtomicBool::new(false));
        let writers = tokio::spawn(write_large(cache, &docs, stop.clone(), 10_000));
        loaded.push(small_hits(cache, 16, per_task).await);
        stop.store(true, Ordering::Relaxed);
        let writes = writers.await.unwrap();
        written += writes.len();
        let (a, l) = (alone.last().unwrap(), loaded.last().unwrap());
        let each = match writes.len() {
            0 => "no set finished during the hits".to_string(),
            n => format!("{n} sets, median {:.1?} each", median(writes)),
        };
        println!(
            "  round: alone p99 {:>8.1?} p99.9 {:>8.1?} | under writes p99 {:>8.1?} p99.9 {:>8.1?} | p99 {:.2}x | {each}",
            p99(a),
            p999(a),
            p99(l),
            p999(l),
            p99(l).as_secs_f64() / p99(a).as_secs_f64(),
        );
    }
    let pick = |runs: Vec<Vec<Duration>>| {
        let mut runs = runs;
        runs.sort_by_key(|r| p99(r));
        runs.swap_remove(runs.len() / 2)
    };
    let (alone, loaded) = (pick(alone), pick(loaded));
    println!("  median rounds ({written} writes in all):");
    println!(
        "  alone           p50 {:>9.1?}  p99 {:>9.1?}",
        p50(&alone),
        p99(&alone)
    );
    println!(
        "  under writes    p50 {:>9.1?}  p99 {:>9.1?}",
        p50(&loaded),
        p99(&loaded)
    );
    println!(
        "  p99 ratio {:.2}x",
        p99(&loaded).as_secs_f64() / p99(&alone).as_secs_f64()
    );
}

/// The other direction: hits of 300 KB values (inflated off the async
/// workers) and small hits side by side. How much each slows the other
/// down; no target, printed so that the trade-off is in plain sight.
async fn large_and_small_hits(cache: &Cache, benching: bool) {
    small_hits(cache, 16, 50).await; // fill and warm
    for i in 0..5 {
        let doc = fixtures::document(300_000, i + 1);
        cache.set(&format!("doc:{i}"), &doc, None).await.unwrap();
    }
    let per_task = if benching { 3_000 } else { 20 };
    let large_hits = |cache: Cache, stop: Arc<AtomicBool>, most: usize| async move {
        let mut took = Vec::new();
        while !stop.load(Ordering::Relaxed) && took.len() < most {
            let t0 = Instant::now();
            let doc: Option<String> = cache.get(&format!("doc:{}", took.len() % 5)).await.unwrap();
            took.push(t0.elapsed());
            assert!(doc.is_some_and(|d| d.len() >= 300_000));
        }
        took
    };
    let large_alone = large_hits(cache.clone(), Arc::new(AtomicBool::new(false)), 40).await;
    let small_alone = small_hits(cache, 16, per_task).await;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(large_hits(cache.clone(), stop.clone(), 10_000));
    let small_loaded = small_hits(cache, 16, per_task).await;
    stop.store(true, Ordering::Relaxed);
    let large_loaded = reader.await.unwrap();
    println!("300 KB hits from one task, and SMALL hits from 16 tasks (which saturate the cores)");
    println!(
        "  300 KB hit median: alone {:>8.1?} | beside the small hits {:>8.1?} ({} hits)",
        median(large_alone),
        median(large_loaded.clone()),
        large_loaded.len()
    );
    println!(
        "  SMALL hit p99:     alone {:>8.1?} | beside the 300 KB hits {:>8.1?}  ({:.2}x)",
        p99(&small_alone),
        p99(&small_loaded),
        p99(&small_loaded).as_secs_f64() / p99(&small_alone).as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    bundle(benching).await;
    let server = support::RedisServer::start();
    let connect =
        |prefix: &'static str| Cache::builder().url(server.url()).prefix(prefix).connect();
    hits_under_large_writes(&connect("large").await.unwrap(), benching).await;
    large_and_small_hits(&connect("large-reads").await.unwrap(), benching).await;
}
