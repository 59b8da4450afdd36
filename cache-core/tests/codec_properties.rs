//! Property tests of the codec and the key hash: any value round-trips, and
//! no byte string, however mangled, makes decoding panic or allocate beyond
//! the limit. (cargo-fuzz needs a nightly toolchain, which this project does
//! not require; these run on stable in every `cargo test`.)

use std::collections::BTreeMap;

use cache_core::codec::{JsonSerializer, NoCompression, ZlibCompressor};
use cache_core::key::function_key;
use cache_core::Codec;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(f64),
    Polygon {
        points: Vec<(i32, i32)>,
        label: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    scores: Vec<i16>,
    attributes: BTreeMap<String, String>,
    shape: Shape,
    blob: Option<Vec<u8>>,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Empty),
        (-1e12f64..1e12).prop_map(Shape::Circle),
        (
            prop::collection::vec(any::<(i32, i32)>(), 0..20),
            any::<Option<String>>()
        )
            .prop_map(|(points, label)| Shape::Polygon { points, label }),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (
        any::<u64>(),
        ".{0,40}",
        prop::collection::vec(any::<i16>(), 0..200),
        prop::collection::btree_map(".{0,8}", ".{0,30}", 0..20),
        shape(),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..3000)),
    )
        .prop_map(|(id, name, scores, attributes, shape, blob)| Record {
            id,
            name,
            scores,
            attributes,
            shape,
            blob,
        })
}

fn codec() -> impl Strategy<Value = Codec> {
    (0usize..3000, 0u32..10, any::<bool>(), any::<bool>()).prop_map(
        |(threshold, level, json, compress)| {
            let builder = Codec::builder().compress_threshold(threshold);
            let builder = if json {
                builder.serializer(JsonSerializer)
            } else {
                builder
            };
            if compress {
                builder.compressor(ZlibCompressor::new(level)).build()
            } else {
                builder.compressor(NoCompression).build()
            }
        },
    )
}

proptest! {
    // 256 cases per property in a normal run; set PROPTEST_CASES for more.
    #![proptest_config(ProptestConfig::with_cases(std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)))]

    #[test]
    fn every_value_round_trips(codec in codec(), value in record()) {
        let entry = codec.encode(&value).unwrap();
        prop_assert_eq!(codec.decode::<Record>(&entry).unwrap(), value.clone());
        // Any default reader decodes what any writer wrote.
        prop_assert_eq!(Codec::default().decode::<Record>(&entry).unwrap(), value);
    }

    #[test]
    fn strings_maps_and_options_round_trip(
        s in ".*",
        m in prop::collection::btree_map(any::<u32>(), any::<Option<bool>>(), 0..50),
        o in any::<Option<(u8, String)>>(),
    ) {
        let codec = Codec::default();
        prop_assert_eq!(codec.decode::<String>(&codec.encode(&s).unwrap()).unwrap(), s);
        prop_assert_eq!(codec.decode::<BTreeMap<u32, Option<bool>>>(&codec.encode(&m).unwrap()).unwrap(), m);
        prop_assert_eq!(codec.decode::<Option<(u8, String)>>(&codec.encode(&o).unwrap()).unwrap(), o);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let codec = Codec::builder().max_value_size(1 << 16).build();
        let _ = codec.decode::<Record>(&bytes);
        let _ = codec.decode::<String>(&bytes);
        let _ = codec.decode::<Vec<u64>>(&bytes);
        // With a valid header in front, the payload reaches the decoders.
        for header in [[0xCA, 1, 1, 0], [0xCA, 1, 1, 1], [0xCA, 1, 2, 0], [0xCA, 1, 2, 1]] {
            let mut entry = header.to_vec();
            entry.extend_from_slice(&bytes);
            let _ = codec.decode::<Record>(&entry);
            let _ = codec.decode::<BTreeMap<String, u8>>(&entry);
        }
    }

    #[test]
    fn mangled_entries_never_panic(value in record(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let codec = Codec::builder().compress_threshold(64).max_value_size(1 << 20).build();
        let mut entry = codec.encode(&value).unwrap();
        for (at, byte) in flips {
            let i = at.index(entry.len());
            entry[i] ^= byte | 1;
        }
        let _ = codec.decode::<Record>(&entry);
        entry.truncate(cut.index(entry.len()));
        let _ = codec.decode::<Record>(&entry);
    }

    #[test]
    fn different_arguments_never_share_a_key(a in any::<(u32, String)>(), b in any::<(u32, String)>()) {
        let ka = function_key("f", &(&a.0, &a.1)).unwrap();
        let kb = function_key("f", &(&b.0, &b.1)).unwrap();
        prop_assert_eq!(ka == kb, a == b);
    }
}

#[test]
fn a_zlib_bomb_is_refused_without_inflating_it() {
    // 1 GiB of zeros is about 1 MiB of zlib; build the stream by hand from a
    // repeated compressed block instead of allocating 1 GiB here.
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb_payload = encoder.finish().unwrap();
    assert!(bomb_payload.len() < 2 << 20, "{} bytes", bomb_payload.len());
    let mut entry = vec![0xCA, 1, 1, 1];
    entry.extend_from_slice(&bomb_payload);
    let codec = Codec::default(); // 64 MiB limit
    let err = codec.decode::<Vec<u8>>(&entry).unwrap_err();
    assert!(err.to_string().contains("inflates to more than"), "{err}");
}
