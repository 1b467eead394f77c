//! Probes and metrics: `/health` answers as soon as the process listens (liveness), `/ready`
//! once the model is loaded and warmed up, and only while the engine thread makes progress.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use super::AppState;

pub async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    // A load balancer stops sending here; a supervisor sees the process exit next.
    if state.lifecycle.engine_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "engine stopped"})),
        )
            .into_response();
    }
    if state.lifecycle.phase() != crate::lifecycle::Phase::Running {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "shutting down"})),
        )
            .into_response();
    }
    match state.model.get() {
        Some(_)
            if state
                .lifecycle
                .engine_stalled(&state.metrics.engine_heartbeat) =>
        {
            // The engine thread is alive but stuck: requests would only queue behind it.
            let since = state.metrics.engine_heartbeat.age().as_secs_f64();
            tracing::warn!("/ready: no progress from the engine thread for {since:.1} s");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "engine stalled", "seconds_since_progress": since})),
            )
                .into_response()
        }
        Some(model) => {
            Json(json!({"status": "ready", "model": model.config.name, "device": model.device}))
                .into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading"})),
        )
            .into_response(),
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(key) = &state.metrics_key {
        let offered = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| super::auth::bearer_key(v.as_bytes()));
        if !offered.is_some_and(|k| key.matches(k.as_bytes())) {
            return super::error::ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "/metrics needs the metrics key: Authorization: Bearer KEY",
            )
            .into_response();
        }
    }
    let streams = state
        .keys
        .is_some()
        .then(|| state.tenants.streams_by_owner());
    let text = crate::metrics::render(&state.metrics, &state.owner_metrics, streams.as_deref());
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}
