//! Redis trouble never fails a memoized call: kill and pause a real
//! redis-server in the middle of a concurrent load.

#[path = "support/mod.rs"]
mod support;

#[path = "support/chaos.rs"]
mod chaos;

use std::time::Duration;

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
