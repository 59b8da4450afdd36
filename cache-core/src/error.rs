//! Errors of the strict API (`Cache::get`, `Cache::set`, …).
//!
//! The memoizing path (`Cache::get_or_compute` and the `#[cache_memoize]`
//! attribute) never returns these: it counts and logs them, then computes.
//!
//! A failure that redis-rs reported keeps its [`RedisError`] as the
//! [`source`](std::error::Error::source), and [`Error::kind`] sorts every
//! error into an [`ErrorKind`], so that callers decide on structure, never
//! on message text.
//!
//! No text here shows a password: URLs are carried as [`RedactedUrl`], and
//! a `RedisError`'s own text never contains the connection URL or its
//! credentials. redis-rs 1.8 builds its errors from fixed descriptions, I/O
//! errors (`Connection refused (os error 111)`, which name no address),
//! and server replies; a failed `AUTH` becomes the fixed "Password
//! authentication failed", and Redis never echoes `AUTH` arguments in a
//! reply anyway. `tests/core_redis.rs` checks this for a refused connection
//! and a wrong password, through the whole `source` chain.

use std::time::Duration;

use deadpool_redis::redis::{ErrorKind as RedisErrorKind, RedisError, ServerErrorKind};

use crate::redacted_url::RedactedUrl;

/// What went wrong while talking to the cache, and what to do about it.
///
/// Match on [`kind`](Self::kind) (or use [`is_timeout`](Self::is_timeout),
/// [`is_connection`](Self::is_connection)) rather than on variants when
/// only the kind of failure matters, and reach the redis-rs error with
/// [`redis_error`](Self::redis_error) or through
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection URL could not be understood.
    #[error(
        "invalid Redis URL `{url}`: {source}{}; write it as redis://[user:password@]host[:port][/db], \
         rediss://… for TLS, or redis+unix:///path/to/redis.sock",
        tls_hint(.url)
    )]
    InvalidUrl {
        /// The URL, with any password replaced by `****`.
        url: RedactedUrl,
        /// Why redis-rs refused it.
        #[source]
        source: RedisError,
    },

    /// No connection to Redis could be made.
    #[error("cannot connect to Redis at {url}: {source}; {}", connect_advice(.source))]
    Connect {
        /// The URL, with any password replaced by `****`.
        url: RedactedUrl,
        /// What redis-rs reported (refused, unresolvable host, TLS
        /// handshake, credentials refused, …).
        #[source]
        source: RedisError,
    },

    /// Redis did not answer in time: this crate's clock ran out, or
    /// redis-rs reported an I/O timeout. Either way the timeout is the
    /// whole story, so there is no `source`.
    #[error(
        "Redis at {url} did not answer within {timeout:?}; the server may be overloaded, paused or \
         unreachable (raise `response_timeout` on the builder if large values need longer)"
    )]
    Timeout {
        /// The URL, with any password replaced by `****`.
        url: RedactedUrl,
        /// The timeout that elapsed.
        timeout: Duration,
    },

    /// Redis answered with an error reply, or the connection broke mid-command.
    #[error("Redis command failed at {url}: {source}{}", command_advice(.source))]
    Command {
        /// The URL, with any password replaced by `****`.
        url: RedactedUrl,
        /// The reply or I/O error, as redis-rs reported it.
        #[source]
        source: RedisError,
    },

    /// The circuit breaker is open: Redis failed repeatedly and is not
    /// contacted until its back-off ends.
    #[error(
        "Redis at {url} is marked unavailable after repeated failures (circuit breaker open); \
         calls resume by themselves once a probe succeeds"
    )]
    Unavailable {
        /// The URL, with any password replaced by `****`.
        url: RedactedUrl,
    },

    /// A cluster-wide delete (`delete_prefix`, `delete_function`) could not
    /// reach some masters of a Redis Cluster: their entries are still there
    /// and are served again once they are back.
    #[error(
        "deleted {deleted} entries, but these Redis Cluster masters were not reached and keep \
         theirs: {}; run the delete again once they are back (see CLUSTER NODES)",
        .unreached.join(", ")
    )]
    MastersUnreached {
        /// Each master not reached, as `host:port (why)`.
        unreached: Vec<String>,
        /// Entries deleted on the masters that were reached.
        deleted: u64,
    },

    /// An invalidation was applied on the master, but fewer replicas than
    /// `CacheBuilder::wait_for_replicas` asks for acknowledged it within
    /// its timeout: a failover now could bring the deleted value back.
    #[error(
        "the delete reached the master at {url}, but only {acked} of {wanted} replicas \
         acknowledged it in time; a failover now may undo it (see `wait_for_replicas`)"
    )]
    ReplicasBehind {
        /// The master (or the cluster's seed nodes), password hidden.
        url: RedactedUrl,
        /// Replicas that acknowledged the delete.
        acked: u64,
        /// Replicas asked for.
        wanted: u32,
    },

    /// More memoized calls were looking up at once than the cache allows,
    /// and this one waited its whole response timeout for a turn.
    #[error(
        "too many cache lookups at once: waited {waited:?} for a turn; the call computes \
         without the cache (raise `response_timeout`, or lower the concurrency)"
    )]
    Overloaded {
        /// How long the call waited.
        waited: Duration,
    },

    /// The value could not be encoded (serialized or compressed).
    #[error("cannot encode the value: {0}")]
    Encode(#[source] CodecError),

    /// The builder was given settings that cannot work together.
    #[error("invalid cache configuration: {0}")]
    Config(String),
}

/// The kind of an [`Error`]: what failed, whatever the variant that carries it.
///
/// ```
/// use cache_core::{Cache, ErrorKind};
///
/// let err = Cache::builder().url("redis://localhost:notaport/").build().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidUrl);
/// assert!(!err.is_timeout() && !err.is_connection());
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Nothing listens on port 1.
/// let cache = Cache::builder().url("redis://127.0.0.1:1/").build().unwrap();
/// let err = cache.get::<String>("k").await.unwrap_err();
/// match err.kind() {
///     ErrorKind::Connection | ErrorKind::Timeout => { /* Redis is away: use a fallback */ }
///     other => panic!("unexpected {other:?}: {err}"),
/// }
/// // What redis-rs said is kept, as the error's `source`.
/// assert!(err.redis_error().is_some() || err.is_timeout());
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection URL could not be understood ([`Error::InvalidUrl`]).
    InvalidUrl,
    /// The builder's settings cannot work ([`Error::Config`]).
    Config,
    /// Redis could not be reached, or the connection broke mid-command
    /// ([`Error::Connect`], an I/O failure in [`Error::Command`]), or some
    /// Cluster masters were not reached ([`Error::MastersUnreached`]).
    Connection,
    /// Redis refused the user or password (`WRONGPASS`, `NOAUTH`), or the
    /// user's ACL does not allow the command (`NOPERM`).
    Auth,
    /// Redis did not answer in time ([`Error::Timeout`]).
    Timeout,
    /// The node is a read-only replica (`READONLY`): typically a master
    /// demoted by a failover. The connection is dropped, so the next call
    /// reconnects (through Sentinel or Cluster, to the new master).
    ReadOnly,
    /// Redis answered the command with another error reply (`ERR`, `OOM`,
    /// `WRONGTYPE`, `CLUSTERDOWN`, `LOADING`, …).
    Server,
    /// The circuit breaker is open ([`Error::Unavailable`]).
    CircuitOpen,
    /// Too few replicas acknowledged an invalidation ([`Error::ReplicasBehind`]).
    ReplicasBehind,
    /// Too many lookups at once in this process ([`Error::Overloaded`]).
    Overloaded,
    /// The value could not be encoded ([`Error::Encode`]).
    Codec,
    /// Anything else, e.g. a reply of an unexpected type.
    Other,
}

impl Error {
    /// What failed; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidUrl { .. } => ErrorKind::InvalidUrl,
            Error::Connect { source, .. } if is_auth(source) => ErrorKind::Auth,
            Error::Connect { .. } | Error::MastersUnreached { .. } => ErrorKind::Connection,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Command { source, .. } => command_kind(source),
            Error::Unavailable { .. } => ErrorKind::CircuitOpen,
            Error::ReplicasBehind { .. } => ErrorKind::ReplicasBehind,
            Error::Overloaded { .. } => ErrorKind::Overloaded,
            Error::Encode(_) => ErrorKind::Codec,
            Error::Config(_) => ErrorKind::Config,
        }
    }

    /// Whether Redis did not answer in time ([`ErrorKind::Timeout`]).
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// Whether Redis could not be reached or the connection broke
    /// ([`ErrorKind::Connection`]).
    pub fn is_connection(&self) -> bool {
        self.kind() == ErrorKind::Connection
    }

    /// The redis-rs error behind this one, if redis-rs reported the failure.
    pub fn redis_error(&self) -> Option<&RedisError> {
        match self {
            Error::InvalidUrl { source, .. }
            | Error::Connect { source, .. }
            | Error::Command { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The kind of a command's failure, from what redis-rs reported.
fn command_kind(e: &RedisError) -> ErrorKind {
    if is_auth(e) {
        ErrorKind::Auth
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.kind() == RedisErrorKind::Server(ServerErrorKind::ReadOnly) {
        ErrorKind::ReadOnly
    } else if e.is_io_error()
        || e.is_connection_dropped()
        || e.kind() == RedisErrorKind::ClusterConnectionNotFound
    {
        ErrorKind::Connection
    } else if matches!(
        e.kind(),
        RedisErrorKind::Server(_) | RedisErrorKind::Extension
    ) {
        ErrorKind::Server
    } else {
        ErrorKind::Other
    }
}

/// Whether Redis refused the credentials or the ACL the command.
fn is_auth(e: &RedisError) -> bool {
    // `NOAUTH` and `WRONGPASS` have no `ServerErrorKind` of their own; in
    // a pipeline's error only the replies carry their codes.
    const AUTH_CODES: [&str; 2] = ["NOAUTH", "WRONGPASS"];
    matches!(
        e.kind(),
        RedisErrorKind::AuthenticationFailed | RedisErrorKind::Server(ServerErrorKind::NoPerm)
    ) || e.code().is_some_and(|code| AUTH_CODES.contains(&code))
        || e.clone().into_server_errors().is_some_and(|replies| {
            replies
                .iter()
                .any(|(_, reply)| AUTH_CODES.contains(&reply.code()))
        })
}

/// What to do when connecting failed with `e`.
fn connect_advice(e: &RedisError) -> &'static str {
    if is_auth(e) {
        "Redis refused the credentials: check the user and password in the URL \
         (redis://user:password@host:port) and the user's ACL"
    } else {
        "check that redis-server runs there and that the host, port, password and TLS \
         settings in the URL are right"
    }
}

/// What to do when a command failed with `e`, if there is something to say.
fn command_advice(e: &RedisError) -> &'static str {
    match command_kind(e) {
        ErrorKind::Auth => {
            " (check the user and password in the URL, and that the user's ACL allows the command)"
        }
        ErrorKind::ReadOnly => {
            " (the node is a read-only replica, e.g. a master demoted by a failover; the connection \
             is dropped, so the next call reconnects)"
        }
        ErrorKind::Connection => " (the connection broke: the next call makes a new one)",
        _ => "",
    }
}

/// For a `rediss://` URL in a build without the `tls` feature, how to get it.
fn tls_hint(url: &RedactedUrl) -> &'static str {
    let wants_tls = url
        .as_str()
        .split(',')
        .any(|u| u.starts_with("rediss://") || u.starts_with("valkeys://"));
    if wants_tls && !cfg!(feature = "tls") {
        " (rediss:// needs the `tls` cargo feature of cache-memoize)"
    } else {
        ""
    }
}

/// Why a value could not be encoded or decoded.
///
/// On the read path each of these is a cache miss: the value is recomputed and
/// the entry overwritten.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The entry is shorter than its header or does not start with the magic byte.
    #[error("not a cache entry: {0}")]
    BadHeader(&'static str),
    /// The entry was written by a newer format version.
    #[error("entry format version {0} is not supported by this build (it reads versions 1 and 2)")]
    UnsupportedVersion(u8),
    /// The key holds a lease: another caller is computing its value.
    #[error("the key holds a lease (a computation in progress), not a value")]
    Lease,
    /// The entry names a serializer this build does not have.
    #[error("entry was written with serializer id {0}, which is not compiled in (enable its cargo feature)")]
    UnknownSerializer(u8),
    /// The entry names a compressor this build does not have.
    #[error("entry was written with compressor id {0}, which is not compiled in (enable its cargo feature)")]
    UnknownCompressor(u8),
    /// A stored entry would inflate beyond the configured limit (a read).
    #[error("entry inflates to more than {limit} bytes (the configured max_value_size); refusing to decode it")]
    TooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A value to store serializes to more than the configured limit (a write).
    #[error(
        "serialized value of {size} bytes exceeds max_value_size {limit}; not stored \
         (raise it with CodecBuilder::max_value_size if such values are expected)"
    )]
    ValueTooLarge {
        /// The serialized size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The serializer or compressor panicked (a bug in it); the value is
    /// treated as not cached.
    #[error("{0}: the serializer or compressor panicked (a bug in it, not in the stored entry)")]
    Panicked(&'static str),
    /// The serializer refused the value.
    #[error("{serializer} could not serialize the value: {message}")]
    Serialize {
        /// Serializer name.
        serializer: &'static str,
        /// Its message.
        message: String,
    },
    /// The bytes do not deserialize into the requested type (corrupt, or
    /// written by another version of the program).
    #[error("{serializer} could not deserialize the entry: {message}")]
    Deserialize {
        /// Serializer name.
        serializer: &'static str,
        /// Its message.
        message: String,
    },
    /// The compressor failed.
    #[error("{compressor} failed: {source}")]
    Compression {
        /// Compressor name.
        compressor: &'static str,
        /// The I/O error it reported.
        #[source]
        source: std::io::Error,
    },
}

impl CodecError {
    /// A serializer's refusal, with its message.
    pub fn serialize(serializer: &'static str, error: impl std::fmt::Display) -> Self {
        CodecError::Serialize {
            serializer,
            message: error.to_string(),
        }
    }

    /// Bytes that do not deserialize, with the serializer's message.
    pub fn deserialize(serializer: &'static str, error: impl std::fmt::Display) -> Self {
        CodecError::Deserialize {
            serializer,
            message: error.to_string(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io;
    use std::time::Duration;

    use deadpool_redis::redis::{self, ErrorKind as RedisErrorKind, RedisError};

    use super::{Error, ErrorKind};
    use crate::{Codec, RedactedUrl};

    fn url() -> RedactedUrl {
        RedactedUrl::new("redis://app:s3cret@db:6379/0")
    }

    /// The error redis-rs makes of an error reply read off the wire.
    fn reply(wire: &str) -> RedisError {
        match redis::parse_redis_value(wire.as_bytes()) {
            Ok(value) => value.extract_error().expect_err("an error reply"),
            Err(e) => e,
        }
    }

    fn command(source: RedisError) -> Error {
        Error::Command { url: url(), source }
    }

    #[test]
    fn each_variant_has_its_kind() {
        let refused = RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        let cases = [
            (
                Error::InvalidUrl {
                    url: url(),
                    source: (RedisErrorKind::InvalidClientConfig, "Missing hostname").into(),
                },
                ErrorKind::InvalidUrl,
            ),
            (
                Error::Connect {
                    url: url(),
                    source: refused.clone(),
                },
                ErrorKind::Connection,
            ),
            (
                Error::Connect {
                    url: url(),
                    source: (
                        RedisErrorKind::AuthenticationFailed,
                        "Password authentication failed",
                    )
                        .into(),
                },
                ErrorKind::Auth,
            ),
            (
                Error::Timeout {
                    url: url(),
                    timeout: Duration::from_millis(5),
                },
                ErrorKind::Timeout,
            ),
            (
                command(io::Error::from(io::ErrorKind::TimedOut).into()),
                ErrorKind::Timeout,
            ),
            (
                command(io::Error::from(io::ErrorKind::BrokenPipe).into()),
                ErrorKind::Connection,
            ),
            (command(refused), ErrorKind::Connection),
            (
                command(reply(
                    "-READONLY You can't write against a read only replica.\r\n",
                )),
                ErrorKind::ReadOnly,
            ),
            (
                command(reply("-NOAUTH Authentication required.\r\n")),
                ErrorKind::Auth,
            ),
            (
                command(reply("-WRONGPASS invalid username-password pair\r\n")),
                ErrorKind::Auth,
            ),
            (
                command(reply(
                    "-NOPERM User app has no permissions to run the 'flushall' command\r\n",
                )),
                ErrorKind::Auth,
            ),
            (
                command(reply(
                    "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
                )),
                ErrorKind::Server,
            ),
            (
                command(reply("-ERR unknown command 'FOO'\r\n")),
                ErrorKind::Server,
            ),
            (
                command((RedisErrorKind::UnexpectedReturnType, "not an integer").into()),
                ErrorKind::Other,
            ),
            (Error::Unavailable { url: url() }, ErrorKind::CircuitOpen),
            (
                Error::MastersUnreached {
                    unreached: vec!["10.0.0.1:7000 (timed out)".into()],
                    deleted: 3,
                },
                ErrorKind::Connection,
            ),
            (
                Error::ReplicasBehind {
                    url: url(),
                    acked: 0,
                    wanted: 1,
                },
                ErrorKind::ReplicasBehind,
            ),
            (
                Error::Overloaded {
                    waited: Duration::from_millis(5),
                },
                ErrorKind::Overloaded,
            ),
            (Error::Encode(super::CodecError::Lease), ErrorKind::Codec),
            (Error::Config("no".into()), ErrorKind::Config),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
            assert_eq!(error.is_timeout(), kind == ErrorKind::Timeout, "{error}");
            assert_eq!(
                error.is_connection(),
                kind == ErrorKind::Connection,
                "{error}"
            );
            assert!(
                !format!("{error} {error:?}").contains("s3cret"),
                "{error:?}"
            );
        }
    }

    #[test]
    fn redis_failures_keep_the_redis_error_as_source() {
        let error = command(reply(
            "-READONLY You can't write against a read only replica.\r\n",
        ));
        let source = error.source().expect("a source");
        let redis = source
            .downcast_ref::<RedisError>()
            .expect("the source is the RedisError");
        assert_eq!(redis.code(), Some("READONLY"));
        assert_eq!(
            error.redis_error().and_then(RedisError::code),
            Some("READONLY")
        );
        let message = error.to_string();
        assert!(
            message.contains("read only replica") && message.contains("the next call reconnects"),
            "says what failed and what happens: {message}"
        );
        let timeout = Error::Timeout {
            url: url(),
            timeout: Duration::from_millis(5),
        };
        assert!(timeout.source().is_none() && timeout.redis_error().is_none());
    }

    #[test]
    fn the_connect_message_follows_the_kind() {
        let refused = Error::Connect {
            url: url(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused).into(),
        };
        assert!(
            refused
                .to_string()
                .contains("check that redis-server runs there"),
            "{refused}"
        );
        let auth = Error::Connect {
            url: url(),
            source: (
                RedisErrorKind::AuthenticationFailed,
                "Password authentication failed",
            )
                .into(),
        };
        assert!(
            auth.to_string().contains("check the user and password"),
            "{auth}"
        );
    }

    #[test]
    fn a_tls_url_says_which_feature_it_needs_only_without_it() {
        let error = Error::InvalidUrl {
            url: RedactedUrl::new("rediss://u:pw@h:6380"),
            source: (
                RedisErrorKind::InvalidClientConfig,
                "can't connect with TLS",
            )
                .into(),
        };
        assert_eq!(
            error.to_string().contains("needs the `tls` cargo feature"),
            !cfg!(feature = "tls"),
            "{error}"
        );
        let plain = Error::InvalidUrl {
            url: RedactedUrl::new("redis://h:notaport"),
            source: (
                RedisErrorKind::InvalidClientConfig,
                "Redis URL did not parse",
            )
                .into(),
        };
        assert!(!plain.to_string().contains("`tls`"), "{plain}");
    }

    #[test]
    fn size_errors_say_whether_a_write_or_a_read_was_refused() {
        let codec = Codec::builder().max_value_size(100).build();
        let write = codec.encode(&"x".repeat(500)).unwrap_err().to_string();
        assert!(
            write.contains("serialized value of 503 bytes exceeds max_value_size 100; not stored"),
            "{write}"
        );
        let entry = Codec::default().encode(&"x".repeat(5_000)).unwrap();
        let read = codec.decode::<String>(&entry).unwrap_err().to_string();
        assert!(
            read.contains("inflates") && read.contains("refusing to decode"),
            "{read}"
        );
    }
}
