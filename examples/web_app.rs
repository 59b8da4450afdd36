//! Web app result caching: an axum service whose search handler does
//! expensive work (a 20 ms simulated database query plus a substring search
//! over 200,000 generated symbols) through a memoized function.
//!
//! ```text
//! cargo run --release --example web_app            # listens on 127.0.0.1:3000 (PORT=…)
//! curl -i 'http://127.0.0.1:3000/search?q=parse'   # X-Cache: miss, then hit
//! curl -i 'http://127.0.0.1:3000/uncached/search?q=parse'
//! curl 'http://127.0.0.1:3000/metrics'             # Prometheus text
//! ```
//!
//! Routes:
//! * `/search?q=…` — through the cache; the `X-Cache` header says `hit` or `miss`;
//! * `/uncached/search?q=…` — the same work without the cache, for comparison;
//! * `/metrics` — per-function hits, misses, errors and latency (Prometheus);
//! * `/stats` — the same counters as plain text.
//!
//! Uses Redis at `$REDIS_URL` (default `redis://127.0.0.1:6379`); when no
//! Redis answers there, runs on the embedded in-memory backend and says so.
//! Redis trouble never fails a request: the handler computes instead.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::Query;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use cache_memoize::{cache_memoize, registry, Cache};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};

/// Symbols in the generated dataset.
const SYMBOLS: usize = 200_000;
/// The simulated database query of every search.
const DB_LATENCY: Duration = Duration::from_millis(20);

/// One search result.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SymbolHit {
    symbol: String,
    score: u32,
}

#[derive(Deserialize)]
struct SearchParams {
    q: String,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    20
}

/// `crate_3::net::Parser::parse_header` and the like, lowercased once.
fn symbols() -> &'static [String] {
    static SYMBOLS_CELL: OnceLock<Vec<String>> = OnceLock::new();
    SYMBOLS_CELL.get_or_init(|| {
        const MODULES: [&str; 8] = ["net", "io", "fmt", "sync", "codec", "http", "db", "auth"];
        const TYPES: [&str; 8] = [
            "Parser", "Buffer", "Client", "Server", "Session", "Encoder", "Pool", "Token",
        ];
        const VERBS: [&str; 8] = [
            "parse", "read", "write", "flush", "open", "close", "encode", "validate",
        ];
        const NOUNS: [&str; 8] = [
            "header", "body", "frame", "chunk", "request", "reply", "config", "key",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as usize
        };
        (0..SYMBOLS)
            .map(|i| {
                let r = next();
                format!(
                    "crate_{}::{}::{}::{}_{}_{}",
                    i % 97,
                    MODULES[r % 8],
                    TYPES[(r >> 3) % 8],
                    VERBS[(r >> 6) % 8],
                    NOUNS[(r >> 9) % 8],
                    (r >> 12) % 1000
                )
                .to_lowercase()
            })
            .collect()
    })
}

/// The expensive work: a database round trip, then a scored substring
/// search over every symbol.
async fn search_symbols(query: &str, limit: usize) -> Vec<SymbolHit> {
    tokio::time::sleep(DB_LATENCY).await;
    let query = query.to_lowercase();
    let mut hits: Vec<SymbolHit> = symbols()
        .iter()
        .filter_map(|symbol| {
            let at = symbol.find(&query)?;
            // Matches near the end (the method name) and in short symbols first.
            let score = 10_000 + at as u32 * 10 - symbol.len() as u32;
            Some(SymbolHit {
                symbol: symbol.clone(),
                score,
            })
        })
        .collect();
    hits.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.symbol.cmp(&b.symbol)));
    hits.truncate(limit);
    hits
}

tokio::task_local! {
    /// Set by the memoized body: this request computed (a miss).
    static COMPUTED: Cell<bool>;
}

/// [`search_symbols`] through the cache, for 10 minutes per (query, limit).
#[cache_memoize(ttl = 600, prefix = "web_app::search")]
async fn cached_search(query: String, limit: usize) -> Vec<SymbolHit> {
    let _ = COMPUTED.try_with(|computed| computed.set(true));
    search_symbols(&query, limit).await
}

async fn search(Query(params): Query<SearchParams>) -> impl IntoResponse {
    let (hits, computed) = COMPUTED
        .scope(Cell::new(false), async {
            let hits = cached_search(params.q, params.limit).await;
            (hits, COMPUTED.with(Cell::get))
        })
        .await;
    let outcome = if computed { "miss" } else { "hit" };
    ([("x-cache", outcome)], Json(hits))
}

async fn uncached_search(Query(params): Query<SearchParams>) -> impl IntoResponse {
    Json(search_symbols(&params.q, params.limit).await)
}

fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("the Prometheus recorder is the only one in this program")
    })
}

async fn metrics() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus().render(),
    )
}

async fn stats() -> String {
    let mut out = String::new();
    for s in cache_memoize::stats::function_stats() {
        out.push_str(&format!(
            "{}: {} calls, {} hits, {} misses, {} errors, mean {:?}, max {:?}\n",
            s.function,
            s.calls(),
            s.hits,
            s.misses,
            s.errors,
            s.mean_latency(),
            s.max_latency
        ));
    }
    out
}

async fn connect() -> Cache {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let redis = Cache::builder()
        .url(&url)
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await;
    match redis {
        Ok(cache) => {
            println!("backend: {}", cache.describe_backend());
            cache
        }
        Err(e) => {
            println!("backend: in-memory (embedded), because Redis is not reachable: {e}");
            Cache::memory()
        }
    }
}

#[tokio::main]
async fn main() {
    // Before the first memoized call: metric handles are registered then.
    prometheus();
    registry::set_default(connect().await);
    symbols(); // generate the dataset before serving

    let app = Router::new()
        .route("/search", get(search))
        .route("/uncached/search", get(uncached_search))
        .route("/metrics", get(metrics))
        .route("/stats", get(stats));
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| {
            panic!("cannot listen on 127.0.0.1:{port} ({e}); set PORT to a free port")
        });
    println!("listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.expect("the server failed");
}
