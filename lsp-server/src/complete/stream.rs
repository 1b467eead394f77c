//! The stream stage: the model asked for (`/v1/models`, cached), the prompt stage run, the
//! completion streamed from the backend through the stop rules (`stop`), all within the
//! request's deadline. A newer request for the document, a `$/cancelRequest` or the deadline
//! ends it wherever it is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::analyze::{Analysis, CursorLine};
use super::prompt::{prompt_for_request, stops, Prompt};
use super::report;
use super::request::RequestContext;
use super::stop::{StopConfig, StopDetector};
use super::timings::now_ns;
use crate::backend::Usage;
use crate::backend::{affinity, BackendError, CompletionRequest, CompletionStream, ModelInfo};
use crate::context::template::FimMarkers;
use crate::settings::Settings;
use ghostline_protocol::{OneOrMany, StreamOptions};

/// What the backend wrote for a request, and what it cost.
pub(super) struct Generated {
    pub raw: String,
    pub before_backend_ns: u64,
    pub last_token_ns: u64,
    /// The prompt's budget tier (see `pacing`), and what the backend reported it cost.
    pub tier: usize,
    pub multiline: bool,
    pub usage: Option<Usage>,
    pub model: ModelInfo,
}

/// How the stream stage ended.
pub(super) enum Outcome {
    Generated(Box<Generated>),
    Failed(BackendError),
    /// A newer request for the document, or a cancellation.
    Superseded,
}

/// Whether the request goes on to the backend: not while it is backing off after failures
/// (the failure not yet told is reported now), and only after the debounce (`debounceMs`)
/// without a newer request.
pub(super) async fn before_sending(ctx: &RequestContext<'_>) -> Option<()> {
    let (completer, settings) = (&ctx.env.completer, &ctx.env.settings);
    if completer.backend.health.is_backing_off() {
        if let Some(error) = completer.backend.health.take_unreported() {
            report::failure(completer, ctx.client, settings, &error).await;
        }
        return None;
    }
    if settings.debounce_ms > 0 {
        tokio::select! {
            () = ctx.cancel.cancelled() => return None,
            () = tokio::time::sleep(Duration::from_millis(settings.debounce_ms)) => {}
        }
    }
    Some(())
}

/// The prompt and stream stages within the deadline. `timeoutMs` bounds the wait for the
/// suggestion to start; once text is streaming it may finish (within as long again), so a
/// suggestion that is coming is not thrown away.
pub(super) async fn generate_within_deadline(
    ctx: &RequestContext<'_>,
    analysis: &Analysis,
    line: &CursorLine,
    rest_tier: Option<usize>,
) -> Outcome {
    let streaming = AtomicBool::new(false);
    let generation = generate(ctx, analysis, line, &streaming, rest_tier);
    tokio::pin!(generation);
    let mut deadline = ctx.deadline();
    let mut extended = false;
    loop {
        tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => return Outcome::Superseded,
            () = tokio::time::sleep_until(deadline.into()) => {
                if extended || !streaming.load(Ordering::Relaxed) {
                    return Outcome::Failed(BackendError::Timeout);
                }
                extended = true;
                deadline += Duration::from_millis(ctx.env.settings.timeout_ms);
            }
            outcome = &mut generation => return outcome,
        }
    }
}

/// The model, the prompt, the request sent and its stream read through the stop rules.
async fn generate(
    ctx: &RequestContext<'_>,
    analysis: &Analysis,
    line: &CursorLine,
    streaming: &AtomicBool,
    rest_tier: Option<usize>,
) -> Outcome {
    let (completer, settings) = (&ctx.env.completer, &ctx.env.settings);
    let config = super::backend_config(settings);
    let model = match completer.backend.model(&config).await {
        Ok(model) => model,
        Err(error) => return Outcome::Failed(error),
    };
    if let Some((prefill, decode)) = model.speed {
        completer.pacing.reported(prefill, decode);
    }
    let Some((prompt, tier)) = prompt_for_request(ctx, &model, analysis, line, rest_tier).await
    else {
        return Outcome::Superseded;
    };
    let uri = ctx.uri.0.as_str();
    let multiline = analysis.multiline;
    completer.pacing.sent(prompt.sent(uri, tier, line.index));
    let request = completion_request(settings, &model, prompt, multiline);
    let before_backend_ns = now_ns().saturating_sub(ctx.ticket.arrived_ns);
    let affinity = affinity::key(&ctx.env.session.roots(), uri);
    let stream = match completer.backend.stream(&config, &request, &affinity).await {
        Ok(stream) => stream,
        Err(error) => return Outcome::Failed(error),
    };
    let mut stop = stop_config(settings, analysis, line);
    stop.markers = FimMarkers::reported(&model.fim).ending_markers();
    match read_until_stop(stream, StopDetector::new(stop), streaming).await {
        Ok((raw, last_token_ns, usage)) => Outcome::Generated(Box::new(Generated {
            raw,
            before_backend_ns,
            last_token_ns,
            tier,
            multiline,
            usage,
            model,
        })),
        Err(error) => Outcome::Failed(error),
    }
}

/// The stop rules for this request (the model's markers are added once it is known).
fn stop_config(settings: &Settings, analysis: &Analysis, line: &CursorLine) -> StopConfig {
    StopConfig {
        multiline: analysis.multiline,
        max_lines: settings.max_lines,
        indent_based: analysis.indent_based,
        line_prefix: line.prefix.clone(),
        next_line: analysis.window.next_line.clone(),
        next_line_indent: analysis.window.next_line_indent,
        markers: Vec::new(),
    }
}

/// The streamed completion request carrying `prompt` to `model`.
fn completion_request(
    settings: &Settings,
    model: &ModelInfo,
    prompt: Prompt,
    multiline: bool,
) -> CompletionRequest {
    let stops = stops(model, &prompt, multiline);
    CompletionRequest {
        model: Some(model.id.clone()),
        token_healing: (model.token_healing && prompt.stable.is_some()).then_some(true),
        prompt: OneOrMany::One(prompt.rendered.prompt),
        suffix: prompt.rendered.suffix,
        max_tokens: Some(settings.max_tokens.into()),
        temperature: Some(settings.temperature),
        top_p: Some(1.0),
        stop: Some(OneOrMany::Many(stops)),
        seed: Some(0),
        stream: Some(true),
        stream_options: Some(StreamOptions {
            include_usage: true,
        }),
        ..Default::default()
    }
}

/// Reads `stream` until the stop rules or the backend end it: the text, when our own work
/// started (after the last token when the stop rules end it, after the final chunk and
/// `[DONE]` when the backend does), and the usage the backend reported.
async fn read_until_stop(
    mut stream: CompletionStream,
    mut detector: StopDetector,
    streaming: &AtomicBool,
) -> Result<(String, u64, Option<Usage>), BackendError> {
    let mut last_token_ns = now_ns();
    while let Some(delta) = stream.next_text().await? {
        streaming.store(true, Ordering::Relaxed);
        last_token_ns = now_ns();
        tracing::trace!("delta {delta:?}");
        if detector.push(&delta) {
            break;
        }
    }
    last_token_ns = last_token_ns.max(now_ns());
    let usage = stream.usage().cloned();
    // Dropping the stream here closes the connection, which stops the backend decoding.
    drop(stream);
    Ok((detector.finish(), last_token_ns, usage))
}
