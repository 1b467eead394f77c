//! The current file's window: its prefix and suffix around the cursor, cut to a token budget
//! (counted in `crate::tokens`). Pure: reads only the rope it is given.

use ropey::{Rope, RopeSlice};

use crate::edit::{line_content_end_char, line_content_len_chars};
use crate::tokens::{count as count_tokens, line_tokens};

/// How the file indents, so suggestions can be made to match it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndentUnit {
    Tab,
    Spaces(usize),
}

#[derive(Clone, Debug)]
pub struct CursorContext {
    pub cursor_char: usize,
    /// The cursor's line up to the cursor.
    pub line_prefix: String,
    /// The cursor's line after the cursor, without the line break.
    pub rest_of_line: String,
    /// Budgeted text before the cursor (ends with `line_prefix`).
    pub prefix: String,
    /// Budgeted text after the cursor (starts with `rest_of_line`).
    pub suffix: String,
    /// First non-blank line after the cursor's line, trimmed: a suggestion that starts
    /// repeating it is done.
    pub next_line: Option<String>,
    /// That line's indentation (a tab counts 4): repeating its text deeper in is not
    /// repeating it (`if silent:⏎    return None` above the file's own `return None`).
    pub next_line_indent: usize,
    pub indent_unit: IndentUnit,
    /// Lines of the document that prefix and suffix cover: first, and one past the last.
    pub window_lines: (usize, usize),
    /// Tokens of the suffix, and whether the token cap (not the block's end) ended it: what
    /// every keystroke on this line costs the backend (see `pacing`).
    pub suffix_tokens: usize,
    pub suffix_capped: bool,
}

/// Lines looked at, at most, in each direction (bounds the work on huge files).
const MAX_WINDOW_LINES: usize = 4000;

/// The window's first line is a multiple of this many lines: typing on a line, or on the next
/// few, leaves it where it was, so consecutive prompts share everything before the cursor's
/// line and the backend's prefix cache computes only what changed. (Walking up from the cursor
/// line by line moved the first line with every line the user added, and the whole prompt had
/// to be computed again.) Costs on average half this many lines of the budget.
pub const ANCHOR_LINES: usize = 16;

/// The suffix ends at the end of the block the cursor is in, and at most at this many lines and
/// `suffix_budget` tokens. It comes after the cursor in the prompt, so every keystroke computes
/// it again; and a long suffix made the default (Instruct) model close the block and go on
/// into Markdown and prose, where the block's own end gave the right line.
pub const SUFFIX_MAX_LINES: usize = 40;
pub const SUFFIX_MAX_TOKENS: usize = 256;

/// Tokens of a `context_tokens` budget that the suffix may take: a quarter, 32 to 256. Plain FIM
/// on the default model scored best with 256 suffix tokens at a 1,280-token window (30–35%
/// exact match on 20 single-line holes, against 10% with 64 or 512); through the LSP at 1,024
/// tokens an eighth lost a case of 20 single-line holes more than a quarter did (6 and 7, with
/// the block's end bounding both), which matched the old quarter-of-the-window suffix but for
/// one case (tests/eval/RESULTS.md).
pub fn suffix_budget(context_tokens: usize) -> usize {
    (context_tokens / 4).clamp(32, SUFFIX_MAX_TOKENS)
}

fn indent_width_of(line: RopeSlice<'_>) -> usize {
    line.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

fn is_blank(line: RopeSlice<'_>) -> bool {
    line.chars().all(char::is_whitespace)
}

/// A line that only closes what is open (`}`, `});`, `end`, `)`): the end of a block.
fn is_closing_line(line: RopeSlice<'_>) -> bool {
    let text = line.to_string();
    let text = text.trim();
    !text.is_empty()
        && (text.starts_with(['}', ')', ']'])
            || text == "end"
            || text.starts_with("end ")
            || text == "fi"
            || text == "done"
            || text == "esac")
}

pub fn cursor_context(rope: &Rope, cursor_char: usize, context_tokens: usize) -> CursorContext {
    let cursor_char = cursor_char.min(rope.len_chars());
    let line_index = rope.char_to_line(cursor_char);
    let line_start = rope.line_to_char(line_index);
    let line_end = line_content_end_char(rope, line_index).max(cursor_char);
    let line_prefix = rope.slice(line_start..cursor_char).to_string();
    let rest_of_line = rope.slice(cursor_char..line_end).to_string();
    let last_line = rope.len_lines();

    // Suffix first (it is bounded; the prefix gets the rest): the rest of the line, then whole
    // lines down to the end of the enclosing block (see `suffix_end_line`).
    let suffix_cap = suffix_budget(context_tokens);
    let mut used = count_tokens(&rest_of_line);
    let mut end_char = line_end;
    let mut line = line_index + 1;
    if line < last_line {
        // Include the cursor line's break so the suffix starts on the right line.
        end_char = rope.line_to_char(line);
    }
    let block_end = suffix_end_line(rope, line_index, &line_prefix);
    let mut capped = false;
    while line < block_end && line - line_index <= SUFFIX_MAX_LINES {
        let slice = rope.line(line);
        let cost = line_tokens(slice);
        if used + cost > suffix_cap {
            capped = true;
            break;
        }
        used += cost;
        end_char = rope.line_to_char(line) + slice.len_chars();
        line += 1;
    }
    let suffix = rope
        .slice(cursor_char..end_char.max(cursor_char))
        .to_string();
    let suffix_tokens = used;

    // Prefix: whole lines above the cursor's line while they fit, then the first line moved
    // down to a multiple of ANCHOR_LINES (see there).
    let prefix_budget = context_tokens
        .saturating_sub(suffix_tokens)
        .max(context_tokens / 2);
    let mut used = count_tokens(&line_prefix);
    let mut first_line = line_index;
    while first_line > 0 && line_index - first_line < MAX_WINDOW_LINES {
        let cost = line_tokens(rope.line(first_line - 1));
        if used + cost > prefix_budget {
            break;
        }
        used += cost;
        first_line -= 1;
    }
    let anchored = first_line.div_ceil(ANCHOR_LINES) * ANCHOR_LINES;
    if anchored <= line_index {
        first_line = anchored;
    }
    let prefix = rope
        .slice(rope.line_to_char(first_line)..cursor_char)
        .to_string();

    let next = (line_index + 1..last_line.min(line_index + 1 + MAX_WINDOW_LINES))
        .map(|i| rope.line(i))
        .find(|l| !is_blank(*l));
    let next_line = next.map(|l| l.to_string().trim().to_string());
    let next_line_indent = next.map_or(0, indent_width_of);

    CursorContext {
        cursor_char,
        line_prefix,
        rest_of_line,
        prefix,
        suffix,
        next_line,
        next_line_indent,
        indent_unit: detect_indent_unit(rope, line_index),
        window_lines: (first_line, line.max(line_index + 1)),
        suffix_tokens,
        suffix_capped: capped,
    }
}

/// The first `n` non-blank lines after `line_index`, trimmed.
pub fn following_lines(rope: &Rope, line_index: usize, n: usize) -> Vec<String> {
    let last = rope.len_lines().min(line_index + 1 + MAX_WINDOW_LINES);
    (line_index + 1..last)
        .map(|i| rope.line(i))
        .filter(|l| !is_blank(*l))
        .take(n)
        .map(|l| l.to_string().trim().to_string())
        .collect()
}

/// One past the last line of the suffix's block: inside an indented block, the first line back
/// at the left margin ends it (kept when it only closes, `}`; not when it starts the next item,
/// `def`); at the top level, the next top-level line after a blank line starts another item.
/// On an empty indented line (a body about to be written) in a brace block, the innermost
/// block's closing line ends it instead (see `innermost_closer`).
fn suffix_end_line(rope: &Rope, line_index: usize, line_prefix: &str) -> usize {
    let last_line = rope.len_lines().min(line_index + 1 + MAX_WINDOW_LINES);
    let cursor_line = rope.line(line_index);
    if is_blank(cursor_line) {
        if let Some(closer) = innermost_closer(rope, line_index, line_prefix, last_line) {
            return closer + 1;
        }
    }
    let indented = if is_blank(cursor_line) {
        // A blank line: the cursor's column says which block it is in.
        line_prefix.chars().any(|c| c == ' ' || c == '\t') || {
            // Or the code around it: the previous non-blank line opened or was in a block.
            (0..line_index)
                .rev()
                .map(|i| rope.line(i))
                .find(|l| !is_blank(*l))
                .is_some_and(|l| {
                    let text = l.to_string();
                    indent_width_of(l) > 0 || text.trim_end().ends_with(['{', ':', '(', '['])
                })
        }
    } else {
        indent_width_of(cursor_line) > 0
    };
    let mut after_blank = false;
    for index in line_index + 1..last_line {
        let line = rope.line(index);
        if is_blank(line) {
            after_blank = true;
            continue;
        }
        if indent_width_of(line) == 0 {
            if indented {
                return if is_closing_line(line) {
                    index + 1
                } else {
                    index
                };
            }
            if after_blank {
                return index;
            }
        }
        after_blank = false;
    }
    last_line
}

/// On an empty line indented to `line_prefix`, the line that closes the innermost brace block
/// around it (`}`, `} else {`, `},`): the first non-blank line below indented less than the
/// cursor, when it is a closing line. The model then sees where the body it writes ends and
/// little else: with the rest of the enclosing item after the closer, it wrote the code that
/// comes after the suffix, or copied the sibling code there, more often than the body
/// (Rust and Go block bodies of the dev half: exact 4 → 5 of 40, edit similarity +4 points).
/// Not for Python's blocks: they end at the next dedented statement, and a suffix ending there
/// gained nothing (20 Python bodies, cut before that statement) or lost (60 Python bodies, cut
/// after it: edit similarity −8 points), so they keep the enclosing item's rest.
fn innermost_closer(
    rope: &Rope,
    line_index: usize,
    line_prefix: &str,
    last_line: usize,
) -> Option<usize> {
    // The caller checked the line is blank: its prefix is all indentation.
    let cursor_indent = indent_width_of(RopeSlice::from(line_prefix));
    if cursor_indent == 0 {
        return None;
    }
    let index = (line_index + 1..last_line).find(|&index| {
        let line = rope.line(index);
        !is_blank(line) && indent_width_of(line) < cursor_indent
    })?;
    is_closing_line(rope.line(index)).then_some(index)
}

/// The indentation a suggestion's lines get: Go's is tabs whatever the lines near the cursor
/// hold (gofmt; a shell script in a raw string, indented with spaces, made both the detection
/// and the model indent Go code with spaces), other languages' what `detect_indent_unit` saw.
pub fn language_indent_unit(language_id: &str, detected: IndentUnit) -> IndentUnit {
    if language_id == "go" {
        IndentUnit::Tab
    } else {
        detected
    }
}

/// Tabs if most indented lines near the cursor use tabs, else the smallest space indent seen.
pub fn detect_indent_unit(rope: &Rope, around_line: usize) -> IndentUnit {
    let first = around_line.saturating_sub(100);
    let last = (around_line + 100).min(rope.len_lines());
    let (mut tabs, mut spaced, mut smallest) = (0usize, 0usize, usize::MAX);
    for index in first..last {
        let line = rope.line(index);
        let content = line_content_len_chars(line);
        match line.chars().next() {
            Some('\t') => tabs += 1,
            Some(' ') => {
                let width = line.chars().take_while(|&c| c == ' ').count();
                if width < content {
                    spaced += 1;
                    smallest = smallest.min(width);
                }
            }
            _ => {}
        }
    }
    if tabs > spaced {
        IndentUnit::Tab
    } else if smallest == usize::MAX {
        IndentUnit::Spaces(4)
    } else {
        IndentUnit::Spaces(smallest.clamp(1, 8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_splits_at_cursor_and_finds_next_line() {
        let rope = Rope::from_str("fn a() {\n    let x = 1;\n\n    x\n}\n");
        let cursor = rope.line_to_char(1) + 8;
        let ctx = cursor_context(&rope, cursor, 1000);
        assert_eq!(ctx.line_prefix, "    let ");
        assert_eq!(ctx.rest_of_line, "x = 1;");
        assert!(ctx.prefix.ends_with("    let "));
        assert!(ctx.suffix.starts_with("x = 1;\n\n    x"));
        assert_eq!(ctx.next_line.as_deref(), Some("x"));
        assert_eq!(ctx.indent_unit, IndentUnit::Spaces(4));
    }

    #[test]
    fn budget_cuts_far_lines() {
        let text: String = (0..500).map(|i| format!("line number {i}\n")).collect();
        let rope = Rope::from_str(&text);
        let ctx = cursor_context(&rope, rope.line_to_char(250), 200);
        assert!(ctx.prefix.len() < text.len() / 4);
        assert!(ctx.prefix.ends_with("line number 249\n"));
        assert!(ctx.suffix.starts_with("line number 250"));
    }

    #[test]
    fn suffix_ends_with_the_enclosing_block() {
        let text = "fn add(a: i32, b: i32) -> i32 {\n    \n}\n\nfn main() {\n    println!(\"{}\", add(1, 2));\n}\n";
        let rope = Rope::from_str(text);
        let ctx = cursor_context(&rope, rope.line_to_char(1) + 4, 2048);
        assert_eq!(ctx.suffix, "\n}\n");
        let python = "class A:\n    def f(self):\n        x = 1\n        return x\n\n    def g(self):\n        pass\n\n\ndef h():\n    pass\n";
        let rope = Rope::from_str(python);
        let ctx = cursor_context(&rope, rope.line_to_char(2) + 8, 2048);
        assert_eq!(
            ctx.suffix,
            "x = 1\n        return x\n\n    def g(self):\n        pass\n\n\n"
        );
        // An empty line of a nested brace block: up to that block's closing line only.
        let nested =
            "fn f(x: u32) -> u32 {\n    if x > 1 {\n        \n    } else {\n        x\n    }\n}\n";
        let rope = Rope::from_str(nested);
        let ctx = cursor_context(&rope, rope.line_to_char(2) + 8, 2048);
        assert_eq!(ctx.suffix, "\n    } else {\n");
        // Once the line has text, the enclosing item's rest again.
        let typed = nested.replacen("        \n", "        x\n", 1);
        let rope = Rope::from_str(&typed);
        let ctx = cursor_context(&rope, rope.line_to_char(2) + 9, 2048);
        assert_eq!(ctx.suffix, "\n    } else {\n        x\n    }\n}\n");
        // Go's tabs count as indentation.
        let go = "func f() {\n\tfor {\n\t\t\n\t}\n\treturn\n}\n";
        let rope = Rope::from_str(go);
        let ctx = cursor_context(&rope, rope.line_to_char(2) + 2, 2048);
        assert_eq!(ctx.suffix, "\n\t}\n");
        // A Python body keeps the enclosing item's rest (its block ends at a statement).
        let python = "def f(x):\n    if x:\n        \n    return x\n";
        let rope = Rope::from_str(python);
        let ctx = cursor_context(&rope, rope.line_to_char(2) + 8, 2048);
        assert_eq!(ctx.suffix, "\n    return x\n");
        // At the top level: up to the next item after a blank line.
        let rope = Rope::from_str("import os\nimport sys\n\ndef main():\n    pass\n");
        let ctx = cursor_context(&rope, 3, 2048);
        assert_eq!(ctx.suffix, "ort os\nimport sys\n\n");
    }

    #[test]
    fn go_is_indented_with_tabs_whatever_is_near() {
        let text = "func script() string {\n\treturn `\nif x\n    echo a\n    echo b\n    echo c\nfi\n`\n}\n";
        let rope = Rope::from_str(text);
        let detected = detect_indent_unit(&rope, 8);
        assert_eq!(detected, IndentUnit::Spaces(4));
        assert_eq!(language_indent_unit("go", detected), IndentUnit::Tab);
        assert_eq!(language_indent_unit("python", detected), detected);
    }

    #[test]
    fn window_start_stays_put_while_typing() {
        let mut text: String = (0..300)
            .map(|i| format!("    let value_{i} = compute({i}, \"some text\");\n"))
            .collect();
        let mut firsts = std::collections::BTreeSet::new();
        for typed in [
            "l",
            "le",
            "let",
            "let ",
            "let x",
            "let x =",
            "let x = 1;\n    let y",
        ] {
            let full = format!("{text}    {typed}");
            let rope = Rope::from_str(&full);
            let ctx = cursor_context(&rope, rope.len_chars(), 1024);
            assert_eq!(ctx.window_lines.0 % ANCHOR_LINES, 0);
            assert!(ctx.prefix.ends_with(typed));
            firsts.insert(ctx.window_lines.0);
        }
        assert_eq!(firsts.len(), 1, "the window's first line moved: {firsts:?}");
        text.clear();
    }
}
