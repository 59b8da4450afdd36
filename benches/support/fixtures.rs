//! The values the performance benchmarks cache: SMALL (a list of 30
//! three-letter strings) and LARGE (a map of 1,000 symbol records, ~34 KB of
//! MessagePack), as measured in the performance issue.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One record of the LARGE fixture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    pub last: f64,
    pub volume: u32,
    pub venue: String,
}

/// A list of 30 three-letter strings.
pub fn small() -> Vec<String> {
    (0..30u32)
        .map(|i| {
            let letter = |n: u32| char::from(b'A' + (n % 26) as u8);
            [letter(i), letter(i * 7 + 3), letter(i * 13 + 5)]
                .iter()
                .collect()
        })
        .collect()
}

/// A map of 1,000 symbol records.
pub fn large() -> BTreeMap<String, Quote> {
    (0..1_000u32)
        .map(|i| {
            (
                format!("SYM{i:04}"),
                Quote {
                    last: 10.0 + f64::from(i) * 0.25,
                    volume: i * 37 % 100_000,
                    venue: ["NYSE", "NASDAQ", "LSE", "XETRA"][i as usize % 4].to_string(),
                },
            )
        })
        .collect()
}

/// `n` bytes of text that compresses like real documents (about 3:1).
pub fn document(n: usize, seed: u64) -> String {
    const WORDS: &[&str] = &[
        "cache", "redis", "value", "memoize", "request", "latency", "compress", "the", "of", "and",
        "a", "to", "in", "server", "client", "function", "result", "error", "stored",
    ];
    let mut x = seed | 1;
    let mut out = String::with_capacity(n + 16);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
        out.push(if x.is_multiple_of(11) { '\n' } else { ' ' });
        if x.is_multiple_of(5) {
            out.push_str(&(x % 100_000).to_string());
            out.push(' ');
        }
    }
    out.truncate(n);
    out
}
