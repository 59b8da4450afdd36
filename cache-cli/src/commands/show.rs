//! `show KEY`: one entry's header, sizes, ttl and value as JSON.

use std::process::ExitCode;

use cache_core::redis;
use cache_core::Codec;
use serde::Serialize;

use super::{print_json, Options};
use crate::entry::{inspect, inspect_head, Inspection};
use crate::error::CliError;
use crate::output;
use crate::server::Server;
use crate::size;

/// How many bytes of a value too large to read are described.
const HEAD_BYTES: i64 = 32;

#[derive(Debug, Serialize)]
struct Shown {
    key: String,
    /// Remaining ttl in ms; `null`: no expiry.
    ttl_ms: Option<i64>,
    stored_bytes: u64,
    #[serde(flatten)]
    inspection: Inspection,
}

pub async fn run(
    server: &mut Server,
    options: &Options<'_>,
    key: &str,
    max_bytes: u64,
) -> Result<ExitCode, CliError> {
    // The size first, so that a huge value is described from its first
    // bytes instead of read whole.
    let mut probe = redis::pipe();
    probe.cmd("TYPE").arg(key).cmd("PTTL").arg(key);
    let (kind, pttl): (String, i64) = server.query_pipeline(&probe, "TYPE/PTTL").await?;
    match kind.as_str() {
        "string" => {}
        "none" => return Err(CliError::NoSuchKey(key.to_owned())),
        _ => {
            return Err(CliError::NotAString {
                key: key.to_owned(),
                kind,
            })
        }
    }
    let mut measure = redis::pipe();
    measure
        .cmd("STRLEN")
        .arg(key)
        .cmd("GETRANGE")
        .arg(key)
        .arg(0)
        .arg(HEAD_BYTES - 1);
    let (stored_bytes, head): (u64, Vec<u8>) =
        server.query_pipeline(&measure, "STRLEN/GETRANGE").await?;
    let inspection = if stored_bytes > max_bytes {
        inspect_head(&head, stored_bytes, max_bytes)
    } else {
        let entry: Option<Vec<u8>> = server.query(redis::cmd("GET").arg(key), "GET").await?;
        let Some(entry) = entry else {
            return Err(CliError::NoSuchKey(key.to_owned()));
        };
        // Reads every format compiled into this tool; inflating is bounded
        // by --max-bytes too, so a poisoned entry cannot exhaust memory.
        let codec = Codec::builder()
            .max_value_size(usize::try_from(max_bytes).unwrap_or(usize::MAX))
            .build();
        inspect(&codec, entry)
    };
    let shown = Shown {
        key: key.to_owned(),
        ttl_ms: (pttl >= 0).then_some(pttl),
        stored_bytes,
        inspection,
    };
    if options.json {
        print_json(&shown)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("key       {}", shown.key);
    outln!("ttl       {}", size::ttl(pttl));
    let i = &shown.inspection;
    match &i.format {
        Some(f) => outln!(
            "format    v{}, serializer {} (id {}), compressor {} (id {})",
            f.version,
            f.serializer,
            f.serializer_id,
            f.compressor,
            f.compressor_id
        ),
        None if i.kind == "lease" => outln!("format    lease: no value yet"),
        None => outln!("format    not a cache-memoize entry"),
    }
    if let Some(f) = &i.format {
        if let (Some(token), Some(ms)) = (&f.version_token, f.compute_ms) {
            let expiry = f
                .expires_at_unix_ms
                .map_or_else(|| "none".to_owned(), |at| format!("{at} (Unix ms)"));
            outln!("meta      version token {token}, computed in {ms} ms, logical expiry {expiry}");
        }
    }
    match i.payload_bytes {
        Some(payload) => outln!(
            "size      {} stored, {} serialized",
            size::bytes(shown.stored_bytes),
            size::bytes(payload as u64)
        ),
        None => outln!("size      {} stored", size::bytes(shown.stored_bytes)),
    }
    if let Some(problem) = &i.problem {
        outln!("problem   {problem}");
    }
    if let Some(head) = &i.head {
        outln!("starts    {head}");
    }
    if let Some(value) = &i.value {
        outln!("value");
        output::line(serde_json::to_string_pretty(value)?)?;
    }
    Ok(ExitCode::SUCCESS)
}
