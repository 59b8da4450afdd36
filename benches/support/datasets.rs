//! The datasets and configurations of the codec comparison, shared by `benches/codecs.rs` and
//! `tools/fastest-config (cargo run --release -p cache-memoize-fastest-config)` (include with
//! `#[path = "../benches/support/datasets.rs"] mod datasets;`).
//!
//! The first two are the shapes of the "Fastest Redis configuration for
//! Django" experiment: a list of 30 short strings, and a hash table of 1000
//! symbol records whose field names and many values repeat (43 KB as
//! MessagePack, 58 KB as JSON; the blog's was 60 KB of JSON). Two more cover
//! text-heavy and numeric-heavy values. All are generated from fixed seeds, so every run
//! and every machine measures the same bytes.
//!
//! Code that is generic over the value's type visits a [`Dataset`] with a
//! [`Visit`] implementation.
//!
//! Each includer uses a part of this module (the bench has no `--data`),
//! hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use cache_memoize::codec::{compressors, serializers};
use cache_memoize::Codec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What a dataset value must be to go through every codec and be checked.
pub trait Sample:
    Serialize + DeserializeOwned + PartialEq + fmt::Debug + Send + Sync + 'static
{
}

impl<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug + Send + Sync + 'static> Sample
    for T
{
}

/// Code run on a dataset's value, whatever its type.
pub trait Visit {
    /// What the visit returns.
    type Output;
    /// Called with the dataset's value.
    fn visit<T: Sample>(self, value: &T) -> Self::Output;
}

/// One value to measure, with a name for tables and charts.
pub struct Dataset {
    /// Short name, used in tables, file names and benchmark ids.
    pub name: String,
    /// One line on what it holds.
    pub about: String,
    value: Value,
}

enum Value {
    Strings(Vec<String>),
    Symbols(BTreeMap<String, Symbol>),
    Articles(Vec<Article>),
    Readings(Vec<Reading>),
    Json(serde_json::Value),
}

/// A record of the symbol table (a ticker symbol's listing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symbol {
    exchange: String,
    sector: String,
    lot: u32,
}

/// A text-heavy record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Article {
    id: u32,
    title: String,
    author: String,
    body: String,
    tags: Vec<String>,
}

/// A numeric-heavy record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    sensor: u32,
    at: u64,
    celsius: f64,
    humidity: f32,
    pressure_pa: u32,
    samples: [i16; 8],
}

impl Dataset {
    /// The four built-in datasets.
    pub fn builtin() -> Vec<Dataset> {
        vec![
            Dataset {
                name: "strings30".into(),
                about: "a list of 30 short strings".into(),
                value: Value::Strings(short_strings()),
            },
            Dataset {
                name: "symbols1000".into(),
                about: "a hash table of 1000 symbol records".into(),
                value: Value::Symbols(symbol_table()),
            },
            Dataset {
                name: "articles".into(),
                about: "40 articles of generated English text".into(),
                value: Value::Articles(articles()),
            },
            Dataset {
                name: "readings".into(),
                about: "500 sensor readings (floats and integers)".into(),
                value: Value::Readings(readings()),
            },
        ]
    }

    /// A user's JSON file as one dataset, or a message saying what is wrong
    /// with it.
    pub fn from_json_file(path: &Path) -> Result<Dataset, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --data file {}: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            format!(
                "--data file {} is not valid JSON: {e} (expected one JSON document, e.g. an object or an array)",
                path.display()
            )
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into());
        Ok(Dataset {
            name,
            about: format!("{} ({} bytes of JSON)", path.display(), text.len()),
            value: Value::Json(value),
        })
    }

    /// Runs `visitor` on the value.
    pub fn visit<V: Visit>(&self, visitor: V) -> V::Output {
        match &self.value {
            Value::Strings(v) => visitor.visit(v),
            Value::Symbols(v) => visitor.visit(v),
            Value::Articles(v) => visitor.visit(v),
            Value::Readings(v) => visitor.visit(v),
            Value::Json(v) => visitor.visit(v),
        }
    }

    /// Size of the value as compact JSON: the neutral "bytes of data" that
    /// throughput is reported in.
    pub fn json_len(&self) -> usize {
        struct JsonLen;
        impl Visit for JsonLen {
            type Output = usize;
            fn visit<T: Sample>(self, value: &T) -> usize {
                serde_json::to_vec(value).map_or(0, |v| v.len())
            }
        }
        self.visit(JsonLen)
    }
}

/// The configurations compared on the datasets: every serializer x
/// compressor compiled in, labelled `serializer+compressor`, compressing
/// payloads of at least `compress_threshold` bytes.
pub fn configurations(compress_threshold: usize) -> Vec<(String, Codec)> {
    let mut out = Vec::new();
    for serializer in serializers() {
        for compressor in compressors() {
            let label = format!("{}+{}", serializer.name(), compressor.name());
            let codec = Codec::builder()
                .serializer(serializer.clone())
                .compressor(compressor)
                .compress_threshold(compress_threshold)
                .build();
            out.push((label, codec));
        }
    }
    out
}

/// The generator of every dataset, seeded so the data never changes.
fn rng(seed: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed)
}

fn pick<'a>(rng: &mut fastrand::Rng, items: &[&'a str]) -> &'a str {
    items[rng.usize(..items.len())]
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "cache",
    "redis",
    "value",
    "server",
    "request",
    "memory",
    "function",
    "result",
    "time",
    "data",
    "key",
    "user",
    "system",
    "network",
    "latency",
    "compression",
    "serializer",
    "benchmark",
    "configuration",
    "deploy",
    "performance",
    "measure",
    "median",
    "throughput",
    "process",
    "machine",
    "entry",
    "expire",
];

fn short_strings() -> Vec<String> {
    let mut rng = rng(30);
    (0..30)
        .map(|_| {
            let n = rng.usize(1..4);
            (0..n)
                .map(|_| pick(&mut rng, WORDS))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn symbol_table() -> BTreeMap<String, Symbol> {
    const EXCHANGES: &[&str] = &["NYSE", "NASDAQ", "AMEX", "LSE", "TSX"];
    const SECTORS: &[&str] = &[
        "Technology",
        "Energy",
        "Utilities",
        "Financials",
        "Industrials",
        "Materials",
        "Healthcare",
        "Real Estate",
    ];
    let mut rng = rng(1000);
    let mut table = BTreeMap::new();
    while table.len() < 1000 {
        let len = rng.usize(3..=5);
        let symbol: String = (0..len).map(|_| rng.uppercase()).collect();
        let record = Symbol {
            exchange: pick(&mut rng, EXCHANGES).into(),
            sector: pick(&mut rng, SECTORS).into(),
            lot: [1, 10, 100, 100, 100, 1000][rng.usize(..6)],
        };
        table.insert(symbol, record);
    }
    table
}

fn sentence(rng: &mut fastrand::Rng) -> String {
    let n = rng.usize(6..18);
    let mut s: String = (0..n)
        .map(|_| pick(rng, WORDS))
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(first) = s.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    s.push('.');
    s
}

fn articles() -> Vec<Article> {
    const AUTHORS: &[&str] = &[
        "Ada Lovelace",
        "Grace Hopper",
        "Edsger Dijkstra",
        "Barbara Liskov",
    ];
    const TAGS: &[&str] = &[
        "rust",
        "redis",
        "caching",
        "performance",
        "python",
        "django",
    ];
    let mut rng = rng(40);
    (0..40)
        .map(|id| Article {
            id,
            title: sentence(&mut rng),
            author: pick(&mut rng, AUTHORS).into(),
            body: (0..rng.usize(8..16))
                .map(|_| sentence(&mut rng))
                .collect::<Vec<_>>()
                .join(" "),
            tags: (0..rng.usize(1..4))
                .map(|_| pick(&mut rng, TAGS).into())
                .collect(),
        })
        .collect()
}

fn readings() -> Vec<Reading> {
    let mut rng = rng(500);
    let mut at = 1_700_000_000_000u64;
    let mut celsius = 21.0f64;
    (0..500)
        .map(|i| {
            at += rng.u64(900..1100);
            celsius += rng.f64() - 0.5;
            Reading {
                sensor: 1000 + i % 12,
                at,
                celsius,
                humidity: rng.f32() * 100.0,
                pressure_pa: rng.u32(98_000..103_000),
                samples: std::array::from_fn(|_| rng.i16(-2000..2000)),
            }
        })
        .collect()
}
