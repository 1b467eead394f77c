use tower_lsp_server::gen_lsp_types::{
    CompletionItem, CompletionItemKind, CompletionItemTextEdit, CompletionList, CompletionParams,
    CompletionResponse, InsertTextFormat, Range, TextEdit,
};
use tower_lsp_server::jsonrpc::Result;

use super::{Arrival, Lane};
use crate::complete::suggest;
use crate::edit::char_to_position;
use crate::server::Server;

pub const METHOD: &str = "textDocument/completion";
/// On the document as it was when the request arrived, like an inline completion.
pub const LANE: Lane = Lane::Snapshot { supersedes: true };

/// The same suggestion as one completion item, for editors without ghost text (Helix).
/// Its edit starts at the start of the word being typed, because editors filter items by
/// that word; the list is incomplete so the editor asks again as the user types.
pub async fn handle(
    server: &Server,
    arrival: Arrival,
    params: CompletionParams,
) -> Result<Option<CompletionResponse>> {
    let position_params = &params.text_document_position_params;
    let empty = CompletionResponse::CompletionList(CompletionList {
        is_incomplete: true,
        ..Default::default()
    });
    let request = arrival.request(position_params);
    let Some(suggestion) =
        suggest(&server.completer, &server.session, &server.client, request).await
    else {
        return Ok(Some(empty));
    };
    let word: String = {
        let chars: Vec<char> = suggestion.line_prefix.chars().collect();
        let start = chars
            .iter()
            .rposition(|c| !(c.is_alphanumeric() || *c == '_'))
            .map_or(0, |i| i + 1);
        chars[start..].iter().collect()
    };
    let word_start = suggestion.cursor_char - word.chars().count();
    let encoding = server.session.encoding();
    let range = Range::new(
        char_to_position(&suggestion.rope, word_start, encoding),
        char_to_position(&suggestion.rope, suggestion.replace_end_char, encoding),
    );
    let new_text = format!("{word}{}", suggestion.text);
    let first_line = new_text.lines().next().unwrap_or_default();
    let mut label: String = first_line.trim().chars().take(60).collect();
    if first_line.trim().chars().count() > 60 || new_text.contains('\n') {
        label.push('…');
    }
    let item = CompletionItem {
        label,
        kind: Some(CompletionItemKind::Text),
        detail: Some("ghostline".to_string()),
        filter_text: Some(first_line.to_string()),
        sort_text: Some("0".to_string()),
        insert_text_format: Some(InsertTextFormat::PlainText),
        text_edit: Some(CompletionItemTextEdit::TextEdit(TextEdit {
            range,
            new_text,
        })),
        ..Default::default()
    };
    Ok(Some(CompletionResponse::CompletionList(CompletionList {
        is_incomplete: true,
        items: vec![item],
        ..Default::default()
    })))
}
