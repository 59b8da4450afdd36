//! Races between memoized calls and the operations that change what they
//! should return: invalidations, refreshes and sets during a computation,
//! cancelled and panicking lock holders, a blocking call on the thread of the
//! computing task, followers of a leader that stores nothing, and how calls
//! are counted (issue 11).
//!
//! Every scenario runs on its own thread under a watchdog, so a hang fails
//! the test with a message instead of stalling the run. The races are run
//! many times over distinct keys; each test prints how often the race was
//! actually exercised and how often the promise was broken.
//!
//! The model of most tests: a "database" holds a version per key; the
//! memoized body reads the current version when it starts, takes a while and
//! returns the version it read. A value computed from data older than a
//! completed invalidate is a violation.

#[path = "support/mod.rs"]
mod support;

#[path = "support/cluster.rs"]
mod cluster_support;

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cache_memoize::{cache_memoize, stats, Cache, LockSettings};
use tokio::sync::oneshot;

// ---------------------------------------------------------------------------
// Harness: watchdogs, runtimes, caches
// ---------------------------------------------------------------------------

/// How long a computation of the versioned body takes (unless a test says
/// otherwise for one key).
const BODY: Duration = Duration::from_millis(40);
/// When, after a call started, the test changes the data and invalidates.
const MID_COMPUTATION: Duration = Duration::from_millis(10);
/// Runs of each row-1 race, over as many distinct keys.
const RUNS: usize = 1_000;
/// Runs in flight at once.
const BATCH: usize = 50;

/// Runs `scenario` on its own thread; a scenario that has not finished after
/// `limit` fails the test (the thread is left behind: it may be deadlocked).
fn watchdog<T: Send + 'static>(
    limit: Duration,
    what: &str,
    scenario: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, finished) = mpsc::channel();
    let worker = thread::Builder::new()
        .name(what.to_owned())
        .spawn(move || {
            let _ = done.send(scenario());
        })
        .expect("spawn the scenario thread");
    match finished.recv_timeout(limit) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => {
            panic!("{what}: no result after {limit:?} — the scenario hangs (deadlock?)")
        }
        Err(RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the scenario thread ended without a result or a panic"),
        },
    }
}

/// [`watchdog`] around an async scenario on a fresh two-worker runtime.
fn on_runtime<T, Fut>(
    limit: Duration,
    what: &str,
    scenario: impl FnOnce() -> Fut + Send + 'static,
) -> T
where
    T: Send + 'static,
    Fut: Future<Output = T>,
{
    watchdog(limit, what, move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(scenario())
    })
}

/// A cache key prefix unique to this test and this run.
fn unique_prefix(test: &str) -> String {
    format!("races-{}-{test}", std::process::id())
}

/// The stampede lock settings of every Redis cache here: a 10 s lock.
fn lock_settings() -> LockSettings {
    let mut lock = LockSettings::default();
    lock.ttl = Duration::from_secs(10);
    lock
}

fn redis_cache(url: &str, prefix: &str) -> Cache {
    Cache::builder()
        .url(url)
        .prefix(prefix)
        .stampede_lock(lock_settings())
        .build()
        .expect("a valid Redis cache configuration")
}

fn cluster_cache(urls: Vec<String>, prefix: &str) -> Cache {
    Cache::builder()
        .cluster_urls(urls)
        .prefix(prefix)
        .response_timeout(Duration::from_secs(2))
        .stampede_lock(lock_settings())
        .build()
        .expect("a valid cluster cache configuration")
}

/// Polls `condition` every millisecond for at most `limit`.
async fn eventually(limit: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    condition()
}

// ---------------------------------------------------------------------------
// The versioned "database" and the memoized functions that read it
// ---------------------------------------------------------------------------

/// Keys of the in-process database.
const KEYS: usize = RUNS;

/// The data memoized bodies read: a version per key.
#[derive(Clone)]
enum Db {
    /// In this process; a key may also have its own computation time.
    Local(Arc<LocalDb>),
    /// In Redis under `{prefix}:{key}`, read and bumped with the raw client,
    /// so another process can change it.
    Redis { url: String, prefix: String },
}

struct LocalDb {
    versions: Vec<AtomicU64>,
    /// Milliseconds a computation that starts now takes; 0: [`BODY`].
    compute_ms: Vec<AtomicU64>,
}

impl Db {
    fn local() -> Db {
        Db::Local(Arc::new(LocalDb {
            versions: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
            compute_ms: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
        }))
    }

    /// The current version of `key` and how long a computation takes now.
    async fn read(&self, key: u64) -> (u64, Duration) {
        match self {
            Db::Local(db) => {
                let version = db.versions[key as usize].load(Ordering::SeqCst);
                let ms = db.compute_ms[key as usize].load(Ordering::SeqCst);
                let time = if ms == 0 {
                    BODY
                } else {
                    Duration::from_millis(ms)
                };
                (version, time)
            }
            Db::Redis { url, prefix } => {
                let (url, db_key) = (url.clone(), format!("{prefix}:{key}"));
                let reply = tokio::task::spawn_blocking(move || {
                    support::redis_cmd_url(&url, &[b"GET", db_key.as_bytes()])
                })
                .await
                .expect("the raw GET of the database key");
                let version = reply
                    .as_str()
                    .map_or(0, |text| text.parse().expect("a version number"));
                (version, BODY)
            }
        }
    }

    /// Changes the data of `key`: its new version.
    async fn bump(&self, key: u64) -> u64 {
        match self {
            Db::Local(db) => db.versions[key as usize].fetch_add(1, Ordering::SeqCst) + 1,
            Db::Redis { url, prefix } => {
                let (url, db_key) = (url.clone(), format!("{prefix}:{key}"));
                let reply = tokio::task::spawn_blocking(move || {
                    support::redis_cmd_url(&url, &[b"INCR", db_key.as_bytes()])
                })
                .await
                .expect("the raw INCR of the database key");
                reply.as_int().expect("INCR answers an integer") as u64
            }
        }
    }

    /// Computations of `key` that start from now on take `time`.
    fn set_compute_time(&self, key: u64, time: Duration) {
        let Db::Local(db) = self else {
            panic!("only the in-process database has per-key computation times")
        };
        db.compute_ms[key as usize].store(time.as_millis() as u64, Ordering::SeqCst);
    }

    /// The memoized body: reads the version, takes its time, returns what it read.
    async fn compute(&self, key: u64) -> u64 {
        let (version, time) = self.read(key).await;
        tokio::time::sleep(time).await;
        version
    }
}

/// A service memoizing reads of the database in its own cache (another
/// `Catalog` on another `Cache` stands for another process).
struct Catalog {
    cache: Cache,
    db: Db,
}

impl Catalog {
    fn new(cache: Cache, db: Db) -> Arc<Catalog> {
        Arc::new(Catalog { cache, db })
    }

    #[cache_memoize(cache = self.cache, prefix = "races::version", ttl = 60)]
    async fn version(&self, key: u64) -> u64 {
        self.db.compute(key).await
    }

    #[cache_memoize(cache = self.cache, prefix = "races::version_locked", ttl = 60, lock = true)]
    async fn version_locked(&self, key: u64) -> u64 {
        self.db.compute(key).await
    }

    async fn call(&self, key: u64, lock: bool) -> u64 {
        if lock {
            self.version_locked(key).await
        } else {
            self.version(key).await
        }
    }

    async fn invalidate(&self, key: u64, lock: bool) -> bool {
        if lock {
            self.version_locked_invalidate(key).await
        } else {
            self.version_invalidate(key).await
        }
    }
}

/// Who changes the data and invalidates: a catalog in this process, or
/// another OS process.
#[derive(Clone)]
enum Writer {
    Catalog(Arc<Catalog>),
    Process(Arc<InvalidatorProcess>),
}

impl Writer {
    /// Bumps the version of `key`, then invalidates it; the new version once
    /// the invalidate has returned.
    async fn bump_and_invalidate(&self, key: u64, lock: bool) -> u64 {
        match self {
            Writer::Catalog(catalog) => {
                let new = catalog.db.bump(key).await;
                catalog.invalidate(key, lock).await;
                new
            }
            Writer::Process(process) => process.bump_and_invalidate(key).await,
        }
    }
}

// ---------------------------------------------------------------------------
// Runs of a race and their verdict
// ---------------------------------------------------------------------------

/// One run of a race on one key.
struct Run {
    key: u64,
    /// What the call in flight during the change returned.
    first: u64,
    /// The version after the change (returned by the invalidating side).
    new: u64,
    /// What the call checked afterwards returned.
    seen: u64,
    /// Whether the change completed while the first call was still
    /// computing from the older data (the race really happened).
    raced: bool,
}

/// Runs `one(key)` for keys `0..runs`, [`BATCH`] at a time, concurrently
/// in the calling task (not spawned: the future of an async fn's
/// `foo_invalidate` is not `Send`, since it holds its key parts across an
/// await).
async fn batched<F, Fut>(runs: usize, one: F) -> Vec<Run>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Run>,
{
    let mut done = Vec::with_capacity(runs);
    for start in (0..runs).step_by(BATCH) {
        let batch = (start..(start + BATCH).min(runs)).map(|key| one(key as u64));
        done.extend(futures::future::join_all(batch).await);
    }
    done
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Run {
            key,
            first,
            new,
            seen,
            raced,
        } = self;
        write!(
            f,
            "key {key}: first call {first}, version after the change {new}, then {seen} \
             (raced: {raced})"
        )
    }
}

/// Prints what happened and fails on any stale value.
fn verdict(label: &str, promise: &str, runs: &[Run]) {
    let raced = runs.iter().filter(|r| r.raced).count();
    let stale: Vec<&Run> = runs.iter().filter(|r| r.seen < r.new).collect();
    println!(
        "{label}: {} runs; the change completed while the first call was computing in {raced}; \
         stale value afterwards in {}",
        runs.len(),
        stale.len()
    );
    assert!(
        stale.is_empty(),
        "{label}: {promise}, but {} of {} runs returned a value computed from older data \
         (the race was exercised in {raced} runs); first ones: {:?}",
        stale.len(),
        runs.len(),
        &stale[..stale.len().min(3)]
    );
    assert!(
        raced > 0,
        "{label}: the race never happened in {} runs (every first call finished before the \
         change), so this run proves nothing",
        runs.len()
    );
}

/// Row 1: a call computes; mid-computation the data changes and the key is
/// invalidated (by `writer`); once both are done, the next call of `reader`
/// must return the new version.
async fn invalidate_while_computing(
    reader: Arc<Catalog>,
    writer: Writer,
    lock: bool,
    runs: usize,
) -> Vec<Run> {
    batched(runs, move |key| {
        let (reader, writer) = (reader.clone(), writer.clone());
        async move {
            let first = tokio::spawn({
                let reader = reader.clone();
                async move { reader.call(key, lock).await }
            });
            tokio::time::sleep(MID_COMPUTATION).await;
            let new = writer.bump_and_invalidate(key, lock).await;
            let still_computing = !first.is_finished();
            let first = first.await.expect("the first call");
            let seen = reader.call(key, lock).await;
            Run {
                key,
                first,
                new,
                seen,
                raced: still_computing && first < new,
            }
        }
    })
    .await
}

const AFTER_INVALIDATE: &str =
    "after an invalidate returned, the next call must not return a value \
                                computed from data older than the invalidate";

fn redis_catalogs(test: &str) -> (Arc<support::TestRedis>, Arc<Catalog>, Arc<Catalog>) {
    let redis = support::shared_redis();
    let prefix = unique_prefix(test);
    let db = Db::local();
    let first = Catalog::new(redis_cache(redis.url(), &prefix), db.clone());
    let second = Catalog::new(redis_cache(redis.url(), &prefix), db);
    (redis, first, second)
}

// ---------------------------------------------------------------------------
// Row 1: an invalidate during a computation
// ---------------------------------------------------------------------------

/// Row 1 (a): one cache.
#[test]
fn an_invalidate_during_a_computation_is_never_undone_by_its_store() {
    let (_redis, catalog, _) = redis_catalogs("inv-same");
    let runs = on_runtime(Duration::from_secs(120), "row1a", move || {
        invalidate_while_computing(catalog.clone(), Writer::Catalog(catalog), false, RUNS)
    });
    verdict("row 1 (a) same cache", AFTER_INVALIDATE, &runs);
}

/// Row 1 (b): the invalidate goes through a second cache on the same Redis
/// and prefix ("another process").
#[test]
fn an_invalidate_through_another_cache_during_a_computation_is_never_undone() {
    let (_redis, reader, writer) = redis_catalogs("inv-other");
    let runs = on_runtime(Duration::from_secs(120), "row1b", move || {
        invalidate_while_computing(reader, Writer::Catalog(writer), false, RUNS)
    });
    verdict("row 1 (b) another cache", AFTER_INVALIDATE, &runs);
}

/// Row 1 (d) of (a): with `lock = true`.
#[test]
fn with_the_lock_an_invalidate_during_a_computation_is_never_undone() {
    let (_redis, catalog, _) = redis_catalogs("inv-same-lock");
    let runs = on_runtime(Duration::from_secs(120), "row1da", move || {
        invalidate_while_computing(catalog.clone(), Writer::Catalog(catalog), true, RUNS)
    });
    verdict("row 1 (d) same cache, lock = true", AFTER_INVALIDATE, &runs);
}

/// Row 1 (d) of (b): with `lock = true`, invalidated through another cache.
#[test]
fn with_the_lock_an_invalidate_through_another_cache_is_never_undone() {
    let (_redis, reader, writer) = redis_catalogs("inv-other-lock");
    let runs = on_runtime(Duration::from_secs(120), "row1db", move || {
        invalidate_while_computing(reader, Writer::Catalog(writer), true, RUNS)
    });
    verdict(
        "row 1 (d) another cache, lock = true",
        AFTER_INVALIDATE,
        &runs,
    );
}

/// Row 1 (f): a caller that arrives after the invalidate returned must not
/// join the computation that started before it.
#[test]
fn a_caller_arriving_after_an_invalidate_never_joins_the_older_computation() {
    let (_redis, catalog, _) = redis_catalogs("inv-join");
    let runs = on_runtime(Duration::from_secs(120), "row1f", move || {
        batched(RUNS, move |key| {
            let catalog = catalog.clone();
            async move {
                let first = tokio::spawn({
                    let catalog = catalog.clone();
                    async move { catalog.version(key).await }
                });
                tokio::time::sleep(MID_COMPUTATION).await;
                let new = catalog.db.bump(key).await;
                catalog.version_invalidate(key).await;
                let still_computing = !first.is_finished();
                // Arrives after the invalidate returned, while the first call computes.
                let seen = catalog.version(key).await;
                let first = first.await.expect("the first call");
                Run {
                    key,
                    first,
                    new,
                    seen,
                    raced: still_computing && first < new,
                }
            }
        })
    });
    verdict(
        "row 1 (f) late caller",
        "a call that starts after an invalidate returned must not share the computation \
         that started before it",
        &runs,
    );
}

/// Row 1 (h): a call that read the data before `foo_refresh` must not
/// overwrite the refreshed (newer) value when it finishes later.
#[test]
fn an_older_computation_never_overwrites_a_newer_refresh() {
    let (_redis, catalog, _) = redis_catalogs("refresh");
    let runs = on_runtime(Duration::from_secs(120), "row1h", move || {
        batched(RUNS, move |key| {
            let catalog = catalog.clone();
            async move {
                // The first call reads version 0 and takes 40 ms; the refresh
                // reads version 1 and takes 1 ms, so it stores first.
                catalog.db.set_compute_time(key, BODY);
                let first = tokio::spawn({
                    let catalog = catalog.clone();
                    async move { catalog.version(key).await }
                });
                tokio::time::sleep(MID_COMPUTATION).await;
                catalog.db.set_compute_time(key, Duration::from_millis(1));
                let new = catalog.db.bump(key).await;
                let refreshed = catalog.version_refresh(key).await;
                assert_eq!(refreshed, new, "the refresh computes from the new data");
                let still_computing = !first.is_finished();
                let first = first.await.expect("the first call");
                let seen = catalog.version(key).await;
                Run {
                    key,
                    first,
                    new,
                    seen,
                    raced: still_computing && first < new,
                }
            }
        })
    });
    verdict(
        "row 1 (h) refresh",
        "after foo_refresh returned a newer value, an older computation must not replace it",
        &runs,
    );
}

// --- (g): a lookup after a completed set/delete ------------------------------

/// Rounds of the hot-key race, and the longest it may take.
const HOT_ROUNDS: u64 = 3_000;
const HOT_TIME: Duration = Duration::from_secs(10);

/// What the lookup after a write must return.
enum After {
    /// This value (the one just set).
    Is(u64),
    /// Anything but this value (the one just deleted).
    IsNot(u64),
}

/// Readers keep lookups of `"hot"` in flight while the test writes it and
/// then looks it up itself; `write(round)` changes the entry and says what
/// the test's own lookup must return. Returns (rounds, stale lookups,
/// examples as (round, seen)).
async fn lookups_after_writes<W, Fut>(cache: Cache, write: W) -> (u64, u64, Vec<(u64, u64)>)
where
    W: Fn(Cache, u64) -> Fut,
    Fut: Future<Output = After>,
{
    cache
        .set("hot", &0u64, None)
        .await
        .expect("SET the hot key");
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..16)
        .map(|_| {
            let (cache, stop) = (cache.clone(), stop.clone());
            tokio::spawn(async move {
                // Bounded by `stop` and by a generous number of lookups.
                for _ in 0..10_000_000u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let _: u64 = cache
                        .get_or_compute("hot", None, || async { u64::MAX })
                        .await;
                }
            })
        })
        .collect();
    let started = Instant::now();
    let (mut rounds, mut stale, mut examples) = (0, 0, Vec::new());
    for round in 1..=HOT_ROUNDS {
        if started.elapsed() > HOT_TIME {
            break;
        }
        let after = write(cache.clone(), round).await;
        let seen: u64 = cache
            .get_or_compute("hot", None, || async { u64::MAX })
            .await;
        rounds += 1;
        let fresh = match after {
            After::Is(value) => seen == value,
            After::IsNot(value) => seen != value,
        };
        if !fresh {
            stale += 1;
            if examples.len() < 3 {
                examples.push((round, seen));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.expect("a reader");
    }
    (rounds, stale, examples)
}

/// Row 1 (g), `set`: a lookup that starts after `set` returned must see the
/// new value, never the reply of a GET sent before it.
#[test]
fn a_lookup_after_a_completed_set_never_shares_an_older_read() {
    let redis = support::shared_redis();
    let cache = redis_cache(redis.url(), &unique_prefix("hot-set"));
    let (rounds, stale, examples) = on_runtime(Duration::from_secs(60), "row1g-set", move || {
        lookups_after_writes(cache, |cache, round| async move {
            cache.set("hot", &round, None).await.expect("SET");
            After::Is(round)
        })
    });
    println!(
        "row 1 (g) set: {rounds} rounds, the lookup after a completed set returned another \
         value than the one set in {stale}"
    );
    assert_eq!(
        stale, 0,
        "a lookup that started after set(\"hot\", round) returned must see `round`, but it \
         returned another (the previous) value in {stale} of {rounds} rounds (round, seen): \
         {examples:?}"
    );
}

/// Row 1 (g), `delete`: a lookup that starts after `delete` returned must
/// not return the deleted value.
#[test]
fn a_lookup_after_a_completed_delete_never_shares_an_older_read() {
    let redis = support::shared_redis();
    let cache = redis_cache(redis.url(), &unique_prefix("hot-del"));
    let (rounds, stale, examples) = on_runtime(Duration::from_secs(60), "row1g-del", move || {
        lookups_after_writes(cache, |cache, round| async move {
            cache.set("hot", &round, None).await.expect("SET");
            cache.delete("hot").await.expect("DEL");
            After::IsNot(round)
        })
    });
    println!(
        "row 1 (g) delete: {rounds} rounds, the lookup after a completed delete returned the \
         deleted value in {stale}"
    );
    assert_eq!(
        stale, 0,
        "a lookup that started after delete(\"hot\") returned must not see the deleted value, \
         but it did in {stale} of {rounds} rounds (round, seen): {examples:?}"
    );
}

// --- (c): the invalidate in another OS process ------------------------------

/// The environment of the invalidating child process.
const CHILD_ROLE: &str = "RACES_CHILD_ROLE";
const CHILD_URL: &str = "RACES_CHILD_REDIS_URL";
const CHILD_PREFIX: &str = "RACES_CHILD_PREFIX";
/// Lines the child writes when an invalidate returned: `{DONE}{key} {version}`.
const DONE: &str = "RACES-DONE ";
const CROSS_PROCESS_TEST: &str =
    "an_invalidate_in_another_process_during_a_computation_is_never_undone";

/// This test binary, run again as a process that bumps the database and
/// invalidates, one key per line on its stdin.
struct InvalidatorProcess {
    child: Mutex<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<u64>>>>,
}

impl InvalidatorProcess {
    fn start(url: &str, prefix: &str) -> InvalidatorProcess {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                CROSS_PROCESS_TEST,
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ROLE, "invalidator")
            .env(CHILD_URL, url)
            .env(CHILD_PREFIX, prefix)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("re-run the test binary as the invalidating process");
        let stdout = child.stdout.take().expect("the child's stdout");
        let stdin = child.stdin.take();
        let waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<u64>>>> = Arc::default();
        let answers = waiting.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Anywhere in the line: the first one follows the harness's
                // "test … " on the same line; other lines are the harness's.
                let Some((_, done)) = line.split_once(DONE) else {
                    continue;
                };
                let mut fields = done.split(' ').map(|f| f.parse::<u64>().expect("a number"));
                let (key, version) = (fields.next().unwrap(), fields.next().unwrap());
                if let Some(answer) = answers.lock().unwrap().remove(&key) {
                    let _ = answer.send(version);
                }
            }
        });
        InvalidatorProcess {
            child: Mutex::new(child),
            stdin: Mutex::new(stdin),
            waiting,
        }
    }

    async fn bump_and_invalidate(&self, key: u64) -> u64 {
        let (answer, answered) = oneshot::channel();
        self.waiting.lock().unwrap().insert(key, answer);
        {
            let mut stdin = self.stdin.lock().unwrap();
            let stdin = stdin.as_mut().expect("the child's stdin is open");
            writeln!(stdin, "{key}").expect("write to the invalidating process");
            stdin.flush().expect("flush to the invalidating process");
        }
        tokio::time::timeout(Duration::from_secs(10), answered)
            .await
            .expect("the invalidating process answers within 10 s")
            .expect("the invalidating process is alive")
    }

    /// Closes its stdin and waits (at most 10 s) for it to exit cleanly.
    fn finish(&self) {
        drop(self.stdin.lock().unwrap().take());
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut child = self.child.lock().unwrap();
        loop {
            if let Some(status) = child.try_wait().expect("wait for the child") {
                assert!(
                    status.success(),
                    "the invalidating process failed: {status}"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the invalidating process did not exit within 10 s of its stdin closing"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for InvalidatorProcess {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The child's side: for each key read from stdin, bump it and invalidate
/// it through this process's own cache, then say so on stdout.
fn invalidator_process() {
    let url = std::env::var(CHILD_URL).expect("the Redis URL from the parent");
    let prefix = std::env::var(CHILD_PREFIX).expect("the prefix from the parent");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let db = Db::Redis {
            url: url.clone(),
            prefix: format!("{prefix}-db"),
        };
        let catalog = Catalog::new(redis_cache(&url, &prefix), db);
        let (keys, mut incoming) = tokio::sync::mpsc::unbounded_channel::<u64>();
        thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                let Ok(key) = line.trim().parse() else {
                    continue;
                };
                if keys.send(key).is_err() {
                    break;
                }
            }
        });
        // Local tasks: the future of `foo_invalidate` is not `Send`.
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let mut tasks = Vec::new();
                while let Some(key) = incoming.recv().await {
                    let catalog = catalog.clone();
                    tasks.push(tokio::task::spawn_local(async move {
                        let new = catalog.db.bump(key).await;
                        catalog.version_invalidate(key).await;
                        println!("{DONE}{key} {new}");
                    }));
                }
                for task in tasks {
                    task.await.expect("an invalidation in the child");
                }
            })
            .await;
    });
}

/// Row 1 (c): the data changes and the key is invalidated by another OS
/// process (this binary, run again) while this process computes.
#[test]
fn an_invalidate_in_another_process_during_a_computation_is_never_undone() {
    if std::env::var_os(CHILD_ROLE).is_some() {
        return invalidator_process();
    }
    let redis = support::shared_redis();
    let (url, prefix) = (redis.url().to_owned(), unique_prefix("inv-process"));
    let runs = on_runtime(Duration::from_secs(120), "row1c", move || async move {
        let process = Arc::new(InvalidatorProcess::start(&url, &prefix));
        let db = Db::Redis {
            url: url.clone(),
            prefix: format!("{prefix}-db"),
        };
        let reader = Catalog::new(redis_cache(&url, &prefix), db);
        let runs =
            invalidate_while_computing(reader, Writer::Process(process.clone()), false, RUNS).await;
        process.finish();
        runs
    });
    verdict("row 1 (c) another process", AFTER_INVALIDATE, &runs);
}

// --- (e): on the local 3-master cluster ---------------------------------------

fn cluster_catalogs(
    test: &str,
) -> (
    Arc<cluster_support::LocalCluster>,
    Arc<Catalog>,
    Arc<Catalog>,
) {
    let cluster = cluster_support::shared_cluster();
    let prefix = unique_prefix(test);
    let db = Db::local();
    let first = Catalog::new(cluster_cache(cluster.urls(), &prefix), db.clone());
    let second = Catalog::new(cluster_cache(cluster.urls(), &prefix), db);
    (cluster, first, second)
}

/// Row 1 (e) of (a): one cache on a Redis Cluster.
#[test]
fn on_a_cluster_an_invalidate_during_a_computation_is_never_undone() {
    let (_cluster, catalog, _) = cluster_catalogs("cl-inv-same");
    let runs = on_runtime(Duration::from_secs(120), "row1ea", move || {
        invalidate_while_computing(catalog.clone(), Writer::Catalog(catalog), false, RUNS)
    });
    verdict("row 1 (e) cluster, same cache", AFTER_INVALIDATE, &runs);
}

/// Row 1 (e) of (b): invalidated through another cache on the cluster.
#[test]
fn on_a_cluster_an_invalidate_through_another_cache_is_never_undone() {
    let (_cluster, reader, writer) = cluster_catalogs("cl-inv-other");
    let runs = on_runtime(Duration::from_secs(120), "row1eb", move || {
        invalidate_while_computing(reader, Writer::Catalog(writer), false, RUNS)
    });
    verdict("row 1 (e) cluster, another cache", AFTER_INVALIDATE, &runs);
}

/// Row 1 (e) of (d): `lock = true` on the cluster, invalidated through
/// another cache.
#[test]
fn on_a_cluster_with_the_lock_an_invalidate_through_another_cache_is_never_undone() {
    let (_cluster, reader, writer) = cluster_catalogs("cl-inv-other-lock");
    let runs = on_runtime(Duration::from_secs(120), "row1ed", move || {
        invalidate_while_computing(reader, Writer::Catalog(writer), true, RUNS)
    });
    verdict(
        "row 1 (e) cluster, another cache, lock = true",
        AFTER_INVALIDATE,
        &runs,
    );
}

// ---------------------------------------------------------------------------
// Row 2: a lock holder that goes away
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Holder {
    /// Computes for a minute (the test cancels it).
    Hangs,
    /// Panics once it holds the lock.
    Panics,
    /// Returns at once.
    Quick,
}

/// A service memoizing with `lock = true` (lock ttl 10 s).
struct Report {
    cache: Cache,
    holder: Holder,
    started: AtomicBool,
}

impl Report {
    #[cache_memoize(cache = self.cache, prefix = "races::report", ttl = 60, lock = true)]
    async fn report(&self, id: u64) -> u64 {
        self.started.store(true, Ordering::SeqCst);
        match self.holder {
            Holder::Hangs => tokio::time::sleep(Duration::from_secs(60)).await,
            Holder::Panics => panic!("the report body failed (on purpose)"),
            Holder::Quick => {}
        }
        id * 2
    }
}

/// The lock holder goes away (`leave` is given it and returns once it is
/// gone); then a caller on another cache asks for the same key: how long it
/// took.
fn after_the_lock_holder_went_away<Fut>(
    test: &str,
    holder: Holder,
    leave: impl FnOnce(Arc<Report>) -> Fut + Send + 'static,
) -> Duration
where
    Fut: Future<Output = ()>,
{
    let redis = support::shared_redis();
    let (url, prefix) = (redis.url().to_owned(), unique_prefix(test));
    let elapsed = on_runtime(Duration::from_secs(40), test, move || async move {
        let first = Arc::new(Report {
            cache: redis_cache(&url, &prefix),
            holder,
            started: AtomicBool::new(false),
        });
        leave(first.clone()).await;
        assert!(
            first.started.load(Ordering::SeqCst),
            "the first caller took the lock and started computing"
        );
        let other = Report {
            cache: redis_cache(&url, &prefix),
            holder: Holder::Quick,
            started: AtomicBool::new(false),
        };
        let started = Instant::now();
        assert_eq!(other.report(21).await, 42);
        started.elapsed()
    });
    drop(redis);
    elapsed
}

/// Row 2: the computing caller's future is dropped while it holds the lock.
#[test]
fn a_cancelled_lock_holder_does_not_make_other_processes_wait_for_the_lock_ttl() {
    let elapsed =
        after_the_lock_holder_went_away("lock-cancel", Holder::Hangs, |first| async move {
            let cancelled =
                tokio::time::timeout(Duration::from_millis(300), first.report(21)).await;
            assert!(
                cancelled.is_err(),
                "the first call was cancelled mid-computation"
            );
        });
    println!("row 2 cancelled holder: the other process's call took {elapsed:?} (lock ttl 10 s)");
    assert!(
        elapsed < Duration::from_secs(5),
        "after the lock holder's call was cancelled, another process waited {elapsed:?} for the \
         same key: it sat out the 10 s lock instead of computing"
    );
}

/// Row 2: the body panics while its caller holds the lock.
#[test]
fn a_panicking_lock_holder_does_not_make_other_processes_wait_for_the_lock_ttl() {
    let elapsed =
        after_the_lock_holder_went_away("lock-panic", Holder::Panics, |first| async move {
            let joined = tokio::spawn(async move { first.report(21).await }).await;
            assert!(
                joined.as_ref().is_err_and(|e| e.is_panic()),
                "the first call panicked: {joined:?}"
            );
        });
    println!("row 2 panicking holder: the other process's call took {elapsed:?} (lock ttl 10 s)");
    assert!(
        elapsed < Duration::from_secs(5),
        "after the lock holder's body panicked, another process waited {elapsed:?} for the same \
         key: it sat out the 10 s lock instead of computing"
    );
}

// ---------------------------------------------------------------------------
// Row 4: a blocking call on the thread that must run the computing task
// ---------------------------------------------------------------------------

const DEADLOCK_WATCHDOG: Duration = Duration::from_secs(20);

/// On a `current_thread` runtime, a task computes `key` (200 ms); once it
/// is computing, the runtime's own thread makes a blocking memoized call of
/// the same key through `blocking`. Returns what the blocking call returned.
fn blocking_call_while_a_task_computes(
    what: &str,
    cache: impl FnOnce() -> Cache + Send + 'static,
    blocking: impl FnOnce(&Cache) -> u64 + Send + 'static,
) -> u64 {
    let message = format!(
        "{what}: a blocking memoized call made on the current_thread runtime's thread, while a \
         task of that runtime computes the same key,"
    );
    watchdog(DEADLOCK_WATCHDOG, &message, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current_thread runtime")
            .block_on(async move {
                let cache = cache();
                let computing = Arc::new(AtomicBool::new(false));
                let task = tokio::spawn({
                    let (cache, computing) = (cache.clone(), computing.clone());
                    async move {
                        cache
                            .get_or_compute("k", None, || async move {
                                computing.store(true, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                1u64
                            })
                            .await
                    }
                });
                assert!(
                    eventually(Duration::from_secs(5), || computing.load(Ordering::SeqCst)).await,
                    "the task started computing"
                );
                let value = blocking(&cache);
                assert_eq!(task.await.expect("the computing task"), 1);
                value
            })
    })
}

/// Row 4, in memory.
#[test]
fn a_blocking_call_on_the_thread_of_the_computing_task_returns_in_memory() {
    let value = blocking_call_while_a_task_computes("in memory", Cache::memory, |cache| {
        cache.get_or_compute_blocking("k", None, || 2u64)
    });
    println!("row 4 in memory: the blocking call returned {value}");
    assert!(value == 1 || value == 2);
}

/// Row 4, on Redis.
#[test]
fn a_blocking_call_on_the_thread_of_the_computing_task_returns_on_redis() {
    let redis = support::shared_redis();
    let (url, prefix) = (redis.url().to_owned(), unique_prefix("blocking"));
    let value = blocking_call_while_a_task_computes(
        "on Redis",
        move || redis_cache(&url, &prefix),
        |cache| cache.get_or_compute_blocking("k", None, || 2u64),
    );
    println!("row 4 on Redis: the blocking call returned {value}");
    assert!(value == 1 || value == 2);
}

/// An async and a plain memoized function with the same prefix and key, so
/// they share entries.
struct SharedKey {
    cache: Cache,
    computing: AtomicBool,
}

impl SharedKey {
    #[cache_memoize(cache = self.cache, prefix = "races::shared_key", ttl = 60)]
    async fn slow(&self, id: u64) -> u64 {
        self.computing.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        id
    }

    #[cache_memoize(cache = self.cache, prefix = "races::shared_key", ttl = 60)]
    fn plain(&self, id: u64) -> u64 {
        id + 1
    }
}

/// Row 4, through the attribute: the plain `fn` is called on the runtime's
/// thread while a task runs the `async fn` of the same key.
fn plain_fn_while_the_async_fn_computes(
    what: &str,
    cache: impl FnOnce() -> Cache + Send + 'static,
) -> u64 {
    let message = format!(
        "{what}: a plain memoized fn called on the current_thread runtime's thread, while a task \
         of that runtime computes an async fn of the same key,"
    );
    watchdog(DEADLOCK_WATCHDOG, &message, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current_thread runtime")
            .block_on(async move {
                let shared = Arc::new(SharedKey {
                    cache: cache(),
                    computing: AtomicBool::new(false),
                });
                assert_eq!(
                    shared.slow_cache_key(7),
                    shared.plain_cache_key(7),
                    "the two functions share the key"
                );
                let task = tokio::spawn({
                    let shared = shared.clone();
                    async move { shared.slow(7).await }
                });
                assert!(
                    eventually(Duration::from_secs(5), || shared
                        .computing
                        .load(Ordering::SeqCst))
                    .await,
                    "the async fn started computing"
                );
                let value = shared.plain(7);
                assert_eq!(task.await.expect("the computing task"), 7);
                value
            })
    })
}

/// Row 4 through the attribute, in memory.
#[test]
fn a_plain_memoized_fn_sharing_a_key_with_a_computing_async_fn_returns_in_memory() {
    let value = plain_fn_while_the_async_fn_computes("in memory", Cache::memory);
    println!("row 4 plain fn in memory: returned {value}");
    assert!(value == 7 || value == 8);
}

/// Row 4 through the attribute, on Redis.
#[test]
fn a_plain_memoized_fn_sharing_a_key_with_a_computing_async_fn_returns_on_redis() {
    let redis = support::shared_redis();
    let (url, prefix) = (redis.url().to_owned(), unique_prefix("plain-fn"));
    let value =
        plain_fn_while_the_async_fn_computes("on Redis", move || redis_cache(&url, &prefix));
    println!("row 4 plain fn on Redis: returned {value}");
    assert!(value == 7 || value == 8);
}

// ---------------------------------------------------------------------------
// Row 12: each call counted once
// ---------------------------------------------------------------------------

struct Counted {
    cache: Cache,
    runs: AtomicUsize,
}

impl Counted {
    #[cache_memoize(cache = self.cache, prefix = "races::counted", ttl = 60)]
    async fn lookup(&self, id: u64) -> Result<u64, String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if id == 99 {
            Err("99 is down".to_owned())
        } else {
            Ok(id * 10)
        }
    }
}

/// Row 12: every memoized call is one hit (answered without running the
/// body, a follower that got another caller's value included) or one miss
/// (ran the body), in `Cache::stats()` and in the function's stats alike.
#[test]
fn every_memoized_call_is_counted_once_as_a_hit_or_a_miss() {
    let redis = support::shared_redis();
    let (url, prefix) = (redis.url().to_owned(), unique_prefix("counted"));
    let (calls, runs, cache_stats) =
        on_runtime(Duration::from_secs(30), "row12", move || async move {
            let counted = Arc::new(Counted {
                cache: redis_cache(&url, &prefix),
                runs: AtomicUsize::new(0),
            });
            let mut calls = 0u64;
            // A first-time miss, then a hit.
            assert_eq!(counted.lookup(1).await, Ok(10));
            assert_eq!(counted.lookup(1).await, Ok(10));
            calls += 2;
            // Five concurrent callers of one missing key: one computation.
            let callers: Vec<_> = (0..5)
                .map(|_| {
                    let counted = counted.clone();
                    tokio::spawn(async move { counted.lookup(2).await })
                })
                .collect();
            for caller in callers {
                assert_eq!(caller.await.expect("a caller"), Ok(20));
            }
            calls += 5;
            // A refresh, then a hit.
            assert_eq!(counted.lookup_refresh(1).await, Ok(10));
            assert_eq!(counted.lookup(1).await, Ok(10));
            calls += 2;
            // An `Err`, not stored under the default policy.
            assert!(counted.lookup(99).await.is_err());
            calls += 1;
            (
                calls,
                counted.runs.load(Ordering::SeqCst) as u64,
                counted.cache.stats(),
            )
        });
    let function = stats::function_stats_of("races::counted").expect("the function's stats");
    let (hits, misses) = (calls - runs, runs);
    println!(
        "row 12: {calls} calls, the body ran {runs} times: expected hits {hits}, misses {misses}; \
         Cache::stats() hits {} misses {} (shared_computations {}); function_stats_of hits {} \
         misses {}",
        cache_stats.hits,
        cache_stats.misses,
        cache_stats.shared_computations,
        function.hits,
        function.misses
    );
    let counted = [
        ("Cache::stats()", cache_stats.hits, cache_stats.misses),
        ("function_stats_of", function.hits, function.misses),
    ];
    let wrong: Vec<String> = counted
        .iter()
        .filter(|(_, h, m)| (*h, *m) != (hits, misses))
        .map(|(name, h, m)| format!("{name} has hits {h} + misses {m} = {}", h + m))
        .collect();
    assert!(
        wrong.is_empty(),
        "{calls} memoized calls ({runs} ran the body) must be counted once each, as {hits} hits \
         and {misses} misses, by both counters; instead: {}",
        wrong.join("; ")
    );
}

// ---------------------------------------------------------------------------
// Row 13: followers of a leader that leaves nothing to share
// ---------------------------------------------------------------------------

/// How long one computation of a row-13 body takes.
const SLOW: Duration = Duration::from_millis(100);
const FOLLOWERS: usize = 10;

/// Bodies that record how many of them run at once.
struct Flaky {
    cache: Cache,
    running: AtomicUsize,
    max_running: AtomicUsize,
    runs: AtomicUsize,
}

/// One body running; counted down when it ends or is dropped.
struct Running<'a>(&'a Flaky);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Flaky {
    fn enter(&self) -> Running<'_> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        Running(self)
    }

    #[cache_memoize(cache = self.cache, prefix = "races::fails", ttl = 60)]
    async fn fails(&self, id: u64) -> Result<u64, String> {
        let _running = self.enter();
        tokio::time::sleep(SLOW).await;
        Err(format!("{id} is down"))
    }

    #[cache_memoize(cache = self.cache, prefix = "races::absent", ttl = 60, cache_none = false)]
    async fn absent(&self, id: u64) -> Option<u64> {
        let _running = self.enter();
        tokio::time::sleep(SLOW).await;
        let _ = id;
        None
    }

    #[cache_memoize(cache = self.cache, prefix = "races::eventually", ttl = 60)]
    async fn eventually_ok(&self, id: u64) -> u64 {
        let _running = self.enter();
        tokio::time::sleep(SLOW).await;
        id
    }
}

/// A leader starts `call`; once its body runs, ten followers call the same
/// key; the leader is cancelled after `leader_time` (if it has not finished).
/// Returns (the body's maximum concurrency, its runs, followers that shared).
fn followers_of_a_leader_without_a_value<Fut>(
    test: &str,
    leader_time: Duration,
    call: fn(Arc<Flaky>) -> Fut,
) -> (usize, usize, u64)
where
    Fut: Future + Send + 'static,
    Fut::Output: Send,
{
    let redis = support::shared_redis();
    let (url, prefix) = (redis.url().to_owned(), unique_prefix(test));
    on_runtime(Duration::from_secs(30), test, move || async move {
        let flaky = Arc::new(Flaky {
            cache: redis_cache(&url, &prefix),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            runs: AtomicUsize::new(0),
        });
        let leader = tokio::spawn({
            let flaky = flaky.clone();
            async move {
                let _ = tokio::time::timeout(leader_time, call(flaky)).await;
            }
        });
        assert!(
            eventually(Duration::from_secs(5), || flaky.runs.load(Ordering::SeqCst)
                == 1)
            .await,
            "the leader started computing"
        );
        let followers: Vec<_> = (0..FOLLOWERS)
            .map(|_| {
                let flaky = flaky.clone();
                tokio::spawn(async move {
                    call(flaky).await;
                })
            })
            .collect();
        leader.await.expect("the leader");
        for follower in followers {
            follower.await.expect("a follower");
        }
        (
            flaky.max_running.load(Ordering::SeqCst),
            flaky.runs.load(Ordering::SeqCst),
            flaky.cache.stats().shared_computations,
        )
    })
}

fn one_at_a_time(label: &str, (max_running, runs, shared): (usize, usize, u64)) {
    println!(
        "row 13 {label}: the body ran {runs} times, at most {max_running} at once \
         ({shared} callers waited for another's computation)"
    );
    assert_eq!(
        max_running, 1,
        "{label}: after the leader left nothing to share, its {FOLLOWERS} followers must take \
         over one at a time, but {max_running} bodies ran at once ({runs} runs in all)"
    );
}

/// Row 13: the leader returns `Err` (not stored under the default policy).
#[test]
fn after_a_leader_that_returned_an_error_followers_compute_one_at_a_time() {
    let outcome = followers_of_a_leader_without_a_value(
        "lead-err",
        Duration::from_secs(10),
        |f| async move { f.fails(1).await },
    );
    one_at_a_time("leader returned Err", outcome);
}

/// Row 13: the leader returns `None` with `cache_none = false`.
#[test]
fn after_a_leader_that_returned_an_uncached_none_followers_compute_one_at_a_time() {
    let outcome = followers_of_a_leader_without_a_value(
        "lead-none",
        Duration::from_secs(10),
        |f| async move { f.absent(1).await },
    );
    one_at_a_time("leader returned None (cache_none = false)", outcome);
}

/// Row 13: the leader is cancelled mid-computation.
#[test]
fn after_a_cancelled_leader_followers_compute_one_at_a_time() {
    let outcome = followers_of_a_leader_without_a_value("lead-cancel", SLOW / 2, |f| async move {
        f.eventually_ok(1).await
    });
    one_at_a_time("leader cancelled", outcome);
}

// ---------------------------------------------------------------------------
// Row 7: one time budget per call
// ---------------------------------------------------------------------------

/// Row 7: Redis stalls while a call (holding the lease, lock on) computes.
/// Its store times out; the rest of the call (giving the lease back) must
/// not pay a second timeout on the dead connection: the lease is released
/// in the background. Before: store + unlock, two timeouts in a row.
#[test]
fn a_call_pays_at_most_one_response_timeout_when_redis_stalls_mid_call() {
    const TIMEOUT: Duration = Duration::from_millis(500);
    let server = Arc::new(support::RedisServer::start());
    let cache = Cache::builder()
        .url(server.url())
        .prefix(unique_prefix("budget"))
        .connect_timeout(TIMEOUT)
        .response_timeout(TIMEOUT)
        .stampede_lock(lock_settings())
        .build()
        .expect("a valid Redis cache configuration");
    let paused = server.clone();
    let elapsed = on_runtime(Duration::from_secs(30), "row7", move || async move {
        cache.ping().await.expect("Redis answers before the stall");
        let started = Instant::now();
        let value: u64 = cache
            .memoize(
                "stalls",
                cache_memoize::CallOptions::ttl(None).locking(true),
                || async move {
                    paused.pause();
                    7
                },
                cache_memoize::store::always,
                |v| v,
            )
            .await;
        assert_eq!(value, 7, "the call returns its computed value");
        started.elapsed()
    });
    server.resume();
    println!("row 7: the call took {elapsed:?} with a {TIMEOUT:?} response timeout");
    // One timeout (the store), plus slack for a loaded machine; two
    // timeouts in a row would be at least 1 s.
    assert!(
        elapsed < TIMEOUT + Duration::from_millis(400),
        "the call paid more than one timeout: {elapsed:?}"
    );
}
