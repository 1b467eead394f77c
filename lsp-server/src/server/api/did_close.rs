use serde::Deserialize;
use serde_json::Value;
use tower_lsp_server::gen_lsp_types::DidCloseTextDocumentParams;

use crate::session::Session;

/// Frees the document and everything remembered for it; stops its in-flight completion. A
/// document that waited past the open-document limit may be served in its place.
pub fn apply(session: &Session, params: Option<&Value>) {
    let Some(params) = params.and_then(|p| DidCloseTextDocumentParams::deserialize(p).ok()) else {
        tracing::warn!("ignoring malformed textDocument/didClose");
        return;
    };
    for (uri, document) in session.close_document(&params.text_document.uri) {
        super::did_open::start_serving(session, &uri, &document);
    }
}
