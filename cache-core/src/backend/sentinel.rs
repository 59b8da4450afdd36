//! Redis behind Sentinel: the master of a named group, found through the
//! sentinels whenever a connection is made, and followed after a failover.
//!
//! Requests run exactly as on one server (shared multiplexed connections,
//! the breaker, the time budget). What differs is where a new connection
//! goes: [`SentinelManager`] asks the sentinels for the master's address
//! (redis-rs's `SentinelClient`, which also checks with `ROLE` that the node
//! it names is a master), so a connection that broke with the old master is
//! replaced by one to the new master once the sentinels have promoted it.
//! Until then, new connections fail fast (the old master refuses them) or
//! within the connect timeout, the breaker opens, and memoized calls compute
//! without the cache (fail-open). A connection to an old master that comes
//! back demoted answers writes with `READONLY`; the backend drops such a
//! connection like a broken one, and the next goes to the new master. So
//! does a request that times out: a stalled (not dead) old master keeps its
//! TCP connections open, and without a new connection the cache would
//! never ask the sentinels again.
//!
//! redis-rs asks the sentinels concurrently but takes their answers in the
//! order they were listed, without a timeout of its own: a hung (SIGSTOPped,
//! partitioned) sentinel listed before the ones that know the new master
//! would stall every new connection. So there is one client per rotation of
//! the list, all asked at once when a connection is made; the first master
//! found wins (the other lookups are dropped, or their connections closed).
//! Connections are made rarely (at start, after one broke), so the extra
//! sentinel queries cost little.

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleResult};
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use deadpool_redis::redis::{self, AsyncConnectionConfig, RedisError};
use deadpool_redis::PoolError;

use super::node_breakers::{NodeBreakers, SlotRange};
use super::redis::{connection_info, RedisSettings};
use super::shared_connection::LeasePool;
use super::RedisBackend;
use crate::error::{Error, Result};
use crate::redacted_url::RedactedUrl;

/// Where the sentinels are and what they are asked for.
pub(crate) struct SentinelSettings {
    /// The master group's name (`sentinel monitor <name> …`).
    pub(crate) master_name: String,
    /// `redis://[user:password@]host:port` of each sentinel (`rediss://`
    /// with the `tls` feature: then the data nodes are reached over TLS too).
    pub(crate) sentinel_urls: Vec<String>,
    /// Credentials of the data nodes (`None`: no `AUTH`).
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) db: i64,
}

/// One client per sentinel, each listing the sentinels starting with its own.
pub(crate) type SentinelClients = Arc<Vec<tokio::sync::Mutex<SentinelClient>>>;

/// Where the current master is, as the first sentinel to answer names it
/// (asked of all at once), within `timeout`.
pub(crate) async fn current_master(
    clients: &SentinelClients,
    timeout: Duration,
) -> std::result::Result<redis::ConnectionInfo, RedisError> {
    let lookups = clients.iter().map(|client| {
        Box::pin(async move {
            let master = client.lock().await.async_get_client().await?;
            Ok::<_, RedisError>(master.get_connection_info().clone())
        })
    });
    match tokio::time::timeout(timeout, futures::future::select_ok(lookups)).await {
        Ok(Ok((info, _others))) => Ok(info),
        Ok(Err(last)) => Err(last),
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the sentinels named no master within the connect timeout",
        ))),
    }
}

/// Connects to the current master, as the sentinels name it.
pub(crate) struct SentinelManager {
    /// Client `i` lists the sentinels starting with the `i`-th (shared
    /// with the local tier's tracking, which follows the same master).
    clients: SentinelClients,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
}

impl managed::Manager for SentinelManager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> std::result::Result<MultiplexedConnection, RedisError> {
        let lookups = self.clients.iter().map(|client| {
            Box::pin(async move {
                client
                    .lock()
                    .await
                    .get_async_connection_with_config(&self.config)
                    .await
            })
        });
        let found = futures::future::select_ok(lookups);
        match tokio::time::timeout(self.connect_timeout, found).await {
            Ok(Ok((connection, _others))) => Ok(connection),
            Ok(Err(last)) => Err(last),
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the sentinels named no reachable master within the connect timeout",
            ))),
        }
    }

    async fn recycle(
        &self,
        conn: &mut MultiplexedConnection,
        _: &Metrics,
    ) -> RecycleResult<RedisError> {
        redis::cmd("PING").query_async::<String>(conn).await?;
        Ok(())
    }
}

/// A deadpool pool of connections to the sentinels' current master.
pub(crate) type SentinelPool = managed::Pool<SentinelManager>;

impl LeasePool for SentinelPool {
    type Conn = MultiplexedConnection;
    type Object = managed::Object<SentinelManager>;

    fn checkout(
        &self,
    ) -> impl std::future::Future<Output = std::result::Result<Self::Object, PoolError>> + Send
    {
        self.get()
    }

    fn connection(object: &Self::Object) -> MultiplexedConnection {
        (**object).clone()
    }

    fn detach(object: Self::Object) {
        drop(managed::Object::take(object));
    }

    fn slot_ranges(
        _: MultiplexedConnection,
        _: Vec<(String, u16)>,
    ) -> impl std::future::Future<Output = Option<Vec<SlotRange>>> + Send + 'static {
        std::future::ready(None)
    }
}

impl RedisBackend<SentinelPool> {
    /// The clients that ask the sentinels for the master.
    pub(crate) fn sentinel_clients(&self) -> SentinelClients {
        self.connections.pool().manager().clients.clone()
    }

    /// A backend for the master the sentinels name; validates the URLs but
    /// makes no connection yet.
    pub(crate) fn sentinel(sentinel: SentinelSettings, settings: RedisSettings) -> Result<Self> {
        if sentinel.sentinel_urls.is_empty() {
            return Err(Error::Config(
                "sentinel needs at least one sentinel URL, e.g. redis://10.0.0.1:26379".into(),
            ));
        }
        let url = RedactedUrl::list(&sentinel.sentinel_urls);
        let invalid = |source| Error::InvalidUrl {
            url: url.clone(),
            source,
        };
        let infos = sentinel
            .sentinel_urls
            .iter()
            .map(|u| connection_info(u, None))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let tls = infos
            .iter()
            .any(|i| matches!(i.addr(), redis::ConnectionAddr::TcpTls { .. }));
        // The sentinels' own credentials come from their URLs (the first
        // that has any: sentinels of one group share them).
        let sentinel_auth = infos.iter().find_map(|i| {
            let r = i.redis_settings();
            r.password()
                .map(|p| (r.username().map(str::to_owned), p.to_owned()))
        });
        let addrs: Vec<redis::ConnectionAddr> = infos.iter().map(|i| i.addr().clone()).collect();
        let clients = (0..addrs.len())
            .map(|first| {
                let mut rotated = addrs.clone();
                rotated.rotate_left(first);
                Self::sentinel_client(rotated, &sentinel, sentinel_auth.clone(), tls, &settings)
                    .map(tokio::sync::Mutex::new)
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout));
        let manager = SentinelManager {
            clients: Arc::new(clients),
            config,
            connect_timeout: settings.connect_timeout,
        };
        let pool = managed::Pool::builder(manager)
            .max_size((settings.connections.max(1) + 1) * 3)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.response_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let described =
            RedactedUrl::labelled(&format!("master `{}` via", sentinel.master_name), &url);
        let breakers = NodeBreakers::single(settings.breaker);
        let mut backend = Self::with_pool(pool, described, &settings, breakers);
        backend.timeouts_break_connections = true;
        Ok(backend)
    }

    /// A client that asks the sentinels at `addrs`, in that order.
    fn sentinel_client(
        addrs: Vec<redis::ConnectionAddr>,
        sentinel: &SentinelSettings,
        sentinel_auth: Option<(Option<String>, String)>,
        tls: bool,
        settings: &RedisSettings,
    ) -> std::result::Result<SentinelClient, RedisError> {
        let mut builder =
            SentinelClientBuilder::new(addrs, &sentinel.master_name, SentinelServerType::Master)?
                .set_client_to_redis_db(sentinel.db);
        if let Some((user, password)) = sentinel_auth {
            builder = builder.set_client_to_sentinel_password(password);
            if let Some(user) = user {
                builder = builder.set_client_to_sentinel_username(user);
            }
        }
        if let Some(password) = &sentinel.password {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(user) = &sentinel.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if tls {
            let mode = redis::TlsMode::Secure;
            builder = builder
                .set_client_to_redis_tls_mode(mode)
                .set_client_to_sentinel_tls_mode(mode);
        }
        #[cfg(feature = "tls")]
        if let Some(ca) = &settings.tls_ca {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.clone()),
            };
            builder = builder
                .set_client_to_redis_certificates(certificates.clone())
                .set_client_to_sentinel_certificates(certificates);
        }
        #[cfg(not(feature = "tls"))]
        if settings.tls_ca.is_some() || tls {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "rediss:// sentinels and a TLS CA file need the `tls` cargo feature of cache-memoize",
            )));
        }
        builder.build()
    }
}
