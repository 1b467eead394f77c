use serde::Deserialize;
use serde_json::Value;
use tower_lsp_server::gen_lsp_types::DidOpenTextDocumentParams;

use crate::session::{Document, Session};

/// Called at arrival (see `server::dispatch`), so it is ordered with later changes.
pub fn apply(session: &Session, params: Option<&Value>) {
    let Some(params) = params.and_then(|p| DidOpenTextDocumentParams::deserialize(p).ok()) else {
        tracing::warn!("ignoring malformed textDocument/didOpen");
        return;
    };
    let item = params.text_document;
    tracing::debug!(
        "open {} ({}, v{})",
        item.uri,
        item.language_id,
        item.version
    );
    let document = Document::new(&item.text, item.version, item.language_id.to_string());
    let rope = document.rope.clone();
    let small = document.gets_suggestions();
    // Over the limits it is kept in sync and nothing more (see `session::MAX_OPEN_DOCUMENTS`).
    if !session.open_document(item.uri.clone(), document) || !small {
        return;
    }
    crate::tokens::warm_lines(rope.clone());
    if !session.is_excluded(&item.uri) {
        // Open documents win over the disk in the index.
        session.index.document_opened(&item.uri, rope);
    }
}
