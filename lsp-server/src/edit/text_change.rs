use ropey::Rope;
use tower_lsp_server::gen_lsp_types::TextDocumentContentChangeEvent;

use super::{range_to_chars, PositionEncoding};

/// Applies one `contentChanges` entry. Ranges are clamped (see the module docs), so a stale
/// or out-of-range edit from a confused client still lands somewhere well-defined instead
/// of panicking; the next full sync or didOpen repairs any drift.
pub fn apply_content_change(
    rope: &mut Rope,
    change: &TextDocumentContentChangeEvent,
    encoding: PositionEncoding,
) {
    match change {
        TextDocumentContentChangeEvent::TextDocumentContentChangePartial(partial) => {
            let (start, end) = range_to_chars(rope, partial.range, encoding);
            if start < end {
                rope.remove(start..end);
            }
            if !partial.text.is_empty() {
                rope.insert(start, &partial.text);
            }
        }
        TextDocumentContentChangeEvent::TextDocumentContentChangeWholeDocument(whole) => {
            *rope = Rope::from_str(&whole.text);
        }
    }
}
