//! `cache-memoize`: look inside the Redis that `cache-memoize` caches write to.
//!
//! ```text
//! cache-memoize stats                     entries and bytes per memoized function
//! cache-memoize keys [FUNCTION]           keys with ttl and stored size
//! cache-memoize show KEY                  one entry's header and its value as JSON
//! cache-memoize invalidate FUNCTION|KEY   delete one function's entries, or one key
//! ```
//!
//! Redis comes from `--url` or `REDIS_URL`; a Cluster is detected by itself.
//! Every command prints a table for people, or JSON with `--json`.

#[macro_use]
mod output;

mod any_value;
mod cli;
mod commands;
mod entry;
mod error;
mod function_spec;
mod server;
mod size;
mod table;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command};
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
    if let Command::Invalidate { tag: Some(_), .. } = &cli.command {
        // Checked before connecting: no server can make it work.
        return Err(CliError::TagsUnsupported);
    }
    let timeout = Duration::from_secs_f64(cli.timeout.max(0.001));
    let mut server = Server::connect(&cli.url, timeout).await?;
    let options = commands::Options {
        prefix: cli.prefix.as_deref(),
        json: cli.json,
    };
    match &cli.command {
        Command::Stats => commands::stats::run(&mut server, &options).await,
        Command::Keys { function, limit } => {
            commands::keys::run(&mut server, &options, function.as_deref(), *limit).await
        }
        Command::Show { key } => commands::show::run(&mut server, &options, key).await,
        Command::Invalidate { target, .. } => {
            let target = target.as_deref().unwrap_or_default();
            commands::invalidate::run(&mut server, &options, target).await
        }
    }
}
