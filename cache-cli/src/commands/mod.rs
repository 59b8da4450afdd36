//! The subcommands, one file each, and the keyspace walk they share.

pub mod invalidate;
pub mod keys;
pub mod show;
pub mod stats;

use cache_core::key::escape_glob;
use cache_core::redis::{self, Value};
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::CliError;
use crate::output;
use crate::server::{Node, Server};

/// Options every command takes.
pub struct Options<'a> {
    /// Only caches with this prefix.
    pub prefix: Option<&'a str>,
    /// JSON instead of tables.
    pub json: bool,
}

impl Options<'_> {
    /// The glob of every key of the selected caches.
    pub fn cache_glob(&self) -> String {
        self.prefix
            .map_or_else(|| "*".to_owned(), |p| format!("{}:*", escape_glob(p)))
    }
}

/// One string key seen by a walk.
pub struct KeyInfo {
    /// The key.
    pub key: String,
    /// Stored size (`STRLEN`).
    pub bytes: u64,
    /// Remaining ttl in ms (`PTTL`: -1 none).
    pub pttl: i64,
    /// The first 4 bytes (the header of a cache entry).
    pub head: Vec<u8>,
}

/// Walks every node's string keys matching `glob` with `SCAN`, reads each
/// key's size, ttl and header in one pipeline per batch, and hands the keys
/// `keep` accepts to `each` until it returns `false`. A progress bar on
/// stderr (only on a terminal) counts the keyspace.
pub async fn walk(
    server: &mut Server,
    glob: &str,
    keep: impl Fn(&str) -> bool,
    mut each: impl FnMut(KeyInfo) -> bool,
) -> Result<u64, CliError> {
    let nodes = server.nodes();
    let mut total = 0u64;
    for node in &nodes {
        total += server
            .query_node::<u64>(node, &redis::cmd("DBSIZE"), "DBSIZE")
            .await?;
    }
    let progress = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{spinner} scanning {pos}/{len} keys {wide_bar} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut scanned = 0u64;
    'nodes: for node in &nodes {
        let mut cursor = 0u64;
        loop {
            let (next, keys) = server.scan_step(node, cursor, glob).await?;
            scanned += keys.len() as u64;
            progress.inc(keys.len() as u64);
            let keys: Vec<String> = keys.into_iter().filter(|k| keep(k)).collect();
            for info in describe(server, node, keys).await? {
                if !each(info) {
                    break 'nodes;
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    progress.finish_and_clear();
    Ok(scanned)
}

/// Size, ttl and header of `keys` (all on `node`); keys that expired since
/// the scan are left out.
async fn describe(
    server: &mut Server,
    node: &Node,
    keys: Vec<String>,
) -> Result<Vec<KeyInfo>, CliError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("STRLEN").arg(key);
        pipe.cmd("PTTL").arg(key);
        pipe.cmd("GETRANGE").arg(key).arg(0).arg(3);
    }
    let replies = server
        .pipeline_node(node, &pipe, keys.len() * 3, "STRLEN/PTTL/GETRANGE")
        .await?;
    let mut replies = replies.into_iter();
    let mut infos = Vec::with_capacity(keys.len());
    for key in keys {
        let (Some(len), Some(pttl), Some(head)) = (replies.next(), replies.next(), replies.next())
        else {
            break;
        };
        let pttl = redis::from_redis_value::<i64>(pttl).unwrap_or(-2);
        if pttl == -2 {
            continue; // gone since the scan
        }
        infos.push(KeyInfo {
            key,
            bytes: redis::from_redis_value::<u64>(len).unwrap_or(0),
            pttl,
            head: match head {
                Value::BulkString(bytes) => bytes,
                _ => Vec::new(),
            },
        });
    }
    Ok(infos)
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    output::line(serde_json::to_string_pretty(value)?)?;
    Ok(())
}
