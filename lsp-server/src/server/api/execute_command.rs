use serde_json::Value;
use tower_lsp_server::gen_lsp_types::{ExecuteCommandParams, LspAny, Uri};
use tower_lsp_server::jsonrpc::{Error, Result};

use crate::server::Server;

/// Sent by the editor after a suggestion was inserted (the item's `command`).
pub const ACCEPT_COMMAND: &str = "ghostline.accept";
/// Sent by an editor integration when the user dismisses the suggestion.
pub const DISMISS_COMMAND: &str = "ghostline.dismiss";
/// `{"files": N, "definitions": M, "ready": bool, "tokenizerReady": bool}`: lets tests and
/// the evaluation wait for the workspace index, and for the token counter (until it has
/// loaded, budgets use an estimate, so the first prompt of a fresh process can differ).
pub const INDEX_STATUS_COMMAND: &str = "ghostline.indexStatus";

/// Both forget the suggestion on screen, so typing-through cannot bring it back: after
/// accepting, the text is in the document; after dismissing, the user does not want it.
pub fn handle(server: &Server, params: ExecuteCommandParams) -> Result<Option<LspAny>> {
    let uri = params
        .arguments
        .as_ref()
        .and_then(|arguments| arguments.first())
        .and_then(|argument| argument.get("uri").or(Some(argument)))
        .and_then(Value::as_str)
        .map(Uri::from);
    match params.command.as_str() {
        ACCEPT_COMMAND | DISMISS_COMMAND => {
            if let Some(uri) = uri {
                server.completer.lock_memory().forget(&uri);
            }
            tracing::debug!("{}", params.command);
            Ok(None)
        }
        INDEX_STATUS_COMMAND => {
            let mut status =
                serde_json::to_value(server.session.index.status()).unwrap_or_default();
            if let Some(fields) = status.as_object_mut() {
                fields.insert("tokenizerReady".into(), crate::tokens::is_ready().into());
            }
            Ok(Some(status))
        }
        other => Err(Error::invalid_params(format!("unknown command {other}"))),
    }
}
