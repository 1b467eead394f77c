//! One HTTP request, followed: its id (the client's `X-Request-ID` when it is a valid one, else
//! one made here), a tracing span (debug) carrying it around everything logged while the request
//! is handled, a line when it arrives and one when the answer's body ends, and the id in the
//! answer's `X-Request-ID` header (streams included: the header goes out before the first event).
//! Request and answer bodies are never logged.
//!
//! The two lines of every request are at trace level (`GHOSTLINE_LOG` with
//! `ghostline_serve::http::request_id=trace` shows them): at debug, the line per request of 1,100
//! slow clients written to a piped stderr made the flood test in `tests/operators.rs` lose
//! `/health` answers on this 2-core machine under load (2 runs of 2 failed; a run with the lines
//! at trace and one without this layer passed). The audit line carries each request's id too.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{extract::Request, http::HeaderValue, middleware::Next, response::Response};
use ghostline_protocol::headers::{is_valid_request_id, REQUEST_ID};
use tracing::Instrument;

use super::audit::hold_until_body_ends;

/// The id of the request being handled, for handlers and layers that record it.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The client's id when it may be logged and echoed as it is; a fresh one otherwise.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_valid_request_id(id))
        .map_or_else(new_request_id, str::to_string)
}

/// `serve-<process tag>-<count>`: unique within this process, and across restarts by the tag.
fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static TAG: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let tag = TAG.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        (nanos as u32) ^ std::process::id().rotate_left(16)
    });
    format!("serve-{tag:08x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Logged, in the request's span, when the answer's body has been sent or dropped.
struct AnswerEnded {
    span: tracing::Span,
    status: u16,
    started: Instant,
}

impl Drop for AnswerEnded {
    fn drop(&mut self) {
        let _entered = self.span.enter();
        tracing::trace!(
            status = self.status,
            ms = self.started.elapsed().as_millis() as u64,
            "answer ended"
        );
    }
}

pub async fn follow_request(mut request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let span = tracing::debug_span!(
        "request",
        id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let header = HeaderValue::from_str(&id).ok();
    request.extensions_mut().insert(RequestId(id));
    let started = Instant::now();
    let mut response = async {
        tracing::trace!("received");
        next.run(request).await
    }
    .instrument(span.clone())
    .await;
    if let Some(header) = header {
        response.headers_mut().insert(REQUEST_ID, header);
    }
    let ended = AnswerEnded {
        span,
        status: response.status().as_u16(),
        started,
    };
    hold_until_body_ends(response, ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: &[u8]) -> Request {
        Request::builder()
            .header(REQUEST_ID, HeaderValue::from_bytes(value).unwrap())
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn a_valid_client_id_is_kept_and_any_other_replaced() {
        assert_eq!(request_id(&with_header(b"lsp-1f-7")), "lsp-1f-7");
        for bad in [&b"has space"[..], &[b'x'; 65][..], b"caf\xc3\xa9"] {
            let id = request_id(&with_header(bad));
            assert!(id.starts_with("serve-") && is_valid_request_id(&id), "{id}");
        }
        let fresh = request_id(&Request::new(axum::body::Body::empty()));
        assert!(fresh.starts_with("serve-"), "{fresh}");
        assert_ne!(fresh, new_request_id());
    }
}
