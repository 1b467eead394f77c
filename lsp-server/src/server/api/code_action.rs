//! `textDocument/codeAction`: Ghostline offers no code actions. VS Code asks for them on every
//! cursor move (for its light bulb), which makes the request the one sign of where the user is
//! before they type; the answer is empty at once, and the prompt for that spot is prefilled in
//! the background (`complete::warm_at_cursor`) so the first pause there is already a follow-up.
//! It only spawns; it never waits on the backend.

use tower_lsp_server::gen_lsp_types::{CodeActionParams, CodeActionResponse};
use tower_lsp_server::jsonrpc::Result;

use super::{Arrival, Lane};
use crate::complete::{warm_at_cursor, Request, Ticket};
use crate::server::Server;

pub const METHOD: &str = "textDocument/codeAction";
/// The warm-up prefills the prompt for the document as it was when the cursor came there. A
/// cursor move is no new suggestion request: the one in flight goes on.
pub const LANE: Lane = Lane::Snapshot { supersedes: false };

pub async fn handle(
    server: &Server,
    arrival: Arrival,
    params: CodeActionParams,
) -> Result<Option<Vec<CodeActionResponse>>> {
    let range = params.range;
    // A selection says nothing about where typing will happen.
    if range.start == range.end {
        let request = Request {
            uri: params.text_document.uri,
            position: range.start,
            ticket: Ticket::default(),
            document: arrival.document,
        };
        warm_at_cursor(&server.completer, &server.session, request);
    }
    Ok(None)
}
