//! Where large values (128 KiB serialized, 32 KiB stored) of async callers
//! are compressed and inflated: a pool of idle-priority threads, one per
//! core. Plain-function callers compress on their own thread.
//!
//! Compressing a 300 KB value takes milliseconds of CPU. On an async worker
//! that stalls every small hit queued behind it; on tokio's blocking pool
//! (normal priority) it competes with the workers and redis-server for the
//! cores, which showed up as small-hit p99 going from 0.15 ms to 1-2 ms
//! while large values were written. Three rules keep it out of the way:
//!
//! - **Idle priority.** On Linux the threads run under `SCHED_IDLE`, which
//!   a normal thread preempts the moment it wakes (under nice 19 the
//!   scheduler may first let the running slice finish); elsewhere, at the
//!   lowest priority the OS grants.
//! - **Never every core for single writes.** At most `max(1, cores - 1)`
//!   compressions of single stored values ([`compress`]) run at once in a
//!   process. A core busy with idle-priority work never goes idle, and an
//!   idle core is what pulls a runnable worker off a crowded one at once;
//!   with every core compressing, a worker preempted on a busy core waited
//!   a scheduler tick (4 ms at HZ=250) or more, which is what the p99 of
//!   small hits measured while two tasks kept writing 300 KB values (see
//!   `benches/large_values.rs`). Encoding a bundle ([`run`], from
//!   `encode_all`) may use every core: it is a burst the caller asked for.
//! - **Give the core back often.** Even one busy core keeps a waiting
//!   worker waiting when the idle-balancing has to come from that core, so
//!   single-value compressions pause for a moment after every 64 KiB of
//!   input ([`Paced`](crate::codec::Paced), [`pause_point`]). That took the
//!   p99.9 of small hits under writes from 3-4 ms to 0.3-1.9 ms. The slow
//!   compressors pace themselves (zlib, gzip, xz, brotli; brotli only every
//!   256 KiB at quality 9 and up); lz4, snappy and zstd compress in one
//!   call and are not paced.
//!
//! Inflating a large entry for a read also runs here ([`run`]), at the same
//! idle priority: off the async workers, but slowed like the writes when the
//! cores are saturated. Measured (`benches/large_values.rs`, part 3): beside
//! 16 tasks of small hits, a 300 KB hit took ~3 ms instead of ~0.8 ms, and
//! the small hits' p99 rose 1.1-1.4x; inflating at normal priority
//! (`spawn_blocking`) kept the 300 KB hit at ~0.7 ms but raised the small
//! hits' p99 3.6-4.5x.
//!
//! The price is paid by large values: while other work keeps every core
//! busy, their compression waits for spare CPU (in the bench, two tasks'
//! 300 KB `set`s took 33-80 ms each instead of 16-21 ms), and so does a
//! memoized miss that stores one.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::CodecError;
use crate::thread_flag::{self, Scoped};

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
        // A job another job's thread runs while it waits (rayon work
        // stealing) is not paced unless it is a single value's compression.
        let _unpaced = Scoped::set(&PACED, false);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = done.send(outcome.unwrap_or(Err(CodecError::Panicked(what))));
    });
    // The job is gone without an answer only if it panicked.
    async move { result.await.unwrap_or(Err(CodecError::Panicked(what))) }
}

/// Runs the compression of one value to be stored on the codec pool, once
/// fewer than `max(1, cores - 1)` such compressions are running in this
/// process (see the module docs); waits in line otherwise. Only for async
/// callers: a thread blocked on a cache call must compress on its own (the
/// task holding the next slot may need that very thread to run).
pub(crate) async fn compress<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CodecError> + Send + 'static,
    what: &'static str,
) -> Result<T, CodecError> {
    compress_with(single_writes(), work, what).await
}

async fn compress_with<T: Send + 'static>(
    slots: &'static Semaphore,
    work: impl FnOnce() -> Result<T, CodecError> + Send + 'static,
    what: &'static str,
) -> Result<T, CodecError> {
    let slot = slots
        .acquire()
        .await
        .expect("the codec pool's semaphore is never closed");
    // The slot goes with the job, so it is free when the compression ends,
    // even if the caller stopped waiting for it.
    run(
        move || {
            let _slot = slot;
            let _paced = Scoped::set(&PACED, true);
            work()
        },
        what,
    )
    .await
}

thread_local! {
    /// Whether this thread runs a single value's compression now.
    static PACED: Cell<bool> = const { Cell::new(false) };
}

/// Called by [`Paced`](crate::codec::Paced) between pieces of input: in a
/// single value's compression, leaves the core for a moment so that an
/// idle-balancing core can take over a waiting request thread (see the
/// module docs); anywhere else, nothing.
pub(crate) fn pause_point() {
    if thread_flag::is_set(&PACED) {
        std::thread::sleep(PAUSE);
    }
}

/// How long a paced compression leaves the core (the OS adds its timer
/// slack, ~50 µs on Linux): about 5% of the time of a 64 KiB zlib piece.
const PAUSE: Duration = Duration::from_micros(20);

/// Best effort: where the OS refuses, the thread runs at the normal priority.
fn lower_priority() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use thread_priority::{
            set_thread_priority_and_policy, thread_native_id, thread_schedule_policy,
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        // The policy is what matters; this call also resets the nice value
        // afterwards, which a process started at a higher nice may not do,
        // so its result alone does not say whether the policy took.
        let _ = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle);
        if thread_schedule_policy().is_ok_and(|policy| policy == idle) {
            return;
        }
    }
    let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use futures::FutureExt;

    use super::*;

    #[test]
    fn a_panic_in_the_codec_is_reported_as_a_panic() {
        let outcome = futures::executor::block_on(run(
            || -> Result<(), CodecError> { panic!("a buggy compressor") },
            "compressing the value panicked",
        ));
        let message = outcome.unwrap_err().to_string();
        assert!(
            message.contains("compressing the value panicked")
                && !message.contains("not a cache entry"),
            "{message}"
        );
    }

    #[test]
    fn single_writes_never_take_every_core() {
        let slots: &'static Semaphore = Box::leak(Box::new(Semaphore::new(1)));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs: Vec<_> = (0..4)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                compress_with(
                    slots,
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
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(slots.available_permits(), 1);
    }

    #[test]
    fn a_dropped_caller_keeps_the_slot_until_its_compression_ends() {
        let slots: &'static Semaphore = Box::leak(Box::new(Semaphore::new(1)));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let mut job = Box::pin(compress_with(
            slots,
            move || {
                released.recv_timeout(Duration::from_secs(10)).ok();
                Ok(())
            },
            "the job panicked",
        ));
        // First poll: takes the slot and starts the job; then the caller
        // gives up (a timeout, a client that went away).
        assert!((&mut job).now_or_never().is_none());
        drop(job);
        assert_eq!(slots.available_permits(), 0, "the job still runs");
        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while slots.available_permits() == 0 {
            assert!(Instant::now() < deadline, "the slot never came back");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn only_single_value_compressions_are_paced() {
        let slots: &'static Semaphore = Box::leak(Box::new(Semaphore::new(1)));
        let paced = || Ok(thread_flag::is_set(&PACED));
        for _ in 0..4 {
            let single = futures::executor::block_on(compress_with(slots, paced, "panicked"));
            let bundle = futures::executor::block_on(run(paced, "panicked"));
            assert_eq!((single.unwrap(), bundle.unwrap()), (true, false));
        }
        assert!(!thread_flag::is_set(&PACED), "not on the caller's thread");
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
}
