//! Position encodings: LSP positions (line, code-unit column) ⇄ rope char offsets.
//!
//! Everything that turns a client `Position` into an index lives here, so the rest of the
//! server only ever sees char offsets into a `Rope` and cannot get the encoding wrong.
//! Every conversion clamps: a position past the end of a line means the end of that line
//! (as the LSP specification asks), a line past the end means the end of the document, and
//! a column inside a multi-unit character rounds down to that character. Nothing here panics
//! on client input.

mod text_change;

pub use text_change::{apply_content_change, AppliedChange};

use ropey::{Rope, RopeSlice};
use tower_lsp_server::gen_lsp_types::{Position, PositionEncodingKind, Range};

/// The unit in which the client counts `Position::character`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PositionEncoding {
    Utf8,
    /// The LSP default, and what every client must support.
    #[default]
    Utf16,
    Utf32,
}

impl PositionEncoding {
    /// Picks UTF-8 when the client offers it (no transcoding needed, ropey indexes bytes
    /// natively), otherwise UTF-16, which every client must support.
    pub fn negotiate(offered: Option<&[PositionEncodingKind]>) -> Self {
        let offered = offered.unwrap_or_default();
        if offered.contains(&PositionEncodingKind::UTF8) {
            Self::Utf8
        } else {
            Self::Utf16
        }
    }

    pub fn kind(self) -> PositionEncodingKind {
        match self {
            Self::Utf8 => PositionEncodingKind::UTF8,
            Self::Utf16 => PositionEncodingKind::UTF16,
            Self::Utf32 => PositionEncodingKind::UTF32,
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            Self::Utf8 => 8,
            Self::Utf16 => 16,
            Self::Utf32 => 32,
        }
    }

    pub fn from_u8(value: u8) -> Self {
        match value {
            8 => Self::Utf8,
            32 => Self::Utf32,
            _ => Self::Utf16,
        }
    }
}

/// Number of chars of `line` without its line break (`\n`, `\r\n` or `\r`).
pub fn line_content_len_chars(line: RopeSlice<'_>) -> usize {
    let mut end = line.len_chars();
    if end > 0 && line.char(end - 1) == '\n' {
        end -= 1;
        if end > 0 && line.char(end - 1) == '\r' {
            end -= 1;
        }
    } else if end > 0 && line.char(end - 1) == '\r' {
        end -= 1;
    }
    end
}

/// The rope char offset for a client position, clamped into the document.
pub fn position_to_char(rope: &Rope, position: Position, encoding: PositionEncoding) -> usize {
    let line_index = position.line as usize;
    if line_index >= rope.len_lines() {
        return rope.len_chars();
    }
    let line_start = rope.line_to_char(line_index);
    let line = rope.line(line_index);
    let content = line.slice(..line_content_len_chars(line));
    let column = position.character as usize;
    let column_chars = match encoding {
        PositionEncoding::Utf32 => column.min(content.len_chars()),
        PositionEncoding::Utf16 => content.utf16_cu_to_char(column.min(content.len_utf16_cu())),
        PositionEncoding::Utf8 => content.byte_to_char(column.min(content.len_bytes())),
    };
    line_start + column_chars
}

/// The client position of a rope char offset (clamped to the end of the document).
pub fn char_to_position(rope: &Rope, char_index: usize, encoding: PositionEncoding) -> Position {
    let char_index = char_index.min(rope.len_chars());
    let line_index = rope.char_to_line(char_index);
    let line_start = rope.line_to_char(line_index);
    let before = rope.slice(line_start..char_index);
    let column = match encoding {
        PositionEncoding::Utf32 => before.len_chars(),
        PositionEncoding::Utf16 => before.len_utf16_cu(),
        PositionEncoding::Utf8 => before.len_bytes(),
    };
    Position::new(
        u32::try_from(line_index).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// A client range as an ordered pair of char offsets; a reversed range is put in order
/// rather than refused, since the text between the two ends is unambiguous either way.
pub fn range_to_chars(rope: &Rope, range: Range, encoding: PositionEncoding) -> (usize, usize) {
    let start = position_to_char(rope, range.start, encoding);
    let end = position_to_char(rope, range.end, encoding);
    if start <= end {
        (start, end)
    } else {
        (end, start)
    }
}

/// The char offset of the end of the line content (before its line break) of `line_index`.
pub fn line_content_end_char(rope: &Rope, line_index: usize) -> usize {
    if line_index >= rope.len_lines() {
        return rope.len_chars();
    }
    rope.line_to_char(line_index) + line_content_len_chars(rope.line(line_index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, character: u32) -> Position {
        Position::new(line, character)
    }

    #[test]
    fn utf16_counts_surrogate_pairs_and_rounds_down_inside_them() {
        let rope = Rope::from_str("a😀b\r\n中文x");
        assert_eq!(
            position_to_char(&rope, pos(0, 1), PositionEncoding::Utf16),
            1
        );
        // Column 2 is inside the emoji's surrogate pair: rounds down to the emoji.
        assert_eq!(
            position_to_char(&rope, pos(0, 2), PositionEncoding::Utf16),
            1
        );
        assert_eq!(
            position_to_char(&rope, pos(0, 3), PositionEncoding::Utf16),
            2
        );
        assert_eq!(
            position_to_char(&rope, pos(0, 4), PositionEncoding::Utf16),
            3
        );
        // Past the end of a CRLF line: the end of its content, never inside "\r\n".
        assert_eq!(
            position_to_char(&rope, pos(0, 99), PositionEncoding::Utf16),
            3
        );
        assert_eq!(
            position_to_char(&rope, pos(1, 2), PositionEncoding::Utf16),
            7
        );
        assert_eq!(
            position_to_char(&rope, pos(7, 0), PositionEncoding::Utf16),
            rope.len_chars()
        );
        assert_eq!(
            char_to_position(&rope, 7, PositionEncoding::Utf16),
            pos(1, 2)
        );
        assert_eq!(
            char_to_position(&rope, 3, PositionEncoding::Utf16),
            pos(0, 4)
        );
        assert_eq!(
            char_to_position(&rope, 3, PositionEncoding::Utf8),
            pos(0, 6)
        );
    }

    #[test]
    fn utf8_rounds_down_inside_a_character() {
        let rope = Rope::from_str("é中");
        assert_eq!(
            position_to_char(&rope, pos(0, 1), PositionEncoding::Utf8),
            0
        );
        assert_eq!(
            position_to_char(&rope, pos(0, 2), PositionEncoding::Utf8),
            1
        );
        assert_eq!(
            position_to_char(&rope, pos(0, 5), PositionEncoding::Utf8),
            2
        );
    }

    #[test]
    fn lone_cr_ends_a_line_as_lsp_says() {
        let rope = Rope::from_str("a\rb\u{2028}c");
        assert_eq!(rope.len_lines(), 2, "U+2028 must not split lines");
        assert_eq!(
            position_to_char(&rope, pos(1, 1), PositionEncoding::Utf16),
            3
        );
    }

    #[test]
    fn empty_document_clamps() {
        let rope = Rope::new();
        assert_eq!(
            position_to_char(&rope, pos(3, 3), PositionEncoding::Utf16),
            0
        );
        assert_eq!(
            char_to_position(&rope, 10, PositionEncoding::Utf16),
            pos(0, 0)
        );
    }

    const ENCODINGS: [PositionEncoding; 3] = [
        PositionEncoding::Utf8,
        PositionEncoding::Utf16,
        PositionEncoding::Utf32,
    ];

    #[test]
    fn positions_at_u32_max_clamp_in_every_encoding() {
        let rope = Rope::from_str("first 😀 line\r\nsecond\n");
        for encoding in ENCODINGS {
            assert_eq!(
                position_to_char(&rope, pos(u32::MAX, u32::MAX), encoding),
                rope.len_chars()
            );
            assert_eq!(
                position_to_char(&rope, pos(0, u32::MAX), encoding),
                line_content_end_char(&rope, 0),
                "{encoding:?}: the end of the line's content, not inside its CRLF"
            );
            assert_eq!(
                position_to_char(&rope, pos(1, u32::MAX), encoding),
                line_content_end_char(&rope, 1)
            );
            // The empty last line after the final break.
            assert_eq!(
                position_to_char(&rope, pos(2, u32::MAX), encoding),
                rope.len_chars()
            );
            assert_eq!(
                char_to_position(&rope, usize::MAX, encoding),
                pos(2, 0),
                "{encoding:?}"
            );
        }
        let range = Range::new(pos(u32::MAX, 0), pos(0, u32::MAX));
        assert_eq!(
            range_to_chars(&rope, range, PositionEncoding::Utf16),
            (line_content_end_char(&rope, 0), rope.len_chars()),
            "a reversed, out-of-range range is put in order and clamped"
        );
    }

    #[test]
    fn a_megabyte_line_converts_both_ways_and_rounds_down_inside_a_surrogate_pair() {
        // One line of 1 MiB of ASCII with an emoji in the middle (a UTF-16 surrogate pair).
        let half = "a".repeat(1 << 19);
        let text = format!("{half}😀{half}\nnext");
        let rope = Rope::from_str(&text);
        let emoji = half.len(); // a char index: everything before it is ASCII
        let column = |units: usize| u32::try_from(units).unwrap();
        assert_eq!(
            position_to_char(&rope, pos(0, column(emoji)), PositionEncoding::Utf16),
            emoji
        );
        // Between the two surrogates: the emoji itself.
        assert_eq!(
            position_to_char(&rope, pos(0, column(emoji + 1)), PositionEncoding::Utf16),
            emoji
        );
        assert_eq!(
            position_to_char(&rope, pos(0, column(emoji + 2)), PositionEncoding::Utf16),
            emoji + 1
        );
        // Inside the emoji's four UTF-8 bytes: the emoji.
        for inside in 1..4 {
            assert_eq!(
                position_to_char(
                    &rope,
                    pos(0, column(emoji + inside)),
                    PositionEncoding::Utf8
                ),
                emoji
            );
        }
        let end = emoji * 2 + 1;
        assert_eq!(
            position_to_char(&rope, pos(0, u32::MAX), PositionEncoding::Utf16),
            end
        );
        for encoding in ENCODINGS {
            for char_index in [
                0,
                1,
                emoji,
                emoji + 1,
                end - 1,
                end,
                end + 1,
                rope.len_chars(),
            ] {
                let position = char_to_position(&rope, char_index, encoding);
                assert_eq!(
                    position_to_char(&rope, position, encoding),
                    char_index,
                    "{encoding:?} round trip of {char_index}"
                );
            }
        }
        assert_eq!(
            char_to_position(&rope, end, PositionEncoding::Utf16),
            pos(0, column(emoji * 2 + 2))
        );
        assert_eq!(
            char_to_position(&rope, end, PositionEncoding::Utf8),
            pos(0, column(emoji * 2 + 4))
        );
    }

    #[test]
    fn a_change_with_out_of_range_positions_lands_at_the_end() {
        use tower_lsp_server::gen_lsp_types::{
            TextDocumentContentChangeEvent, TextDocumentContentChangePartial,
        };
        let mut rope = Rope::from_str("a😀\nb");
        let change = TextDocumentContentChangeEvent::TextDocumentContentChangePartial(
            TextDocumentContentChangePartial::new(
                Range::new(pos(u32::MAX, u32::MAX), pos(0, 2)),
                None,
                "X".into(),
            ),
        );
        // From inside the emoji (rounded down to it) to the end of the document.
        apply_content_change(&mut rope, &change, PositionEncoding::Utf16);
        assert_eq!(rope.to_string(), "aX");
        let change = TextDocumentContentChangeEvent::TextDocumentContentChangePartial(
            TextDocumentContentChangePartial::new(
                Range::new(pos(7, 7), pos(u32::MAX, 0)),
                None,
                "!".into(),
            ),
        );
        apply_content_change(&mut rope, &change, PositionEncoding::Utf8);
        assert_eq!(rope.to_string(), "aX!");
    }
}
