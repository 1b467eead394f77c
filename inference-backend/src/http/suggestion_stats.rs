//! `POST /v1/ghostline/suggestion-stats`: a team's acceptance counters, sent by ghostline-lsp
//! when its user turned `shareStats` on (off by default). Counts per language only: no text,
//! no path, no model. Behind the API key middleware: the counts go to the key's owner; on a
//! server without `--api-key-file`, to the owner `anonymous`. `/metrics` then shows
//! `ghostline_suggestions_shown_total{owner,language}` and its siblings (`metrics.rs`).
//!
//! The body is checked whole before anything is counted (a bad one changes nothing, 400):
//!
//! ```json
//! {"counts": [{"language": "rust", "shown": 3, "accepted": 1, "partial": 1,
//!              "latency_ms_sum": 420, "latency_count": 3}]}
//! ```
//!
//! at most `MAX_BODY_BYTES`, 1 to `MAX_LANGUAGES` entries with distinct languages of
//! `[a-z0-9_+-]{1,32}`, every count a whole number from 0 to `MAX_COUNT`, the latency sum at
//! most `MAX_LATENCY_MS` per counted latency; no other field anywhere.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use ghostline_protocol::stats::SuggestionStats;

use super::{auth::Caller, error::ApiError, AppState};
use crate::metrics::SuggestionCounts;

pub const PATH: &str = ghostline_protocol::stats::PATH;
/// Owner of counts sent to a server without a key file.
pub const ANONYMOUS: &str = "anonymous";
pub const MAX_BODY_BYTES: usize = 16 * 1024;
pub const MAX_LANGUAGES: usize = 64;
/// Per field and request: far more than a minute's typing, far less than an overflow.
pub const MAX_COUNT: u64 = 1_000_000;
/// A suggestion that took longer than ten minutes was not shown.
pub const MAX_LATENCY_MS: u64 = 600_000;

fn invalid(message: impl Into<String>) -> Response {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message).into_response()
}

pub fn valid_language(language: &str) -> bool {
    (1..=32).contains(&language.len())
        && language
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_+-".contains(&b))
}

fn parse(bytes: &[u8]) -> Result<Vec<(String, SuggestionCounts)>, String> {
    let body: SuggestionStats =
        serde_json::from_slice(bytes).map_err(|e| format!("bad body: {e}"))?;
    if body.counts.is_empty() || body.counts.len() > MAX_LANGUAGES {
        return Err(format!("counts must hold 1 to {MAX_LANGUAGES} entries"));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(body.counts.len());
    for entry in body.counts {
        if !valid_language(&entry.language) {
            return Err("language must match [a-z0-9_+-]{1,32}".to_string());
        }
        if !seen.insert(entry.language.clone()) {
            return Err(format!("language {} appears twice", entry.language));
        }
        let counts = [
            entry.shown,
            entry.accepted,
            entry.partial,
            entry.latency_count,
        ];
        if counts.iter().any(|&n| n > MAX_COUNT) {
            return Err(format!("counts above {MAX_COUNT} in one request"));
        }
        if entry.latency_ms_sum > entry.latency_count * MAX_LATENCY_MS {
            return Err(format!(
                "latency_ms_sum above {MAX_LATENCY_MS} ms per counted latency"
            ));
        }
        out.push((
            entry.language,
            SuggestionCounts {
                shown: entry.shown,
                accepted: entry.accepted,
                partial: entry.partial,
                latency_ms_sum: entry.latency_ms_sum,
                latency_count: entry.latency_count,
            },
        ));
    }
    Ok(out)
}

pub async fn record(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let owner: Arc<str> = request
        .extensions()
        .get::<Caller>()
        .map(|caller| caller.owner.clone())
        .unwrap_or_else(|| Arc::from(ANONYMOUS));
    let body = request.into_body();
    let bytes = match tokio::time::timeout(
        state.body_timeout,
        axum::body::to_bytes(body, MAX_BODY_BYTES),
    )
    .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!("suggestion stats larger than {MAX_BODY_BYTES} bytes"),
            )
            .closing()
            .into_response()
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                "the request body did not arrive in time",
            )
            .closing()
            .into_response()
        }
    };
    match parse(&bytes) {
        Ok(entries) => {
            for (language, counts) in entries {
                state
                    .owner_metrics
                    .count_suggestions(&owner, &language, &counts);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Err(why) => invalid(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_whole() {
        let ok = br#"{"counts":[{"language":"rust","shown":3,"accepted":1,"partial":1,"latency_ms_sum":30,"latency_count":3}]}"#;
        assert_eq!(parse(ok).unwrap().len(), 1);
        for bad in [
            &br#"{"counts":[]}"#[..],
            br#"{"counts":[{"language":"Rust","shown":1,"accepted":0,"partial":0,"latency_ms_sum":0,"latency_count":0}]}"#,
            br#"{"counts":[{"language":"rust","shown":-1,"accepted":0,"partial":0,"latency_ms_sum":0,"latency_count":0}]}"#,
            br#"{"counts":[{"language":"rust","shown":1.5,"accepted":0,"partial":0,"latency_ms_sum":0,"latency_count":0}]}"#,
            br#"{"counts":[{"language":"rust","shown":1,"accepted":0,"partial":0,"latency_ms_sum":0,"latency_count":0,"text":"x"}]}"#,
            br#"{"counts":[{"language":"rust","shown":2000000,"accepted":0,"partial":0,"latency_ms_sum":0,"latency_count":0}]}"#,
            br#"{"counts":[{"language":"rust","shown":1,"accepted":0,"partial":0,"latency_ms_sum":700000,"latency_count":1}]}"#,
            br#"{"counts":[{"language":"go","shown":1,"accepted":0,"partial":0,"latency_ms_sum":0,"latency_count":0},{"language":"go","shown":1,"accepted":0,"partial":0,"latency_ms_sum":0,"latency_count":0}]}"#,
            br#"{"counts":[{"language":"rust"}]}"#,
            br#"not json"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(valid_language("c++") && valid_language("objective-c") && !valid_language("a b"));
    }
}
