//! The local tier's promise across processes (issue 13, COHERENCE.md "How
//! to show it"): after a writer's `invalidate` or `refresh` returned, no
//! reader in another process returns an older value for longer than the
//! staleness bound (5 ms), quiet and under faults. Each scenario runs a
//! writer and two readers as separate processes (this binary, run again)
//! against a private redis-server; see `support/coherence*.rs`.
//!
//! Also here: the checker's analysis on synthetic logs, and the TCP proxy
//! used to stall the tracking connection, against a real redis-server.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cluster.rs"]
mod cluster_support;
#[path = "support/coherence.rs"]
mod coherence;
#[path = "support/coherence_faults.rs"]
mod coherence_faults;
#[path = "support/coherence_roles.rs"]
mod coherence_roles;
#[path = "support/tcp_proxy.rs"]
mod tcp_proxy;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use coherence::{analyze_reader, Ack, CoherenceReport, ReaderLog, Segment, SegmentRecorder};
use coherence_faults::Plan;
use coherence_roles::Launcher;
use tcp_proxy::TcpProxy;

// ---------------------------------------------------------------------------
// The scenarios: a writer and two readers, each its own process
// ---------------------------------------------------------------------------

/// The test that the child processes run: their role, nothing else.
const CHILD_TEST: &str = "coherence_child_process";

/// Where a writer or a reader runs (in any other process it does nothing).
#[test]
fn coherence_child_process() {
    coherence_roles::run_child_if_asked();
}

/// One scenario at a time: each runs three busy processes on a 2-core machine.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn check(scenario: fn(&Launcher, Plan) -> CoherenceReport) -> CoherenceReport {
    let _serial = one_at_a_time();
    let report = scenario(&Launcher::test(CHILD_TEST), Plan::default());
    println!("{}", report.summary());
    println!("{}\n{}", coherence::TABLE_HEADER, report.row());
    report.assert_coherent();
    report
}

#[test]
fn quiet_readers_hit_locally_and_see_every_write_within_the_bound() {
    let report = check(coherence_faults::quiet);
    for reader in &report.readers {
        assert!(reader.local_hits > 0, "{}", report.summary());
    }
}

#[test]
fn overlapping_lookups_in_one_reader_serve_no_stale_value() {
    check(coherence_faults::quiet_concurrent);
}

/// Readers that never pause: every core busy with them.
#[test]
fn saturating_readers_serve_no_stale_value() {
    check(coherence_faults::saturated);
}

#[test]
fn killing_the_tracking_connections_serves_no_stale_value() {
    check(coherence_faults::client_kill);
}

#[test]
fn restarting_redis_on_the_same_port_serves_no_stale_value() {
    check(coherence_faults::restart);
}

#[test]
fn pausing_redis_serves_no_stale_value() {
    check(coherence_faults::pause);
}

#[test]
fn debug_sleep_serves_no_stale_value() {
    check(coherence_faults::debug_sleep);
}

#[test]
fn a_silently_stalled_tracking_connection_serves_no_stale_value() {
    check(coherence_faults::proxy_stall);
}

#[test]
fn late_replies_on_the_data_connection_serve_no_stale_value() {
    check(coherence_faults::data_replies_held);
}

#[test]
fn flushall_serves_no_stale_value() {
    check(coherence_faults::flushall);
}

/// On a 3-master Cluster the tier tracks every primary; the hot key's slot
/// moves mid-run (the slot map check drops memory and tracking starts over).
#[test]
fn migrating_the_hot_slot_serves_no_stale_value() {
    check(coherence_faults::slot_migration);
}

/// A coordinated failover of the hot key's master on a Cluster with
/// replicas: the tracked primaries change, memory is dropped and tracking
/// starts over on the new ones.
#[test]
fn a_cluster_failover_serves_no_stale_value() {
    check(coherence_faults::cluster_failover);
}

// ---------------------------------------------------------------------------
// One race, step by step: a lookup that joins a GET sent before an invalidation
// ---------------------------------------------------------------------------

/// The source of truth of [`joined`].
static SOURCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A cache and the memoized function read through it.
struct Probe {
    cache: cache_memoize::Cache,
}

impl Probe {
    #[cache_memoize::cache_memoize(cache = self.cache, prefix = "probe::joined", ttl = 60)]
    async fn joined(&self, key: u32) -> u64 {
        let _ = key;
        SOURCE.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The reader's GET of v1 runs in Redis before the writer's invalidation,
/// its reply comes late (held by a proxy on the data connection); the
/// invalidation's push arrives at once on the tracking connection. A second
/// lookup that starts after the push and shares that GET must not put v1 in
/// the local tier: v2 was acknowledged long before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_that_shares_a_get_sent_before_an_invalidation_keeps_no_stale_value() {
    use std::sync::atomic::Ordering::SeqCst;
    let server = support::RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    let writer = Probe {
        cache: cache_memoize::Cache::builder()
            .url(server.url())
            .prefix("joined")
            .build()
            .unwrap(),
    };
    let reader = std::sync::Arc::new(Probe {
        cache: cache_memoize::Cache::builder()
            .url(proxy.url())
            .prefix("joined")
            .local_tier(cache_memoize::LocalTier::new(1 << 20).tracking_url(server.url()))
            .build()
            .unwrap(),
    });
    let serving = Instant::now() + Duration::from_secs(5);
    while reader.cache.local_tier_state() != Some(cache_memoize::LocalTierState::Serving) {
        assert!(
            Instant::now() < serving,
            "{:?}",
            reader.cache.local_tier_state()
        );
        reader.joined(9).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Lookups of another key keep the heartbeat at its fast pace, so that the
    // tier serves from memory all along.
    let busy = tokio::spawn({
        let reader = reader.clone();
        async move {
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                reader.joined(9).await;
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    });
    // v1 in Redis (stored by the writer), nothing in the reader's memory.
    SOURCE.store(1, SeqCst);
    assert_eq!(writer.joined_refresh(1).await, 1);

    proxy.stall_replies();
    let first = tokio::spawn({
        let reader = reader.clone();
        async move { reader.joined(1).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await; // its GET ran: v1
    SOURCE.store(2, SeqCst);
    writer.joined_invalidate(1).await;
    let acked = Instant::now();
    tokio::time::sleep(Duration::from_millis(50)).await; // the push arrived
    let second = tokio::spawn({
        let reader = reader.clone();
        async move { reader.joined(1).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.resume();
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    println!(
        "first lookup (started before the invalidation): v{first}; second (started \
         {:?} after it was acknowledged): v{second}",
        Duration::from_millis(50)
    );

    // Every lookup from now on must see v2; a tight loop keeps the tier serving.
    let hits_before = reader.cache.stats().local_hits;
    let (mut stale, mut lookups, mut last_stale) = (0u64, 0u64, None);
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        if reader.joined(1).await != 2 {
            stale += 1;
            last_stale = Some(acked.elapsed());
        }
        lookups += 1;
        tokio::task::yield_now().await;
    }
    let local_hits = reader.cache.stats().local_hits - hits_before;
    busy.abort();
    println!(
        "then {lookups} lookups ({local_hits} local hits): {stale} returned v1, the last \
         {last_stale:?} after v2 was acknowledged"
    );
    assert_eq!(
        (second, stale),
        (2, 0),
        "lookups that started after v2 was acknowledged returned v1: the one that shared \
         the earlier GET, and {stale} of {lookups} later ones ({local_hits} local hits; the \
         last {last_stale:?} after the ack)"
    );
}

// ---------------------------------------------------------------------------
// The analysis, on synthetic logs
// ---------------------------------------------------------------------------

const MS: u64 = 1_000_000;

fn seg(key: u32, version: u64, first_start: u64, last_start: u64) -> Segment {
    Segment {
        key,
        version,
        first_start,
        first_end: first_start + 10_000,
        last_start,
        last_end: last_start + 10_000,
        reads: 1 + (last_start - first_start) / 100_000,
    }
}

fn reader(segments: Vec<Segment>) -> ReaderLog {
    ReaderLog {
        name: "r".into(),
        segments,
        counters: vec![("local_hits".into(), 7)],
    }
}

fn ack(key: u32, version: u64, ack_ns: u64) -> Ack {
    Ack {
        key,
        version,
        ack_ns,
    }
}

#[test]
fn a_read_of_an_old_version_past_the_bound_is_a_violation() {
    let acks = [ack(0, 1, 100 * MS), ack(0, 2, 200 * MS)];
    // v1 still returned by a read that started 6 ms after v2's ack.
    let log = reader(vec![
        seg(0, 1, 101 * MS, 206 * MS),
        seg(0, 2, 206 * MS + 1, 300 * MS),
    ]);
    let report = analyze_reader(&acks, &log, coherence::BOUND);
    assert_eq!(report.violations.len(), 1, "{report:?}");
    let v = report.violations[0];
    assert_eq!((v.key, v.seen, v.newer), (0, 1, 2));
    assert_eq!(v.stale_for(), Duration::from_millis(6));
}

#[test]
fn a_read_that_started_within_the_bound_is_not_a_violation() {
    let acks = [ack(0, 1, 100 * MS), ack(0, 2, 200 * MS)];
    // The last read of v1 started 1 ns less than the bound after v2's ack.
    let log = reader(vec![
        seg(0, 1, 101 * MS, 205 * MS - 1),
        seg(0, 2, 205 * MS, 300 * MS),
    ]);
    let report = analyze_reader(&acks, &log, coherence::BOUND);
    assert!(report.violations.is_empty(), "{report:?}");
    // Exactly the bound after the ack is one: v2 was acked at or before t - bound.
    let log = reader(vec![
        seg(0, 1, 101 * MS, 205 * MS),
        seg(0, 2, 205 * MS + 1, 300 * MS),
    ]);
    assert_eq!(
        analyze_reader(&acks, &log, coherence::BOUND)
            .violations
            .len(),
        1
    );
}

#[test]
fn versions_of_other_keys_and_newer_versions_are_no_violations() {
    let acks = [ack(0, 5, 100 * MS), ack(1, 9, 100 * MS)];
    let log = reader(vec![
        // key 1 at v3 does not concern key 0's acks; key 0 at v6 is newer.
        seg(1, 9, 90 * MS, 300 * MS),
        seg(0, 6, 90 * MS, 300 * MS),
    ]);
    let report = analyze_reader(&acks, &log, coherence::BOUND);
    assert!(report.violations.is_empty(), "{report:?}");
    // An old version of key 1 long after its ack is one.
    let log = reader(vec![seg(1, 3, 90 * MS, 300 * MS)]);
    assert_eq!(
        analyze_reader(&acks, &log, coherence::BOUND)
            .violations
            .len(),
        1
    );
}

#[test]
fn ack_to_first_observation_is_measured_to_the_end_of_the_first_read_after_the_ack() {
    let acks = [
        ack(0, 1, 100 * MS),
        // Already seen when acked: a refresh's value was read before it returned.
        ack(0, 2, 200 * MS),
        // Superseded before this reader saw it: v4 counts.
        ack(0, 3, 300 * MS),
        ack(0, 4, 301 * MS),
    ];
    let log = reader(vec![
        seg(0, 0, 50 * MS, 102 * MS),
        seg(0, 1, 103 * MS, 190 * MS),
        seg(0, 2, 199 * MS, 299 * MS),
        seg(0, 4, 304 * MS, 400 * MS),
    ]);
    let report = analyze_reader(&acks, &log, coherence::BOUND);
    assert!(report.violations.is_empty(), "{report:?}");
    let latencies: Vec<Duration> = report.latencies.clone();
    // v1: read started at 103 ms, ended 10 µs later; v2: 0; v3: 4 ms + 10 µs; v4: 3 ms + 10 µs.
    let us = Duration::from_micros;
    assert_eq!(latencies, vec![us(0), us(3_010), us(3_010), us(4_010)]);
    assert_eq!(report.latency_percentile(50.0), Some(us(3_010)));
    assert_eq!(report.max_latency(), Some(us(4_010)));
    assert_eq!(report.unobserved, 0);
    assert_eq!(report.local_hits, 7);
    // v0 was still returned by a read started 2 ms after v1's ack.
    assert_eq!(report.longest_stale, us(2_000));
}

#[test]
fn the_report_counts_every_reader_and_fails_on_a_violation() {
    let acks = [ack(0, 1, 100 * MS), ack(0, 2, 200 * MS)];
    let good = reader(vec![
        seg(0, 1, 101 * MS, 201 * MS),
        seg(0, 2, 202 * MS, 300 * MS),
    ]);
    let stale = reader(vec![seg(0, 1, 101 * MS, 250 * MS)]);
    let report = CoherenceReport::analyze(
        "synthetic",
        false,
        coherence::BOUND,
        &acks,
        &[good.clone(), stale],
        vec![],
    );
    assert_eq!(report.violations(), 1);
    assert_eq!(report.rows().len(), 2);
    assert!(report.summary().contains("violation: key 0 returned v1"));
    let failed = std::panic::catch_unwind(|| report.assert_coherent());
    assert!(failed.is_err(), "a violation fails assert_coherent");
    CoherenceReport::analyze("synthetic", true, coherence::BOUND, &acks, &[good], vec![])
        .assert_coherent();
}

#[test]
fn the_logs_round_trip_through_their_text_format() {
    let mut recorder = SegmentRecorder::default();
    recorder.read(0, 1, 10, 11);
    recorder.read(1, 1, 12, 13);
    recorder.read(0, 1, 14, 15);
    recorder.read(0, 2, 16, 17);
    let segments = recorder.finish();
    assert_eq!(segments.len(), 3);
    assert_eq!(segments[0], {
        let mut s = seg(0, 1, 10, 14);
        (s.first_end, s.last_end, s.reads) = (11, 15, 2);
        s
    });
    let counters = vec![("local_hits".to_owned(), 3)];
    let text = coherence::format_reader(&segments, &counters);
    let log = coherence::parse_reader("r", &text).unwrap();
    assert_eq!(log.segments, segments);
    assert_eq!(log.counter("local_hits"), 3);
    let acks = vec![ack(3, 4, 5)];
    assert_eq!(
        coherence::parse_acks(&coherence::format_acks(&acks)).unwrap(),
        acks
    );
}

// ---------------------------------------------------------------------------
// The TCP proxy, against a real redis-server
// ---------------------------------------------------------------------------

fn send_ping(stream: &mut TcpStream) {
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    stream.flush().unwrap();
}

#[test]
fn the_tcp_proxy_forwards_holds_while_stalled_and_resumes() {
    let server = support::RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    let stream = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();

    send_ping(&mut writer);
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "+PONG\r\n", "PING through the proxy");

    proxy.stall();
    send_ping(&mut writer);
    let mut byte = [0u8; 1];
    let started = Instant::now();
    let stalled = reader.read(&mut byte);
    assert!(
        matches!(&stalled, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "no reply while stalled, got {stalled:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    // The connection is still open on the server's side, and new ones are held too.
    let clients = server.cmd(&[b"CLIENT", b"LIST"]).as_str().unwrap();
    assert!(clients.lines().count() >= 2, "{clients}");

    proxy.resume();
    reader
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "+PONG\r\n", "the held PING is answered after resume");
    send_ping(&mut writer);
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "+PONG\r\n", "PING after resume");
    assert_eq!(proxy.connections(), 1);

    drop(proxy);
    line.clear();
    let closed = reader.read_line(&mut line);
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "dropping the proxy closes its connections: {closed:?} {line:?}"
    );
}
