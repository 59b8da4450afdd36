//! Does an invalidation reach every process's local tier in time?
//!
//! ```text
//! cargo run --release --example coherence_probe
//! ```
//!
//! Runs the coherence checker (COHERENCE.md, "How to show it") quiet and
//! under each fault: one writer process bumps a source of truth and
//! alternately invalidates and refreshes the memoized entries of 4 keys,
//! logging when each call returned; two reader processes call the memoized
//! function over and over through a cache with the local tier (pausing
//! 20 µs after each pass over the keys, so that the 2 cores are not all
//! taken by readers; the `saturated` scenario does not pause), logging
//! what they saw. (The processes are this program, run again.) Then it
//! prints one table: per scenario and reader, the reads, the share served
//! from the local tier, ack → first observation p50/p99/max, and the
//! violations (a read at `t` returning a version older than one acked at
//! or before `t − 5 ms`).
//!
//! Starts its own redis-server and local 3-master cluster: needs
//! `redis-server` and `redis-cli` on `PATH`. Arguments pick scenarios by
//! name (`quiet`, `quiet-concurrent`, `saturated`, `client-kill`, `restart`, `pause`, `debug-sleep`,
//! `proxy-stall`, `data-replies-held`, `flushall`, `slot-migration`); none runs them all.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/support/cluster.rs"]
mod cluster_support;
#[path = "../tests/support/coherence.rs"]
mod coherence;
#[path = "../tests/support/coherence_faults.rs"]
mod coherence_faults;
#[path = "../tests/support/coherence_roles.rs"]
mod coherence_roles;
#[path = "../tests/support/tcp_proxy.rs"]
mod tcp_proxy;

use coherence::CoherenceReport;
use coherence_faults::Plan;
use coherence_roles::Launcher;

type Scenario = fn(&Launcher, Plan) -> CoherenceReport;

fn main() {
    if coherence_roles::run_child_if_asked() {
        return;
    }
    let all: [(&str, Scenario); 12] = [
        ("quiet", coherence_faults::quiet),
        ("quiet-concurrent", coherence_faults::quiet_concurrent),
        ("saturated", coherence_faults::saturated),
        ("client-kill", coherence_faults::client_kill),
        ("restart", coherence_faults::restart),
        ("pause", coherence_faults::pause),
        ("debug-sleep", coherence_faults::debug_sleep),
        ("proxy-stall", coherence_faults::proxy_stall),
        ("data-replies-held", coherence_faults::data_replies_held),
        ("flushall", coherence_faults::flushall),
        ("slot-migration", coherence_faults::slot_migration),
        ("cluster-failover", coherence_faults::cluster_failover),
    ];
    let picked: Vec<String> = std::env::args().skip(1).collect();
    if let Some(unknown) = picked.iter().find(|p| all.iter().all(|(n, _)| n != p)) {
        eprintln!(
            "unknown scenario {unknown:?}; pick from: {}",
            all.map(|(n, _)| n).join(", ")
        );
        std::process::exit(2);
    }
    let scenarios = all
        .into_iter()
        .filter(|(name, _)| picked.is_empty() || picked.iter().any(|p| p == name))
        .map(|(_, scenario)| scenario);
    let plan = Plan::default();
    println!(
        "writer + {} readers ({} task(s) each, a {:?} pause after each pass over the keys), \
         {} keys, a write every {:?} + its round trip, {:?} per scenario",
        plan.readers,
        plan.reader_tasks,
        plan.reader_pause.unwrap_or_default(),
        plan.keys,
        plan.write_interval,
        plan.run
    );
    let launcher = Launcher::main();
    let mut rows = Vec::new();
    let mut violations = 0;
    for scenario in scenarios {
        let report = scenario(&launcher, plan);
        println!("\n{}", report.summary().trim_end());
        violations += report.violations();
        rows.push(report.row());
    }
    println!("\n{}", coherence::TABLE_HEADER);
    for row in rows {
        println!("{row}");
    }
    if violations > 0 {
        eprintln!("\n{violations} violations");
        std::process::exit(1);
    }
}
