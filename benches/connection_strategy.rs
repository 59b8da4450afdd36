//! Which Redis connection strategy serves small hits fastest, and how much
//! does a unix socket gain over TCP on the same machine?
//!
//! ```text
//! cargo bench --bench connection_strategy
//! ```
//!
//! Starts its own redis-server on a free loopback port, stores one small
//! entry, then has N concurrent tasks GET it a fixed number of times with
//! each strategy, interleaved over several rounds; prints the median hits/s
//! and the ratio against an exclusive deadpool checkout per request.
//! Under `cargo test` it runs one tiny round as a smoke test.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use cache_memoize::redis::{self, AsyncCommands};
use cache_memoize::Cache;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    ExclusiveCheckout,
    RawMultiplexed,
    CacheShared1,
    CacheShared2,
    CacheUnixSocket,
}

const STRATEGIES: [Strategy; 5] = [
    Strategy::ExclusiveCheckout,
    Strategy::RawMultiplexed,
    Strategy::CacheShared1,
    Strategy::CacheShared2,
    Strategy::CacheUnixSocket,
];

impl Strategy {
    fn label(self) -> &'static str {
        match self {
            Strategy::ExclusiveCheckout => "deadpool checkout per request (4 conns)",
            Strategy::RawMultiplexed => "raw redis-rs MultiplexedConnection",
            Strategy::CacheShared1 => "Cache: leased multiplexed, 1 conn",
            Strategy::CacheShared2 => "Cache: leased multiplexed, 2 conns",
            Strategy::CacheUnixSocket => "Cache: 1 conn over the unix socket",
        }
    }
}

struct Clients {
    pool: deadpool_redis::Pool,
    raw: redis::aio::MultiplexedConnection,
    shared1: Cache,
    shared2: Cache,
    unix: Cache,
}

async fn run(clients: &Clients, strategy: Strategy, tasks: usize, per_task: usize) -> f64 {
    let started = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let pool = clients.pool.clone();
        let mut raw = clients.raw.clone();
        let shared = match strategy {
            Strategy::CacheShared2 => clients.shared2.clone(),
            Strategy::CacheUnixSocket => clients.unix.clone(),
            _ => clients.shared1.clone(),
        };
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                let got: Option<Vec<u8>> = match strategy {
                    Strategy::ExclusiveCheckout => {
                        let mut conn = pool.get().await.expect("pool checkout");
                        conn.get("bench:1:small").await.expect("GET")
                    }
                    Strategy::RawMultiplexed => raw.get("bench:1:small").await.expect("GET"),
                    Strategy::CacheShared1 | Strategy::CacheShared2 | Strategy::CacheUnixSocket => {
                        shared.get_entry("small").await.expect("GET")
                    }
                };
                assert!(got.is_some(), "the entry must be there");
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    (tasks * per_task) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let server = support::RedisServer::start_with_unix_socket();
    let url = server.url();
    let unix_url = format!(
        "redis+unix://{}",
        server
            .unix_socket_path()
            .expect("started with a socket")
            .display()
    );
    let cache = |connections, url: &str| {
        Cache::builder()
            .url(url)
            .prefix("bench")
            .connections(connections)
            .build()
            .unwrap()
    };
    let clients = Clients {
        pool: deadpool_redis::Config::from_url(&url)
            .builder()
            .unwrap()
            .max_size(4)
            .runtime(deadpool_redis::Runtime::Tokio1)
            .build()
            .unwrap(),
        raw: redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap(),
        shared1: cache(1, &url),
        shared2: cache(2, &url),
        unix: cache(1, &unix_url),
    };
    clients
        .shared1
        .set("small", &vec!["abc"; 30], None)
        .await
        .unwrap();

    let (rounds, ops) = if benching { (5, 100_000) } else { (1, 200) };
    println!("small-entry GET throughput, {rounds} interleaved rounds, median of rounds");
    println!(
        "{:<42} {:>6} {:>12} {:>8} {:>9}",
        "strategy", "tasks", "hits/s", "ratio", "unix/tcp"
    );
    for tasks in [1usize, 16, 64] {
        let per_task = (ops / tasks).max(1) / if tasks == 1 { 5 } else { 1 };
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); STRATEGIES.len()];
        run(
            &clients,
            Strategy::RawMultiplexed,
            tasks,
            per_task.min(1000),
        )
        .await; // warm-up
        for round in 0..rounds {
            // Rotate the order each round so no strategy always goes first.
            for i in 0..STRATEGIES.len() {
                let s = (i + round) % STRATEGIES.len();
                samples[s].push(run(&clients, STRATEGIES[s], tasks, per_task).await);
            }
        }
        let medians: Vec<f64> = samples.into_iter().map(median).collect();
        for (strategy, m) in STRATEGIES.iter().zip(&medians) {
            let unix_vs_tcp = if *strategy == Strategy::CacheUnixSocket {
                format!("{:.2}x", m / medians[2])
            } else {
                String::new()
            };
            println!(
                "{:<42} {:>6} {:>12.0} {:>7.2}x {:>9}",
                strategy.label(),
                tasks,
                m,
                m / medians[0],
                unix_vs_tcp
            );
        }
    }
}
