//! The local tier's tracking connections: one dedicated RESP3 connection
//! per primary with `CLIENT TRACKING ON BCAST PREFIX <namespace>`, whose
//! invalidation pushes are applied in the connection's driver, in wire
//! order, and whose heartbeat PINGs renew the tier's freshness lease.
//! On a Cluster every primary is tracked (slots or not), and each
//! primary's heartbeat is `CLUSTER NODES`: its answer renews that
//! primary's member of the lease only while the node still sees exactly
//! the primaries being tracked; any other answer (a failover, a new or
//! removed primary, a node that disagrees) drops everything in memory and
//! tracking starts over. Data reads stay on the pooled connections.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, RedisError, Value};

use super::cluster::masters;
use super::redis::connection_info;
use super::sentinel::{current_master, SentinelClients};
use crate::local_tier::LocalStore;
use crate::local_tier_metrics::{LocalTierMetrics, PUBLISH_EVERY};
use crate::redacted_url::RedactedUrl;

/// The name the tracking connection gives itself (`CLIENT LIST` shows it).
pub(crate) const CONNECTION_NAME: &str = "cache-memoize-tracking";

/// A PING unanswered for this long means the connection is dropped and
/// made again (the lease lapsed long before).
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);
/// The heartbeat's pace while nobody looks anything up.
const IDLE_PACE: Duration = Duration::from_secs(1);
/// Reconnection back-off.
const FIRST_RETRY: Duration = Duration::from_millis(20);
const LAST_RETRY: Duration = Duration::from_secs(1);

/// Where and how to track.
#[derive(Clone)]
pub(crate) struct TrackingSettings {
    pub(crate) cache: String,
    pub(crate) primaries: Primaries,
    pub(crate) tls_ca: Option<Vec<u8>>,
    /// The cache's key namespace (`{prefix}:{version}:`): the tracked prefix.
    pub(crate) namespace: String,
    pub(crate) connect_timeout: Duration,
}

/// What to track.
#[derive(Clone)]
pub(crate) enum Primaries {
    /// One server (its URL, or `LocalTier::tracking_url`).
    Single(String),
    /// Every primary of the cluster these node URLs belong to (their
    /// credentials and TLS settings are used for each primary).
    Cluster(Vec<String>),
    /// The master the sentinels name (and how to describe them in logs).
    Sentinel(SentinelClients, RedactedUrl),
}

impl Primaries {
    fn redacted(&self) -> RedactedUrl {
        match self {
            Primaries::Single(url) => RedactedUrl::new(url),
            Primaries::Cluster(seeds) => RedactedUrl::list(seeds),
            Primaries::Sentinel(_, described) => described.clone(),
        }
    }
}

/// The running tracking task; dropping it stops the task.
#[derive(Debug)]
pub(crate) struct Tracking {
    task: tokio::task::AbortHandle,
    metrics: tokio::task::AbortHandle,
}

impl Drop for Tracking {
    fn drop(&mut self) {
        self.task.abort();
        self.metrics.abort();
    }
}

/// Why a connection attempt did not give a tracking connection.
enum Refusal {
    /// The server will never track (an old server, an ACL, a managed
    /// Redis without `CLIENT`): the tier turns off.
    ForGood(String),
    /// Try again later (the server is down, a timeout).
    ForNow(RedisError),
}

/// Starts tracking for `store` on the I/O runtime.
pub(crate) fn start(store: &Arc<LocalStore>, settings: TrackingSettings) -> Tracking {
    let metrics = crate::blocking::spawn_detached(publish_metrics(
        Arc::downgrade(store),
        LocalTierMetrics::new(&settings.namespace),
    ));
    let task = crate::blocking::spawn_detached(run(Arc::downgrade(store), settings));
    Tracking { task, metrics }
}

/// Publishes the tier's counters a few times a second while the cache lives
/// (a task of its own, so a stalled heartbeat still shows its lease age).
async fn publish_metrics(store: Weak<LocalStore>, metrics: LocalTierMetrics) {
    loop {
        let Some(tier) = store.upgrade() else { return };
        metrics.publish(&tier.stats());
        drop(tier);
        tokio::time::sleep(PUBLISH_EVERY).await;
    }
}

async fn run(store: Weak<LocalStore>, settings: TrackingSettings) {
    let mut retry = FIRST_RETRY;
    let mut warned = false;
    loop {
        let Some(tier) = store.upgrade() else { return };
        tier.lapse();
        match open(&tier, &settings).await {
            Ok(tracked) => {
                tier.set_lease_members(tracked.members());
                // Whatever was invalidated while we were not tracking is
                // unknown: nothing from before is served.
                tier.bump_epoch();
                tier.clear();
                tracing::debug!(
                    cache = %settings.cache,
                    primaries = tracked.connections.len(),
                    "local tier: tracking invalidations"
                );
                warned = false;
                drop(tier);
                let opened = Instant::now();
                let lost = tracked.heartbeats(&store).await;
                // Back to a quick retry only after tracking held a while: a
                // round that fails at once (nodes that disagree) backs off.
                if opened.elapsed() >= LAST_RETRY {
                    retry = FIRST_RETRY;
                }
                let Some(tier) = store.upgrade() else { return };
                tier.lapse();
                tier.bump_epoch();
                tracing::debug!(cache = %settings.cache, "local tier: tracking lost ({lost}); starting over");
            }
            Err(Refusal::ForGood(reason)) => {
                tracing::warn!(
                    cache = %settings.cache,
                    "local tier turned off: {reason}; memoized calls read Redis as without it"
                );
                tier.turn_off(reason);
                return;
            }
            Err(Refusal::ForNow(e)) => {
                if !warned {
                    warned = true;
                    tracing::warn!(
                        cache = %settings.cache,
                        url = %settings.primaries.redacted(),
                        "local tier: cannot open the tracking connections ({e}); serving nothing from memory until they open"
                    );
                }
                drop(tier);
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// The open tracking connections, one per primary, with what each one's
/// heartbeat checks.
struct Tracked {
    connections: Vec<(MultiplexedConnection, Check)>,
}

impl Tracked {
    /// One lease member per connection.
    fn members(&self) -> usize {
        self.connections.len()
    }

    /// Runs every member's heartbeat until the first one ends (a lost
    /// connection, a changed set of primaries); the others stop with it.
    async fn heartbeats(self, store: &Weak<LocalStore>) -> String {
        let mut running = tokio::task::JoinSet::new();
        for (member, (connection, check)) in self.connections.into_iter().enumerate() {
            running.spawn(heartbeat(connection, store.clone(), member, check));
        }
        match running.join_next().await {
            Some(Ok(reason)) => reason,
            Some(Err(e)) => format!("a heartbeat task failed: {e}"),
            None => "nothing to track".into(),
        }
    }
}

/// Opens a tracking connection to every primary.
async fn open(tier: &Arc<LocalStore>, settings: &TrackingSettings) -> Result<Tracked, Refusal> {
    let usable = |e: RedisError| Refusal::ForGood(format!("the tracking URL is not usable: {e}"));
    match &settings.primaries {
        Primaries::Single(url) => {
            let info = connection_info(url, settings.tls_ca.as_deref()).map_err(usable)?;
            Ok(Tracked {
                connections: vec![(connect(tier, settings, info).await?, Check::Ping)],
            })
        }
        Primaries::Cluster(seeds) => {
            let (primaries, seed) = cluster_primaries(settings, seeds).await?;
            let mut connections = Vec::with_capacity(primaries.len());
            for primary in &primaries {
                let info = primary_info(&seed, primary).ok_or_else(|| {
                    Refusal::ForGood(format!("CLUSTER NODES names a primary at {primary:?}"))
                })?;
                let check = Check::Primaries {
                    expected: primaries.clone(),
                    asked: primary.clone(),
                };
                connections.push((connect(tier, settings, info).await?, check));
            }
            Ok(Tracked { connections })
        }
        Primaries::Sentinel(clients, _) => {
            let info = current_master(clients, settings.connect_timeout)
                .await
                .map_err(|e| refusal(e, "naming the master (sentinels)"))?;
            Ok(Tracked {
                connections: vec![(connect(tier, settings, info).await?, Check::Master)],
            })
        }
    }
}

/// The reachable primaries (`host:port`, sorted) in a `CLUSTER NODES`
/// reply from the node at `asked` (`host:port`): slots or not, without
/// those flagged `fail` or `noaddr`. A node that does not know its own
/// address yet lists itself with an empty host: that is `asked`'s.
fn primaries_seen(reply: &Value, asked: &str) -> Option<Vec<String>> {
    let text = match reply {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::SimpleString(text) => text.clone(),
        _ => return None,
    };
    let asked_host = asked.rsplit_once(':').map_or(asked, |(host, _)| host);
    let mut seen: Vec<String> = masters(&text)
        .into_iter()
        .filter(|master| master.unusable.is_none())
        .map(|master| {
            let host = if master.host.is_empty() {
                asked_host
            } else {
                master.host.as_str()
            };
            format!("{host}:{}", master.port)
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    Some(seen)
}

/// Whether a `ROLE` reply says "master".
fn is_master(role: &Value) -> bool {
    let Value::Array(fields) = role else {
        return false;
    };
    match fields.first() {
        Some(Value::BulkString(name)) => name.as_slice() == b"master",
        Some(Value::SimpleString(name)) => name == "master",
        _ => false,
    }
}

/// The cluster's primaries as a seed node sees them (asked of the seeds in
/// turn), and the seed's connection settings (for the primaries').
async fn cluster_primaries(
    settings: &TrackingSettings,
    seeds: &[String],
) -> Result<(Vec<String>, redis::ConnectionInfo), Refusal> {
    let mut last = None;
    for seed in seeds {
        let info = connection_info(seed, settings.tls_ca.as_deref())
            .map_err(|e| Refusal::ForGood(format!("a cluster URL is not usable: {e}")))?;
        let asked = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port)
            | redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
            _ => {
                return Err(Refusal::ForGood(
                    "cluster URLs must be redis:// or rediss:// addresses".into(),
                ))
            }
        };
        let client = redis::Client::open(info.clone()).map_err(Refusal::ForNow)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(HEARTBEAT_TIMEOUT));
        let reply = async {
            let mut connection = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            connection
                .req_packed_command(&redis::cmd("CLUSTER").arg("NODES").clone())
                .await
        }
        .await;
        match reply {
            Ok(reply) => match primaries_seen(&reply, &asked) {
                Some(primaries) if !primaries.is_empty() => return Ok((primaries, info)),
                // A cluster still forming: try again later.
                _ => {
                    last = Some(Refusal::ForNow(RedisError::from((
                        redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
                        "CLUSTER NODES named no reachable primary",
                    ))))
                }
            },
            Err(e) => last = Some(refusal(e, "CLUSTER NODES")),
        }
    }
    Err(last.unwrap_or_else(|| Refusal::ForGood("no cluster URL".into())))
}

/// `seed`'s settings (credentials, TLS) for the primary at `host:port`.
fn primary_info(seed: &redis::ConnectionInfo, primary: &str) -> Option<redis::ConnectionInfo> {
    let (host, port) = primary.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.to_owned();
    let addr = match seed.addr().clone() {
        redis::ConnectionAddr::Tcp(..) => redis::ConnectionAddr::Tcp(host, port),
        redis::ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => redis::ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            tls_params,
        },
        _ => return None,
    };
    Some(seed.clone().set_addr(addr))
}

/// Opens one connection, names it and turns tracking on.
async fn connect(
    tier: &Arc<LocalStore>,
    settings: &TrackingSettings,
    info: redis::ConnectionInfo,
) -> Result<MultiplexedConnection, Refusal> {
    let resp3 = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(resp3);
    let client = redis::Client::open(info).map_err(Refusal::ForNow)?;
    let pushes = Arc::downgrade(tier);
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(HEARTBEAT_TIMEOUT))
        .set_push_sender(move |push: PushInfo| {
            if let Some(tier) = pushes.upgrade() {
                apply(&tier, push);
            }
            Ok::<(), ()>(())
        });
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| refusal(e, "RESP3 (HELLO 3, Redis 6 or later)"))?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(CONNECTION_NAME)
        .query_async::<()>(&mut connection)
        .await
        .map_err(|e| refusal(e, "CLIENT SETNAME"))?;
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(&settings.namespace)
        .query_async::<()>(&mut connection)
        .await
        .map_err(|e| refusal(e, "CLIENT TRACKING ON BCAST"))?;
    Ok(connection)
}

/// The server will never do it (no permission, an unknown command or
/// option, failed authentication): for good. Anything else (I/O, a
/// timeout, `LOADING`, `MASTERDOWN`, `CLUSTERDOWN`, `TRYAGAIN`…) passes:
/// for now.
fn refusal(e: RedisError, what: &str) -> Refusal {
    use redis::{ErrorKind, ServerErrorKind};
    let never = matches!(
        e.kind(),
        ErrorKind::AuthenticationFailed
            | ErrorKind::Server(ServerErrorKind::NoPerm | ServerErrorKind::ResponseError)
    );
    if never {
        Refusal::ForGood(format!("the server refused {what}: {e}"))
    } else {
        Refusal::ForNow(e)
    }
}

/// Applies one push in the connection's driver, before any reply that
/// follows it on the wire is handed to its caller.
fn apply(tier: &LocalStore, push: PushInfo) {
    match push.kind {
        PushKind::Invalidate => match push.data.first() {
            Some(Value::Array(keys)) => {
                for key in keys {
                    if let Value::BulkString(key) = key {
                        tier.invalidate_pushed(key);
                    }
                }
            }
            // `FLUSHALL`/`FLUSHDB`: a null list, everything is invalid.
            _ => tier.bump_epoch(),
        },
        PushKind::Disconnection => {
            tier.lapse();
            tier.bump_epoch();
        }
        _ => {}
    }
}

/// What a heartbeat asks to renew its member of the lease.
enum Check {
    /// `PING`: its answer comes after every push sent before it.
    Ping,
    /// `ROLE` (after the pushes sent before it, as a PING): the server must
    /// still be a master (after a Sentinel failover, the old one is not).
    Master,
    /// `CLUSTER NODES` (after the pushes sent before it, as a PING): the
    /// node at `asked` must still see exactly the `expected` primaries.
    Primaries {
        expected: Vec<String>,
        asked: String,
    },
}

/// Checks until the connection fails (or the slot map changes); each
/// answer renews `member` of the lease. Returns what ended it.
async fn heartbeat(
    mut connection: MultiplexedConnection,
    store: Weak<LocalStore>,
    member: usize,
    check: Check,
) -> String {
    let mut seen_lookups = u64::MAX;
    let mut last_busy = Instant::now();
    loop {
        let Some(tier) = store.upgrade() else {
            return "cache dropped".into();
        };
        let sent = Instant::now();
        match &check {
            Check::Ping => {
                if let Err(e) = connection.req_packed_command(&redis::cmd("PING")).await {
                    return e.to_string();
                }
            }
            Check::Master => {
                let role = match connection.req_packed_command(&redis::cmd("ROLE")).await {
                    Ok(role) => role,
                    Err(e) => return e.to_string(),
                };
                if !is_master(&role) {
                    return "the tracked server is no longer the master".into();
                }
            }
            Check::Primaries { expected, asked } => {
                let reply = match connection
                    .req_packed_command(&redis::cmd("CLUSTER").arg("NODES").clone())
                    .await
                {
                    Ok(reply) => reply,
                    Err(e) => return e.to_string(),
                };
                if primaries_seen(&reply, asked).as_ref() != Some(expected) {
                    return format!("the cluster's primaries changed, as {asked} sees them");
                }
            }
        }
        tier.renew_member(member, sent);
        // Busy while lookups happened within the last idle pace: lookups
        // a few milliseconds apart then keep finding the lease fresh.
        let lookups = tier.lookups();
        if lookups != seen_lookups {
            last_busy = Instant::now();
        }
        seen_lookups = lookups;
        let busy = last_busy.elapsed() < IDLE_PACE;
        let pace = tier.settings().staleness_bound / 4;
        if busy {
            tier.heartbeat_awake();
            drop(tier);
            tokio::time::sleep(pace).await;
        } else {
            // Idle: a check a second, or at once when a lookup finds the
            // lease lapsed (listening before the lookups may wake us again).
            let woken = tier.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            tier.heartbeat_awake();
            let _ = tokio::time::timeout(IDLE_PACE, woken).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reachable_primary_is_tracked_slots_or_not() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
a3 127.0.0.1:7003@17003 master - 0 0 3 connected 10923-16383
a4 127.0.0.1:7004@17004 master - 0 0 4 connected
r1 127.0.0.1:7005@17005 slave a1 0 0 1 connected
f1 127.0.0.1:7006@17006 master,fail - 0 0 5 disconnected
h1 127.0.0.1:7007@17007 handshake - 0 0 0 disconnected
";
        let seen = primaries_seen(
            &Value::BulkString(nodes.as_bytes().to_vec()),
            "127.0.0.1:7001",
        );
        assert_eq!(
            seen.unwrap(),
            [
                "127.0.0.1:7001",
                "127.0.0.1:7002",
                "127.0.0.1:7003",
                "127.0.0.1:7004"
            ]
        );
    }

    #[test]
    fn a_node_without_its_own_address_is_the_one_asked() {
        let nodes = "a1 :7001@17001 myself,master - 0 0 1 connected 0-16383\n";
        let seen = primaries_seen(
            &Value::VerbatimString {
                format: redis::VerbatimFormat::Text,
                text: nodes.into(),
            },
            "10.0.0.5:7001",
        );
        assert_eq!(seen.unwrap(), ["10.0.0.5:7001"]);
        assert_eq!(primaries_seen(&Value::Nil, "10.0.0.5:7001"), None);
    }

    #[test]
    fn only_permission_and_unsupported_commands_refuse_for_good() {
        let server = |kind, text: &'static str| RedisError::from((kind, text));
        use redis::{ErrorKind, ServerErrorKind};
        for (error, for_good) in [
            (
                server(ErrorKind::Server(ServerErrorKind::NoPerm), "no"),
                true,
            ),
            (
                server(ErrorKind::Server(ServerErrorKind::ResponseError), "unknown"),
                true,
            ),
            (
                server(ErrorKind::Server(ServerErrorKind::BusyLoading), "loading"),
                false,
            ),
            (
                server(ErrorKind::Server(ServerErrorKind::ClusterDown), "down"),
                false,
            ),
            (
                server(ErrorKind::Server(ServerErrorKind::MasterDown), "down"),
                false,
            ),
            (RedisError::from(std::io::Error::other("reset")), false),
        ] {
            let refused_for_good = matches!(refusal(error, "X"), Refusal::ForGood(_));
            assert_eq!(refused_for_good, for_good);
        }
    }
}
