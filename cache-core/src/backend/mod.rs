//! Where entries live: Redis (pooled, multiplexed) or process memory.

mod cluster;
mod hash_slot;
mod memory;
mod node_breakers;
mod redis;
mod sentinel;
mod shared_connection;
mod tracking;

use std::time::Duration;

pub(crate) use self::cluster::ClusterPool;
pub(crate) use self::memory::MemoryBackend;
pub(crate) use self::redis::{RedisBackend, RedisSettings};
pub(crate) use self::sentinel::{SentinelPool, SentinelSettings};
pub(crate) use self::tracking::{start as start_tracking, Primaries, Tracking, TrackingSettings};

use crate::circuit_breaker::BreakerState;
use crate::codec::header::Lease;
use crate::error::Result;
use crate::key::KeyMatcher;

/// The store behind a [`Cache`](crate::Cache). An enum rather than a trait
/// object: the hot path stays free of boxed futures.
#[derive(Debug)]
pub(crate) enum Backend {
    Redis(RedisBackend),
    Cluster(RedisBackend<ClusterPool>),
    Sentinel(RedisBackend<SentinelPool>),
    Memory(MemoryBackend),
}

impl Backend {
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Backend::Redis(b) => b.get(key).await,
            Backend::Cluster(b) => b.get(key).await,
            Backend::Sentinel(b) => b.get(key).await,
            // Boxed (here and in `set`): moka's futures are large, and every
            // memoized call in flight would carry their size.
            Backend::Memory(b) => Ok(Box::pin(b.get(key)).await),
        }
    }

    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        match self {
            Backend::Redis(b) => b.set(key, value, ttl).await,
            Backend::Cluster(b) => b.set(key, value, ttl).await,
            Backend::Sentinel(b) => b.set(key, value, ttl).await,
            Backend::Memory(b) => {
                Box::pin(b.set(key, value, ttl)).await;
                Ok(())
            }
        }
    }

    /// [`set`](Self::set) without a ttl, for a write that invalidates (a
    /// tag's new version): it waits for replicas as a delete does.
    pub(crate) async fn set_invalidating(&self, key: &str, value: &[u8]) -> Result<()> {
        match self {
            Backend::Redis(b) => b.set_invalidating(key, value).await,
            Backend::Cluster(b) => b.set_invalidating(key, value).await,
            Backend::Sentinel(b) => b.set_invalidating(key, value).await,
            Backend::Memory(b) => {
                Box::pin(b.set(key, value, None)).await;
                Ok(())
            }
        }
    }

    pub(crate) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        match self {
            Backend::Redis(b) => b.get_many(keys).await,
            Backend::Cluster(b) => b.get_many(keys).await,
            Backend::Sentinel(b) => b.get_many(keys).await,
            Backend::Memory(b) => {
                let mut found = Vec::with_capacity(keys.len());
                for key in keys {
                    found.push(b.get(key).await);
                }
                Ok(found)
            }
        }
    }

    pub(crate) async fn set_many(
        &self,
        entries: &[(String, std::sync::Arc<Vec<u8>>)],
        ttl: Option<Duration>,
    ) -> Result<()> {
        match self {
            Backend::Redis(b) => b.set_many(entries, ttl).await,
            Backend::Cluster(b) => b.set_many(entries, ttl).await,
            Backend::Sentinel(b) => b.set_many(entries, ttl).await,
            Backend::Memory(b) => {
                for (key, entry) in entries {
                    b.set(key, entry, ttl).await;
                }
                Ok(())
            }
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool> {
        match self {
            Backend::Redis(b) => b.delete(key).await,
            Backend::Cluster(b) => b.delete(key).await,
            Backend::Sentinel(b) => b.delete(key).await,
            Backend::Memory(b) => Ok(b.delete(key).await),
        }
    }

    pub(crate) async fn delete_matching(&self, matcher: &KeyMatcher) -> Result<u64> {
        match self {
            Backend::Redis(b) => b.delete_matching(matcher).await,
            Backend::Cluster(b) => b.delete_matching(matcher).await,
            Backend::Sentinel(b) => b.delete_matching(matcher).await,
            Backend::Memory(b) => Ok(b.delete_matching(matcher).await),
        }
    }

    /// Writes `lease` into `key` for `ttl`: only if the key is empty, or
    /// over whatever it holds with `overwrite` (a refresh). Whether the
    /// lease is now there.
    pub(crate) async fn take_lease(
        &self,
        key: &str,
        lease: &Lease,
        ttl: Duration,
        overwrite: bool,
    ) -> Result<bool> {
        let lease = lease.as_bytes();
        match self {
            Backend::Redis(b) => b.take_lease(key, lease, ttl, overwrite).await,
            Backend::Cluster(b) => b.take_lease(key, lease, ttl, overwrite).await,
            Backend::Sentinel(b) => b.take_lease(key, lease, ttl, overwrite).await,
            Backend::Memory(b) => Ok(Box::pin(b.take_lease(key, lease, ttl, overwrite)).await),
        }
    }

    /// Stores `value` in place of `lease`, if the key still holds it.
    pub(crate) async fn store_leased(
        &self,
        key: &str,
        lease: &Lease,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let lease = lease.as_bytes();
        match self {
            Backend::Redis(b) => b.store_leased(key, lease, value, ttl).await,
            Backend::Cluster(b) => b.store_leased(key, lease, value, ttl).await,
            Backend::Sentinel(b) => b.store_leased(key, lease, value, ttl).await,
            Backend::Memory(b) => Ok(Box::pin(b.store_leased(key, lease, value, ttl)).await),
        }
    }

    /// Replaces the value whose version token is `token` by `value`, if the
    /// key still holds it (a refresh of exactly what was read).
    pub(crate) async fn store_if_version(
        &self,
        key: &str,
        token: u64,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        match self {
            Backend::Redis(b) => b.store_if_version(key, token, value, ttl).await,
            Backend::Cluster(b) => b.store_if_version(key, token, value, ttl).await,
            Backend::Sentinel(b) => b.store_if_version(key, token, value, ttl).await,
            Backend::Memory(b) => Ok(Box::pin(b.store_if_version(key, token, value, ttl)).await),
        }
    }

    /// Extends the expiry of `lease` in `key` to `ttl` from now, if the key
    /// still holds it: whether it did.
    pub(crate) async fn renew_lease(
        &self,
        key: &str,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<bool> {
        let lease = lease.as_bytes();
        match self {
            Backend::Redis(b) => b.renew_lease(key, lease, ttl).await,
            Backend::Cluster(b) => b.renew_lease(key, lease, ttl).await,
            Backend::Sentinel(b) => b.renew_lease(key, lease, ttl).await,
            Backend::Memory(b) => Ok(Box::pin(b.renew_lease(key, lease, ttl)).await),
        }
    }

    /// `SET key value NX` (no expiry): whether it was set.
    pub(crate) async fn set_if_absent(&self, key: &str, value: &[u8]) -> Result<bool> {
        match self {
            Backend::Redis(b) => b.set_if_absent(key, value).await,
            Backend::Cluster(b) => b.set_if_absent(key, value).await,
            Backend::Sentinel(b) => b.set_if_absent(key, value).await,
            Backend::Memory(b) => Ok(Box::pin(b.set_if_absent(key, value)).await),
        }
    }

    /// Deletes `key` if it still holds `lease`.
    pub(crate) async fn release_lease(&self, key: &str, lease: &Lease) -> Result<bool> {
        let lease = lease.as_bytes();
        match self {
            Backend::Redis(b) => b.release_lease(key, lease).await,
            Backend::Cluster(b) => b.release_lease(key, lease).await,
            Backend::Sentinel(b) => b.release_lease(key, lease).await,
            Backend::Memory(b) => Ok(Box::pin(b.release_lease(key, lease)).await),
        }
    }

    pub(crate) fn breaker(&self) -> (BreakerState, u64) {
        match self {
            Backend::Redis(b) => b.breakers(),
            Backend::Cluster(b) => b.breakers(),
            Backend::Sentinel(b) => b.breakers(),
            Backend::Memory(_) => (BreakerState::Closed, 0),
        }
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        match self {
            Backend::Redis(b) => b.ping().await,
            Backend::Cluster(b) => b.ping().await,
            Backend::Sentinel(b) => b.ping().await,
            Backend::Memory(_) => Ok(()),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Backend::Redis(b) => format!("redis at {}", b.url()),
            Backend::Cluster(b) => format!("redis cluster at {}", b.url()),
            Backend::Sentinel(b) => format!("redis sentinel {}", b.url()),
            Backend::Memory(_) => "in-memory".to_owned(),
        }
    }

    pub(crate) fn is_memory(&self) -> bool {
        matches!(self, Backend::Memory(_))
    }
}
