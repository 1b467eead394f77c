//! What `/metrics` shows, kept to the series an operator watches: requests by status, tokens in
//! and out, queue depth, latency histograms, the load gauges a router reads, and the per-owner
//! and acceptance series. `prometheus-client` writes them (the Prometheus text format 0.0.4:
//! names and their `_total` suffix, types, label escaping, cumulative buckets); this module only
//! says what each series is.
//!
//! The engine thread feeds plain atomics (one relaxed add per event, what a crate counter does
//! inside) so that its code needs no registry; each scrape reads them into constant series of a
//! registry built for that scrape, beside the crate's histograms and labelled families, which
//! are registered as they are (they are shared handles).

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use prometheus_client::{
    encoding::{prometheus_text, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        MetricType,
    },
    registry::Registry,
};

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A histogram with fixed buckets: of durations (in seconds) or of counts.
#[derive(Debug)]
pub struct Histogram(prometheus_client::metrics::histogram::Histogram);

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Self(prometheus_client::metrics::histogram::Histogram::new(
            bounds.iter().copied(),
        ))
    }

    pub fn observe(&self, value: Duration) {
        self.0.observe(value.as_secs_f64());
    }

    /// For histograms of counts.
    pub fn observe_count(&self, value: u64) {
        self.0.observe(value as f64);
    }
}

const LATENCY_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const TOKEN_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64,
];
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

pub struct Metrics {
    requests: Family<StatusLabel, Counter>,
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
    /// What an inference-aware router reads (see `register_load`): KV positions held by the
    /// requests in flight, out of `max_active × context_length`; bytes the prefix cache holds,
    /// out of its budget.
    pub kv_tokens: AtomicU64,
    pub kv_capacity_tokens: AtomicU64,
    pub prefix_cache_bytes: AtomicU64,
    pub prefix_cache_capacity_bytes: AtomicU64,
    /// Beaten by the engine thread while it makes progress; `/ready` reads its age.
    pub engine_heartbeat: crate::lifecycle::Heartbeat,
    /// Audit lines the writer thread had no room for (`http/audit.rs`).
    pub audit_lines_dropped: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
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
            decode_batch_size: Histogram::new(BATCH_BOUNDS),
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
            engine_heartbeat: Default::default(),
            audit_lines_dropped: AtomicU64::new(0),
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
        self.requests.get_or_create(&StatusLabel { status }).inc();
    }

    /// The engine's and the HTTP layer's series, as they are now. Help texts end without a
    /// period: the registry adds one.
    fn register(&self, registry: &mut Registry) {
        let load = |value: &AtomicU64| ConstCounter::new(value.load(Ordering::Relaxed));
        let level = |value: &AtomicI64| ConstGauge::new(value.load(Ordering::Relaxed));
        registry.register(
            "ghostline_requests",
            "HTTP requests answered, by status code",
            self.requests.clone(),
        );
        for (name, help, value) in [
            (
                "ghostline_prompt_tokens",
                "Prompt tokens of the requests admitted (cached or not)",
                &self.prompt_tokens,
            ),
            (
                "ghostline_generated_tokens",
                "Tokens generated",
                &self.generated_tokens,
            ),
            (
                "ghostline_cancelled",
                "Generations stopped because the client went away",
                &self.cancelled,
            ),
            (
                "ghostline_prefix_cache_hits",
                "Requests that reused a cached KV prefix",
                &self.prefix_cache_hits,
            ),
            (
                "ghostline_prefix_cache_misses",
                "Requests prefilled from scratch",
                &self.prefix_cache_misses,
            ),
            (
                "ghostline_prefix_cache_reused_tokens",
                "Prompt tokens not prefilled thanks to the prefix cache",
                &self.prefix_cache_reused_tokens,
            ),
        ] {
            registry.register(name, help, load(value));
        }
        registry.register(
            "ghostline_queue_depth",
            "Requests waiting for the engine",
            level(&self.queue_depth),
        );
        for (name, help, value) in [
            (
                "ghostline_decode_batch_rebuilds",
                "Times the decode batch's KV buffers were rebuilt because requests joined or left",
                &self.batch_rebuilds,
            ),
            (
                "ghostline_draft_tokens",
                "Tokens guessed by prompt lookup and checked by the model in a decode step",
                &self.draft_tokens,
            ),
            (
                "ghostline_draft_accepted_tokens",
                "Guessed tokens the model confirmed (decode steps saved)",
                &self.draft_accepted,
            ),
            (
                "ghostline_prefill_graph_tokens",
                "Prompt tokens prefilled on the model's prefill graph (CPU, passes of 64 tokens or more)",
                &self.prefill_graph_tokens,
            ),
            (
                "ghostline_prefilled_tokens",
                "Prompt tokens run through the model, finished requests or not (the rest came from the prefix cache)",
                &self.prefilled_tokens,
            ),
            (
                "ghostline_audit_lines_dropped",
                "Audit lines dropped because the audit log's writer was too far behind (a slow disk)",
                &self.audit_lines_dropped,
            ),
        ] {
            registry.register(name, help, load(value));
        }
        registry.register(
            "ghostline_active_requests",
            "Requests admitted by the engine (prefilling or decoding)",
            level(&self.active_requests),
        );
        registry.register(
            "ghostline_decode_batch",
            "Requests in the decode batch now",
            level(&self.decode_batch),
        );
        registry.register(
            "ghostline_engine_heartbeat_age_seconds",
            "Time since the engine thread last showed progress (it beats every step, and every 50 ms when idle); /ready says 503 past --engine-stall-limit",
            ConstGauge::new(self.engine_heartbeat.age().as_secs_f64()),
        );
        for (name, help, histogram) in [
            (
                "ghostline_decode_batch_size",
                "Sequences advanced by each decode forward pass",
                &self.decode_batch_size,
            ),
            (
                "ghostline_decode_batch_rebuild_seconds",
                "Time to rebuild the decode batch's KV buffers on a join or leave",
                &self.batch_rebuild_time,
            ),
            (
                "ghostline_time_to_first_token_seconds",
                "From request arrival to the first generated token",
                &self.time_to_first_token,
            ),
            (
                "ghostline_time_per_output_token_seconds",
                "Time between consecutive generated tokens",
                &self.time_per_token,
            ),
            (
                "ghostline_queue_time_seconds",
                "Time a request waited before the engine took it",
                &self.queue_time,
            ),
        ] {
            registry.register(name, help, histogram.0.clone());
        }
        self.register_load(registry);
    }

    /// The gauges an inference-aware router or autoscaler scrapes, named and scaled like
    /// vLLM's (`vllm:num_requests_waiting`, `vllm:num_requests_running`,
    /// `vllm:kv_cache_usage_perc`, a fraction from 0 to 1) so that a router configured by
    /// metric name (the Gateway API Inference Extension's endpoint picker, KEDA, an HPA on
    /// custom metrics) needs only the names changed. deploy/README.md has the mapping.
    fn register_load(&self, registry: &mut Registry) {
        let fraction = |used: &AtomicU64, capacity: &AtomicU64| {
            let capacity = capacity.load(Ordering::Relaxed);
            ConstGauge::new(if capacity == 0 {
                0.0
            } else {
                (used.load(Ordering::Relaxed) as f64 / capacity as f64).min(1.0)
            })
        };
        registry.register(
            "ghostline_num_requests_waiting",
            "Requests queued for the engine, not yet admitted",
            ConstGauge::new(self.queue_depth.load(Ordering::Relaxed).max(0)),
        );
        registry.register(
            "ghostline_num_requests_running",
            "Requests the engine is prefilling or decoding",
            ConstGauge::new(self.active_requests.load(Ordering::Relaxed).max(0)),
        );
        registry.register(
            "ghostline_kv_cache_usage_perc",
            "KV positions held by running requests, as a fraction (0-1) of max-active x context length",
            fraction(&self.kv_tokens, &self.kv_capacity_tokens),
        );
        registry.register(
            "ghostline_prefix_cache_usage_perc",
            "Bytes held by the prefix cache, as a fraction (0-1) of --prefix-cache-mb",
            fraction(&self.prefix_cache_bytes, &self.prefix_cache_capacity_bytes),
        );
    }
}

/// The whole `/metrics` text: the engine's and HTTP layer's series, the acceptance series, and
/// with a key file (`streams`: each owner's requests in flight now) the per-owner series.
pub fn render(
    metrics: &Metrics,
    owners: &OwnerMetrics,
    streams: Option<&[(Arc<str>, u32)]>,
) -> String {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    owners.register_suggestions(&mut registry);
    if let Some(streams) = streams {
        owners.register(&mut registry, streams);
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut text, &registry);
    text
}

// ---- Per-owner counters (API key owners) ----------------------------------------------------
// Labelled by the owner's name from the key file, never by a key. Kept apart from `Metrics`:
// the HTTP layer (auth, audit) feeds them, the engine never sees them.

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OwnerLabel {
    owner: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OwnerStatus {
    owner: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OwnerLimit {
    owner: String,
    limit: &'static str,
}

#[derive(Default)]
pub struct OwnerMetrics {
    requests: Family<OwnerStatus, Counter>,
    limited: Family<OwnerLimit, Counter>,
    prompt_tokens: Family<OwnerLabel, Counter>,
    cached_tokens: Family<OwnerLabel, Counter>,
    generated_tokens: Family<OwnerLabel, Counter>,
    /// Acceptance counters that ghostline-lsp sends with `shareStats`
    /// (`http/suggestion_stats.rs`), by owner and language; kept in order, and saturating,
    /// and written out per scrape.
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

impl OwnerMetrics {
    pub fn count_request(&self, owner: &str, status: u16) {
        let label = OwnerLabel {
            owner: owner.to_string(),
        };
        // An owner's token series start at 0 with its first request, so that a rate over
        // them starts there too.
        for tokens in [
            &self.prompt_tokens,
            &self.cached_tokens,
            &self.generated_tokens,
        ] {
            let _ = tokens.get_or_create(&label);
        }
        self.requests
            .get_or_create(&OwnerStatus {
                owner: label.owner,
                status,
            })
            .inc();
    }

    pub fn count_limited(&self, owner: &str, limit: &'static str) {
        self.limited
            .get_or_create(&OwnerLimit {
                owner: owner.to_string(),
                limit,
            })
            .inc();
    }

    pub fn count_usage(&self, owner: &str, usage: &crate::queue::Usage) {
        let label = OwnerLabel {
            owner: owner.to_string(),
        };
        for (tokens, n) in [
            (&self.prompt_tokens, usage.prompt_tokens),
            (&self.cached_tokens, usage.cached_tokens),
            (&self.generated_tokens, usage.completion_tokens),
        ] {
            tokens.get_or_create(&label).inc_by(n as u64);
        }
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

    /// The acceptance series (whether or not the server has a key file: without one,
    /// everything is the owner `anonymous`'s).
    fn register_suggestions(&self, registry: &mut Registry) {
        let all = self.suggestions.lock().unwrap_or_else(|e| e.into_inner());
        let rows = |value: fn(&SuggestionCounts) -> u64| {
            CounterRows(
                all.iter()
                    .map(|((owner, language), c)| (owner_language(owner, language), value(c)))
                    .collect(),
            )
        };
        registry.register(
            "ghostline_suggestions_shown",
            "Suggestions shown in editors (ghostline-lsp with shareStats), by key owner and language",
            rows(|c| c.shown),
        );
        registry.register(
            "ghostline_suggestions_accepted",
            "Suggestions accepted whole, by key owner and language",
            rows(|c| c.accepted),
        );
        registry.register(
            "ghostline_suggestions_partially_accepted",
            "Suggestions of which a word or line was accepted, by key owner and language",
            rows(|c| c.partial),
        );
        registry.register(
            "ghostline_suggestion_latency_seconds",
            "Time from a completion request's arrival in ghostline-lsp to the suggestion shown, by key owner and language",
            SumCountRows(
                all.iter()
                    .map(|((owner, language), c)| {
                        (
                            owner_language(owner, language),
                            c.latency_ms_sum as f64 / 1000.0,
                            c.latency_count,
                        )
                    })
                    .collect(),
            ),
        );
    }

    /// The per-owner series; `streams` is each owner's requests in flight now.
    fn register(&self, registry: &mut Registry, streams: &[(Arc<str>, u32)]) {
        registry.register(
            "ghostline_owner_requests",
            "API requests answered, by key owner and status code",
            self.requests.clone(),
        );
        registry.register(
            "ghostline_owner_rate_limited",
            "Requests refused with 429, by key owner and the limit they hit (rpm, streams, tpm)",
            self.limited.clone(),
        );
        registry.register(
            "ghostline_owner_prompt_tokens",
            "Prompt tokens of finished requests, by key owner",
            self.prompt_tokens.clone(),
        );
        registry.register(
            "ghostline_owner_cached_tokens",
            "Prompt tokens served by the owner's prefix-cache partition, by key owner",
            self.cached_tokens.clone(),
        );
        registry.register(
            "ghostline_owner_generated_tokens",
            "Generated tokens of finished requests, by key owner",
            self.generated_tokens.clone(),
        );
        let active = Family::<OwnerLabel, Gauge>::default();
        for (owner, n) in streams {
            active
                .get_or_create(&OwnerLabel {
                    owner: owner.to_string(),
                })
                .set(i64::from(*n));
        }
        registry.register(
            "ghostline_owner_active_requests",
            "Completion requests in flight, by key owner",
            active,
        );
    }
}

type OwnerLanguage = [(&'static str, String); 2];

fn owner_language(owner: &str, language: &str) -> OwnerLanguage {
    [
        ("owner", owner.to_string()),
        ("language", language.to_string()),
    ]
}

/// A labelled counter family read out of a store of its own at scrape time, rows in the
/// store's order.
#[derive(Debug)]
struct CounterRows(Vec<(OwnerLanguage, u64)>);

impl EncodeMetric for CounterRows {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, value) in &self.0 {
            encoder
                .encode_family(labels)?
                .encode_counter::<NoLabelSet, _, u64>(value, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// A sum and a count per row (clients send totals, not observations): a histogram with only
/// its `+Inf` bucket, which is what a summary without quantiles says (the crate has no summary
/// type); readers take `_sum / _count`.
#[derive(Debug)]
struct SumCountRows(Vec<(OwnerLanguage, f64, u64)>);

impl EncodeMetric for SumCountRows {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, sum, count) in &self.0 {
            encoder
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(*sum, *count, &[], None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::{render, Metrics, OwnerMetrics, SuggestionCounts};
    use crate::queue::Usage;
    use std::{
        collections::BTreeMap,
        sync::{atomic::Ordering, Arc},
        time::Duration,
    };

    /// One sample line: its name, labels (in order) and value.
    type Sample = (String, Vec<(String, String)>, f64);

    /// Reads `text` as Prometheus' text format 0.0.4 parser does, strictly: every sample
    /// belongs to the family of the `# TYPE` line before it (a counter's or gauge's name is the
    /// family's, a histogram's is the family's with `_bucket`, `_sum` or `_count`), labels are
    /// quoted with escapes, values are numbers, and each histogram series ends with a `+Inf`
    /// bucket equal to its count. Returns each family's type and samples.
    fn parse_strictly(text: &str) -> BTreeMap<String, (String, Vec<Sample>)> {
        let mut families: BTreeMap<String, (String, Vec<Sample>)> = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect(line);
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(
                    families
                        .insert(name.to_string(), (kind.to_string(), Vec::new()))
                        .is_none(),
                    "family {name} declared twice"
                );
                current = Some(name.to_string());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let sample = parse_sample(line);
            let family = current
                .as_ref()
                .unwrap_or_else(|| panic!("{line} before any TYPE"));
            let (kind, samples) = families.get_mut(family).unwrap();
            let allowed = match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| sample.0 == format!("{family}{s}")),
                _ => &sample.0 == family,
            };
            assert!(allowed, "{line} is not of the {kind} family {family}");
            samples.push(sample);
        }
        for (family, (kind, samples)) in &families {
            if kind != "histogram" {
                continue;
            }
            for (name, labels, count) in samples.iter().filter(|s| s.0.ends_with("_count")) {
                let inf = samples.iter().find(|(n, l, _)| {
                    n == &format!("{family}_bucket")
                        && l.last() == Some(&("le".to_string(), "+Inf".to_string()))
                        && l[..l.len() - 1] == labels[..]
                });
                assert_eq!(inf.map(|s| s.2), Some(*count), "{name} {labels:?}");
            }
        }
        families
    }

    fn parse_sample(line: &str) -> Sample {
        let name_end = line.find(['{', ' ']).expect(line);
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad name in {line}"
        );
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            rest = inner;
            while !rest.starts_with('}') {
                let (key, after) = rest.split_once("=\"").expect(line);
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next().expect(line) {
                        (i, '"') => break i,
                        (_, '\\') => match chars.next().expect(line).1 {
                            'n' => value.push('\n'),
                            c @ ('\\' | '"') => value.push(c),
                            c => panic!("bad escape \\{c} in {line}"),
                        },
                        (_, c) => value.push(c),
                    }
                };
                labels.push((key.to_string(), value));
                rest = &after[end + 1..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
            rest = &rest[1..];
        }
        let value = rest.strip_prefix(' ').expect(line);
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        (name.to_string(), labels, value)
    }

    /// A server's worth of every series: engine counters, histograms, owners, acceptance.
    fn busy() -> (Metrics, OwnerMetrics) {
        let metrics = Metrics::default();
        metrics.count_request(200);
        metrics.count_request(200);
        metrics.count_request(503);
        metrics.generated_tokens.fetch_add(7, Ordering::Relaxed);
        metrics.queue_depth.store(3, Ordering::Relaxed);
        metrics.active_requests.store(2, Ordering::Relaxed);
        metrics
            .time_to_first_token
            .observe(Duration::from_millis(30));
        metrics.decode_batch_size.observe_count(1);
        metrics.decode_batch_size.observe_count(2);
        let owners = OwnerMetrics::default();
        owners.count_request("alice", 200);
        owners.count_request("alice", 429);
        owners.count_limited("alice", "rpm");
        owners.count_usage(
            "alice",
            &Usage {
                prompt_tokens: 10,
                cached_tokens: 4,
                completion_tokens: 8,
                ..Usage::default()
            },
        );
        owners.count_suggestions(
            "alice",
            "rust",
            &SuggestionCounts {
                shown: 10,
                accepted: 4,
                partial: 2,
                latency_ms_sum: 1000,
                latency_count: 10,
            },
        );
        (metrics, owners)
    }

    /// Every series that a reader in this repository uses (tests of both programs, deploy/
    /// manifests and dashboard, README, tests/eval and scripts), by its type.
    const READ: &[(&str, &str)] = &[
        ("ghostline_requests_total", "counter"),
        ("ghostline_prompt_tokens_total", "counter"),
        ("ghostline_generated_tokens_total", "counter"),
        ("ghostline_cancelled_total", "counter"),
        ("ghostline_prefix_cache_hits_total", "counter"),
        ("ghostline_prefix_cache_misses_total", "counter"),
        ("ghostline_prefix_cache_reused_tokens_total", "counter"),
        ("ghostline_decode_batch_rebuilds_total", "counter"),
        ("ghostline_draft_tokens_total", "counter"),
        ("ghostline_draft_accepted_tokens_total", "counter"),
        ("ghostline_prefill_graph_tokens_total", "counter"),
        ("ghostline_prefilled_tokens_total", "counter"),
        ("ghostline_audit_lines_dropped_total", "counter"),
        ("ghostline_queue_depth", "gauge"),
        ("ghostline_active_requests", "gauge"),
        ("ghostline_decode_batch", "gauge"),
        ("ghostline_engine_heartbeat_age_seconds", "gauge"),
        ("ghostline_num_requests_waiting", "gauge"),
        ("ghostline_num_requests_running", "gauge"),
        ("ghostline_kv_cache_usage_perc", "gauge"),
        ("ghostline_prefix_cache_usage_perc", "gauge"),
        ("ghostline_decode_batch_size", "histogram"),
        ("ghostline_decode_batch_rebuild_seconds", "histogram"),
        ("ghostline_time_to_first_token_seconds", "histogram"),
        ("ghostline_time_per_output_token_seconds", "histogram"),
        ("ghostline_queue_time_seconds", "histogram"),
        ("ghostline_owner_requests_total", "counter"),
        ("ghostline_owner_rate_limited_total", "counter"),
        ("ghostline_owner_prompt_tokens_total", "counter"),
        ("ghostline_owner_cached_tokens_total", "counter"),
        ("ghostline_owner_generated_tokens_total", "counter"),
        ("ghostline_owner_active_requests", "gauge"),
        ("ghostline_suggestions_shown_total", "counter"),
        ("ghostline_suggestions_accepted_total", "counter"),
        ("ghostline_suggestions_partially_accepted_total", "counter"),
        ("ghostline_suggestion_latency_seconds", "histogram"),
    ];

    #[test]
    fn the_exposition_parses_and_has_every_series_its_readers_use() {
        let (metrics, owners) = busy();
        let streams: Vec<(Arc<str>, u32)> = vec![("alice".into(), 1)];
        let text = render(&metrics, &owners, Some(&streams));
        let families = parse_strictly(&text);
        for (name, kind) in READ {
            let family = families.get(*name).map(|(k, _)| k.as_str());
            assert_eq!(family, Some(*kind), "{name} in:\n{text}");
        }
        // An independent parser reads the same text, and agrees on types and values.
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let value = |name: &str, label: Option<(&str, &str)>| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
                .map(|s| s.value.clone())
        };
        use prometheus_parse::Value;
        assert_eq!(
            value("ghostline_requests_total", Some(("status", "200"))),
            Some(Value::Counter(2.0))
        );
        assert_eq!(
            value("ghostline_generated_tokens_total", None),
            Some(Value::Counter(7.0))
        );
        assert_eq!(
            value("ghostline_num_requests_waiting", None),
            Some(Value::Gauge(3.0))
        );
        assert!(matches!(
            value("ghostline_time_to_first_token_seconds", None),
            Some(Value::Histogram(ref b)) if b.len() == LATENCY_BUCKETS + 1
        ));
        // The lines readers compare whole, as they read before the crate wrote them.
        for line in [
            "ghostline_requests_total{status=\"503\"} 1",
            "ghostline_decode_batch_size_bucket{le=\"1\"} 1",
            "ghostline_decode_batch_size_bucket{le=\"2\"} 2",
            "ghostline_decode_batch_size_count 2",
            "ghostline_num_requests_waiting 3",
            "ghostline_num_requests_running 2",
            "ghostline_owner_requests_total{owner=\"alice\",status=\"429\"} 1",
            "ghostline_owner_rate_limited_total{owner=\"alice\",limit=\"rpm\"} 1",
            "ghostline_owner_generated_tokens_total{owner=\"alice\"} 8",
            "ghostline_owner_active_requests{owner=\"alice\"} 1",
            "ghostline_suggestions_shown_total{owner=\"alice\",language=\"rust\"} 10",
            "ghostline_suggestion_latency_seconds_sum{owner=\"alice\",language=\"rust\"} 1.0",
            "ghostline_suggestion_latency_seconds_count{owner=\"alice\",language=\"rust\"} 10",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }

    const LATENCY_BUCKETS: usize = super::LATENCY_BOUNDS.len();

    #[test]
    fn owner_series_only_with_a_key_file_and_label_values_escaped() {
        let (metrics, owners) = busy();
        let text = render(&metrics, &owners, None);
        assert!(!text.contains("ghostline_owner_"), "{text}");
        // An owner's name is the key file's to choose: quotes and backslashes stay in the label.
        owners.count_request("o\"dd\\", 200);
        let text = render(&metrics, &owners, Some(&[]));
        let families = parse_strictly(&text);
        let (_, samples) = &families["ghostline_owner_requests_total"];
        assert!(
            samples
                .iter()
                .any(|(_, labels, _)| labels[0] == ("owner".to_string(), "o\"dd\\".to_string())),
            "{text}"
        );
    }

    #[test]
    fn load_gauges_are_fractions_of_their_capacity() {
        let metrics = Metrics::default();
        let owners = OwnerMetrics::default();
        let gauge = |text: &str, name: &str| parse_strictly(text)[name].1[0].2;
        // Before the engine says its capacity: 0, not a division by zero.
        let text = render(&metrics, &owners, None);
        assert_eq!(gauge(&text, "ghostline_kv_cache_usage_perc"), 0.0);
        metrics
            .kv_capacity_tokens
            .store(8 * 4096, Ordering::Relaxed);
        metrics.kv_tokens.store(8192, Ordering::Relaxed);
        metrics
            .prefix_cache_capacity_bytes
            .store(1000, Ordering::Relaxed);
        metrics.prefix_cache_bytes.store(500, Ordering::Relaxed);
        let text = render(&metrics, &owners, None);
        assert_eq!(gauge(&text, "ghostline_kv_cache_usage_perc"), 0.25);
        assert_eq!(gauge(&text, "ghostline_prefix_cache_usage_perc"), 0.5);
    }
}
