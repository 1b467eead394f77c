//! HTTP front: routes, auth, body limits and request counting. Handlers validate and enqueue;
//! they never touch the model.

mod auth;
mod completions;
pub mod error;
mod health;
mod models;

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

pub use auth::load_api_keys;

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
    pub api_keys: Option<Vec<Vec<u8>>>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Running, draining after SIGTERM, ending; whether the engine thread is alive.
    pub lifecycle: Arc<Lifecycle>,
}

pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/completions", post(completions::completions))
        .route("/v1/models", get(models::list_models))
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
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
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
