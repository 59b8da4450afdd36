//! The core runtime against a real redis-server started for this test binary.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_memoize::codec::header::Meta;
use cache_memoize::key::function_key;
use cache_memoize::redis::{ErrorKind as RedisErrorKind, RedisError};
use cache_memoize::{Cache, Codec, Error, ErrorKind};
use serde::{Deserialize, Serialize};
use support::{RespValue, TestRedis};

/// The redis-server of this test binary; each test holds it (`let _redis =
/// redis();`) so it stops when the last test is done.
fn redis() -> Arc<TestRedis> {
    support::shared_redis()
}

/// A cache with its own prefix, so tests running in parallel never meet.
fn cache(prefix: &str) -> Cache {
    Cache::builder()
        .url(redis().url())
        .prefix(prefix)
        .build()
        .expect("valid test configuration")
}

fn raw_get(full_key: &str) -> Option<Vec<u8>> {
    match redis().cmd(&[b"GET", full_key.as_bytes()]) {
        RespValue::Nil => None,
        other => Some(other.into_bytes().expect("GET returns a bulk string")),
    }
}

fn raw_set(full_key: &str, value: &[u8]) {
    redis()
        .cmd(&[b"SET", full_key.as_bytes(), value])
        .expect_ok();
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Symbol {
    ticker: String,
    price: f64,
    volume: u64,
    tags: Vec<String>,
    parent: Option<Box<Symbol>>,
}

fn symbol(i: u64) -> Symbol {
    Symbol {
        ticker: format!("SYM{i}"),
        price: i as f64 * 1.25,
        volume: i * 1000,
        tags: vec!["equity".into(), format!("sector-{}", i % 7)],
        parent: i.is_multiple_of(2).then(|| Box::new(symbol(i + 1))),
    }
}

#[tokio::test]
async fn values_of_several_types_round_trip() {
    let _redis = redis();
    let cache = cache("roundtrip");
    cache.set("struct", &symbol(2), None).await.unwrap();
    assert_eq!(
        cache.get::<Symbol>("struct").await.unwrap(),
        Some(symbol(2))
    );

    let map: BTreeMap<String, Vec<u32>> = (0..50).map(|i| (format!("k{i}"), vec![i; 3])).collect();
    cache.set("map", &map, None).await.unwrap();
    assert_eq!(cache.get("map").await.unwrap(), Some(map));

    cache.set("none", &None::<u8>, None).await.unwrap();
    assert_eq!(cache.get::<Option<u8>>("none").await.unwrap(), Some(None));
    cache.set("some", &Some("x"), None).await.unwrap();
    assert_eq!(
        cache.get::<Option<String>>("some").await.unwrap(),
        Some(Some("x".into()))
    );

    // ~2 MB, compressed on the way in.
    let large: Vec<Symbol> = (0..20_000).map(symbol).collect();
    cache.set("large", &large, None).await.unwrap();
    let stored = raw_get(&cache.full_key("large")).unwrap();
    assert_eq!(stored[3], 1, "large values are zlib-compressed");
    assert!(
        stored.len() < 1_000_000,
        "compressed to {} bytes",
        stored.len()
    );
    assert_eq!(
        cache.get::<Vec<Symbol>>("large").await.unwrap(),
        Some(large)
    );

    assert_eq!(cache.get::<u8>("absent").await.unwrap(), None);
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let _redis = redis();
    let cache = cache("ttl");
    cache
        .set("short", &1u8, Some(Duration::from_millis(300)))
        .await
        .unwrap();
    cache.set("default", &1u8, None).await.unwrap();
    let pttl = |key: &str| {
        redis()
            .cmd(&[b"PTTL", cache.full_key(key).as_bytes()])
            .as_int()
            .unwrap()
    };
    assert!((1..=300).contains(&pttl("short")), "PTTL {}", pttl("short"));
    let default_ms = pttl("default");
    assert!(
        (299_000..=300_000).contains(&default_ms),
        "default ttl is 300 s, PTTL {default_ms}"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(cache.get::<u8>("short").await.unwrap(), None);
    assert_eq!(cache.get::<u8>("default").await.unwrap(), Some(1));

    let forever = Cache::builder()
        .url(redis().url())
        .prefix("ttl-forever")
        .default_ttl(None)
        .build()
        .unwrap();
    forever.set("k", &1u8, None).await.unwrap();
    assert_eq!(
        redis()
            .cmd(&[b"PTTL", forever.full_key("k").as_bytes()])
            .as_int(),
        Some(-1)
    );
}

#[tokio::test]
async fn delete_and_delete_prefix_remove_exactly_what_they_name() {
    let _redis = redis();
    let cache = cache("del");
    for key in ["user:1", "user:2", "user:20", "users", "order:1"] {
        cache.set(key, &key, None).await.unwrap();
    }
    assert!(cache.delete("user:1").await.unwrap());
    assert!(!cache.delete("user:1").await.unwrap());
    assert_eq!(cache.delete_prefix("user:").await.unwrap(), 2);
    assert_eq!(
        cache.get::<String>("users").await.unwrap().as_deref(),
        Some("users")
    );
    assert_eq!(
        cache.get::<String>("order:1").await.unwrap().as_deref(),
        Some("order:1")
    );

    // Many keys: SCAN walks them all in batches.
    for i in 0..1_500 {
        cache.set(&format!("bulk:{i}"), &i, None).await.unwrap();
    }
    assert_eq!(cache.delete_prefix("bulk:").await.unwrap(), 1_500);

    // Glob metacharacters in a prefix are literal.
    cache.set("a*b", &1, None).await.unwrap();
    cache.set("axb", &1, None).await.unwrap();
    assert_eq!(cache.delete_prefix("a*").await.unwrap(), 1);
    assert_eq!(cache.get::<i32>("axb").await.unwrap(), Some(1));
}

/// A prefix longer than the readable head of shortened keys (256 bytes)
/// still finds the user keys over 1,024 bytes that start with it.
#[tokio::test]
async fn delete_prefix_with_a_long_prefix_finds_shortened_keys() {
    let _redis = redis();
    for builder in [
        Cache::builder().url(redis().url()),
        Cache::builder(), // in-memory
    ] {
        let cache = builder.prefix("long-prefix").build().unwrap();
        let backend = cache.describe_backend();
        let prefix = format!("report:{}", "a".repeat(300));
        let short = format!("{prefix}:x"); // stored in full
        let long = format!("{prefix}:{}", "b".repeat(2_000)); // stored shortened
        let other = format!("report:{}", "c".repeat(2_000)); // another head
        let other_short = format!("report:{}", "a".repeat(299)); // not the prefix
        for key in [&short, &long, &other, &other_short] {
            cache.set(key, &1u8, None).await.unwrap();
        }
        let deleted = cache.delete_prefix(&prefix).await.unwrap();
        assert!(
            cache.get::<u8>(&short).await.unwrap().is_none(),
            "{backend}"
        );
        assert!(
            cache.get::<u8>(&long).await.unwrap().is_none(),
            "{backend}: the shortened key starting with the prefix is deleted"
        );
        assert_eq!(deleted, 2, "{backend}");
        assert_eq!(cache.get::<u8>(&other).await.unwrap(), Some(1), "{backend}");
        assert_eq!(
            cache.get::<u8>(&other_short).await.unwrap(),
            Some(1),
            "{backend}"
        );
        // A prefix that is itself over 1,024 bytes.
        let very_long = format!("doc:{}", "d".repeat(1_500));
        let keys: Vec<String> = (0..3).map(|i| format!("{very_long}{i}")).collect();
        for key in &keys {
            cache.set(key, &2u8, None).await.unwrap();
        }
        assert_eq!(
            cache.delete_prefix(&very_long).await.unwrap(),
            3,
            "{backend}"
        );
        cache.delete_prefix("").await.unwrap();
    }
}

#[tokio::test]
async fn delete_function_removes_that_functions_entries_only() {
    let _redis = redis();
    let cache = cache("fn-delete");
    for f in ["app::f", "app::f:inner", "app::ff"] {
        for arg in 0..3u32 {
            let key = function_key(f, &(&arg,)).unwrap();
            cache.set(&key, &arg, None).await.unwrap();
        }
    }
    assert_eq!(cache.delete_function("app::f").await.unwrap(), 3);
    assert_eq!(cache.delete_function("app::f").await.unwrap(), 0);
    let inner = function_key("app::f:inner", &(&1u32,)).unwrap();
    assert_eq!(cache.get::<u32>(&inner).await.unwrap(), Some(1));
    let ff = function_key("app::ff", &(&2u32,)).unwrap();
    assert_eq!(cache.get::<u32>(&ff).await.unwrap(), Some(2));
}

#[tokio::test]
async fn two_caches_on_one_redis_share_entries() {
    let _redis = redis();
    let writer = cache("shared");
    let reader = cache("shared");
    let computed = AtomicUsize::new(0);
    let v1: Vec<String> = writer
        .get_or_compute("report", None, || async {
            computed.fetch_add(1, Ordering::SeqCst);
            vec!["a".to_string(); 3]
        })
        .await;
    let v2: Vec<String> = reader
        .get_or_compute("report", None, || async {
            computed.fetch_add(1, Ordering::SeqCst);
            vec![]
        })
        .await;
    assert_eq!(v1, v2);
    assert_eq!(computed.load(Ordering::SeqCst), 1);
    assert_eq!(reader.stats().hits, 1);
    assert_eq!(writer.stats().misses, 1);
    // Another prefix is another namespace.
    let other = cache("shared-other");
    assert_eq!(other.get::<Vec<String>>("report").await.unwrap(), None);
}

#[tokio::test]
async fn corrupt_entries_are_misses_that_get_recomputed_and_overwritten() {
    let _redis = redis();
    let cache = cache("corrupt");
    let zlib_bomb = Codec::builder()
        .compress_threshold(0)
        .build()
        .encode(&vec![0u8; 2_000_000])
        .unwrap();
    let wrong_type = cache.codec().encode(&"a string, not a number").unwrap();
    let mut truncated = cache.codec().encode(&symbol(4)).unwrap();
    truncated.truncate(truncated.len() / 2);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random", vec![0x17, 0xff, 0x00, 0x42, 0x99, 0x01]),
        ("empty", vec![]),
        ("truncated", truncated),
        ("wrong-type", wrong_type),
        ("unknown-codec", vec![0xCA, 1, 200, 0, 1]),
        ("future-format", vec![0xCA, 9, 1, 0, 1]),
        ("bomb", zlib_bomb),
    ];
    let small_limit = Cache::builder()
        .url(redis().url())
        .prefix("corrupt")
        .codec(Codec::builder().max_value_size(100_000).build())
        .build()
        .unwrap();
    for (i, (name, bytes)) in cases.into_iter().enumerate() {
        let key = format!("entry:{name}");
        raw_set(&cache.full_key(&key), &bytes);
        let value: u64 = small_limit
            .get_or_compute(&key, None, || async { 7 + i as u64 })
            .await;
        assert_eq!(value, 7 + i as u64, "{name}: recomputed");
        let stored = raw_get(&cache.full_key(&key)).unwrap();
        assert_eq!(
            small_limit.codec().decode::<u64>(&stored).unwrap(),
            7 + i as u64,
            "{name}: overwritten with a good entry"
        );
        assert_eq!(
            small_limit.stats().decode_failures as usize,
            i + 1,
            "{name}"
        );
    }
    // The strict API reports a corrupt entry as absent too.
    raw_set(&cache.full_key("strict"), b"\x00garbage");
    assert_eq!(cache.get::<u64>("strict").await.unwrap(), None);
}

#[test]
fn golden_keys_and_bytes_do_not_change() {
    #[derive(Serialize)]
    struct Query<'a> {
        user: u64,
        tags: &'a [&'a str],
    }
    let query = Query {
        user: 42,
        tags: &["a", "b"],
    };
    assert_eq!(
        function_key("shop::compute_something", &(&42u64, &true)).unwrap(),
        "shop::compute_something:befbcefc0f6e60c3d36106853d921bae"
    );
    assert_eq!(
        function_key("shop::search", &(&query, &"EUR", &None::<u8>)).unwrap(),
        "shop::search:4583e5377928fce4c11ee089fb6124d3"
    );
    assert_eq!(
        function_key("f", &()).unwrap(),
        "f:80702dc0c878209e05264b395baf644c"
    );

    let codec = Codec::default();
    // Format 2: magic, version, msgpack, no compression, no flags; version
    // token, compute time, logical expiry; the payload.
    let meta = Meta {
        version_token: 0x0102030405060708,
        compute_millis: 250,
        expires_at_millis: 1_700_000_000_000,
    };
    let (entry, _) = codec
        .seal_with(codec.serialize(&symbol(3)).unwrap(), meta)
        .unwrap();
    assert_eq!(hex(&entry), "ca020100000102030405060708000000fa0000018bcfe5680085a67469636b6572a453594d33a57072696365cb400e000000000000a6766f6c756d65cd0bb8a47461677392a6657175697479a8736563746f722d33a6706172656e74c0");
    // Format 1 entries (written before 0.1) still read.
    let v1 = "ca01010085a67469636b6572a453594d33a57072696365cb400e000000000000a6766f6c756d65cd0bb8a47461677392a6657175697479a8736563746f722d33a6706172656e74c0";
    let v1: Vec<u8> = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v1[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(codec.decode::<Symbol>(&v1).unwrap(), symbol(3));
    // Compressed entries: the header and the inflated payload are pinned (the
    // deflate stream itself may differ between zlib implementations).
    let big = codec.encode(&vec!["abc"; 500]).unwrap();
    assert_eq!(&big[..5], &[0xCA, 0x02, 0x01, 0x01, 0x00]);
    let mut payload = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::ZlibDecoder::new(&big[25..]),
        &mut payload,
    )
    .unwrap();
    let mut want = vec![0xdc, 0x01, 0xf4]; // array16 of 500
    for _ in 0..500 {
        want.extend_from_slice(b"\xa3abc");
    }
    assert_eq!(payload, want);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn golden_bytes_are_what_redis_stores() {
    let _redis = redis();
    let cache = cache("golden");
    cache.set("sym", &symbol(3), None).await.unwrap();
    let stored = raw_get("golden:1:sym").unwrap();
    let expected = Codec::default().encode(&symbol(3)).unwrap();
    // All but the version token (bytes 5..13), random per store.
    assert_eq!(
        (&stored[..5], &stored[13..]),
        (&expected[..5], &expected[13..])
    );
}

#[tokio::test]
async fn concurrent_callers_of_one_cold_key_share_one_computation() {
    let _redis = redis();
    let cache = cache("single-flight");
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let cache = cache.clone();
        let runs = runs.clone();
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_compute("cold", None, || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    String::from("computed once")
                })
                .await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), "computed once");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!(stats.stores, 1);
    assert!(stats.shared_computations >= 1, "{stats:?}");
}

#[test]
fn plain_code_memoizes_with_or_without_a_runtime() {
    let _redis = redis();
    let cache = cache("blocking");
    let runs = AtomicUsize::new(0);
    let compute = || {
        runs.fetch_add(1, Ordering::SeqCst);
        vec![1u8, 2, 3]
    };
    // A plain thread, no runtime anywhere.
    assert_eq!(
        cache.get_or_compute_blocking("k", None, compute),
        vec![1, 2, 3]
    );
    assert_eq!(
        cache.get_or_compute_blocking("k", None, compute),
        vec![1, 2, 3]
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Inside spawn_blocking and inside an async task of another runtime.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = cache.clone();
    let from_blocking = rt.block_on(async move {
        tokio::task::spawn_blocking(move || c.get_or_compute_blocking("k2", None, || 5u32))
            .await
            .unwrap()
    });
    assert_eq!(from_blocking, 5);
    let c = cache.clone();
    let from_async = rt.block_on(async move { c.get_or_compute_blocking("k2", None, || 6u32) });
    assert_eq!(
        from_async, 5,
        "hit of the entry written from spawn_blocking"
    );
}

/// `connect().await` makes the first connection on the caller's runtime; a
/// plain (blocking) lookup from a task of that runtime then blocks its only
/// thread, so the connection must not depend on that runtime to make
/// progress.
#[tokio::test(flavor = "current_thread")]
async fn blocking_lookups_after_connect_on_a_current_thread_runtime_hit() {
    let _redis = redis();
    let cache = Cache::builder()
        .url(redis().url())
        .prefix(format!("connect-then-block-{}", std::process::id()))
        .connect()
        .await
        .expect("Redis answers");
    let computed = AtomicUsize::new(0);
    for _ in 0..3 {
        let value: u32 = cache.get_or_compute_blocking("k", None, || {
            computed.fetch_add(1, Ordering::SeqCst);
            5
        });
        assert_eq!(value, 5);
    }
    let stats = cache.stats();
    assert_eq!(
        (computed.load(Ordering::SeqCst), stats.errors),
        (1, 0),
        "computed once, then hits: {stats:?}"
    );
}

#[tokio::test]
async fn unix_socket_connections_work() {
    let _redis = redis();
    let server = support::RedisServer::start_with_unix_socket();
    let path = server.unix_socket_path().unwrap();
    let cache = Cache::builder()
        .url(format!("redis+unix://{}", path.display()))
        .connect()
        .await
        .expect("connects over the unix socket");
    cache.set("k", &"v", None).await.unwrap();
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("v")
    );
}

#[tokio::test]
async fn memoizing_fails_open_when_redis_is_unreachable() {
    let _redis = redis();
    let dead_port = support::free_port();
    let cache = Cache::builder()
        .url(format!("redis://:hunter2@127.0.0.1:{dead_port}/"))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    for i in 0..3u32 {
        let v: u32 = cache.get_or_compute("k", None, || async move { i }).await;
        assert_eq!(v, i, "computed every time");
    }
    assert!(cache.stats().errors >= 3, "{:?}", cache.stats());

    let err = Cache::builder()
        .url(format!("redis://:hunter2@127.0.0.1:{dead_port}/"))
        .connect_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, Error::Connect { .. } | Error::Timeout { .. }),
        "{err:?}"
    );
    assert!(
        message.contains(&format!("127.0.0.1:{dead_port}")),
        "{message}"
    );
    assert!(
        message.contains("check that redis-server runs there"),
        "{message}"
    );
    assert!(
        !message.contains("hunter2") && !format!("{err:?}").contains("hunter2"),
        "{message}"
    );
}

#[test]
fn bad_urls_are_refused_with_a_hint_and_no_password() {
    for url in [
        "http://u:hunter2@host/",
        "redis://u:hunter2@host:notaport/",
        "hunter2",
    ] {
        let err = Cache::builder().url(url).build().unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err:?}");
        assert!(
            message.contains("redis://[user:password@]host"),
            "{message}"
        );
        if url.contains('@') {
            assert!(!message.contains("hunter2"), "{message}");
            assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        }
    }
}

/// The same semantics on the embedded backend: ttl, delete, prefix delete,
/// corrupt-free round trips, single-flight.
#[tokio::test]
async fn the_in_memory_backend_has_the_same_semantics() {
    let _redis = redis();
    for cache in [
        Cache::builder().prefix("same").build().unwrap(),
        cache("same-redis"),
    ] {
        let backend = cache.describe_backend();
        cache
            .set("a:1", &symbol(1), Some(Duration::from_millis(200)))
            .await
            .unwrap();
        cache.set("a:2", &2u8, None).await.unwrap();
        cache.set("b:1", &3u8, None).await.unwrap();
        assert_eq!(
            cache.get::<Symbol>("a:1").await.unwrap(),
            Some(symbol(1)),
            "{backend}"
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(
            cache.get::<Symbol>("a:1").await.unwrap(),
            None,
            "{backend}: expired"
        );
        assert_eq!(cache.delete_prefix("a:").await.unwrap(), 1, "{backend}");
        assert!(cache.delete("b:1").await.unwrap(), "{backend}");
        assert_eq!(cache.get::<u8>("b:1").await.unwrap(), None, "{backend}");
        let v: u8 = cache.get_or_compute("c", None, || async { 9 }).await;
        let again: u8 = cache.get_or_compute("c", None, || async { 10 }).await;
        assert_eq!((v, again), (9, 9), "{backend}");
    }
}

/// A server with an admin password and an ACL user `app` / `s3cret-pw`.
fn acl_server() -> support::RedisServer {
    support::RedisServer::start_with_args(&[
        "--requirepass",
        "admin-pw",
        "--user",
        "app",
        "on",
        ">s3cret-pw",
        "~*",
        "+@all",
    ])
}

#[tokio::test]
async fn acl_users_and_passwords_in_the_url_work_and_stay_secret() {
    let _redis = redis();
    let server = acl_server();
    let good = format!("redis://app:s3cret-pw@127.0.0.1:{}/", server.port);
    let cache = Cache::builder()
        .url(&good)
        .connect()
        .await
        .expect("ACL login works");
    cache.set("k", &1u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(1));
    assert!(!format!("{cache:?}").contains("s3cret-pw"));
    assert!(!cache.describe_backend().contains("s3cret-pw"));

    let bad = format!("redis://app:wrong-pw@127.0.0.1:{}/", server.port);
    let err = Cache::builder().url(&bad).connect().await.unwrap_err();
    let message = format!("{err} {err:?}");
    assert!(!message.contains("wrong-pw"), "{message}");
    assert!(
        message.contains("password"),
        "says what to check: {message}"
    );
}

/// `err` and every error in its `source` chain.
fn error_chain(err: &Error) -> Vec<&(dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .collect()
}

/// The `RedisError` in `err`'s source chain.
fn redis_cause(err: &Error) -> &RedisError {
    error_chain(err)
        .into_iter()
        .find_map(|e| e.downcast_ref::<RedisError>())
        .unwrap_or_else(|| panic!("no RedisError in the source chain of {err:?}"))
}

/// `secret` appears in no Display or Debug text of `err`'s source chain.
fn assert_secret_hidden(err: &Error, secret: &str) {
    for e in error_chain(err) {
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(secret), "{shown}");
    }
}

/// A refused connection is `Connection`, refused credentials are `Auth`,
/// each with redis-rs's error in its `source` chain and without the
/// password anywhere in that chain.
#[tokio::test]
async fn connection_errors_keep_their_kind_and_redis_cause_but_not_the_password() {
    let _redis = redis();
    let dead_port = support::free_port();
    let err = Cache::builder()
        .url(format!("redis://app:hunter2@127.0.0.1:{dead_port}/"))
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    assert!(err.is_connection() && !err.is_timeout(), "{err:?}");
    assert!(redis_cause(&err).is_connection_refusal(), "{err:?}");
    assert!(err.redis_error().is_some());
    assert_secret_hidden(&err, "hunter2");

    let server = acl_server();
    let wrong = format!("redis://app:wrong-pw@127.0.0.1:{}/", server.port);
    let err = Cache::builder().url(&wrong).connect().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err:?}");
    assert!(!err.is_connection() && !err.is_timeout(), "{err:?}");
    assert_eq!(
        redis_cause(&err).kind(),
        RedisErrorKind::AuthenticationFailed,
        "{err:?}"
    );
    assert!(
        err.to_string().contains("check the user and password"),
        "{err}"
    );
    assert_secret_hidden(&err, "wrong-pw");
    assert_secret_hidden(&err, "s3cret-pw");

    // No password on a server that needs one: every command is answered
    // NOAUTH, one reply to a single command, two to DEL + WAIT (a
    // pipeline, whose error redis-rs reports without a code of its own).
    let anonymous = format!("redis://127.0.0.1:{}/", server.port);
    let cache = Cache::builder().url(&anonymous).build().unwrap();
    let err = cache.get::<u8>("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err:?}");
    assert_eq!(redis_cause(&err).code(), Some("NOAUTH"), "{err:?}");
    let waiting = Cache::builder()
        .url(&anonymous)
        .wait_for_replicas(1, Duration::from_millis(50))
        .build()
        .unwrap();
    let err = waiting.delete("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err:?}");
}

#[test]
fn tls_urls_without_the_tls_feature_say_how_to_enable_it() {
    // With `--features tls` the URL is accepted (connecting is issue 7's TLS test).
    match Cache::builder()
        .url("rediss://u:hunter2@127.0.0.1:6380/")
        .build()
    {
        Ok(cache) => assert!(cache
            .describe_backend()
            .starts_with("redis at rediss://u:****@")),
        Err(err) => {
            let message = err.to_string();
            assert!(message.contains("tls"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}

#[tokio::test]
async fn values_over_the_size_limit_are_returned_but_not_stored() {
    let _redis = redis();
    let cache = Cache::builder()
        .url(redis().url())
        .prefix("too-big")
        .codec(Codec::builder().max_value_size(10_000).build())
        .build()
        .unwrap();
    let big: Vec<u64> = cache
        .get_or_compute("big", None, || async { (0..5_000u64).collect() })
        .await;
    assert_eq!(big.len(), 5_000);
    assert_eq!(raw_get(&cache.full_key("big")), None);
    assert_eq!(cache.stats().store_skipped, 1);
    assert!(
        cache.set("big", &big, None).await.is_err(),
        "the strict API reports it"
    );
}

/// One value of a batch over the size limit costs that value only: the
/// others are stored, and it is counted as skipped, not as an outage.
#[tokio::test]
async fn a_batch_with_one_value_over_the_size_limit_stores_the_others() {
    let _redis = redis();
    for builder in [
        Cache::builder().url(redis().url()),
        Cache::builder(), // in-memory
    ] {
        let cache = builder
            .prefix("batch-too-big")
            .codec(Codec::builder().max_value_size(10_000).build())
            .build()
            .unwrap();
        let backend = cache.describe_backend();
        let keys: Vec<String> = (0..10).map(|i| format!("item:{i}")).collect();
        let value = |i: usize| -> Vec<u64> {
            let len = if i == 3 { 5_000 } else { 10 }; // item 3: ~45 KB
            (0..len).map(|n| n as u64 * 1_000_003).collect()
        };
        let got: Vec<Vec<u64>> = cache
            .get_or_compute_many(&keys, None, |missing| {
                let values = missing.iter().map(|&i| value(i)).collect();
                async move { values }
            })
            .await;
        assert_eq!(got, (0..10).map(value).collect::<Vec<_>>(), "{backend}");
        let stored: Vec<Option<Vec<u64>>> = cache.get_many(&keys).await.unwrap();
        let stored_count = stored.iter().filter(|v| v.is_some()).count();
        assert_eq!(
            stored_count, 9,
            "{backend}: the nine small values are stored"
        );
        assert!(stored[3].is_none(), "{backend}");
        let stats = cache.stats();
        assert_eq!(
            (stats.stores, stats.store_skipped, stats.errors),
            (9, 1, 0),
            "{backend}: {stats:?}"
        );
        cache.delete_prefix("item:").await.unwrap();
    }
}

#[tokio::test]
async fn very_long_keys_are_shortened_to_a_readable_head_and_a_hash() {
    let _redis = redis();
    let cache = cache("long-keys");
    let long_a = format!("report:{}", "a".repeat(10_000));
    let long_b = format!("report:{}b", "a".repeat(9_999));
    cache.set(&long_a, &1u8, None).await.unwrap();
    cache.set(&long_b, &2u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>(&long_a).await.unwrap(), Some(1));
    assert_eq!(cache.get::<u8>(&long_b).await.unwrap(), Some(2));
    let full = cache.full_key(&long_a);
    assert!(
        full.len() < 320 && full.starts_with("long-keys:1:report:aaa"),
        "{full}"
    );
    assert!(raw_get(&full).is_some());
}

#[tokio::test]
async fn batches_read_and_write_many_keys_in_one_round_trip() {
    let _redis = redis();
    for cache in [
        cache("batch"),
        Cache::builder().prefix("batch").build().unwrap(),
    ] {
        let backend = cache.describe_backend();
        let items: Vec<(String, Symbol)> =
            (0..100).map(|i| (format!("sym:{i}"), symbol(i))).collect();
        cache
            .set_many(&items, Some(Duration::from_secs(30)))
            .await
            .unwrap();
        let keys: Vec<String> = (0..102).map(|i| format!("sym:{i}")).collect();
        let got: Vec<Option<Symbol>> = cache.get_many(&keys).await.unwrap();
        assert_eq!(got.len(), 102, "{backend}");
        assert_eq!(got[7], Some(symbol(7)), "{backend}");
        assert!(got[100].is_none() && got[101].is_none(), "{backend}");

        let asked = std::sync::Mutex::new(Vec::new());
        let all: Vec<Symbol> = cache
            .get_or_compute_many(&keys, None, |missing| {
                asked.lock().unwrap().extend(missing.iter().copied());
                let values = missing.iter().map(|&i| symbol(i as u64)).collect();
                async move { values }
            })
            .await;
        assert_eq!(
            *asked.lock().unwrap(),
            vec![100, 101],
            "{backend}: only the misses are computed"
        );
        assert_eq!(all, (0..102).map(symbol).collect::<Vec<_>>(), "{backend}");
        assert_eq!(
            cache.get::<Symbol>("sym:101").await.unwrap(),
            Some(symbol(101)),
            "{backend}: misses stored"
        );
    }
    if let Some(ttl) = redis().cmd(&[b"PTTL", b"batch:1:sym:3"]).as_int() {
        assert!(
            (1..=30_000).contains(&ttl),
            "set_many applies the ttl: {ttl}"
        );
    }
}

/// More calls at once than requests the backend keeps on the wire (512):
/// the rest wait their turn within the response timeout, and all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_in_flight_limit_is_served_without_errors() {
    let _redis = redis();
    let cache = Cache::builder()
        .url(redis().url())
        .prefix("burst")
        .response_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..3_000u64)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_compute(&format!("k{i}"), None, || async move { i * 3 })
                    .await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap(), i as u64 * 3);
    }
    let stats = cache.stats();
    assert_eq!((stats.errors, stats.stores), (0, 3_000), "{stats:?}");
}
