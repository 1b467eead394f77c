//! The engine thread: takes one job at a time from the queue and runs prefill then decode,
//! streaming text back. Between decode steps it checks whether the client is still there and
//! whether the deadline passed, so a disconnect stops the work within one step.

use std::{
    sync::{atomic::Ordering, mpsc::Receiver, Arc},
    time::Instant,
};

use anyhow::Result;

use crate::{
    engine::{
        prefix_cache::PrefixCache,
        sampling::Sampler,
        stop::{StopMatcher, StopOutcome},
        Engine,
    },
    metrics::Metrics,
    model::tokenizer::IncrementalDecoder,
    queue::{FinishReason, GenerationEvent, Job},
};

pub fn run_engine_loop(mut engine: Engine, jobs: Receiver<Job>, metrics: Arc<Metrics>, prefix_cache_bytes: usize) {
    let mut cache = PrefixCache::new(prefix_cache_bytes, metrics.clone());
    for job in jobs {
        metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
        metrics.queue_time.observe(job.arrived.elapsed());
        if job.events.is_closed() {
            metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // A bug in one generation must not take the engine thread, and so every later request,
        // down with it: the KV state lives per job, so the engine is usable afterwards.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_job(&mut engine, &mut cache, &job, &metrics)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => format!("{e:#}"),
            Err(panic) => {
                cache = PrefixCache::new(prefix_cache_bytes, metrics.clone());
                format!("internal error: {}", panic.downcast_ref::<&str>().copied().or(panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("panic"))
            }
        };
        tracing::error!("generation failed: {failure}");
        let _ = job.events.send(GenerationEvent::Failed(failure));
    }
}

enum Outcome {
    Finished(FinishReason),
    Cancelled,
}

fn run_job(engine: &mut Engine, cache: &mut PrefixCache, job: &Job, metrics: &Metrics) -> Result<()> {
    let request = &job.request;
    let tokenizer = engine.tokenizer.clone();
    let stop_ids: Vec<u32> =
        if request.ignore_eos { Vec::new() } else { engine.config.stop_token_ids.iter().chain(&engine.config.eos_token_ids).copied().collect() };
    let context = engine.config.context_length;
    let mut sampler = Sampler::new(request.sampling);
    let mut stops = StopMatcher::new(request.stop.clone());
    let mut decoder = IncrementalDecoder::default();
    let prompt = &request.prompt_ids;
    let mut seq = match cache.lookup(prompt) {
        Some(seq) => seq,
        None => engine.new_sequence(prompt.len() + request.max_tokens)?,
    };
    // The tokens whose KV `seq` holds, so the finished sequence can be cached.
    let mut fed: Vec<u32> = Vec::with_capacity(prompt.len() + request.max_tokens);
    fed.extend_from_slice(&prompt[..seq.len()]);
    let mut generated = 0usize;
    let mut last_token_at: Option<Instant> = None;
    metrics.prompt_tokens.fetch_add(request.prompt_ids.len() as u64, Ordering::Relaxed);

    let send = |text: String| -> bool { text.is_empty() || job.events.send(GenerationEvent::Text(text)).is_ok() };
    let mut next = engine.forward(&mut seq, &prompt[fed.len()..])?.to_vec();
    fed.extend_from_slice(&prompt[fed.len()..]);

    let outcome = loop {
        if job.events.is_closed() {
            break Outcome::Cancelled;
        }
        if Instant::now() >= job.deadline {
            break Outcome::Finished(FinishReason::Timeout);
        }
        let token = sampler.sample(&next);
        let now = Instant::now();
        match last_token_at {
            None => metrics.time_to_first_token.observe(now - job.arrived),
            Some(prev) => metrics.time_per_token.observe(now - prev),
        }
        last_token_at = Some(now);
        if stop_ids.contains(&token) {
            break Outcome::Finished(FinishReason::Stop);
        }
        generated += 1;
        metrics.generated_tokens.fetch_add(1, Ordering::Relaxed);
        let delta = decoder.push(&tokenizer, token)?;
        match stops.push(&delta) {
            StopOutcome::Stopped(text) => {
                send(text);
                break Outcome::Finished(FinishReason::Stop);
            }
            StopOutcome::Continue(text) => {
                if !send(text) {
                    break Outcome::Cancelled;
                }
            }
        }
        if generated >= request.max_tokens || seq.len() + 1 >= context {
            break Outcome::Finished(FinishReason::Length);
        }
        next.clear();
        next.extend_from_slice(engine.forward(&mut seq, &[token])?);
        fed.push(token);
    };
    cache.insert(fed, seq);

    match outcome {
        Outcome::Cancelled => {
            metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(generated, "client went away; generation stopped");
        }
        Outcome::Finished(reason) => {
            // Text held back as a possible stop-string start is real text once generation ended
            // another way (after a matched stop string the matcher holds nothing).
            send(stops.finish());
            let _ = job.events.send(GenerationEvent::Finished {
                reason,
                prompt_tokens: request.prompt_ids.len(),
                completion_tokens: generated,
            });
        }
    }
    Ok(())
}
