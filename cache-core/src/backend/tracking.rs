//! The local tier's tracking connection: one dedicated RESP3 connection
//! with `CLIENT TRACKING ON BCAST PREFIX <namespace>`, whose invalidation
//! pushes are applied in the connection's driver, in wire order, and whose
//! heartbeat PINGs renew the tier's freshness lease
//! (`../shared/COHERENCE.md` §4). Data reads stay on the pooled connections.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, RedisError, Value};

use super::redis::connection_info;
use crate::local_tier::LocalStore;
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
    pub(crate) url: String,
    pub(crate) tls_ca: Option<Vec<u8>>,
    /// The cache's key namespace (`{prefix}:{version}:`): the tracked prefix.
    pub(crate) namespace: String,
    pub(crate) connect_timeout: Duration,
}

/// The running tracking task; dropping it stops the task.
#[derive(Debug)]
pub(crate) struct Tracking {
    task: tokio::task::AbortHandle,
}

impl Drop for Tracking {
    fn drop(&mut self) {
        self.task.abort();
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
    let task = crate::blocking::spawn_detached(run(Arc::downgrade(store), settings));
    Tracking { task }
}

async fn run(store: Weak<LocalStore>, settings: TrackingSettings) {
    let mut retry = FIRST_RETRY;
    let mut warned = false;
    loop {
        let Some(tier) = store.upgrade() else { return };
        tier.lapse();
        match connect(&tier, &settings).await {
            Ok(connection) => {
                // Whatever was invalidated while we were not tracking is
                // unknown: nothing from before is served.
                tier.bump_epoch();
                tier.clear();
                tracing::debug!(cache = %settings.cache, "local tier: tracking invalidations");
                retry = FIRST_RETRY;
                warned = false;
                drop(tier);
                let lost = heartbeat(connection, &store).await;
                let Some(tier) = store.upgrade() else { return };
                tier.lapse();
                tier.bump_epoch();
                tracing::debug!(cache = %settings.cache, "local tier: tracking connection lost ({lost}); reconnecting");
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
                        url = %RedactedUrl::new(&settings.url),
                        "local tier: cannot open the tracking connection ({e}); serving nothing from memory until it opens"
                    );
                }
                drop(tier);
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// Opens the connection, names it and turns tracking on.
async fn connect(
    tier: &Arc<LocalStore>,
    settings: &TrackingSettings,
) -> Result<MultiplexedConnection, Refusal> {
    let info = connection_info(&settings.url, settings.tls_ca.as_deref())
        .map_err(|e| Refusal::ForGood(format!("the tracking URL is not usable: {e}")))?;
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

/// PINGs until the connection fails; each answer renews the lease. Returns
/// what ended it.
async fn heartbeat(mut connection: MultiplexedConnection, store: &Weak<LocalStore>) -> String {
    let mut seen_lookups = u64::MAX;
    let mut last_busy = Instant::now();
    loop {
        let Some(tier) = store.upgrade() else {
            return "cache dropped".into();
        };
        let sent = Instant::now();
        let pong = connection.req_packed_command(&redis::cmd("PING")).await;
        match pong {
            Ok(_) => tier.renew(sent),
            Err(e) => return e.to_string(),
        }
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
            // Idle: a PING a second, or at once when a lookup finds the
            // lease lapsed.
            let woken = async {
                tier.wake.notified().await;
            };
            let _ = tokio::time::timeout(IDLE_PACE, woken).await;
        }
    }
}
