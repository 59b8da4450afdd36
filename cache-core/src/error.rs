//! Errors of the strict API (`Cache::get`, `Cache::set`, …).
//!
//! The memoizing path (`Cache::get_or_compute` and the `#[cache_memoize]`
//! attribute) never returns these: it counts and logs them, then computes.

use std::time::Duration;

use crate::redacted_url::RedactedUrl;

/// What went wrong while talking to the cache, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection URL could not be understood.
    #[error(
        "invalid Redis URL `{url}`: {reason}; write it as redis://[user:password@]host[:port][/db], \
         rediss://… for TLS, or redis+unix:///path/to/redis.sock"
    )]
    InvalidUrl {
        /// The URL, with any password replaced by `****`.
        url: RedactedUrl,
        /// Why it was refused.
        reason: String,
    },

    /// No connection to Redis could be made.
    #[error(
        "cannot connect to Redis at {url}: {reason}; check that redis-server runs there and that \
         the host, port, password and TLS settings in the URL are right"
    )]
    Connect {
        /// The URL, with any password replaced by `****`.
        url: RedactedUrl,
        /// The underlying reason.
        reason: String,
    },

    /// Redis did not answer in time.
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
    #[error("Redis command failed at {url}: {reason}")]
    Command {
        /// The URL, with any password replaced by `****`.
        url: RedactedUrl,
        /// The reply or I/O error.
        reason: String,
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
    use crate::Codec;

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
