//! Watch the cache ride out Redis trouble.
//!
//! ```text
//! cargo run --release --example chaos
//! ```
//!
//! Starts its own redis-server on a free loopback port (so `redis-server`
//! must be installed), runs 32 tasks of memoized calls, and in the middle
//! kills it with SIGKILL and restarts it, then (second run) pauses it with
//! SIGSTOP and resumes it. Prints each event, the breaker state once per
//! 250 ms, and a summary line per run that includes the number of failed calls.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/support/chaos.rs"]
mod chaos;

use chaos::{Fault, Plan};

#[tokio::main]
async fn main() {
    let plan = Plan::default();
    println!(
        "32 tasks x {} memoized calls; connect timeout {:?}, response timeout {:?}",
        plan.calls_per_task, plan.connect_timeout, plan.response_timeout
    );
    let mut failed = 0;
    for fault in [Fault::Kill, Fault::Pause] {
        println!("\n--- {fault:?} ---");
        let server = support::RedisServer::start();
        println!("    0.0s  redis-server started at {}", server.url());
        let report = chaos::run(server, fault, plan, |line| println!("{line}")).await;
        println!("summary: {}", report.summary());
        failed += report.failed;
    }
    println!("\nfailed calls in total: {failed}");
    if failed > 0 {
        std::process::exit(1);
    }
}
