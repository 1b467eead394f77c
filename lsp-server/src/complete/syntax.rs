//! The syntax at the cursor, from tree-sitter and `blocks.scm`, for deciding single- vs
//! multi-line.
//!
//! Only a window of lines around the cursor is parsed: classifying the cursor needs local
//! structure only, and parsing a whole 10,000-line file on every keystroke would cost more
//! than the rest of the request together.

use ropey::Rope;
use tree_sitter::Tree;

use crate::syntax::extract::cursor_scopes;
use crate::syntax::{parse_rope, queries, Lang};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyntaxAtCursor {
    /// Inside a comment or string literal: suggest to the end of the line only.
    pub in_comment_or_string: bool,
    /// Blocks are delimited by indentation (Python), not brackets.
    pub indent_based: bool,
}

const WINDOW_BEFORE: usize = 60;
const WINDOW_AFTER: usize = 15;

/// Languages whose blocks are delimited by indentation.
pub fn is_indent_based(language_id: &str) -> bool {
    matches!(language_id, "python" | "yaml" | "nim" | "coffeescript")
}

/// Classifies the cursor with the document's own (incrementally maintained) tree when there
/// is one, else by parsing a window of lines around it. Comments and strings are whatever
/// the language's `blocks.scm` captures as `@comment` / `@string`; a language without
/// queries is plain text.
pub fn syntax_at_cursor_in(
    language_id: &str,
    rope: &Rope,
    cursor_char: usize,
    tree: Option<&Tree>,
) -> SyntaxAtCursor {
    let indent_based = is_indent_based(language_id);
    let plain = SyntaxAtCursor {
        in_comment_or_string: false,
        indent_based,
    };
    let Some(lang) = Lang::from_language_id(language_id) else {
        return plain;
    };
    let Some(queries) = queries::get(lang) else {
        return plain;
    };
    let cursor_char = cursor_char.min(rope.len_chars());
    let in_comment_or_string = match tree {
        Some(tree) => {
            cursor_scopes(&queries, tree, rope, rope.char_to_byte(cursor_char)).in_comment_or_string
        }
        None => {
            let line = rope.char_to_line(cursor_char);
            let first = rope.line_to_char(line.saturating_sub(WINDOW_BEFORE));
            let last_line = (line + WINDOW_AFTER).min(rope.len_lines());
            let last = if last_line >= rope.len_lines() {
                rope.len_chars()
            } else {
                rope.line_to_char(last_line)
            };
            let window = Rope::from(rope.slice(first..last));
            let cursor_byte = rope.char_to_byte(cursor_char) - rope.char_to_byte(first);
            match parse_rope(lang, &window, None) {
                Some(tree) => {
                    cursor_scopes(&queries, &tree, &window, cursor_byte).in_comment_or_string
                }
                None => false,
            }
        }
    };
    SyntaxAtCursor {
        in_comment_or_string,
        indent_based,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(language: &str, text_with_cursor: &str) -> SyntaxAtCursor {
        let cursor = text_with_cursor.find('|').unwrap();
        let text = text_with_cursor.replace('|', "");
        let rope = Rope::from_str(&text);
        // Without a tree: a window of lines around the cursor is parsed.
        syntax_at_cursor_in(language, &rope, rope.byte_to_char(cursor), None)
    }

    #[test]
    fn finds_strings_and_comments() {
        assert!(at("rust", "fn a() { let s = \"ab|c\"; }").in_comment_or_string);
        assert!(at("rust", "fn a() { // note|\n}").in_comment_or_string);
        assert!(!at("rust", "fn a() { let s = \"abc\"|; }").in_comment_or_string);
        assert!(!at("rust", "fn a() {\n    |\n}").in_comment_or_string);
        assert!(at("python", "def f():\n    x = 'ab|'\n").in_comment_or_string);
        assert!(at("python", "def f():|\n").indent_based);
    }
}
