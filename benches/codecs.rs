//! Encode and decode of every serializer x compressor compiled in, on the
//! datasets of `tools/fastest-config (cargo run --release -p cache-memoize-fastest-config)` (no Redis: the codec alone).
//!
//! ```text
//! cargo bench --features all-codecs --bench codecs
//! cargo bench --features all-codecs --bench codecs -- 'encode/symbols1000'
//! ```
//!
//! One group per question and dataset, "how fast does each configuration
//! encode this value?" and "... decode it?", so criterion compares the
//! configurations side by side. Throughput is the value's size as compact
//! JSON, the same for every configuration, so the MB/s figures compare
//! directly.

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

#[path = "support/datasets.rs"]
mod datasets;

use std::hint::black_box;

use cache_memoize::Codec;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use datasets::{configurations, Dataset, Sample, Visit};

/// Benchmarks one configuration on one dataset in `group`.
struct Bench<'a, 'g> {
    group: &'a mut BenchmarkGroup<'g, WallTime>,
    label: &'a str,
    codec: &'a Codec,
    decode: bool,
}

impl Visit for Bench<'_, '_> {
    type Output = ();
    fn visit<T: Sample>(self, value: &T) {
        let codec = self.codec;
        // The sanity check comes before any timing: a configuration that
        // does not round-trip this value is not benchmarked.
        let Ok(entry) = codec.encode(value) else {
            return;
        };
        if codec.decode::<T>(&entry).ok().as_ref() != Some(value) {
            return;
        }
        if self.decode {
            self.group.bench_function(self.label, |b| {
                b.iter(|| codec.decode::<T>(black_box(&entry)).unwrap())
            });
        } else {
            self.group.bench_function(self.label, |b| {
                b.iter(|| codec.encode(black_box(value)).unwrap())
            });
        }
    }
}

fn codecs(c: &mut Criterion) {
    // Compress every payload, as the example does by default.
    let configs = configurations(0);
    for dataset in Dataset::builtin() {
        for (question, decode) in [("encode", false), ("decode", true)] {
            let mut group = c.benchmark_group(format!("{question}/{}", dataset.name));
            group.throughput(Throughput::Bytes(dataset.json_len() as u64));
            for (label, codec) in &configs {
                dataset.visit(Bench {
                    group: &mut group,
                    label,
                    codec,
                    decode,
                });
            }
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    // 32 configurations x 4 datasets x 2 questions: keep each one short.
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1))
        .sample_size(20);
    targets = codecs
}
criterion_main!(benches);
