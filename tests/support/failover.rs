//! Failover scenarios under a load of memoized calls, shared by
//! `tests/ha_sentinel.rs`, `tests/ha_cluster_failover.rs`,
//! `tests/ha_lost_invalidations.rs` and `examples/chaos.rs`:
//!
//! * [`sentinel`]: the master of a Sentinel group is killed (or stalled)
//!   and the sentinels promote a replica;
//! * [`cluster`]: a Cluster master is killed and its replica promotes itself;
//! * [`lost_invalidations`]: invalidations acknowledged just before the
//!   master dies, and whether the promoted replica brings the old values back.
//!
//! Include next to `support/mod.rs`, `support/load.rs`, `support/sentinel.rs`
//! and `support/cluster.rs` (as `load`, `sentinel_support`, `cluster_support`).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_memoize::Cache;

use crate::cluster_support::LocalCluster;
use crate::load;
use crate::sentinel_support::{SentinelGroup, MASTER_NAME};

/// Concurrent tasks of memoized calls.
pub const TASKS: usize = 32;
/// The timeouts the failover tests build their caches with.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(100);
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(200);
/// When the fault happens, from the start of the load.
pub const FAULT_AT: Duration = Duration::from_secs(2);
/// How long the load goes on after the promotion.
pub const AFTER: Duration = Duration::from_secs(3);
/// The longest the controller waits for a promotion before giving up.
const PROMOTION_TIMEOUT: Duration = Duration::from_secs(30);

/// What happens to the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL.
    Kill,
    /// SIGSTOP (its connections stay open and silent).
    Pause,
}

/// What one failover run measured.
#[derive(Debug)]
pub struct FailoverReport {
    pub scenario: String,
    pub calls: usize,
    /// Calls that returned a wrong value (or none).
    pub failed: usize,
    pub max_latency: Duration,
    /// When the fault happened and when the new master was promoted, from
    /// the start of the load.
    pub fault_at: Duration,
    pub promoted_at: Duration,
    pub hits_before: usize,
    pub hits_without_master: usize,
    /// After the promotion: the first 100 ms window in which at least half
    /// of the calls (of the failed master's keys) hit.
    pub hits_back_after: Option<Duration>,
    pub breaker_openings: u64,
    pub errors: u64,
}

impl FailoverReport {
    /// One line for people.
    pub fn summary(&self) -> String {
        format!(
            "{}: fault at {:.1?}, promotion {:.1?} later; calls={} failed={} \
             max_latency={:.1?}; hits: {} before the fault, {} without a master, \
             back {} after the promotion; breaker openings={} errors={}",
            self.scenario,
            self.fault_at,
            self.promoted_at - self.fault_at,
            self.calls,
            self.failed,
            self.max_latency,
            self.hits_before,
            self.hits_without_master,
            self.hits_back_after
                .map_or("never".into(), |d| format!("{d:.2?}")),
            self.breaker_openings,
            self.errors,
        )
    }

    /// A Markdown table row: scenario, calls, failed, longest call,
    /// promotion after the fault, hits back after the promotion.
    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {:.1?} | {:.1?} | {} |",
            self.scenario,
            self.calls,
            self.failed,
            self.max_latency,
            self.promoted_at - self.fault_at,
            self.hits_back_after
                .map_or("never".into(), |d| format!("{d:.2?}")),
        )
    }
}

impl FailoverReport {
    /// 0 failed calls, no call longer than the timeouts allow, and hits
    /// back within `back_within` of the promotion.
    pub fn assert_survived(&self, back_within: Duration) {
        assert_eq!(
            self.failed,
            0,
            "every call returns its value: {}",
            self.summary()
        );
        // A call waits at most for a connection and a reply per Redis
        // request it makes (a lookup, then a store); 300 ms of slack for a
        // busy machine.
        let bound = 2 * (CONNECT_TIMEOUT + RESPONSE_TIMEOUT) + Duration::from_millis(300);
        assert!(
            self.max_latency < bound,
            "max latency {:?} ≥ {bound:?}",
            self.max_latency
        );
        let back = self
            .hits_back_after
            .expect("hits resume after the promotion");
        assert!(
            back < back_within,
            "hits resumed only {back:?} after the promotion"
        );
    }
}

/// The header of [`FailoverReport::row`]'s table.
pub const TABLE_HEADER: &str = "| scenario | calls | failed | longest call | promotion after the fault | hits back after the promotion |\n|---|---|---|---|---|---|";

/// Warms `keys` keys, runs the load, and lets `controller` (on a thread of
/// its own: it blocks) cause the fault and wait for the promotion; it
/// returns (fault time, promotion time, whatever must live until the load
/// ends). `on_failed_master` picks the keys whose hits must come back.
async fn drive<T: Send + 'static>(
    scenario: String,
    cache: &Cache,
    keys: usize,
    on_failed_master: impl Fn(usize) -> bool,
    controller: impl FnOnce(Instant) -> (Duration, Duration, T) + Send + 'static,
) -> (FailoverReport, T) {
    for key in 0..keys {
        load::call(cache, key).await;
    }
    let origin = Instant::now();
    let promoted_at: Arc<Mutex<Option<Duration>>> = Arc::default();
    let keep_going = {
        let promoted_at = promoted_at.clone();
        // Bounded: the controller names a promotion within
        // PROMOTION_TIMEOUT of the fault, or panics; the cap covers that.
        let cap = FAULT_AT + PROMOTION_TIMEOUT + AFTER;
        Arc::new(move |now: Duration| {
            let promoted = *promoted_at.lock().unwrap();
            promoted.is_none_or(|p| now <= p + AFTER) && now < cap
        })
    };
    let controller = std::thread::spawn(move || controller(origin));
    let load = {
        let cache = cache.clone();
        tokio::spawn(async move { load::run(&cache, TASKS, keys, origin, keep_going).await })
    };
    let (fault_at, promoted, keep) =
        tokio::task::spawn_blocking(move || controller.join().expect("controller thread"))
            .await
            .unwrap();
    *promoted_at.lock().unwrap() = Some(promoted);
    let calls = load.await.expect("the load");
    let (failed, max_latency) = load::failures_and_max_latency(&calls);
    let stats = cache.stats();
    let report = FailoverReport {
        scenario,
        calls: calls.len(),
        failed,
        max_latency,
        fault_at,
        promoted_at: promoted,
        hits_before: calls
            .iter()
            .filter(|c| c.hit && c.started < fault_at)
            .count(),
        hits_without_master: calls
            .iter()
            .filter(|c| c.hit && c.started >= fault_at && c.started < promoted)
            .count(),
        hits_back_after: load::hits_back_after(&calls, promoted, |c| on_failed_master(c.key)),
        breaker_openings: stats.breaker_openings,
        errors: stats.errors,
    };
    (report, keep)
}

fn signal(pid: &str, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, pid])
        .status()
        .expect("the kill command");
    assert!(status.success(), "kill {signal} {pid}");
}

fn sentinel_pid(group: &SentinelGroup, index: usize) -> String {
    let info = group
        .sentinel_cmd(group.sentinels[index].port, &[b"INFO", b"server"])
        .expect("the sentinel answers")
        .as_str()
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .expect("INFO server names the process id")
        .trim()
        .to_owned()
}

/// The master of `group` fails (`fault`) under the load on `cache` (built
/// for that group); with `hang_first_sentinel`, the first sentinel is
/// SIGSTOPped just before (and resumed at the end).
pub async fn sentinel(
    scenario: &str,
    cache: &Cache,
    group: SentinelGroup,
    fault: Fault,
    hang_first_sentinel: bool,
) -> FailoverReport {
    const KEYS: usize = 100;
    let old_master = group.master_port().expect("the sentinels name a master");
    // Both replicas have every entry before the master fails.
    for key in 0..KEYS {
        load::call(cache, key).await;
    }
    let acked = group
        .node_of_port(old_master)
        .cmd(&[b"WAIT", b"2", b"5000"]);
    assert_eq!(acked.as_int(), Some(2), "replicas in sync");
    let first_sentinel = sentinel_pid(&group, 0);
    let (report, (group, first_sentinel)) = drive(
        scenario.to_owned(),
        cache,
        KEYS,
        |_| true,
        move |origin| {
            let mut group = group;
            std::thread::sleep(FAULT_AT.saturating_sub(origin.elapsed()));
            if hang_first_sentinel {
                signal(&first_sentinel, "-STOP");
            }
            match fault {
                Fault::Kill => group.node_mut(old_master).kill(),
                Fault::Pause => group.node_mut(old_master).pause(),
            }
            let fault_at = origin.elapsed();
            let deadline = Instant::now() + PROMOTION_TIMEOUT;
            let promoted = loop {
                match group.master_port_skipping(usize::from(hang_first_sentinel)) {
                    Some(port) if port != old_master => break origin.elapsed(),
                    _ => {}
                }
                if Instant::now() >= deadline {
                    signal(&first_sentinel, "-CONT");
                    panic!("no promotion within {PROMOTION_TIMEOUT:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            (fault_at, promoted, (group, first_sentinel))
        },
    )
    .await;
    if hang_first_sentinel {
        signal(&first_sentinel, "-CONT");
    }
    drop(group);
    report
}

/// One master of `cluster` (started with replicas) is killed under the
/// load on `cache` (built for that cluster); its replica promotes itself.
pub async fn cluster(scenario: &str, cache: &Cache, cluster: LocalCluster) -> FailoverReport {
    const KEYS: usize = 300;
    let owner: Vec<u16> = (0..KEYS)
        .map(|k| cluster.node_of(&cache.full_key(&load::cache_key(k))).port)
        .collect();
    let old_master = owner[0];
    let slot = cluster.slot_of(&cache.full_key(&load::cache_key(0)));
    // Another master, to ask for the slot map.
    let witness = *owner
        .iter()
        .find(|&&p| p != old_master)
        .expect("keys on more than one master");
    for key in 0..KEYS {
        load::call(cache, key).await;
    }
    let acked = cluster
        .node_of_port(old_master)
        .cmd(&[b"WAIT", b"1", b"5000"]);
    assert_eq!(acked.as_int(), Some(1), "the replica is in sync");
    let (report, cluster) = drive(
        scenario.to_owned(),
        cache,
        KEYS,
        |k| owner[k] == old_master,
        move |origin| {
            let mut cluster = cluster;
            std::thread::sleep(FAULT_AT.saturating_sub(origin.elapsed()));
            cluster.node_mut(old_master).kill();
            let fault_at = origin.elapsed();
            let deadline = Instant::now() + PROMOTION_TIMEOUT;
            let promoted = loop {
                match cluster.master_of_slot(witness, slot) {
                    Some(port) if port != old_master => break origin.elapsed(),
                    _ => {}
                }
                assert!(
                    Instant::now() < deadline,
                    "no promotion within {PROMOTION_TIMEOUT:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            (fault_at, promoted, cluster)
        },
    )
    .await;
    drop(cluster);
    report
}

/// The replicas' state when the master dies, for [`lost_invalidations`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    /// In sync: the master is killed in the middle of a stream of
    /// invalidations (the loss window is the replication delay).
    InSync,
    /// Cut 200 ms before the master is killed: the master drops its replica
    /// links (`CLIENT KILL TYPE replica`) while the replicas are stalled
    /// (SIGSTOP) so that they cannot reconnect, as a network partition
    /// between them would.
    Cut,
}

/// What [`lost_invalidations`] measured.
#[derive(Debug)]
pub struct LostReport {
    pub scenario: String,
    /// Invalidations the cache acknowledged (returned `Ok`).
    pub acknowledged: usize,
    /// Invalidations that returned an error (not acknowledged).
    pub refused: usize,
    /// Acknowledged invalidations undone by the failover: the next call
    /// after it returned the old value.
    pub stale: usize,
}

impl LostReport {
    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {} |",
            self.scenario, self.acknowledged, self.refused, self.stale
        )
    }
}

/// The header of [`LostReport::row`]'s table.
pub const LOST_TABLE_HEADER: &str = "| scenario | invalidations acknowledged | refused (not acknowledged) | undone by the failover (stale reads) |\n|---|---|---|---|";

fn key_of(k: usize) -> String {
    format!("v{k}")
}

fn value_of(k: usize, generation: u32) -> String {
    format!("{k}@{generation}")
}

/// Key `k`'s memoized value, computed as generation `generation` on a miss.
async fn memoized(cache: Cache, k: usize, generation: u32) -> String {
    cache
        .get_or_compute(&key_of(k), Some(Duration::from_secs(600)), || async {
            value_of(k, generation)
        })
        .await
}

/// 3,000 memoized values are stored and replicated; 8 tasks then
/// invalidate them one by one while the master is killed (after
/// `replication` did its part); after the promotion, every key whose
/// invalidation was acknowledged is read through a memoized call: the old
/// value coming back is a stale read. With `wait`, invalidations use
/// `wait_for_replicas(1, 50 ms)`.
pub async fn lost_invalidations(
    group: SentinelGroup,
    replication: Replication,
    wait: bool,
) -> LostReport {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const KEYS: usize = 3_000;
    const WRITERS: usize = 8;
    let mut builder = Cache::builder()
        .sentinel(MASTER_NAME, group.sentinel_urls())
        .prefix("lost")
        .connect_timeout(Duration::from_millis(100))
        .response_timeout(Duration::from_millis(300));
    if wait {
        builder = builder.wait_for_replicas(1, Duration::from_millis(50));
    }
    let cache = builder.build().expect("valid cache settings");
    cache.ping().await.expect("the master answers");
    let old_master = group.master_port().expect("a master");
    let mut fill = Vec::new();
    for part in 0..WRITERS {
        let cache = cache.clone();
        fill.push(tokio::spawn(async move {
            for k in (part..KEYS).step_by(WRITERS) {
                assert_eq!(memoized(cache.clone(), k, 1).await, value_of(k, 1));
            }
        }));
    }
    for task in fill {
        task.await.expect("fill");
    }
    let synced = group
        .node_of_port(old_master)
        .cmd(&[b"WAIT", b"2", b"5000"]);
    assert_eq!(synced.as_int(), Some(2), "replicas in sync");

    let origin = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let (cache, next, killed) = (cache.clone(), next.clone(), killed.clone());
        writers.push(tokio::spawn(async move {
            let (mut acked, mut refused) = (Vec::new(), 0);
            // Bounded by KEYS, and by the kill.
            while !killed.load(Ordering::SeqCst) {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= KEYS {
                    break;
                }
                match cache.delete(key_of(k).as_str()).await {
                    // Acknowledged before the kill, or not at all.
                    Ok(_) => acked.push(k),
                    Err(_) => refused += 1,
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (acked, refused)
        }));
    }
    let controller = std::thread::spawn({
        let killed = killed.clone();
        move || {
            let mut group = group;
            std::thread::sleep(Duration::from_millis(300).saturating_sub(origin.elapsed()));
            if replication == Replication::Cut {
                for replica in &group.nodes[1..] {
                    replica.pause();
                }
                group
                    .node_of_port(old_master)
                    .cmd(&[b"CLIENT", b"KILL", b"TYPE", b"replica"]);
            }
            std::thread::sleep(Duration::from_millis(500).saturating_sub(origin.elapsed()));
            killed.store(true, Ordering::SeqCst);
            group.node_mut(old_master).kill();
            if replication == Replication::Cut {
                for replica in &group.nodes[1..] {
                    replica.resume();
                }
            }
            let deadline = Instant::now() + PROMOTION_TIMEOUT;
            while group.master_port().is_none_or(|p| p == old_master) {
                assert!(
                    Instant::now() < deadline,
                    "no promotion within {PROMOTION_TIMEOUT:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            group
        }
    });
    let (mut acked, mut refused) = (Vec::new(), 0);
    for writer in writers {
        let (mut a, r) = writer.await.expect("a writer");
        acked.append(&mut a);
        refused += r;
    }
    let group = tokio::task::spawn_blocking(move || controller.join().expect("controller"))
        .await
        .unwrap();
    // The cache reaches the new master (bounded: 10 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the new master never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stale = 0;
    for &k in &acked {
        stale += usize::from(memoized(cache.clone(), k, 2).await == value_of(k, 1));
    }
    drop(group);
    LostReport {
        scenario: format!(
            "{}, {}",
            match replication {
                Replication::InSync => "replicas in sync, master SIGKILLed mid-stream",
                Replication::Cut =>
                    "replication cut 200 ms before the master's SIGKILL (replicas stalled)",
            },
            if wait {
                "wait_for_replicas(1, 50 ms)"
            } else {
                "no wait"
            }
        ),
        acknowledged: acked.len(),
        refused,
        stale,
    }
}
