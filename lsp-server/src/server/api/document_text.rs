use serde::Deserialize;
use tower_lsp_server::gen_lsp_types::TextDocumentIdentifier;
use tower_lsp_server::jsonrpc::Result;

use super::Lane;
use crate::server::Server;

pub const METHOD: &str = "ghostline/documentText";
/// Concurrent: a read of the session; the text it answers is the document as it is when it
/// runs (after every change read before it).
pub const LANE: Lane = Lane::Concurrent;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentTextParams {
    pub text_document: TextDocumentIdentifier,
}

/// `ghostline/documentText`: the server's copy of a document, so tests (and a curious user)
/// can check that it matches the editor's. Answers null for a document that is not open.
pub async fn handle(server: &Server, params: DocumentTextParams) -> Result<Option<String>> {
    Ok(server
        .session
        .snapshot(&params.text_document.uri)
        .map(|document| document.rope.to_string()))
}
