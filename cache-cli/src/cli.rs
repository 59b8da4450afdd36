//! The command line, as clap parses it.

use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Parser, Subcommand};

use crate::cache_selector::CacheSelector;

/// `show --max-bytes` by default: the library's largest value
/// (`Codec::max_value_size`).
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The longest `--timeout`, in seconds.
const MAX_TIMEOUT_SECS: f64 = 3600.0;

/// Look inside a cache-memoize Redis: entries and bytes per memoized
/// function, keys with their ttl and size, values decoded to JSON; and
/// invalidate a function's entries from the shell.
#[derive(Debug, Parser)]
#[command(name = "cache-memoize", version)]
pub struct Cli {
    /// Redis to look at: `redis://[user:password@]host:port[/db]`,
    /// `rediss://` (with the `tls` feature) or `redis+unix://`; a Cluster
    /// node's URL makes the command walk the whole Cluster.
    #[arg(
        long,
        env = "REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    pub url: String,

    /// Only keys of caches with this prefix (`CacheBuilder::prefix`), in
    /// every version (`shop`), or in one version as `stats` prints caches
    /// (`shop:1`). A prefix that itself ends in `:<digits>` is named with
    /// its version (`app:2:5`).
    #[arg(long, global = true, value_parser = CacheSelector::parse)]
    pub prefix: Option<CacheSelector>,

    /// JSON on stdout instead of a table (for scripts).
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for Redis to connect and to answer each request
    /// (more than 0, at most 3600).
    #[arg(
        long,
        default_value = "5",
        global = true,
        value_name = "SECONDS",
        value_parser = parse_timeout
    )]
    pub timeout: Duration,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Entries, bytes and formats per memoized function, plus the server's
    /// memory and hit ratio (walks the keyspace with SCAN, never KEYS;
    /// counts are approximate, as SCAN may return a key twice).
    Stats,
    /// Keys with their ttl, stored size and format; of one function when
    /// FUNCTION is given (its cache entries: what `invalidate FUNCTION`
    /// would delete).
    Keys {
        /// A function as `stats` prints it (`quickstart::primes`), or with its
        /// cache (`shop:1:quickstart::primes`).
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        function: Option<String>,
        /// Print at most this many keys.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// One entry: its header (format version, serializer, compressor), its
    /// sizes and ttl, and the value decoded to JSON.
    Show {
        /// The full Redis key, e.g. from `keys` or `foo_cache_key(args…)`.
        key: String,
        /// Read values up to this many bytes (stored, and inflated); a
        /// larger one is described from its header without being read.
        #[arg(long, default_value_t = DEFAULT_MAX_BYTES, value_name = "BYTES")]
        max_bytes: u64,
    },
    /// Delete the cache entries of one function (FUNCTION as `stats` prints
    /// it, optionally with its cache: `shop:1:quickstart::primes`), or one
    /// key with --key.
    Invalidate {
        /// A function: only keys named like its entries (in the caches
        /// --prefix selects) whose value is a cache entry are deleted. A full
        /// entry key (ending in `:` and a 32-digit args hash) deletes that
        /// one entry, if its value is a cache entry.
        #[arg(
            required_unless_present_any = ["key", "tag"],
            conflicts_with_all = ["key", "tag"],
            value_parser = NonEmptyStringValueParser::new()
        )]
        function: Option<String>,
        /// Delete exactly this one key, whatever it holds: any key, cache
        /// entry or not (--prefix does not apply). A missing key deletes
        /// nothing and is not an error.
        #[arg(long, conflicts_with = "tag", value_parser = NonEmptyStringValueParser::new())]
        key: Option<String>,
        /// Invalidate every value memoized with this tag (`tags = [...]`), in
        /// the cache `--prefix` names (`shop:1`; `shop` means version 1).
        #[arg(long, value_parser = NonEmptyStringValueParser::new())]
        tag: Option<String>,
    },
}

/// `--timeout`: seconds, more than 0 and at most an hour.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= MAX_TIMEOUT_SECS) {
        return Err(format!(
            "{text} seconds is out of range: give more than 0 and at most {MAX_TIMEOUT_SECS}"
        ));
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text} seconds: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn invalidate_needs_exactly_one_target() {
        assert!(Cli::try_parse_from(["cache-memoize", "invalidate"]).is_err());
        assert!(Cli::try_parse_from(["cache-memoize", "invalidate", "f", "--tag", "t"]).is_err());
        assert!(Cli::try_parse_from(["cache-memoize", "invalidate", "f", "--key", "k"]).is_err());
        assert!(
            Cli::try_parse_from(["cache-memoize", "invalidate", "--key", "k", "--tag", "t"])
                .is_err()
        );
        let cli = Cli::try_parse_from(["cache-memoize", "invalidate", "--tag", "t"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Invalidate {
                tag: Some(_),
                function: None,
                key: None,
            }
        ));
        let cli = Cli::try_parse_from(["cache-memoize", "invalidate", "--key", "k"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Invalidate { key: Some(_), .. }
        ));
    }

    #[test]
    fn empty_names_are_refused() {
        for args in [
            &["cache-memoize", "invalidate", ""][..],
            &["cache-memoize", "invalidate", "--key", ""],
            &["cache-memoize", "keys", ""],
            &["cache-memoize", "--prefix", "", "stats"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn timeouts_are_positive_finite_and_at_most_an_hour() {
        for bad in ["inf", "1e20", "NaN", "0", "-1", "3601", "soon"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("3600"), Ok(Duration::from_secs(3600)));
        let cli = Cli::try_parse_from(["cache-memoize", "stats"]).unwrap();
        assert_eq!(cli.timeout, Duration::from_secs(5));
    }

    #[test]
    fn the_default_max_bytes_is_the_librarys_max_value_size() {
        assert_eq!(
            DEFAULT_MAX_BYTES,
            cache_core::Codec::default().max_value_size() as u64
        );
    }
}
