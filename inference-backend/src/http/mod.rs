//! HTTP front: routes, auth, body limits and request counting. Handlers validate and enqueue;
//! they never touch the model.

pub mod audit;
pub mod auth;
mod completions;
pub mod error;
mod health;
mod infill;
pub mod keys;
mod models;
pub mod request_id;
pub mod serve;
mod suggestion_stats;

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};

pub use keys::KeyStore;

use crate::{
    engine::Device,
    lifecycle::Lifecycle,
    metrics::Metrics,
    model::{Layout, ModelConfig, ModelTokenizer},
    queue::JobQueue,
    validation::Limits,
};

/// Set once the engine thread has loaded and warmed the model.
pub struct LoadedModel {
    pub config: ModelConfig,
    pub tokenizer: Arc<ModelTokenizer>,
    pub queue: JobQueue,
    pub device: Device,
    pub layout: Layout,
    pub limits: Limits,
}

pub struct AppState {
    pub model: OnceLock<LoadedModel>,
    pub metrics: Arc<Metrics>,
    /// `--api-key-file`; without it the API is open.
    pub keys: Option<KeyStore>,
    /// Per-owner usage for the key file's limits (kept across reloads).
    pub tenants: keys::Tenants,
    pub owner_metrics: crate::metrics::OwnerMetrics,
    /// `--audit-log`.
    pub audit: Option<audit::AuditLog>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// `--body-timeout`: from the end of a request's headers to the end of its body.
    pub body_timeout: Duration,
    /// `--metrics-key`: what `/metrics` asks for, when set.
    pub metrics_key: Option<keys::MetricsKey>,
    /// Running, draining after SIGTERM, ending; whether the engine thread is alive.
    pub lifecycle: Arc<Lifecycle>,
}

pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/completions", post(completions::completions))
        .route("/infill", post(infill::infill))
        .route("/v1/models", get(models::list_models))
        .route(suggestion_stats::PATH, post(suggestion_stats::record))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ));
    Router::new()
        .merge(api)
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .fallback(|| async {
            error::ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
                .into_response()
        })
        .layer(middleware::from_fn(limit_header_size))
        .layer(middleware::from_fn_with_state(state.clone(), audit::audit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(middleware::from_fn(json_errors))
        // Outermost: every answer, refusals included, carries the request's id, and everything
        // logged while handling it is in its span.
        .layer(middleware::from_fn(request_id::follow_request))
        .with_state(state)
}

/// Request headers larger than this, all together, are refused with a JSON 431 (hyper's own
/// limit, far larger, answers without a body).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

async fn limit_header_size(request: Request, next: Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return error::ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request_error",
            format!("request headers larger than {MAX_HEADER_BYTES} bytes"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Errors that axum answers by itself (405 from routing, …) come without a body; give them the
/// same JSON error body as every other error (HEAD answers carry its headers only).
async fn json_errors(request: Request, next: Next) -> Response {
    let allowed = match request.uri().path() {
        "/v1/completions" | "/infill" | "/v1/ghostline/suggestion-stats" => "POST",
        _ => "GET, HEAD",
    };
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response
            .headers()
            .contains_key(axum::http::header::CONTENT_TYPE)
    {
        return response;
    }
    let kind = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "invalid_request_error",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "server_error",
        _ => "invalid_request_error",
    };
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => format!("method not allowed here; allowed: {allowed}"),
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let (parts, _) = response.into_parts();
    let mut fresh = error::ApiError::new(status, kind, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_LENGTH {
            fresh.headers_mut().append(name.clone(), value.clone());
        }
    }
    if status == StatusCode::METHOD_NOT_ALLOWED
        && !fresh.headers().contains_key(axum::http::header::ALLOW)
    {
        fresh.headers_mut().insert(
            axum::http::header::ALLOW,
            axum::http::HeaderValue::from_static(allowed),
        );
    }
    fresh
}

async fn count_requests(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    state.metrics.count_request(response.status().as_u16());
    response
}
