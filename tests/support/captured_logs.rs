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

/// The logs of the whole test binary: a global subscriber (installed on the
/// first call, at `max_level`, with span close events) writing here. Global
/// rather than `set_default`: tracing caches a callsite's interest across
/// threads, so a thread-local subscriber can miss events while other tests
/// run without one.
pub fn global_logs(max_level: tracing::Level) -> &'static CapturedLogs {
    static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(max_level)
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(logs.writer())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
        logs
    })
}
