use crate::server::Server;

/// Asks the backend for its model (and FIM template) now, so the first suggestion does not
/// wait for it. A backend that is down is not an error here: completions start working
/// whenever it comes up.
pub async fn handle(server: &Server) {
    // The index walks on its own thread; requests read whatever it has so far.
    server.session.start_index();
    if server
        .session
        .can_watch_files
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        crate::server::api::did_change_watched_files::register(server);
    }
    let settings = server.session.settings();
    let config = crate::complete::backend_config(&settings);
    match server.completer.backend.model(&config).await {
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
