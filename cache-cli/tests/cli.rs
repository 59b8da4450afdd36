//! The `cache-memoize` command against a real redis-server (and the local
//! 3-master Cluster) filled through memoized functions with several codecs.

#[path = "../../tests/support/mod.rs"]
mod support;

#[path = "../../tests/support/cluster.rs"]
mod cluster_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

use cache_memoize::codec::{CborSerializer, GzipCompressor, JsonSerializer, ZstdCompressor};
use cache_memoize::{cache_memoize, registry, Cache, Codec};
use serde_json::{json, Value};
use support::RespValue;

#[cache_memoize(prefix = "price", alias = "cli-msgpack", ttl = 300)]
async fn price(item: u64) -> Vec<String> {
    vec![format!("item {item}"), "EUR".to_owned()]
}

#[cache_memoize(prefix = "report", alias = "cli-json", ttl = 300)]
async fn report(n: u32) -> BTreeMap<String, u32> {
    (0..200).map(|i| (format!("k{i}"), i * n)).collect()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Profile {
    id: u32,
    tags: Vec<String>,
}

/// No ttl (its cache has no default ttl): counted under "no ttl".
#[cache_memoize(prefix = "profile", alias = "cli-cbor")]
async fn profile(id: u32) -> Profile {
    Profile {
        id,
        tags: vec!["x".repeat(2000)],
    }
}

#[cache_memoize(prefix = "cluster_item", alias = "cli-cluster", ttl = 300)]
async fn cluster_item(n: u32) -> u32 {
    n * 2
}

/// Runs the command; its exit status, stdout and stderr.
fn cli(args: &[&str]) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_cache-memoize"))
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .expect("the cache-memoize binary runs");
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Runs the command with `--json` and parses its stdout.
fn cli_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out, err) = cli(&all);
    assert!(ok, "{all:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{all:?} printed no JSON ({e}): {out}"))
}

/// The row of `function` in a `stats --json` report.
fn stats_row<'a>(report: &'a Value, function: &str) -> Option<&'a Value> {
    report["functions"]
        .as_array()
        .expect("a functions array")
        .iter()
        .find(|row| row["function"] == function)
}

fn cache(url: &str, prefix: &str, codec: Codec) -> Cache {
    Cache::builder()
        .url(url)
        .default_ttl(None)
        .prefix(prefix)
        .codec(codec)
        .build()
        .expect("a valid cache")
}

#[tokio::test]
async fn stats_keys_show_and_invalidate_see_what_memoized_functions_wrote() {
    let redis = support::redis_url_for_tests();
    let url = redis.url();
    let prefix = format!("cli{}", std::process::id());
    registry::register("cli-msgpack", cache(url, &prefix, Codec::default()));
    let json_gzip = Codec::builder()
        .serializer(JsonSerializer)
        .compressor(GzipCompressor::default())
        .build();
    registry::register("cli-json", cache(url, &prefix, json_gzip));
    let cbor_zstd = Codec::builder()
        .serializer(CborSerializer)
        .compressor(ZstdCompressor::default())
        .build();
    registry::register("cli-cbor", cache(url, &prefix, cbor_zstd));
    for i in 0..5 {
        price(i).await;
    }
    for n in 1..=3 {
        report(n).await;
    }
    for id in 0..2 {
        profile(id).await;
    }
    let corrupt = format!("{prefix}:1:price:{}", "0".repeat(32));
    redis.cmd(&[b"SET", corrupt.as_bytes(), b"\xca\x01\x01\x01not zlib"]);
    let args = |rest: &[&str]| -> Vec<String> {
        let mut all = vec![
            "--url".to_owned(),
            url.to_owned(),
            "--prefix".to_owned(),
            prefix.clone(),
        ];
        all.extend(rest.iter().map(|s| s.to_string()));
        all
    };
    let run = |rest: &[&str]| {
        let all = args(rest);
        cli(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let run_json = |rest: &[&str]| {
        let all = args(rest);
        cli_json(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // stats: entries, bytes, ttl and formats per function.
    let stats = run_json(&["stats"]);
    let cache_name = format!("{prefix}:1");
    let price_row = stats_row(&stats, "price").expect("a price row");
    assert_eq!(price_row["cache"], cache_name);
    assert_eq!(
        price_row["entries"], 6,
        "5 calls and the corrupt entry: {stats:#}"
    );
    assert_eq!(
        price_row["formats"],
        json!({"msgpack": 5, "msgpack+zlib": 1})
    );
    let report_row = stats_row(&stats, "report").expect("a report row");
    assert_eq!(report_row["entries"], 3);
    assert_eq!(report_row["formats"], json!({"json+gzip": 3}));
    assert_eq!(report_row["without_ttl"], 0);
    let profile_row = stats_row(&stats, "profile").expect("a profile row");
    assert_eq!(profile_row["formats"], json!({"cbor+zstd": 2}));
    assert_eq!(profile_row["without_ttl"], 2);
    assert!(report_row["bytes"].as_u64().unwrap() > 0);
    assert!(stats["server"]["used_memory_bytes"].as_u64().unwrap() > 0);
    let (ok, table, _) = run(&["stats"]);
    assert!(ok);
    for function in ["price", "report", "profile"] {
        assert!(
            table.contains(function),
            "{function} missing from:\n{table}"
        );
    }

    // keys: exactly one function's keys, the same ones the macro names.
    let keys = run_json(&["keys", "report"]);
    let listed: BTreeSet<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=3).map(report_cache_key).collect();
    assert_eq!(listed, expected.iter().map(String::as_str).collect());
    for key in keys.as_array().unwrap() {
        let ttl = key["ttl_ms"].as_i64().expect("a ttl");
        assert!(ttl > 0 && ttl <= 300_000, "{key}");
    }
    // The same function named with its cache.
    let with_cache = run_json(&["keys", &format!("{cache_name}:report")]);
    assert_eq!(with_cache.as_array().unwrap().len(), 3);

    // show: the value as JSON, in every self-describing format.
    let shown = run_json(&["show", &price_cache_key(3)]);
    assert_eq!(shown["kind"], "value");
    assert_eq!(shown["format"]["serializer"], "msgpack");
    assert_eq!(shown["value"], json!(["item 3", "EUR"]));
    let shown = run_json(&["show", &report_cache_key(2)]);
    assert_eq!(shown["format"]["compressor"], "gzip");
    assert_eq!(shown["value"]["k10"], 20);
    assert!(shown["payload_bytes"].as_u64().unwrap() > shown["stored_bytes"].as_u64().unwrap());
    let shown = run_json(&["show", &profile_cache_key(1)]);
    assert_eq!(shown["format"]["serializer"], "cbor");
    assert_eq!(shown["value"]["id"], 1);
    assert_eq!(shown["ttl_ms"], Value::Null);
    let (ok, text, _) = run(&["show", &price_cache_key(4)]);
    assert!(
        ok && text.contains("\"item 4\"") && text.contains("msgpack"),
        "{text}"
    );

    // A corrupt entry is described, not a crash; a missing key is an error.
    let shown = run_json(&["show", &corrupt]);
    assert_eq!(shown["kind"], "undecodable");
    assert!(
        shown["problem"].as_str().unwrap().contains("zlib"),
        "{shown}"
    );
    let (ok, _, err) = run(&["show", &format!("{prefix}:nope")]);
    assert!(!ok && err.contains("no key"), "{err}");

    // invalidate FUNCTION deletes exactly that function's entries.
    let done = run_json(&["invalidate", "report"]);
    assert_eq!(done["deleted"], 3);
    assert_eq!(done["target"], "function");
    let after = run_json(&["stats"]);
    assert!(stats_row(&after, "report").is_none(), "{after:#}");
    assert_eq!(stats_row(&after, "price").unwrap()["entries"], 6);
    assert_eq!(stats_row(&after, "profile").unwrap()["entries"], 2);
    for n in 1..=3 {
        let key = report_cache_key(n);
        assert_eq!(
            redis.cmd(&[b"EXISTS", key.as_bytes()]),
            RespValue::Integer(0)
        );
    }

    // invalidate KEY deletes one entry.
    let done = run_json(&["invalidate", &price_cache_key(0)]);
    assert_eq!(
        (done["target"].as_str(), done["deleted"].as_u64()),
        (Some("key"), Some(1))
    );
    assert_eq!(
        stats_row(&run_json(&["stats"]), "price").unwrap()["entries"],
        5
    );

    // Tags are refused with a message, and nothing is deleted.
    let (ok, _, err) = run(&["invalidate", "--tag", "user:7"]);
    assert!(!ok && err.contains("tags"), "{err}");
    assert_eq!(
        stats_row(&run_json(&["stats"]), "profile").unwrap()["entries"],
        2
    );
}

#[test]
fn a_password_in_the_url_never_reaches_the_output() {
    let (ok, out, err) = cli(&[
        "--url",
        "redis://admin:s3cret-pw@127.0.0.1:1",
        "--timeout",
        "1",
        "stats",
    ]);
    assert!(!ok);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(
        !err.contains("s3cret-pw") && !out.contains("s3cret-pw"),
        "{err}"
    );
}

#[tokio::test]
async fn a_cluster_is_walked_on_every_master() {
    let cluster = cluster_support::shared_cluster();
    let prefix = format!("clicluster{}", std::process::id());
    let cache = Cache::builder()
        .cluster_urls(cluster.urls())
        .prefix(&prefix)
        .build()
        .expect("a valid cluster cache");
    registry::register("cli-cluster", cache);
    for n in 0..60 {
        cluster_item(n).await;
    }
    let spread = cluster
        .nodes
        .iter()
        .filter(|node| !cluster.keys_on(node, &format!("{prefix}:*")).is_empty())
        .count();
    assert_eq!(
        spread,
        cluster_support::MASTERS,
        "60 keys land on every master"
    );
    let url = cluster.urls()[0].clone();
    let base = ["--url", url.as_str(), "--prefix", prefix.as_str()];
    let stats = cli_json(&[&base[..], &["stats"]].concat());
    assert_eq!(
        stats_row(&stats, "cluster_item").unwrap()["entries"],
        60,
        "{stats:#}"
    );
    let shown = cli_json(&[&base[..], &["show", &cluster_item_cache_key(7)]].concat());
    assert_eq!(shown["value"], 14);
    let done = cli_json(&[&base[..], &["invalidate", "cluster_item"]].concat());
    assert_eq!(done["deleted"], 60);
    let stats = cli_json(&[&base[..], &["stats"]].concat());
    assert!(stats_row(&stats, "cluster_item").is_none(), "{stats:#}");
}
