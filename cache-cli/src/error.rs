//! What can go wrong, said so that the user knows what to do.

use cache_core::redis::{ErrorKind, RedisError};
use cache_core::RedactedUrl;

/// An error of the `cache-memoize` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The first connection failed.
    #[error("cannot connect to Redis at {url}: {source} ({hint})")]
    Connect {
        /// The URL, password removed.
        url: RedactedUrl,
        /// What redis-rs said.
        #[source]
        source: RedisError,
        /// What to do about it, from the kind of failure.
        hint: &'static str,
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
    /// A Cluster whose `CLUSTER SLOTS` names no reachable master.
    #[error(
        "the Redis Cluster at {url} lists no master with a known address in CLUSTER SLOTS \
         (is the Cluster still forming? check `redis-cli -c cluster slots`)"
    )]
    NoMasters {
        /// The URL, password removed.
        url: RedactedUrl,
    },
    /// A `SCAN` that did not end within the step bound.
    #[error(
        "SCAN on {node} did not finish after {steps} steps (is the keyspace growing faster \
         than it is walked?); stopped, so what was printed or deleted is incomplete. \
         Narrow the walk with --prefix"
    )]
    ScanTooLong {
        /// The node being walked.
        node: String,
        /// Steps taken.
        steps: u64,
    },
    /// `show` of a key that is not there.
    #[error("no key {0:?} in Redis (list keys with `cache-memoize keys`)")]
    NoSuchKey(String),
    /// `show` of a key that holds a list, hash, ….
    #[error("key {key:?} holds a {kind}, not a string: cache entries are strings")]
    NotAString {
        /// The key.
        key: String,
        /// Its Redis type.
        kind: String,
    },
    /// `invalidate KEY` (positional) of a key whose value is no cache entry.
    #[error(
        "key {0:?} does not hold a cache entry (its value does not start with the 0xCA \
         header), so `invalidate` leaves it alone; nothing was deleted. To delete it anyway: \
         `cache-memoize invalidate --key {0:?}`"
    )]
    NotACacheEntry(String),
    /// `--tag` without `--prefix`.
    #[error(
        "--tag needs --prefix naming the cache (`--prefix shop:1`, or `--prefix shop` for \
         version 1): a tag's version key lives in its cache's namespace; nothing was changed"
    )]
    TagNeedsPrefix,
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

impl CliError {
    /// The first connection to `url` failed with `source`.
    pub fn connect(url: RedactedUrl, source: RedisError) -> Self {
        Self::Connect {
            hint: connect_hint(&source, &url),
            url,
            source,
        }
    }
}

/// What to do when connecting to `url` failed with `e`.
fn connect_hint(e: &RedisError, url: &RedactedUrl) -> &'static str {
    if e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
    {
        "check the user and password in --url / REDIS_URL: \
         redis://user:password@host:port"
    } else if e.kind() == ErrorKind::InvalidClientConfig && wants_tls(url) && !cfg!(feature = "tls")
    {
        "this build cannot speak TLS: reinstall with `cargo install cache-memoize-cli \
         --features tls` for rediss:// URLs"
    } else if e.kind() == ErrorKind::InvalidClientConfig {
        "check --url / REDIS_URL: redis://[user:password@]host:port[/db], rediss://… or \
         redis+unix:///path, with `/`, `@`, `?` and `#` in a password written as %2F, %40, \
         %3F, %23"
    } else if e.is_timeout() {
        "no answer in time: check the host and port, or raise --timeout"
    } else {
        "start Redis, or point --url / REDIS_URL at it"
    }
}

/// Whether `url` asks for TLS (`rediss://`, `valkeys://`).
fn wants_tls(url: &RedactedUrl) -> bool {
    let url = url.as_str();
    url.starts_with("rediss://") || url.starts_with("valkeys://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_hint_follows_the_failure() {
        let plain = RedactedUrl::new("redis://127.0.0.1:6379");
        let auth = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert!(connect_hint(&auth, &plain).contains("password"));
        let noauth = cache_core::redis::parse_redis_value(b"-NOAUTH Authentication required.\r\n")
            .unwrap()
            .extract_error()
            .unwrap_err();
        assert!(connect_hint(&noauth, &plain).contains("password"));
        let tls = RedisError::from((
            ErrorKind::InvalidClientConfig,
            "can't connect with TLS, the feature is not enabled",
        ));
        let tls_url = RedactedUrl::new("rediss://127.0.0.1:6380");
        assert_eq!(
            connect_hint(&tls, &tls_url).contains("--features tls"),
            !cfg!(feature = "tls")
        );
        assert!(!connect_hint(&tls, &plain).contains("--features tls"));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(connect_hint(&refused, &plain).contains("start Redis"));
    }
}
