use tower_lsp_server::gen_lsp_types::DidCloseTextDocumentParams;

use super::Lane;
use crate::session::Session;

pub const METHOD: &str = "textDocument/didClose";
/// In arrival order: a request read after the close finds the document gone.
pub const LANE: Lane = Lane::Arrival;

/// Frees the document and everything remembered for it; stops its in-flight completion. A
/// document that waited past the open-document limit may be served in its place.
pub fn handle(session: &Session, params: DidCloseTextDocumentParams) {
    for (uri, document) in session.close_document(&params.text_document.uri) {
        super::did_open::start_serving(session, &uri, &document);
    }
}
