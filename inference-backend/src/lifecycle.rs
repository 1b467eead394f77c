//! The server's phases, shared by the HTTP handlers, the engine thread and `main`: running,
//! draining (SIGTERM: connections are still taken, `/ready` says 503 and new completions get
//! 503 so a load balancer moves on, running streams may finish), ending (the grace period is
//! over, every completion in flight has ended, or the engine is gone: the listener closes and
//! every open stream ends now with an error event and `[DONE]`).
//!
//! Readiness also needs an engine thread that is making progress: it beats a [`Heartbeat`]
//! every round, every prefill chunk and decode step, and every 50 ms while idle; a heartbeat
//! older than the stall limit (`--engine-stall-limit`) turns `/ready` 503 while `/health`, the
//! process's liveness, stays 200.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tokio::sync::{watch, Notify};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    Draining,
    Ending,
}

pub struct Lifecycle {
    phase: watch::Sender<Phase>,
    /// `/ready` says 503 when the engine's heartbeat is older than this.
    stall_limit: Duration,
    engine_down: AtomicBool,
    engine_gone: Notify,
    /// Completions whose answer has not ended yet (a stream until its last chunk or its
    /// client leaving); draining ends early when it reaches 0.
    in_flight: AtomicUsize,
    idle: Notify,
}

impl Lifecycle {
    /// `stall_limit`: `--engine-stall-limit`.
    pub fn new(stall_limit: Duration) -> Self {
        Self {
            phase: watch::Sender::new(Phase::Running),
            stall_limit,
            engine_down: AtomicBool::new(false),
            engine_gone: Notify::new(),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }
}

/// One completion in flight, until dropped (when its answer's body has ended).
pub struct InFlight(Arc<Lifecycle>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Moves forward to `phase` (never back).
    pub fn enter(&self, phase: Phase) {
        self.phase.send_if_modified(|now| {
            let later = phase > *now;
            if later {
                *now = phase;
            }
            later
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    /// Whether the engine thread's last heartbeat is older than the stall limit: it is stuck
    /// (a forward pass that never returns, a lock never released) although it did not stop.
    pub fn engine_stalled(&self, heartbeat: &Heartbeat) -> bool {
        heartbeat.age() > self.stall_limit
    }

    /// Called by the engine thread when it stops, however it stops.
    pub fn engine_stopped(&self) {
        self.engine_down.store(true, Ordering::SeqCst);
        self.engine_gone.notify_one();
    }

    pub fn engine_down(&self) -> bool {
        self.engine_down.load(Ordering::SeqCst)
    }

    /// Resolves once the engine thread has stopped.
    pub async fn engine_gone(&self) {
        if !self.engine_down() {
            self.engine_gone.notified().await;
        }
    }

    pub fn begin_completion(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Resolves once no completion is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registered before the count is read, so a drop in between is not missed.
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Whether the server takes new requests.
    pub fn accepting(&self) -> bool {
        self.phase() == Phase::Running && !self.engine_down()
    }
}

/// Resolves when open streams must end now (never, if the sender is gone).
pub async fn ending(phase: &mut watch::Receiver<Phase>) {
    if phase.wait_for(|p| *p >= Phase::Ending).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// When the engine thread last showed that it makes progress, as milliseconds since the
/// heartbeat was made; one relaxed store per beat, so it can beat per decode step.
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    pub fn beat(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// Time since the last beat (since the heartbeat was made, before the first).
    pub fn age(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

#[cfg(test)]
mod tests {
    use super::{Heartbeat, Lifecycle};
    use std::time::Duration;

    #[test]
    fn a_heartbeat_older_than_the_limit_is_a_stall() {
        let heartbeat = Heartbeat::default();
        heartbeat.beat();
        assert!(!Lifecycle::new(Duration::from_secs(3600)).engine_stalled(&heartbeat));
        // Any age at all is over a zero limit once a millisecond has passed.
        std::thread::sleep(Duration::from_millis(5));
        assert!(Lifecycle::new(Duration::ZERO).engine_stalled(&heartbeat));
    }
}
