use tower_lsp_server::gen_lsp_types::DidChangeConfigurationParams;

use super::Lane;
use crate::server::Server;

pub const METHOD: &str = "workspace/didChangeConfiguration";
/// In arrival order: a settings merge and, if the index's inputs changed, a message to its
/// thread; requests read after it use the new settings.
pub const LANE: Lane = Lane::Arrival;

pub fn handle(server: &Server, params: DidChangeConfigurationParams) {
    let index_changed = server.session.update_settings(&params.settings);
    tracing::info!("settings now {:?}", server.session.settings());
    if index_changed {
        // New exclusions or limits: walk again (retrieval already applies the new
        // exclusions to what was indexed before).
        server.session.start_index();
    }
}
