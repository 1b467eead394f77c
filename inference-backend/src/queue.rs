//! Bounded hand-off from the HTTP tasks to the engine thread. A full queue is refused at once
//! (503 + Retry-After) rather than letting latency grow without bound.

use std::{
    sync::{
        atomic::Ordering,
        mpsc::{self, Receiver, SyncSender, TrySendError},
        Arc,
    },
    time::Instant,
};

use tokio::sync::mpsc::UnboundedSender;

use crate::{metrics::Metrics, validation::GenerationRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    Timeout,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Timeout => "timeout",
        }
    }
}

/// What the engine sends back for one request, in order: text pieces, then one end event.
#[derive(Debug)]
pub enum GenerationEvent {
    Text(String),
    Finished { reason: FinishReason, prompt_tokens: usize, completion_tokens: usize },
    Failed(String),
}

pub struct Job {
    pub request: GenerationRequest,
    pub events: UnboundedSender<GenerationEvent>,
    pub arrived: Instant,
    pub deadline: Instant,
}

#[derive(Clone)]
pub struct JobQueue {
    sender: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

pub struct QueueFull;

impl JobQueue {
    pub fn new(capacity: usize, metrics: Arc<Metrics>) -> (Self, Receiver<Job>) {
        let (sender, receiver) = mpsc::sync_channel(capacity);
        (Self { sender, metrics }, receiver)
    }

    pub fn submit(&self, job: Job) -> Result<(), QueueFull> {
        self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        match self.sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                Err(QueueFull)
            }
        }
    }
}
