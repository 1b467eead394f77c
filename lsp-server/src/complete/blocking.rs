//! The bounded pool that CPU-heavy and disk work of a request runs on: reparsing a document,
//! the cursor window's token counting, the context sources (a scan of every similarity window
//! of up to 20,000 files, files read from disk, definitions looked up for dozens of
//! identifiers) and the prompt template. None of it may run on the async runtime's two
//! threads, which also read stdin and apply edits: an edit waiting behind a prompt would
//! reach the document late.
//!
//! tokio's blocking threads, behind a semaphore with one permit per core but one, so a core
//! stays free for the async threads. Work is cancellable: a request that is superseded or
//! cancelled stops waiting for a permit at once and stops waiting for its work; the work
//! itself checks the same token between files and identifiers (`context::Workspace::cancel`)
//! and ends early, giving its permit back.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub struct BlockingPool {
    permits: Arc<Semaphore>,
    size: usize,
}

impl Default for BlockingPool {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::new(cores.saturating_sub(1).max(1))
    }
}

impl BlockingPool {
    pub fn new(size: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `work` on a blocking thread once a permit is free. `None` when `cancel` fired
    /// first (the work, if it started, finishes in the background and its result is dropped)
    /// or when the work panicked (logged; the request answers empty, the server lives on).
    pub async fn run<T: Send + 'static>(
        &self,
        cancel: &CancellationToken,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let permit = tokio::select! {
            biased;
            () = cancel.cancelled() => return None,
            permit = self.permits.clone().acquire_owned() => permit.ok()?,
        };
        if cancel.is_cancelled() {
            return None;
        }
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        });
        tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            joined = task => match joined {
                Ok(value) => Some(value),
                Err(error) => {
                    tracing::error!("work on the blocking pool failed: {error}");
                    None
                }
            },
        }
    }
}
