use serde_json::json;
use tower_lsp_server::gen_lsp_types::{DidChangeWatchedFilesParams, FileChangeType, Registration};

use super::Lane;
use crate::index::uri_to_path;
use crate::server::Server;

pub const METHOD: &str = "workspace/didChangeWatchedFiles";
/// In arrival order: only messages to the index's thread, which reads the files itself.
pub const LANE: Lane = Lane::Arrival;

pub const WATCHER_REGISTRATION_ID: &str = "ghostline-watch-files";

/// Files created, changed or deleted outside the editor: the index follows the disk (open
/// documents keep winning until they close).
pub fn handle(server: &Server, params: DidChangeWatchedFilesParams) {
    for change in params.changes {
        let Some(path) = uri_to_path(&change.uri) else {
            continue;
        };
        if change.kind == FileChangeType::Deleted {
            server.session.index.disk_deleted(path);
        } else {
            server.session.index.disk_changed(path);
        }
    }
}

/// Asks the client to send `workspace/didChangeWatchedFiles` for every file. Runs on its own
/// task: a client that never answers must not hold up `initialized`.
pub fn register(server: &Server) {
    let client = server.client.clone();
    tokio::spawn(async move {
        let registration = Registration {
            id: WATCHER_REGISTRATION_ID.to_string(),
            method: "workspace/didChangeWatchedFiles".to_string(),
            register_options: Some(json!({"watchers": [{"globPattern": "**/*"}]})),
        };
        if let Err(error) = client.register_capability(vec![registration]).await {
            tracing::info!("file watching not registered ({error}); the index follows saves and open documents only");
        }
    });
}
