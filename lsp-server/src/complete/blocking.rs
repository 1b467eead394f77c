//! The pool that CPU-heavy and disk work of a request runs on: reparsing a document, the
//! cursor window's token counting, the context sources (a scan of every similarity window of
//! up to 20,000 files, files read from disk, definitions looked up for dozens of identifiers)
//! and the prompt template. None of it may run on the async runtime's two threads, which also
//! read stdin and apply edits: an edit waiting behind a prompt would reach the document late.
//!
//! A few dedicated threads, one per core but one, at a lower scheduling priority (nice 10 on Linux):
//! on a busy machine the threads that apply edits always win the core. (tokio's own blocking
//! threads also read stdin, so they cannot be reniced; an unprivileged thread cannot raise its
//! priority back.) Work is cancellable: a request that is superseded or cancelled stops
//! waiting at once, its queued work is skipped, and running work checks the same token
//! between files and identifiers (`context::Workspace::cancel`) and ends early.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

type Job = Box<dyn FnOnce() + Send>;

/// Scheduling priority of the pool's threads (a nice value: higher yields more).
const POOL_NICE: i32 = 10;

pub struct BlockingPool {
    jobs: mpsc::Sender<Job>,
}

impl Default for BlockingPool {
    fn default() -> Self {
        // One core is left to the async threads (and a backend on the same machine): an edit
        // never waits for a core while prompts are being built.
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)))
    }
}

impl BlockingPool {
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..size {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ghostline-work-{index}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        let Ok(job) = job else {
                            return; // the pool was dropped
                        };
                        if let Err(panic) = catch_unwind(AssertUnwindSafe(job)) {
                            let what = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_default();
                            tracing::error!("work on the pool panicked: {what}");
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!("cannot start a worker thread: {error}");
            }
        }
        Self { jobs }
    }

    /// Runs `work` on a pool thread. `None` when `cancel` fired first (queued work is then
    /// skipped; running work ends at its next check and its result is dropped) or when the
    /// work panicked (logged; the request answers empty, the server lives on).
    pub async fn run<T: Send + 'static>(
        &self,
        cancel: &CancellationToken,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        if cancel.is_cancelled() {
            return None;
        }
        let (answer, answered) = tokio::sync::oneshot::channel();
        let skip = cancel.clone();
        let job: Job = Box::new(move || {
            if skip.is_cancelled() {
                return;
            }
            let _ = answer.send(work());
        });
        if self.jobs.send(job).is_err() {
            tracing::error!("the work pool is gone");
            return None;
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            answer = answered => answer.ok(),
        }
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: plain system calls on this thread's own id; a failure only leaves the priority
    // as it was.
    let result = unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, POOL_NICE)
    };
    if result != 0 {
        tracing::debug!("could not lower the work pool's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {
    let _ = POOL_NICE;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_skips_cancelled_work_and_survives_a_panic() {
        let pool = BlockingPool::new(1);
        let cancel = CancellationToken::new();
        assert_eq!(pool.run(&cancel, || 2 + 2).await, Some(4));
        assert_eq!(
            pool.run(&cancel, || -> u32 { panic!("a bug in one request") })
                .await,
            None
        );
        // The thread lives on after the panic.
        assert_eq!(pool.run(&cancel, || 5).await, Some(5));

        // Work queued behind a busy thread is skipped once cancelled. The test holds the one
        // thread until it says so, and knows when the thread has taken the blocking job.
        let pool = Arc::new(pool);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = tokio::sync::oneshot::channel::<()>();
        let busy = CancellationToken::new();
        let blocker = tokio::spawn({
            let (pool, busy) = (pool.clone(), busy.clone());
            async move {
                pool.run(&busy, move || {
                    let _ = started.send(());
                    wait.recv().ok()
                })
                .await
            }
        });
        has_started.await.expect("the thread took the blocking job");
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let queued = CancellationToken::new();
        let mut skipped = Box::pin(pool.run(&queued, {
            let ran = ran.clone();
            move || ran.store(true, std::sync::atomic::Ordering::SeqCst)
        }));
        // Polled once, the job is on the queue, behind the busy thread.
        tokio::select! {
            biased;
            _ = &mut skipped => panic!("answered while the only thread was busy"),
            () = std::future::ready(()) => {}
        }
        queued.cancel();
        assert_eq!(skipped.await, None, "a cancelled request stops waiting");
        release.send(()).unwrap();
        assert_eq!(blocker.await.unwrap(), Some(Some(())));
        // One thread, first in first out: this ran after the skipped job was taken.
        assert_eq!(pool.run(&busy, || 1).await, Some(1));
        assert!(
            !ran.load(std::sync::atomic::Ordering::SeqCst),
            "queued work was skipped"
        );
    }
}
