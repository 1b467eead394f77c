use crate::server::Server;

/// Asks the backend for its model (and FIM template) now, so the first suggestion does not
/// wait for it. A backend that is down is not an error here: completions start working
/// whenever it comes up.
pub async fn handle(server: &Server) {
    let settings = server.session.settings();
    match server.session.backend.model(&settings).await {
        Ok(model) => tracing::info!(
            "backend {} serves {} (FIM template: {})",
            settings.backend_url,
            model.id,
            model
                .fim_template
                .as_deref()
                .unwrap_or("applied by the server")
        ),
        Err(error) => tracing::info!(
            "backend {} not available yet: {error}",
            settings.backend_url
        ),
    }
}
