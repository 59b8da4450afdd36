//! `stats`: entries, bytes and formats per memoized function, and the
//! server's memory and hit ratio.

use std::collections::BTreeMap;
use std::process::ExitCode;

use cache_core::redis;
use serde::Serialize;

use super::{print_json, walk, Options};
use crate::entry::format_label;
use crate::error::CliError;
use crate::function_spec::parts_of;
use crate::output;
use crate::server::Server;
use crate::{size, table};

/// Keys of a cache that are not a memoized function's entries.
const BY_HAND: &str = "(keys set by hand)";
/// String keys outside any cache's `{prefix}:{version}:` layout.
const OTHER: &str = "(other keys)";

/// One row: a function of a cache.
#[derive(Debug, Default, Serialize)]
struct FunctionStats {
    cache: String,
    function: String,
    entries: u64,
    bytes: u64,
    without_ttl: u64,
    /// Entries per format (`msgpack+zlib`: 12).
    formats: BTreeMap<String, u64>,
}

/// The server's own figures, summed over a Cluster's masters.
#[derive(Debug, Default, Serialize)]
struct ServerStats {
    backend: String,
    redis_version: String,
    used_memory_bytes: u64,
    keyspace_hits: u64,
    keyspace_misses: u64,
    hit_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    functions: Vec<FunctionStats>,
    scanned_keys: u64,
    server: ServerStats,
}

pub async fn run(server: &mut Server, options: &Options<'_>) -> Result<ExitCode, CliError> {
    let mut groups: BTreeMap<(String, String), FunctionStats> = BTreeMap::new();
    let scanned = walk(
        server,
        &options.cache_glob(),
        |_| true,
        |info| {
            let (cache, function) = match parts_of(&info.key, options.prefix) {
                Some(parts) => (
                    format!("{}:{}", parts.prefix, parts.version),
                    parts.function.unwrap_or(BY_HAND).to_owned(),
                ),
                None => (String::new(), OTHER.to_owned()),
            };
            let group = groups
                .entry((cache.clone(), function.clone()))
                .or_insert_with(|| FunctionStats {
                    cache,
                    function,
                    ..FunctionStats::default()
                });
            group.entries += 1;
            group.bytes += info.bytes;
            group.without_ttl += u64::from(info.pttl == -1);
            *group.formats.entry(format_label(&info.head)).or_default() += 1;
            true
        },
    )
    .await?;
    let mut report = Report {
        functions: groups.into_values().collect(),
        scanned_keys: scanned,
        server: server_stats(server).await?,
    };
    // Biggest first: what a user looking at memory wants to see.
    report
        .functions
        .sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.function.cmp(&b.function)));
    if options.json {
        print_json(&report)?;
    } else {
        print_table(&report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(report: &Report) -> Result<(), CliError> {
    let mut rows = table::new(
        &[
            "cache", "function", "entries", "bytes", "avg", "no ttl", "formats",
        ],
        &["entries", "bytes", "avg", "no ttl"],
    );
    for f in &report.functions {
        let formats: Vec<String> = f
            .formats
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        rows.add_row(vec![
            f.cache.clone(),
            f.function.clone(),
            f.entries.to_string(),
            size::bytes(f.bytes),
            size::bytes(f.bytes / f.entries.max(1)),
            f.without_ttl.to_string(),
            formats.join(", "),
        ]);
    }
    output::line(&rows)?;
    let s = &report.server;
    let ratio = s.hit_ratio.map_or_else(
        || "no lookups yet".to_owned(),
        |r| format!("{:.1}% hits", r * 100.0),
    );
    outln!(
        "{} (redis {}): {} keys scanned, {} used, {} hits / {} misses since start ({ratio})",
        s.backend,
        s.redis_version,
        report.scanned_keys,
        size::bytes(s.used_memory_bytes),
        s.keyspace_hits,
        s.keyspace_misses,
    );
    Ok(())
}

async fn server_stats(server: &mut Server) -> Result<ServerStats, CliError> {
    let mut stats = ServerStats {
        backend: server.describe(),
        ..ServerStats::default()
    };
    for node in server.nodes() {
        let info: String = server
            .query_node(&node, &redis::cmd("INFO"), "INFO")
            .await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let number = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        stats.used_memory_bytes += number("used_memory");
        stats.keyspace_hits += number("keyspace_hits");
        stats.keyspace_misses += number("keyspace_misses");
        if stats.redis_version.is_empty() {
            stats.redis_version = field("redis_version").unwrap_or("?").to_owned();
        }
    }
    let lookups = stats.keyspace_hits + stats.keyspace_misses;
    stats.hit_ratio = (lookups > 0).then(|| stats.keyspace_hits as f64 / lookups as f64);
    Ok(stats)
}
