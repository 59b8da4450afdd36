//! The Redis backend: deadpool-redis for connection management, shared
//! multiplexed connections for the requests themselves.

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands, RedisError};
use deadpool_redis::{Pool, PoolError, Runtime};

use super::shared_connection::{Leased, SharedConnection};
use crate::error::{Error, Result};
use crate::key::KeyMatcher;
use crate::redacted_url::RedactedUrl;

/// How many keys one `SCAN` step asks for, and one `UNLINK` deletes.
const SCAN_BATCH: usize = 500;

pub(crate) struct RedisSettings {
    pub(crate) url: String,
    pub(crate) connections: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
}

pub(crate) struct RedisBackend {
    connections: SharedConnection,
    url: RedactedUrl,
    response_timeout: Duration,
    connect_timeout: Duration,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.url)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Validates the URL and sets up the pool; no connection is made yet.
    pub(crate) fn new(settings: RedisSettings) -> Result<Self> {
        let url = RedactedUrl::new(&settings.url);
        let info = redis::IntoConnectionInfo::into_connection_info(settings.url.as_str()).map_err(
            |e| Error::InvalidUrl {
                url: url.clone(),
                reason: describe_url_error(&e),
            },
        )?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout));
        let manager = deadpool_redis::Manager::new_with_config(info, config).map_err(|e| {
            Error::InvalidUrl {
                url: url.clone(),
                reason: describe_url_error(&e),
            }
        })?;
        let connections = settings.connections.max(1);
        let pool = Pool::builder(manager)
            // Spare room so a broken connection can be replaced while the
            // others are leased.
            .max_size(connections * 2)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.response_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            connections: SharedConnection::new(pool, connections),
            url,
            response_timeout: settings.response_timeout,
            connect_timeout: settings.connect_timeout,
        })
    }

    pub(crate) fn url(&self) -> &RedactedUrl {
        &self.url
    }

    async fn lease(&self) -> Result<Leased> {
        self.connections.get().await.map_err(|e| match e {
            PoolError::Timeout(_) => Error::Timeout {
                url: self.url.clone(),
                timeout: self.connect_timeout,
            },
            PoolError::Backend(e) => self.connect_error(&e),
            other => Error::Connect {
                url: self.url.clone(),
                reason: other.to_string(),
            },
        })
    }

    fn connect_error(&self, e: &RedisError) -> Error {
        if e.is_timeout() {
            Error::Timeout {
                url: self.url.clone(),
                timeout: self.connect_timeout,
            }
        } else {
            Error::Connect {
                url: self.url.clone(),
                reason: e.to_string(),
            }
        }
    }

    /// Maps a command error, and drops the connection if it broke.
    fn command_error(&self, leased: &Leased, e: RedisError) -> Error {
        if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
            self.connections.discard(leased);
        }
        if e.is_timeout() {
            Error::Timeout {
                url: self.url.clone(),
                timeout: self.response_timeout,
            }
        } else {
            Error::Command {
                url: self.url.clone(),
                reason: e.to_string(),
            }
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut leased = self.lease().await?;
        let reply: std::result::Result<Option<Vec<u8>>, RedisError> = leased.conn.get(key).await;
        reply.map_err(|e| self.command_error(&leased, e))
    }

    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let mut leased = self.lease().await?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(ttl) = ttl {
            // PX takes milliseconds; a sub-millisecond ttl still expires.
            cmd.arg("PX")
                .arg(ttl.as_millis().clamp(1, u64::MAX as u128) as u64);
        }
        let reply: std::result::Result<(), RedisError> = cmd.query_async(&mut leased.conn).await;
        reply.map_err(|e| self.command_error(&leased, e))
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool> {
        let mut leased = self.lease().await?;
        let reply: std::result::Result<u64, RedisError> = leased.conn.del(key).await;
        reply
            .map(|n| n > 0)
            .map_err(|e| self.command_error(&leased, e))
    }

    /// `SCAN … MATCH` + `UNLINK` in batches: never `KEYS`, which blocks the
    /// server for as long as it takes to walk the whole keyspace.
    pub(crate) async fn delete_matching(&self, matcher: &KeyMatcher) -> Result<u64> {
        let glob = matcher.glob();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let mut leased = self.lease().await?;
            let step: std::result::Result<(u64, Vec<String>), RedisError> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&glob)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(&mut leased.conn)
                .await;
            let (next, keys) = step.map_err(|e| self.command_error(&leased, e))?;
            let keys: Vec<String> = keys.into_iter().filter(|k| matcher.matches(k)).collect();
            if !keys.is_empty() {
                let n: std::result::Result<u64, RedisError> = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut leased.conn)
                    .await;
                deleted += n.map_err(|e| self.command_error(&leased, e))?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        let mut leased = self.lease().await?;
        let reply: std::result::Result<String, RedisError> =
            redis::cmd("PING").query_async(&mut leased.conn).await;
        reply.map(drop).map_err(|e| self.command_error(&leased, e))
    }
}

fn describe_url_error(e: &RedisError) -> String {
    let text = e.to_string();
    if text.contains("TLS") || text.contains("tls") {
        format!("{text} (rediss:// needs the `tls` cargo feature of cache-memoize)")
    } else {
        text
    }
}
