//! The `cache-memoize` command against a real redis-server (and the local
//! 3-master Cluster) filled through memoized functions with several codecs.

#[path = "../../tests/support/mod.rs"]
mod support;

#[path = "../../tests/support/cluster.rs"]
mod cluster_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    assert_eq!(keys["truncated"], false);
    let listed: BTreeSet<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=3).map(report_cache_key).collect();
    assert_eq!(listed, expected.iter().map(String::as_str).collect());
    for key in keys["keys"].as_array().unwrap() {
        let ttl = key["ttl_ms"].as_i64().expect("a ttl");
        assert!(ttl > 0 && ttl <= 300_000, "{key}");
    }
    // The same function named with its cache.
    let with_cache = run_json(&["keys", &format!("{cache_name}:report")]);
    assert_eq!(with_cache["keys"].as_array().unwrap().len(), 3);
    // --limit says that it cut the listing.
    let cut = run_json(&["keys", "report", "--limit", "2"]);
    assert_eq!(cut["keys"].as_array().unwrap().len(), 2);
    assert_eq!(cut["truncated"], true);

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

    // invalidate with a full entry key deletes that one entry.
    let done = run_json(&["invalidate", &price_cache_key(0)]);
    assert_eq!(
        (done["target"].as_str(), done["deleted"].as_u64()),
        (Some("key"), Some(1))
    );
    assert_eq!(
        stats_row(&run_json(&["stats"]), "price").unwrap()["entries"],
        5
    );

    // invalidate --tag: every value tagged with it is recomputed (one INCR),
    // and nothing is deleted.
    assert_eq!(tagged(7).await + tagged(7).await, 14);
    assert_eq!(TAGGED_RUNS.load(Ordering::SeqCst), 1);
    let done = run_json(&["invalidate", "--tag", "user:7"]);
    assert_eq!(done["target"].as_str(), Some("tag"));
    assert!(done["version"].as_u64().is_some(), "{done}");
    assert_eq!(tagged(7).await, 7);
    assert_eq!(
        TAGGED_RUNS.load(Ordering::SeqCst),
        2,
        "recomputed after the tag"
    );
    assert_eq!(
        stats_row(&run_json(&["stats"]), "profile").unwrap()["entries"],
        2
    );
    // Without --prefix, --tag says what it needs.
    let (ok, _, err) = cli(&["--url", url, "invalidate", "--tag", "user:7"]);
    assert!(!ok && err.contains("--prefix"), "{err}");
}

static TAGGED_RUNS: AtomicU64 = AtomicU64::new(0);

#[cache_memoize(prefix = "tagged", alias = "cli-msgpack", ttl = 300, tags = [format!("user:{id}")])]
async fn tagged(id: u64) -> u64 {
    TAGGED_RUNS.fetch_add(1, Ordering::SeqCst);
    id
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

/// `cli` with `--url url` first.
fn cli_at(url: &str, args: &[&str]) -> (bool, String, String) {
    cli(&[&["--url", url][..], args].concat())
}

/// `cli_json` with `--url url` first.
fn cli_json_at(url: &str, args: &[&str]) -> Value {
    cli_json(&[&["--url", url][..], args].concat())
}

fn exists(redis: &support::TestRedis, key: &str) -> bool {
    redis.cmd(&[b"EXISTS", key.as_bytes()]) == RespValue::Integer(1)
}

/// A 32-digit args hash made of `c`.
fn hash(c: char) -> String {
    c.to_string().repeat(32)
}

/// A stored msgpack entry (header `CA 01 01 00`, then the value 1).
const ENTRY: &[u8] = b"\xca\x01\x01\x00\x01";

#[test]
fn invalidate_deletes_only_cache_entries_unless_told_a_key() {
    let redis = support::redis_url_for_tests();
    let url = redis.url();
    let p = format!("inv{}", std::process::id());
    let function = format!("{p}_fn");
    let entry = format!("{p}:1:{function}:{}", hash('a'));
    // Named like an entry of the function, holding something else.
    let lookalike = format!("{p}:1:{function}:{}", hash('b'));
    let lookalike_elsewhere = format!("session:12345:{function}:{}", hash('c'));
    // An unrelated key that happens to be named like the function.
    let namesake = function.clone();
    redis.cmd(&[b"SET", entry.as_bytes(), ENTRY]);
    redis.cmd(&[b"SET", lookalike.as_bytes(), b"plain"]);
    redis.cmd(&[b"SET", lookalike_elsewhere.as_bytes(), b"plain"]);
    redis.cmd(&[b"SET", namesake.as_bytes(), b"not a cache's"]);

    // FUNCTION: the entry goes; the namesake key and the lookalikes stay.
    let done = cli_json_at(url, &["invalidate", &function]);
    assert_eq!(done["target"], "function", "{done}");
    assert_eq!(done["deleted"], 1, "{done}");
    assert_eq!(done["skipped"], 2, "{done}");
    assert!(!exists(&redis, &entry));
    for kept in [&lookalike, &lookalike_elsewhere, &namesake] {
        assert!(exists(&redis, kept), "{kept} was deleted");
    }

    // A full entry key is taken as one entry only if it holds one.
    let (ok, _, err) = cli_at(url, &["invalidate", &lookalike]);
    assert!(!ok && err.contains("--key"), "{err}");
    assert!(exists(&redis, &lookalike));
    redis.cmd(&[b"SET", entry.as_bytes(), ENTRY]);
    let done = cli_json_at(url, &["invalidate", &entry]);
    assert_eq!(
        (done["target"].as_str(), done["deleted"].as_u64()),
        (Some("key"), Some(1))
    );
    // ... and only inside --prefix: elsewhere it names no function.
    let outside = format!("other{p}:1:f:{}", hash('d'));
    redis.cmd(&[b"SET", outside.as_bytes(), ENTRY]);
    let done = cli_json_at(url, &["--prefix", &p, "invalidate", &outside]);
    assert_eq!(
        (done["target"].as_str(), done["deleted"].as_u64()),
        (Some("function"), Some(0))
    );
    assert!(exists(&redis, &outside));

    // --key deletes any one key, and a missing one is not an error.
    let done = cli_json_at(url, &["invalidate", "--key", &namesake]);
    assert_eq!(
        (done["target"].as_str(), done["deleted"].as_u64()),
        (Some("key"), Some(1))
    );
    assert!(!exists(&redis, &namesake));
    let (ok, out, err) = cli_at(url, &["invalidate", "--key", &namesake, "--json"]);
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["deleted"], 0);
    assert!(err.contains("nothing to delete"), "{err}");

    // Empty names are refused before anything is deleted.
    for args in [
        &["invalidate", ""][..],
        &["keys", ""],
        &["--prefix", "", "stats"],
    ] {
        let (ok, _, err) = cli_at(url, args);
        assert!(!ok && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn foreign_and_non_utf8_keys_are_other_keys_and_prefix_takes_a_version() {
    let redis = support::redis_url_for_tests();
    let url = redis.url();
    let p = format!("st{}", std::process::id());
    let entry = format!("{p}:1:f:{}", hash('a'));
    redis.cmd(&[b"SET", entry.as_bytes(), ENTRY]);
    redis.cmd(&[b"SET", format!("{p}:2:f:{}", hash('a')).as_bytes(), ENTRY]);
    // Named like a cache key (`x:<digits>:y`), written by someone else.
    let session = format!("{p}session:12345:data");
    redis.cmd(&[b"SET", session.as_bytes(), b"{\"user\":1}"]);
    let not_utf8 = [p.as_bytes(), b":1:\xff\xfe"].concat();
    redis.cmd(&[b"SET", &not_utf8, b"raw"]);

    let stats = cli_json_at(url, &["stats"]);
    let rows = stats["functions"].as_array().unwrap();
    assert!(
        !rows
            .iter()
            .any(|r| r["cache"] == format!("{p}session:12345")),
        "a foreign key counted as a cache: {stats:#}"
    );
    let other = stats_row(&stats, "(other keys)").expect("an (other keys) row");
    assert!(other["entries"].as_u64().unwrap() >= 2, "{stats:#}");
    assert!(stats["matched_keys"].as_u64().unwrap() >= 4, "{stats:#}");

    // `--prefix p:1`, as the cache column prints it: version 1 only.
    let v1 = cli_json_at(url, &["--prefix", &format!("{p}:1"), "stats"]);
    let f = stats_row(&v1, "f").expect("f in version 1");
    assert_eq!(
        (f["cache"].as_str(), f["entries"].as_u64()),
        (Some(&*format!("{p}:1")), Some(1))
    );
    assert_eq!(
        v1["functions"].as_array().unwrap().len(),
        2,
        "f and the non-UTF-8 key: {v1:#}"
    );
    let every = cli_json_at(url, &["--prefix", &p, "stats"]);
    let versions: Vec<&Value> = every["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["function"] == "f")
        .collect();
    assert_eq!(versions.len(), 2, "{every:#}");

    // keys lists the non-UTF-8 key (lossy, with its exact bytes in hex).
    let keys = cli_json_at(url, &["--prefix", &format!("{p}:1"), "keys"]);
    let odd = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k.get("key_hex").is_some())
        .unwrap_or_else(|| panic!("no non-UTF-8 key in {keys:#}"));
    assert_eq!(odd["key_hex"], format!("{}3a313afffe", hex(p.as_bytes())));
    assert!(odd["key"].as_str().unwrap().contains('\u{FFFD}'));
    // ... and invalidate never deletes it.
    cli_json_at(url, &["invalidate", "f"]);
    assert_eq!(redis.cmd(&[b"EXISTS", &not_utf8]), RespValue::Integer(1));
    assert!(exists(&redis, &session));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn show_describes_a_value_above_max_bytes_without_reading_it() {
    let redis = support::redis_url_for_tests();
    let url = redis.url();
    let key = format!("show{}:1:f:{}", std::process::id(), hash('a'));
    let mut big = ENTRY[..4].to_vec();
    big.extend(std::iter::repeat_n(0xc0, 5000)); // msgpack nil, 5000 times
    redis.cmd(&[b"SET", key.as_bytes(), &big]);
    let shown = cli_json_at(url, &["show", &key, "--max-bytes", "1000"]);
    assert_eq!(shown["kind"], "too_large", "{shown}");
    assert_eq!(shown["stored_bytes"], 5004);
    assert_eq!(shown["format"]["serializer"], "msgpack");
    assert_eq!(shown["value"], Value::Null);
    assert!(shown["problem"].as_str().unwrap().contains("--max-bytes"));
    // Within the bound, it is read.
    let shown = cli_json_at(url, &["show", &key]);
    assert_eq!(shown["kind"], "value", "{shown}");
    // A key that is no string is said to be one.
    let hash_key = format!("show{}:hash", std::process::id());
    redis.cmd(&[b"HSET", hash_key.as_bytes(), b"f", b"v"]);
    let (ok, _, err) = cli_at(url, &["show", &hash_key]);
    assert!(!ok && err.contains("not a string"), "{err}");
}

#[test]
fn a_password_with_a_slash_never_reaches_the_output() {
    let (ok, out, err) = cli(&[
        "--url",
        "redis://:ab/cd-s3cret@127.0.0.1:1",
        "--timeout",
        "1",
        "stats",
    ]);
    assert!(!ok);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains("s3cret") && !out.contains("s3cret"), "{err}");
}

#[test]
fn timeouts_out_of_range_are_refused_not_a_panic() {
    for timeout in ["inf", "1e20", "0", "-3"] {
        let started = Instant::now();
        let flag = format!("--timeout={timeout}");
        let (ok, _, err) = cli(&["--url", "redis://127.0.0.1:1", &flag, "stats"]);
        assert!(!ok && err.contains("--timeout"), "{timeout}: {err}");
        assert!(!err.contains("panicked"), "{timeout}: {err}");
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

#[test]
fn connect_errors_say_what_to_do_and_a_refused_info_is_survived() {
    let server = support::RedisServer::start();
    let url = server.url();
    let port = server.port;
    server
        .cmd(&[
            b"ACL", b"SETUSER", b"limited", b"on", b">lpw", b"~*", b"+@all", b"-info",
        ])
        .expect_ok();
    // An ACL without +info: one server, without server figures.
    let limited = format!("redis://limited:lpw@127.0.0.1:{port}");
    let stats = cli_json_at(&limited, &["stats"]);
    assert_eq!(
        stats["server"]["used_memory_bytes"],
        Value::Null,
        "{stats:#}"
    );
    let (ok, _, err) = cli_at(&limited, &["stats"]);
    assert!(ok && err.contains("INFO"), "{err}");

    let wrong = format!("redis://limited:nope@127.0.0.1:{port}");
    let (ok, _, err) = cli_at(&wrong, &["stats"]);
    assert!(!ok && err.contains("user and password"), "{err}");
    assert!(!err.contains("nope"), "{err}");

    drop(server);
    let (ok, _, err) = cli_at(&url, &["--timeout", "2", "stats"]);
    assert!(!ok && err.contains("start Redis"), "{err}");

    #[cfg(not(feature = "tls"))]
    {
        let (ok, _, err) = cli_at("rediss://127.0.0.1:1", &["stats"]);
        assert!(!ok && err.contains("--features tls"), "{err}");
    }
}
