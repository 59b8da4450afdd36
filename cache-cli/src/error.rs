//! What can go wrong, said so that the user knows what to do.

use cache_core::redis::RedisError;
use cache_core::RedactedUrl;

/// An error of the `cache-memoize` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The first connection failed.
    #[error("cannot connect to Redis at {url}: {source} (start Redis, or point --url / REDIS_URL at it)")]
    Connect {
        /// The URL, password removed.
        url: RedactedUrl,
        /// What redis-rs said.
        #[source]
        source: RedisError,
    },
    /// A request failed after connecting.
    #[error("Redis at {url} failed during {doing}: {source}")]
    Redis {
        /// The URL, password removed.
        url: RedactedUrl,
        /// The step that failed.
        doing: &'static str,
        /// What redis-rs said.
        #[source]
        source: RedisError,
    },
    /// `show` or `invalidate` of a key that is not there.
    #[error("no key {0:?} in Redis (list keys with `cache-memoize keys`)")]
    NoSuchKey(String),
    /// `--tag`: the entry format has no tags yet.
    #[error(
        "tags need the entry format v2 (tag stamps), which this version of cache-memoize does \
         not write yet; nothing was deleted. Invalidate a FUNCTION or a KEY instead"
    )]
    TagsUnsupported,
    /// The reader of stdout went away (`| head`): not worth a message.
    #[error("stdout was closed")]
    StdoutClosed,
    /// Writing to stdout failed.
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    /// Writing JSON to stdout failed.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}
