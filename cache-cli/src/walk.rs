//! The keyspace walk the commands share: `SCAN` on every node, then the
//! size, ttl and header of each key in one pipeline per batch.
//!
//! Counts from a walk are approximate: `SCAN` may return a key twice (when
//! the keyspace is rehashed during the walk), and remembering every key to
//! drop repeats would cost memory in proportion to the keyspace.

use cache_core::codec::header::{LEASE_MAGIC, MAGIC};
use cache_core::redis::{self, Value};
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::CliError;
use crate::server::{reply_error, Node, Server};

/// The most `SCAN` steps a walk takes on one node before giving up: with
/// 500 keys asked per step, far beyond any real keyspace, and still an end
/// to a walk of a keyspace that grows faster than it is scanned.
pub const MAX_SCAN_STEPS_PER_NODE: u64 = 10_000_000;

/// One string key seen by a walk.
pub struct KeyInfo {
    /// The key, as stored (not necessarily UTF-8).
    pub key: Vec<u8>,
    /// Stored size (`STRLEN`).
    pub bytes: u64,
    /// Remaining ttl in ms (`PTTL`: -1 none).
    pub pttl: i64,
    /// The first 4 bytes (the header of a cache entry).
    pub head: Vec<u8>,
}

impl KeyInfo {
    /// The key as text, if it is UTF-8 (every key the library writes is).
    pub fn name(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }

    /// Whether the value starts with the cache's 0xCA magic byte, or is a
    /// lease (0xCB: a value being computed): a key merely named like an
    /// entry (`session:12345:data`) is not one.
    pub fn is_cache_entry(&self) -> bool {
        matches!(self.head.first(), Some(&MAGIC | &LEASE_MAGIC))
    }
}

/// A walk over every node's keys matching a glob.
pub struct Walk {
    glob: String,
    nodes: Vec<Node>,
    /// Index into `nodes` of the node being walked.
    node: usize,
    cursor: u64,
    steps_on_node: u64,
    steps: u64,
    matched_keys: u64,
    progress: ProgressBar,
}

impl Walk {
    /// A walk of `server`'s keys matching `glob`. A spinner on stderr
    /// (drawn only on a terminal) counts the steps and keys.
    pub fn new(server: &Server, glob: String) -> Walk {
        let progress = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} SCAN {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Walk {
            glob,
            nodes: server.nodes(),
            node: 0,
            cursor: 0,
            steps_on_node: 0,
            steps: 0,
            matched_keys: 0,
            progress,
        }
    }

    /// Keys `SCAN` returned so far (matching the glob; of any type on a
    /// Redis older than 6). Approximate: see the module docs.
    pub fn matched_keys(&self) -> u64 {
        self.matched_keys
    }

    /// The next `SCAN` step's keys that `keep` accepts, described, on the
    /// node they live on (possibly none); `None` once every node is done.
    /// Keys gone since the scan, and keys that turn out not to be strings,
    /// are left out.
    pub async fn next_batch(
        &mut self,
        server: &mut Server,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<(Node, Vec<KeyInfo>)>, CliError> {
        let Some(node) = self.nodes.get(self.node).cloned() else {
            self.progress.finish_and_clear();
            return Ok(None);
        };
        if self.steps_on_node == MAX_SCAN_STEPS_PER_NODE {
            self.progress.finish_and_clear();
            return Err(CliError::ScanTooLong {
                node: node.to_string(),
                steps: self.steps_on_node,
            });
        }
        let (next, keys) = server.scan_step(&node, self.cursor, &self.glob).await?;
        self.steps += 1;
        self.steps_on_node += 1;
        self.matched_keys += keys.len() as u64;
        self.progress.set_message(format!(
            "{} steps, {} keys matched",
            self.steps, self.matched_keys
        ));
        self.progress.tick();
        if next == 0 {
            self.node += 1;
            self.cursor = 0;
            self.steps_on_node = 0;
        } else {
            self.cursor = next;
        }
        let keys: Vec<Vec<u8>> = keys.into_iter().filter(|k| keep(k)).collect();
        let infos = describe(server, &node, keys).await?;
        Ok(Some((node, infos)))
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        self.progress.finish_and_clear();
    }
}

/// Size, ttl and header of `keys` (all on `node`). Keys that expired since
/// the scan are left out, and so are keys that are not strings (`WRONGTYPE`:
/// `SCAN` without `TYPE` on Redis before 6, or a key replaced since).
async fn describe(
    server: &mut Server,
    node: &Node,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<KeyInfo>, CliError> {
    const DOING: &str = "STRLEN/PTTL/GETRANGE";
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
        .pipeline_node(node, &pipe, keys.len() * 3, DOING)
        .await?;
    let mut replies = replies.into_iter();
    let mut infos = Vec::with_capacity(keys.len());
    for key in keys {
        let (Some(len), Some(pttl), Some(head)) = (replies.next(), replies.next(), replies.next())
        else {
            break;
        };
        let mut wrong_type = false;
        for reply in [&len, &pttl, &head] {
            if let Some(e) = reply_error(reply) {
                if e.code() == Some("WRONGTYPE") {
                    wrong_type = true;
                } else {
                    return Err(server.failed(DOING, e));
                }
            }
        }
        let pttl = redis::from_redis_value::<i64>(pttl).unwrap_or(-2);
        if wrong_type || pttl == -2 {
            continue;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::support;

    async fn walk_all(server: &mut Server, glob: &str) -> Vec<KeyInfo> {
        let mut walk = Walk::new(server, glob.to_owned());
        let mut all = Vec::new();
        while let Some((_, infos)) = walk.next_batch(server, |_| true).await.unwrap() {
            all.extend(infos);
        }
        all
    }

    /// Keys of every type, one not UTF-8, walked as on Redis 6+ (`SCAN …
    /// TYPE string`) and as on older servers (no `TYPE`: the pipeline meets
    /// `WRONGTYPE`); both see exactly the string keys.
    #[tokio::test]
    async fn only_string_keys_are_described_with_or_without_scan_type() {
        let redis = support::redis_url_for_tests();
        let p = format!("walk{}", std::process::id());
        let entry = format!("{p}:1:f:{}", "a".repeat(32));
        let not_utf8 = [p.as_bytes(), b":1:\xff\xfe"].concat();
        redis.cmd(&[b"SET", entry.as_bytes(), b"\xca\x01\x01\x00x"]);
        redis.cmd(&[b"SET", &not_utf8, b"raw"]);
        redis.cmd(&[b"HSET", format!("{p}:1:hash").as_bytes(), b"f", b"v"]);
        redis.cmd(&[b"RPUSH", format!("{p}:1:list").as_bytes(), b"v"]);
        let mut server = Server::connect(redis.url(), Duration::from_secs(5))
            .await
            .unwrap();
        let glob = format!("{p}:*");
        for by_type in [true, false] {
            if !by_type {
                server.scan_without_type();
            }
            let mut seen = walk_all(&mut server, &glob).await;
            seen.sort_by(|a, b| a.key.cmp(&b.key));
            let keys: Vec<&[u8]> = seen.iter().map(|i| i.key.as_slice()).collect();
            assert_eq!(keys, [entry.as_bytes(), &not_utf8[..]], "TYPE: {by_type}");
            assert!(seen[0].is_cache_entry() && seen[0].name() == Some(entry.as_str()));
            assert!(!seen[1].is_cache_entry() && seen[1].name().is_none());
            assert_eq!(seen[1].bytes, 3);
        }
    }
}
