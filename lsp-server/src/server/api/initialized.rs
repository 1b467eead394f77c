use super::Lane;
use crate::server::Server;

pub const METHOD: &str = "initialized";
/// Concurrent: it waits for the backend's model, which no later message needs.
pub const LANE: Lane = Lane::Concurrent;

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
    share_stats_periodically(server);
    let settings = server.session.settings();
    let config = crate::complete::backend_config(&settings);
    match server.completer.backend().model(&config).await {
        Ok(model) => tracing::info!(
            "backend {} serves {} (FIM template: {})",
            settings.backend_url,
            model.id,
            crate::context::template::model_template(&model.fim)
                .as_deref()
                .unwrap_or("applied by the server")
        ),
        Err(error) => tracing::info!(
            "backend {} not available yet: {error}",
            settings.backend_url
        ),
    }
}

/// With `shareStats` on, the counters gathered since the last send go to the backend every
/// `stats::SHARE_INTERVAL` (and at shutdown); with it off, nothing is sent.
fn share_stats_periodically(server: &Server) {
    let completer = std::sync::Arc::downgrade(&server.completer);
    let session = std::sync::Arc::downgrade(&server.session);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(crate::stats::SHARE_INTERVAL).await;
            let (Some(completer), Some(session)) = (completer.upgrade(), session.upgrade()) else {
                return;
            };
            let settings = session.settings();
            let config = crate::complete::backend_config(&settings);
            let sent = completer
                .stats()
                .send_shared(completer.backend(), &config, settings.share_stats)
                .await;
            if let Err(error) = sent {
                tracing::debug!("acceptance stats not sent (kept for the next try): {error}");
            }
        }
    });
}
