use ropey::Rope;
use tower_lsp_server::gen_lsp_types::TextDocumentContentChangeEvent;
use tree_sitter::{InputEdit, Point};

use super::{range_to_chars, PositionEncoding};

/// What one applied change did, for the document's syntax tree and its edit history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppliedChange {
    /// A ranged edit: tree-sitter's description of it (bytes and rows/byte-columns).
    Ranged(InputEdit),
    /// The whole text was replaced: nothing of an old tree can be reused.
    Replaced,
}

/// tree-sitter's point (row, byte column) of a byte offset. Rows follow the rope's lines.
fn point_at(rope: &Rope, byte: usize) -> Point {
    let byte = byte.min(rope.len_bytes());
    let line = rope.byte_to_line(byte);
    Point::new(line, byte - rope.line_to_byte(line))
}

/// Applies one `contentChanges` entry. Ranges are clamped (see the module docs), so a stale
/// or out-of-range edit from a confused client still lands somewhere well-defined instead
/// of panicking; the next full sync or didOpen repairs any drift.
pub fn apply_content_change(
    rope: &mut Rope,
    change: &TextDocumentContentChangeEvent,
    encoding: PositionEncoding,
) -> AppliedChange {
    match change {
        TextDocumentContentChangeEvent::TextDocumentContentChangePartial(partial) => {
            let (start, end) = range_to_chars(rope, partial.range, encoding);
            let start_byte = rope.char_to_byte(start);
            let old_end_byte = rope.char_to_byte(end);
            let start_position = point_at(rope, start_byte);
            let old_end_position = point_at(rope, old_end_byte);
            if start < end {
                rope.remove(start..end);
            }
            if !partial.text.is_empty() {
                rope.insert(start, &partial.text);
            }
            let new_end_byte = start_byte + partial.text.len();
            AppliedChange::Ranged(InputEdit {
                start_byte,
                old_end_byte,
                new_end_byte,
                start_position,
                old_end_position,
                new_end_position: point_at(rope, new_end_byte),
            })
        }
        TextDocumentContentChangeEvent::TextDocumentContentChangeWholeDocument(whole) => {
            *rope = Rope::from_str(&whole.text);
            AppliedChange::Replaced
        }
    }
}
