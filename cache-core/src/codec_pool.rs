//! Where large values are compressed and inflated: a small pool of
//! low-priority threads (nice 19 on Linux).
//!
//! Compressing a 300 KB value takes milliseconds of CPU. On an async worker
//! that stalls every small hit queued behind it; on tokio's blocking pool
//! (normal priority) it still competes with the workers and redis-server for
//! the cores, and the OS scheduler lets it, which showed up as small-hit p99
//! going from 0.15 ms to 1-2 ms while large values were written. At the
//! lowest priority the pool uses every idle core (a bundle of values still
//! compresses in parallel), and yields the moment a worker needs the CPU.

use std::sync::OnceLock;

use crate::error::CodecError;

fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .thread_name(|i| format!("cache-memoize-codec-{i}"))
            .start_handler(|_| {
                // Best effort: where the OS refuses, the thread runs at the
                // normal priority.
                let _ = thread_priority::set_current_thread_priority(
                    thread_priority::ThreadPriority::Min,
                );
            })
            .build()
            .expect("cannot start the cache-memoize codec threads: the OS refused a thread")
    })
}

/// Starts `work` on the codec pool now (not when first polled, so several
/// jobs started in a row run in parallel); the returned future, awaitable
/// from any executor, yields its result.
pub(crate) fn run<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CodecError> + Send + 'static,
    what: &'static str,
) -> impl std::future::Future<Output = Result<T, CodecError>> {
    let (done, result) = futures::channel::oneshot::channel();
    pool().spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = done.send(outcome.unwrap_or(Err(CodecError::BadHeader(what))));
    });
    async move { result.await.unwrap_or(Err(CodecError::BadHeader(what))) }
}
