//! The Redis backend: deadpool-redis for connection management, shared
//! multiplexed connections for the requests themselves, a circuit breaker and
//! a time budget around every command.

use std::future::Future;
use std::time::Duration;

use deadpool_redis::redis::aio::ConnectionLike;
use deadpool_redis::redis::{self, RedisError};
use deadpool_redis::{Pool, PoolError, Runtime};

use super::node_breakers::{NodeBreakers, Route};
use super::shared_connection::{LeasePool, Leased, SharedConnection};
use crate::circuit_breaker::{BreakerSettings, BreakerState, PermitKind};
use crate::error::{Error, Result};
use crate::key::KeyMatcher;
use crate::redacted_url::RedactedUrl;

/// Writes of at least this many bytes go over the bulk lane.
const BULK_BYTES: usize = 64 * 1024;

/// A key and its encoded entry, as `set_many` takes them.
pub(super) type Entry = (String, std::sync::Arc<Vec<u8>>);

/// Which connection a command travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lane {
    Ordinary,
    Bulk,
}

impl Lane {
    /// The lane for a write of `bytes`.
    fn for_write(bytes: usize) -> Lane {
        if bytes >= BULK_BYTES {
            Lane::Bulk
        } else {
            Lane::Ordinary
        }
    }
}

/// How many keys one `SCAN` step asks for, and one `UNLINK` deletes.
const SCAN_BATCH: usize = 500;

/// Deletes the key only if it still holds our lease.
const RELEASE_LEASE: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
"#;

/// Replaces the value whose format-2 version token is ARGV[1] (8 bytes at
/// offset 5) by ARGV[2] (with PX ARGV[3] unless it is "0"): a refresh
/// replaces exactly the value it read, never a newer one, and nothing after
/// a delete.
const STORE_IF_VERSION: &str = r#"
local v = redis.call("GET", KEYS[1])
if v and string.byte(v, 1) == 202 and string.byte(v, 2) == 2 and string.sub(v, 6, 13) == ARGV[1] then
    if ARGV[3] == "0" then
        redis.call("SET", KEYS[1], ARGV[2])
    else
        redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
    end
    return 1
end
return 0
"#;

/// Extends our lease's expiry (ARGV[2] ms) while the key still holds it.
const RENEW_LEASE: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
"#;

/// Replaces our lease by the value (ARGV[2], with PX ARGV[3] unless it is
/// "0"), only if the key still holds the lease: a delete in the meantime
/// killed it, and then the value is not stored.
const STORE_LEASED: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    if ARGV[3] == "0" then
        redis.call("SET", KEYS[1], ARGV[2])
    else
        redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
    end
    return 1
end
return 0
"#;

pub(crate) struct RedisSettings {
    pub(crate) url: String,
    pub(crate) connections: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) breaker: BreakerSettings,
    /// PEM root certificates to trust for `rediss://` instead of the
    /// webpki roots (`CacheBuilder::tls_ca_file`).
    pub(crate) tls_ca: Option<Vec<u8>>,
    /// `WAIT replicas timeout` after every invalidation
    /// (`CacheBuilder::wait_for_replicas`).
    pub(crate) wait_for_replicas: Option<(u32, Duration)>,
}

/// One Redis server (`P` = deadpool-redis's [`Pool`]) or a Redis Cluster
/// (`P` = [`ClusterPool`](super::cluster::ClusterPool)): the same breaker,
/// leases, time budget and error mapping; the commands that differ
/// (`set_many`, `delete_matching`) live in an `impl` per kind.
pub(crate) struct RedisBackend<P: LeasePool = Pool> {
    pub(super) connections: SharedConnection<P>,
    /// One per Cluster master (see [`NodeBreakers`]), or one in all.
    breakers: std::sync::Arc<NodeBreakers>,
    url: RedactedUrl,
    response_timeout: Duration,
    connect_timeout: Duration,
    wait_for_replicas: Option<(u32, Duration)>,
    /// Whether a timed-out request drops its connection (Sentinel: the
    /// node may be a stalled old master, and only a new connection asks
    /// the sentinels where the master is now).
    pub(super) timeouts_break_connections: bool,
    release_lease: redis::Script,
    renew_lease: redis::Script,
    store_leased: redis::Script,
    store_if_version: redis::Script,
    /// Requests on the wire at once. Each costs redis-rs about 1 KB while
    /// it is in flight, so 10,000 concurrent calls would hold ~11 MB of
    /// request state; beyond this many, requests wait their turn (within
    /// the response timeout), which does not slow Redis down: 512 pipelined
    /// requests keep it busy.
    in_flight: tokio::sync::Semaphore,
}

/// See [`RedisBackend::in_flight`].
const MAX_IN_FLIGHT: usize = 512;

impl<P: LeasePool> std::fmt::Debug for RedisBackend<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.url)
            .field("response_timeout", &self.response_timeout)
            .field("breakers", &self.breakers)
            .finish_non_exhaustive()
    }
}

impl RedisBackend<Pool> {
    /// Validates the URL and sets up the pool; no connection is made yet.
    pub(crate) fn new(settings: RedisSettings) -> Result<Self> {
        let url = RedactedUrl::new(&settings.url);
        let invalid = |source| Error::InvalidUrl {
            url: url.clone(),
            source,
        };
        let info = connection_info(&settings.url, settings.tls_ca.as_deref()).map_err(invalid)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout));
        let manager = deadpool_redis::Manager::new_with_config(info, config).map_err(invalid)?;
        let connections = settings.connections.max(1);
        let pool = Pool::builder(manager)
            // Spare room so a broken connection can be replaced while the
            // others are leased.
            // Two sets of leases (callers' runtimes, the I/O runtime), plus
            // spare room so a broken connection can be replaced.
            .max_size((connections + 1) * 3)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.response_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let breakers = NodeBreakers::single(settings.breaker);
        Ok(Self::with_pool(pool, url, &settings, breakers))
    }
}

impl<P: LeasePool> RedisBackend<P>
where
    P::Conn: ConnectionLike,
{
    /// The backend over `pool`; no connection is made yet.
    pub(super) fn with_pool(
        pool: P,
        url: RedactedUrl,
        settings: &RedisSettings,
        breakers: NodeBreakers,
    ) -> Self {
        Self {
            connections: SharedConnection::new(pool, settings.connections.max(1)),
            breakers: std::sync::Arc::new(breakers),
            url,
            response_timeout: settings.response_timeout,
            connect_timeout: settings.connect_timeout,
            wait_for_replicas: settings.wait_for_replicas,
            timeouts_break_connections: false,
            release_lease: redis::Script::new(RELEASE_LEASE),
            renew_lease: redis::Script::new(RENEW_LEASE),
            store_if_version: redis::Script::new(STORE_IF_VERSION),
            store_leased: redis::Script::new(STORE_LEASED),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
        }
    }

    pub(crate) fn url(&self) -> &RedactedUrl {
        &self.url
    }

    /// The worst state of the breakers, and how many times they opened.
    pub(crate) fn breakers(&self) -> (BreakerState, u64) {
        self.breakers.summary()
    }

    /// Runs one command through the circuit breaker on a leased connection:
    /// at most `connect_timeout` waiting for a connection (only when one must
    /// be made) plus `response_timeout` (redis-rs's, per request) for the reply.
    /// `route` says whose breaker the command answers to (on a cluster, the
    /// master of its key's slot).
    pub(super) async fn run<T, F, Fut>(&self, route: Route<'_>, command: F) -> Result<T>
    where
        F: FnOnce(P::Conn) -> Fut,
        Fut: Future<Output = std::result::Result<T, RedisError>>,
    {
        self.run_on(Lane::Ordinary, route, command).await
    }

    async fn run_on<T, F, Fut>(&self, lane: Lane, route: Route<'_>, command: F) -> Result<T>
    where
        F: FnOnce(P::Conn) -> Fut,
        Fut: Future<Output = std::result::Result<T, RedisError>>,
    {
        let breaker = self.breakers.for_route(route);
        // A guard: when this future is dropped mid-call (cancelled), the
        // permit goes with it and a probe's slot is freed at once.
        let permit = breaker.permit();
        if permit.kind() == PermitKind::Skip {
            return Err(Error::Unavailable {
                url: self.url.clone(),
            });
        }
        let (_slot, budget) = match self.in_flight.try_acquire() {
            Ok(slot) => (slot, None),
            Err(_) => {
                let waiting = std::time::Instant::now();
                let slot = Box::pin(tokio::time::timeout(
                    self.response_timeout,
                    self.in_flight.acquire(),
                ))
                .await;
                match slot {
                    Ok(Ok(slot)) => (
                        slot,
                        Some(self.response_timeout.saturating_sub(waiting.elapsed())),
                    ),
                    _ => {
                        if permit.kind() == PermitKind::Probe {
                            permit.failure();
                        }
                        return Err(Error::Timeout {
                            url: self.url.clone(),
                            timeout: self.response_timeout,
                        });
                    }
                }
            }
        };
        let outcome = match budget {
            None => self.run_unguarded(lane, command).await,
            // Waited for a slot: the wait and the command share one timeout.
            Some(left) => Box::pin(tokio::time::timeout(
                left,
                self.run_unguarded(lane, command),
            ))
            .await
            .unwrap_or_else(|_| {
                Err(Error::Timeout {
                    url: self.url.clone(),
                    timeout: self.response_timeout,
                })
            }),
        };
        match &outcome {
            Ok(_) => permit.success(),
            Err(_) => permit.failure(),
        }
        outcome
    }

    async fn lease(&self, lane: Lane) -> Result<Leased<P::Conn>> {
        let slot = match lane {
            Lane::Ordinary => self.connections.pick_slot(),
            Lane::Bulk => self.connections.bulk_slot(),
        };
        if let Some(leased) = self.connections.current(slot) {
            return Ok(leased);
        }
        // Boxed: making a connection is a large state machine, and every
        // command future would otherwise carry its size (7 KB) while in flight.
        let renewed = Box::pin(tokio::time::timeout(
            self.connect_timeout,
            self.connections.renew(slot),
        ))
        .await
        .map_err(|_| Error::Timeout {
            url: self.url.clone(),
            timeout: self.connect_timeout,
        })?;
        renewed.map_err(|e| match e {
            PoolError::Timeout(_) => Error::Timeout {
                url: self.url.clone(),
                timeout: self.connect_timeout,
            },
            PoolError::Backend(e) if e.is_timeout() => Error::Timeout {
                url: self.url.clone(),
                timeout: self.connect_timeout,
            },
            PoolError::Backend(source) => Error::Connect {
                url: self.url.clone(),
                source,
            },
            // Closed, NoRuntimeSpecified, PostCreateHook: none happens here
            // (the pool is never closed, has a runtime and no hooks), and
            // deadpool's texts for them hold no URL.
            other => Error::Connect {
                url: self.url.clone(),
                source: RedisError::from((
                    redis::ErrorKind::Client,
                    "the connection pool failed",
                    other.to_string(),
                )),
            },
        })
    }

    async fn run_unguarded<T, F, Fut>(&self, lane: Lane, command: F) -> Result<T>
    where
        F: FnOnce(P::Conn) -> Fut,
        Fut: Future<Output = std::result::Result<T, RedisError>>,
    {
        let leased = self.lease(lane).await?;
        if self.breakers.claim_refresh() {
            // A cluster's slot map, for the per-master breakers: read in
            // the background, never on a caller's time.
            let breakers = self.breakers.clone();
            let conn = leased.conn.clone();
            tokio::spawn(async move {
                let ranges = P::slot_ranges(conn, breakers.nodes_to_ask()).await;
                breakers.refreshed(ranges);
            });
        }
        command(leased.conn.clone()).await.map_err(|e| {
            // READONLY: the node was demoted to a replica (a failover);
            // the next connection goes to the master.
            let demoted = e.code() == Some("READONLY");
            let broke = e.is_io_error()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
                || demoted;
            // A timeout is not a broken connection (redis-rs reports it as an
            // I/O error): on a cluster it may be one stalled node behind a
            // connection that reaches the others, and a new connection would
            // have to wait for that node too.
            if (broke && !e.is_timeout()) || (e.is_timeout() && self.timeouts_break_connections) {
                // It broke: detach it so the next request gets a new one.
                self.connections.discard(&leased);
            }
            if e.is_timeout() {
                Error::Timeout {
                    url: self.url.clone(),
                    timeout: self.response_timeout,
                }
            } else {
                Error::Command {
                    url: self.url.clone(),
                    source: e,
                }
            }
        })
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.run(Route::Key(key), |mut c| async move {
            redis::cmd("GET").arg(key).query_async(&mut c).await
        })
        .await
    }

    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_millis(ttl));
        }
        let lane = Lane::for_write(value.len());
        self.run_on(lane, Route::Key(key), |mut c| async move {
            cmd.query_async(&mut c).await
        })
        .await
    }

    /// `DEL`; with [`wait_for_replicas`](RedisSettings::wait_for_replicas),
    /// pipelined with `WAIT` on the same connection (so on the key's node),
    /// which answers once enough replicas have the delete.
    pub(crate) async fn delete(&self, key: &str) -> Result<bool> {
        let Some(wait) = self.wait_command() else {
            return self
                .run(Route::Key(key), |mut c| async move {
                    redis::cmd("DEL")
                        .arg(key)
                        .query_async::<u64>(&mut c)
                        .await
                        .map(|n| n > 0)
                })
                .await;
        };
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(key).add_command(wait);
        let (deleted, acked): (u64, u64) = self
            .run(Route::Key(key), |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        self.check_replicas(acked)?;
        Ok(deleted > 0)
    }

    /// `SET key value` (no ttl) that invalidates (a tag's new version): with
    /// [`wait_for_replicas`](RedisSettings::wait_for_replicas), pipelined
    /// with `WAIT` like [`delete`](Self::delete).
    pub(crate) async fn set_invalidating(&self, key: &str, value: &[u8]) -> Result<()> {
        let Some(wait) = self.wait_command() else {
            return self.set(key, value, None).await;
        };
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(key)
            .arg(value)
            .ignore()
            .add_command(wait);
        let (acked,): (u64,) = self
            .run(Route::Key(key), |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        self.check_replicas(acked)
    }

    /// `WAIT replicas timeout`, when invalidations are to wait for replicas.
    pub(super) fn wait_command(&self) -> Option<redis::Cmd> {
        let (replicas, timeout) = self.wait_for_replicas?;
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(ttl_millis(timeout));
        Some(wait)
    }

    /// An error unless `acked` replicas are enough.
    pub(super) fn check_replicas(&self, acked: u64) -> Result<()> {
        match self.wait_for_replicas {
            Some((wanted, _)) if acked < u64::from(wanted) => Err(Error::ReplicasBehind {
                url: self.url.clone(),
                acked,
                wanted,
            }),
            _ => Ok(()),
        }
    }

    /// `SET key lease [NX] PX ttl`: whether the lease is now in the key.
    pub(crate) async fn take_lease(
        &self,
        key: &str,
        lease: &[u8],
        ttl: Duration,
        overwrite: bool,
    ) -> Result<bool> {
        self.run(Route::Key(key), |mut c| async move {
            let mut set = redis::cmd("SET");
            set.arg(key).arg(lease).arg("PX").arg(ttl_millis(ttl));
            if !overwrite {
                set.arg("NX");
            }
            set.query_async::<Option<String>>(&mut c)
                .await
                .map(|reply| reply.is_some())
        })
        .await
    }

    /// Runs one of the compare-and-act scripts on `key` with the arguments
    /// `args` adds: whether it acted (each touches `key` only, so one slot).
    async fn compare_and(
        &self,
        lane: Lane,
        script: &redis::Script,
        key: &str,
        args: impl FnOnce(&mut redis::ScriptInvocation<'_>),
    ) -> Result<bool> {
        self.run_on(lane, Route::Key(key), |mut c| async move {
            let mut invocation = script.key(key);
            args(&mut invocation);
            invocation.invoke_async::<u64>(&mut c).await.map(|n| n > 0)
        })
        .await
    }

    /// Replaces `lease` by `value` if the key still holds it (one script):
    /// whether the value was stored.
    pub(crate) async fn store_leased(
        &self,
        key: &str,
        lease: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let px = ttl.map_or(0, ttl_millis);
        let lane = Lane::for_write(value.len());
        self.compare_and(lane, &self.store_leased, key, |script| {
            script.arg(lease).arg(value).arg(px);
        })
        .await
    }

    /// Replaces the value with version token `token` by `value`, if the key
    /// still holds it: whether it did.
    pub(crate) async fn store_if_version(
        &self,
        key: &str,
        token: u64,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let px = ttl.map_or(0, ttl_millis);
        let lane = Lane::for_write(value.len());
        self.compare_and(lane, &self.store_if_version, key, |script| {
            script.arg(&token.to_be_bytes()[..]).arg(value).arg(px);
        })
        .await
    }

    /// Extends the expiry of `lease` to `ttl` from now, if the key still
    /// holds it: whether it did.
    pub(crate) async fn renew_lease(&self, key: &str, lease: &[u8], ttl: Duration) -> Result<bool> {
        self.compare_and(Lane::Ordinary, &self.renew_lease, key, |script| {
            script.arg(lease).arg(ttl_millis(ttl));
        })
        .await
    }

    /// Deletes the key if it still holds `lease` (compare-and-delete).
    pub(crate) async fn release_lease(&self, key: &str, lease: &[u8]) -> Result<bool> {
        self.compare_and(Lane::Ordinary, &self.release_lease, key, |script| {
            script.arg(lease);
        })
        .await
    }

    /// `SET key value NX`: whether it was set.
    pub(crate) async fn set_if_absent(&self, key: &str, value: &[u8]) -> Result<bool> {
        self.run(Route::Key(key), |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("NX")
                .query_async::<Option<String>>(&mut c)
                .await
                .map(|reply| reply.is_some())
        })
        .await
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        self.run(Route::Any, |mut c| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .map(drop)
        })
        .await
    }
}

/// One server, found by URL or through Sentinel.
impl<P: LeasePool<Conn = redis::aio::MultiplexedConnection>> RedisBackend<P> {
    /// One `MGET`.
    pub(crate) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.run(Route::Any, |mut c| async move {
            redis::cmd("MGET").arg(keys).query_async(&mut c).await
        })
        .await
    }

    /// One pipeline of `SET key value [PX ttl]`.
    pub(crate) async fn set_many(&self, entries: &[Entry], ttl: Option<Duration>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write_pipeline(entries, ttl, Route::Any).await
    }

    /// `SCAN … MATCH` + `UNLINK` in batches: never `KEYS`, which blocks the
    /// server for as long as it takes to walk the whole keyspace.
    pub(crate) async fn delete_matching(&self, matcher: &KeyMatcher) -> Result<u64> {
        self.scan_and_unlink(
            matcher,
            Route::Any,
            |mut c, scan| async move { scan.query_async(&mut c).await },
            |mut c, wait| async move { wait.query_async(&mut c).await },
        )
        .await
    }
}

impl<P: LeasePool> RedisBackend<P>
where
    P::Conn: ConnectionLike,
{
    /// One pipeline of `SET key value [PX ttl]` for `entries`, on the bulk
    /// lane when they are large.
    pub(super) async fn write_pipeline<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a Entry>,
        ttl: Option<Duration>,
        route: Route<'_>,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        let mut total = 0;
        for (key, entry) in entries {
            total += entry.len();
            let cmd = pipe.cmd("SET").arg(key).arg(entry.as_slice());
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl_millis(ttl));
            }
            cmd.ignore();
        }
        self.run_on(Lane::for_write(total), route, |mut c| async move {
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    /// Walks one server's keyspace with `SCAN … MATCH` (sent by `scan`, which
    /// routes it) and `UNLINK`s the keys `matcher` accepts, batch by batch:
    /// how many were deleted.
    ///
    /// With `wait_for_replicas`, each `UNLINK` is followed by a `WAIT` sent
    /// by `wait` (which routes it to the same node) on the same connection.
    pub(super) async fn scan_and_unlink<S, Fut, W, WFut>(
        &self,
        matcher: &KeyMatcher,
        route: Route<'_>,
        scan: S,
        wait: W,
    ) -> Result<u64>
    where
        S: Fn(P::Conn, redis::Cmd) -> Fut,
        Fut: Future<Output = std::result::Result<(u64, Vec<String>), RedisError>>,
        W: Fn(P::Conn, redis::Cmd) -> WFut,
        WFut: Future<Output = std::result::Result<u64, RedisError>>,
    {
        let glob = matcher.glob();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let mut step = redis::cmd("SCAN");
            step.arg(cursor)
                .arg("MATCH")
                .arg(&glob)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            let (next, keys) = self.run(route, |c| scan(c, step)).await?;
            let keys: Vec<String> = keys.into_iter().filter(|k| matcher.matches(k)).collect();
            if !keys.is_empty() {
                // UNLINK of keys found on one node: routed per slot on a
                // cluster, all owned by that node.
                let wait_command = self.wait_command();
                let wait = &wait;
                let (unlinked, acked) = self
                    .run(route, |mut c| async move {
                        let unlinked = redis::cmd("UNLINK")
                            .arg(&keys)
                            .query_async::<u64>(&mut c)
                            .await?;
                        let acked = match wait_command {
                            Some(command) => wait(c, command).await?,
                            None => 0,
                        };
                        Ok((unlinked, acked))
                    })
                    .await?;
                deleted += unlinked;
                self.check_replicas(acked)?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

/// PX takes whole milliseconds; a sub-millisecond ttl still expires.
fn ttl_millis(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u64::MAX as u128) as u64
}

/// Parses `url`; with `tls_ca` (PEM), a `rediss://` connection trusts
/// exactly those roots.
pub(super) fn connection_info(
    url: &str,
    tls_ca: Option<&[u8]>,
) -> std::result::Result<redis::ConnectionInfo, RedisError> {
    let info = redis::IntoConnectionInfo::into_connection_info(url)?;
    let Some(_ca) = tls_ca else {
        return Ok(info);
    };
    #[cfg(feature = "tls")]
    {
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(_ca.to_vec()),
        };
        Ok(redis::Client::build_with_tls(info, certificates)?
            .get_connection_info()
            .clone())
    }
    #[cfg(not(feature = "tls"))]
    Err(RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "a TLS CA file needs the `tls` cargo feature of cache-memoize",
    )))
}
