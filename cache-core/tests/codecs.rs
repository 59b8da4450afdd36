//! Every compiled-in serializer and compressor: round trips, entries written
//! by one codec read by another, and decompression bombs refused.
//!
//! Run with `--features all-codecs` to cover the optional codecs; without it
//! the same tests cover the always-on ones.

use std::collections::BTreeMap;

use cache_core::codec::{compressors, serializers};
use cache_core::{Codec, CodecError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Symbol {
    name: String,
    module: Option<String>,
    offset: u64,
    size: u32,
    delta: i64,
    ratio: f64,
    tags: Vec<String>,
    #[serde(with = "serde_bytes")]
    digest: Vec<u8>,
}

fn sample() -> BTreeMap<String, Symbol> {
    (0..200u32)
        .map(|i| {
            let symbol = Symbol {
                name: format!("fn_{i}"),
                module: (i % 3 != 0).then(|| format!("mod_{}", i % 7)),
                offset: u64::from(i) * 4096 + 0xdead_0000,
                size: i * 17,
                delta: -(i64::from(i) * 1_000_003),
                ratio: f64::from(i) / 7.0,
                tags: vec!["hot".into(), "é ü 漢字".into()],
                digest: vec![i as u8; 16],
            };
            (format!("{i:04}"), symbol)
        })
        .collect()
}

fn label(codec: &Codec) -> String {
    format!(
        "{}+{}",
        codec.serializer().name(),
        codec.compressor().name()
    )
}

/// One codec per serializer x compressor, compressing every payload.
fn every_codec() -> Vec<Codec> {
    let mut codecs = Vec::new();
    for serializer in serializers() {
        for compressor in compressors() {
            codecs.push(
                Codec::builder()
                    .serializer(serializer.clone())
                    .compressor(compressor)
                    .compress_threshold(0)
                    .build(),
            );
        }
    }
    codecs
}

#[test]
fn ids_are_unique_and_all_codecs_are_there() {
    let mut serializer_ids: Vec<u8> = serializers().iter().map(|s| s.id()).collect();
    let mut compressor_ids: Vec<u8> = compressors().iter().map(|c| c.id()).collect();
    serializer_ids.dedup();
    compressor_ids.dedup();
    assert_eq!(serializer_ids.len(), serializers().len());
    assert_eq!(compressor_ids.len(), compressors().len());
    if cfg!(feature = "all-codecs") {
        assert_eq!(serializer_ids, [1, 2, 3, 4]);
        assert_eq!(compressor_ids, [0, 1, 2, 3, 4, 5, 6, 7]);
    }
}

#[test]
fn every_configuration_round_trips() {
    let value = sample();
    for codec in every_codec() {
        let entry = codec.encode(&value).unwrap();
        assert_eq!(entry[2], codec.serializer().id(), "{}", label(&codec));
        if codec.compressor().id() != 0 {
            assert_eq!(
                entry[3],
                codec.compressor().id(),
                "{} did not compress",
                label(&codec)
            );
        }
        let back: BTreeMap<String, Symbol> = codec
            .decode(&entry)
            .unwrap_or_else(|e| panic!("{}: {e}", label(&codec)));
        assert_eq!(back, value, "{}", label(&codec));
    }
}

#[test]
fn any_codec_reads_what_any_other_wrote() {
    let value = sample();
    // Reading does not depend on the reader's own compressor, so one reader
    // per serializer covers every path.
    let readers: Vec<Codec> = serializers()
        .into_iter()
        .map(|s| Codec::builder().serializer(s).build())
        .collect();
    for writer in &every_codec() {
        let entry = writer.encode(&value).unwrap();
        for reader in &readers {
            let back: BTreeMap<String, Symbol> = reader
                .decode(&entry)
                .unwrap_or_else(|e| panic!("{} reading {}: {e}", label(reader), label(writer)));
            assert_eq!(back, value);
        }
    }
}

#[test]
fn every_compressor_refuses_a_bomb() {
    const LIMIT: usize = 256 << 10;
    let zeros = vec![0u8; 4 << 20];
    for compressor in compressors().into_iter().filter(|c| c.id() != 0) {
        let mut bomb = Vec::new();
        compressor.compress(&zeros, &mut bomb).unwrap();
        assert!(
            bomb.len() < zeros.len() / 20,
            "{} bomb is {} bytes",
            compressor.name(),
            bomb.len()
        );
        let mut out = Vec::new();
        let refused = compressor.decompress(&bomb, LIMIT, &mut out);
        assert!(
            matches!(refused, Err(CodecError::TooLarge { limit: LIMIT })),
            "{}: {refused:?}",
            compressor.name()
        );
        assert!(
            out.len() <= LIMIT,
            "{} kept {} bytes",
            compressor.name(),
            out.len()
        );
        // Exactly at the limit is fine.
        out.clear();
        compressor.decompress(&bomb, zeros.len(), &mut out).unwrap();
        assert_eq!(out.len(), zeros.len(), "{}", compressor.name());
    }
}

#[test]
fn a_bomb_inside_an_entry_is_a_decode_error() {
    let small = Codec::builder().max_value_size(64 << 10).build();
    // Under the 4 MiB the xz reader allows for its dictionary, so every
    // compressor must stop at the output limit.
    for codec in every_codec()
        .into_iter()
        .filter(|c| c.compressor().id() != 0)
    {
        let entry = codec.encode(&vec![0u8; 256 << 10]).unwrap();
        let refused = small.decode::<Vec<u8>>(&entry);
        assert!(
            matches!(refused, Err(CodecError::TooLarge { .. })),
            "{}: {refused:?}",
            label(&codec)
        );
    }
}

#[test]
fn corrupt_payloads_are_errors_not_panics() {
    let value = sample();
    for codec in every_codec() {
        let mut entry = codec.encode(&value).unwrap();
        let len = entry.len();
        // Flip bytes in the middle and cut the tail: never a panic.
        for i in (4..len).step_by(len / 16 + 1) {
            entry[i] ^= 0x5a;
        }
        let _ = codec.decode::<BTreeMap<String, Symbol>>(&entry);
        let _ = codec.decode::<BTreeMap<String, Symbol>>(&entry[..len / 2]);
    }
}

#[test]
fn serializers_refuse_trailing_bytes() {
    // MessagePack is left out: rmp-serde stops after the value by design.
    for serializer in serializers().into_iter().filter(|s| s.id() != 1) {
        let name = serializer.name();
        let codec = Codec::builder().serializer(serializer).build();
        let mut entry = codec.encode(&7u32).unwrap();
        assert_eq!(codec.decode::<u32>(&entry).unwrap(), 7, "{name}");
        entry.push(0);
        assert!(
            matches!(
                codec.decode::<u32>(&entry),
                Err(CodecError::Deserialize { .. })
            ),
            "{name}"
        );
    }
}
