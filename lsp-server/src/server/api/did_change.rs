use serde::Deserialize;
use serde_json::Value;
use tower_lsp_server::gen_lsp_types::{DidChangeTextDocumentParams, Uri};

use crate::session::Session;

/// Called at arrival (see `server::dispatch`): changes apply in the order the client sent
/// them, whatever order the handlers would have run in.
pub fn apply(session: &Session, params: Option<&Value>) {
    let Some(params) = params.and_then(|p| DidChangeTextDocumentParams::deserialize(p).ok()) else {
        tracing::warn!("ignoring malformed textDocument/didChange");
        let uri = params.and_then(|params| params.get("textDocument")?.get("uri")?.as_str());
        if let Some(uri) = uri {
            failed(session, &Uri::from(uri), "it could not be read");
        }
        return;
    };
    let uri = &params.text_document.text_document_identifier.uri;
    let encoding = session.encoding();
    let version = params.text_document.version;
    let mut resynced = false;
    let applied = session.edit_document(uri, |document| {
        let was_in_sync = document.in_sync;
        document.apply_changes(&params.content_changes, version, encoding);
        resynced = !was_in_sync && document.in_sync;
    });
    if !applied {
        tracing::warn!("change to {uri}, which is not open: ignored");
        return;
    }
    if resynced {
        tracing::info!("{uri} was sent whole again: suggestions resume");
    }
    session.note_edited(uri);
    if let Some(document) = session.snapshot(uri).filter(|d| d.gets_suggestions()) {
        // By name only (no disk at arrival): the index judges where a symlink leads itself.
        if !session.is_excluded_by_name(uri) {
            session.index.document_changed(uri, document.rope);
        }
    }
}

/// A didChange to `uri` that was not applied, or only in part (it panicked, or could not be
/// read): the document no longer matches the editor's, and is marked so (see
/// `Session::mark_out_of_sync`) rather than completed from a text the user does not see.
pub fn failed(session: &Session, uri: &Uri, why: &str) {
    session.mark_out_of_sync(uri, why);
}
