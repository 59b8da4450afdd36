//! `invalidate FUNCTION | KEY`: delete one function's entries, or one key.

use std::process::ExitCode;

use cache_core::redis;
use serde::Serialize;

use super::{print_json, Options};
use crate::error::CliError;
use crate::function_spec::{parts_of, FunctionSpec};
use crate::server::Server;

#[derive(Debug, Serialize)]
struct Invalidated<'a> {
    /// `key` or `function`.
    target: &'static str,
    name: &'a str,
    deleted: u64,
}

pub async fn run(
    server: &mut Server,
    options: &Options<'_>,
    target: &str,
) -> Result<ExitCode, CliError> {
    // An entry key ends in an args hash, which no function prefix does; any
    // other existing key is deleted as a key too.
    let is_entry_key = parts_of(target, options.prefix).is_some_and(|p| p.function.is_some());
    let is_key = is_entry_key
        || server
            .query::<bool>(redis::cmd("EXISTS").arg(target), "EXISTS")
            .await?;
    let report = if is_key {
        let deleted: u64 = server
            .query(redis::cmd("UNLINK").arg(target), "UNLINK")
            .await?;
        if deleted == 0 {
            return Err(CliError::NoSuchKey(target.to_owned()));
        }
        Invalidated {
            target: "key",
            name: target,
            deleted,
        }
    } else {
        Invalidated {
            target: "function",
            name: target,
            deleted: delete_function(server, options, FunctionSpec::new(target)).await?,
        }
    };
    if options.json {
        print_json(&report)?;
    } else if report.target == "key" {
        outln!("deleted key {}", report.name);
    } else {
        outln!("deleted {} entries of {}", report.deleted, report.name);
        if report.deleted == 0 {
            outln!("(no entries matched: `cache-memoize stats` lists the functions)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `SCAN` every node for the function's entries and `UNLINK` them, a batch
/// at a time (one command per key: a Cluster node refuses multi-key
/// commands across slots).
async fn delete_function(
    server: &mut Server,
    options: &Options<'_>,
    spec: FunctionSpec<'_>,
) -> Result<u64, CliError> {
    let glob = spec.glob();
    let mut deleted = 0;
    for node in server.nodes() {
        let mut cursor = 0;
        loop {
            let (next, keys) = server.scan_step(&node, cursor, &glob).await?;
            let keys: Vec<String> = keys
                .into_iter()
                .filter(|k| parts_of(k, options.prefix).is_some_and(|p| spec.matches(&p)))
                .collect();
            if !keys.is_empty() {
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.cmd("UNLINK").arg(key);
                }
                let replies = server
                    .pipeline_node(&node, &pipe, keys.len(), "UNLINK")
                    .await?;
                deleted += replies
                    .into_iter()
                    .filter_map(|r| redis::from_redis_value::<u64>(r).ok())
                    .sum::<u64>();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(deleted)
}
