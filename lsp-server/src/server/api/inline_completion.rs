use serde_json::json;
use tower_lsp_server::gen_lsp_types::{
    Command, InlineCompletionItem, InlineCompletionList, InlineCompletionParams,
    InlineCompletionResponse, InsertText, Range,
};
use tower_lsp_server::jsonrpc::Result;

use super::{Arrival, Lane};
use crate::complete::suggest;
use crate::complete::timings::now_ns;
use crate::edit::char_to_position;
use crate::server::api::execute_command::ACCEPT_COMMAND;
use crate::server::Server;

pub const METHOD: &str = "textDocument/inlineCompletion";
/// On the document as it was when the request arrived; the backend is waited for
/// concurrently, while later edits are read and applied.
pub const LANE: Lane = Lane::Snapshot { supersedes: true };

pub async fn handle(
    server: &Server,
    arrival: Arrival,
    params: InlineCompletionParams,
) -> Result<Option<InlineCompletionResponse>> {
    let position_params = &params.text_document_position_params;
    let uri = &position_params.text_document.uri;
    // Stamped by `dispatch` when the request's frame was decoded (0: not stamped).
    let arrived_ns = arrival.ticket.arrived_ns;
    let request = arrival.request(position_params);
    let Some(suggestion) =
        suggest(&server.completer, &server.session, &server.client, request).await
    else {
        return Ok(Some(InlineCompletionResponse::InlineCompletionList(
            InlineCompletionList::default(),
        )));
    };
    if !suggestion.typed_through {
        // Time to shown: from the request's arrival (the editor sends it right after the
        // keystroke's didChange) to here.
        let elapsed_ms = if arrived_ns == 0 {
            0
        } else {
            now_ns().saturating_sub(arrived_ns) / 1_000_000
        };
        let settings = server.session.settings();
        let model = server.completer.cached_model_id();
        server.completer.stats().shown(
            uri.0.as_str(),
            &suggestion.language_id,
            model.as_deref().unwrap_or("unknown"),
            elapsed_ms,
            settings.stats,
            settings.share_stats,
        );
    }
    let encoding = server.session.encoding();
    let range = Range::new(
        char_to_position(&suggestion.rope, suggestion.cursor_char, encoding),
        char_to_position(&suggestion.rope, suggestion.replace_end_char, encoding),
    );
    let item = InlineCompletionItem {
        insert_text: InsertText::String(suggestion.text),
        filter_text: None,
        range: Some(range),
        command: Some(Command {
            title: "Accept suggestion".to_string(),
            tooltip: None,
            command: ACCEPT_COMMAND.to_string(),
            arguments: Some(vec![json!({ "uri": uri.to_string() })]),
        }),
    };
    Ok(Some(InlineCompletionResponse::InlineCompletionList(
        InlineCompletionList { items: vec![item] },
    )))
}
