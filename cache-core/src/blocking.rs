//! Running cache I/O from plain (non-async) code.
//!
//! A memoized plain `fn` may be called from a thread with no tokio runtime,
//! from `spawn_blocking`, or (unwisely, but it must not panic) from inside an
//! async task. `Handle::block_on` and `Runtime::block_on` panic in the last
//! case ("Cannot start a runtime from within a runtime"), so the I/O is
//! spawned onto this crate's own small runtime and the calling thread waits
//! for the result with a runtime-agnostic executor.

use std::future::Future;
use std::sync::OnceLock;

use crate::thread_flag::{self, Scoped};

fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cache-memoize-io")
            .enable_all()
            .build()
            .expect("cannot start the cache-memoize I/O runtime: the OS refused a thread")
    })
}

/// Runs `future` on the cache's I/O runtime and blocks this thread until it
/// finishes. Safe in every context, including inside another runtime.
pub fn block_on_io<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    futures::executor::block_on(spawn_io(future))
}

thread_local! {
    /// Whether this thread is blocked in [`wait_here`].
    static WAITING_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Waits for a runtime-agnostic future on the calling thread.
pub(crate) fn wait_here<F: Future>(future: F) -> F::Output {
    let _waiting = Scoped::set(&WAITING_HERE, true);
    futures::executor::block_on(future)
}

/// Whether the calling thread is blocked in [`wait_here`], driving a cache
/// call for plain code. Such a call must not wait on anything that a tokio
/// task has to hand back: the task may need this very thread to run.
pub(crate) fn waiting_here() -> bool {
    thread_flag::is_set(&WAITING_HERE)
}

/// Spawns `future` on the I/O runtime; the returned future can be awaited
/// from any executor.
pub(crate) async fn spawn_io<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> T {
    match io_runtime().spawn(future).await {
        Ok(output) => output,
        Err(join_error) => match join_error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("cache-memoize I/O task was cancelled: {e}"),
        },
    }
}

/// Runs `future` on the I/O runtime without waiting for it: clean-up that
/// must happen even when its caller was cancelled (a drop guard), or a
/// keeper that runs until aborted.
pub(crate) fn spawn_detached(
    future: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::AbortHandle {
    io_runtime().spawn(future).abort_handle()
}
