//! `cache-memoize`: look inside the Redis that `cache-memoize` caches write to.
//!
//! ```text
//! cache-memoize stats                     entries and bytes per memoized function
//! cache-memoize keys [FUNCTION]           keys with ttl and stored size
//! cache-memoize show KEY                  one entry's header and its value as JSON
//! cache-memoize invalidate FUNCTION      delete one function's cache entries
//! cache-memoize invalidate --key KEY     delete exactly one key
//! ```
//!
//! Redis comes from `--url` or `REDIS_URL`; a Cluster is detected by itself.
//! Every command prints a table for people, or JSON with `--json`.

#[macro_use]
mod output;

mod any_value;
mod cache_selector;
mod cli;
mod commands;
mod entry;
mod error;
mod function_spec;
mod server;
mod size;
mod table;
mod walk;

/// The test support that starts real redis-servers, for unit tests that
/// need one.
#[cfg(test)]
#[path = "../../tests/support/mod.rs"]
mod support;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::invalidate::Target;
use crate::error::CliError;
use crate::server::Server;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    if let (Command::Invalidate { tag: Some(_), .. }, None) = (&cli.command, &cli.prefix) {
        // Checked before connecting: a tag lives in one cache's namespace.
        return Err(CliError::TagNeedsPrefix);
    }
    let mut server = Server::connect(&cli.url, cli.timeout).await?;
    let options = commands::Options {
        caches: cli.prefix.as_ref(),
        json: cli.json,
    };
    match &cli.command {
        Command::Stats => commands::stats::run(&mut server, &options).await,
        Command::Keys { function, limit } => {
            commands::keys::run(&mut server, &options, function.as_deref(), *limit).await
        }
        Command::Show { key, max_bytes } => {
            commands::show::run(&mut server, &options, key, *max_bytes).await
        }
        Command::Invalidate { function, key, tag } => {
            let target = match (tag, key, function) {
                (Some(tag), _, _) => Target::Tag(tag),
                (None, Some(key), _) => Target::Key(key),
                (None, None, function) => Target::Function(function.as_deref().unwrap_or_default()),
            };
            commands::invalidate::run(&mut server, &options, target).await
        }
    }
}
