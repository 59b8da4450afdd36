//! Annotating functions with `#[cache_memoize]`: the options a user needs
//! most, each call printed with its time and whether it was a hit or a miss.
//!
//! ```text
//! cargo run --example annotate
//! ```
//!
//! Uses Redis at `$REDIS_URL` (default `redis://127.0.0.1:6379`); when no
//! Redis answers there, runs on the embedded in-memory backend and says so.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cache_memoize::{cache_memoize, registry, Cache};
use serde::{Deserialize, Serialize};

/// Set by the `miss` callbacks, read after each call to print hit or miss.
static MISSED: AtomicBool = AtomicBool::new(false);

fn note_miss<A: ?Sized, B: ?Sized>(_: &A, _: &B) {
    MISSED.store(true, Ordering::Relaxed);
}

fn note_miss_1<A: ?Sized>(_: &A) {
    MISSED.store(true, Ordering::Relaxed);
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// The django-cache-memoize README example: cached for 5 minutes.
#[cache_memoize(ttl = 300, miss = note_miss)]
async fn compute_something(user: &User, special: bool) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(150)).await;
    vec![format!("{} special={special}", user.name)]
}

/// `key`: only the user id matters, however the rest of `User` changes.
#[cache_memoize(ttl = 60, key = user.id, miss = note_miss_1)]
async fn avatar(user: &User) -> String {
    tokio::time::sleep(Duration::from_millis(100)).await;
    format!("https://example.invalid/avatars/{}.png", user.id)
}

/// A plain (blocking) fn; `skip` keeps the "database" out of the key.
#[cache_memoize(ttl = 60, skip(db), miss = note_miss)]
fn slow_square(db: &str, n: u64) -> u64 {
    let _ = db;
    std::thread::sleep(Duration::from_millis(100));
    n * n
}

/// `Result`: only `Ok` is cached, so a failure is retried on the next call.
#[cache_memoize(ttl = 60, miss = note_miss_1)]
async fn parse_port(text: &str) -> Result<u16, std::num::ParseIntError> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    text.parse()
}

async fn timed<T: std::fmt::Debug>(label: &str, call: impl Future<Output = T>) {
    MISSED.store(false, Ordering::Relaxed);
    let started = Instant::now();
    let value = call.await;
    let took = started.elapsed();
    let outcome = if MISSED.load(Ordering::Relaxed) {
        "miss"
    } else {
        "hit"
    };
    println!("{label:<38} {outcome:<4} {took:>10.2?}  -> {value:?}");
}

async fn connect() -> Cache {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    match Cache::builder()
        .url(&url)
        .prefix("annotate")
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
    {
        Ok(cache) => {
            println!("backend: {}\n", cache.describe_backend());
            cache
        }
        Err(e) => {
            println!("backend: in-memory (embedded), because Redis is not reachable: {e}\n");
            Cache::builder()
                .prefix("annotate")
                .build()
                .expect("the in-memory configuration is valid")
        }
    }
}

#[tokio::main]
async fn main() {
    registry::set_default(connect().await);
    // Start clean, so the first call of each function is a miss on every run.
    compute_something_invalidate_all().await;
    avatar_invalidate_all().await;
    parse_port_invalidate_all().await;
    tokio::task::spawn_blocking(slow_square_invalidate_all)
        .await
        .expect("invalidation does not panic");

    let ann = User {
        id: 1,
        name: "Ann".into(),
    };
    timed(
        "compute_something(ann, false)",
        compute_something(&ann, false),
    )
    .await;
    timed(
        "compute_something(ann, false)",
        compute_something(&ann, false),
    )
    .await;
    timed(
        "compute_something(ann, true)",
        compute_something(&ann, true),
    )
    .await;
    timed(
        "compute_something(ann, true)",
        compute_something(&ann, true),
    )
    .await;
    compute_something_invalidate(&ann, false).await;
    timed(
        "after invalidate: (ann, false)",
        compute_something(&ann, false),
    )
    .await;
    timed("refresh (ann, true)", compute_something_refresh(&ann, true)).await;
    println!(
        "key of (ann, true): {}\n",
        compute_something_cache_key(&ann, true)
    );

    let renamed = User {
        name: "Anna".into(),
        ..ann.clone()
    };
    timed("avatar(ann)", avatar(&ann)).await;
    timed("avatar(renamed ann), key = user.id", avatar(&renamed)).await;

    timed("parse_port(\"80\")", parse_port("80")).await;
    timed("parse_port(\"80\")", parse_port("80")).await;
    timed("parse_port(\"eighty\")", parse_port("eighty")).await;
    timed(
        "parse_port(\"eighty\"), errors not cached",
        parse_port("eighty"),
    )
    .await;

    // A plain fn works from blocking code: here inside spawn_blocking.
    for db in ["primary", "replica"] {
        let label = format!("slow_square({db}, 12), skip(db)");
        let square = async move {
            tokio::task::spawn_blocking(move || slow_square(db, 12))
                .await
                .expect("the blocking call does not panic")
        };
        timed(&label, square).await;
    }
}
