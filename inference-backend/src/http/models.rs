//! `GET /v1/models`: the one loaded model, with its family and FIM template so that clients
//! (ghostline-lsp among them) can configure themselves.

use std::sync::Arc;

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use super::{error::ApiError, AppState};

pub async fn list_models(State(state): State<Arc<AppState>>) -> Response {
    let Some(model) = state.model.get() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "model_loading",
            "the model is still loading",
        )
        .retry_after(5)
        .into_response();
    };
    let c = &model.config;
    let (prefill, decode) = state.metrics.speed();
    let rate = |r: f64| {
        if r > 0.0 {
            json!((r * 10.0).round() / 10.0)
        } else {
            Value::Null
        }
    };
    Json(json!({
        "object": "list",
        "data": [{
            "id": c.name,
            "object": "model",
            "created": 0,
            "owned_by": "ghostline",
            "family": c.family,
            "context_length": model.limits.context_length,
            "max_tokens_cap": model.limits.max_tokens_cap,
            "fim": c.fim,
            "device": model.device,
            "layout": model.layout,
            // Which weights run: the GGUF's sha256 and name, and how its blocks were mapped
            // (ghostline.json `source`, written by fetch_default_model.py).
            "source": c.source,
            // Measured here (warm-up, then a moving average over requests): clients size their
            // prompts by it (ghostline-lsp keeps a suggestion within its latency target).
            "speed": {"prefill_tokens_per_s": rate(prefill), "decode_tokens_per_s": rate(decode)},
            // A raw prompt with `"token_healing": true` may end inside a word (see
            // `ModelTokenizer::heal_tail`): ghostline-lsp then puts the cursor's line last.
            "token_healing": true,
        }]
    }))
    .into_response()
}
