//! `stats`: entries, bytes and formats per memoized function, and the
//! server's memory and hit ratio.

use std::collections::BTreeMap;
use std::process::ExitCode;

use cache_core::redis;
use serde::Serialize;

use super::{print_json, Options};
use crate::cache_selector::parts_of;
use crate::entry::format_label;
use crate::error::CliError;
use crate::output;
use crate::server::Server;
use crate::walk::Walk;
use crate::{size, table};

/// Keys of a cache that are not a memoized function's entries.
const BY_HAND: &str = "(keys set by hand)";
/// String keys that are no cache's: outside the `{prefix}:{version}:`
/// layout, not UTF-8, or with a value that lacks the 0xCA header.
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

/// The server's own figures, summed over a Cluster's masters; `null`
/// where `INFO` was refused (an ACL without +info).
#[derive(Debug, Default, Serialize)]
struct ServerStats {
    backend: String,
    redis_version: Option<String>,
    used_memory_bytes: Option<u64>,
    keyspace_hits: Option<u64>,
    keyspace_misses: Option<u64>,
    hit_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    functions: Vec<FunctionStats>,
    /// Keys `SCAN` returned for the selected caches. Approximate: `SCAN`
    /// may return a key twice.
    matched_keys: u64,
    server: ServerStats,
}

pub async fn run(server: &mut Server, options: &Options<'_>) -> Result<ExitCode, CliError> {
    let mut groups: BTreeMap<(String, String), FunctionStats> = BTreeMap::new();
    let mut walk = Walk::new(server, options.cache_glob());
    while let Some((_, infos)) = walk.next_batch(server, |_| true).await? {
        for info in infos {
            let parts = info
                .name()
                .filter(|_| info.is_cache_entry())
                .and_then(|key| parts_of(key, options.caches));
            let (cache, function) = match parts {
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
        }
    }
    let matched_keys = walk.matched_keys();
    drop(walk);
    let mut report = Report {
        functions: groups.into_values().collect(),
        matched_keys,
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
    let (Some(version), Some(memory), Some(hits), Some(misses)) = (
        &s.redis_version,
        s.used_memory_bytes,
        s.keyspace_hits,
        s.keyspace_misses,
    ) else {
        outln!(
            "{}: {} keys matched; no server figures (INFO refused)",
            s.backend,
            report.matched_keys
        );
        return Ok(());
    };
    let ratio = s.hit_ratio.map_or_else(
        || "no lookups yet".to_owned(),
        |r| format!("{:.1}% hits", r * 100.0),
    );
    outln!(
        "{} (redis {version}): {} keys matched, {} used, {hits} hits / {misses} misses since start ({ratio})",
        s.backend,
        report.matched_keys,
        size::bytes(memory),
    );
    Ok(())
}

/// `INFO` of every node, summed. An `INFO` refused (an ACL without +info)
/// leaves the figures unknown instead of failing the report.
async fn server_stats(server: &mut Server) -> Result<ServerStats, CliError> {
    let mut stats = ServerStats {
        backend: server.describe(),
        ..ServerStats::default()
    };
    let (mut memory, mut hits, mut misses) = (0, 0, 0);
    for node in server.nodes() {
        let info: String = match server.query_node(&node, &redis::cmd("INFO"), "INFO").await {
            Ok(info) => info,
            Err(CliError::Redis { source, .. })
                if matches!(source.kind(), redis::ErrorKind::Server(_)) =>
            {
                eprintln!("note: {node} refused INFO ({source}); no server figures");
                return Ok(stats);
            }
            Err(e) => return Err(e),
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let number = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        memory += number("used_memory");
        hits += number("keyspace_hits");
        misses += number("keyspace_misses");
        if stats.redis_version.is_none() {
            stats.redis_version = Some(field("redis_version").unwrap_or("?").to_owned());
        }
    }
    stats.used_memory_bytes = Some(memory);
    stats.keyspace_hits = Some(hits);
    stats.keyspace_misses = Some(misses);
    let lookups = hits + misses;
    stats.hit_ratio = (lookups > 0).then(|| hits as f64 / lookups as f64);
    Ok(stats)
}
