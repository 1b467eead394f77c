use tower_lsp_server::gen_lsp_types::DidSaveTextDocumentParams;

use super::Lane;
use crate::server::Server;

pub const METHOD: &str = "textDocument/didSave";
/// In arrival order: it reads the document as it is at the save, so it belongs with the
/// changes.
pub const LANE: Lane = Lane::Arrival;

/// The saved text is the open document's, which the index already follows; a save only makes
/// the index take it now rather than after typing pauses.
pub fn handle(server: &Server, params: DidSaveTextDocumentParams) {
    let uri = &params.text_document.uri;
    // By name only (no disk at arrival): the index judges where a symlink leads itself.
    if server.session.is_excluded_by_name(uri) {
        return;
    }
    if let Some(document) = server
        .session
        .snapshot(uri)
        .filter(|d| d.gets_suggestions())
    {
        server.session.index.document_changed(uri, document.rope);
    }
}
