//! `get_many` of 100 keys against 100 sequential `get`s, in one run.
//!
//! ```text
//! cargo bench --bench batch
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "support/fixtures.rs"]
mod fixtures;

use std::time::{Duration, Instant};

use cache_memoize::Cache;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let server = support::RedisServer::start();
    let cache = Cache::builder()
        .url(server.url())
        .prefix("batch")
        .connect()
        .await
        .unwrap();
    let keys: Vec<String> = (0..100).map(|i| format!("item:{i}")).collect();
    let items: Vec<(String, Vec<String>)> = keys
        .iter()
        .map(|k| (k.clone(), fixtures::small()))
        .collect();
    cache.set_many(&items, None).await.unwrap();

    let rounds = if benching { 200 } else { 3 };
    let (mut sequential, mut batched) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which goes first, so neither always runs on a warmer cache.
        for first in [round % 2 == 0, round % 2 != 0] {
            if first {
                let t0 = Instant::now();
                for key in &keys {
                    let v: Option<Vec<String>> = cache.get(key).await.unwrap();
                    assert!(v.is_some());
                }
                sequential.push(t0.elapsed());
            } else {
                let t0 = Instant::now();
                let v: Vec<Option<Vec<String>>> = cache.get_many(&keys).await.unwrap();
                assert!(v.iter().all(Option::is_some));
                batched.push(t0.elapsed());
            }
        }
    }
    let (s, b) = (median(sequential), median(batched));
    println!("100 keys, SMALL values, median of {rounds} interleaved rounds");
    println!("{:<28} {:>12}", "100 sequential get", format!("{s:.1?}"));
    println!("{:<28} {:>12}", "get_many (one MGET)", format!("{b:.1?}"));
    println!(
        "get_many is {:.1}x faster",
        s.as_secs_f64() / b.as_secs_f64()
    );
}
