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
}

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
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.entries.get(key).await.map(|e| e.bytes.to_vec())
    }

    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) {
        let entry = Entry {
            bytes: value.into(),
            ttl,
        };
        self.entries.insert(key.to_owned(), entry).await;
    }

    pub(crate) async fn delete(&self, key: &str) -> bool {
        self.entries.remove(key).await.is_some()
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
            if self.entries.remove(key.as_str()).await.is_some() {
                deleted += 1;
            }
        }
        deleted
    }
}
