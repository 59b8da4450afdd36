//! Everything a `tracing` subscriber writes, kept for assertions. Std-only;
//! include it with `#[path = "support/captured_logs.rs"] mod captured_logs;`.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A `MakeWriter` for `tracing_subscriber::fmt().with_writer(…)` (through
/// [`CapturedLogs::writer`]) whose output [`CapturedLogs::text`] returns.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// A writer factory for the subscriber.
    pub fn writer(&self) -> impl Fn() -> CapturedLogs + Send + Sync + 'static {
        let logs = self.clone();
        move || logs.clone()
    }

    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
