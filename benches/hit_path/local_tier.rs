//! The hit path with the local tier on, in the same run as the Redis-only
//! rows of `hit_path`:
//!
//! * (a) hot-key hits of memoized fns returning a `Copy` value and an
//!   `Arc<…>`, key derivation included, on the runtime's worker threads;
//! * (b) SMALL as an owned `Vec<String>` (each hit clones 30 strings) over
//!   10,000 spread keys, against the Redis-only memoized hit on the same
//!   keys and against the clone alone (of 10,000 values spread over memory
//!   as the tier's are, and of one hot value);
//!   The same over 100 keys, whose values stay in the CPU's caches,
//!   separates what the lookup costs from what reaching values spread over
//!   memory costs;
//! * (c) 10,000 Zipf-distributed keys (s = 1) with a budget that holds
//!   about a third of them: hit ratio and throughput.
//!
//! `ns/call` is per core: the time of one call on one of the two threads.

use std::sync::Arc;
use std::time::Instant;

use cache_memoize::{cache_memoize, registry, Cache, LocalTier};

use super::fixtures;

/// Keys of the spread and Zipf rows.
const KEYS: u64 = 10_000;
/// Keys of the rows whose values stay in the CPU's caches.
const FEW: u64 = 100;

#[cache_memoize(ttl = 3600, alias = "tiered", prefix = "tier::copy")]
async fn tier_copy(id: u64) -> u64 {
    id * 2
}

#[cache_memoize(ttl = 3600, alias = "tiered", prefix = "tier::arc")]
async fn tier_arc(id: u64) -> Arc<Vec<String>> {
    let _ = id;
    Arc::new(fixtures::small())
}

#[cache_memoize(ttl = 3600, alias = "tiered", prefix = "tier::small")]
async fn tier_small(id: u64) -> Vec<String> {
    let _ = id;
    fixtures::small()
}

/// The same function on the Redis-only default cache.
#[cache_memoize(ttl = 3600, prefix = "tier::small-redis")]
async fn redis_small(id: u64) -> Vec<String> {
    let _ = id;
    fixtures::small()
}

#[cache_memoize(ttl = 3600, alias = "zipf", prefix = "tier::zipf")]
async fn zipf_small(id: u64) -> Vec<String> {
    let _ = id;
    fixtures::small()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Row {
    CopyHot,
    ArcHot,
    CloneAlone,
    CloneSpread,
    CloneFew,
    SmallSpread,
    SmallFew,
    RedisSmallSpread,
    Zipf,
}

impl Row {
    fn label(self) -> &'static str {
        match self {
            Row::CopyHot => "tier hit, u64, hot key",
            Row::ArcHot => "tier hit, Arc<Vec<String>>, hot key",
            Row::CloneAlone => "clone of SMALL alone, one value",
            Row::CloneSpread => "clone of SMALL alone, 10k values",
            Row::CloneFew => "clone of SMALL alone, 100 values",
            Row::SmallSpread => "tier hit, SMALL owned, 10k spread",
            Row::SmallFew => "tier hit, SMALL owned, 100 spread",
            Row::RedisSmallSpread => "Redis-only hit, SMALL, 10k spread",
            Row::Zipf => "tier, SMALL, 10k Zipf, ~1/3 fit",
        }
    }
}

/// A Zipf(1) sampler over `1..=n` by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u64) -> Self {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / k as f64;
            cdf.push(sum);
        }
        cdf.iter_mut().for_each(|c| *c /= sum);
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut fastrand::Rng) -> u64 {
        let u = rng.f64();
        self.cdf.partition_point(|&c| c < u) as u64 + 1
    }
}

/// 10,000 distinct SMALL values, for the clone baseline of the spread rows
/// (cloning values spread over memory costs more than cloning one hot one).
fn spread_values() -> &'static [Vec<String>] {
    static VALUES: std::sync::OnceLock<Vec<Vec<String>>> = std::sync::OnceLock::new();
    VALUES.get_or_init(|| (0..KEYS).map(|_| fixtures::small()).collect())
}

async fn run(row: Row, tasks: usize, calls: usize, zipf: &Arc<Zipf>) -> f64 {
    let per_task = calls / tasks;
    let values = spread_values();
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let zipf = zipf.clone();
            tokio::spawn(async move {
                let template = fixtures::small();
                let mut rng = fastrand::Rng::with_seed(task as u64);
                let mut sink = 0usize;
                for call in 0..per_task {
                    let spread = (task as u64 * 7_919 + call as u64) % KEYS + 1;
                    let few = (task as u64 * 7_919 + call as u64) % FEW + 1;
                    sink += match row {
                        Row::CopyHot => tier_copy(1).await as usize,
                        Row::ArcHot => tier_arc(1).await.len(),
                        Row::CloneAlone => {
                            let copy = std::hint::black_box(&template).clone();
                            // Yield as often as a hit would (never), but
                            // keep the loop comparable: one await point.
                            tokio::task::consume_budget().await;
                            copy.len()
                        }
                        Row::CloneSpread => {
                            let copy = values[spread as usize - 1].clone();
                            tokio::task::consume_budget().await;
                            copy.len()
                        }
                        Row::CloneFew => {
                            let copy = values[few as usize - 1].clone();
                            tokio::task::consume_budget().await;
                            copy.len()
                        }
                        Row::SmallSpread => tier_small(spread).await.len(),
                        Row::SmallFew => tier_small(few).await.len(),
                        Row::RedisSmallSpread => redis_small(spread).await.len(),
                        Row::Zipf => zipf_small(zipf.sample(&mut rng)).await.len(),
                    };
                }
                std::hint::black_box(sink);
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    (per_task * tasks) as f64 / started.elapsed().as_secs_f64()
}

/// Prints the local-tier table; `url` is the benchmark's redis-server;
/// `only` (e.g. "copy") keeps the rows whose label contains it.
pub async fn rows(url: &str, benching: bool, only: &str) {
    let tier = |budget: u64| {
        Cache::builder()
            .url(url)
            .prefix("bench-tier")
            .local_tier(LocalTier::new(budget))
            .build()
            .expect("a valid cache")
    };
    registry::register("tiered", tier(256 << 20));
    // About a third of the 10,000 SMALL values (~1.8 KB each by the
    // tier's estimate).
    registry::register("zipf", tier(6 << 20));
    let keys = if benching { KEYS } else { 16 };
    // Store every value, then read each once from Redis, which puts it in
    // memory (a store's own invalidation push removes its value again).
    for _pass in 0..2 {
        tier_copy(1).await;
        tier_arc(1).await;
        for id in 1..=keys {
            tier_small(id).await;
            redis_small(id).await;
            zipf_small(id).await;
        }
    }
    let zipf = Arc::new(Zipf::new(KEYS));
    let rounds = if benching { 5 } else { 1 };
    let rows = [
        (Row::CopyHot, 2),
        (Row::ArcHot, 2),
        (Row::CloneAlone, 2),
        (Row::CloneSpread, 2),
        (Row::CloneFew, 2),
        (Row::SmallSpread, 2),
        (Row::SmallFew, 2),
        (Row::RedisSmallSpread, 2),
        (Row::SmallSpread, 64),
        (Row::RedisSmallSpread, 64),
        (Row::Zipf, 2),
    ];
    let rows: Vec<(Row, usize)> = rows
        .into_iter()
        .filter(|(row, _)| row.label().contains(only))
        .collect();
    let mut samples: Vec<Vec<f64>> = rows.iter().map(|_| Vec::new()).collect();
    let mut zipf_ratio = Vec::new();
    for round in 0..rounds {
        for i in 0..rows.len() {
            let at = (i + round) % rows.len();
            let (row, tasks) = rows[at];
            let calls = match (benching, row) {
                (false, _) => 64,
                (true, Row::RedisSmallSpread) => 40_000,
                (true, Row::Zipf | Row::SmallSpread | Row::SmallFew) => 1_000_000,
                (true, _) => 4_000_000,
            };
            let before = registry::resolve(Some("zipf")).stats();
            samples[at].push(run(row, tasks, calls, &zipf).await);
            if row == Row::Zipf {
                let after = registry::resolve(Some("zipf")).stats();
                let local = after.local_hits - before.local_hits;
                let all = (after.hits + after.misses) - (before.hits + before.misses);
                zipf_ratio.push(local as f64 / all.max(1) as f64);
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<f64> = samples.into_iter().map(median).collect();
    let rate = |row: Row, tasks: usize| {
        rows.iter()
            .position(|r| *r == (row, tasks))
            .map_or(f64::NAN, |at| medians[at])
    };
    println!("local tier ({rounds} rounds, median; same run, same redis-server)\n");
    println!(
        "{:<40} {:>5} {:>13} {:>10}  ratio",
        "subject", "tasks", "calls/s", "ns/call"
    );
    for ((row, tasks), per_second) in rows.iter().zip(&medians) {
        let ratio = match row {
            Row::SmallSpread => format!(
                "{:.1}x Redis-only; {:.2}x / {:.2}x the cost of a clone (10k values / one)",
                per_second / rate(Row::RedisSmallSpread, *tasks),
                rate(Row::CloneSpread, 2) / per_second,
                rate(Row::CloneAlone, 2) / per_second
            ),
            Row::SmallFew => format!(
                "{:.2}x the cost of a clone (100 values)",
                rate(Row::CloneFew, 2) / per_second
            ),
            Row::Zipf => format!("local hit ratio {:.3}", median(zipf_ratio.clone())),
            _ => String::new(),
        };
        println!(
            "{:<40} {:>5} {:>13.0} {:>10.1}  {}",
            row.label(),
            tasks,
            per_second,
            1e9 / per_second * 2.0_f64.min(*tasks as f64),
            ratio
        );
    }
    let stats = registry::resolve(Some("tiered")).stats();
    println!("\ntiered cache: {:?}\n", stats.local);
    assert!(stats.local_hits > 0, "the tier served nothing: {stats:?}");
}
