use tower_lsp_server::gen_lsp_types::{DidOpenTextDocumentParams, Uri};

use super::Lane;
use crate::session::{Document, Session};

pub const METHOD: &str = "textDocument/didOpen";
/// In arrival order, so it is ordered with the changes and requests after it.
pub const LANE: Lane = Lane::Arrival;

pub fn handle(session: &Session, params: DidOpenTextDocumentParams) {
    let item = params.text_document;
    tracing::debug!(
        "open {} ({}, v{})",
        item.uri,
        item.language_id,
        item.version
    );
    let document = Document::new(&item.text, item.version, item.language_id.to_string());
    let opened = document.clone();
    // Over the limits it is kept in sync and nothing more (see `session::MAX_OPEN_DOCUMENTS`).
    if session.open_document(item.uri.clone(), document) {
        start_serving(session, &item.uri, &opened);
    }
}

/// What a served document gets beyond its text: its lines counted ahead, and its place in
/// the index. For a document just opened, and for one that waited past the limit and is
/// served now that another closed.
pub(super) fn start_serving(session: &Session, uri: &Uri, document: &Document) {
    if !document.gets_suggestions() {
        return; // over the size limit: text only
    }
    crate::tokens::warm_lines(document.rope.clone());
    // By name only (no disk at arrival): the index judges where a symlink leads itself.
    if !session.is_excluded_by_name(uri) {
        // Open documents win over the disk in the index.
        session.index.document_opened(uri, document.rope.clone());
    }
}
