//! The coherence checker's processes: one writer and several readers, each
//! this very binary run again with [`ROLE_ENV`] naming its role, and the
//! parent's handle on them ([`ChildProcess`]).
//!
//! * The **source of truth**: one plain Redis key per checked key,
//!   `{prefix}-src:{key}`, outside the cache's prefix, read and written
//!   with the `redis` crate directly ([`Source`]).
//! * The memoized function [`version`] returns the version the source holds.
//! * The **writer** bumps a key's version in the source, then alternately
//!   `version_invalidate(key)` and `version_refresh(key)` (the "set"), and
//!   logs an [`Ack`] with the time the call returned. A call during which
//!   the cache counted an error (or a refresh that stored nothing) was not
//!   acknowledged by Redis: it is retried, and only the call that went
//!   through is logged. Its cache has no local tier.
//! * A **reader** calls `version(key)` over the keys again and again
//!   (pausing `reader_pause` after each pass) through a cache with the
//!   local tier and logs [`Segment`]s, then its counters.
//!
//! `COHERENCE_EXPERIMENT_NO_COALESCE` (set in the parent's environment,
//! inherited by the children) builds the readers' caches with
//! `coalesce_reads(false)`: an experiment knob, to tell whether stale reads
//! come from lookups that share a GET.
//!
//! The protocol with the parent: the child prints `COHERENCE-READY …` on
//! stdout once warmed up, reads `start <start_ns> <end_ns>` from stdin,
//! runs between those times, writes its log file and exits.
//!
//! Include next to `support/mod.rs` and `support/coherence.rs` (as
//! `coherence`) with `#[path = "support/coherence_roles.rs"] mod coherence_roles;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use cache_memoize::redis::{self, AsyncCommands};
use cache_memoize::{cache_memoize, Cache, LocalTier};

use crate::coherence::{self, now_ns, Ack, SegmentRecorder};

/// Names the role of a child process (`writer` or `reader`).
pub const ROLE_ENV: &str = "COHERENCE_ROLE";
const NAME_ENV: &str = "COHERENCE_NAME";
/// Comma-separated Redis URLs; with `COHERENCE_CLUSTER=1`, cluster seeds.
const URLS_ENV: &str = "COHERENCE_URLS";
const CLUSTER_ENV: &str = "COHERENCE_CLUSTER";
const PREFIX_ENV: &str = "COHERENCE_PREFIX";
const KEYS_ENV: &str = "COHERENCE_KEYS";
const LOG_ENV: &str = "COHERENCE_LOG";
const TRACKING_ENV: &str = "COHERENCE_TRACKING_URL";
const DATA_ENV: &str = "COHERENCE_DATA_URL";
const TASKS_ENV: &str = "COHERENCE_READER_TASKS";
/// Microseconds; empty for no pause.
const PAUSE_ENV: &str = "COHERENCE_READER_PAUSE_US";
const WRITE_INTERVAL_ENV: &str = "COHERENCE_WRITE_INTERVAL_US";
/// What a child prints once it is ready to start.
const READY: &str = "COHERENCE-READY";
/// How long after its end time a child may still be busy (a body waiting
/// for the source of truth, a log being written) before it gives up.
const GRACE: Duration = Duration::from_secs(20);
/// Every single source-of-truth command is bounded by this.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a child does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Writer,
    Reader,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
        }
    }
}

/// What every process of one run shares.
#[derive(Clone, Debug)]
pub struct Setup {
    /// One URL, or the seeds of a cluster.
    pub urls: Vec<String>,
    pub cluster: bool,
    /// The cache's prefix (and the source keys' `{prefix}-src:`).
    pub prefix: String,
    /// Keys `0..keys` are read and written.
    pub keys: u32,
    /// The readers' tracking connection goes here instead (a proxy).
    pub tracking_url: Option<String>,
    /// The readers' cache (its data connections, and its tracking
    /// connection unless `tracking_url` says otherwise) goes here instead
    /// (a proxy); the source of truth stays on `urls`.
    pub data_url: Option<String>,
    /// Tasks per reader, each reading every key over and over.
    pub reader_tasks: usize,
    /// A reader task's pause after each pass over the keys; `None`: none.
    pub reader_pause: Option<Duration>,
    /// The writer's pause between two writes.
    pub write_interval: Duration,
}

impl Setup {
    fn from_env() -> Setup {
        let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
        Setup {
            urls: var(URLS_ENV).split(',').map(str::to_owned).collect(),
            cluster: var(CLUSTER_ENV) == "1",
            prefix: var(PREFIX_ENV),
            keys: var(KEYS_ENV).parse().expect("a key count"),
            tracking_url: std::env::var(TRACKING_ENV).ok().filter(|u| !u.is_empty()),
            data_url: std::env::var(DATA_ENV).ok().filter(|u| !u.is_empty()),
            reader_tasks: var(TASKS_ENV).parse().expect("a task count"),
            reader_pause: std::env::var(PAUSE_ENV)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| Duration::from_micros(v.parse().expect("microseconds"))),
            write_interval: Duration::from_micros(
                var(WRITE_INTERVAL_ENV).parse().expect("microseconds"),
            ),
        }
    }

    fn to_env(&self, command: &mut Command) {
        command
            .env(URLS_ENV, self.urls.join(","))
            .env(CLUSTER_ENV, if self.cluster { "1" } else { "0" })
            .env(PREFIX_ENV, &self.prefix)
            .env(KEYS_ENV, self.keys.to_string())
            .env(TRACKING_ENV, self.tracking_url.as_deref().unwrap_or(""))
            .env(DATA_ENV, self.data_url.as_deref().unwrap_or(""))
            .env(TASKS_ENV, self.reader_tasks.to_string())
            .env(
                PAUSE_ENV,
                self.reader_pause
                    .map_or(String::new(), |p| p.as_micros().to_string()),
            )
            .env(
                WRITE_INTERVAL_ENV,
                self.write_interval.as_micros().to_string(),
            );
    }
}

// ---------------------------------------------------------------------------
// The memoized function and its source of truth
// ---------------------------------------------------------------------------

static CACHE: OnceLock<Cache> = OnceLock::new();
static SOURCE: OnceLock<Source> = OnceLock::new();

/// This process's cache (set once, when the role starts).
pub fn probe_cache() -> Cache {
    CACHE.get().expect("the role set up its cache").clone()
}

/// The version of `key` in the source of truth, memoized.
#[cache_memoize(cache = probe_cache(), prefix = "probe::version", ttl = 60)]
pub async fn version(key: u32) -> u64 {
    SOURCE
        .get()
        .expect("the role set up its source")
        .read(key)
        .await
}

/// A connection to the source of truth that reconnects after failures.
pub struct Source {
    prefix: String,
    conn: SourceConn,
    /// Until when a missing key or a failing Redis is waited out.
    give_up_at: Mutex<Instant>,
    /// In the writer: the versions it wrote, to put back a key that a
    /// FLUSHALL or a restart of Redis removed. Readers wait for the writer.
    owned: Option<Arc<Mutex<Vec<u64>>>>,
}

enum SourceConn {
    Single {
        client: Box<redis::Client>,
        conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    },
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Source {
    async fn connect(setup: &Setup, owned: Option<Arc<Mutex<Vec<u64>>>>) -> Source {
        let conn = if setup.cluster {
            let client = redis::cluster::ClusterClient::builder(setup.urls.clone())
                .connection_timeout(SOURCE_TIMEOUT)
                .response_timeout(SOURCE_TIMEOUT)
                .build()
                .expect("cluster seeds");
            SourceConn::Cluster(
                client
                    .get_async_connection()
                    .await
                    .expect("connect to the cluster"),
            )
        } else {
            SourceConn::Single {
                client: Box::new(redis::Client::open(setup.urls[0].as_str()).expect("a Redis URL")),
                conn: tokio::sync::Mutex::new(None),
            }
        };
        Source {
            prefix: setup.prefix.clone(),
            conn,
            give_up_at: Mutex::new(Instant::now() + GRACE),
            owned,
        }
    }

    fn key(&self, key: u32) -> String {
        format!("{}-src:{key}", self.prefix)
    }

    fn give_up_at(&self, at: Instant) {
        *self.give_up_at.lock().unwrap() = at;
    }

    async fn single(&self) -> Result<redis::aio::MultiplexedConnection, String> {
        let SourceConn::Single { client, conn } = &self.conn else {
            unreachable!("a single server")
        };
        let mut slot = conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(SOURCE_TIMEOUT))
            .set_response_timeout(Some(SOURCE_TIMEOUT));
        let c = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn forget_single(&self) {
        if let SourceConn::Single { conn, .. } = &self.conn {
            *conn.lock().await = None;
        }
    }

    /// One `GET`, bounded.
    async fn try_get(&self, key: u32) -> Result<Option<u64>, String> {
        let name = self.key(key);
        let got = match &self.conn {
            SourceConn::Single { .. } => {
                let mut c = self.single().await?;
                tokio::time::timeout(SOURCE_TIMEOUT, c.get::<_, Option<u64>>(&name)).await
            }
            SourceConn::Cluster(c) => {
                let mut c = c.clone();
                tokio::time::timeout(SOURCE_TIMEOUT, c.get::<_, Option<u64>>(&name)).await
            }
        };
        match got {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.forget_single().await;
                Err(e.to_string())
            }
            Err(_) => {
                self.forget_single().await;
                Err("timed out".into())
            }
        }
    }

    /// One `SET`, bounded.
    async fn try_set(&self, key: u32, version: u64) -> Result<(), String> {
        let name = self.key(key);
        let set = match &self.conn {
            SourceConn::Single { .. } => {
                let mut c = self.single().await?;
                tokio::time::timeout(SOURCE_TIMEOUT, c.set::<_, _, ()>(&name, version)).await
            }
            SourceConn::Cluster(c) => {
                let mut c = c.clone();
                tokio::time::timeout(SOURCE_TIMEOUT, c.set::<_, _, ()>(&name, version)).await
            }
        };
        match set {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.forget_single().await;
                Err(e.to_string())
            }
            Err(_) => {
                self.forget_single().await;
                Err("timed out".into())
            }
        }
    }

    /// Writes `version` of `key`, retrying until Redis takes it.
    pub async fn write(&self, key: u32, version: u64) {
        loop {
            match self.try_set(key, version).await {
                Ok(()) => return,
                Err(e) => self.wait_or_give_up(&format!("SET {}: {e}", self.key(key))),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The version of `key`, waiting out a failing Redis and a missing key
    /// (after a FLUSHALL or a restart the writer puts it back).
    pub async fn read(&self, key: u32) -> u64 {
        loop {
            match self.try_get(key).await {
                Ok(Some(v)) => return v,
                Ok(None) => {
                    if let Some(owned) = &self.owned {
                        let v = owned.lock().unwrap()[key as usize];
                        self.write(key, v).await;
                        return v;
                    }
                    self.wait_or_give_up(&format!("{} is missing", self.key(key)));
                }
                Err(e) => self.wait_or_give_up(&format!("GET {}: {e}", self.key(key))),
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn wait_or_give_up(&self, what: &str) {
        assert!(
            Instant::now() < *self.give_up_at.lock().unwrap(),
            "the source of truth: {what} (gave up)"
        );
    }
}

// ---------------------------------------------------------------------------
// The child's side
// ---------------------------------------------------------------------------

/// In a child process: runs its role and returns `true`. In any other
/// process: returns `false` at once. Call it first thing in the test named
/// by [`Launcher::test`] (or in an example's `main`).
pub fn run_child_if_asked() -> bool {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return false;
    };
    let role = match role.as_str() {
        "writer" => Role::Writer,
        "reader" => Role::Reader,
        other => panic!("unknown {ROLE_ENV} {other:?}"),
    };
    let setup = Setup::from_env();
    let log = PathBuf::from(std::env::var(LOG_ENV).expect("a log path"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let text = runtime.block_on(async move {
        match role {
            Role::Writer => writer(&setup).await,
            Role::Reader => reader(&setup).await,
        }
    });
    std::fs::write(&log, text).unwrap_or_else(|e| panic!("write {}: {e}", log.display()));
    true
}

fn cache_builder(setup: &Setup, url: Option<&String>) -> cache_memoize::CacheBuilder {
    let builder = Cache::builder().prefix(setup.prefix.clone());
    if setup.cluster {
        builder.cluster_urls(setup.urls.clone())
    } else {
        builder.url(url.unwrap_or(&setup.urls[0]).clone())
    }
}

/// Prints the ready line and waits for the parent's start line:
/// `(start_ns, end_ns)`.
async fn ready_then_wait_for_start(detail: &str) -> (u64, u64) {
    println!("{READY} {detail}");
    std::io::stdout().flush().expect("flush stdout");
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .expect("read the start line");
        line
    })
    .await
    .expect("the stdin reader");
    let fields: Vec<u64> = line
        .strip_prefix("start ")
        .unwrap_or_else(|| panic!("expected `start <ns> <ns>`, got {line:?}"))
        .split_whitespace()
        .map(|f| f.parse().expect("nanoseconds"))
        .collect();
    let (start, end) = (fields[0], fields[1]);
    sleep_until_ns(start).await;
    (start, end)
}

async fn sleep_until_ns(t: u64) {
    let now = now_ns();
    if t > now {
        tokio::time::sleep(Duration::from_nanos(t - now)).await;
    }
}

fn deadline_after(end_ns: u64) -> Instant {
    Instant::now() + Duration::from_nanos(end_ns.saturating_sub(now_ns())) + GRACE
}

async fn writer(setup: &Setup) -> String {
    let cache = cache_builder(setup, None)
        .build()
        .expect("the writer's cache");
    assert!(CACHE.set(cache.clone()).is_ok(), "one cache per process");
    let versions = Arc::new(Mutex::new(vec![0u64; setup.keys as usize]));
    let source = Source::connect(setup, Some(versions.clone())).await;
    assert!(SOURCE.set(source).is_ok(), "one source per process");
    let source = SOURCE.get().unwrap();
    for key in 0..setup.keys {
        source.write(key, 0).await;
        version_invalidate(key).await;
    }
    let (_, end) = ready_then_wait_for_start(&format!("hot={}", version_cache_key(0))).await;
    source.give_up_at(deadline_after(end));
    let give_up = deadline_after(end);

    let mut acks = Vec::new();
    let mut retries = 0u64;
    let mut round = 0u32;
    while now_ns() < end {
        let key = round % setup.keys;
        round += 1;
        let v = {
            let mut versions = versions.lock().unwrap();
            versions[key as usize] += 1;
            versions[key as usize]
        };
        source.write(key, v).await;
        let refresh = v % 2 == 0;
        loop {
            let before = cache.stats();
            let acked = if refresh {
                version_refresh(key).await == v
            } else {
                version_invalidate(key).await;
                true
            };
            let ack_ns = now_ns();
            let after = cache.stats();
            if acked && after.errors == before.errors && (!refresh || after.stores > before.stores)
            {
                acks.push(Ack {
                    key,
                    version: v,
                    ack_ns,
                });
                break;
            }
            retries += 1;
            assert!(
                Instant::now() < give_up,
                "the writer could not get v{v} of key {key} acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(setup.write_interval).await;
    }
    let mut text = coherence::format_acks(&acks);
    text.push_str(&format!("# retries {retries}\n"));
    text
}

async fn reader(setup: &Setup) -> String {
    let mut tier = LocalTier::new(64 << 20).staleness_bound(coherence::BOUND);
    if let Some(url) = &setup.tracking_url {
        tier = tier.tracking_url(url.clone());
    }
    let cache = cache_builder(setup, setup.data_url.as_ref())
        .coalesce_reads(std::env::var_os("COHERENCE_EXPERIMENT_NO_COALESCE").is_none())
        .local_tier(tier)
        .build()
        .expect("the reader's cache");
    assert!(CACHE.set(cache.clone()).is_ok(), "one cache per process");
    let source = Source::connect(setup, None).await;
    assert!(SOURCE.set(source).is_ok(), "one source per process");
    let source = SOURCE.get().unwrap();
    for _ in 0..2 {
        for key in 0..setup.keys {
            version(key).await;
        }
    }
    let (_, end) = ready_then_wait_for_start("reader").await;
    source.give_up_at(deadline_after(end));

    let start_stats = cache.stats();
    let keys = setup.keys;
    let pause = setup.reader_pause;
    let tasks: Vec<_> = (0..setup.reader_tasks.max(1))
        .map(|_| {
            tokio::spawn(async move {
                let mut recorder = SegmentRecorder::default();
                while now_ns() < end {
                    for key in 0..keys {
                        let start = now_ns();
                        let v = version(key).await;
                        recorder.read(key, v, start, now_ns());
                    }
                    if let Some(pause) = pause {
                        // Shorter than tokio's timer tick (1 ms): blocks this
                        // worker, as a request's own work would.
                        std::thread::sleep(pause);
                    }
                }
                recorder.finish()
            })
        })
        .collect();
    let mut segments = Vec::new();
    for task in tasks {
        segments.extend(task.await.expect("a reader task"));
    }
    let stats = cache.stats();
    let counters: Vec<(String, u64)> = [
        ("local_hits", stats.local_hits - start_stats.local_hits),
        (
            "local_epoch_bumps",
            stats.local_epoch_bumps - start_stats.local_epoch_bumps,
        ),
        (
            "local_fence_rejections",
            stats.local_fence_rejections - start_stats.local_fence_rejections,
        ),
        ("hits", stats.hits - start_stats.hits),
        ("misses", stats.misses - start_stats.misses),
        ("errors", stats.errors - start_stats.errors),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v))
    .collect();
    coherence::format_reader(&segments, &counters)
}

// ---------------------------------------------------------------------------
// The parent's side
// ---------------------------------------------------------------------------

/// How to run this binary again as a child.
#[derive(Clone, Debug)]
pub struct Launcher {
    args: Vec<String>,
}

impl Launcher {
    /// A test binary: run only the test `name`, which must call
    /// [`run_child_if_asked`] first.
    pub fn test(name: &str) -> Launcher {
        Launcher {
            args: ["--exact", name, "--nocapture", "--test-threads=1"]
                .map(str::to_owned)
                .to_vec(),
        }
    }

    /// A binary whose `main` calls [`run_child_if_asked`] first.
    pub fn main() -> Launcher {
        Launcher { args: Vec::new() }
    }
}

/// A running child, killed if dropped before it finished.
pub struct ChildProcess {
    pub name: String,
    pub role: Role,
    pub log: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    ready: mpsc::Receiver<String>,
}

impl ChildProcess {
    /// Starts this binary again as `role`, logging to `log`.
    pub fn spawn(
        launcher: &Launcher,
        role: Role,
        name: &str,
        setup: &Setup,
        log: PathBuf,
    ) -> ChildProcess {
        let exe = std::env::current_exe().expect("this binary's path");
        let mut command = Command::new(exe);
        command
            .args(&launcher.args)
            .env(ROLE_ENV, role.as_str())
            .env(NAME_ENV, name)
            .env(LOG_ENV, &log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        setup.to_env(&mut command);
        let mut child = command.spawn().expect("run this binary as a child");
        let stdout = child.stdout.take().expect("the child's stdout");
        let (tx, ready) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Anywhere in the line: the test harness may print first.
                if let Some((_, detail)) = line.split_once(READY) {
                    let _ = tx.send(detail.trim().to_owned());
                }
            }
        });
        ChildProcess {
            name: name.to_owned(),
            role,
            log,
            stdin: child.stdin.take(),
            child,
            ready,
        }
    }

    /// Waits for the ready line; returns what follows `COHERENCE-READY`.
    pub fn wait_ready(&mut self, timeout: Duration) -> String {
        match self.ready.recv_timeout(timeout) {
            Ok(detail) => detail,
            Err(_) => {
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "{} was not ready within {timeout:?} (exit status: {status:?})",
                    self.name
                )
            }
        }
    }

    /// Tells the child when to start and to stop.
    pub fn start(&mut self, start_ns: u64, end_ns: u64) {
        let stdin = self.stdin.as_mut().expect("the child's stdin is open");
        writeln!(stdin, "start {start_ns} {end_ns}").expect("write the start line");
        stdin.flush().expect("flush the start line");
    }

    /// Waits (at most `timeout`) for the child to exit successfully.
    pub fn finish(&mut self, timeout: Duration) {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        let status: ExitStatus = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not finish within {timeout:?}", self.name);
            }
            thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "{} failed: {status}", self.name);
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
