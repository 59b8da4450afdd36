//! Redis Sentinel: the cache finds the master through the sentinels, stays
//! fail-open while there is none, and follows the promoted replica after
//! the master is killed, under a concurrent load of memoized calls.

#[path = "support/mod.rs"]
mod support;

#[path = "support/sentinel.rs"]
mod sentinel_support;

use std::time::{Duration, Instant};

use cache_memoize::Cache;
use sentinel_support::{SentinelGroup, MASTER_NAME};

const TASKS: usize = 32;
const KEYS: usize = 100;
const KILL_AT: Duration = Duration::from_secs(2);
/// How long the load goes on after the promotion.
const AFTER: Duration = Duration::from_secs(3);
const DOWN_AFTER: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(100);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(200);

struct Call {
    started: Duration,
    latency: Duration,
    hit: bool,
    correct: bool,
}

/// When hits came back after `from`: the start of the first 100 ms window
/// (stepped by 10 ms) in which at least half of the calls of `belongs` keys
/// were hits. A lone "hit" can be a value shared by a concurrent caller's
/// computation (single-flight), so one is not enough.
fn hits_back_after(
    calls: &[Call],
    from: Duration,
    belongs: impl Fn(&Call) -> bool,
) -> Option<Duration> {
    let window = Duration::from_millis(100);
    let end = calls.iter().map(|c| c.started).max()?;
    let mut start = from;
    while start + window <= end {
        let (mut n, mut hits) = (0, 0);
        for c in calls
            .iter()
            .filter(|c| belongs(c) && c.started >= start && c.started < start + window)
        {
            n += 1;
            hits += usize::from(c.hit);
        }
        if n > 0 && hits * 2 >= n {
            return Some(start - from);
        }
        start += Duration::from_millis(10);
    }
    None
}

fn expected(key: usize) -> Vec<u64> {
    (0..16).map(|i| (key as u64) * 1_000 + i).collect()
}

async fn call(cache: &Cache, key: usize) -> (bool, bool) {
    let mut computed = false;
    let value: Vec<u64> = cache
        .get_or_compute(&format!("k{key}"), Some(Duration::from_secs(600)), || {
            computed = true;
            async move { expected(key) }
        })
        .await;
    (!computed, value == expected(key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_follows_a_sentinel_failover_and_fails_no_call() {
    failover(SentinelGroup::start(DOWN_AFTER), None, false, Fault::Kill).await;
}

/// A stalled master (SIGSTOP) keeps its connections open: the cache must
/// still leave it for the promoted replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_leaves_a_stalled_master_for_the_promoted_one() {
    failover(SentinelGroup::start(DOWN_AFTER), None, false, Fault::Pause).await;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Kill,
    Pause,
}

/// The same with passwords on the data nodes and on the sentinels, and
/// the first sentinel listed hung (SIGSTOP) before the master dies: the
/// others find the new master, and no secret shows in the cache's errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_sentinel_and_passwords_do_not_stop_the_failover() {
    let group = SentinelGroup::start_with_passwords(
        DOWN_AFTER,
        Some("data-secret-pw"),
        Some("sentinel-secret-pw"),
    );
    failover(group, Some("data-secret-pw"), true, Fault::Kill).await;
}

fn sentinel_pid(group: &SentinelGroup, index: usize) -> String {
    let info = group
        .sentinel_cmd(group.sentinels[index].port, &[b"INFO", b"server"])
        .unwrap()
        .as_str()
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .unwrap()
        .trim()
        .to_owned()
}

fn signal(pid: &str, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, pid])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn failover(
    group: SentinelGroup,
    data_password: Option<&str>,
    hang_first_sentinel: bool,
    fault: Fault,
) {
    let mut builder = Cache::builder()
        .sentinel(MASTER_NAME, group.sentinel_urls())
        .prefix("ha-sentinel")
        .connect_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT);
    if let Some(pw) = data_password {
        // A wrong password first: refused, and the error shows no secret.
        let wrong = builder
            .clone()
            .sentinel_master_auth(None, "wrong-secret-pw")
            .build()
            .unwrap();
        let error = wrong.ping().await.expect_err("a wrong password is refused");
        let shown = format!("{error} {error:?} {}", wrong.describe_backend());
        assert!(!shown.contains("secret-pw"), "{shown}");
        builder = builder.sentinel_master_auth(None, pw);
    }
    let cache = builder.build().expect("valid cache settings");
    assert!(cache
        .describe_backend()
        .starts_with("redis sentinel master `mymaster` via redis://"));
    assert!(!cache.describe_backend().contains("secret-pw"));
    cache
        .ping()
        .await
        .expect("the master answers through the sentinels");
    for key in 0..KEYS {
        call(&cache, key).await;
    }
    assert!(call(&cache, 0).await.0, "warm: a hit");
    let old_master = group.master_port().expect("the sentinels name a master");
    assert_eq!(old_master, group.nodes[0].port);
    // Both replicas have every entry before the master dies.
    let acked = group.nodes[0].cmd(&[b"WAIT", b"2", b"5000"]);
    assert_eq!(acked.as_int(), Some(2), "replicas in sync");

    let first_sentinel = sentinel_pid(&group, 0);
    let origin = Instant::now();
    let controller = std::thread::spawn({
        let first_sentinel = first_sentinel.clone();
        move || {
            let mut group = group;
            std::thread::sleep(KILL_AT.saturating_sub(origin.elapsed()));
            if hang_first_sentinel {
                signal(&first_sentinel, "-STOP");
            }
            match fault {
                Fault::Kill => group.node_mut(old_master).kill(),
                Fault::Pause => group.node_mut(old_master).pause(),
            }
            let killed = origin.elapsed();
            let deadline = Instant::now() + Duration::from_secs(30);
            let (promoted, new_master) = loop {
                match group.master_port_skipping(usize::from(hang_first_sentinel)) {
                    Some(port) if port != old_master => break (origin.elapsed(), port),
                    _ => {}
                }
                if Instant::now() >= deadline {
                    signal(&first_sentinel, "-CONT");
                    panic!("no promotion within 30 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            (group, killed, promoted, new_master)
        }
    });
    let promoted_at = std::sync::Arc::new(std::sync::Mutex::new(None::<Duration>));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let cache = cache.clone();
        let promoted_at = promoted_at.clone();
        tasks.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            // Bounded: the controller sets the promotion time within 30 s
            // of the kill, or the test fails; a 60 s cap covers that case.
            loop {
                let now = origin.elapsed();
                let promoted = *promoted_at.lock().unwrap();
                if promoted.is_some_and(|p| now > p + AFTER) || now > Duration::from_secs(60) {
                    break;
                }
                let key = fastrand::usize(..KEYS);
                let t0 = Instant::now();
                let (hit, correct) = call(&cache, key).await;
                calls.push(Call {
                    started: now,
                    latency: t0.elapsed(),
                    hit,
                    correct,
                });
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            calls
        }));
    }
    let (group, killed, promoted, new_master) =
        tokio::task::spawn_blocking(move || controller.join().expect("controller thread"))
            .await
            .unwrap();
    *promoted_at.lock().unwrap() = Some(promoted);
    let mut calls = Vec::new();
    for task in tasks {
        calls.append(&mut task.await.expect("a load task panicked"));
    }
    if hang_first_sentinel {
        signal(&first_sentinel, "-CONT");
    }
    drop(group);

    let failed = calls.iter().filter(|c| !c.correct).count();
    let max_latency = calls.iter().map(|c| c.latency).max().unwrap_or_default();
    let hits_before = calls.iter().filter(|c| c.hit && c.started < killed).count();
    let hits_between = calls
        .iter()
        .filter(|c| c.hit && c.started >= killed && c.started < promoted)
        .count();
    let hits_back_after = hits_back_after(&calls, promoted, |_| true);
    let stats = cache.stats();
    println!(
        "{}master {old_master} {fault:?} at {killed:.1?}; sentinels promoted {new_master} at \
         {promoted:.1?} ({:.1?} later)\n\
         calls={} failed={failed} max_latency={max_latency:.1?}\n\
         hits: {hits_before} before the fault, {hits_between} without a master; \
         hits back {} after the promotion\n\
         breaker openings={} errors={}",
        if hang_first_sentinel {
            "first sentinel SIGSTOPped, passwords on; "
        } else {
            ""
        },
        promoted - killed,
        calls.len(),
        hits_back_after.map_or("never".into(), |d| format!("{d:.1?}")),
        stats.breaker_openings,
        stats.errors,
    );
    assert_eq!(failed, 0, "every call returns its value");
    let bound = 2 * (CONNECT_TIMEOUT + RESPONSE_TIMEOUT) + Duration::from_millis(300);
    assert!(
        max_latency < bound,
        "max latency {max_latency:?} ≥ {bound:?}"
    );
    let back = hits_back_after.expect("hits resume on the new master");
    // The breaker's longest back-off is 1 s; the rest is the sentinels
    // telling the new master's address to a new connection.
    assert!(
        back < Duration::from_secs(3),
        "hits resumed only {back:?} after the promotion"
    );
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// `wait_for_replicas`: a delete returns only once the replicas have it,
/// and says so when they do not; what that costs per invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_can_wait_for_the_replicas() {
    const ROUNDS: usize = 300;
    let group = SentinelGroup::start(Duration::from_secs(5));
    let cache = |wait: bool| {
        let builder = Cache::builder()
            .sentinel(MASTER_NAME, group.sentinel_urls())
            .prefix(if wait { "waiting" } else { "not-waiting" })
            .response_timeout(Duration::from_millis(500));
        let builder = if wait {
            builder.wait_for_replicas(2, Duration::from_millis(200))
        } else {
            builder
        };
        builder.build().expect("valid cache settings")
    };
    let replicas = &group.nodes[1..];
    let mut report = Vec::new();
    for wait in [false, true] {
        let cache = cache(wait);
        let mut latencies = Vec::with_capacity(ROUNDS);
        let mut still_on_a_replica = 0;
        for round in 0..ROUNDS {
            let key = format!("k{round}");
            cache.set(&key, &round, None).await.unwrap();
            let t0 = Instant::now();
            assert!(cache
                .delete(key.as_str())
                .await
                .expect("the delete succeeds"));
            latencies.push(t0.elapsed());
            let full = cache.full_key(&key);
            still_on_a_replica += replicas
                .iter()
                .filter(|r| r.cmd(&[b"EXISTS", full.as_bytes()]).as_int() == Some(1))
                .count();
        }
        latencies.sort();
        if wait {
            assert_eq!(
                still_on_a_replica, 0,
                "after a waiting delete, no replica has the key"
            );
        }
        report.push(format!(
            "{:<28} p50 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}  (key still on a replica right after: {still_on_a_replica} of {})",
            if wait { "delete + WAIT 2 200ms" } else { "delete" },
            percentile(&latencies, 50),
            percentile(&latencies, 99),
            latencies[ROUNDS - 1],
            ROUNDS * replicas.len(),
        ));
    }
    println!("{ROUNDS} deletes each, master + 2 replicas on loopback:");
    for line in &report {
        println!("  {line}");
    }

    // A stalled replica: the delete reaches the master, and says that
    // only one replica has it.
    let cache = cache(true);
    cache.set("lagging", &1u8, None).await.unwrap();
    replicas[0].pause();
    let outcome = cache.delete("lagging").await;
    replicas[0].resume();
    match outcome {
        Err(cache_memoize::Error::ReplicasBehind { acked, wanted, .. }) => {
            assert_eq!((acked, wanted), (1, 2));
        }
        other => panic!("expected ReplicasBehind, got {other:?}"),
    }
    assert!(
        group.nodes[0]
            .cmd(&[b"EXISTS", cache.full_key("lagging").as_bytes()])
            .as_int()
            == Some(0),
        "the master applied the delete"
    );
}
