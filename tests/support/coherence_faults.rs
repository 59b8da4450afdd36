//! The coherence checker under faults: each function starts its own Redis
//! (or local cluster), a writer and [`Plan::readers`] readers as separate
//! processes (`support/coherence_roles.rs`), does its fault in the middle of
//! the run, and returns the [`CoherenceReport`].
//!
//! Shared by `tests/coherence.rs` and `examples/coherence_probe.rs`. Include
//! next to `support/mod.rs`, `support/cluster.rs` (as `cluster_support`),
//! `support/tcp_proxy.rs` (as `tcp_proxy`), `support/coherence.rs` and
//! `support/coherence_roles.rs`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::cluster_support::LocalCluster;
use crate::coherence::{self, now_ns, CoherenceReport, BOUND};
use crate::coherence_roles::{ChildProcess, Launcher, Role, Setup};
use crate::support::{redis_cmd, RedisServer, RespValue};
use crate::tcp_proxy::TcpProxy;

/// The name the local tier gives its tracking connections.
pub const TRACKING_NAME: &str = "cache-memoize-tracking";

/// How a scenario runs.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// How long the writer writes; readers read [`Plan::tail`] longer.
    pub run: Duration,
    /// When the fault starts, from the start of the run.
    pub fault_at: Duration,
    pub readers: usize,
    pub keys: u32,
    /// The writer's pause between two writes.
    pub write_interval: Duration,
    /// Readers go on this long after the writer stopped, so that its last
    /// acks are observed.
    pub tail: Duration,
    /// Tasks per reader process, each reading every key over and over.
    pub reader_tasks: usize,
    /// Each reader task pauses this long after every pass over the keys
    /// (about 25k reads a second per task): a busy service, not a machine
    /// with every core taken. `None`: a tight loop, which on 2 cores keeps
    /// both busy with readers, so that the writer, Redis and the readers'
    /// own I/O thread wait for a time slice and the latency measures the
    /// scheduler (see [`saturated`]).
    pub reader_pause: Option<Duration>,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            run: Duration::from_secs(3),
            fault_at: Duration::from_millis(1200),
            readers: 2,
            keys: 4,
            write_interval: Duration::from_millis(2),
            tail: Duration::from_millis(300),
            reader_tasks: 1,
            reader_pause: Some(Duration::from_micros(20)),
        }
    }
}

/// How long the processes may take to start and warm up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after the run's end the processes may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(40);

/// What a fault did, with times from the start of the run.
pub struct Events {
    start: Instant,
    lines: Vec<String>,
}

impl Events {
    /// Records `what` at the current time.
    pub fn note(&mut self, what: impl AsRef<str>) {
        self.lines.push(format!(
            "{:.3}s {}",
            self.start.elapsed().as_secs_f64(),
            what.as_ref()
        ));
    }
}

/// A run in progress, handed to the fault: what the writer said when ready.
pub struct Running {
    /// The full Redis key of `version(0)`, the hottest key.
    pub hot_key: String,
}

fn unique(kind: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{kind}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where the processes connect.
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// One server's URL, or a cluster's seeds.
    pub urls: Vec<String>,
    pub cluster: bool,
    /// The readers' tracking connection goes here instead (a proxy).
    pub tracking_url: Option<String>,
    /// The readers' cache goes here instead (a proxy).
    pub data_url: Option<String>,
}

impl Target {
    /// One server.
    pub fn server(server: &RedisServer) -> Target {
        Target {
            urls: vec![server.url()],
            ..Target::default()
        }
    }
}

/// Runs the writer and the readers against `target`; calls `fault` at
/// `plan.fault_at` and returns the report.
pub fn drive(
    launcher: &Launcher,
    scenario: &str,
    quiet: bool,
    target: Target,
    plan: Plan,
    fault: impl FnOnce(&Running, &mut Events),
) -> CoherenceReport {
    let prefix = unique("probe");
    let dir = std::env::temp_dir().join(unique("coherence"));
    std::fs::create_dir_all(&dir).expect("a log directory");
    let setup = Setup {
        urls: target.urls,
        cluster: target.cluster,
        prefix,
        keys: plan.keys,
        tracking_url: target.tracking_url,
        data_url: target.data_url,
        reader_tasks: plan.reader_tasks,
        reader_pause: plan.reader_pause,
        write_interval: plan.write_interval,
    };
    let log = |name: &str| -> PathBuf { dir.join(format!("{name}.log")) };
    let mut children = vec![ChildProcess::spawn(
        launcher,
        Role::Writer,
        "writer",
        &setup,
        log("writer"),
    )];
    for i in 1..=plan.readers {
        let name = format!("reader {i}");
        children.push(ChildProcess::spawn(
            launcher,
            Role::Reader,
            &name,
            &setup,
            log(&format!("reader-{i}")),
        ));
    }
    let writer_detail = children[0].wait_ready(READY_TIMEOUT);
    for child in &mut children[1..] {
        child.wait_ready(READY_TIMEOUT);
    }
    let hot_key = writer_detail
        .strip_prefix("hot=")
        .expect("the writer names the hot key")
        .to_owned();

    let start_ns = now_ns() + 200_000_000;
    let writer_end = start_ns + plan.run.as_nanos() as u64;
    let reader_end = writer_end + plan.tail.as_nanos() as u64;
    for child in &mut children {
        let end = match child.role {
            Role::Writer => writer_end,
            Role::Reader => reader_end,
        };
        child.start(start_ns, end);
    }
    thread::sleep(Duration::from_nanos(start_ns.saturating_sub(now_ns())));
    let mut events = Events {
        start: Instant::now(),
        lines: Vec::new(),
    };
    thread::sleep(plan.fault_at);
    fault(&Running { hot_key }, &mut events);
    for child in &mut children {
        child.finish(plan.run + plan.tail + EXIT_TIMEOUT);
    }

    let acks = coherence::parse_acks(&strip_comments(&coherence::read_log(&children[0].log)))
        .expect("the writer's log");
    let readers: Vec<_> = children[1..]
        .iter()
        .map(|c| coherence::parse_reader(&c.name, &coherence::read_log(&c.log)).expect("a log"))
        .collect();
    let retries = comment_value(&coherence::read_log(&children[0].log), "retries");
    events.lines.push(format!("writer retries: {retries}"));
    if std::env::var_os("COHERENCE_KEEP_LOGS").is_some() {
        events.lines.push(format!("logs kept in {}", dir.display()));
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    CoherenceReport::analyze(scenario, quiet, BOUND, &acks, &readers, events.lines)
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

fn comment_value(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("# {name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The ids of the local tier's tracking connections on the server on `port`.
pub fn tracking_ids(port: u16) -> Vec<String> {
    let list = redis_cmd(port, &[b"CLIENT", b"LIST"])
        .as_str()
        .unwrap_or_default();
    list.lines()
        .filter(|l| {
            l.split(' ')
                .any(|f| f == format!("name={TRACKING_NAME}").as_str())
        })
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_owned)
        .collect()
}

/// Waits (at most `timeout`) until `port` has `count` tracking connections
/// again, and says when in `events`.
fn note_tracking_back(port: u16, count: usize, timeout: Duration, events: &mut Events) {
    let deadline = Instant::now() + timeout;
    loop {
        let n = crate::support::try_redis_cmd(port, &[b"CLIENT", b"LIST"])
            .ok()
            .and_then(|l| l.as_str())
            .map_or(0, |l| {
                l.lines()
                    .filter(|l| l.contains(&format!("name={TRACKING_NAME}")))
                    .count()
            });
        if n >= count {
            events.note(format!("{n} tracking connections again"));
            return;
        }
        if Instant::now() >= deadline {
            events.note(format!(
                "only {n} of {count} tracking connections after {timeout:?}"
            ));
            return;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// No fault: the baseline, and the only scenario whose latency bound is
/// asserted.
pub fn quiet(launcher: &Launcher, plan: Plan) -> CoherenceReport {
    let server = RedisServer::start();
    drive(
        launcher,
        "quiet",
        true,
        Target::server(&server),
        plan,
        |_, _| {},
    )
}

/// No fault, but 4 tasks per reader reading the same keys, so that their
/// lookups overlap (shared GETs, shared computations).
pub fn quiet_concurrent(launcher: &Launcher, plan: Plan) -> CoherenceReport {
    let server = RedisServer::start();
    let plan = Plan {
        reader_tasks: plan.reader_tasks.max(4),
        ..plan
    };
    drive(
        launcher,
        "quiet, 4 tasks per reader",
        false,
        Target::server(&server),
        plan,
        |_, _| {},
    )
}

/// No fault, but readers that never pause, 4 tasks each: every core busy
/// with readers, the harshest test of the fence (the most reads around each
/// invalidation). Its latencies include waits for a time slice: 5–25 ms
/// measured on 2 cores, while the paced scenarios stay under the bound.
pub fn saturated(launcher: &Launcher, plan: Plan) -> CoherenceReport {
    let server = RedisServer::start();
    let plan = Plan {
        reader_tasks: plan.reader_tasks.max(4),
        reader_pause: None,
        ..plan
    };
    drive(
        launcher,
        "saturated: 4 tasks per reader, no pause",
        false,
        Target::server(&server),
        plan,
        |_, _| {},
    )
}

/// `CLIENT KILL ID` of every reader's tracking connection, twice, 500 ms
/// apart.
pub fn client_kill(launcher: &Launcher, plan: Plan) -> CoherenceReport {
    let server = RedisServer::start();
    let port = server.port;
    drive(
        launcher,
        "CLIENT KILL of the tracking connections",
        false,
        Target::server(&server),
        plan,
        |_, events| {
            for round in 0..2 {
                if round > 0 {
                    thread::sleep(Duration::from_millis(500));
                }
                let ids = tracking_ids(port);
                assert!(
                    ids.len() >= plan.readers,
                    "each reader has a tracking connection named {TRACKING_NAME}: found {ids:?}"
                );
                for id in &ids {
                    let reply = redis_cmd(port, &[b"CLIENT", b"KILL", b"ID", id.as_bytes()]);
                    assert_eq!(reply, RespValue::Integer(1), "CLIENT KILL ID {id}");
                }
                events.note(format!(
                    "CLIENT KILL ID of {} tracking connections",
                    ids.len()
                ));
                note_tracking_back(port, plan.readers, Duration::from_secs(2), events);
            }
        },
    )
}

/// redis-server SIGKILLed, and started again on the same port 200 ms later
/// (empty: persistence is off).
pub fn restart(launcher: &Launcher, plan: Plan) -> CoherenceReport {
    let mut server = RedisServer::start();
    let port = server.port;
    let target = Target::server(&server);
    let report = drive(
        launcher,
        "redis-server SIGKILL + restart",
        false,
        target,
        plan,
        |_, events| {
            server.kill();
            events.note("redis-server SIGKILLed");
            thread::sleep(Duration::from_millis(200));
            server.restart();
            events.note(format!("redis-server answers again on port {port}"));
            note_tracking_back(port, plan.readers, Duration::from_secs(3), events);
        },
    );
    drop(server);
    report
}

/// redis-server SIGSTOPped for 300 ms, then SIGCONT.
pub fn pause(launcher: &Launcher, plan: Plan) -> CoherenceReport {
    let server = RedisServer::start();
    drive(
        launcher,
        "SIGSTOP 300 ms + SIGCONT",
        false,
        Target::server(&server),
        plan,
        |_, events| {
            server.pause();
            events.note("SIGSTOP");
            thread::sleep(Duration::from_millis(300));
            server.resume();
            events.note("SIGCONT");
        },
    )
}

/// `DEBUG SLEEP 0.05`, three times, 300 ms apart.
pub fn debug_sleep(launcher: &Launcher, plan: Plan) -> CoherenceReport {
    let server = RedisServer::start_with_args(&["--enable-debug-command", "local"]);
    drive(
        launcher,
        "DEBUG SLEEP 0.05 (x3)",
        false,
        Target::server(&server),
        plan,
        |_, events| {
            for round in 0..3 {
                if round > 0 {
                    thread::sleep(Duration::from_millis(300));
                }
                server.cmd(&[b"DEBUG", b"SLEEP", b"0.05"]).expect_ok();
                events.note("DEBUG SLEEP 0.05 returned");
            }
        },
    )
}

/// The readers' tracking connections go through a TCP proxy, which stops
/// forwarding (silently: nothing is closed) for 500 ms.
pub fn proxy_stall(launcher: &Launcher, plan: Plan) -> CoherenceReport {
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    let readers = plan.readers;
    drive(
        launcher,
        "TCP proxy of the tracking connection stalled 500 ms",
        false,
        Target {
            tracking_url: Some(proxy.url()),
            ..Target::server(&server)
        },
        plan,
        |_, events| {
            assert!(
                proxy.connections() >= readers,
                "the readers' tracking connections go through the proxy: {} connections",
                proxy.connections()
            );
            proxy.stall();
            events.note(format!(
                "proxy stalled ({} connections)",
                proxy.connections()
            ));
            thread::sleep(Duration::from_millis(500));
            proxy.resume();
            events.note("proxy forwards again");
        },
    )
}

/// The readers' data connections (not their tracking connections) go
/// through a TCP proxy whose replies are held for 50 ms, five times, 200 ms
/// apart: GETs reach Redis and run, their replies come late, while the
/// invalidations that follow them arrive at once on the tracking
/// connection. Each reader runs `plan.reader_tasks` tasks (at least 4), so
/// lookups overlap and share GETs.
pub fn data_replies_held(launcher: &Launcher, plan: Plan) -> CoherenceReport {
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    let plan = Plan {
        reader_tasks: plan.reader_tasks.max(4),
        ..plan
    };
    drive(
        launcher,
        "data replies held 50 ms (x5), 4 tasks per reader",
        false,
        Target {
            data_url: Some(proxy.url()),
            tracking_url: Some(server.url()),
            ..Target::server(&server)
        },
        plan,
        |_, events| {
            for round in 0..5 {
                if round > 0 {
                    thread::sleep(Duration::from_millis(200));
                }
                proxy.stall_replies();
                events.note("replies held");
                thread::sleep(Duration::from_millis(50));
                proxy.resume();
                events.note("replies forwarded again");
            }
        },
    )
}

/// `FLUSHALL`, twice, 500 ms apart (the source of truth goes too; the
/// writer puts it back, readers wait for it).
pub fn flushall(launcher: &Launcher, plan: Plan) -> CoherenceReport {
    let server = RedisServer::start();
    drive(
        launcher,
        "FLUSHALL (x2)",
        false,
        Target::server(&server),
        plan,
        |_, events| {
            for round in 0..2 {
                if round > 0 {
                    thread::sleep(Duration::from_millis(500));
                }
                server.cmd(&[b"FLUSHALL"]).expect_ok();
                events.note("FLUSHALL");
            }
        },
    )
}

/// On a local 3-master cluster: the slot of the hot key (`version(0)`'s
/// entry) moves to another master (`CLUSTER SETSLOT … IMPORTING/MIGRATING`,
/// `MIGRATE`, `SETSLOT … NODE` on every master), mid-run.
pub fn slot_migration(launcher: &Launcher, plan: Plan) -> CoherenceReport {
    let cluster = LocalCluster::start();
    let target = Target {
        urls: cluster.urls(),
        cluster: true,
        ..Target::default()
    };
    drive(
        launcher,
        "Cluster: slot of the hot key migrated",
        false,
        target,
        plan,
        |running, events| {
            let slot = cluster.slot_of(&running.hot_key);
            let from = cluster.node_of(&running.hot_key).port;
            let to = cluster
                .nodes
                .iter()
                .map(|n| n.port)
                .find(|&p| p != from)
                .expect("another master");
            migrate_slot(&cluster, slot, from, to, events);
        },
    )
}

/// On a local cluster of 3 masters with a replica each: the hot key's
/// master hands over to its replica (`CLUSTER FAILOVER` on the replica, a
/// coordinated failover), mid-run.
pub fn cluster_failover(launcher: &Launcher, plan: Plan) -> CoherenceReport {
    let cluster = LocalCluster::start_with_replicas(Duration::from_secs(2));
    let target = Target {
        urls: cluster.urls(),
        cluster: true,
        ..Target::default()
    };
    drive(
        launcher,
        "Cluster: the hot key's master fails over to its replica",
        false,
        target,
        plan,
        |running, events| {
            let master = cluster.node_of(&running.hot_key).port;
            let master_id = node_id(master);
            let nodes = redis_cmd(master, &[b"CLUSTER", b"NODES"])
                .as_str()
                .expect("CLUSTER NODES answers text");
            let replica: u16 = nodes
                .lines()
                .find(|line| line.split_whitespace().nth(3) == Some(master_id.as_str()))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|address| address.split('@').next())
                .and_then(|host_port| host_port.rsplit_once(':'))
                .and_then(|(_, port)| port.parse().ok())
                .expect("the hot key's master has a replica");
            redis_cmd(replica, &[b"CLUSTER", b"FAILOVER"]).expect_ok();
            events.note(format!(
                "CLUSTER FAILOVER on :{replica}, replica of :{master}"
            ));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let role = redis_cmd(replica, &[b"ROLE"]);
                let first = role
                    .as_array()
                    .and_then(|fields| fields.first())
                    .and_then(|field| field.as_str());
                if first.as_deref() == Some("master") {
                    break;
                }
                assert!(Instant::now() < deadline, ":{replica} never became master");
                thread::sleep(Duration::from_millis(5));
            }
            events.note(format!(":{replica} is master"));
        },
    )
}

fn node_id(port: u16) -> String {
    redis_cmd(port, &[b"CLUSTER", b"MYID"])
        .as_str()
        .expect("CLUSTER MYID answers the node id")
}

/// Moves `slot` from the master on `from` to the master on `to`, as
/// `redis-cli --cluster reshard` does.
pub fn migrate_slot(cluster: &LocalCluster, slot: i64, from: u16, to: u16, events: &mut Events) {
    let (from_id, to_id) = (node_id(from), node_id(to));
    let slot_arg = slot.to_string();
    let slot_arg = slot_arg.as_bytes();
    redis_cmd(
        to,
        &[
            b"CLUSTER",
            b"SETSLOT",
            slot_arg,
            b"IMPORTING",
            from_id.as_bytes(),
        ],
    )
    .expect_ok();
    redis_cmd(
        from,
        &[
            b"CLUSTER",
            b"SETSLOT",
            slot_arg,
            b"MIGRATING",
            to_id.as_bytes(),
        ],
    )
    .expect_ok();
    events.note(format!(
        "slot {slot}: IMPORTING on :{to}, MIGRATING on :{from}"
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut moved = 0;
    loop {
        let keys = redis_cmd(from, &[b"CLUSTER", b"GETKEYSINSLOT", slot_arg, b"100"]);
        let keys: Vec<Vec<u8>> = keys
            .as_array()
            .expect("GETKEYSINSLOT answers an array")
            .iter()
            .filter_map(|k| k.as_bytes().map(<[u8]>::to_vec))
            .collect();
        if keys.is_empty() {
            break;
        }
        let to_port = to.to_string();
        let mut args: Vec<&[u8]> = vec![
            b"MIGRATE",
            b"127.0.0.1",
            to_port.as_bytes(),
            b"",
            b"0",
            b"5000",
            b"KEYS",
        ];
        args.extend(keys.iter().map(Vec::as_slice));
        let reply = redis_cmd(from, &args);
        assert!(!reply.is_error(), "MIGRATE: {reply:?}");
        moved += keys.len();
        assert!(
            Instant::now() < deadline,
            "slot {slot} still has keys after 10 s"
        );
    }
    events.note(format!("MIGRATE of {moved} keys"));
    let others = cluster
        .nodes
        .iter()
        .map(|n| n.port)
        .filter(|&p| p != from && p != to);
    for port in [to, from].into_iter().chain(others) {
        redis_cmd(
            port,
            &[b"CLUSTER", b"SETSLOT", slot_arg, b"NODE", to_id.as_bytes()],
        )
        .expect_ok();
    }
    events.note(format!(
        "slot {slot} now served by :{to} (SETSLOT NODE on all)"
    ));
}
