//! Where large values are compressed and inflated: a pool of idle-priority
//! threads, one per core.
//!
//! Compressing a 300 KB value takes milliseconds of CPU. On an async worker
//! that stalls every small hit queued behind it; on tokio's blocking pool
//! (normal priority) it competes with the workers and redis-server for the
//! cores, which showed up as small-hit p99 going from 0.15 ms to 1-2 ms
//! while large values were written. Two rules keep it out of the way:
//!
//! - **Idle priority.** On Linux the threads run under `SCHED_IDLE`, which
//!   any normal thread preempts the moment it wakes (with nice 19 the
//!   scheduler may first let the running slice finish); elsewhere, at the
//!   lowest priority the OS grants.
//! - **Never every core for single writes.** A compression for one stored
//!   value ([`compress`]) runs only while fewer than `cores - 1` others do.
//!   A core busy with idle-priority work never goes idle, and an idle core
//!   is what pulls a runnable worker off a crowded one at once; with every
//!   core compressing, a worker preempted on a busy core waited a full
//!   scheduler tick (4 ms) or more, which is what the p99 of small hits
//!   measured while two tasks kept writing 300 KB values. Inflating for a
//!   read and encoding a bundle ([`run`]) may use every core: a read is the
//!   request path itself, and a bundle is a burst the caller asked for.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

use crate::error::CodecError;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores())
            .thread_name(|i| format!("cache-memoize-codec-{i}"))
            .start_handler(|_| lower_priority())
            .build()
            .expect("cannot start the cache-memoize codec threads: the OS refused a thread")
    })
}

/// Compressions of single values running at once: all cores but one (at
/// least one).
fn single_writes() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(cores().saturating_sub(1).max(1)))
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

/// Runs the compression of one value to be stored on the codec pool, once
/// fewer than `cores - 1` such compressions are running (see the module
/// docs); waits in line otherwise.
pub(crate) async fn compress<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CodecError> + Send + 'static,
    what: &'static str,
) -> Result<T, CodecError> {
    // The semaphore is never closed.
    let slot = single_writes().acquire().await;
    let outcome = run(work, what).await;
    drop(slot);
    outcome
}

/// Best effort: where the OS refuses, the thread runs at the normal priority.
fn lower_priority() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use thread_priority::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadPriority, ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle).is_ok() {
            return;
        }
    }
    let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn single_writes_never_take_every_core() {
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs: Vec<_> = (0..2 * cores())
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                compress(
                    move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    },
                    "the job panicked",
                )
            })
            .collect();
        futures::executor::block_on(futures::future::try_join_all(jobs)).unwrap();
        let most = most.load(Ordering::SeqCst);
        assert!(
            most >= 1 && most <= cores().saturating_sub(1).max(1),
            "{most} at once"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn codec_threads_run_at_idle_priority() {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
        let policy = futures::executor::block_on(run(
            || Ok(thread_priority::thread_schedule_policy().unwrap()),
            "reading the policy panicked",
        ))
        .unwrap();
        assert_eq!(
            policy,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
        );
    }

    #[test]
    fn a_panicking_job_is_an_error_not_a_hang() {
        let outcome: Result<(), _> =
            futures::executor::block_on(compress(|| panic!("boom"), "the job panicked"));
        assert!(matches!(
            outcome,
            Err(CodecError::BadHeader("the job panicked"))
        ));
    }
}
