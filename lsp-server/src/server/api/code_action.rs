//! `textDocument/codeAction`: Ghostline offers no code actions. VS Code asks for them on every
//! cursor move (for its light bulb), which makes the request the one sign of where the user is
//! before they type; the answer is empty at once, and the prompt for that spot is prefilled in
//! the background (`complete::warm_at_cursor`) so the first pause there is already a follow-up.
//! Runs on the main loop and only spawns; it never waits on the backend.

use tower_lsp_server::gen_lsp_types::{CodeActionParams, CodeActionResponse};
use tower_lsp_server::jsonrpc::Result;

use crate::complete::{warm_at_cursor, Request, Ticket};
use crate::server::Server;

pub async fn handle(
    server: &Server,
    params: CodeActionParams,
) -> Result<Option<Vec<CodeActionResponse>>> {
    let range = params.range;
    // A selection says nothing about where typing will happen.
    if range.start == range.end {
        let uri = params.text_document.uri;
        let request = Request {
            position: range.start,
            ticket: Ticket::default(),
            // The document as the hint found it (to be taken at its arrival).
            document: server.session.snapshot(&uri),
            uri,
        };
        warm_at_cursor(&server.completer, &server.session, request);
    }
    Ok(None)
}
