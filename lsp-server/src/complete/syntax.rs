//! The syntax at the cursor, from tree-sitter, for deciding single- vs multi-line.
//!
//! Only a window of lines around the cursor is parsed: classifying the cursor needs local
//! structure only, and parsing a whole 10,000-line file on every keystroke would cost more
//! than the rest of the request together.

use std::cell::RefCell;

use ropey::Rope;
use tree_sitter::{Language, Parser};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyntaxAtCursor {
    /// Inside a comment or string literal: suggest to the end of the line only.
    pub in_comment_or_string: bool,
    /// Blocks are delimited by indentation (Python), not brackets.
    pub indent_based: bool,
}

const WINDOW_BEFORE: usize = 60;
const WINDOW_AFTER: usize = 15;

fn language_for(language_id: &str) -> Option<Language> {
    match language_id {
        "rust" => Some(tree_sitter_rust::LANGUAGE.into()),
        "python" => Some(tree_sitter_python::LANGUAGE.into()),
        _ => None,
    }
}

thread_local! {
    static PARSER: RefCell<Parser> = RefCell::new(Parser::new());
}

/// Languages whose blocks are delimited by indentation.
pub fn is_indent_based(language_id: &str) -> bool {
    matches!(language_id, "python" | "yaml" | "nim" | "coffeescript")
}

pub fn syntax_at_cursor(language_id: &str, rope: &Rope, cursor_char: usize) -> SyntaxAtCursor {
    let indent_based = is_indent_based(language_id);
    let Some(language) = language_for(language_id) else {
        return SyntaxAtCursor {
            in_comment_or_string: false,
            indent_based,
        };
    };
    let cursor_char = cursor_char.min(rope.len_chars());
    let line = rope.char_to_line(cursor_char);
    let first = rope.line_to_char(line.saturating_sub(WINDOW_BEFORE));
    let last_line = (line + WINDOW_AFTER).min(rope.len_lines());
    let last = if last_line >= rope.len_lines() {
        rope.len_chars()
    } else {
        rope.line_to_char(last_line)
    };
    let window = rope.slice(first..last).to_string();
    let cursor_byte = rope.char_to_byte(cursor_char) - rope.char_to_byte(first);

    let in_comment_or_string = PARSER.with(|parser| {
        let mut parser = parser.borrow_mut();
        if parser.set_language(&language).is_err() {
            return false;
        }
        let Some(tree) = parser.parse(&window, None) else {
            return false;
        };
        // Look at the char before the cursor: that is what the user just typed into.
        let Some(mut node) = tree
            .root_node()
            .descendant_for_byte_range(cursor_byte.saturating_sub(1), cursor_byte)
        else {
            return false;
        };
        loop {
            let kind = node.kind();
            let is_comment = kind.contains("comment");
            let inside = node.start_byte() < cursor_byte
                && (cursor_byte < node.end_byte()
                    // A line comment runs to the end of its line, cursor included.
                    || (is_comment && kind != "block_comment" && cursor_byte == node.end_byte()));
            if inside && (is_comment || kind.contains("string")) {
                return true;
            }
            match node.parent() {
                Some(parent) => node = parent,
                None => return false,
            }
        }
    });
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
        syntax_at_cursor(language, &rope, rope.byte_to_char(cursor))
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
