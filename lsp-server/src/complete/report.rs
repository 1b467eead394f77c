//! What the user is told about the backend: one warning when it goes bad (with what to do),
//! one line when it answers again (`backend::health` decides when).

use tower_lsp_server::gen_lsp_types::MessageType;
use tower_lsp_server::Client;

use super::Completer;
use crate::backend::health::HealthChange;
use crate::backend::BackendError;
use crate::settings::Settings;

pub async fn failure(
    completer: &Completer,
    client: &Client,
    settings: &Settings,
    error: &BackendError,
) {
    if completer.backend.health.record_failure(error) != HealthChange::WentBad {
        tracing::debug!("backend still failing: {error}");
        return;
    }
    if matches!(error, BackendError::Died(_)) {
        // It may come back as a different model.
        completer.backend.forget_model().await;
    }
    let hint = match error {
        BackendError::Unauthorized => {
            format!(
                " (the key is read from the environment variable {})",
                settings.api_key_env
            )
        }
        _ => String::new(),
    };
    let message = format!(
        "ghostline: {error}{hint} at {}; suggestions pause and resume by themselves when it answers",
        settings.backend_url
    );
    tracing::warn!("{message}");
    client.show_message(MessageType::Warning, message).await;
}

pub async fn success(completer: &Completer, client: &Client, settings: &Settings) {
    if completer.backend.health.record_success() == HealthChange::Recovered {
        tracing::info!("backend at {} answers again", settings.backend_url);
        client
            .log_message(
                MessageType::Info,
                format!(
                    "ghostline: the backend at {} answers again",
                    settings.backend_url
                ),
            )
            .await;
    }
}
