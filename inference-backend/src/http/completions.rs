//! `POST /v1/completions`, streaming (SSE) or not.

use std::{
    convert::Infallible,
    sync::Arc,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    extract::State,
    Extension,
    http::StatusCode,
    response::{sse::Event, IntoResponse, Response, Sse},
    Json,
};
use futures_util::{stream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::{audit::AuditSlot, auth::Caller, error::ApiError, AppState, LoadedModel};
use crate::{
    queue::{GenerationEvent, Job, Usage},
    validation,
};

pub async fn completions(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    audit: Option<Extension<AuditSlot>>,
    body: Body,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let bytes = axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!("request body larger than {} bytes", state.max_body_bytes),
            )
        })?;
    let Some(model) = state.model.get() else {
        return Err(ApiError::overloaded("the model is still loading", 5));
    };
    let body = validation::parse_body(&bytes)?;
    let stream = body.stream.unwrap_or(false);
    let usage_chunk = body
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let mut request = validation::validate(body, &model.config, &model.tokenizer, &model.limits)?;
    let caller = caller.map(|Extension(c)| c);
    if let Some(caller) = &caller {
        // The owner's (or its group's) own part of the prefix cache.
        request.partition = caller.partition.clone();
    }
    let observer = Observer {
        caller,
        audit: audit.map(|Extension(a)| a),
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
    };
    if model.queue.submit(job).is_err() {
        return Err(ApiError::overloaded(
            "too many requests waiting; try again shortly",
            1,
        ));
    }
    let meta = ResponseMeta::new(model);
    Ok(if stream {
        stream_response(meta, receiver, usage_chunk, observer)
    } else {
        collect_response(meta, receiver, observer).await?
    })
}

/// Who learns how a request ended: the owner's tokens-per-minute window, the audit line.
struct Observer {
    caller: Option<Caller>,
    audit: Option<AuditSlot>,
}

impl Observer {
    fn finished(&self, reason: &crate::queue::FinishReason, usage: &Usage) {
        if let Some(caller) = &self.caller {
            caller.usage.record_tokens(usage.completion_tokens as u64);
        }
        if let Some(audit) = &self.audit {
            let reason = reason.as_str();
            let usage = *usage;
            audit.update(|r| {
                r.usage = Some(usage);
                r.finish_reason = Some(reason);
            });
        }
    }

    fn failed(&self) {
        if let Some(audit) = &self.audit {
            audit.update(|r| r.finish_reason = Some("error"));
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

    fn chunk(&self, text: &str, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish_reason}],
        })
    }
}

/// SSE chunks, then `[DONE]`. The chunk with the finish reason carries `usage` and `timings`;
/// with `stream_options.include_usage` a last chunk with no choices repeats them, as OpenAI's
/// API does.
fn stream_response(
    meta: ResponseMeta,
    receiver: mpsc::UnboundedReceiver<GenerationEvent>,
    usage_chunk: bool,
    observer: Observer,
) -> Response {
    // Dropping this stream (client gone) drops the receiver, which the engine notices between
    // prefill chunks and decode steps.
    let events = UnboundedReceiverStream::new(receiver).flat_map(move |event| {
        let mut chunks = Vec::with_capacity(2);
        match event {
            GenerationEvent::Text(text) => chunks.push(meta.chunk(&text, None)),
            GenerationEvent::Finished { reason, usage } => {
                observer.finished(&reason, &usage);
                let mut chunk = meta.chunk("", Some(reason.as_str()));
                add_usage(&mut chunk, &usage);
                chunks.push(chunk);
                if usage_chunk {
                    let mut chunk = meta.chunk("", None);
                    chunk["choices"] = json!([]);
                    add_usage(&mut chunk, &usage);
                    chunks.push(chunk);
                }
            }
            GenerationEvent::Failed(message) => {
                observer.failed();
                chunks.push(json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}}))
            }
        }
        stream::iter(chunks.into_iter().map(|data| Ok::<_, Infallible>(Event::default().data(data.to_string()))))
    });
    let done = stream::once(async { Ok::<_, Infallible>(Event::default().data("[DONE]")) });
    Sse::new(events.chain(done)).into_response()
}

async fn collect_response(
    meta: ResponseMeta,
    mut receiver: mpsc::UnboundedReceiver<GenerationEvent>,
    observer: Observer,
) -> Result<Response, ApiError> {
    let mut text = String::new();
    while let Some(event) = receiver.recv().await {
        match event {
            GenerationEvent::Text(piece) => text.push_str(&piece),
            GenerationEvent::Finished { reason, usage } => {
                observer.finished(&reason, &usage);
                let mut body = meta.chunk(&text, Some(reason.as_str()));
                add_usage(&mut body, &usage);
                return Ok(Json(body).into_response());
            }
            GenerationEvent::Failed(message) => {
                observer.failed();
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    message,
                ))
            }
        }
    }
    Err(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the engine stopped before finishing",
    ))
}

/// OpenAI's `usage` (with `prompt_tokens_details.cached_tokens`: prompt tokens served by the
/// prefix cache) and our `timings` (milliseconds: waiting for the engine, computing the uncached
/// prompt tokens, decoding), from which a client learns this server's speed.
fn add_usage(body: &mut Value, usage: &Usage) {
    body["usage"] = json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    });
    let round = |ms: f64| (ms * 10.0).round() / 10.0;
    body["timings"] = json!({
        "queue_ms": round(usage.queue_ms),
        "prefill_ms": round(usage.prefill_ms),
        "decode_ms": round(usage.decode_ms),
    });
}
