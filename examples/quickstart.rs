//! Quickstart: memoize an expensive function in Redis with `#[cache_memoize]`.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! Uses Redis at `$REDIS_URL` (default `redis://127.0.0.1:6379`); when no
//! Redis answers there, runs on the embedded in-memory backend and says so.

use std::time::{Duration, Instant};

use cache_memoize::{cache_memoize, registry, Cache};

/// Something slow worth caching: a prime sieve plus a pretend database wait.
/// Its results live in the default cache for a minute, keyed by `limit`.
#[cache_memoize(ttl = 60, prefix = "primes")]
async fn expensive_report(limit: u64) -> Vec<u64> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut composite = vec![false; limit as usize + 1];
    let mut primes = Vec::new();
    for n in 2..=limit {
        if !composite[n as usize] {
            primes.push(n);
            let mut m = n * n;
            while m <= limit {
                composite[m as usize] = true;
                m += n;
            }
        }
    }
    primes
}

#[tokio::main]
async fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let cache = match Cache::builder()
        .url(&url)
        .prefix("quickstart")
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
    {
        Ok(cache) => {
            println!("backend: {}", cache.describe_backend());
            cache
        }
        Err(e) => {
            println!("backend: in-memory (embedded), because Redis is not reachable: {e}");
            Cache::builder()
                .prefix("quickstart")
                .build()
                .expect("valid in-memory cache")
        }
    };
    // Memoized functions without `alias`/`cache` use the default cache.
    registry::set_default(cache.clone());
    // Start from a clean slate so the first call is a miss on every run.
    expensive_report_invalidate_all().await;

    println!(
        "{:<6} {:>10} {:>8} {:>10}",
        "call", "limit", "result", "time"
    );
    for (call, limit) in [100_000u64, 100_000, 200_000, 100_000, 200_000]
        .into_iter()
        .enumerate()
    {
        let before = cache.stats();
        let started = Instant::now();
        let primes = expensive_report(limit).await;
        let elapsed = started.elapsed();
        let outcome = if cache.stats().hits > before.hits {
            "hit"
        } else {
            "miss"
        };
        println!(
            "{:<6} {:>10} {:>8} {:>10.2?}   ({} primes)",
            call + 1,
            limit,
            outcome,
            elapsed,
            primes.len()
        );
    }
    let stats = cache.stats();
    println!(
        "summary: {} hits, {} misses, {} errors on {}",
        stats.hits,
        stats.misses,
        stats.errors,
        cache.describe_backend()
    );
    if !cache.is_in_memory() {
        println!(
            "entry of call 1: {}\nlook inside: cargo run -p cache-memoize-cli -- show {0}",
            expensive_report_cache_key(100_000)
        );
    }
}
