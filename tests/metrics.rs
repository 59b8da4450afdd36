//! Per-function hits, misses, errors and latency: the plain snapshot, the
//! `metrics` export (rendered by the Prometheus exporter) and the `tracing`
//! span of each call.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[path = "support/captured_logs.rs"]
mod captured_logs;
#[path = "support/mod.rs"]
mod support;

use cache_memoize::stats::function_stats_of;
use cache_memoize::{cache_memoize, registry, BreakerSettings, Cache, LocalTier, LocalTierState};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process's Prometheus recorder, installed before any memoized call
/// (metric handles are registered on a function's first call).
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("no other recorder in this test binary")
    })
}

#[cache_memoize(alias = "metrics-memory", prefix = "metrics::square")]
async fn square(n: u64) -> u64 {
    n * n
}

#[cache_memoize(alias = "metrics-down", prefix = "metrics::down")]
fn cube(n: u64) -> u64 {
    n * n * n
}

#[tokio::test]
async fn hits_misses_and_latency_are_counted_and_exported() {
    let exporter = prometheus();
    registry::register("metrics-memory", Cache::memory());
    for n in [1, 2, 1, 1, 2] {
        assert_eq!(square(n).await, n * n);
    }
    let stats = function_stats_of("metrics::square").expect("counted");
    assert_eq!((stats.hits, stats.misses, stats.errors), (3, 2, 0));
    assert_eq!(stats.calls(), 5);
    assert!(stats.max_latency > Duration::ZERO);
    assert!(stats.mean_latency() <= stats.max_latency);
    assert!((stats.hit_ratio() - 0.6).abs() < 1e-9);

    let text = exporter.render();
    for line in [
        r#"cache_memoize_hits_total{function="metrics::square"} 3"#,
        r#"cache_memoize_misses_total{function="metrics::square"} 2"#,
        r#"cache_memoize_call_seconds_count{function="metrics::square"} 5"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[test]
fn backend_errors_are_counted_per_function() {
    let exporter = prometheus();
    // Nothing listens on port 1: every lookup fails, the body still runs.
    let cache = Cache::builder()
        .url("redis://127.0.0.1:1/")
        .connect_timeout(Duration::from_millis(200))
        .circuit_breaker(BreakerSettings::default())
        .build()
        .unwrap();
    registry::register("metrics-down", cache);
    for n in 0..3 {
        assert_eq!(cube(n), n * n * n);
    }
    let stats = function_stats_of("metrics::down").expect("counted");
    assert_eq!((stats.hits, stats.misses, stats.errors), (0, 3, 3));
    let text = exporter.render();
    let line = r#"cache_memoize_errors_total{function="metrics::down"} 3"#;
    assert!(text.contains(line), "missing {line} in\n{text}");
}

#[cache_memoize(alias = "metrics-span", prefix = "metrics::traced")]
async fn traced(n: u64) -> u64 {
    tracing::info!("computing {n}");
    n + 1
}

#[tokio::test]
async fn each_call_runs_in_a_span_with_function_key_hash_and_outcome() {
    let _ = prometheus();
    registry::register("metrics-span", Cache::memory());
    let logs = captured_logs::global_logs(tracing::Level::DEBUG);
    assert_eq!(traced(1).await, 2);
    assert_eq!(traced(1).await, 2);
    let text = logs.text();
    let hash = traced_cache_key(1).rsplit_once(':').unwrap().1.to_owned();
    let closes: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("close") && l.contains("metrics::traced"))
        .collect();
    assert_eq!(closes.len(), 2, "{text}");
    for (line, outcome) in closes.iter().zip(["miss", "hit"]) {
        assert!(line.contains("memoized{"), "{line}");
        assert!(line.contains("function=metrics::traced"), "{line}");
        assert!(
            line.contains(&format!("key_hash=\"{hash}\""))
                || line.contains(&format!("key_hash={hash}")),
            "{line}"
        );
        assert!(
            line.contains(&format!("outcome=\"{outcome}\""))
                || line.contains(&format!("outcome={outcome}")),
            "{line}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.contains("memoized{") && l.contains("computing 1")),
        "the body's events are inside the span: {text}"
    );
}

#[cache_memoize(alias = "metrics-tier", prefix = "metrics::tiered")]
async fn tiered(n: u64) -> u64 {
    n * 2
}

/// The value of the exported line that starts with `name{cache="metrics-tier`.
fn tier_metric(text: &str, name: &str) -> Option<f64> {
    let start = format!(r#"{name}{{cache="metrics-tier:"#);
    text.lines()
        .find(|line| line.starts_with(&start))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_tier_exports_its_counters() {
    let exporter = prometheus();
    let redis = support::shared_redis();
    let cache = Cache::builder()
        .url(redis.url())
        .prefix("metrics-tier")
        .local_tier(LocalTier::new(1 << 20))
        .build()
        .expect("a valid cache");
    registry::register("metrics-tier", cache.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    // Fill memory (a new key is read twice from Redis: the push of this
    // process's own store undoes the first fill), then hit it.
    loop {
        assert!(
            Instant::now() < deadline,
            "no local hit counted and exported: {:?}\n{}",
            cache.local_tier_state(),
            exporter.render()
        );
        assert_eq!(tiered(21).await, 42);
        let text = exporter.render();
        let hits = tier_metric(&text, "cache_memoize_local_hits_total").unwrap_or(0.0);
        if cache.local_tier_state() == Some(LocalTierState::Serving) && hits >= 1.0 {
            assert!(
                tier_metric(&text, "cache_memoize_local_entries").unwrap() >= 1.0,
                "{text}"
            );
            assert!(
                tier_metric(&text, "cache_memoize_local_bytes").unwrap() > 0.0,
                "{text}"
            );
            assert!(
                tier_metric(&text, "cache_memoize_local_epoch_bumps_total").unwrap() >= 1.0,
                "{text}"
            );
            let lease_age = tier_metric(&text, "cache_memoize_local_lease_age_seconds").unwrap();
            assert!(lease_age < 5.0, "{text}");
            assert!(
                tier_metric(&text, "cache_memoize_local_push_lag_seconds").is_some(),
                "{text}"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
