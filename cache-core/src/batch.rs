//! Many keys in one round trip: `get_many` (MGET), `set_many` (one pipeline
//! of `SET … PX`), and `get_or_compute_many`, which computes only the misses,
//! in one call, and stores them in one pipeline. Large values of a batch are
//! compressed in parallel on the low-priority codec pool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::Cache;
use crate::codec::header::Lease;
use crate::codec::Codec;
use crate::error::{CodecError, Error, Result};
use crate::memoizing::{open, OFFLOAD_BYTES};
use crate::stats::Stats;

impl Cache {
    /// The values under `keys`, in order; `None` where there is none or it
    /// does not decode. One `MGET` on Redis.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let cache = cache_core::Cache::memory();
    /// cache.set_many(&[("a", 1u32), ("b", 2)], None).await.unwrap();
    /// let got: Vec<Option<u32>> = cache.get_many(&["a", "x", "b"]).await.unwrap();
    /// assert_eq!(got, [Some(1), None, Some(2)]);
    /// # }
    /// ```
    pub async fn get_many<T: DeserializeOwned>(
        &self,
        keys: &[impl AsRef<str>],
    ) -> Result<Vec<Option<T>>> {
        let full: Vec<String> = keys.iter().map(|k| self.full_key(k.as_ref())).collect();
        let entries = self.inner.backend.get_many(&full).await?;
        let mut values = Vec::with_capacity(entries.len());
        for (key, entry) in full.iter().zip(entries) {
            values.push(match entry {
                None => None,
                // Being computed by someone: no value yet.
                Some(entry) if Lease::is_lease(&entry) => None,
                Some(entry) => match open(&self.inner.codec, entry).await {
                    Ok(payload) => self.deserialize(key, &payload),
                    Err(e) => {
                        self.decode_failure(key, &e);
                        None
                    }
                },
            });
        }
        Ok(values)
    }

    /// Stores every `(key, value)` for `ttl` (`None`: the default ttl) in one
    /// pipeline. Large values are compressed in parallel.
    pub async fn set_many<K: AsRef<str>, T: Serialize>(
        &self,
        items: &[(K, T)],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let values: Vec<&T> = items.iter().map(|(_, v)| v).collect();
        let mut entries = Vec::with_capacity(items.len());
        for (i, encoded) in encode_all(&self.inner.codec, &values)
            .await
            .into_iter()
            .enumerate()
        {
            let entry = encoded.map_err(Error::Encode)?;
            entries.push((self.full_key(items[i].0.as_ref()), entry));
        }
        // Writes: earlier reads and computations of these keys must not
        // store or share their values after them (see `Cache::set`).
        for (full, _) in &entries {
            self.invalidate_local(full);
        }
        let written = self
            .inner
            .backend
            .set_many(&entries, self.ttl_or_default(ttl))
            .await;
        for (full, _) in &entries {
            self.forget_reads(full);
        }
        written
    }

    /// The values under `keys`; the missing ones (absent, undecodable, or all
    /// of them when the cache is unavailable) come from one call of
    /// `compute_missing` with their indexes, and are stored in one pipeline.
    /// Never fails: cache trouble means computing. A computed value that
    /// cannot be encoded or exceeds the codec's `max_value_size` is returned
    /// but not stored (counted in [`StatsSnapshot::store_skipped`]); the
    /// other values of the batch are stored all the same.
    ///
    /// [`StatsSnapshot::store_skipped`]: crate::StatsSnapshot::store_skipped
    ///
    /// `compute_missing` must return one value per index it is given, in order.
    pub async fn get_or_compute_many<K, T, F, Fut>(
        &self,
        keys: &[K],
        ttl: Option<Duration>,
        compute_missing: F,
    ) -> Vec<T>
    where
        K: AsRef<str>,
        T: Serialize + DeserializeOwned,
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Vec<T>>,
    {
        let found: Vec<Option<T>> = match self.get_many(keys).await {
            Ok(found) => found,
            Err(e) => {
                self.backend_error("get_many", &e);
                keys.iter().map(|_| None).collect()
            }
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| found[i].is_none()).collect();
        for _ in 0..keys.len() - missing.len() {
            Stats::bump(&self.inner.stats.hits);
        }
        for _ in &missing {
            Stats::bump(&self.inner.stats.misses);
        }
        if missing.is_empty() {
            return found.into_iter().flatten().collect();
        }
        let computed = compute_missing(missing.clone()).await;
        assert_eq!(
            computed.len(),
            missing.len(),
            "compute_missing must return one value per missing index"
        );
        // A value that cannot be encoded (or is over the size limit) is
        // skipped on its own: the rest of the batch is still stored.
        let mut entries = Vec::with_capacity(missing.len());
        for (&i, encoded) in missing
            .iter()
            .zip(encode_all(&self.inner.codec, &computed).await)
        {
            let full = self.full_key(keys[i].as_ref());
            match encoded {
                Ok(entry) => entries.push((full, entry)),
                Err(e) => {
                    Stats::bump(&self.inner.stats.store_skipped);
                    tracing::warn!(cache = %self.inner.name, key = full, "value not cached: {e}");
                }
            }
        }
        if !entries.is_empty() {
            let ttl = self.ttl_or_default(ttl);
            match self.inner.backend.set_many(&entries, ttl).await {
                Ok(()) => {
                    for _ in &entries {
                        Stats::bump(&self.inner.stats.stores);
                    }
                }
                Err(e) => self.backend_error("set_many", &e),
            }
        }
        let mut computed = computed.into_iter();
        found
            .into_iter()
            .map(|value| match value {
                Some(value) => value,
                None => computed.next().expect("one computed value per miss"),
            })
            .collect()
    }
}

/// Encodes `values`, compressing the large ones in parallel on the
/// low-priority codec pool (see `codec_pool`).
///
/// ```
/// # #[tokio::main]
/// # async fn main() {
/// use cache_core::{batch::encode_all, Codec};
/// let docs = vec!["lorem ipsum ".repeat(30_000); 4];
/// let entries = encode_all(&Codec::default(), &docs).await;
/// assert!(entries.iter().all(|e| e.as_ref().unwrap().len() < 10_000));
/// # }
/// ```
pub async fn encode_all<T: Serialize>(
    codec: &Codec,
    values: &[T],
) -> Vec<Result<Arc<Vec<u8>>, CodecError>> {
    let mut pending = Vec::with_capacity(values.len());
    for value in values {
        pending.push(match codec.serialize(value) {
            Ok(serialized) if serialized.len() >= OFFLOAD_BYTES => {
                let codec = codec.clone();
                Err(crate::codec_pool::run(
                    move || codec.seal(serialized),
                    "compressing the value panicked",
                ))
            }
            Ok(serialized) => Ok(codec.seal(serialized)),
            Err(e) => Ok(Err(e)),
        });
    }
    let mut entries = Vec::with_capacity(values.len());
    for job in pending {
        let sealed = match job {
            Ok(sealed) => sealed,
            Err(running) => running.await,
        };
        entries.push(sealed.map(|(entry, _)| entry));
    }
    entries
}
