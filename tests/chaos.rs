//! Redis trouble never fails a memoized call: kill and pause a real
//! redis-server in the middle of a concurrent load.

#[path = "support/mod.rs"]
mod support;

#[path = "support/chaos.rs"]
mod chaos;

use std::time::{Duration, Instant};

use cache_memoize::{BreakerState, Cache};
use chaos::{Fault, Plan};

async fn survive(fault: Fault) {
    let plan = Plan::default();
    let report = chaos::run(support::RedisServer::start(), fault, plan, |line| {
        eprintln!("{line}")
    })
    .await;
    println!("{}", report.summary());
    assert!(report.calls >= 2_000, "{}", report.summary());
    assert_eq!(
        report.failed,
        0,
        "every call returns the right value: {}",
        report.summary()
    );
    assert!(
        report.max_latency < plan.timeout() + Duration::from_millis(100),
        "max latency {:?} exceeds the timeout {:?} + 100 ms",
        report.max_latency,
        plan.timeout()
    );
    let resumed = report
        .hits_resumed_after
        .expect("hits resume after Redis is back");
    assert!(
        resumed <= Duration::from_secs(2),
        "hits resumed only after {resumed:?}"
    );
    assert!(
        report.errors_counted > 0,
        "the fault was noticed: {}",
        report.summary()
    );
    assert!(
        report.breaker_openings >= 1,
        "the breaker opened: {}",
        report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_and_restarting_redis_fails_no_call() {
    survive(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_and_resuming_redis_fails_no_call() {
    survive(Fault::Pause).await;
}

/// The call that probes a stalled Redis is cancelled (its future dropped,
/// as by a client's timeout): the breaker must not wait for that probe
/// forever, nor for a staleness timer, before it probes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_probe_does_not_delay_the_recovery() {
    let server = support::RedisServer::start();
    let cache = Cache::builder()
        .url(server.url())
        .prefix("cancelled-probe")
        .connect_timeout(Duration::from_millis(100))
        .response_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let call = || {
        let cache = cache.clone();
        async move {
            let mut computed = false;
            let value: u32 = cache
                .get_or_compute("k", None, || {
                    computed = true;
                    async { 7 }
                })
                .await;
            assert_eq!(value, 7);
            !computed // a hit
        }
    };
    assert!(!call().await, "the first call computes and stores");
    assert!(call().await, "then it is a hit");

    server.pause();
    let opened = Instant::now();
    while cache.stats().breaker != BreakerState::Open {
        assert!(
            opened.elapsed() < Duration::from_secs(10),
            "the breaker never opened"
        );
        call().await;
    }
    // Once the back-off is over, the next call probes; it is cancelled
    // while it waits for the stalled server.
    let probing = || async {
        while cache.stats().breaker != BreakerState::HalfOpen {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    loop {
        assert!(opened.elapsed() < Duration::from_secs(10), "no call probed");
        tokio::select! {
            _ = call() => tokio::time::sleep(Duration::from_millis(10)).await,
            () = probing() => break, // the probe's future is dropped here
        }
    }
    server.resume();
    let back = Instant::now();
    while !call().await {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "no hit within 10 s of Redis coming back"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let resumed = back.elapsed();
    // The breaker's longest back-off is 1 s; the old 5 s staleness timer
    // of a vanished probe showed up here as ~4.9 s.
    assert!(
        resumed < Duration::from_secs(2),
        "hits resumed only {resumed:?} after Redis came back"
    );
}
