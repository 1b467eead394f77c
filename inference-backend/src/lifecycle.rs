//! The server's phases, shared by the HTTP handlers, the engine thread and `main`: running,
//! draining (SIGTERM: `/ready` says 503, no new connections, running streams may finish),
//! ending (the grace period is over, or the engine is gone: every open stream ends now with an
//! error event and `[DONE]`).

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{watch, Notify};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    Draining,
    Ending,
}

pub struct Lifecycle {
    phase: watch::Sender<Phase>,
    engine_down: AtomicBool,
    engine_gone: Notify,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            phase: watch::Sender::new(Phase::Running),
            engine_down: AtomicBool::new(false),
            engine_gone: Notify::new(),
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
