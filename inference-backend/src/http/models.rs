//! `GET /v1/models`: the one loaded model, with its family and FIM template so that clients
//! (ghostline-lsp among them) can configure themselves.

use std::sync::Arc;

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use ghostline_protocol::{FimInfo, ModelCard, ModelList, Speed};

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
    let rate = |r: f64| (r > 0.0).then(|| (r * 10.0).round() / 10.0);
    Json(ModelList {
        object: "list".into(),
        data: vec![ModelCard {
            id: c.name.clone(),
            object: "model".into(),
            created: 0,
            owned_by: "ghostline".into(),
            family: Some(c.family.clone()),
            context_length: Some(model.limits.context_length),
            max_tokens_cap: Some(model.limits.max_tokens_cap),
            fim: Some(FimInfo {
                prefix: Some(c.fim.prefix.clone()),
                suffix: Some(c.fim.suffix.clone()),
                middle: Some(c.fim.middle.clone()),
                repo_name: c.fim.repo_name.clone(),
                file_sep: c.fim.file_sep.clone(),
                template: Some(c.fim.template.clone()),
            }),
            device: name_of(model.device),
            layout: name_of(model.layout),
            // Which weights run: the GGUF's sha256 and name, and how its blocks were mapped
            // (ghostline.json `source`, written by fetch_default_model.py).
            source: c.source.clone(),
            // Measured here (warm-up, then a moving average over requests): clients size their
            // prompts by it (ghostline-lsp keeps a suggestion within its latency target).
            speed: Some(Speed {
                prefill_tokens_per_s: rate(prefill),
                decode_tokens_per_s: rate(decode),
            }),
            // A raw prompt with `"token_healing": true` may end inside a word (see
            // `ModelTokenizer::heal_tail`): ghostline-lsp then puts the cursor's line last.
            token_healing: true,
        }],
    })
    .into_response()
}

/// A unit enum's serde name (`cpu`, `genai`).
fn name_of(value: impl serde::Serialize) -> Option<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Some(name),
        _ => None,
    }
}
