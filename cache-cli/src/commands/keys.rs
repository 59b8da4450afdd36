//! `keys [FUNCTION]`: keys with their ttl, stored size and format.

use std::collections::HashSet;
use std::process::ExitCode;

use serde::Serialize;

use super::{print_json, Options};
use crate::entry::format_label;
use crate::error::CliError;
use crate::function_spec::FunctionSpec;
use crate::output;
use crate::server::Server;
use crate::walk::Walk;
use crate::{size, table};

#[derive(Debug, Serialize)]
struct KeyRow {
    /// The key; a key that is not UTF-8 with `\u{FFFD}` for its invalid
    /// bytes (and its exact bytes in `key_hex`).
    key: String,
    /// The exact key in hex, for keys that are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_hex: Option<String>,
    /// Remaining ttl in ms; `null`: no expiry.
    ttl_ms: Option<i64>,
    bytes: u64,
    format: String,
}

/// What `keys --json` prints.
#[derive(Debug, Serialize)]
struct Listing {
    keys: Vec<KeyRow>,
    /// Whether there are more keys than `--limit` let through.
    truncated: bool,
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
    // A function's keys are its entries, the keys `invalidate FUNCTION`
    // would delete: named like them and holding a cache entry.
    let keep = |key: &[u8]| spec.is_none_or(|spec| spec.selects(key, options.caches));
    let mut rows = Vec::new();
    // SCAN may return a key twice; the listing is bounded by --limit, so
    // remembering what was listed is cheap.
    let mut listed = HashSet::new();
    let mut truncated = false;
    let mut walk = Walk::new(server, glob);
    'walk: while let Some((_, infos)) = walk.next_batch(server, &keep).await? {
        for info in infos {
            if (spec.is_some() && !info.is_cache_entry()) || listed.contains(&info.key) {
                continue;
            }
            if rows.len() == limit {
                truncated = true;
                break 'walk;
            }
            let key_hex = info.name().is_none().then(|| hex(&info.key));
            rows.push(KeyRow {
                key: String::from_utf8_lossy(&info.key).into_owned(),
                key_hex,
                ttl_ms: (info.pttl >= 0).then_some(info.pttl),
                bytes: info.bytes,
                format: format_label(&info.head),
            });
            listed.insert(info.key);
        }
    }
    drop(walk);
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    if options.json {
        print_json(&Listing {
            keys: rows,
            truncated,
        })?;
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
    if truncated {
        outln!("(first {limit} keys; raise --limit to see more)");
    } else {
        outln!("{} keys", rows.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
