//! The engine thread. Up to `max_active` requests are in flight at once: a request is admitted
//! from the queue (its prompt prefilled, from the prefix cache where possible), then every
//! active request gets one decode step in turn, so a short completion is not stuck behind a long
//! one. Between steps each request checks whether its client is still there and whether its
//! deadline passed, so a disconnect stops its work within one step.

use std::{
    collections::VecDeque,
    sync::{
        atomic::Ordering,
        mpsc::{Receiver, TryRecvError},
        Arc,
    },
    time::Instant,
};

use anyhow::Result;
use tokio::sync::mpsc::UnboundedSender;

use crate::{
    engine::{
        prefix_cache::PrefixCache,
        sampling::Sampler,
        stop::{StopMatcher, StopOutcome},
        Engine, KvState,
    },
    metrics::Metrics,
    model::tokenizer::IncrementalDecoder,
    queue::{FinishReason, GenerationEvent, Job},
};

pub struct SchedulerOptions {
    pub prefix_cache_bytes: usize,
    /// Requests decoding at the same time; each holds its own KV state.
    pub max_active: usize,
    /// While other requests are decoding, a prompt is prefilled this many tokens per turn, so
    /// a long prompt does not stall their streams; alone, it is prefilled in one go.
    pub prefill_chunk: usize,
}

pub fn run_engine_loop(mut engine: Engine, jobs: Receiver<Job>, metrics: Arc<Metrics>, options: SchedulerOptions) {
    let mut cache = PrefixCache::new(options.prefix_cache_bytes, metrics.clone());
    let mut active: VecDeque<Generation> = VecDeque::new();
    loop {
        // Admit new work: wait for it when idle, otherwise take what is already waiting.
        while active.len() < options.max_active.max(1) {
            let job = if active.is_empty() {
                match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            } else {
                match jobs.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            };
            metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
            metrics.queue_time.observe(job.arrived.elapsed());
            if job.events.is_closed() {
                metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let events = job.events.clone();
            if let Some(generation) = guarded(&events, || Generation::start(&mut engine, &mut cache, &metrics, job)) {
                active.push_back(generation);
            }
        }
        // One step (a prefill chunk or a decode step) for each active request, in turn.
        let chunk = if active.len() > 1 { options.prefill_chunk.max(1) } else { usize::MAX };
        for _ in 0..active.len() {
            let Some(mut generation) = active.pop_front() else { break };
            let events = generation.job.events.clone();
            match guarded(&events, || generation.step(&mut engine, &metrics, chunk)) {
                Some(Step::Continue) => active.push_back(generation),
                Some(Step::Done) => generation.finish(&mut cache, &metrics),
                None => {}
            }
        }
    }
}

/// Runs one piece of a generation; a failure or panic fails that request only (the KV state is
/// per request, so the engine stays usable) and returns `None`.
fn guarded<T>(events: &UnboundedSender<GenerationEvent>, f: impl FnOnce() -> Result<T>) -> Option<T> {
    let failure = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(value)) => return Some(value),
        Ok(Err(e)) => format!("{e:#}"),
        Err(panic) => {
            let message = panic.downcast_ref::<&str>().copied().or(panic.downcast_ref::<String>().map(String::as_str));
            format!("internal error: {}", message.unwrap_or("panic"))
        }
    };
    tracing::error!("generation failed: {failure}");
    let _ = events.send(GenerationEvent::Failed(failure));
    None
}

enum Step {
    Continue,
    Done,
}

/// One request between admission and its last token.
struct Generation {
    job: Job,
    seq: KvState,
    /// The tokens whose KV `seq` holds, so the finished sequence can be cached.
    fed: Vec<u32>,
    /// Logits of the last token fed; empty until the whole prompt is prefilled.
    logits: Vec<f32>,
    stop_ids: Vec<u32>,
    sampler: Sampler,
    stops: StopMatcher,
    decoder: IncrementalDecoder,
    generated: usize,
    last_token_at: Option<Instant>,
    /// Why it ended; `None` while running. `Some(None)`: the client went away.
    ended: Option<Option<FinishReason>>,
}

impl Generation {
    /// Starts from the longest cached prefix of the prompt; the rest is prefilled by `step`.
    fn start(engine: &mut Engine, cache: &mut PrefixCache, metrics: &Metrics, job: Job) -> Result<Self> {
        let request = &job.request;
        let prompt = &request.prompt_ids;
        metrics.prompt_tokens.fetch_add(prompt.len() as u64, Ordering::Relaxed);
        let seq = match cache.lookup(prompt) {
            Some(seq) => seq,
            None => engine.new_sequence(prompt.len() + request.max_tokens)?,
        };
        let mut fed = Vec::with_capacity(prompt.len() + request.max_tokens);
        fed.extend_from_slice(&prompt[..seq.len()]);
        let stop_ids = if request.ignore_eos {
            Vec::new()
        } else {
            engine.config.stop_token_ids.iter().chain(&engine.config.eos_token_ids).copied().collect()
        };
        Ok(Self {
            sampler: Sampler::new(request.sampling),
            stops: StopMatcher::new(request.stop.clone()),
            job,
            seq,
            fed,
            logits: Vec::new(),
            stop_ids,
            decoder: IncrementalDecoder::default(),
            generated: 0,
            last_token_at: None,
            ended: None,
        })
    }

    /// Prefills up to `chunk` more prompt tokens, or, once the prompt is in, samples one token,
    /// sends its text and runs it through the model unless the generation ends here.
    fn step(&mut self, engine: &mut Engine, metrics: &Metrics, chunk: usize) -> Result<Step> {
        let prompt = &self.job.request.prompt_ids;
        if self.fed.len() < prompt.len() {
            if self.job.events.is_closed() {
                self.ended = Some(None);
                return Ok(Step::Done);
            }
            let end = prompt.len().min(self.fed.len().saturating_add(chunk));
            let logits = engine.forward(&mut self.seq, &prompt[self.fed.len()..end])?;
            if end == prompt.len() {
                self.logits.extend_from_slice(logits);
            }
            self.fed.extend_from_slice(&prompt[self.fed.len()..end]);
            return Ok(Step::Continue);
        }
        if let Some(reason) = self.next_token(engine, metrics)? {
            self.ended = Some(reason);
            return Ok(Step::Done);
        }
        Ok(Step::Continue)
    }

    /// `Ok(Some(reason))` when the generation ends at this step.
    fn next_token(&mut self, engine: &mut Engine, metrics: &Metrics) -> Result<Option<Option<FinishReason>>> {
        if self.job.events.is_closed() {
            return Ok(Some(None));
        }
        if Instant::now() >= self.job.deadline {
            return Ok(Some(Some(FinishReason::Timeout)));
        }
        let token = self.sampler.sample(&self.logits);
        let now = Instant::now();
        match self.last_token_at {
            None => metrics.time_to_first_token.observe(now - self.job.arrived),
            Some(prev) => metrics.time_per_token.observe(now - prev),
        }
        self.last_token_at = Some(now);
        if self.stop_ids.contains(&token) {
            return Ok(Some(Some(FinishReason::Stop)));
        }
        self.generated += 1;
        metrics.generated_tokens.fetch_add(1, Ordering::Relaxed);
        let delta = self.decoder.push(&engine.tokenizer, token)?;
        match self.stops.push(&delta) {
            StopOutcome::Stopped(text) => {
                self.send(text);
                return Ok(Some(Some(FinishReason::Stop)));
            }
            StopOutcome::Continue(text) => {
                if !self.send(text) {
                    return Ok(Some(None));
                }
            }
        }
        if self.generated >= self.job.request.max_tokens || self.seq.len() + 1 >= engine.config.context_length {
            return Ok(Some(Some(FinishReason::Length)));
        }
        let logits = engine.forward(&mut self.seq, &[token])?;
        self.logits.clear();
        self.logits.extend_from_slice(logits);
        self.fed.push(token);
        Ok(None)
    }

    fn send(&self, text: String) -> bool {
        text.is_empty() || self.job.events.send(GenerationEvent::Text(text)).is_ok()
    }

    /// Sends the end of the stream and gives the KV state to the prefix cache.
    fn finish(mut self, cache: &mut PrefixCache, metrics: &Metrics) {
        match self.ended.flatten() {
            None => {
                metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(generated = self.generated, "client went away; generation stopped");
            }
            Some(reason) => {
                // Text held back as a possible stop-string start is real text once generation
                // ended another way (after a matched stop string the matcher holds nothing).
                let rest = self.stops.finish();
                self.send(rest);
                let _ = self.job.events.send(GenerationEvent::Finished {
                    reason,
                    prompt_tokens: self.job.request.prompt_ids.len(),
                    completion_tokens: self.generated,
                });
            }
        }
        cache.insert(self.fed, self.seq);
    }
}
