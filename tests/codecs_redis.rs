//! Through a real redis-server: a cache configured with one codec reads
//! entries that caches with every other compiled-in codec wrote (run with
//! `--features all-codecs` to cover all of them), and the entry in Redis
//! carries the writer's ids.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;

use cache_memoize::codec::{compressors, serializers};
use cache_memoize::{Cache, Codec};

fn cache(url: &str, codec: Codec) -> Cache {
    Cache::builder()
        .url(url)
        .prefix("codecs_redis")
        .codec(codec)
        .build()
        .expect("valid test configuration")
}

#[tokio::test]
async fn a_cache_reads_what_caches_with_other_codecs_wrote() {
    let redis = support::shared_redis();
    let value: BTreeMap<String, Vec<String>> = (0..100)
        .map(|i| (format!("k{i}"), vec![format!("value {i}"); 5]))
        .collect();
    let mut writers = Vec::new();
    for serializer in serializers() {
        for compressor in compressors() {
            let codec = Codec::builder()
                .serializer(serializer.clone())
                .compressor(compressor)
                .compress_threshold(0)
                .build();
            writers.push(cache(redis.url(), codec));
        }
    }
    let reader = cache(redis.url(), Codec::default());
    for writer in &writers {
        let codec = writer.codec();
        let key = format!(
            "{}+{}",
            codec.serializer().name(),
            codec.compressor().name()
        );
        writer.set(&key, &value, None).await.unwrap();
        let entry = reader.get_entry(&key).await.unwrap().expect("stored");
        assert_eq!(entry[2], codec.serializer().id(), "{key}");
        assert_eq!(entry[3], codec.compressor().id(), "{key}");
        let back: Option<BTreeMap<String, Vec<String>>> = reader.get(&key).await.unwrap();
        assert_eq!(
            back.as_ref(),
            Some(&value),
            "the default cache reading {key}"
        );
        // And the other way round: each codec reads the default's entries.
        reader.set("default", &value, None).await.unwrap();
        let back: Option<BTreeMap<String, Vec<String>>> = writer.get("default").await.unwrap();
        assert_eq!(back.as_ref(), Some(&value), "{key} reading the default");
        writer.delete(&key).await.unwrap();
    }
    assert_eq!(reader.stats().decode_failures, 0);
}
