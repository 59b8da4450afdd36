//! Resident memory per in-flight memoized call, at 10,000 concurrent calls.
//!
//! 10,000 tasks each call a memoized `async fn` with its own key (a miss,
//! so each call leads its own flight, holds its key, its lookup and its
//! computation); every body waits at a gate until all have entered. The
//! resident set size is read from `/proc/self/statm` before and while they
//! wait; the same is done for 10,000 bare tasks waiting at the same gate, so
//! the cache's own share can be told from tokio's.
//!
//! ```text
//! cargo bench --bench inflight_memory
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_memoize::{cache_memoize, registry, Cache};
use tokio::sync::Semaphore;

static GATE: Semaphore = Semaphore::const_new(0);
static ENTERED: AtomicUsize = AtomicUsize::new(0);

async fn wait_at_gate(id: u64) -> u64 {
    ENTERED.fetch_add(1, Ordering::SeqCst);
    GATE.acquire().await.expect("gate open").forget();
    id * 2
}

#[cache_memoize(ttl = 60, prefix = "inflight::slow")]
async fn slow(id: u64) -> u64 {
    wait_at_gate(id).await
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Runs `calls` tasks of `call` at once; the resident growth while all wait.
async fn growth<F, Fut>(calls: usize, first_id: u64, call: F) -> u64
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    ENTERED.store(0, Ordering::SeqCst);
    let before = resident_bytes();
    let ids = first_id..first_id + calls as u64;
    let tasks: Vec<_> = ids.clone().map(|id| tokio::spawn(call(id))).collect();
    for _ in 0..10_000 {
        if ENTERED.load(Ordering::SeqCst) == calls {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        ENTERED.load(Ordering::SeqCst),
        calls,
        "every call reached its body"
    );
    let during = resident_bytes();
    GATE.add_permits(calls);
    for (id, task) in ids.zip(tasks) {
        assert_eq!(task.await.unwrap(), id * 2);
    }
    during.saturating_sub(before)
}

/// One measurement in this (fresh) process: the growth for `mode`.
async fn measure(mode: &str, calls: usize, url: &str) -> u64 {
    registry::set_default(
        Cache::builder()
            .url(url)
            .prefix("inflight")
            .connect()
            .await
            .unwrap(),
    );
    // One call through the whole path first (connection, registry, runtime).
    GATE.add_permits(1);
    slow(1).await;
    match mode {
        "bare" => growth(calls, 0, wait_at_gate).await,
        _ => growth(calls, 1_000_000, slow).await,
    }
}

#[tokio::main]
async fn main() {
    if let Ok(mode) = std::env::var("INFLIGHT_MODE") {
        let calls: usize = std::env::var("INFLIGHT_CALLS").unwrap().parse().unwrap();
        let url = std::env::var("INFLIGHT_URL").unwrap();
        println!("{}", measure(&mode, calls, &url).await);
        return;
    }
    let benching = std::env::args().any(|a| a == "--bench");
    let calls = if benching { 10_000 } else { 500 };
    let server = support::RedisServer::start();
    // Each measurement runs in a fresh process, so neither reuses memory the
    // other freed.
    let run = |mode: &str| -> u64 {
        // Every run starts from an empty cache: its calls must all be misses.
        server.cmd(&[b"FLUSHALL"]).expect_ok();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .env("INFLIGHT_MODE", mode)
            .env("INFLIGHT_CALLS", calls.to_string())
            .env("INFLIGHT_URL", server.url())
            .output()
            .expect("re-run this benchmark as a child process");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let (mut bare, mut memoized) = (Vec::new(), Vec::new());
    for _ in 0..if benching { 5 } else { 1 } {
        bare.push(run("bare"));
        memoized.push(run("memoized"));
    }
    bare.sort();
    memoized.sort();
    let per = |v: &[u64]| v[v.len() / 2] as f64 / calls as f64;
    println!(
        "resident memory growth with {calls} calls in flight (median of {} fresh processes)",
        bare.len()
    );
    println!(
        "  bare tokio tasks at the gate     {:>7.0} B per call",
        per(&bare)
    );
    println!(
        "  memoized calls at the gate       {:>7.0} B per call (task included)",
        per(&memoized)
    );
    println!(
        "  the cache's own share            {:>7.0} B per call",
        per(&memoized) - per(&bare)
    );
}
