use serde_json::Value;
use tower_lsp_server::gen_lsp_types::{ExecuteCommandParams, LspAny, Uri};
use tower_lsp_server::jsonrpc::{Error, Result};

use super::Lane;
use crate::server::Server;

pub const METHOD: &str = "workspace/executeCommand";
/// Concurrent: the stats command reads a file (off the runtime), and no command changes what
/// a request read after it sees (accept and dismiss only make memory forget a suggestion).
pub const LANE: Lane = Lane::Concurrent;
use crate::stats::Accepted;

/// Sent by the editor after a suggestion was inserted (the item's `command`); with
/// `{"uri": …, "kind": "word" | "line"}` after a part of it was (the acceptance stats).
pub const ACCEPT_COMMAND: &str = "ghostline.accept";
/// Sent by an editor integration when the user dismisses the suggestion.
pub const DISMISS_COMMAND: &str = "ghostline.dismiss";
/// `{"files": N, "definitions": M, "ready": bool, "tokenizerReady": bool}`: lets tests and
/// the evaluation wait for the workspace index, and for the token counter (until it has
/// loaded, budgets use an estimate, so the first prompt of a fresh process can differ).
pub const INDEX_STATUS_COMMAND: &str = "ghostline.indexStatus";
/// The acceptance stats table (today and the last `{"days": N}`, default 7) as text, as
/// `ghostline-lsp stats` prints it: VS Code's status bar item and `:checkhealth ghostline`.
pub const STATS_COMMAND: &str = "ghostline.stats";

/// Accept and dismiss forget the suggestion on screen, so typing-through cannot bring it back:
/// after accepting, the text is in the document; after dismissing, the user does not want it.
/// A partial accept keeps it: its rest is still on screen.
pub async fn handle(server: &Server, params: ExecuteCommandParams) -> Result<Option<LspAny>> {
    let first = params
        .arguments
        .as_ref()
        .and_then(|arguments| arguments.first());
    let uri = first
        .and_then(|argument| argument.get("uri").or(Some(argument)))
        .and_then(Value::as_str)
        .map(Uri::from);
    match params.command.as_str() {
        ACCEPT_COMMAND | DISMISS_COMMAND => {
            let kind = first
                .and_then(|argument| argument.get("kind"))
                .and_then(Value::as_str);
            let accepted = Accepted::from_kind(kind);
            if let Some(uri) = uri {
                if params.command == ACCEPT_COMMAND {
                    let settings = server.session.settings();
                    server.completer.stats().accepted(
                        uri.0.as_str(),
                        accepted,
                        settings.stats,
                        settings.share_stats,
                    );
                }
                if params.command == DISMISS_COMMAND || accepted == Accepted::Whole {
                    server.completer.forget_shown(&uri);
                }
            }
            tracing::debug!("{} {:?}", params.command, kind);
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
        STATS_COMMAND => {
            let days = first
                .and_then(|argument| argument.get("days"))
                .and_then(Value::as_u64)
                .unwrap_or(7)
                .clamp(1, 366);
            // What was recorded so far is on disk first; the file is read off the runtime.
            server
                .completer
                .stats()
                .flush_local(std::time::Duration::from_secs(1))
                .await;
            let table = tokio::task::spawn_blocking(move || crate::stats::table_for_data_dir(days))
                .await
                .map_err(|_| Error::internal_error())?;
            Ok(Some(Value::String(table)))
        }
        other => Err(Error::invalid_params(format!("unknown command {other}"))),
    }
}
