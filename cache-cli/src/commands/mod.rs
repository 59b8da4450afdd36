//! The subcommands, one file each, and the options they share.

pub mod invalidate;
pub mod keys;
pub mod show;
pub mod stats;

use crate::cache_selector::CacheSelector;
use crate::error::CliError;
use crate::output;

/// Options every command takes.
pub struct Options<'a> {
    /// Only the caches `--prefix` selects.
    pub caches: Option<&'a CacheSelector>,
    /// JSON instead of tables.
    pub json: bool,
}

impl Options<'_> {
    /// The glob of every key of the selected caches.
    pub fn cache_glob(&self) -> String {
        self.caches
            .map_or_else(|| "*".to_owned(), CacheSelector::glob)
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    output::line(serde_json::to_string_pretty(value)?)?;
    Ok(())
}
