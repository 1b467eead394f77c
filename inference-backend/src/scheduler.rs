//! The engine thread. Up to `max_active` requests are in flight at once, holding at most
//! `max_active_tokens` tokens (prompt + `max_tokens` each): a request is admitted from the queue
//! in arrival order when it fits beside those in flight (`select`; one larger than the whole token
//! budget runs alone) and its prompt prefilled (from the prefix cache where possible, batch size
//! 1, in chunks while others are running), then it decodes.
//!
//! Batched (GroupQueryAttention models, `--batching on`): each round prefills at most
//! `--prefill-chunk` prompt tokens (oldest request first) and then runs ONE forward pass for all
//! decoding requests (see `engine/batch.rs`), so every decoding request advances exactly one
//! token per round and newcomers' prompts never stall the running streams for more than one
//! chunk. Requests join the batch after their prefill and leave it when they end, between rounds.
//!
//! Interleaved (`--batching off`, and Optimum exports, whose concatenating attention cannot take
//! rows of different lengths): each active request gets one step in turn (a prefill chunk or a
//! batch-1 decode step).
//!
//! Prompt lookup (`--prompt-lookup on`, batched path, greedy requests): when one request is
//! decoding alone, its decode step also feeds tokens guessed from earlier text
//! (`engine/draft.rs`) and gets the logits after each; the next round samples through them as
//! long as the model's choice equals the guess, so one forward pass can yield several tokens.
//! The row's KV of rejected guesses is dropped by rewinding the row's length.
//!
//! Prompts are prefilled `--prefill-chunk` tokens per round, also when nothing else runs, and
//! before each chunk and each token a request checks whether its client is still there and
//! whether its deadline passed, so a disconnect stops its work within one chunk. Whatever KV a
//! request computed goes into the prefix cache when it ends, however it ends (finished,
//! superseded by the editor's next keystroke, timed out, half-way through its prompt): the next
//! keystroke's prompt shares all of it but the last few tokens. A request looks the cache up when
//! its prefill starts, not when it is admitted, and requests whose clients left are retired at
//! the start of every round, so a keystroke's request finds the KV of the one it superseded.
//! A request with `max_tokens` 0 only prefills (it warms the cache for the prompts to come).

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use tokio::sync::mpsc::UnboundedSender;

use crate::{
    engine::{
        batch::{DecodeBatch, Joining},
        draft::prompt_lookup,
        prefix_cache::PrefixCache,
        sampling::{Healing, Sampler},
        stop::{StopMatcher, StopOutcome},
        Engine, KvState,
    },
    metrics::Metrics,
    model::tokenizer::IncrementalDecoder,
    queue::{FinishReason, GenerationEvent, Job, JobReceiver, Usage},
};

pub struct SchedulerOptions {
    pub prefix_cache_bytes: usize,
    /// Requests decoding at the same time; each holds its own KV state (or a row of the batch).
    pub max_active: usize,
    /// Tokens the requests in flight may hold together, each its prompt + `max_tokens`
    /// (`Job::cost`); a request that would pass it waits, unless nothing else is in flight.
    pub max_active_tokens: usize,
    /// Prompt tokens prefilled per round (batched: all prompts together, oldest first;
    /// interleaved: per request per turn), so a long prompt does not stall running streams and
    /// a request whose client left stops within one chunk.
    pub prefill_chunk: usize,
    /// Batch the decode steps when the model allows it (GroupQueryAttention graphs).
    pub batching: bool,
    /// Check prompt-lookup guesses in the decode step of a greedy request decoding alone, when
    /// the model gives logits for several positions (`logits_to_keep`).
    pub prompt_lookup: bool,
    /// Set by `main` at shutdown: the loop ends every request still in flight and returns, so
    /// the engine (its ONNX Runtime sessions) is dropped on this thread before the process
    /// exits; a thread still inside ONNX Runtime while the runtime's statics are torn down
    /// crashed the process (SIGSEGV, "GetElementType is not implemented").
    pub stop: Arc<AtomicBool>,
}

/// How often an idle engine thread looks at the stop flag.
const IDLE_STOP_CHECK: Duration = Duration::from_millis(50);

/// Whether the loop must end now; when it must, every request still in flight is told so.
fn stopping<'a>(
    options: &SchedulerOptions,
    in_flight: impl Iterator<Item = &'a Generation>,
) -> bool {
    if !options.stop.load(Ordering::SeqCst) {
        return false;
    }
    for generation in in_flight {
        if generation.ended.is_none() {
            let _ = generation.job.events.send(GenerationEvent::Failed(
                "the server is shutting down; the generation was stopped".into(),
            ));
        }
    }
    true
}

pub fn run_engine_loop(
    mut engine: Engine,
    jobs: JobReceiver,
    metrics: Arc<Metrics>,
    options: SchedulerOptions,
) {
    let cache = PrefixCache::new(options.prefix_cache_bytes, metrics.clone());
    metrics.kv_capacity_tokens.store(
        (options.max_active.max(1) * engine.config.context_length) as u64,
        Ordering::Relaxed,
    );
    if options.batching && engine.supports_batching() {
        tracing::info!(
            "decode steps are batched (up to {} requests per forward pass)",
            options.max_active.max(1)
        );
        if options.prompt_lookup && !engine.can_verify_drafts() {
            tracing::info!("prompt lookup off: the model gives logits for the last position only (no logits_to_keep input) or runs a fixed-shape batch");
        }
        run_batched(&mut engine, jobs, &metrics, &options, cache);
    } else {
        run_interleaved(&mut engine, jobs, &metrics, &options, cache);
    }
}

/// Bounds on the requests in flight: how many, and how many tokens they may hold together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AdmissionBounds {
    requests: usize,
    tokens: usize,
}

impl AdmissionBounds {
    fn of(options: &SchedulerOptions) -> Self {
        Self {
            requests: options.max_active.max(1),
            tokens: options.max_active_tokens.max(1),
        }
    }

    /// Whether one more request of `cost` tokens may join the requests in flight (`load`). With
    /// nothing in flight any request may: one larger than the whole token budget runs alone
    /// rather than never (validation already fitted it into the context).
    fn admits(&self, load: Load, cost: usize) -> bool {
        load.requests == 0
            || (load.requests < self.requests && load.tokens.saturating_add(cost) <= self.tokens)
    }
}

/// What the requests in flight hold: how many, and the tokens they may grow to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Load {
    requests: usize,
    tokens: usize,
}

impl Load {
    fn of<'a>(in_flight: impl Iterator<Item = &'a Generation>) -> Self {
        in_flight.fold(Load::default(), |load, g| load.with(g.needs()))
    }

    fn with(self, cost: usize) -> Self {
        Load {
            requests: self.requests + 1,
            tokens: self.tokens.saturating_add(cost),
        }
    }
}

/// What one admission takes out of the queue.
#[derive(Debug, PartialEq)]
struct Selection<T> {
    /// To start, oldest first.
    admitted: Vec<T>,
    /// Their clients left while they waited: dropped, wherever they were in the queue, so they
    /// hold no place in it.
    retired: Vec<T>,
}

/// The admission rule, apart from the engine: takes from the front of `waiting` (oldest first)
/// each request that fits beside `load` by `bounds`, and stops at the first that does not, so a
/// large request is never overtaken by smaller ones behind it (it cannot starve); the rest keep
/// their places.
fn select<T>(
    waiting: &mut VecDeque<T>,
    mut load: Load,
    bounds: AdmissionBounds,
    cost: impl Fn(&T) -> usize,
    gone: impl Fn(&T) -> bool,
) -> Selection<T> {
    let mut selection = Selection {
        admitted: Vec::new(),
        retired: Vec::new(),
    };
    if waiting.iter().any(&gone) {
        for item in std::mem::take(waiting) {
            if gone(&item) {
                selection.retired.push(item);
            } else {
                waiting.push_back(item);
            }
        }
    }
    while let Some(next) = waiting.front() {
        let cost = cost(next);
        if !bounds.admits(load, cost) {
            break;
        }
        load = load.with(cost);
        selection.admitted.extend(waiting.pop_front());
    }
    selection
}

/// Admits what the queue holds and `select` lets in beside the requests in flight (`load`);
/// waits for a request when nothing is in flight. `None`: the queue is closed, or the server is
/// stopping, and nothing is in flight.
fn admit(
    jobs: &JobReceiver,
    metrics: &Metrics,
    options: &SchedulerOptions,
    load: Load,
    mut push: impl FnMut(Generation),
) -> Option<()> {
    if load.requests == 0 {
        // Nothing is in flight while it waits: the load gauges say so, rather than what the
        // last round before the wait saw.
        publish_load(metrics, std::iter::empty());
        loop {
            metrics.engine_heartbeat.beat();
            if options.stop.load(Ordering::SeqCst) {
                return None;
            }
            if jobs.wait(IDLE_STOP_CHECK) {
                break;
            }
            if jobs.is_closed() {
                return None;
            }
        }
    }
    let bounds = AdmissionBounds::of(options);
    let Selection { admitted, retired } =
        jobs.take(|waiting| select(waiting, load, bounds, Job::cost, Job::is_gone));
    let taken = retired
        .into_iter()
        .map(|job| (job, false))
        .chain(admitted.into_iter().map(|job| (job, true)));
    for (job, admitted) in taken {
        metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
        metrics.queue_time.observe(job.arrived.elapsed());
        crate::fault::trip("engine-panic");
        if !admitted {
            metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let events = job.events.clone();
        if let Some(generation) = guarded(&events, || Generation::start(metrics, job)) {
            push(generation);
        }
    }
    Some(())
}

/// The requests in flight and the KV positions they hold, for `/metrics` (what a router or an
/// autoscaler reads to pick a replica); and a heartbeat each round, for `/ready`.
fn publish_load<'a>(metrics: &Metrics, in_flight: impl Iterator<Item = &'a Generation>) {
    metrics.engine_heartbeat.beat();
    let (running, kv_tokens) = in_flight.fold((0, 0), |(n, kv), g| (n + 1, kv + g.fed.len()));
    metrics.active_requests.store(running, Ordering::Relaxed);
    metrics.kv_tokens.store(kv_tokens as u64, Ordering::Relaxed);
}

fn run_interleaved(
    engine: &mut Engine,
    jobs: JobReceiver,
    metrics: &Metrics,
    options: &SchedulerOptions,
    mut cache: PrefixCache,
) {
    let mut active: VecDeque<Generation> = VecDeque::new();
    loop {
        if stopping(options, active.iter()) {
            return;
        }
        let load = Load::of(active.iter());
        if admit(&jobs, metrics, options, load, |g| active.push_back(g)).is_none() {
            return;
        }
        publish_load(metrics, active.iter());
        // One step (a prefill chunk or a decode step) for each active request, in turn.
        let chunk = options.prefill_chunk.max(1);
        for _ in 0..active.len() {
            let Some(mut generation) = active.pop_front() else {
                break;
            };
            let events = generation.job.events.clone();
            let step = guarded(&events, || -> Result<bool> {
                if !generation.prompt_done() {
                    generation.prefill(engine, &mut cache, chunk, metrics)?;
                    return Ok(generation.ended.is_none());
                }
                if generation.sample(engine, metrics)? {
                    return Ok(false);
                }
                metrics.decode_batch_size.observe_count(1);
                generation.feed(engine)?;
                Ok(true)
            });
            match step {
                Some(true) => active.push_back(generation),
                Some(false) => generation.finish(&mut cache, metrics),
                None => {}
            }
        }
    }
}

fn run_batched(
    engine: &mut Engine,
    jobs: JobReceiver,
    metrics: &Metrics,
    options: &SchedulerOptions,
    mut cache: PrefixCache,
) {
    let mut prefilling: VecDeque<Generation> = VecDeque::new();
    // Row `i` of `batch` is `decoding[i]`.
    let mut decoding: Vec<Generation> = Vec::new();
    let mut batch = DecodeBatch::default();
    loop {
        if stopping(options, prefilling.iter().chain(&decoding)) {
            return;
        }
        let load = Load::of(prefilling.iter().chain(&decoding));
        if admit(&jobs, metrics, options, load, |g| prefilling.push_back(g)).is_none() {
            return;
        }
        publish_load(metrics, prefilling.iter().chain(&decoding));

        // 0. Decoding requests whose clients left (superseded by the next keystroke) leave the
        //    batch now, before any prompt is looked up, so their KV is in the prefix cache when
        //    the request that superseded them starts its prefill below.
        if decoding.iter().any(|g| g.job.events.is_closed()) {
            let keep: Vec<bool> = decoding.iter().map(|g| !g.job.events.is_closed()).collect();
            for (row, (generation, kept)) in decoding.iter_mut().zip(&keep).enumerate() {
                if !kept {
                    generation.ended = Some(End::Gone);
                    generation.drafts.clear();
                    // Drafted positions fed last step were never confirmed: not cached.
                    let _ = batch.rewind(row, generation.fed.len());
                }
            }
            change_members(
                engine,
                &mut batch,
                &mut decoding,
                &keep,
                Vec::new(),
                &mut cache,
                metrics,
            );
        }

        // 1. Prefill, first come first served, at most `prefill_chunk` prompt tokens per round
        //    (so decoding requests wait at most one chunk between two tokens, and a prompt whose
        //    client left is abandoned within one chunk); a request whose prompt is done with
        //    nothing decoding ends the round, so it starts streaming at once.
        let mut budget = PrefillBudget::new(options.prefill_chunk, !decoding.is_empty());
        let mut ready = Vec::new();
        for _ in 0..prefilling.len() {
            let Some(mut generation) = prefilling.pop_front() else {
                break;
            };
            if budget.left() == 0 {
                prefilling.push_back(generation);
                continue;
            }
            let events = generation.job.events.clone();
            match guarded(&events, || {
                generation.prefill(engine, &mut cache, budget.left(), metrics)
            }) {
                Some(ran) if generation.ended.is_some() => {
                    budget.spend(ran, false);
                    generation.finish(&mut cache, metrics);
                }
                Some(ran) if generation.prompt_done() => {
                    budget.spend(ran, true);
                    ready.push(generation);
                }
                Some(ran) => {
                    budget.spend(ran, false);
                    prefilling.push_back(generation);
                }
                None => {}
            }
        }

        // 2. The next token of every decoding request, and the first one of those just prefilled.
        let mut keep = Vec::with_capacity(decoding.len());
        for generation in &mut decoding {
            let events = generation.job.events.clone();
            match guarded(&events, || generation.sample(engine, metrics)) {
                Some(ended) => keep.push(!ended),
                None => {
                    // Failed (already told to its client): leaves the batch, nothing cached.
                    generation.ended = Some(End::Failed);
                    keep.push(false);
                }
            }
        }
        // Rows hold the KV of every drafted token fed last step; keep only what was confirmed.
        if let Err(failure) = catch(|| {
            decoding
                .iter()
                .enumerate()
                .try_for_each(|(row, g)| batch.rewind(row, g.fed.len()))
        }) {
            fail_all(&failure, decoding.drain(..));
            batch.reset();
            keep.clear();
        }
        let mut joining = Vec::new();
        for mut generation in ready {
            let events = generation.job.events.clone();
            match guarded(&events, || generation.sample(engine, metrics)) {
                Some(false) => joining.push(generation),
                Some(true) => generation.finish(&mut cache, metrics),
                None => {}
            }
        }

        // 3. Membership changes: one rebuild of the batch buffers.
        if keep.contains(&false) || !joining.is_empty() {
            change_members(
                engine,
                &mut batch,
                &mut decoding,
                &keep,
                joining,
                &mut cache,
                metrics,
            );
        }
        metrics
            .decode_batch
            .store(decoding.len() as i64, Ordering::Relaxed);

        // 4. One forward pass for the whole batch: every decoding request advances one token.
        if let [alone] = &mut decoding[..] {
            if options.prompt_lookup && engine.can_verify_drafts() && alone.sampler.is_greedy() {
                metrics.decode_batch_size.observe_count(1);
                if let Err(failure) = catch(|| alone.feed_drafted(engine, &mut batch, metrics)) {
                    fail_all(&failure, decoding.drain(..));
                    batch.reset();
                }
                continue;
            }
        }
        if !decoding.is_empty() {
            metrics
                .decode_batch_size
                .observe_count(decoding.len() as u64);
            let tokens: Vec<u32> = decoding.iter().map(|g| g.pending).collect();
            let result = catch(|| {
                let logits = engine.forward_batch(&mut batch, &tokens)?;
                let vocab = logits.len() / tokens.len();
                for (generation, row) in decoding.iter_mut().zip(logits.chunks_exact(vocab)) {
                    generation.logits.clear();
                    generation.logits.extend_from_slice(row);
                    generation.fed.push(generation.pending);
                }
                Ok(())
            });
            if let Err(failure) = result {
                fail_all(&failure, decoding.drain(..));
                batch.reset();
            }
        }
    }
}

/// The prompt tokens one round of the batched loop may still prefill: `--prefill-chunk` in all,
/// given to the prefilling requests oldest first, so decoding requests wait at most one chunk
/// between two tokens. A prompt finished while nothing decodes ends the round's prefills: that
/// request starts streaming at once instead of waiting for the next prompts' chunks.
#[derive(Debug)]
struct PrefillBudget {
    left: usize,
    /// Whether a request decodes this round (in the batch, or a prompt finished this round).
    decoding: bool,
}

impl PrefillBudget {
    fn new(chunk: usize, decoding: bool) -> Self {
        Self {
            left: chunk.max(1),
            decoding,
        }
    }

    /// What the next prefilling request may run now; 0: it waits for the next round.
    fn left(&self) -> usize {
        self.left
    }

    /// A request ran `ran` prompt tokens; `prompt_done` when that finished its prompt.
    fn spend(&mut self, ran: usize, prompt_done: bool) {
        self.left = if prompt_done && !self.decoding {
            0
        } else {
            self.left.saturating_sub(ran)
        };
        self.decoding |= prompt_done;
    }
}

/// One rebuild of the decode batch's buffers: rows whose `keep` flag is false leave (and finish,
/// their KV going into the prefix cache), `joining` requests join at the end. A failure fails
/// every member, which is then dropped.
fn change_members(
    engine: &mut Engine,
    batch: &mut DecodeBatch,
    decoding: &mut Vec<Generation>,
    keep: &[bool],
    mut joining: Vec<Generation>,
    cache: &mut PrefixCache,
    metrics: &Metrics,
) {
    let started = Instant::now();
    let join = joining
        .iter_mut()
        .map(|g| Joining {
            needs: g.needs(),
            kv: std::mem::take(&mut g.seq),
        })
        .collect();
    match catch(|| engine.rebuild_batch(batch, keep, join)) {
        Ok(left) => {
            let mut left = left.into_iter();
            let mut leaving = Vec::new();
            for (mut generation, kept) in std::mem::take(decoding).into_iter().zip(keep) {
                if *kept {
                    decoding.push(generation);
                } else {
                    generation.seq = left.next().unwrap_or_default();
                    leaving.push(generation);
                }
            }
            decoding.extend(joining);
            // Before their clients hear the end, so /metrics agrees with what they saw.
            metrics
                .decode_batch
                .store(decoding.len() as i64, Ordering::Relaxed);
            for generation in leaving {
                generation.finish(cache, metrics);
            }
            metrics.batch_rebuilds.fetch_add(1, Ordering::Relaxed);
            metrics.batch_rebuild_time.observe(started.elapsed());
            tracing::debug!(
                rows = batch.len(),
                capacity = batch.capacity(),
                mb = batch.bytes() / (1 << 20),
                "decode batch rebuilt in {:.1} ms",
                started.elapsed().as_secs_f64() * 1e3
            );
        }
        Err(failure) => {
            fail_all(&failure, decoding.drain(..).chain(joining));
            batch.reset();
        }
    }
}

/// A failure of a batched step fails every request in it (their KV rows are in one buffer); the
/// engine stays usable for new requests. A request whose own failure was already reported is not
/// told twice.
fn fail_all(failure: &str, generations: impl Iterator<Item = Generation>) {
    tracing::error!("decode batch failed: {failure}");
    for generation in generations {
        if !matches!(generation.ended, Some(End::Failed)) {
            let _ = generation
                .job
                .events
                .send(GenerationEvent::Failed(failure.to_string()));
        }
    }
}

/// Runs `f`, turning an error or a panic into a message.
fn catch<T>(f: impl FnOnce() -> Result<T>) -> std::result::Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .copied()
                .or(panic.downcast_ref::<String>().map(String::as_str));
            Err(format!("internal error: {}", message.unwrap_or("panic")))
        }
    }
}

/// Runs one piece of a generation; a failure or panic fails that request only (the KV state is
/// per request, so the engine stays usable) and returns `None`.
fn guarded<T>(
    events: &UnboundedSender<GenerationEvent>,
    f: impl FnOnce() -> Result<T>,
) -> Option<T> {
    match catch(f) {
        Ok(value) => Some(value),
        Err(failure) => {
            tracing::error!("generation failed: {failure}");
            let _ = events.send(GenerationEvent::Failed(failure));
            None
        }
    }
}

/// Drafted tokens fed after a request's pending token, and the logits after each, consumed in
/// order while the sampled tokens agree with them.
#[derive(Default)]
struct Drafts {
    tokens: Vec<u32>,
    /// `tokens.len() × vocab` logits, reused between steps.
    logits: Vec<f32>,
    vocab: usize,
    /// Drafted tokens confirmed so far.
    next: usize,
}

impl Drafts {
    fn set(&mut self, tokens: &[u32], logits: &[f32], vocab: usize) {
        self.tokens.clear();
        self.tokens.extend_from_slice(tokens);
        self.logits.clear();
        self.logits.extend_from_slice(logits);
        self.vocab = vocab;
        self.next = 0;
    }

    fn clear(&mut self) {
        self.tokens.clear();
        self.next = 0;
    }

    /// Whether `token` is the next drafted one; if so, `logits` become those after it.
    /// Otherwise the remaining drafts are dropped.
    fn confirm(&mut self, token: u32, logits: &mut Vec<f32>) -> bool {
        if self.tokens.get(self.next) != Some(&token) {
            self.clear();
            return false;
        }
        logits.clear();
        logits
            .extend_from_slice(&self.logits[self.next * self.vocab..(self.next + 1) * self.vocab]);
        self.next += 1;
        true
    }
}

/// How a generation ended.
enum End {
    Finished(FinishReason),
    /// The client went away.
    Gone,
    /// An error was already sent to the client.
    Failed,
}

/// One request between admission and its last token.
struct Generation {
    job: Job,
    /// Its own KV state; empty while its KV is a row of the decode batch.
    seq: KvState,
    /// The tokens whose KV the sequence holds, so the finished sequence can be cached.
    fed: Vec<u32>,
    /// Logits of the last token fed; empty until the whole prompt is prefilled.
    logits: Vec<f32>,
    /// The token sampled this round, to be fed next.
    pending: u32,
    /// Guesses fed after `pending` in the last step, with the logits after each.
    drafts: Drafts,
    stop_ids: Vec<u32>,
    sampler: Sampler,
    healing: Healing,
    stops: StopMatcher,
    decoder: IncrementalDecoder,
    generated: usize,
    last_token_at: Option<Instant>,
    /// Whether its prefill started (the prefix cache was asked and its KV allocated).
    begun: bool,
    /// Prompt tokens that came from the prefix cache.
    cached_tokens: usize,
    /// When the engine first worked on it, and time spent in its prompt's forward passes.
    begun_at: Option<Instant>,
    prefill_time: std::time::Duration,
    /// When its prompt was done (decoding starts).
    prompt_done_at: Option<Instant>,
    /// Why it ended; `None` while running.
    ended: Option<End>,
}

impl Generation {
    /// Admits a request; its KV is found or allocated when its prefill starts (`begin`), so
    /// that it sees the KV of every request that ended before then.
    fn start(metrics: &Metrics, job: Job) -> Result<Self> {
        let request = &job.request;
        metrics
            .prompt_tokens
            .fetch_add(request.prompt_ids.len() as u64, Ordering::Relaxed);
        Ok(Self {
            sampler: Sampler::new(request.sampling),
            healing: Healing::new(request.heal.clone()),
            stops: StopMatcher::new(request.stop.clone()),
            stop_ids: Vec::new(),
            job,
            seq: KvState::default(),
            fed: Vec::new(),
            logits: Vec::new(),
            pending: 0,
            drafts: Drafts::default(),
            decoder: IncrementalDecoder::default(),
            generated: 0,
            last_token_at: None,
            begun: false,
            cached_tokens: 0,
            begun_at: None,
            prefill_time: std::time::Duration::ZERO,
            prompt_done_at: None,
            ended: None,
        })
    }

    /// Starts from the longest cached prefix of the prompt; the rest is prefilled by `prefill`.
    /// Its KV gets room for the whole generation up front, even batched: then a request that
    /// finds the batch empty (one editor's keystrokes) brings its buffers into it as they are,
    /// and a prefix-cache hit is copied once here instead of at prefill and again at joining.
    fn begin(&mut self, engine: &mut Engine, cache: &mut PrefixCache) -> Result<()> {
        let request = &self.job.request;
        let prompt = &request.prompt_ids;
        let needs = prompt.len() + request.max_tokens;
        let seq = match cache.lookup(&request.partition, prompt) {
            Some(mut seq) => {
                engine.reserve_for(&mut seq, needs)?;
                seq
            }
            None => engine.new_sequence(needs)?,
        };
        self.fed = Vec::with_capacity(needs);
        self.fed.extend_from_slice(&prompt[..seq.len()]);
        self.cached_tokens = seq.len();
        self.job.progress.prompt_started(prompt.len(), seq.len());
        self.seq = seq;
        self.stop_ids = if request.ignore_eos {
            Vec::new()
        } else {
            engine
                .config
                .stop_token_ids
                .iter()
                .chain(&engine.config.eos_token_ids)
                .copied()
                .collect()
        };
        self.begun = true;
        self.begun_at = Some(Instant::now());
        Ok(())
    }

    fn prompt_done(&self) -> bool {
        self.fed.len() >= self.job.request.prompt_ids.len()
    }

    /// Positions this sequence may reach: its prompt and every token it may generate.
    fn needs(&self) -> usize {
        self.job.request.prompt_ids.len() + self.job.request.max_tokens
    }

    /// Prefills up to `chunk` more prompt tokens (batch size 1, into its own KV state); the last
    /// chunk leaves the logits of the prompt's last token. A gone client or a passed deadline
    /// ends it here (what was prefilled is cached by `finish`), and so does the end of the
    /// prompt of a request for no tokens.
    /// Returns how many prompt tokens it ran.
    fn prefill(
        &mut self,
        engine: &mut Engine,
        cache: &mut PrefixCache,
        chunk: usize,
        metrics: &Metrics,
    ) -> Result<usize> {
        if self.job.events.is_closed() {
            self.ended = Some(End::Gone);
            return Ok(0);
        }
        if Instant::now() >= self.job.deadline {
            self.ended = Some(End::Finished(FinishReason::Timeout));
            return Ok(0);
        }
        if !self.begun {
            self.begin(engine, cache)?;
        }
        let prompt = &self.job.request.prompt_ids;
        let end = prompt.len().min(self.fed.len().saturating_add(chunk));
        let started = Instant::now();
        let on_prefill_graph = engine.prefill_graph_tokens();
        // A round may hold several chunks (interleaved: one per request): a beat per chunk.
        metrics.engine_heartbeat.beat();
        crate::fault::trip("engine-wedge");
        let logits = engine.forward(&mut self.seq, &prompt[self.fed.len()..end])?;
        tracing::debug!(
            tokens = end - self.fed.len(),
            after = self.fed.len(),
            since_arrival_ms = (started - self.job.arrived).as_secs_f64() * 1e3,
            "prefilled in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        if end == prompt.len() {
            self.logits.clear();
            self.logits.extend_from_slice(logits);
        }
        self.prefill_time += started.elapsed();
        let ran = end - self.fed.len();
        metrics
            .prefilled_tokens
            .fetch_add(ran as u64, Ordering::Relaxed);
        self.fed.extend_from_slice(&prompt[self.fed.len()..end]);
        metrics.prefill_graph_tokens.fetch_add(
            engine.prefill_graph_tokens() - on_prefill_graph,
            Ordering::Relaxed,
        );
        if end == prompt.len() {
            self.prompt_done_at = Some(Instant::now());
            metrics.observe_prefill(
                prompt.len() - self.cached_tokens,
                self.prefill_time.as_secs_f64(),
            );
            if self.job.request.max_tokens == 0 {
                self.ended = Some(End::Finished(FinishReason::Length));
            }
        }
        Ok(ran)
    }

    /// Samples the next token from the last logits and sends its text; `Ok(true)` when the
    /// generation ends here (`ended` says why), else the token waits in `pending` to be fed.
    /// After a drafted step, a sampled token equal to the next guess is already in the KV and
    /// the logits after it are known, so sampling goes on from them in the same round.
    fn sample(&mut self, engine: &Engine, metrics: &Metrics) -> Result<bool> {
        // Interleaved, each request's decode step is its own forward pass: a beat per step.
        metrics.engine_heartbeat.beat();
        loop {
            let end = self.next_token(engine, metrics)?;
            if end.is_some() {
                self.ended = end;
                self.drafts.clear();
                return Ok(true);
            }
            if !self.drafts.confirm(self.pending, &mut self.logits) {
                return Ok(false);
            }
            self.fed.push(self.pending);
            metrics.draft_accepted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The decode step of a request decoding alone: its pending token and, after it, what
    /// prompt lookup guesses follows (as many as it may still generate and the row has room
    /// for), in one forward pass.
    fn feed_drafted(
        &mut self,
        engine: &mut Engine,
        batch: &mut DecodeBatch,
        metrics: &Metrics,
    ) -> Result<()> {
        let room = batch
            .capacity()
            .saturating_sub(batch.row_len(0).unwrap_or(usize::MAX).saturating_add(1));
        let limit = self
            .job
            .request
            .max_tokens
            .saturating_sub(self.generated + 1)
            .min(room);
        self.fed.push(self.pending);
        let mut tokens = Vec::with_capacity(5);
        tokens.push(self.pending);
        tokens.extend_from_slice(prompt_lookup(&self.fed, limit));
        let logits = engine.forward_drafted(batch, &tokens)?;
        let vocab = logits.len() / tokens.len();
        self.logits.clear();
        self.logits.extend_from_slice(&logits[..vocab]);
        self.drafts.set(&tokens[1..], &logits[vocab..], vocab);
        metrics
            .draft_tokens
            .fetch_add(tokens.len() as u64 - 1, Ordering::Relaxed);
        Ok(())
    }

    fn next_token(&mut self, engine: &Engine, metrics: &Metrics) -> Result<Option<End>> {
        if self.job.events.is_closed() {
            return Ok(Some(End::Gone));
        }
        if Instant::now() >= self.job.deadline {
            return Ok(Some(End::Finished(FinishReason::Timeout)));
        }
        if self.healing.active() {
            self.healing
                .mask(&mut self.logits, engine.tokenizer.token_texts());
        }
        let token = self.sampler.sample(&self.logits);
        if self.healing.active() {
            self.healing.advance(
                engine
                    .tokenizer
                    .token_texts()
                    .get(token as usize)
                    .map_or("", String::as_str),
            );
        }
        let now = Instant::now();
        match self.last_token_at {
            None => metrics.time_to_first_token.observe(now - self.job.arrived),
            Some(prev) => metrics.time_per_token.observe(now - prev),
        }
        self.last_token_at = Some(now);
        if self.stop_ids.contains(&token) {
            return Ok(Some(End::Finished(FinishReason::Stop)));
        }
        self.generated += 1;
        self.job.progress.token_generated();
        metrics.generated_tokens.fetch_add(1, Ordering::Relaxed);
        let delta = self
            .healing
            .strip(self.decoder.push(&engine.tokenizer, token)?);
        match self.stops.push(&delta) {
            StopOutcome::Stopped(text) => {
                self.send(text);
                return Ok(Some(End::Finished(FinishReason::Stop)));
            }
            StopOutcome::Continue(text) => {
                if !self.send(text) {
                    return Ok(Some(End::Gone));
                }
            }
        }
        if self.generated >= self.job.request.max_tokens
            || self.fed.len() + 1 >= engine.config.context_length
        {
            return Ok(Some(End::Finished(FinishReason::Length)));
        }
        self.pending = token;
        Ok(None)
    }

    /// Runs the pending token through the model on its own KV state (interleaved path).
    fn feed(&mut self, engine: &mut Engine) -> Result<()> {
        let logits = engine.forward(&mut self.seq, &[self.pending])?;
        self.logits.clear();
        self.logits.extend_from_slice(logits);
        self.fed.push(self.pending);
        Ok(())
    }

    fn send(&self, text: String) -> bool {
        text.is_empty() || self.job.events.send(GenerationEvent::Text(text)).is_ok()
    }

    fn usage(&self) -> Usage {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        let now = Instant::now();
        Usage {
            prompt_tokens: self.job.request.prompt_ids.len(),
            completion_tokens: self.generated,
            cached_tokens: self.cached_tokens,
            queue_ms: ms(self.begun_at.unwrap_or(now) - self.job.arrived),
            prefill_ms: ms(self.prefill_time),
            decode_ms: self.prompt_done_at.map_or(0.0, |at| ms(now - at)),
        }
    }

    /// Sends the end of the stream and gives the KV state to the prefix cache. A panic in
    /// there ends this request only: its client gets an error if it has not had its end yet,
    /// and the engine goes on (without this sequence's KV).
    fn finish(self, cache: &mut PrefixCache, metrics: &Metrics) {
        let events = self.job.events.clone();
        let told = std::cell::Cell::new(false);
        if let Err(failure) = catch(|| {
            self.finish_inner(cache, metrics, &told);
            Ok(())
        }) {
            tracing::error!("finishing a request failed: {failure}");
            if !told.get() {
                let _ = events.send(GenerationEvent::Failed(failure));
            }
        }
    }

    fn finish_inner(
        mut self,
        cache: &mut PrefixCache,
        metrics: &Metrics,
        told: &std::cell::Cell<bool>,
    ) {
        if matches!(self.ended, Some(End::Failed)) {
            told.set(true);
        }
        crate::fault::trip("finish-panic");
        match self.ended {
            None | Some(End::Gone) => {
                metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    generated = self.generated,
                    "client went away; generation stopped"
                );
            }
            Some(End::Failed) => return,
            Some(End::Finished(reason)) => {
                // Text held back as a possible stop-string start is real text once generation
                // ended another way (after a matched stop string the matcher holds nothing).
                let rest = self.stops.finish();
                self.send(rest);
                let usage = self.usage();
                metrics.observe_decode(self.generated, usage.decode_ms / 1e3);
                let _ = self
                    .job
                    .events
                    .send(GenerationEvent::Finished { reason, usage });
                told.set(true);
            }
        }
        // A sequence that left a fixed-shape batch brings back its prompt's KV only.
        if self.seq.len() < self.fed.len() {
            self.fed.truncate(self.seq.len());
        }
        // Told already (or gone): a panic in the insert only loses this sequence's KV.
        told.set(true);
        crate::fault::trip("cache-insert-panic");
        cache.insert(self.job.request.partition.clone(), self.fed, self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waiting request in these tests: a name, its cost in tokens, whether its client left.
    #[derive(Debug, PartialEq)]
    struct Waiter(&'static str, usize, bool);

    fn queue(waiters: &[(&'static str, usize)]) -> VecDeque<Waiter> {
        waiters
            .iter()
            .map(|&(name, cost)| Waiter(name, cost, false))
            .collect()
    }

    fn names(waiters: &[Waiter]) -> Vec<&'static str> {
        waiters.iter().map(|w| w.0).collect()
    }

    fn run(
        waiting: &mut VecDeque<Waiter>,
        load: Load,
        requests: usize,
        tokens: usize,
    ) -> Selection<Waiter> {
        select(
            waiting,
            load,
            AdmissionBounds { requests, tokens },
            |w| w.1,
            |w| w.2,
        )
    }

    const IDLE: Load = Load {
        requests: 0,
        tokens: 0,
    };

    #[test]
    fn the_request_count_bounds_admission_in_arrival_order() {
        let mut waiting = queue(&[("a", 10), ("b", 10), ("c", 10), ("d", 10)]);
        let taken = run(&mut waiting, IDLE, 3, usize::MAX);
        assert_eq!(names(&taken.admitted), ["a", "b", "c"]);
        assert!(taken.retired.is_empty());
        assert_eq!(names(waiting.make_contiguous()), ["d"]);

        // Two in flight already: one more fits.
        let mut waiting = queue(&[("a", 10), ("b", 10)]);
        let load = Load {
            requests: 2,
            tokens: 20,
        };
        assert_eq!(
            names(&run(&mut waiting, load, 3, usize::MAX).admitted),
            ["a"]
        );
        assert_eq!(names(waiting.make_contiguous()), ["b"]);
    }

    #[test]
    fn the_token_budget_bounds_admission_counting_those_in_flight() {
        // 100 + 150 fit in 300, the next 100 would not.
        let mut waiting = queue(&[("a", 100), ("b", 150), ("c", 100)]);
        let taken = run(&mut waiting, IDLE, 8, 300);
        assert_eq!(names(&taken.admitted), ["a", "b"]);
        assert_eq!(names(waiting.make_contiguous()), ["c"]);

        // Exactly the budget fits.
        let mut waiting = queue(&[("c", 100)]);
        let load = Load {
            requests: 1,
            tokens: 200,
        };
        assert_eq!(names(&run(&mut waiting, load, 8, 300).admitted), ["c"]);

        // One token over does not; the request keeps its place.
        let mut waiting = queue(&[("c", 101)]);
        assert!(run(&mut waiting, load, 8, 300).admitted.is_empty());
        assert_eq!(names(waiting.make_contiguous()), ["c"]);
    }

    #[test]
    fn a_large_request_is_not_overtaken_by_smaller_ones_behind_it() {
        let mut waiting = queue(&[("big", 250), ("small", 10)]);
        let load = Load {
            requests: 1,
            tokens: 100,
        };
        let taken = run(&mut waiting, load, 8, 300);
        assert!(taken.admitted.is_empty(), "{taken:?}");
        assert_eq!(names(waiting.make_contiguous()), ["big", "small"]);
    }

    #[test]
    fn a_request_larger_than_the_whole_budget_runs_alone() {
        let mut waiting = queue(&[("huge", 1000), ("next", 10)]);
        let busy = Load {
            requests: 1,
            tokens: 10,
        };
        assert!(run(&mut waiting, busy, 8, 300).admitted.is_empty());
        let taken = run(&mut waiting, IDLE, 8, 300);
        assert_eq!(names(&taken.admitted), ["huge"], "nothing joins it");
        assert_eq!(names(waiting.make_contiguous()), ["next"]);
    }

    #[test]
    fn requests_whose_clients_left_are_retired_wherever_they_wait() {
        let mut waiting = queue(&[("big", 250), ("gone", 10), ("small", 10)]);
        waiting[1].2 = true;
        let load = Load {
            requests: 1,
            tokens: 100,
        };
        let taken = run(&mut waiting, load, 8, 300);
        assert_eq!(names(&taken.retired), ["gone"]);
        assert!(taken.admitted.is_empty());
        assert_eq!(names(waiting.make_contiguous()), ["big", "small"]);

        // A gone request takes no part of the budget: the one behind it is admitted.
        let mut waiting = queue(&[("gone", 200), ("next", 200)]);
        waiting[0].2 = true;
        let taken = run(&mut waiting, load, 8, 300);
        assert_eq!(names(&taken.retired), ["gone"]);
        assert_eq!(names(&taken.admitted), ["next"]);
        assert!(waiting.is_empty());
    }

    /// Prefills one round of the batched loop over prompts with `left` tokens still to run,
    /// oldest first: the tokens each ran.
    fn prefill_round(chunk: usize, decoding: bool, left: &[usize]) -> Vec<usize> {
        let mut budget = PrefillBudget::new(chunk, decoding);
        left.iter()
            .map(|&prompt| {
                let ran = prompt.min(budget.left());
                if ran > 0 {
                    budget.spend(ran, ran == prompt);
                }
                ran
            })
            .collect()
    }

    #[test]
    fn a_round_prefills_one_chunk_in_all_oldest_first_while_others_decode() {
        // 100 finishes its prompt, the next gets the 28 left, the third waits.
        assert_eq!(prefill_round(128, true, &[100, 50, 300]), [100, 28, 0]);
        assert_eq!(prefill_round(128, true, &[300, 10]), [128, 0]);
        // Short prompts all finish in one chunk.
        assert_eq!(prefill_round(128, true, &[10, 20, 30]), [10, 20, 30]);
    }

    #[test]
    fn a_prompt_finished_with_nothing_decoding_ends_the_rounds_prefills() {
        // It streams its first token this round rather than after the others' chunks.
        assert_eq!(prefill_round(128, false, &[10, 20, 30]), [10, 0, 0]);
        // A prompt not finished leaves the rest of the chunk to the next one.
        assert_eq!(prefill_round(128, false, &[300, 20]), [128, 0]);
        assert_eq!(prefill_round(128, false, &[100, 20, 5]), [100, 0, 0]);
        // A prompt part-way spends what it ran; the first to finish ends the round.
        let mut budget = PrefillBudget::new(128, false);
        budget.spend(30, false);
        assert_eq!(budget.left(), 98);
        budget.spend(60, true);
        assert_eq!(budget.left(), 0);
    }

    #[test]
    fn a_full_active_set_admits_nothing_and_keeps_the_order() {
        let mut waiting = queue(&[("a", 1), ("b", 1)]);
        let full = Load {
            requests: 2,
            tokens: 2,
        };
        let taken = run(&mut waiting, full, 2, 1000);
        assert_eq!(
            taken,
            Selection {
                admitted: vec![],
                retired: vec![]
            }
        );
        assert_eq!(names(waiting.make_contiguous()), ["a", "b"]);
    }
}
