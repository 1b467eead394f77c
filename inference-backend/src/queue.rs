//! Bounded hand-off from the HTTP tasks to the engine thread. A full queue is refused at once
//! (503 + Retry-After) rather than letting latency grow without bound. Full means as many
//! requests as `--queue-size`, or as many tokens (each request's prompt + `max_tokens`) as
//! `--queue-tokens`: a request that finds the queue empty is always taken, so a request larger
//! than the token bound still runs, alone. The engine takes requests from the front in arrival
//! order, and only as many as it admits (`scheduler::select`): the ones it leaves stay here,
//! counted against these bounds, until they fit.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Condvar, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
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

impl Job {
    /// The tokens this request may hold in the KV state: its whole prompt and every token it may
    /// generate (validation fitted both into the context). What the token bounds count.
    pub fn cost(&self) -> usize {
        self.request.prompt_ids.len() + self.request.max_tokens
    }

    /// Whether its client left (a superseded keystroke): nobody reads what it would generate.
    pub fn is_gone(&self) -> bool {
        self.events.is_closed()
    }
}

/// How much may wait for the engine: requests, and tokens (see [`Job::cost`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBounds {
    pub requests: usize,
    pub tokens: usize,
}

/// The waiting requests, oldest first, and the sum of their costs.
#[derive(Default)]
struct Waiting {
    jobs: VecDeque<Job>,
    tokens: usize,
}

struct Shared {
    waiting: Mutex<Waiting>,
    /// Signalled when a request arrives, for an engine with nothing in flight.
    arrived: Condvar,
    bounds: QueueBounds,
}

impl Shared {
    /// The waiting requests; a panic while the lock was held (none takes it across user code)
    /// leaves the queue as it was, so the poison is ignored.
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The HTTP side of the queue (cloned into every request's task).
#[derive(Clone)]
pub struct JobQueue {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

pub struct QueueFull;

impl JobQueue {
    pub fn new(bounds: QueueBounds, metrics: Arc<Metrics>) -> (Self, JobReceiver) {
        let bounds = QueueBounds {
            requests: bounds.requests.max(1),
            tokens: bounds.tokens.max(1),
        };
        let shared = Arc::new(Shared {
            waiting: Mutex::default(),
            arrived: Condvar::new(),
            bounds,
        });
        (
            Self {
                shared: shared.clone(),
                metrics,
            },
            JobReceiver { shared },
        )
    }

    /// Queues `job`, or refuses it when the queue is full by either bound (the HTTP layer
    /// answers 503 + Retry-After).
    pub fn submit(&self, job: Job) -> Result<(), QueueFull> {
        let bounds = self.shared.bounds;
        let cost = job.cost();
        let mut waiting = self.shared.lock();
        let full = waiting.jobs.len() >= bounds.requests
            || (!waiting.jobs.is_empty() && waiting.tokens + cost > bounds.tokens);
        if full {
            return Err(QueueFull);
        }
        self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        waiting.tokens += cost;
        waiting.jobs.push_back(job);
        drop(waiting);
        self.shared.arrived.notify_one();
        Ok(())
    }
}

/// The engine's side of the queue.
pub struct JobReceiver {
    shared: Arc<Shared>,
}

impl JobReceiver {
    /// Lets `take` remove what the engine admits (or retires) from the waiting requests, oldest
    /// first; what it leaves keeps its place and keeps counting against the bounds.
    pub fn take<R>(&self, take: impl FnOnce(&mut VecDeque<Job>) -> R) -> R {
        let mut waiting = self.shared.lock();
        let taken = take(&mut waiting.jobs);
        waiting.tokens = waiting.jobs.iter().map(Job::cost).sum();
        taken
    }

    /// Waits up to `timeout` for a request to be waiting; false when none came (or the HTTP
    /// side is gone and none ever will).
    pub fn wait(&self, timeout: Duration) -> bool {
        let waiting = self.shared.lock();
        let (waiting, _) = self
            .shared
            .arrived
            .wait_timeout_while(waiting, timeout, |w| w.jobs.is_empty())
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        !waiting.jobs.is_empty()
    }

    /// Whether every `JobQueue` was dropped: no request can arrive any more.
    pub fn is_closed(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sampling::SamplingParams;

    /// A job of `prompt` prompt tokens and `max_tokens`, and the receiver that keeps its client
    /// there.
    fn job(
        prompt: usize,
        max_tokens: usize,
    ) -> (Job, tokio::sync::mpsc::UnboundedReceiver<GenerationEvent>) {
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        let request = GenerationRequest {
            prompt_ids: vec![1; prompt],
            prompt_truncated: false,
            max_tokens,
            sampling: SamplingParams {
                temperature: 0.0,
                top_p: 1.0,
                seed: None,
            },
            stop: Vec::new(),
            ignore_eos: false,
            heal: String::new(),
            partition: "".into(),
        };
        let job = Job {
            request,
            events,
            arrived: Instant::now(),
            deadline: Instant::now(),
            progress: Arc::default(),
        };
        (job, receiver)
    }

    fn queue(requests: usize, tokens: usize) -> (JobQueue, JobReceiver) {
        let metrics = Arc::new(Metrics::default());
        JobQueue::new(QueueBounds { requests, tokens }, metrics)
    }

    /// Submits a job of that cost; whether the queue took it.
    fn offer(queue: &JobQueue, prompt: usize, max_tokens: usize) -> bool {
        queue.submit(job(prompt, max_tokens).0).is_ok()
    }

    #[test]
    fn a_job_costs_its_prompt_and_every_token_it_may_generate() {
        assert_eq!(job(30, 16).0.cost(), 46);
        assert_eq!(job(30, 0).0.cost(), 30, "a warm-up holds its prompt only");
    }

    #[test]
    fn the_queue_is_full_at_its_request_bound() {
        let (queue, _receiver) = queue(2, usize::MAX);
        assert!(offer(&queue, 1, 1));
        assert!(offer(&queue, 1, 1));
        assert!(!offer(&queue, 1, 1));
    }

    #[test]
    fn the_queue_is_full_at_its_token_bound() {
        let (queue, receiver) = queue(16, 100);
        assert!(offer(&queue, 10, 50));
        assert!(!offer(&queue, 10, 41), "60 + 51 > 100");
        assert!(offer(&queue, 10, 30), "60 + 40 = 100");
        assert!(!offer(&queue, 1, 0));
        // What the engine takes out no longer counts.
        let taken = receiver.take(|waiting| waiting.pop_front().map(|job| job.cost()));
        assert_eq!(taken, Some(60));
        assert!(offer(&queue, 10, 50));
    }

    #[test]
    fn an_empty_queue_takes_a_job_larger_than_its_token_bound() {
        let (queue, receiver) = queue(16, 100);
        assert!(offer(&queue, 100, 400));
        assert!(!offer(&queue, 1, 0), "nothing joins it");
        receiver.take(|waiting| waiting.clear());
        assert!(offer(&queue, 1, 0));
    }

    #[test]
    fn the_engine_sees_what_waits_and_whether_more_can_come() {
        let (queue, receiver) = queue(16, 100);
        assert!(!receiver.wait(Duration::from_millis(1)), "nothing waits");
        assert!(offer(&queue, 1, 1));
        assert!(receiver.wait(Duration::from_millis(1)));
        assert!(!receiver.is_closed());
        drop(queue);
        assert!(receiver.is_closed());
    }
}
