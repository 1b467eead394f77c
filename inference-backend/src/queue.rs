//! Bounded hand-off from the HTTP tasks to the engine thread. A full queue is refused at once
//! (503 + Retry-After) rather than letting latency grow without bound.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
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

/// What the engine has done for a request so far, written as it goes: what a client that left
/// early is charged (tokens-per-minute) and what its audit line says, since it never reads
/// the `Finished` event.
#[derive(Debug, Default)]
pub struct Progress {
    prompt_tokens: AtomicUsize,
    cached_tokens: AtomicUsize,
    completion_tokens: AtomicUsize,
}

impl Progress {
    pub fn prompt_started(&self, prompt_tokens: usize, cached_tokens: usize) {
        self.prompt_tokens.store(prompt_tokens, Ordering::Relaxed);
        self.cached_tokens.store(cached_tokens, Ordering::Relaxed);
    }

    pub fn token_generated(&self) {
        self.completion_tokens.fetch_add(1, Ordering::Relaxed);
    }

    pub fn completion_tokens(&self) -> usize {
        self.completion_tokens.load(Ordering::Relaxed)
    }

    /// The counts so far (no timings).
    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            cached_tokens: self.cached_tokens.load(Ordering::Relaxed),
            completion_tokens: self.completion_tokens(),
            ..Usage::default()
        }
    }
}

pub struct Job {
    pub request: GenerationRequest,
    pub events: UnboundedSender<GenerationEvent>,
    pub arrived: Instant,
    pub deadline: Instant,
    pub progress: Arc<Progress>,
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
