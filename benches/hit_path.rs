//! The memoized hit, side by side with its baselines, in one run:
//!
//! * this crate's `#[cache_memoize]` hit, and miss + store;
//! * raw redis-rs `MultiplexedConnection` GET + zlib + rmp-serde decode of
//!   the very same bytes (the floor: no key building, no stats, no registry);
//! * the `cached` crate's `#[concurrent_cached(redis = true)]` (msgpack, no
//!   compression) as a peer;
//!
//! on SMALL and LARGE values, at 1, 16 and 64 concurrent tasks, with every
//! hit on one hot key and with hits spread over 1,000 keys (each task walks
//! its own sequence, so concurrent lookups of one key rarely overlap and read
//! coalescing cannot help), against one redis-server this benchmark starts
//! on a free loopback port. Every
//! configuration runs a fixed number of calls per round; rounds interleave
//! the configurations in rotating order; the table shows the median round.
//!
//! ```text
//! cargo bench --bench hit_path
//! ```
//!
//! Then the same for the local tier (`hit_path/local_tier.rs`).
//!
//! Under `cargo test` it runs one tiny round as a smoke test.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "support/fixtures.rs"]
mod fixtures;

#[path = "hit_path/local_tier.rs"]
mod local_tier;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cache_memoize::redis::{self, AsyncCommands};
use cache_memoize::{cache_memoize, registry, Cache};
use cached::macros::concurrent_cached;
use fixtures::Quote;

type Large = BTreeMap<String, Quote>;

#[cache_memoize(ttl = 3600, prefix = "bench::small")]
async fn ours_small(id: u64) -> Vec<String> {
    let _ = id;
    fixtures::small()
}

#[cache_memoize(ttl = 3600, prefix = "bench::large")]
async fn ours_large(id: u64) -> Large {
    let _ = id;
    fixtures::large()
}

#[concurrent_cached(
    redis = true,
    ttl_secs = 3600,
    cache_prefix_block = r##"{ "cached-small" }"##,
    map_error = r##"|e| format!("{e:?}")"##
)]
async fn cached_small(id: u64) -> Result<Vec<String>, String> {
    let _ = id;
    Ok(fixtures::small())
}

#[concurrent_cached(
    redis = true,
    ttl_secs = 3600,
    cache_prefix_block = r##"{ "cached-large" }"##,
    map_error = r##"|e| format!("{e:?}")"##
)]
async fn cached_large(id: u64) -> Result<Large, String> {
    let _ = id;
    Ok(fixtures::large())
}

/// Raw baseline: GET + header + zlib + rmp-serde, nothing else.
fn decode_raw<T: serde::de::DeserializeOwned>(entry: &[u8]) -> T {
    // Format 2: the payload starts after the 25-byte header (format 1: 4).
    let payload = &entry[if entry[1] == 1 { 4 } else { 25 }..];
    if entry[3] == 1 {
        let mut inflated = Vec::with_capacity(payload.len() * 4);
        flate2::read::ZlibDecoder::new(payload)
            .read_to_end(&mut inflated)
            .unwrap();
        rmp_serde::from_slice(&inflated).unwrap()
    } else {
        rmp_serde::from_slice(payload).unwrap()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Size {
    Small,
    Large,
}

/// Which keys the hits go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pattern {
    /// Every call reads the same key.
    Hot,
    /// Calls spread over [`spread_keys`] keys.
    Spread,
}

/// Keys of the spread pattern (a handful under `cargo test`).
static SPREAD_KEYS: AtomicU64 = AtomicU64::new(1_000);

fn spread_keys() -> u64 {
    SPREAD_KEYS.load(Ordering::Relaxed)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subject {
    OursHit,
    RawGetDecode,
    CachedHit,
    OursMissStore,
    CachedMissStore,
}

const SUBJECTS: [Subject; 5] = [
    Subject::OursHit,
    Subject::RawGetDecode,
    Subject::CachedHit,
    Subject::OursMissStore,
    Subject::CachedMissStore,
];

impl Subject {
    fn label(self) -> &'static str {
        match self {
            Subject::OursHit => "cache-memoize hit",
            Subject::RawGetDecode => "raw GET + zlib + rmp decode",
            Subject::CachedHit => "cached 4.1 hit (redis, no compression)",
            Subject::OursMissStore => "cache-memoize miss + store",
            Subject::CachedMissStore => "cached 4.1 miss + store",
        }
    }
}

/// The Redis keys of the ids `1..=spread_keys()`, for the raw baseline.
struct Keys {
    small: Vec<String>,
    large: Vec<String>,
}

static NEXT_MISS_ID: AtomicU64 = AtomicU64::new(1_000_000);

/// One call of `subject`; hits read the entry of `id` (in `1..=spread_keys()`).
async fn one_call(
    subject: Subject,
    size: Size,
    id: u64,
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
) {
    let at = (id - 1) as usize;
    match (subject, size) {
        (Subject::OursHit, Size::Small) => assert_eq!(ours_small(id).await.len(), 30),
        (Subject::OursHit, Size::Large) => assert_eq!(ours_large(id).await.len(), 1_000),
        (Subject::RawGetDecode, Size::Small) => {
            let entry: Vec<u8> = conn.get(&keys.small[at]).await.unwrap();
            assert_eq!(decode_raw::<Vec<String>>(&entry).len(), 30);
        }
        (Subject::RawGetDecode, Size::Large) => {
            let entry: Vec<u8> = conn.get(&keys.large[at]).await.unwrap();
            assert_eq!(decode_raw::<Large>(&entry).len(), 1_000);
        }
        (Subject::CachedHit, Size::Small) => {
            assert_eq!(cached_small(id).await.unwrap().len(), 30)
        }
        (Subject::CachedHit, Size::Large) => {
            assert_eq!(cached_large(id).await.unwrap().len(), 1_000)
        }
        (Subject::OursMissStore, Size::Small) => {
            let id = NEXT_MISS_ID.fetch_add(1, Ordering::Relaxed);
            assert_eq!(ours_small(id).await.len(), 30);
        }
        (Subject::OursMissStore, Size::Large) => {
            let id = NEXT_MISS_ID.fetch_add(1, Ordering::Relaxed);
            assert_eq!(ours_large(id).await.len(), 1_000);
        }
        (Subject::CachedMissStore, Size::Small) => {
            let id = NEXT_MISS_ID.fetch_add(1, Ordering::Relaxed);
            assert_eq!(cached_small(id).await.unwrap().len(), 30);
        }
        (Subject::CachedMissStore, Size::Large) => {
            let id = NEXT_MISS_ID.fetch_add(1, Ordering::Relaxed);
            assert_eq!(cached_large(id).await.unwrap().len(), 1_000);
        }
    }
}

struct Sample {
    per_second: f64,
    latencies: Vec<Duration>,
}

async fn measure(
    subject: Subject,
    size: Size,
    pattern: Pattern,
    tasks: usize,
    calls: usize,
    conn: &redis::aio::MultiplexedConnection,
) -> Sample {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    let keys = KEYS.get_or_init(|| Keys {
        small: (1..=spread_keys()).map(ours_small_cache_key).collect(),
        large: (1..=spread_keys()).map(ours_large_cache_key).collect(),
    });
    let per_task = (calls / tasks).max(1);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let mut conn = conn.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                for call in 0..per_task {
                    // Spread: each task walks the keys from its own offset.
                    let id = match pattern {
                        Pattern::Hot => 1,
                        Pattern::Spread => (task as u64 * 7_919 + call as u64) % spread_keys() + 1,
                    };
                    let t0 = Instant::now();
                    one_call(subject, size, id, &mut conn, keys).await;
                    latencies.push(t0.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(per_task * tasks);
    for handle in handles {
        latencies.extend(handle.await.unwrap());
    }
    let elapsed = started.elapsed();
    Sample {
        per_second: (per_task * tasks) as f64 / elapsed.as_secs_f64(),
        latencies,
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let server = support::RedisServer::start();
    let url = server.url();
    // `cached` reads its connection string from this variable.
    std::env::set_var("CACHED_REDIS_CONNECTION_STRING", &url);
    registry::set_default(
        Cache::builder()
            .url(&url)
            .prefix("bench")
            // HIT_PATH_COALESCE=0 measures without read coalescing.
            .coalesce_reads(std::env::var("HIT_PATH_COALESCE").as_deref() != Ok("0"))
            .connect()
            .await
            .expect("the benchmark's redis-server answers"),
    );
    let conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Fill every key the hits read (and create `cached`'s connections).
    if !benching {
        SPREAD_KEYS.store(8, Ordering::Relaxed);
    }
    for id in 1..=spread_keys() {
        ours_small(id).await;
        ours_large(id).await;
        cached_small(id).await.unwrap();
        cached_large(id).await.unwrap();
    }
    let mut probe = conn.clone();
    let large_entry: Vec<u8> = probe.get(ours_large_cache_key(1)).await.unwrap();
    let small_entry: Vec<u8> = probe.get(ours_small_cache_key(1)).await.unwrap();
    println!(
        "stored entry sizes: SMALL {} B (compressor id {}), LARGE {} B (compressor id {}, {} B msgpack)",
        small_entry.len(),
        small_entry[3],
        large_entry.len(),
        large_entry[3],
        rmp_serde::to_vec_named(&fixtures::large()).unwrap().len()
    );

    let rounds = if benching { 5 } else { 1 };
    println!("{rounds} rounds, configurations interleaved, median round shown\n");
    println!(
        "{:<40} {:>5} {:>6} {:>5} {:>11} {:>10} {:>10} {:>9} {:>9}",
        "subject", "size", "keys", "tasks", "calls/s", "p50", "p99", "vs raw", "vs cached"
    );
    // HIT_PATH_ONLY="small 64" (or "small 64 spread") narrows the run
    // (for profiling); HIT_PATH_ONLY=tier runs only the local-tier table
    // ("tier u64": only its rows whose label contains "u64").
    let only = std::env::var("HIT_PATH_ONLY").unwrap_or_default();
    if only.is_empty() || only.starts_with("tier") {
        let rows = only.strip_prefix("tier").unwrap_or("").trim();
        local_tier::rows(&url, benching, rows).await;
    }
    for size in [Size::Small, Size::Large] {
        for (tasks, pattern) in [1usize, 16, 64]
            .into_iter()
            .flat_map(|t| [(t, Pattern::Hot), (t, Pattern::Spread)])
        {
            let name = format!(
                "{} {tasks} {}",
                format!("{size:?}").to_lowercase(),
                format!("{pattern:?}").to_lowercase()
            );
            if !only.is_empty() && !name.starts_with(only.as_str()) {
                continue;
            }
            // Misses are measured once per size and task count.
            let subjects: Vec<Subject> = SUBJECTS
                .into_iter()
                .filter(|s| {
                    pattern == Pattern::Hot
                        || !matches!(s, Subject::OursMissStore | Subject::CachedMissStore)
                })
                .collect();
            let calls = match (benching, size) {
                (false, _) => 64,
                (true, Size::Small) => 20_000,
                (true, Size::Large) => 2_000,
            };
            let mut samples: Vec<Vec<Sample>> = subjects.iter().map(|_| Vec::new()).collect();
            for round in 0..rounds {
                for i in 0..subjects.len() {
                    let s = (i + round) % subjects.len();
                    let calls = if matches!(
                        subjects[s],
                        Subject::OursMissStore | Subject::CachedMissStore
                    ) {
                        calls / 4
                    } else {
                        calls
                    };
                    samples[s].push(measure(subjects[s], size, pattern, tasks, calls, &conn).await);
                }
            }
            let medians: Vec<Sample> = samples
                .into_iter()
                .map(|mut v| {
                    v.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
                    let mut m = v.swap_remove(v.len() / 2);
                    m.latencies.sort();
                    m
                })
                .collect();
            let rate =
                |s: Subject| medians[subjects.iter().position(|x| *x == s).unwrap()].per_second;
            for (subject, m) in subjects.iter().zip(&medians) {
                let (vs_raw, vs_cached) = match subject {
                    Subject::OursHit => (
                        format!("{:.2}x", m.per_second / rate(Subject::RawGetDecode)),
                        format!("{:.2}x", m.per_second / rate(Subject::CachedHit)),
                    ),
                    Subject::OursMissStore => (
                        String::new(),
                        format!("{:.2}x", m.per_second / rate(Subject::CachedMissStore)),
                    ),
                    _ => (String::new(), String::new()),
                };
                println!(
                    "{:<40} {:>5} {:>6} {:>5} {:>11.0} {:>10.1?} {:>10.1?} {:>9} {:>9}",
                    subject.label(),
                    format!("{size:?}").to_uppercase(),
                    format!("{pattern:?}").to_lowercase(),
                    tasks,
                    m.per_second,
                    percentile(&m.latencies, 50),
                    percentile(&m.latencies, 99),
                    vs_raw,
                    vs_cached
                );
            }
            println!();
        }
    }
    let stats = registry::default_cache().stats();
    assert_eq!(
        stats.errors, 0,
        "the benchmark ran without cache errors: {stats:?}"
    );
}
