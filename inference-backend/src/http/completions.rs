//! `POST /v1/completions`, streaming (SSE) or not.

use std::{
    convert::Infallible,
    sync::Arc,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    extract::State,
    http::StatusCode,
    response::{sse::Event, IntoResponse, Response, Sse},
    Extension, Json,
};
use futures_util::{stream, StreamExt};
use ghostline_protocol as wire;
use tokio::sync::{mpsc, watch};

use super::{
    audit::{hold_until_body_ends, AuditSlot},
    auth::Caller,
    error::ApiError,
    keys::TokenReservation,
    AppState, LoadedModel,
};
use crate::{
    lifecycle::{self, Phase},
    queue::{GenerationEvent, Job, Progress, Usage},
    validation::{self, GenerationRequest},
};

pub async fn completions(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    audit: Option<Extension<AuditSlot>>,
    body: Body,
) -> Response {
    let started = start_generation(
        &state,
        caller.map(|Extension(c)| c),
        audit.map(|Extension(a)| a),
        body,
        |model, bytes| {
            let body = validation::parse_body(bytes)?;
            let stream = body.stream.unwrap_or(false);
            let usage_chunk = body
                .stream_options
                .as_ref()
                .is_some_and(|o| o.include_usage);
            let request =
                validation::validate(body, &model.config, &model.tokenizer, &model.limits)?;
            Ok(((stream, usage_chunk), request))
        },
    )
    .await;
    let ((stream, usage_chunk), started) = match started {
        Ok(started) => started,
        Err(refused) => return refused,
    };
    let Started {
        receiver,
        observer,
        phase,
        in_flight,
        model,
    } = started;
    let meta = ResponseMeta::new(model);
    let response = if stream {
        stream_response(meta, receiver, usage_chunk, phase, observer)
    } else {
        match collect_response(meta, receiver, phase, observer).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        }
    };
    hold_until_body_ends(response, in_flight)
}

/// A generation admitted and queued: its events, who learns how it ended, and the guard that
/// keeps the server draining until its answer ends.
pub(super) struct Started<'a> {
    pub receiver: mpsc::UnboundedReceiver<GenerationEvent>,
    pub observer: Observer,
    pub phase: watch::Receiver<Phase>,
    pub in_flight: crate::lifecycle::InFlight,
    pub model: &'a LoadedModel,
}

/// What every generation endpoint (`/v1/completions`, `/infill`) does before its own answer
/// format: the body within its deadline, admission (draining, loading), parsing and
/// tokenising off the async threads (`parse`, which also returns what the endpoint needs
/// later), the owner's prefix-cache partition and token reservation, and the queue. A refusal
/// comes back as the response to send.
pub(super) async fn start_generation<'a, T: Send + 'static>(
    state: &'a Arc<AppState>,
    caller: Option<Caller>,
    audit: Option<AuditSlot>,
    body: Body,
    parse: impl FnOnce(&LoadedModel, &[u8]) -> Result<(T, GenerationRequest), ApiError> + Send + 'static,
) -> Result<(T, Started<'a>), Response> {
    let arrived = Instant::now();
    // The headers came within --header-timeout; the body has --body-timeout more. A client
    // that sends a byte now and then no longer holds its connection for ever.
    let bytes = match tokio::time::timeout(
        state.body_timeout,
        axum::body::to_bytes(body, state.max_body_bytes),
    )
    .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!("request body larger than {} bytes", state.max_body_bytes),
            )
            .into_response())
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                format!(
                    "the request body did not arrive within {:.0} s",
                    state.body_timeout.as_secs_f64()
                ),
            )
            .closing()
            .into_response())
        }
    };
    if !state.lifecycle.accepting() {
        return Err(ApiError::overloaded(
            if state.lifecycle.engine_down() {
                "the engine stopped; the server is restarting"
            } else {
                "the server is shutting down"
            },
            5,
        )
        .into_response());
    }
    let Some(model) = state.model.get() else {
        return Err(ApiError::overloaded("the model is still loading", 5).into_response());
    };
    // Counted until the answer's body ends: draining waits for it.
    let in_flight = state.lifecycle.begin_completion();
    // Parsing and tokenising a large body (megabytes) takes seconds of CPU: it runs on the
    // blocking pool, so /health and other clients' streams keep going meanwhile.
    // At most two large bodies are tokenised at once: each takes hundreds of megabytes while
    // it runs, so a burst of them waits here rather than growing the process without bound.
    let large = bytes.len() >= LARGE_BODY_BYTES;
    let permit = if large {
        match LARGE_BODIES.acquire().await {
            Ok(permit) => Some(permit),
            Err(_) => {
                return Err(
                    ApiError::overloaded("cannot take a large request now", 5).into_response()
                )
            }
        }
    } else {
        None
    };
    let parsing = state.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let model = parsing.model.get().expect("checked above");
        let parsed = parse(model, &bytes);
        drop(bytes);
        if large {
            give_back_memory();
        }
        parsed
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!("reading the request failed: {e}"),
        )
        .into_response()
    })?;
    let (extra, mut request) = parsed.map_err(IntoResponse::into_response)?;
    if let Some(caller) = &caller {
        // The owner's (or its group's) own part of the prefix cache.
        request.partition = caller.partition.clone();
    }
    // The owner's tokens-per-minute: this request holds its max_tokens until its answer ends.
    let reservation = match &caller {
        Some(caller) => match caller
            .usage
            .reserve(request.max_tokens as u64, &caller.limits)
        {
            Ok(reservation) => Some(reservation),
            Err((limit, retry_after)) => {
                return Err(super::auth::refuse_over_limit(
                    state,
                    &caller.owner,
                    audit.as_ref(),
                    limit,
                    retry_after,
                ))
            }
        },
        None => None,
    };
    let progress = Arc::new(Progress::default());
    let observer = Observer {
        audit,
        reservation: std::sync::Mutex::new(reservation),
        progress: progress.clone(),
        ended: std::sync::atomic::AtomicBool::new(false),
    };
    if request.prompt_truncated {
        tracing::debug!(
            tokens = request.prompt_ids.len(),
            "prompt truncated to fit the context window"
        );
    }
    let (events, receiver) = mpsc::unbounded_channel();
    let job = Job {
        request,
        events,
        arrived,
        deadline: arrived + state.request_timeout,
        progress,
    };
    if model.queue.submit(job).is_err() {
        return Err(
            ApiError::overloaded("too many requests waiting; try again shortly", 1).into_response(),
        );
    }
    Ok((
        extra,
        Started {
            receiver,
            observer,
            phase: state.lifecycle.subscribe(),
            in_flight,
            model,
        },
    ))
}

/// Bodies from this size on are tokenised two at a time and leave memory trimmed after.
const LARGE_BODY_BYTES: usize = 256 * 1024;
static LARGE_BODIES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Hands the heap pages freed after tokenising a large body back to the system (glibc keeps
/// them otherwise, and a few megabyte prompts left the process a gigabyte larger for good).
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: glibc's malloc_trim only releases free memory; it takes no pointers.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Who learns how a request ended: the owner's tokens-per-minute window, the audit line. An
/// answer whose client left before its end (an editor's superseded keystroke) is settled when
/// the answer is dropped, from what the engine had generated by then.
pub(super) struct Observer {
    audit: Option<AuditSlot>,
    reservation: std::sync::Mutex<Option<TokenReservation>>,
    progress: Arc<Progress>,
    ended: std::sync::atomic::AtomicBool,
}

impl Observer {
    fn settle(&self, generated: usize) {
        let reservation = self
            .reservation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(reservation) = reservation {
            reservation.settle(generated as u64);
        }
    }

    pub(super) fn finished(&self, reason: &crate::queue::FinishReason, usage: &Usage) {
        self.ended.store(true, std::sync::atomic::Ordering::SeqCst);
        self.settle(usage.completion_tokens);
        if let Some(audit) = &self.audit {
            let reason = reason.as_str();
            let usage = *usage;
            audit.update(|r| {
                r.usage = Some(usage);
                r.finish_reason = Some(reason);
            });
        }
    }

    /// What the engine has done so far (counts; no timings).
    pub(super) fn progress_usage(&self) -> Usage {
        self.progress.usage()
    }

    pub(super) fn failed(&self) {
        self.ended.store(true, std::sync::atomic::Ordering::SeqCst);
        self.settle(self.progress.completion_tokens());
        if let Some(audit) = &self.audit {
            let usage = self.progress.usage();
            audit.update(|r| {
                r.usage = Some(usage);
                r.finish_reason = Some("error");
            });
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        if self.ended.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        // The client left (or the server ended the answer) before the end event was read.
        self.settle(self.progress.completion_tokens());
        if let Some(audit) = &self.audit {
            let usage = self.progress.usage();
            audit.update(|r| {
                r.usage = Some(usage);
                r.finish_reason.get_or_insert("abandoned");
            });
        }
    }
}

struct ResponseMeta {
    id: String,
    created: u64,
    model: String,
}

impl ResponseMeta {
    fn new(model: &LoadedModel) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            id: format!("cmpl-{:x}", now.as_nanos()),
            created: now.as_secs(),
            model: model.config.name.clone(),
        }
    }

    fn chunk(&self, text: &str, finish_reason: Option<&str>) -> wire::Completion {
        wire::Completion {
            id: self.id.clone(),
            object: "text_completion".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![wire::Choice {
                text: text.to_string(),
                index: 0,
                logprobs: None,
                finish_reason: finish_reason.map(str::to_string),
            }],
            usage: None,
            timings: None,
        }
    }
}

/// SSE chunks, then `[DONE]`. The chunk with the finish reason carries `usage` and `timings`;
/// with `stream_options.include_usage` a last chunk with no choices repeats them, as OpenAI's
/// API does. A stream always ends with a finish reason or an error event before `[DONE]`: the
/// engine stopping, or the end of the shutdown grace period, gives the error event.
fn stream_response(
    meta: ResponseMeta,
    receiver: mpsc::UnboundedReceiver<GenerationEvent>,
    usage_chunk: bool,
    phase: watch::Receiver<Phase>,
    observer: Observer,
) -> Response {
    let observer = Arc::new(observer);
    let meta = Arc::new(meta);
    // Dropping this stream (client gone, or its end) drops the receiver, which the engine
    // notices between prefill chunks and decode steps.
    let events = stream::unfold(
        Some((receiver, phase)),
        move |state| {
            let meta = meta.clone();
            let observer = observer.clone();
            async move {
                let (mut receiver, mut phase) = state?;
                let event = tokio::select! {
                    event = receiver.recv() => event,
                    () = lifecycle::ending(&mut phase) => {
                        return Some((vec![error_chunk("the server is shutting down; the generation was stopped")], None));
                    }
                };
                let Some(event) = event else {
                    return Some((vec![error_chunk("the engine stopped before finishing")], None));
                };
                let mut chunks = Vec::with_capacity(2);
                let last = match event {
                    GenerationEvent::Text(text) => {
                        chunks.push(event_data(&meta.chunk(&text, None)));
                        false
                    }
                    GenerationEvent::Finished { reason, usage } => {
                        observer.finished(&reason, &usage);
                        let mut chunk = meta.chunk("", Some(reason.as_str()));
                        add_usage(&mut chunk, &usage);
                        chunks.push(event_data(&chunk));
                        if usage_chunk {
                            let mut chunk = meta.chunk("", None);
                            chunk.choices.clear();
                            add_usage(&mut chunk, &usage);
                            chunks.push(event_data(&chunk));
                        }
                        true
                    }
                    GenerationEvent::Failed(message) => {
                        observer.failed();
                        chunks.push(error_chunk(&message));
                        true
                    }
                };
                Some((chunks, (!last).then_some((receiver, phase))))
            }
        },
    )
    .flat_map(|chunks| {
        stream::iter(
            chunks
                .into_iter()
                .map(|data| Ok::<_, Infallible>(Event::default().data(data))),
        )
    });
    let done = stream::once(async { Ok::<_, Infallible>(Event::default().data(wire::DONE)) });
    Sse::new(events.chain(done)).into_response()
}

fn error_chunk(message: &str) -> String {
    event_data(&wire::ErrorBody::new("server_error", message, None))
}

/// One event's `data:`: the JSON of a chunk or an error (plain structs: serializing cannot fail).
fn event_data(data: &impl serde::Serialize) -> String {
    serde_json::to_string(data).unwrap_or_default()
}

async fn collect_response(
    meta: ResponseMeta,
    mut receiver: mpsc::UnboundedReceiver<GenerationEvent>,
    mut phase: watch::Receiver<Phase>,
    observer: Observer,
) -> Result<Response, ApiError> {
    let mut text = String::new();
    loop {
        let event = tokio::select! {
            event = receiver.recv() => event,
            () = lifecycle::ending(&mut phase) => {
                return Err(ApiError::overloaded("the server is shutting down; the generation was stopped", 5));
            }
        };
        match event {
            Some(GenerationEvent::Text(piece)) => text.push_str(&piece),
            Some(GenerationEvent::Finished { reason, usage }) => {
                observer.finished(&reason, &usage);
                let mut body = meta.chunk(&text, Some(reason.as_str()));
                add_usage(&mut body, &usage);
                return Ok(Json(body).into_response());
            }
            Some(GenerationEvent::Failed(message)) => {
                observer.failed();
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    message,
                ));
            }
            None => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the engine stopped before finishing",
                ))
            }
        }
    }
}

/// OpenAI's `usage` (with `prompt_tokens_details.cached_tokens`: prompt tokens served by the
/// prefix cache) and our `timings` (milliseconds: waiting for the engine, computing the uncached
/// prompt tokens, decoding), from which a client learns this server's speed.
fn add_usage(body: &mut wire::Completion, usage: &Usage) {
    body.usage = Some(wire::Usage {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        total_tokens: usage.prompt_tokens + usage.completion_tokens,
        prompt_tokens_details: Some(wire::PromptTokensDetails {
            cached_tokens: usage.cached_tokens,
        }),
    });
    let round = |ms: f64| Some((ms * 10.0).round() / 10.0);
    body.timings = Some(wire::Timings {
        queue_ms: round(usage.queue_ms),
        prefill_ms: round(usage.prefill_ms),
        decode_ms: round(usage.decode_ms),
    });
}
