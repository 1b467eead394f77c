use serde::Deserialize;
use serde_json::Value;
use tower_lsp_server::gen_lsp_types::{DidChangeTextDocumentParams, Range, Uri};

use super::Lane;
use crate::session::Session;

pub const METHOD: &str = "textDocument/didChange";
/// In arrival order: changes apply in the order the client sent them, and a request read
/// after a change sees it.
pub const LANE: Lane = Lane::Arrival;

/// The change in `params`, or `None` when it cannot be applied as sent: the document is then
/// marked out of sync (see [`failed`]), as dropping a change silently would leave the
/// server's copy different from the editor's for good.
pub fn read(session: &Session, params: Option<Value>) -> Option<DidChangeTextDocumentParams> {
    let uri = super::document_uri(params.as_ref());
    let why = if !ranges_are_well_formed(params.as_ref()) {
        "a range could not be read"
    } else {
        match params.map(serde_json::from_value::<DidChangeTextDocumentParams>) {
            Some(Ok(params)) => return Some(params),
            _ => "it could not be read",
        }
    };
    tracing::warn!("ignoring malformed {METHOD}: {why}");
    if let Some(uri) = uri {
        failed(session, &uri, why);
    }
    None
}

/// Whether every content change that has a `range` has a well-formed one. The LSP type
/// is an untagged enum, so a change whose range does not parse (a negative line, a string)
/// would silently deserialize as the other variant: a replacement of the whole document by
/// the change's text.
fn ranges_are_well_formed(params: Option<&Value>) -> bool {
    let Some(changes) = params
        .and_then(|params| params.get("contentChanges"))
        .and_then(Value::as_array)
    else {
        return true; // malformed in a way the change's own deserializer refuses
    };
    changes.iter().all(|change| match change.get("range") {
        None | Some(Value::Null) => true,
        Some(range) => Range::deserialize(range).is_ok(),
    })
}

/// Applies the change (in arrival order: see [`LANE`]).
pub fn handle(session: &Session, params: DidChangeTextDocumentParams) {
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
