//! The command line, as clap parses it.

use clap::{Parser, Subcommand};

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

    /// Only keys of caches with this prefix (`CacheBuilder::prefix`); also
    /// tells where the prefix ends when it contains `:<digits>:` itself.
    #[arg(long, global = true)]
    pub prefix: Option<String>,

    /// JSON on stdout instead of a table (for scripts).
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for Redis to connect and to answer each request.
    #[arg(long, default_value_t = 5.0, global = true, value_name = "SECONDS")]
    pub timeout: f64,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Entries, bytes and formats per memoized function, plus the server's
    /// memory and hit ratio (walks the keyspace with SCAN, never KEYS).
    Stats,
    /// Keys with their ttl, stored size and format; of one function when
    /// FUNCTION is given.
    Keys {
        /// A function as `stats` prints it (`quickstart::primes`), or with its
        /// cache (`shop:1:quickstart::primes`).
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
    },
    /// Delete every entry of one function (FUNCTION as `stats` prints it,
    /// optionally with its cache: `shop:1:quickstart::primes`), or one KEY.
    Invalidate {
        /// A function, or a full key (one ending in an args hash, or any key
        /// that exists).
        #[arg(required_unless_present = "tag", conflicts_with = "tag")]
        target: Option<String>,
        /// Invalidate a tag (needs tag support in the entry format).
        #[arg(long)]
        tag: Option<String>,
    },
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
        let cli = Cli::try_parse_from(["cache-memoize", "invalidate", "--tag", "t"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Invalidate {
                tag: Some(_),
                target: None
            }
        ));
    }
}
