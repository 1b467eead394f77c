use std::time::Duration;

use tower_lsp_server::jsonrpc::Result;

use super::Lane;
use crate::server::Server;

pub const METHOD: &str = "shutdown";
/// Concurrent: it waits (bounded) for the stats to be written and sent.
pub const LANE: Lane = Lane::Concurrent;

/// How long shutdown waits for the acceptance stats to be on disk, and (with `shareStats`) for
/// the last counters to reach the backend: together below the 2 s editors commonly give
/// shutdown (vscode-languageclient's default) before they kill the server.
const WRITE_GRACE: Duration = Duration::from_millis(300);
const SEND_GRACE: Duration = Duration::from_millis(1500);

pub async fn handle(server: &Server) -> Result<()> {
    tracing::info!(
        "shutdown ({} documents open)",
        server.session.open_document_count()
    );
    let stats = server.completer.stats();
    stats.flush_local(WRITE_GRACE).await;
    let settings = server.session.settings();
    let config = crate::complete::backend_config(&settings);
    let send = stats.send_shared(server.completer.backend(), &config, settings.share_stats);
    match tokio::time::timeout(SEND_GRACE, send).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::info!("acceptance stats not sent: {error}"),
        Err(_) => tracing::info!("acceptance stats not sent: the backend did not answer in time"),
    }
    Ok(())
}
