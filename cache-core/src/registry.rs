//! Named caches, as django's `CACHES` setting with `cache_alias`.
//!
//! ```
//! use cache_core::{registry, Cache};
//! registry::register("sessions", Cache::builder().prefix("sess").build().unwrap());
//! assert_eq!(registry::get("sessions").unwrap().full_key("k"), "sess:1:k");
//! assert!(registry::get("nope").is_none());
//! ```

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use arc_swap::ArcSwap;

use crate::cache::Cache;

/// The alias of the default cache.
pub const DEFAULT_ALIAS: &str = "default";

/// Aliases to caches, hashed with foldhash (not SipHash: looked up on every
/// call, by aliases the program chose).
type Caches = HashMap<String, Cache, foldhash::fast::FixedState>;

/// Read on every memoized call, written at start-up: reads are lock-free
/// (no cache line bouncing between cores), writes copy the map.
fn caches() -> &'static ArcSwap<Caches> {
    static CACHES: OnceLock<ArcSwap<Caches>> = OnceLock::new();
    CACHES.get_or_init(Default::default)
}

/// Serializes writers, so no registration is lost to a concurrent one.
fn writer() -> std::sync::MutexGuard<'static, ()> {
    static WRITER: Mutex<()> = Mutex::new(());
    WRITER.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers `cache` under `alias`, replacing any cache registered there.
pub fn register(alias: &str, cache: Cache) {
    let _writing = writer();
    let mut map = Caches::clone(&caches().load());
    map.insert(alias.to_owned(), cache);
    caches().store(map.into());
}

/// Makes `cache` the default cache (alias `"default"`).
pub fn set_default(cache: Cache) {
    register(DEFAULT_ALIAS, cache);
}

/// Runs `f` with the cache for `alias` (the default cache for `None`),
/// borrowed from the registry: no reference count is touched, which
/// matters on paths that run millions of times a second on every core
/// (the local tier's hits).
///
/// ```
/// use cache_core::{registry, Cache};
/// registry::register("docs-with", Cache::builder().prefix("w").build().unwrap());
/// assert_eq!(registry::with(Some("docs-with"), |cache| cache.full_key("k")), "w:1:k");
/// ```
pub fn with<T>(alias: Option<&str>, f: impl FnOnce(&Cache) -> T) -> T {
    let map = caches().load();
    match map.get(alias.unwrap_or(DEFAULT_ALIAS)) {
        Some(cache) => f(cache),
        None => {
            drop(map);
            f(&resolve(alias))
        }
    }
}

/// The cache registered under `alias`.
pub fn get(alias: &str) -> Option<Cache> {
    caches().load().get(alias).cloned()
}

/// The default cache. When none was registered, an in-memory cache is
/// registered and returned (the embedded default), and this is logged once.
pub fn default_cache() -> Cache {
    if let Some(cache) = get(DEFAULT_ALIAS) {
        return cache;
    }
    let _writing = writer();
    if let Some(cache) = get(DEFAULT_ALIAS) {
        return cache;
    }
    tracing::info!(
        "no default cache registered; using an in-memory cache \
         (call cache_memoize::registry::set_default to use Redis)"
    );
    let cache = Cache::memory();
    let mut map = Caches::clone(&caches().load());
    map.insert(DEFAULT_ALIAS.to_owned(), cache.clone());
    caches().store(map.into());
    cache
}

/// The cache for `alias`, or the default cache when `alias` is `None`. An
/// alias nobody registered falls back to the default cache and logs an error
/// once per alias, so a configuration slip does not fail requests.
pub fn resolve(alias: Option<&str>) -> Cache {
    let Some(alias) = alias else {
        return default_cache();
    };
    if let Some(cache) = get(alias) {
        return cache;
    }
    static REPORTED: OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        OnceLock::new();
    let first_time = REPORTED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(alias.to_owned());
    if first_time {
        tracing::error!(
            alias,
            "no cache registered under this alias; using the default cache \
             (register it with cache_memoize::registry::register)"
        );
    }
    default_cache()
}
