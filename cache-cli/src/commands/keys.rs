//! `keys [FUNCTION]`: keys with their ttl, stored size and format.

use std::process::ExitCode;

use serde::Serialize;

use super::{print_json, walk, Options};
use crate::entry::format_label;
use crate::error::CliError;
use crate::function_spec::{parts_of, FunctionSpec};
use crate::output;
use crate::server::Server;
use crate::{size, table};

#[derive(Debug, Serialize)]
struct KeyRow {
    key: String,
    /// Remaining ttl in ms; `null`: no expiry.
    ttl_ms: Option<i64>,
    bytes: u64,
    format: String,
}

pub async fn run(
    server: &mut Server,
    options: &Options<'_>,
    function: Option<&str>,
    limit: usize,
) -> Result<ExitCode, CliError> {
    let spec = function.map(FunctionSpec::new);
    let glob = match spec {
        Some(spec) => spec.glob(),
        None => options.cache_glob(),
    };
    let keep = |key: &str| match spec {
        Some(spec) => parts_of(key, options.prefix).is_some_and(|parts| spec.matches(&parts)),
        None => true,
    };
    let mut rows = Vec::new();
    let mut more = false;
    walk(server, &glob, keep, |info| {
        if rows.len() == limit {
            more = true;
            return false;
        }
        rows.push(KeyRow {
            ttl_ms: (info.pttl >= 0).then_some(info.pttl),
            bytes: info.bytes,
            format: format_label(&info.head),
            key: info.key,
        });
        true
    })
    .await?;
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    if options.json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = table::new(&["key", "ttl", "bytes", "format"], &["ttl", "bytes"]);
    for row in &rows {
        out.add_row(vec![
            row.key.clone(),
            size::ttl(row.ttl_ms.unwrap_or(-1)),
            size::bytes(row.bytes),
            row.format.clone(),
        ]);
    }
    output::line(&out)?;
    if more {
        outln!("(first {limit} keys; raise --limit to see more)");
    } else {
        outln!("{} keys", rows.len());
    }
    Ok(ExitCode::SUCCESS)
}
