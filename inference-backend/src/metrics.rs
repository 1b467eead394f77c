//! Prometheus text exposition, kept to the handful of series an operator watches: requests by
//! status, tokens in and out, queue depth, and latency histograms.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of observed values in units of 1/`scale` (microseconds for durations).
    sum: AtomicU64,
    scale: f64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self::with_scale(bounds, 1e6)
    }

    fn with_scale(bounds: &'static [f64], scale: f64) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            scale,
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: Duration) {
        self.observe_value(value.as_secs_f64());
    }

    /// For histograms of counts (made with scale 1).
    pub fn observe_count(&self, value: u64) {
        self.observe_value(value as f64);
    }

    fn observe_value(&self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if value <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum
            .fetch_add((value * self.scale).round() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum.load(Ordering::Relaxed) as f64 / self.scale
        );
        let _ = writeln!(out, "{name}_count {total}");
    }
}

const LATENCY_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const TOKEN_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64,
];
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

pub struct Metrics {
    requests: Mutex<BTreeMap<u16, u64>>,
    pub prompt_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub queue_depth: AtomicI64,
    pub cancelled: AtomicU64,
    pub prefix_cache_hits: AtomicU64,
    pub prefix_cache_misses: AtomicU64,
    pub prefix_cache_reused_tokens: AtomicU64,
    pub time_to_first_token: Histogram,
    pub time_per_token: Histogram,
    pub queue_time: Histogram,
    /// Requests admitted (prefilling or decoding).
    pub active_requests: AtomicI64,
    /// Rows of the decode batch now.
    pub decode_batch: AtomicI64,
    /// Sequences advanced by each decode forward pass (1 on the interleaved path).
    pub decode_batch_size: Histogram,
    pub batch_rebuilds: AtomicU64,
    pub batch_rebuild_time: Histogram,
    /// Prompt-lookup drafting: tokens guessed and checked in a decode step, and how many of them
    /// the model confirmed (each one a decode step saved).
    pub draft_tokens: AtomicU64,
    pub draft_accepted: AtomicU64,
    /// Prompt tokens prefilled on the model's prefill graph.
    pub prefill_graph_tokens: AtomicU64,
    /// Prompt tokens actually run through the model (not served by the prefix cache), whether
    /// or not their request then finished: what each keystroke costs the engine.
    pub prefilled_tokens: AtomicU64,
    /// Measured speed (tokens per second, f64 bits), a moving average over finished requests,
    /// first set by the warm-up run; `/v1/models` reports it so clients can size prompts.
    prefill_rate: AtomicU64,
    decode_rate: AtomicU64,
    /// What an inference-aware router reads (see `render_load`): KV positions held by the
    /// requests in flight, out of `max_active × context_length`; bytes the prefix cache holds,
    /// out of its budget.
    pub kv_tokens: AtomicU64,
    pub kv_capacity_tokens: AtomicU64,
    pub prefix_cache_bytes: AtomicU64,
    pub prefix_cache_capacity_bytes: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            prompt_tokens: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            queue_depth: AtomicI64::new(0),
            cancelled: AtomicU64::new(0),
            prefix_cache_hits: AtomicU64::new(0),
            prefix_cache_misses: AtomicU64::new(0),
            prefix_cache_reused_tokens: AtomicU64::new(0),
            time_to_first_token: Histogram::new(LATENCY_BOUNDS),
            time_per_token: Histogram::new(TOKEN_BOUNDS),
            queue_time: Histogram::new(LATENCY_BOUNDS),
            active_requests: AtomicI64::new(0),
            decode_batch: AtomicI64::new(0),
            decode_batch_size: Histogram::with_scale(BATCH_BOUNDS, 1.0),
            batch_rebuilds: AtomicU64::new(0),
            batch_rebuild_time: Histogram::new(TOKEN_BOUNDS),
            draft_tokens: AtomicU64::new(0),
            draft_accepted: AtomicU64::new(0),
            prefill_graph_tokens: AtomicU64::new(0),
            prefilled_tokens: AtomicU64::new(0),
            prefill_rate: AtomicU64::new(0),
            decode_rate: AtomicU64::new(0),
            kv_tokens: AtomicU64::new(0),
            kv_capacity_tokens: AtomicU64::new(0),
            prefix_cache_bytes: AtomicU64::new(0),
            prefix_cache_capacity_bytes: AtomicU64::new(0),
        }
    }
}

/// Weight of a new measurement in the speed averages: a few requests move them, one outlier
/// (a pass that shared the cores with another process) does not.
const RATE_WEIGHT: f64 = 0.25;

fn blend(slot: &AtomicU64, tokens: usize, seconds: f64) {
    if tokens == 0 || seconds <= 0.0 {
        return;
    }
    let sample = tokens as f64 / seconds;
    let old = f64::from_bits(slot.load(Ordering::Relaxed));
    let new = if old > 0.0 {
        old + RATE_WEIGHT * (sample - old)
    } else {
        sample
    };
    slot.store(new.to_bits(), Ordering::Relaxed);
}

impl Metrics {
    /// Adds one measured prefill (`tokens` run in `seconds`) to the prefill speed average.
    /// Passes of fewer than 32 tokens say more about per-pass overhead than speed: skipped.
    pub fn observe_prefill(&self, tokens: usize, seconds: f64) {
        if tokens >= 32 {
            blend(&self.prefill_rate, tokens, seconds);
        }
    }

    /// Adds one measured decode (`tokens` generated in `seconds`) to the decode speed average.
    pub fn observe_decode(&self, tokens: usize, seconds: f64) {
        if tokens >= 2 {
            blend(&self.decode_rate, tokens, seconds);
        }
    }

    /// (prefill, decode) tokens per second; 0 where nothing was measured yet.
    pub fn speed(&self) -> (f64, f64) {
        (
            f64::from_bits(self.prefill_rate.load(Ordering::Relaxed)),
            f64::from_bits(self.decode_rate.load(Ordering::Relaxed)),
        )
    }

    pub fn count_request(&self, status: u16) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry(status).or_default() += 1;
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP ghostline_requests_total HTTP requests answered, by status code.\n");
        out.push_str("# TYPE ghostline_requests_total counter\n");
        if let Ok(map) = self.requests.lock() {
            for (status, count) in map.iter() {
                let _ = writeln!(
                    out,
                    "ghostline_requests_total{{status=\"{status}\"}} {count}"
                );
            }
        }
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "ghostline_prompt_tokens_total",
            "Prompt tokens of the requests admitted (cached or not).",
            self.prompt_tokens.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ghostline_generated_tokens_total",
            "Tokens generated.",
            self.generated_tokens.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ghostline_cancelled_total",
            "Generations stopped because the client went away.",
            self.cancelled.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ghostline_prefix_cache_hits_total",
            "Requests that reused a cached KV prefix.",
            self.prefix_cache_hits.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ghostline_prefix_cache_misses_total",
            "Requests prefilled from scratch.",
            self.prefix_cache_misses.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ghostline_prefix_cache_reused_tokens_total",
            "Prompt tokens not prefilled thanks to the prefix cache.",
            self.prefix_cache_reused_tokens.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP ghostline_queue_depth Requests waiting for the engine.\n# TYPE ghostline_queue_depth gauge\nghostline_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "ghostline_decode_batch_rebuilds_total",
            "Times the decode batch's KV buffers were rebuilt because requests joined or left.",
            self.batch_rebuilds.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ghostline_draft_tokens_total",
            "Tokens guessed by prompt lookup and checked by the model in a decode step.",
            self.draft_tokens.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ghostline_draft_accepted_tokens_total",
            "Guessed tokens the model confirmed (decode steps saved).",
            self.draft_accepted.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ghostline_prefill_graph_tokens_total",
            "Prompt tokens prefilled on the model's prefill graph (CPU, passes of 64 tokens or more).",
            self.prefill_graph_tokens.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ghostline_prefilled_tokens_total",
            "Prompt tokens run through the model, finished requests or not (the rest came from the prefix cache).",
            self.prefilled_tokens.load(Ordering::Relaxed),
        );
        let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            &mut out,
            "ghostline_active_requests",
            "Requests admitted by the engine (prefilling or decoding).",
            self.active_requests.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ghostline_decode_batch",
            "Requests in the decode batch now.",
            self.decode_batch.load(Ordering::Relaxed),
        );
        self.decode_batch_size.render(
            &mut out,
            "ghostline_decode_batch_size",
            "Sequences advanced by each decode forward pass.",
        );
        self.batch_rebuild_time.render(
            &mut out,
            "ghostline_decode_batch_rebuild_seconds",
            "Time to rebuild the decode batch's KV buffers on a join or leave.",
        );
        self.time_to_first_token.render(
            &mut out,
            "ghostline_time_to_first_token_seconds",
            "From request arrival to the first generated token.",
        );
        self.time_per_token.render(
            &mut out,
            "ghostline_time_per_output_token_seconds",
            "Time between consecutive generated tokens.",
        );
        self.queue_time.render(
            &mut out,
            "ghostline_queue_time_seconds",
            "Time a request waited before the engine took it.",
        );
        self.render_load(&mut out);
        out
    }

    /// The gauges an inference-aware router or autoscaler scrapes, named and scaled like
    /// vLLM's (`vllm:num_requests_waiting`, `vllm:num_requests_running`,
    /// `vllm:kv_cache_usage_perc`, a fraction from 0 to 1) so that a router configured by
    /// metric name (the Gateway API Inference Extension's endpoint picker, KEDA, an HPA on
    /// custom metrics) needs only the names changed. deploy/README.md has the mapping.
    fn render_load(&self, out: &mut String) {
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let fraction = |used: &AtomicU64, capacity: &AtomicU64| {
            let capacity = capacity.load(Ordering::Relaxed);
            if capacity == 0 {
                0.0
            } else {
                (used.load(Ordering::Relaxed) as f64 / capacity as f64).min(1.0)
            }
        };
        gauge(
            out,
            "ghostline_num_requests_waiting",
            "Requests queued for the engine, not yet admitted.",
            self.queue_depth.load(Ordering::Relaxed).max(0) as f64,
        );
        gauge(
            out,
            "ghostline_num_requests_running",
            "Requests the engine is prefilling or decoding.",
            self.active_requests.load(Ordering::Relaxed).max(0) as f64,
        );
        gauge(
            out,
            "ghostline_kv_cache_usage_perc",
            "KV positions held by running requests, as a fraction (0-1) of max-active x context length.",
            fraction(&self.kv_tokens, &self.kv_capacity_tokens),
        );
        gauge(
            out,
            "ghostline_prefix_cache_usage_perc",
            "Bytes held by the prefix cache, as a fraction (0-1) of --prefix-cache-mb.",
            fraction(&self.prefix_cache_bytes, &self.prefix_cache_capacity_bytes),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;
    use std::sync::atomic::Ordering;

    #[test]
    fn load_gauges_are_fractions_of_their_capacity() {
        let metrics = Metrics::default();
        let text = metrics.render();
        // Before the engine says its capacity: 0, not a division by zero.
        assert!(
            text.contains("\nghostline_kv_cache_usage_perc 0\n"),
            "{text}"
        );
        metrics
            .kv_capacity_tokens
            .store(8 * 4096, Ordering::Relaxed);
        metrics.kv_tokens.store(8192, Ordering::Relaxed);
        metrics
            .prefix_cache_capacity_bytes
            .store(1000, Ordering::Relaxed);
        metrics.prefix_cache_bytes.store(500, Ordering::Relaxed);
        metrics.queue_depth.store(3, Ordering::Relaxed);
        metrics.active_requests.store(2, Ordering::Relaxed);
        let text = metrics.render();
        for line in [
            "ghostline_kv_cache_usage_perc 0.25",
            "ghostline_prefix_cache_usage_perc 0.5",
            "ghostline_num_requests_waiting 3",
            "ghostline_num_requests_running 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }
}

// ---- Per-owner counters (API key owners) ----------------------------------------------------
// Labelled by the owner's name from the key file, never by a key. Kept apart from `Metrics`:
// the HTTP layer (auth, audit) feeds them, the engine never sees them.

#[derive(Default)]
struct OwnerCounters {
    requests: BTreeMap<u16, u64>,
    limited: BTreeMap<&'static str, u64>,
    prompt_tokens: u64,
    cached_tokens: u64,
    generated_tokens: u64,
}

#[derive(Default)]
pub struct OwnerMetrics {
    owners: Mutex<BTreeMap<String, OwnerCounters>>,
    /// Acceptance counters that ghostline-lsp sends with `shareStats`
    /// (`http/suggestion_stats.rs`), by owner and language.
    suggestions: Mutex<BTreeMap<(String, String), SuggestionCounts>>,
}

/// One owner's and language's acceptance counters (`POST /v1/ghostline/suggestion-stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuggestionCounts {
    pub shown: u64,
    pub accepted: u64,
    pub partial: u64,
    pub latency_ms_sum: u64,
    pub latency_count: u64,
}

/// Languages kept per owner; more are counted under "other" (the series stay bounded).
const MAX_SUGGESTION_LANGUAGES_PER_OWNER: usize = 64;

/// One owner's series rows (labels, value) from its counters.
type OwnerRows = dyn Fn(&str, &OwnerCounters) -> Vec<(String, u64)>;

impl OwnerMetrics {
    fn with(&self, owner: &str, f: impl FnOnce(&mut OwnerCounters)) {
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        match owners.get_mut(owner) {
            Some(counters) => f(counters),
            None => f(owners.entry(owner.to_string()).or_default()),
        }
    }

    pub fn count_request(&self, owner: &str, status: u16) {
        self.with(owner, |c| *c.requests.entry(status).or_default() += 1);
    }

    pub fn count_limited(&self, owner: &str, limit: &'static str) {
        self.with(owner, |c| *c.limited.entry(limit).or_default() += 1);
    }

    pub fn count_usage(&self, owner: &str, usage: &crate::queue::Usage) {
        self.with(owner, |c| {
            c.prompt_tokens += usage.prompt_tokens as u64;
            c.cached_tokens += usage.cached_tokens as u64;
            c.generated_tokens += usage.completion_tokens as u64;
        });
    }

    /// Adds what one client sent for `owner` and `language` (already checked).
    pub fn count_suggestions(&self, owner: &str, language: &str, counts: &SuggestionCounts) {
        let mut all = self.suggestions.lock().unwrap_or_else(|e| e.into_inner());
        let key = (owner.to_string(), language.to_string());
        let key = if all.contains_key(&key)
            || all.keys().filter(|(o, _)| o == owner).count() < MAX_SUGGESTION_LANGUAGES_PER_OWNER
        {
            key
        } else {
            (owner.to_string(), "other".to_string())
        };
        let c = all.entry(key).or_default();
        c.shown = c.shown.saturating_add(counts.shown);
        c.accepted = c.accepted.saturating_add(counts.accepted);
        c.partial = c.partial.saturating_add(counts.partial);
        c.latency_ms_sum = c.latency_ms_sum.saturating_add(counts.latency_ms_sum);
        c.latency_count = c.latency_count.saturating_add(counts.latency_count);
    }

    /// Appends the acceptance series (whether or not the server has a key file: without one,
    /// everything is the owner `anonymous`'s).
    pub fn render_suggestions(&self, out: &mut String) {
        let all = self.suggestions.lock().unwrap_or_else(|e| e.into_inner());
        let mut family =
            |name: &str, kind: &str, help: &str, value: &dyn Fn(&SuggestionCounts) -> String| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for ((owner, language), counts) in all.iter() {
                    let _ = writeln!(
                        out,
                        "{name}{{owner=\"{owner}\",language=\"{language}\"}} {}",
                        value(counts)
                    );
                }
            };
        family(
            "ghostline_suggestions_shown_total",
            "counter",
            "Suggestions shown in editors (ghostline-lsp with shareStats), by key owner and language.",
            &|c| c.shown.to_string(),
        );
        family(
            "ghostline_suggestions_accepted_total",
            "counter",
            "Suggestions accepted whole, by key owner and language.",
            &|c| c.accepted.to_string(),
        );
        family(
            "ghostline_suggestions_partially_accepted_total",
            "counter",
            "Suggestions of which a word or line was accepted, by key owner and language.",
            &|c| c.partial.to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP ghostline_suggestion_latency_seconds Time from a completion request's arrival in ghostline-lsp to the suggestion shown, by key owner and language.\n# TYPE ghostline_suggestion_latency_seconds summary"
        );
        for ((owner, language), c) in all.iter() {
            let labels = format!("owner=\"{owner}\",language=\"{language}\"");
            let _ = writeln!(
                out,
                "ghostline_suggestion_latency_seconds_sum{{{labels}}} {}\nghostline_suggestion_latency_seconds_count{{{labels}}} {}",
                c.latency_ms_sum as f64 / 1000.0,
                c.latency_count
            );
        }
    }

    /// Appends the per-owner series; `streams` is each owner's requests in flight now.
    pub fn render(&self, out: &mut String, streams: &[(std::sync::Arc<str>, u32)]) {
        let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        };
        let each = |f: &OwnerRows| owners.iter().flat_map(|(o, c)| f(o, c)).collect::<Vec<_>>();
        family(
            "ghostline_owner_requests_total",
            "counter",
            "API requests answered, by key owner and status code.",
            each(&|o, c| {
                c.requests
                    .iter()
                    .map(|(s, n)| (format!("owner=\"{o}\",status=\"{s}\""), *n))
                    .collect()
            }),
        );
        family(
            "ghostline_owner_rate_limited_total",
            "counter",
            "Requests refused with 429, by key owner and the limit they hit (rpm, streams, tpm).",
            each(&|o, c| {
                c.limited
                    .iter()
                    .map(|(l, n)| (format!("owner=\"{o}\",limit=\"{l}\""), *n))
                    .collect()
            }),
        );
        family(
            "ghostline_owner_prompt_tokens_total",
            "counter",
            "Prompt tokens of finished requests, by key owner.",
            each(&|o, c| vec![(format!("owner=\"{o}\""), c.prompt_tokens)]),
        );
        family(
            "ghostline_owner_cached_tokens_total",
            "counter",
            "Prompt tokens served by the owner's prefix-cache partition, by key owner.",
            each(&|o, c| vec![(format!("owner=\"{o}\""), c.cached_tokens)]),
        );
        family(
            "ghostline_owner_generated_tokens_total",
            "counter",
            "Generated tokens of finished requests, by key owner.",
            each(&|o, c| vec![(format!("owner=\"{o}\""), c.generated_tokens)]),
        );
        family(
            "ghostline_owner_active_requests",
            "gauge",
            "Completion requests in flight, by key owner.",
            streams
                .iter()
                .map(|(o, n)| (format!("owner=\"{o}\""), u64::from(*n)))
                .collect(),
        );
    }
}
