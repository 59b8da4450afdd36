//! Standard output that a closed pipe (`cache-memoize keys | head`) ends
//! quietly instead of with a panic.

use std::fmt::Display;
use std::io::{self, Write};

use crate::error::CliError;

/// Writes `text` and a newline to stdout.
pub fn line(text: impl Display) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{text}").map_err(|e| match e.kind() {
        io::ErrorKind::BrokenPipe => CliError::StdoutClosed,
        _ => CliError::Stdout(e),
    })
}

/// `println!` through [`line`], returning the error from the calling
/// function.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))?
    };
}
