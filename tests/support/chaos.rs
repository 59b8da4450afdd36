//! The chaos scenario shared by `tests/chaos.rs` and `examples/chaos.rs`:
//! 32 tasks make a bounded number of memoized calls while redis-server is
//! killed (SIGKILL) and restarted on the same port, or paused (SIGSTOP) and
//! resumed (SIGCONT).
//!
//! Include with `#[path = "support/chaos.rs"] mod chaos;` next to
//! `mod support;` at the crate root.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_memoize::{BreakerState, Cache};

use crate::support::RedisServer;

/// What happens to the server in the middle of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, later a fresh server on the same port (the data is gone).
    Kill,
    /// SIGSTOP, later SIGCONT (connections and data survive).
    Pause,
}

/// The run's shape.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub tasks: usize,
    pub calls_per_task: usize,
    pub pause_between_calls: Duration,
    pub fault_at: Duration,
    pub recover_at: Duration,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            tasks: 32,
            calls_per_task: 130,
            pause_between_calls: Duration::from_millis(25),
            fault_at: Duration::from_millis(700),
            recover_at: Duration::from_millis(1_900),
            connect_timeout: Duration::from_millis(100),
            response_timeout: Duration::from_millis(200),
        }
    }
}

impl Plan {
    /// The most a single call may wait on Redis: a connection plus a reply.
    pub fn timeout(&self) -> Duration {
        self.connect_timeout + self.response_timeout
    }
}

/// What the run measured.
#[derive(Debug)]
pub struct Report {
    pub fault: Fault,
    pub calls: usize,
    pub failed: usize,
    pub hits: usize,
    pub hits_during_fault: usize,
    pub max_latency: Duration,
    pub p99_latency: Duration,
    /// From the moment Redis was back to the first hit after it.
    pub hits_resumed_after: Option<Duration>,
    pub breaker_openings: u64,
    pub errors_counted: u64,
    pub final_breaker: BreakerState,
}

impl Report {
    pub fn summary(&self) -> String {
        format!(
            "{:?}: calls={} failed={} hits={} (during fault {}) max_latency={:.1?} p99={:.1?} \
             hits_resumed_after={} breaker_openings={} errors_counted={} breaker_now={:?}",
            self.fault,
            self.calls,
            self.failed,
            self.hits,
            self.hits_during_fault,
            self.max_latency,
            self.p99_latency,
            self.hits_resumed_after
                .map_or("never".to_string(), |d| format!("{d:.1?}")),
            self.breaker_openings,
            self.errors_counted,
            self.final_breaker,
        )
    }
}

struct Call {
    started: Duration,
    latency: Duration,
    hit: bool,
    correct: bool,
}

/// The value a key must always produce.
fn expected(key: usize) -> Vec<u64> {
    (0..16).map(|i| (key as u64) * 1_000 + i).collect()
}

/// Runs the scenario against `server`; `progress` receives a line per event.
pub async fn run(
    server: RedisServer,
    fault: Fault,
    plan: Plan,
    progress: impl Fn(String) + Send + Sync + 'static,
) -> Report {
    let cache = Cache::builder()
        .url(server.url())
        .prefix("chaos")
        .connect_timeout(plan.connect_timeout)
        .response_timeout(plan.response_timeout)
        .build()
        .expect("valid cache settings");
    let progress = Arc::new(progress);
    let origin = Instant::now();
    let back_at: Arc<Mutex<Option<Duration>>> = Arc::default();
    let fault_window: Arc<Mutex<(Duration, Duration)>> =
        Arc::new(Mutex::new((plan.fault_at, plan.recover_at)));

    // The server is driven from a plain thread: killing and restarting block.
    let controller = {
        let back_at = back_at.clone();
        let fault_window = fault_window.clone();
        let progress = progress.clone();
        let cache = cache.clone();
        std::thread::spawn(move || {
            let mut server = server;
            std::thread::sleep(plan.fault_at.saturating_sub(origin.elapsed()));
            let started = origin.elapsed();
            match fault {
                Fault::Kill => server.kill(),
                Fault::Pause => server.pause(),
            }
            progress(format!(
                "{started:>8.1?}  redis-server {} (breaker {:?})",
                if fault == Fault::Kill {
                    "killed with SIGKILL"
                } else {
                    "paused with SIGSTOP"
                },
                cache.stats().breaker
            ));
            std::thread::sleep(plan.recover_at.saturating_sub(origin.elapsed()));
            match fault {
                Fault::Kill => server.restart(),
                Fault::Pause => server.resume(),
            }
            let back = origin.elapsed();
            *back_at.lock().unwrap() = Some(back);
            *fault_window.lock().unwrap() = (started, back);
            progress(format!(
                "{back:>8.1?}  redis-server {} (breaker {:?})",
                if fault == Fault::Kill {
                    "restarted on the same port"
                } else {
                    "resumed with SIGCONT"
                },
                cache.stats().breaker
            ));
            server
        })
    };

    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let monitor = {
        let (cache, progress, finished) = (cache.clone(), progress.clone(), finished.clone());
        tokio::spawn(async move {
            while !finished.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let s = cache.stats();
                progress(format!(
                    "{:>8.1?}  breaker {:<8} hits {:>5} misses {:>5} errors {:>5}",
                    origin.elapsed(),
                    format!("{:?}", s.breaker),
                    s.hits,
                    s.misses,
                    s.errors
                ));
            }
        })
    };

    let mut tasks = Vec::new();
    for task in 0..plan.tasks {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            let mut calls = Vec::with_capacity(plan.calls_per_task);
            for i in 0..plan.calls_per_task {
                let key = (task * 7 + i) % 64;
                let started = origin.elapsed();
                let t0 = Instant::now();
                let mut computed = false;
                let value: Vec<u64> = cache
                    .get_or_compute(&format!("k{key}"), Some(Duration::from_secs(60)), || {
                        computed = true;
                        async move { expected(key) }
                    })
                    .await;
                calls.push(Call {
                    started,
                    latency: t0.elapsed(),
                    hit: !computed,
                    correct: value == expected(key),
                });
                tokio::time::sleep(plan.pause_between_calls).await;
            }
            calls
        }));
    }
    let mut calls = Vec::new();
    let mut failed = 0;
    for task in tasks {
        match task.await {
            Ok(mut c) => calls.append(&mut c),
            Err(_) => failed += plan.calls_per_task, // a panicked task failed all its calls
        }
    }
    finished.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = monitor.await;
    let server = controller.join().expect("controller thread");
    drop(server);

    let (fault_start, fault_end) = *fault_window.lock().unwrap();
    let back = back_at.lock().unwrap().expect("the server came back");
    let mut latencies: Vec<Duration> = calls.iter().map(|c| c.latency).collect();
    latencies.sort();
    let stats = cache.stats();
    Report {
        fault,
        calls: calls.len() + failed,
        failed: failed + calls.iter().filter(|c| !c.correct).count(),
        hits: calls.iter().filter(|c| c.hit).count(),
        hits_during_fault: calls
            .iter()
            .filter(|c| c.hit && c.started > fault_start && c.started + c.latency < fault_end)
            .count(),
        max_latency: latencies.last().copied().unwrap_or_default(),
        p99_latency: latencies
            .get(latencies.len() * 99 / 100)
            .copied()
            .unwrap_or_default(),
        hits_resumed_after: calls
            .iter()
            .filter(|c| c.hit && c.started >= back)
            .map(|c| c.started + c.latency - back)
            .min(),
        breaker_openings: stats.breaker_openings,
        errors_counted: stats.errors,
        final_breaker: stats.breaker,
    }
}
