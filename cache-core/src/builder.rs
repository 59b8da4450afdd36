//! Configuring a [`Cache`].

use std::sync::Arc;
use std::time::Duration;

use crate::backend::{start_tracking, Primaries, TrackingSettings};
use crate::backend::{Backend, MemoryBackend, RedisBackend};
use crate::backend::{RedisSettings, SentinelSettings};
use crate::cache::{Cache, Inner};
use crate::circuit_breaker::BreakerSettings;
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::key::KeyBuilder;
use crate::lease::LockSettings;
use crate::local_tier::{LocalStore, LocalTier};

/// Builds a [`Cache`]. Without a URL the cache lives in process memory.
///
/// ```
/// use cache_core::{Cache, Codec};
/// use std::time::Duration;
///
/// let cache = Cache::builder()
///     .url("redis://:secret@127.0.0.1:6379/0")
///     .prefix("shop")
///     .version(2)
///     .default_ttl(Some(Duration::from_secs(600)))
///     .response_timeout(Duration::from_millis(200))
///     .codec(Codec::builder().compress_threshold(4096).build())
///     .build() // no connection yet; `.connect().await` would check the server
///     .unwrap();
/// assert_eq!(cache.full_key("k"), "shop:2:k");
/// assert_eq!(cache.describe_backend(), "redis at redis://:****@127.0.0.1:6379/0");
/// ```
///
/// Its `Debug` output hides passwords too:
///
/// ```
/// let builder = cache_core::Cache::builder()
///     .sentinel("mymaster", ["redis://:sentinel-secret@127.0.0.1:26379"])
///     .sentinel_master_auth(Some("app"), "data-secret");
/// let shown = format!("{builder:?}");
/// assert!(!shown.contains("secret"), "{shown}");
/// let shown = format!("{:?}", cache_core::Cache::builder().url("redis://:pw-secret@h:1"));
/// assert!(!shown.contains("secret"), "{shown}");
/// ```
#[must_use]
#[derive(Clone, Debug)]
pub struct CacheBuilder {
    name: String,
    url: Option<RedactedDebug>,
    cluster_urls: Vec<RedactedDebug>,
    sentinel: Option<Sentinel>,
    tls_ca_file: Option<std::path::PathBuf>,
    connections: usize,
    connect_timeout: Duration,
    response_timeout: Duration,
    prefix: String,
    version: u32,
    default_ttl: Option<Duration>,
    codec: Codec,
    memory_capacity: u64,
    breaker: BreakerSettings,
    lock: LockSettings,
    coalesce_reads: bool,
    wait_for_replicas: Option<(u32, Duration)>,
    local_tier: Option<LocalTier>,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        Self {
            name: "default".into(),
            url: None,
            cluster_urls: Vec::new(),
            sentinel: None,
            tls_ca_file: None,
            connections: 1,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_millis(500),
            prefix: "memo".into(),
            version: 1,
            default_ttl: Some(Duration::from_secs(300)),
            codec: Codec::default(),
            memory_capacity: 256 * 1024 * 1024,
            breaker: BreakerSettings::default(),
            lock: LockSettings::default(),
            coalesce_reads: true,
            wait_for_replicas: None,
            local_tier: None,
        }
    }
}

impl Cache {
    /// Starts configuring a cache.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// An in-memory cache with the default settings (the embedded default).
    pub fn memory() -> Cache {
        CacheBuilder::default()
            .build()
            .expect("the default in-memory configuration is valid")
    }
}

impl CacheBuilder {
    /// A name for logs and the registry (default `"default"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Store entries in Redis at `url`: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://…` (TLS, with the `tls` feature) or `redis+unix:///path.sock`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(RedactedDebug(url.into()));
        self.cluster_urls.clear();
        self.sentinel = None;
        self
    }

    /// Store entries in a Redis Cluster. `urls` are some of its nodes
    /// (`redis://[user:password@]host:port`, or `rediss://…` with the `tls`
    /// feature); the client learns the others and the slot map from them.
    /// Replaces a [`url`](Self::url). Keys spread over the masters by hash
    /// slot; `invalidate_all` and prefix deletes visit every master.
    ///
    /// ```
    /// use cache_core::Cache;
    /// let cache = Cache::builder()
    ///     .cluster_urls(["redis://:pw@10.0.0.1:7000", "redis://:pw@10.0.0.2:7000"])
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(
    ///     cache.describe_backend(),
    ///     "redis cluster at redis://:****@10.0.0.1:7000,redis://:****@10.0.0.2:7000"
    /// );
    /// ```
    pub fn cluster_urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cluster_urls = urls.into_iter().map(|u| RedactedDebug(u.into())).collect();
        self.url = None;
        self.sentinel = None;
        self
    }

    /// Store entries in the master of a Redis Sentinel group: `master_name`
    /// as in `sentinel monitor <master_name> …`, `sentinel_urls` some of its
    /// sentinels (`redis://[user:password@]host:port`, the sentinels' own
    /// credentials; `rediss://…` with the `tls` feature, which then reaches
    /// the data nodes over TLS too). Replaces a [`url`](Self::url).
    ///
    /// Every new connection asks the sentinels for the current master, so
    /// the cache follows a failover: calls compute without the cache
    /// (fail-open) from the old master's death until the sentinels promote
    /// a replica, then hit again on the new master. See the README on what
    /// a failover can lose. The data nodes' password, if any, is given with
    /// [`sentinel_master_auth`](Self::sentinel_master_auth).
    ///
    /// ```
    /// use cache_core::Cache;
    /// let cache = Cache::builder()
    ///     .sentinel("mymaster", ["redis://:pw@10.0.0.1:26379", "redis://:pw@10.0.0.2:26379"])
    ///     .sentinel_master_auth(None, "data-secret")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(
    ///     cache.describe_backend(),
    ///     "redis sentinel master `mymaster` via redis://:****@10.0.0.1:26379,redis://:****@10.0.0.2:26379"
    /// );
    /// ```
    pub fn sentinel<I, S>(mut self, master_name: impl Into<String>, sentinel_urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let previous = self.sentinel.take().unwrap_or_default();
        self.sentinel = Some(Sentinel {
            master_name: master_name.into(),
            urls: sentinel_urls
                .into_iter()
                .map(|u| RedactedDebug(u.into()))
                .collect(),
            ..previous
        });
        self.url = None;
        self.cluster_urls.clear();
        self
    }

    /// Credentials of the Sentinel group's data nodes (master and replicas),
    /// as `AUTH [username] password`; the sentinels' own come from their
    /// URLs. Only used with [`sentinel`](Self::sentinel). Never logged.
    pub fn sentinel_master_auth(
        mut self,
        username: Option<&str>,
        password: impl Into<String>,
    ) -> Self {
        let sentinel = self.sentinel.get_or_insert_with(Sentinel::default);
        sentinel.username = username.map(str::to_owned);
        sentinel.password = Some(Secret(password.into()));
        self
    }

    /// Trust the CA certificate(s) in this PEM file for `rediss://`
    /// connections, instead of the public webpki roots (a private CA, as
    /// most managed and self-hosted Redis TLS set-ups use). Needs the `tls`
    /// cargo feature; the file is read by [`build`](Self::build).
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Store entries in process memory (the default when no URL is given).
    pub fn in_memory(mut self) -> Self {
        self.url = None;
        self.cluster_urls.clear();
        self.sentinel = None;
        self
    }

    /// Number of multiplexed Redis connections requests are spread over
    /// (default 1: one connection pipelines concurrent requests by itself).
    pub fn connections(mut self, connections: usize) -> Self {
        self.connections = connections;
        self
    }

    /// How long to wait for a new connection (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for any reply (default 500 ms). A memoized call whose
    /// lookup takes longer computes instead.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Key prefix for everything this cache writes (django's `KEY_PREFIX`,
    /// default `"memo"`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Key version (django's `VERSION`, default 1); bump it to orphan every
    /// entry at once after an incompatible deploy.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Expiry of values stored without an explicit ttl (default 300 s, as
    /// django's `TIMEOUT`); `None` keeps them until deleted or evicted.
    pub fn default_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// How values are encoded (default MessagePack + zlib above 1 KiB).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Bytes of keys and values the in-memory backend keeps (default 256 MiB).
    pub fn memory_capacity(mut self, bytes: u64) -> Self {
        self.memory_capacity = bytes;
        self
    }

    /// When to stop contacting a failing Redis, and for how long
    /// (default: open after 5 consecutive failures, probe after 100 ms,
    /// back-off doubling up to 1 s).
    pub fn circuit_breaker(mut self, settings: BreakerSettings) -> Self {
        self.breaker = settings;
        self
    }

    /// The cross-process stampede lock (default: off unless a function asks
    /// for it with `lock = true`; 10 s lock ttl and wait).
    pub fn stampede_lock(mut self, settings: LockSettings) -> Self {
        self.lock = settings;
        self
    }

    /// Whether overlapping lookups of one key share one GET (default `true`;
    /// the shared value is never older than one round trip).
    pub fn coalesce_reads(mut self, coalesce: bool) -> Self {
        self.coalesce_reads = coalesce;
        self
    }

    /// Make every invalidation (`delete`, `delete_prefix`,
    /// `foo_invalidate`, `foo_invalidate_all`) wait until `replicas`
    /// replicas have it, for at most `timeout` (Redis `WAIT`, sent after the
    /// `DEL` on the same connection). Redis replicates asynchronously: without
    /// this, a failover right after an acknowledged delete can promote a
    /// replica that never received it, and the old value comes back. With
    /// it, a delete returns only once the replicas have it; if fewer answer
    /// in time, the strict API returns [`Error::ReplicasBehind`] (the delete
    /// did reach the master) and the fail-open `foo_invalidate` counts an
    /// error. `timeout` must be below the response timeout. Default: off.
    /// What it costs is measured in the README ("What a failover can lose").
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait_for_replicas = (replicas > 0).then_some((replicas, timeout));
        self
    }

    /// Keeps decoded values of memoized functions in process memory, in
    /// front of Redis, within `tier`'s byte budget; hits are then served at
    /// memory speed. An invalidation acknowledged in any process (a delete,
    /// a `set`, `foo_invalidate`, or any write under this cache's prefix)
    /// reaches this process's memory within the tier's staleness bound
    /// (5 ms by default), or the tier serves nothing from memory until it
    /// knows again: see the README ("The local tier").
    ///
    /// Costs one more connection to Redis (tracking invalidations with
    /// `CLIENT TRACKING ON BCAST`), a PING every bound / 4 while hits
    /// happen, and every write under the prefix is pushed to every process
    /// with a tier. Needs Redis 6 or later with RESP3; where `CLIENT
    /// TRACKING` is refused the tier turns itself off (logged once) and
    /// calls read Redis as without it. Only memoized functions
    /// (`#[cache_memoize]`) whose stored type is `Clone + Send + Sync` use
    /// it, unless they say `local = false`; calls with tags or freshness
    /// windows do not. On a Cluster every primary is tracked (one
    /// connection each), and each heartbeat checks that the node still sees
    /// the same primaries: a change drops everything in memory. Behind
    /// Sentinel the master the sentinels name is tracked, and each
    /// heartbeat checks (`ROLE`) that it still is the master.
    pub fn local_tier(mut self, tier: LocalTier) -> Self {
        self.local_tier = Some(tier);
        self
    }

    /// The cache. Validates the settings and the URL but does not connect:
    /// the first call does, and a memoized call computes while Redis is away.
    pub fn build(self) -> Result<Cache> {
        if self.prefix.contains(char::is_whitespace) {
            return Err(Error::Config(format!(
                "prefix {:?} contains whitespace; use letters, digits, '_', '-', '.' or ':'",
                self.prefix
            )));
        }
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(Error::Config(
                "timeouts must be above zero; use e.g. Duration::from_millis(500)".into(),
            ));
        }
        if let Some((_, wait)) = self.wait_for_replicas {
            if wait.is_zero() || wait >= self.response_timeout {
                return Err(Error::Config(format!(
                    "wait_for_replicas timeout {wait:?} must be above zero and below the \
                     response timeout {:?}, or every delete would time out",
                    self.response_timeout
                )));
            }
        }
        let tls_ca = match &self.tls_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "cannot read the TLS CA file {}: {e}; give the path of a PEM file",
                    path.display()
                ))
            })?),
            None => None,
        };
        let keys = KeyBuilder::new(&self.prefix, self.version);
        let settings = |url: String| RedisSettings {
            url,
            connections: self.connections,
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            breaker: self.breaker,
            tls_ca: tls_ca.clone(),
            wait_for_replicas: self.wait_for_replicas,
        };
        let backend = match &self.url {
            Some(url) => Backend::Redis(RedisBackend::new(settings(url.0.clone()))?),
            None if !self.cluster_urls.is_empty() => Backend::Cluster(RedisBackend::cluster(
                &self
                    .cluster_urls
                    .iter()
                    .map(|u| u.0.clone())
                    .collect::<Vec<_>>(),
                settings(String::new()),
            )?),
            None if self.sentinel.as_ref().is_some_and(|s| !s.urls.is_empty()) => {
                let sentinel = self.sentinel.clone().unwrap_or_default();
                Backend::Sentinel(RedisBackend::sentinel(
                    SentinelSettings {
                        master_name: sentinel.master_name,
                        sentinel_urls: sentinel.urls.into_iter().map(|u| u.0).collect(),
                        username: sentinel.username,
                        password: sentinel.password.map(|p| p.0),
                        db: 0,
                    },
                    settings(String::new()),
                )?)
            }
            None => Backend::Memory(MemoryBackend::new(self.memory_capacity)),
        };
        let (local, tracking) = match self.local_tier {
            None => (None, None),
            Some(tier) => {
                if tier.staleness_bound.is_zero() || tier.budget_bytes == 0 {
                    return Err(Error::Config(
                        "the local tier needs a staleness bound and a byte budget above zero; \
                         e.g. LocalTier::new(64 << 20) (5 ms by default)"
                            .into(),
                    ));
                }
                let store = Arc::new(LocalStore::new(tier.clone()));
                let primaries = match (&backend, &self.url) {
                    (Backend::Redis(_), Some(url)) => Ok(Primaries::Single(
                        tier.tracking_url.clone().unwrap_or_else(|| url.0.clone()),
                    )),
                    (Backend::Cluster(_), _) => Ok(Primaries::Cluster(
                        self.cluster_urls.iter().map(|u| u.0.clone()).collect(),
                    )),
                    (Backend::Sentinel(sentinel), _) => Ok(Primaries::Sentinel(
                        sentinel.sentinel_clients(),
                        sentinel.url().clone(),
                    )),
                    (Backend::Memory(_), _) => Err("the cache is in memory already"),
                    (Backend::Redis(_), None) => Err("the cache has no server URL"),
                };
                let tracking = match primaries {
                    Ok(primaries) => Some(start_tracking(
                        &store,
                        TrackingSettings {
                            cache: self.name.clone(),
                            primaries,
                            tls_ca: tls_ca.clone(),
                            namespace: keys.namespace().to_owned(),
                            connect_timeout: self.connect_timeout,
                        },
                    )),
                    Err(why) => {
                        tracing::warn!(cache = %self.name, "local tier turned off: {why}");
                        store.turn_off(why.to_owned());
                        None
                    }
                };
                (Some(store), tracking)
            }
        };
        Ok(Cache::from_inner(Inner {
            name: self.name,
            backend,
            codec: self.codec,
            keys,
            default_ttl: self.default_ttl,
            stats: Default::default(),
            flights: Default::default(),
            fence: Default::default(),
            keeper: Default::default(),
            refreshes: Default::default(),
            log: Default::default(),
            lock: self.lock,
            reads: Default::default(),
            coalesce_reads: self.coalesce_reads,
            lookup_slots: tokio::sync::Semaphore::new(crate::cache::LOOKUP_SLOTS),
            slot_wait: self.response_timeout,
            local,
            _tracking: tracking,
        }))
    }

    /// Builds the cache and checks that the backend answers a `PING`, so a
    /// wrong URL or a stopped server is reported at start-up.
    pub async fn connect(self) -> Result<Cache> {
        let cache = self.build()?;
        cache.ping().await?;
        Ok(cache)
    }
}

/// A Sentinel group to find the master through.
#[derive(Clone, Debug, Default)]
struct Sentinel {
    master_name: String,
    urls: Vec<RedactedDebug>,
    username: Option<String>,
    password: Option<Secret>,
}

/// A URL whose `Debug` hides its password, so a logged builder shows none.
#[derive(Clone)]
struct RedactedDebug(String);

impl std::fmt::Debug for RedactedDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", crate::RedactedUrl::new(&self.0).as_str())
    }
}

/// A password: `Debug` never shows it.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("****")
    }
}
