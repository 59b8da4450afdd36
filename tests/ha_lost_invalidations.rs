//! What a failover can lose: invalidations acknowledged just before the
//! master dies, on a Sentinel group (master + 2 replicas + 3 sentinels).
//! With `wait_for_replicas`, no acknowledged invalidation is ever undone;
//! without it, the number undone is measured and printed (and must be
//! more than zero when the replication link was cut, or the experiment
//! would not show what it claims to).

#[path = "support/mod.rs"]
mod support;

#[path = "support/cluster.rs"]
mod cluster_support;
#[path = "support/failover.rs"]
mod failover;
#[path = "support/load.rs"]
mod load;
#[path = "support/sentinel.rs"]
mod sentinel_support;

use std::time::Duration;

use failover::{lost_invalidations, Replication};
use sentinel_support::SentinelGroup;

const DOWN_AFTER: Duration = Duration::from_secs(1);

async fn run(replication: Replication, wait: bool) -> failover::LostReport {
    let report = lost_invalidations(SentinelGroup::start(DOWN_AFTER), replication, wait).await;
    println!("{}\n{}", failover::LOST_TABLE_HEADER, report.row());
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_waiting_a_cut_replication_link_undoes_acknowledged_invalidations() {
    let report = run(Replication::Cut, false).await;
    assert!(report.acknowledged > 0, "{report:?}");
    assert!(
        report.stale > 0,
        "the cut link should lose invalidations: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_invalidations_are_never_undone_by_a_failover_after_a_cut() {
    let report = run(Replication::Cut, true).await;
    assert!(report.acknowledged > 0, "{report:?}");
    assert!(report.refused > 0, "the cut link refuses waits: {report:?}");
    assert_eq!(report.stale, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_invalidations_are_never_undone_by_a_failover_in_sync() {
    let report = run(Replication::InSync, true).await;
    assert!(report.acknowledged > 0, "{report:?}");
    assert_eq!(report.stale, 0, "{report:?}");
}

/// Without waiting, replicas in sync: the loss window is the replication
/// delay; the count is reported, not bounded (it is timing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_waiting_in_sync_the_loss_is_measured() {
    let report = run(Replication::InSync, false).await;
    assert!(report.acknowledged > 0, "{report:?}");
}
