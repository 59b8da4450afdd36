//! `show KEY`: one entry's header, sizes, ttl and value as JSON.

use std::process::ExitCode;

use cache_core::redis;
use cache_core::Codec;
use serde::Serialize;

use super::{print_json, Options};
use crate::entry::{inspect, Inspection};
use crate::error::CliError;
use crate::output;
use crate::server::Server;
use crate::size;

#[derive(Debug, Serialize)]
struct Shown {
    key: String,
    /// Remaining ttl in ms; `null`: no expiry.
    ttl_ms: Option<i64>,
    stored_bytes: usize,
    #[serde(flatten)]
    inspection: Inspection,
}

pub async fn run(
    server: &mut Server,
    options: &Options<'_>,
    key: &str,
) -> Result<ExitCode, CliError> {
    let mut get = redis::pipe();
    get.cmd("GET").arg(key).cmd("PTTL").arg(key);
    let (entry, pttl): (Option<Vec<u8>>, i64) = server.query_pipeline(&get, "GET").await?;
    let Some(entry) = entry else {
        return Err(CliError::NoSuchKey(key.to_owned()));
    };
    // Reads every format compiled into this tool; the size limit is the
    // library's default, so a poisoned entry cannot exhaust memory here.
    let codec = Codec::default();
    let shown = Shown {
        key: key.to_owned(),
        ttl_ms: (pttl >= 0).then_some(pttl),
        stored_bytes: entry.len(),
        inspection: inspect(&codec, entry),
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
            size::bytes(shown.stored_bytes as u64),
            size::bytes(payload as u64)
        ),
        None => outln!(
            "size      {} stored",
            size::bytes(shown.stored_bytes as u64)
        ),
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
