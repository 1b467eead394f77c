use serde::Deserialize;
use serde_json::Value;
use tower_lsp_server::gen_lsp_types::DidChangeTextDocumentParams;

use crate::session::Session;

/// Called at arrival (see `server::dispatch`): changes apply in the order the client sent
/// them, whatever order the handlers would have run in.
pub fn apply(session: &Session, params: Option<&Value>) {
    let Some(params) = params.and_then(|p| DidChangeTextDocumentParams::deserialize(p).ok()) else {
        tracing::warn!("ignoring malformed textDocument/didChange");
        return;
    };
    let uri = &params.text_document.text_document_identifier.uri;
    let encoding = session.encoding();
    let version = params.text_document.version;
    let applied = session.edit_document(uri, |document| {
        document.apply_changes(&params.content_changes, version, encoding);
    });
    if !applied {
        tracing::warn!("change to {uri}, which is not open: ignored");
        return;
    }
    session.note_edited(uri);
    if let Some(document) = session.snapshot(uri).filter(|d| d.gets_suggestions()) {
        if !session.is_excluded(uri) {
            session.index.document_changed(uri, document.rope);
        }
    }
}
