//! The local tier's tracking connections: one dedicated RESP3 connection
//! per primary with `CLIENT TRACKING ON BCAST PREFIX <namespace>`, whose
//! invalidation pushes are applied in the connection's driver, in wire
//! order, and whose heartbeat PINGs renew the tier's freshness lease.
//! On a Cluster every primary is tracked, and the slot map, checked on
//! each heartbeat, is one more member of the lease: when it changes,
//! everything in memory is dropped and tracking starts over on the new
//! primaries. Data reads stay on the pooled connections.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, RedisError, Value};

use super::cluster::parse_cluster_slots;
use super::node_breakers::SlotRange;
use super::redis::connection_info;
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
}

impl Primaries {
    fn redacted(&self) -> RedactedUrl {
        match self {
            Primaries::Single(url) => RedactedUrl::new(url),
            Primaries::Cluster(seeds) => RedactedUrl::list(seeds),
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
                retry = FIRST_RETRY;
                warned = false;
                drop(tier);
                let lost = tracked.heartbeats(&store).await;
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

/// The open tracking connections, one per primary, and on a Cluster the
/// slot map they were opened for.
struct Tracked {
    connections: Vec<MultiplexedConnection>,
    slot_map: Option<Vec<SlotRange>>,
}

impl Tracked {
    /// One lease member per connection, plus the slot map check.
    fn members(&self) -> usize {
        self.connections.len() + usize::from(self.slot_map.is_some())
    }

    /// Runs every member's heartbeat until the first one ends (a lost
    /// connection, a changed slot map); the others stop with it.
    async fn heartbeats(self, store: &Weak<LocalStore>) -> String {
        let mut running = tokio::task::JoinSet::new();
        for (member, connection) in self.connections.iter().enumerate() {
            running.spawn(heartbeat(
                connection.clone(),
                store.clone(),
                member,
                Check::Ping,
            ));
        }
        if let (Some(slot_map), Some(first)) = (self.slot_map, self.connections.first()) {
            running.spawn(heartbeat(
                first.clone(),
                store.clone(),
                self.connections.len(),
                Check::SlotMap(slot_map),
            ));
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
                connections: vec![connect(tier, settings, info).await?],
                slot_map: None,
            })
        }
        Primaries::Cluster(seeds) => {
            let (slot_map, seed) = slot_map(settings, seeds).await?;
            let mut primaries: Vec<&str> = slot_map.iter().map(|(_, _, at)| at.as_str()).collect();
            primaries.sort_unstable();
            primaries.dedup();
            let mut connections = Vec::with_capacity(primaries.len());
            for primary in primaries {
                let info = primary_info(&seed, primary).ok_or_else(|| {
                    Refusal::ForGood(format!("CLUSTER SLOTS names a primary at {primary:?}"))
                })?;
                connections.push(connect(tier, settings, info).await?);
            }
            Ok(Tracked {
                connections,
                slot_map: Some(slot_map),
            })
        }
    }
}

/// The slot map (sorted), asked of the seed nodes in turn, and the seed's
/// connection settings (for the primaries' connections).
async fn slot_map(
    settings: &TrackingSettings,
    seeds: &[String],
) -> Result<(Vec<SlotRange>, redis::ConnectionInfo), Refusal> {
    let mut last = None;
    for seed in seeds {
        let info = connection_info(seed, settings.tls_ca.as_deref())
            .map_err(|e| Refusal::ForGood(format!("a cluster URL is not usable: {e}")))?;
        let client = redis::Client::open(info.clone()).map_err(Refusal::ForNow)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(HEARTBEAT_TIMEOUT));
        let asked = async {
            let mut connection = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            connection
                .req_packed_command(&redis::cmd("CLUSTER").arg("SLOTS").clone())
                .await
        }
        .await;
        match asked {
            Ok(reply) => match parse_cluster_slots(&reply) {
                Some(mut ranges) if !ranges.is_empty() => {
                    ranges.sort_unstable();
                    return Ok((ranges, info));
                }
                _ => {
                    last = Some(Refusal::ForGood(
                        "CLUSTER SLOTS gave no usable slot map".into(),
                    ))
                }
            },
            Err(e) => last = Some(refusal(e, "CLUSTER SLOTS")),
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

/// A server's answer refuses for good; a failed connection is for now.
fn refusal(e: RedisError, what: &str) -> Refusal {
    let io =
        e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal();
    if io {
        Refusal::ForNow(e)
    } else {
        Refusal::ForGood(format!("the server refused {what}: {e}"))
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
    /// `CLUSTER SLOTS`, which must still be this slot map.
    SlotMap(Vec<SlotRange>),
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
            Check::SlotMap(expected) => {
                let reply = match connection
                    .req_packed_command(&redis::cmd("CLUSTER").arg("SLOTS").clone())
                    .await
                {
                    Ok(reply) => reply,
                    Err(e) => return e.to_string(),
                };
                let mut now = parse_cluster_slots(&reply).unwrap_or_default();
                now.sort_unstable();
                if &now != expected {
                    return "the cluster's slot map changed".into();
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
            drop(tier);
            tokio::time::sleep(pace).await;
        } else {
            // Idle: a check a second, or at once when a lookup finds the
            // lease lapsed.
            let woken = async {
                tier.wake.notified().await;
            };
            let _ = tokio::time::timeout(IDLE_PACE, woken).await;
        }
    }
}
