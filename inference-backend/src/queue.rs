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

/// What one finished request cost and reused, for the response's `usage` and `timings`: a
/// client (ghostline-lsp) learns from it how fast this server prefills and decodes and how much
/// of its prompt the prefix cache already held, and sizes its next prompts by that.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens whose KV came from the prefix cache (not computed for this request).
    pub cached_tokens: usize,
    /// From arrival until the engine started on the prompt.
    pub queue_ms: f64,
    /// Time in forward passes over the uncached prompt tokens.
    pub prefill_ms: f64,
    /// From the end of the prompt to the last token.
    pub decode_ms: f64,
}

/// What the engine sends back for one request, in order: text pieces, then one end event.
#[derive(Debug)]
pub enum GenerationEvent {
    Text(String),
    Finished { reason: FinishReason, usage: Usage },
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
