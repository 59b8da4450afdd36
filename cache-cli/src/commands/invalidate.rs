//! `invalidate FUNCTION` deletes one function's cache entries (and nothing
//! else); `invalidate --key KEY` deletes exactly one key, whatever it holds.

use std::process::ExitCode;

use cache_core::codec::header::{LEASE_MAGIC, MAGIC};
use cache_core::redis;
use serde::Serialize;

use super::{print_json, Options};
use crate::cache_selector::parts_of;
use crate::error::CliError;
use crate::function_spec::FunctionSpec;
use crate::server::{reply_error, Server};
use crate::walk::Walk;

/// What to delete.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// `invalidate FUNCTION`: a function's entries, or one entry named by
    /// its full key.
    Function(&'a str),
    /// `invalidate --key KEY`: this key, whatever it holds.
    Key(&'a str),
    /// `invalidate --tag TAG`: every value that depends on the tag (one
    /// `SET` of a new random version, as `Cache::invalidate_tag`).
    Tag(&'a str),
}

#[derive(Debug, Serialize)]
struct Invalidated<'a> {
    /// `key` or `function`.
    target: &'static str,
    name: &'a str,
    deleted: u64,
    /// Keys named like the function's entries whose value is no cache
    /// entry: left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<u64>,
}

pub async fn run(
    server: &mut Server,
    options: &Options<'_>,
    target: Target<'_>,
) -> Result<ExitCode, CliError> {
    let report = match target {
        Target::Tag(tag) => {
            let caches = options.caches.ok_or(CliError::TagNeedsPrefix)?;
            let key = caches.tag_key(tag);
            // A new random version, as `Cache::invalidate_tag` writes it.
            let version = fastrand::u64(1..);
            let set = redis::cmd("SET").arg(&key).arg(version.to_string()).clone();
            server.query::<()>(&set, "SET").await?;
            if options.json {
                print_json(&serde_json::json!({"target": "tag", "name": tag, "version": version}))?;
            } else {
                outln!("invalidated tag {tag} (now at version {version}, key {key})");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Target::Key(key) => Invalidated {
            target: "key",
            name: key,
            deleted: unlink(server, key).await?,
            skipped: None,
        },
        // A full entry key (`…:{args hash}` in a selected cache; no
        // function name ends that way) is one entry, deleted when its value
        // is a cache entry's.
        Target::Function(name)
            if parts_of(name, options.caches).is_some_and(|p| p.function.is_some()) =>
        {
            Invalidated {
                target: "key",
                name,
                deleted: delete_entry(server, name).await?,
                skipped: None,
            }
        }
        Target::Function(name) => {
            let (deleted, skipped) =
                delete_function(server, options, FunctionSpec::new(name)).await?;
            Invalidated {
                target: "function",
                name,
                deleted,
                skipped: Some(skipped),
            }
        }
    };
    if report.target == "key" && report.deleted == 0 {
        eprintln!("note: no key {:?}; nothing to delete", report.name);
    }
    if options.json {
        print_json(&report)?;
    } else if report.target == "key" {
        outln!("deleted {} key {}", report.deleted, report.name);
    } else {
        outln!("deleted {} entries of {}", report.deleted, report.name);
        if let Some(skipped @ 1..) = report.skipped {
            outln!("(left {skipped} keys named like its entries that hold no cache entry)");
        }
        if report.deleted == 0 {
            outln!("(no entries matched: `cache-memoize stats` lists the functions)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `UNLINK key`: 1, or 0 when it was not there.
async fn unlink(server: &mut Server, key: &str) -> Result<u64, CliError> {
    server.query(redis::cmd("UNLINK").arg(key), "UNLINK").await
}

/// Deletes `key` if its value starts with the 0xCA magic byte: 1, or 0 when
/// there is no such key.
async fn delete_entry(server: &mut Server, key: &str) -> Result<u64, CliError> {
    let kind: String = server.query(redis::cmd("TYPE").arg(key), "TYPE").await?;
    if kind == "none" {
        return Ok(0);
    }
    let first: Vec<u8> = if kind == "string" {
        server
            .query(redis::cmd("GETRANGE").arg(key).arg(0).arg(0), "GETRANGE")
            .await?
    } else {
        Vec::new()
    };
    // A lease (a value being computed) is deleted too: that kills the
    // computation's store, as an invalidation must.
    if first != [MAGIC] && first != [LEASE_MAGIC] {
        return Err(CliError::NotACacheEntry(key.to_owned()));
    }
    unlink(server, key).await
}

/// Walks every node for the function's entries and `UNLINK`s those whose
/// value starts with the 0xCA magic byte, a batch at a time (one command
/// per key: a Cluster node refuses multi-key commands across slots).
/// Returns how many were deleted, and how many keys named like entries
/// were left because they hold something else.
async fn delete_function(
    server: &mut Server,
    options: &Options<'_>,
    spec: FunctionSpec<'_>,
) -> Result<(u64, u64), CliError> {
    let (mut deleted, mut skipped) = (0, 0);
    let keep = |key: &[u8]| spec.selects(key, options.caches);
    let mut walk = Walk::new(server, spec.glob());
    while let Some((node, infos)) = walk.next_batch(server, &keep).await? {
        let (entries, others): (Vec<_>, Vec<_>) =
            infos.into_iter().partition(|info| info.is_cache_entry());
        skipped += others.len() as u64;
        if entries.is_empty() {
            continue;
        }
        let mut pipe = redis::pipe();
        for info in &entries {
            pipe.cmd("UNLINK").arg(&info.key);
        }
        let replies = server
            .pipeline_node(&node, &pipe, entries.len(), "UNLINK")
            .await?;
        for reply in replies {
            if let Some(e) = reply_error(&reply) {
                return Err(server.failed("UNLINK", e));
            }
            deleted += redis::from_redis_value::<u64>(reply).unwrap_or(0);
        }
    }
    Ok((deleted, skipped))
}
