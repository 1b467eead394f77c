use serde_json::json;
use tower_lsp_server::gen_lsp_types::{
    Command, InlineCompletionItem, InlineCompletionList, InlineCompletionParams,
    InlineCompletionResponse, InsertText, Range,
};
use tower_lsp_server::jsonrpc::Result;

use crate::complete::suggest;
use crate::edit::char_to_position;
use crate::server::api::execute_command::ACCEPT_COMMAND;
use crate::server::api::Stamped;
use crate::server::Server;

pub async fn handle(
    server: &Server,
    stamped: Stamped<InlineCompletionParams>,
) -> Result<Option<InlineCompletionResponse>> {
    let position_params = &stamped.params.text_document_position_params;
    let uri = &position_params.text_document.uri;
    let Some(suggestion) = suggest(
        &server.completer,
        &server.session,
        &server.client,
        uri,
        position_params.position,
        stamped.ticket,
    )
    .await
    else {
        return Ok(Some(InlineCompletionResponse::InlineCompletionList(
            InlineCompletionList::default(),
        )));
    };
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
