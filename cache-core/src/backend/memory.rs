//! The embedded backend: a moka cache with per-entry expiry, holding the same
//! encoded bytes Redis would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::key::KeyMatcher;

#[derive(Clone, Debug)]
struct Entry {
    bytes: Arc<[u8]>,
    ttl: Option<Duration>,
}

struct EntryTtl;

impl moka::Expiry<String, Entry> for EntryTtl {
    fn expire_after_create(&self, _: &String, entry: &Entry, _: Instant) -> Option<Duration> {
        entry.ttl
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        entry.ttl
    }
}

pub(crate) struct MemoryBackend {
    entries: moka::future::Cache<String, Entry>,
    capacity_bytes: u64,
    /// Writes of one key happen one at a time, so a lease's compare-and-set
    /// cannot interleave with a delete (moka's own compute is not ordered
    /// with plain inserts and removals).
    writers: Box<[tokio::sync::Mutex<()>]>,
    hasher: std::hash::RandomState,
}

/// Stripes of [`MemoryBackend::writers`].
const WRITER_STRIPES: usize = 64;

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("capacity_bytes", &self.capacity_bytes)
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl MemoryBackend {
    /// Holds at most `capacity_bytes` of keys and values, evicting the least
    /// useful entries (TinyLFU) beyond that.
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        let entries = moka::future::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|key: &String, entry: &Entry| {
                u32::try_from(key.len() + entry.bytes.len() + 64).unwrap_or(u32::MAX)
            })
            .expire_after(EntryTtl)
            .build();
        Self {
            entries,
            capacity_bytes,
            writers: (0..WRITER_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            hasher: std::hash::RandomState::new(),
        }
    }

    async fn writing(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::BuildHasher;
        let stripe = self.hasher.hash_one(key) as usize % WRITER_STRIPES;
        self.writers[stripe].lock().await
    }

    pub(crate) async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.entries.get(key).await.map(|e| e.bytes.to_vec())
    }

    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) {
        let _writing = self.writing(key).await;
        self.insert(key, value, ttl).await;
    }

    async fn insert(&self, key: &str, value: &[u8], ttl: Option<Duration>) {
        let entry = Entry {
            bytes: value.into(),
            ttl,
        };
        self.entries.insert(key.to_owned(), entry).await;
    }

    pub(crate) async fn delete(&self, key: &str) -> bool {
        let _writing = self.writing(key).await;
        self.entries.remove(key).await.is_some()
    }

    /// Writes `lease` into `key` if it is empty (or whatever it holds, with
    /// `overwrite`): whether the lease is now there.
    pub(crate) async fn take_lease(
        &self,
        key: &str,
        lease: &[u8],
        ttl: Duration,
        overwrite: bool,
    ) -> bool {
        let _writing = self.writing(key).await;
        if !overwrite && self.entries.get(key).await.is_some() {
            return false;
        }
        self.insert(key, lease, Some(ttl)).await;
        true
    }

    /// Replaces `lease` by `value` if the key still holds `lease`.
    pub(crate) async fn store_leased(
        &self,
        key: &str,
        lease: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> bool {
        let _writing = self.writing(key).await;
        if !self.holds(key, lease).await {
            return false;
        }
        self.insert(key, value, ttl).await;
        true
    }

    /// Replaces the value with format-2 version token `token` by `value`.
    pub(crate) async fn store_if_version(
        &self,
        key: &str,
        token: u64,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> bool {
        let _writing = self.writing(key).await;
        let holds = self.entries.get(key).await.is_some_and(|entry| {
            let bytes = &*entry.bytes;
            bytes.len() >= 13 && bytes[..2] == [0xCA, 2] && bytes[5..13] == token.to_be_bytes()
        });
        if holds {
            self.insert(key, value, ttl).await;
        }
        holds
    }

    /// Extends the expiry of `lease` to `ttl` from now, if the key holds it.
    pub(crate) async fn renew_lease(&self, key: &str, lease: &[u8], ttl: Duration) -> bool {
        let _writing = self.writing(key).await;
        if !self.holds(key, lease).await {
            return false;
        }
        self.insert(key, lease, Some(ttl)).await;
        true
    }

    /// Stores `value` without expiry if `key` is empty, as `SET NX`.
    pub(crate) async fn set_if_absent(&self, key: &str, value: &[u8]) -> bool {
        let _writing = self.writing(key).await;
        if self.entries.get(key).await.is_some() {
            return false;
        }
        self.insert(key, value, None).await;
        true
    }

    /// Deletes the key if it still holds `lease`.
    pub(crate) async fn release_lease(&self, key: &str, lease: &[u8]) -> bool {
        let _writing = self.writing(key).await;
        self.holds(key, lease).await && self.entries.remove(key).await.is_some()
    }

    async fn holds(&self, key: &str, lease: &[u8]) -> bool {
        self.entries
            .get(key)
            .await
            .is_some_and(|entry| *entry.bytes == *lease)
    }

    pub(crate) async fn delete_matching(&self, matcher: &KeyMatcher) -> u64 {
        let doomed: Vec<Arc<String>> = self
            .entries
            .iter()
            .filter(|(key, _)| matcher.matches(key))
            .map(|(key, _)| key)
            .collect();
        let mut deleted = 0;
        for key in doomed {
            let _writing = self.writing(&key).await;
            if self.entries.remove(key.as_str()).await.is_some() {
                deleted += 1;
            }
        }
        deleted
    }
}
