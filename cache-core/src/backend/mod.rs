//! Where entries live: Redis (pooled, multiplexed) or process memory.

mod cluster;
mod memory;
mod redis;
mod shared_connection;

use std::time::Duration;

pub(crate) use self::cluster::ClusterPool;
pub(crate) use self::memory::MemoryBackend;
pub(crate) use self::redis::{RedisBackend, RedisSettings};
use crate::circuit_breaker::BreakerState;
use crate::error::Result;
use crate::key::KeyMatcher;

/// The store behind a [`Cache`](crate::Cache). An enum rather than a trait
/// object: the hot path stays free of boxed futures.
#[derive(Debug)]
pub(crate) enum Backend {
    Redis(RedisBackend),
    Cluster(RedisBackend<ClusterPool>),
    Memory(MemoryBackend),
}

impl Backend {
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Backend::Redis(b) => b.get(key).await,
            Backend::Cluster(b) => b.get(key).await,
            // Boxed (here and in `set`): moka's futures are large, and every
            // memoized call in flight would carry their size.
            Backend::Memory(b) => Ok(Box::pin(b.get(key)).await),
        }
    }

    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        match self {
            Backend::Redis(b) => b.set(key, value, ttl).await,
            Backend::Cluster(b) => b.set(key, value, ttl).await,
            Backend::Memory(b) => {
                Box::pin(b.set(key, value, ttl)).await;
                Ok(())
            }
        }
    }

    pub(crate) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        match self {
            Backend::Redis(b) => b.get_many(keys).await,
            Backend::Cluster(b) => b.get_many(keys).await,
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
            Backend::Memory(b) => Ok(b.delete(key).await),
        }
    }

    pub(crate) async fn delete_matching(&self, matcher: &KeyMatcher) -> Result<u64> {
        match self {
            Backend::Redis(b) => b.delete_matching(matcher).await,
            Backend::Cluster(b) => b.delete_matching(matcher).await,
            Backend::Memory(b) => Ok(b.delete_matching(matcher).await),
        }
    }

    /// Takes the cross-process lock `key` for `ttl`. The in-memory backend
    /// serves one process, where single-flight already holds callers back.
    pub(crate) async fn try_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        match self {
            Backend::Redis(b) => b.try_lock(key, token, ttl).await,
            Backend::Cluster(b) => b.try_lock(key, token, ttl).await,
            Backend::Memory(_) => Ok(true),
        }
    }

    pub(crate) async fn unlock(&self, key: &str, token: &str) -> Result<bool> {
        match self {
            Backend::Redis(b) => b.unlock(key, token).await,
            Backend::Cluster(b) => b.unlock(key, token).await,
            Backend::Memory(_) => Ok(true),
        }
    }

    pub(crate) fn breaker(&self) -> (BreakerState, u64) {
        match self {
            Backend::Redis(b) => (b.breaker_state(), b.breaker_openings()),
            Backend::Cluster(b) => (b.breaker_state(), b.breaker_openings()),
            Backend::Memory(_) => (BreakerState::Closed, 0),
        }
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        match self {
            Backend::Redis(b) => b.ping().await,
            Backend::Cluster(b) => b.ping().await,
            Backend::Memory(_) => Ok(()),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Backend::Redis(b) => format!("redis at {}", b.url()),
            Backend::Cluster(b) => format!("redis cluster at {}", b.url()),
            Backend::Memory(_) => "in-memory".to_owned(),
        }
    }

    pub(crate) fn is_memory(&self) -> bool {
        matches!(self, Backend::Memory(_))
    }
}
