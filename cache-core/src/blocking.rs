//! Running cache I/O from plain (non-async) code.
//!
//! A memoized plain `fn` may be called from a thread with no tokio runtime,
//! from `spawn_blocking`, or (unwisely, but it must not panic) from inside an
//! async task. `Handle::block_on` and `Runtime::block_on` panic in the last
//! case ("Cannot start a runtime from within a runtime"), so the I/O is
//! spawned onto this crate's own small runtime and the calling thread waits
//! for the result with a runtime-agnostic executor (`park_on`).
//!
//! That wait nests: the body of a memoized plain `fn` runs on the waiting
//! thread, inside the wait, and may itself call a memoized plain `fn`,
//! `foo_invalidate` or [`Cache::block_on`](crate::Cache::block_on).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use crate::thread_flag::{self, Scoped};

fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cache-memoize-io")
            .on_thread_start(|| ON_IO_RUNTIME.with(|on| on.set(true)))
            .enable_all()
            .build()
            .expect("cannot start the cache-memoize I/O runtime: the OS refused a thread")
    })
}

thread_local! {
    /// Whether this thread belongs to the I/O runtime.
    static ON_IO_RUNTIME: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is one of the I/O runtime's (its requests use
/// connections driven there, see `backend::shared_connection`).
pub(crate) fn on_io_runtime() -> bool {
    ON_IO_RUNTIME.with(|on| on.get())
}

/// Runs `future` on the cache's I/O runtime and blocks this thread until it
/// finishes. Safe in every context, including inside another runtime.
pub fn block_on_io<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    park_on(spawn_io(future))
}

thread_local! {
    /// Whether this thread is blocked in [`wait_here`].
    static WAITING_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Waits for a runtime-agnostic future on the calling thread.
pub(crate) fn wait_here<F: Future>(future: F) -> F::Output {
    let _waiting = Scoped::set(&WAITING_HERE, true);
    park_on(future)
}

/// Polls `future` on the calling thread, parking the thread while it is
/// pending, until it is ready.
///
/// Not `futures::executor::block_on`: that one refuses to run inside
/// another of its kind ("cannot execute `LocalPool` executor from within
/// another executor"), and a plain memoized `fn` called from the body of
/// another one is exactly that. Nesting is sound here because each wait
/// has its own `notified` flag: a wake for the outer future that arrives
/// while the inner one parks the thread only unparks it for a moment (the
/// inner wait sees its own flag unset and parks again), and the outer wait
/// finds its flag set when it gets the thread back, so no wake is lost.
fn park_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let signal = Arc::new(ThreadSignal {
        thread: std::thread::current(),
        notified: AtomicBool::new(false),
    });
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        while !signal.notified.swap(false, Ordering::Acquire) {
            std::thread::park();
        }
    }
}

/// Wakes one [`park_on`] wait: sets its flag, then unparks its thread.
struct ThreadSignal {
    thread: std::thread::Thread,
    notified: AtomicBool,
}

impl Wake for ThreadSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notified.store(true, Ordering::Release);
        self.thread.unpark();
    }
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::mpsc::RecvTimeoutError;
    use std::task::Poll;
    use std::time::Duration;

    use super::park_on;

    /// A wake for the outer wait that arrives while a nested wait has
    /// parked the thread is not lost: the outer future is polled again.
    #[test]
    fn nested_waits_lose_no_wake() {
        let (finished, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (send, mut received) = futures::channel::oneshot::channel::<u8>();
            let mut send = Some(send);
            let mut nested_ran = false;
            let outer = std::future::poll_fn(|cx| {
                // Registers the outer waker with the channel.
                if let Poll::Ready(value) = Pin::new(&mut received).poll(cx) {
                    return Poll::Ready(value.unwrap());
                }
                if !nested_ran {
                    nested_ran = true;
                    // The channel fires while the nested wait parks the thread.
                    let send = send.take().unwrap();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(10));
                        let _ = send.send(7);
                    });
                    let (inner_send, inner) = futures::channel::oneshot::channel::<u8>();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(50));
                        let _ = inner_send.send(1);
                    });
                    assert_eq!(park_on(inner).unwrap(), 1);
                }
                Poll::Pending
            });
            let _ = finished.send(park_on(outer));
        });
        match done.recv_timeout(Duration::from_secs(10)) {
            Ok(value) => assert_eq!(value, 7),
            Err(RecvTimeoutError::Timeout) => panic!("the outer wait never woke up"),
            Err(RecvTimeoutError::Disconnected) => panic!("the waiting thread panicked"),
        }
    }
}
