//! One completion request, top to bottom. Cheap steps run here on the async runtime; the
//! cursor analysis and the prompt run on the blocking pool (`blocking`), and a newer request
//! for the document, a `$/cancelRequest` or the deadline ends whichever step is running.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::gen_lsp_types::{Position, Uri};
use tower_lsp_server::Client;

use super::cursor::{analyze, cursor_line};
use super::memory::{RecentResult, ShownSuggestion};
use super::postprocess::{self, PostContext};
use super::prompt::{build_prompt_on_pool, stops};
use super::stop::{StopConfig, StopDetector};
use super::timings::{now_ns, RequestTiming};
use super::warm::{warm_next_tier, WarmTarget};
use super::{backend_config, report, Completer, Suggestion, Ticket};
use crate::backend::{affinity, BackendError, CompletionRequest, ModelInfo, Usage};
use crate::context::window::{following_lines, language_indent_unit, CursorContext};
use crate::edit::position_to_char;
use crate::session::{Document, Session};
use crate::settings::Settings;

use std::hash::{Hash, Hasher};

fn prompt_key(settings: &Settings, ctx: &CursorContext, multiline: bool) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        &settings.backend_url,
        &settings.model,
        &settings.fim_template,
        settings.max_tokens,
        settings.context_mode,
        settings.prompt_family,
    )
        .hash(&mut hasher);
    (&ctx.prefix, &ctx.suffix, multiline, settings.max_lines).hash(&mut hasher);
    hasher.finish()
}

fn instant_of(ns: u64) -> Instant {
    let now = now_ns();
    Instant::now() - Duration::from_nanos(now.saturating_sub(ns))
}

/// Resolves once a newer request for the same document has arrived (or it was closed).
pub(super) async fn until_superseded(requests: Option<watch::Receiver<u64>>, generation: u64) {
    let Some(mut requests) = requests else {
        return std::future::pending().await;
    };
    loop {
        if *requests.borrow_and_update() != generation {
            return;
        }
        if requests.changed().await.is_err() {
            return;
        }
    }
}

/// A token cancelled when a newer request for the document arrives (or it closes), or when
/// the returned guard is dropped: the request answered, or its future was dropped
/// (`$/cancelRequest`). Work on the blocking pool checks it.
fn request_cancellation(
    session: &Session,
    uri: &Uri,
    generation: u64,
) -> (CancellationToken, tokio_util::sync::DropGuard) {
    let cancel = CancellationToken::new();
    let requests = session.watch_requests(uri);
    let watcher = cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = until_superseded(requests, generation) => watcher.cancel(),
            () = watcher.cancelled() => {}
        }
    });
    (cancel.clone(), cancel.drop_guard())
}

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

enum Outcome {
    Generated(Box<Generated>),
    Failed(BackendError),
    Superseded,
}

/// A suggestion at `position` in `document`: the snapshot of `uri` taken when the request
/// arrived (`server::dispatch`), so edits read after it do not reach its prompt; `None`
/// means "as it is now" (and the request is not open when that is none).
pub async fn suggest(
    completer: &Arc<Completer>,
    session: &Arc<Session>,
    client: &Client,
    uri: &Uri,
    position: Position,
    ticket: Ticket,
    document: Option<Document>,
) -> Option<Suggestion> {
    let arrived_ns = if ticket.arrived_ns == 0 {
        now_ns()
    } else {
        ticket.arrived_ns
    };
    let record = |source, before_backend_ns, after_last_token_ns| {
        completer.timings.record(RequestTiming {
            source,
            before_backend_ns,
            after_last_token_ns,
            total_ns: now_ns().saturating_sub(arrived_ns),
        });
    };
    // Request → document snapshot (O(1)).
    let settings = session.settings();
    if session.is_excluded(uri) {
        // A secret file (`.env`, a key, ...): nothing of it may go into a prompt.
        tracing::debug!("no suggestions in {uri}: excluded");
        return None;
    }
    let document = document.or_else(|| session.snapshot(uri))?;
    if crate::privacy::rope_is_credential_file(&document.rope) {
        // A credential file under an ordinary name (netrc, kubeconfig, `kind: Secret`, ...).
        tracing::debug!("no suggestions in {uri}: its content is a credential file");
        return None;
    }
    if !document.gets_suggestions() {
        tracing::debug!("no suggestions in {uri}: over the document limits");
        return None;
    }
    if !settings.language_enabled(&document.language_id) {
        return None;
    }
    let rope = document.rope.clone();
    let cursor = position_to_char(&rope, position, session.encoding());
    if crate::privacy::cursor_in_secret(&rope, cursor) {
        // Inside a key or password: whatever a prompt held, a suggestion would guess at it.
        tracing::debug!("no suggestions in {uri}: the cursor is inside a secret");
        return None;
    }
    let (line_index, line_prefix, rest_of_line) = cursor_line(&rope, cursor);
    let language_id = document.language_id.clone();
    let make = |text: String, replaced_chars: usize, line_prefix: String| Suggestion {
        rope: rope.clone(),
        text,
        cursor_char: cursor,
        replace_end_char: cursor + replaced_chars,
        line_prefix,
        language_id: language_id.clone(),
        typed_through: false,
    };

    // A suggestion on screen asked for again where it was shown, nothing typed since: the person
    // is resting, and once the backend holds a larger prompt there (the warm-ups after an answer
    // climb while nothing happens) they get the better answer, computed within a longer target
    // (`pacing::REST_PATIENCE`): they have the old one to read meanwhile.
    let rest_target_ms = settings.latency_target_ms * super::pacing::REST_PATIENCE;
    let at_rest = std::cell::Cell::new(None);
    let better_at_rest = |tier: usize, multiline: bool| {
        at_rest.set(completer.pacing.rest_tier(
            uri.0.as_str(),
            line_index,
            tier,
            settings.context_tokens,
            multiline,
            rest_target_ms,
        ));
        at_rest.get().is_some()
    };
    // Memory: the user is typing what the suggestion on screen says.
    let typed = completer.lock_memory().typed_through(
        uri,
        line_index,
        &line_prefix,
        &rest_of_line,
        better_at_rest,
    );
    let at_rest = at_rest.get();
    if let Some(typed) = typed {
        record("typing", 0, 0);
        return Some(Suggestion {
            typed_through: true,
            ..make(typed.text, typed.replaced_chars, line_prefix)
        });
    }

    // Cursor analysis, on the pool: reparse, single or multi-line, the window.
    let (cancel, _cancel_when_done) = request_cancellation(session, uri, ticket.generation);
    let analysis = completer
        .pool
        .run(&cancel, {
            let session = session.clone();
            let uri = uri.clone();
            let settings = settings.clone();
            let (line_prefix, rest_of_line) = (line_prefix.clone(), rest_of_line.clone());
            move || {
                analyze(
                    &session,
                    &uri,
                    document,
                    cursor,
                    &settings,
                    &line_prefix,
                    &rest_of_line,
                )
            }
        })
        .await?;
    let document = analysis.document;
    let multiline = analysis.multiline;
    let ctx = analysis.window;

    // Memory: the same prompt answered lately.
    let key = prompt_key(&settings, &ctx, multiline);
    // (The same prompt answered lately, when a keystroke and its backspace came back to it.)
    let recent = completer
        .lock_memory()
        .recent(key)
        .filter(|_| at_rest.is_none());
    let remember = |result: &RecentResult, tier: usize| {
        completer.lock_memory().remember_shown(
            uri,
            ShownSuggestion {
                line_index,
                line_before_anchor: line_prefix.clone(),
                rest_of_line: rest_of_line.clone(),
                text: result.text.clone(),
                replaced_chars: result.replaced_chars,
                tier,
                multiline,
            },
        );
    };
    if let Some((tier, recent)) = recent {
        record("recent", 0, 0);
        let recent = recent?;
        remember(&recent, tier);
        return Some(make(
            recent.text,
            recent.replaced_chars,
            line_prefix.clone(),
        ));
    }
    if completer.backend.health.is_backing_off() {
        if let Some(error) = completer.backend.health.take_unreported() {
            report::failure(completer, client, &settings, &error).await;
        }
        return None;
    }

    if settings.debounce_ms > 0 {
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(Duration::from_millis(settings.debounce_ms)) => {}
        }
    }

    // Prompt, backend stream and stop rules, within the deadline.
    let deadline = instant_of(arrived_ns) + Duration::from_millis(settings.timeout_ms);
    let stop = StopConfig {
        multiline,
        max_lines: settings.max_lines,
        indent_based: analysis.indent_based,
        line_prefix: line_prefix.clone(),
        next_line: ctx.next_line.clone(),
        next_line_indent: ctx.next_line_indent,
        markers: Vec::new(), // the model's, once it is known (`generate`)
    };
    // `timeoutMs` bounds the wait for the suggestion to start; once text is streaming it may
    // finish (within as long again), so a suggestion that is coming is not thrown away.
    let streaming = AtomicBool::new(false);
    let generation = generate(
        completer, session, &settings, uri, &document, cursor, stop, arrived_ns, &streaming,
        &cancel, at_rest,
    );
    tokio::pin!(generation);
    let mut deadline = deadline;
    let mut extended = false;
    let outcome = loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break Outcome::Superseded,
            () = tokio::time::sleep_until(deadline.into()) => {
                if extended || !streaming.load(Ordering::Relaxed) {
                    break Outcome::Failed(BackendError::Timeout);
                }
                extended = true;
                deadline += Duration::from_millis(settings.timeout_ms);
            }
            outcome = &mut generation => break outcome,
        }
    };

    let generated = match outcome {
        Outcome::Superseded => {
            completer.pacing.abandoned(uri.0.as_str());
            return None;
        }
        Outcome::Failed(error) => {
            completer.pacing.abandoned(uri.0.as_str());
            report::failure(completer, client, &settings, &error).await;
            return None;
        }
        Outcome::Generated(generated) => generated,
    };
    completer.pacing.ended(
        uri.0.as_str(),
        generated.tier,
        true,
        generated.usage.as_ref(),
    );
    warm_next_tier(
        completer,
        session,
        &settings,
        &generated,
        WarmTarget {
            uri: uri.clone(),
            document: document.clone(),
            cursor,
            line_index,
            generation: ticket.generation,
            multiline: generated.multiline,
        },
    );
    report::success(completer, client, &settings).await;

    // Post-processing → response.
    // Code stays out of logs unless asked for at trace level.
    tracing::trace!("raw suggestion {:?}", generated.raw);
    let following = following_lines(&rope, line_index, 4);
    let finished = postprocess::finish(
        &generated.raw,
        &PostContext {
            line_prefix: &line_prefix,
            rest_of_line: &rest_of_line,
            indent_unit: language_indent_unit(&document.language_id, ctx.indent_unit),
            following: &following,
            line_comment: crate::syntax::line_comment(&document.language_id),
        },
    )
    .map(|f| RecentResult {
        text: f.text,
        replaced_chars: f.replaced_chars,
    });
    completer
        .lock_memory()
        .remember_recent(key, generated.tier, finished.clone());
    let after_last_token_ns = now_ns().saturating_sub(generated.last_token_ns);
    record("backend", generated.before_backend_ns, after_last_token_ns);
    let finished = finished?;
    remember(&finished, generated.tier);
    Some(make(
        finished.text,
        finished.replaced_chars,
        line_prefix.clone(),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn generate(
    completer: &Arc<Completer>,
    session: &Arc<Session>,
    settings: &Arc<Settings>,
    uri: &Uri,
    document: &Document,
    cursor: usize,
    mut stop: StopConfig,
    arrived_ns: u64,
    streaming: &AtomicBool,
    cancel: &CancellationToken,
    rest_tier: Option<usize>,
) -> Outcome {
    let config = backend_config(settings);
    let model = match completer.backend.model(&config).await {
        Ok(model) => model,
        Err(error) => return Outcome::Failed(error),
    };
    if let Some((prefill, decode)) = model.speed {
        completer.pacing.reported(prefill, decode);
    }
    let line_index = document
        .rope
        .char_to_line(cursor.min(document.rope.len_chars()));
    // The tier a rest earned (see `suggest`), else the largest answered within the target.
    let tier = rest_tier.unwrap_or_else(|| {
        completer.pacing.choose(
            uri.0.as_str(),
            line_index,
            settings.context_tokens,
            stop.multiline,
            settings.latency_target_ms,
        )
    });
    tracing::debug!(tier, rest = rest_tier.is_some(), "prompt budget");
    let prompt = build_prompt_on_pool(
        completer, session, settings, &model, uri, document, cursor, tier, cancel, false,
    )
    .await;
    let Some(prompt) = prompt else {
        return Outcome::Superseded;
    };
    let uri = uri.0.as_str();
    let multiline = stop.multiline;
    let stops = stops(&model, &prompt, multiline);
    completer.pacing.sent(prompt.sent(
        uri,
        tier,
        line_index,
        prompt.stable.as_deref().unwrap_or(""),
    ));
    let request = CompletionRequest {
        model: model.id.clone(),
        prompt: prompt.rendered.prompt,
        suffix: prompt.rendered.suffix,
        max_tokens: settings.max_tokens,
        temperature: settings.temperature,
        top_p: 1.0,
        stop: stops,
        seed: 0,
        stream: true,
        stream_options: Some(serde_json::json!({"include_usage": true})),
        token_healing: (model.token_healing && prompt.stable.is_some()).then_some(true),
    };
    let before_backend_ns = now_ns().saturating_sub(arrived_ns);
    let affinity = affinity::key(&session.roots(), uri);
    let mut stream = match completer.backend.stream(&config, &request, &affinity).await {
        Ok(stream) => stream,
        Err(error) => return Outcome::Failed(error),
    };
    stop.markers = model.markers.ending_markers();
    let mut detector = StopDetector::new(stop);
    let mut last_token_ns = now_ns();
    loop {
        match stream.next_text().await {
            Ok(Some(delta)) => {
                streaming.store(true, Ordering::Relaxed);
                last_token_ns = now_ns();
                tracing::trace!("delta {delta:?}");
                if detector.push(&delta) {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => return Outcome::Failed(error),
        }
    }
    // Our own work starts when the stream is done: after the last token when the stop
    // rules end it, after the final chunk and `[DONE]` when the backend does.
    last_token_ns = last_token_ns.max(now_ns());
    let usage = stream.usage().cloned();
    // Dropping the stream here closes the connection, which stops the backend decoding.
    drop(stream);
    Outcome::Generated(Box::new(Generated {
        raw: detector.finish(),
        before_backend_ns,
        last_token_ns,
        tier,
        multiline,
        usage,
        model,
    }))
}
