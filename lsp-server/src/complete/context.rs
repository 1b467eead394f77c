//! What the model sees: the current file's prefix and suffix around the cursor, cut to a
//! token budget. Counting uses tiktoken's cl100k, which is close enough to the backend's own
//! tokenizer for budgeting and costs nothing to ship. The context-engine work will add
//! repository context on top of this.

use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;

use dashmap::DashMap;

use ropey::{Rope, RopeSlice};

use crate::edit::{line_content_end_char, line_content_len_chars};

static TOKENIZER_READY: AtomicBool = AtomicBool::new(false);

/// Loads the BPE tables off the request path (they take a moment to build), so the first
/// completion does not pay for them. Until they are ready, counts are estimated.
pub fn warm_up_tokenizer() {
    if TOKENIZER_READY.load(Ordering::Relaxed) {
        return;
    }
    std::thread::spawn(|| {
        let _ = tiktoken_rs::cl100k_base_singleton();
        TOKENIZER_READY.store(true, Ordering::Relaxed);
    });
}

/// Whether token counts are exact yet (see `warm_up_tokenizer`).
pub fn tokenizer_ready() -> bool {
    TOKENIZER_READY.load(Ordering::Relaxed)
}

pub fn count_tokens(text: &str) -> usize {
    if TOKENIZER_READY.load(Ordering::Relaxed) {
        tiktoken_rs::cl100k_base_singleton()
            .encode_ordinary(text)
            .len()
    } else {
        text.len().div_ceil(3)
    }
}

/// Token counts of whole lines, by content hash. BPE costs microseconds per line, which on
/// every keystroke would be the largest part of a request; lines barely change between
/// keystrokes, and a newly opened file is counted in the background (`warm_line_counts`), so
/// almost every count is a lookup. Sharded (DashMap), so the background counting never holds
/// up a request.
static LINE_TOKENS: LazyLock<DashMap<u64, u32>> = LazyLock::new(DashMap::new);

const LINE_CACHE_ENTRIES: usize = 500_000;

fn line_key(line: RopeSlice<'_>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for chunk in line.chunks() {
        hasher.write(chunk.as_bytes());
    }
    hasher.finish()
}

fn line_tokens(line: RopeSlice<'_>) -> usize {
    if !TOKENIZER_READY.load(Ordering::Relaxed) {
        return line.len_bytes().div_ceil(3); // an estimate; not worth remembering
    }
    let key = line_key(line);
    if let Some(count) = LINE_TOKENS.get(&key) {
        return *count as usize;
    }
    let count = count_tokens(&line.to_string());
    if LINE_TOKENS.len() >= LINE_CACHE_ENTRIES {
        LINE_TOKENS.clear();
    }
    LINE_TOKENS.insert(key, u32::try_from(count).unwrap_or(u32::MAX));
    count
}

/// Tokens of any text, counted line by line through the same cache (snippets of other
/// files repeat between keystrokes just as the current file's lines do).
pub fn count_tokens_cached(text: &str) -> usize {
    if !TOKENIZER_READY.load(Ordering::Relaxed) {
        return text.len().div_ceil(3);
    }
    let mut total = 0;
    for line in text.split_inclusive('\n') {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        hasher.write(line.as_bytes());
        let key = hasher.finish();
        if let Some(count) = LINE_TOKENS.get(&key) {
            total += *count as usize;
            continue;
        }
        let count = count_tokens(line);
        if LINE_TOKENS.len() >= LINE_CACHE_ENTRIES {
            LINE_TOKENS.clear();
        }
        LINE_TOKENS.insert(key, u32::try_from(count).unwrap_or(u32::MAX));
        total += count;
    }
    total
}

/// Counts every line of a newly opened document off the request path, so that the first
/// suggestions in it need no BPE work. Runs on its own thread; costs a few hundred
/// milliseconds of one core for a 10,000-line file, once.
pub fn warm_line_counts(rope: Rope) {
    std::thread::spawn(move || {
        let _ = tiktoken_rs::cl100k_base_singleton();
        TOKENIZER_READY.store(true, Ordering::Relaxed);
        for line in rope.lines() {
            line_tokens(line);
        }
    });
}

/// How the file indents, so suggestions can be made to match it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndentUnit {
    Tab,
    Spaces(usize),
}

#[derive(Clone, Debug)]
pub struct CursorContext {
    pub cursor_char: usize,
    pub line_index: usize,
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
    pub indent_unit: IndentUnit,
    /// Lines of the document that prefix and suffix cover: first, and one past the last.
    pub window_lines: (usize, usize),
}

/// Lines looked at, at most, in each direction (bounds the work on huge files).
const MAX_WINDOW_LINES: usize = 4000;

pub fn cursor_context(rope: &Rope, cursor_char: usize, context_tokens: usize) -> CursorContext {
    let cursor_char = cursor_char.min(rope.len_chars());
    let line_index = rope.char_to_line(cursor_char);
    let line_start = rope.line_to_char(line_index);
    let line_end = line_content_end_char(rope, line_index).max(cursor_char);
    let line_prefix = rope.slice(line_start..cursor_char).to_string();
    let rest_of_line = rope.slice(cursor_char..line_end).to_string();

    let prefix_budget = context_tokens * 3 / 4;
    let suffix_budget = context_tokens - prefix_budget;

    {
        // Prefix: whole lines walking up from the cursor, counted line by line.
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
        let prefix = rope
            .slice(rope.line_to_char(first_line)..cursor_char)
            .to_string();

        // Suffix: the rest of the line, then whole lines walking down.
        let mut used = count_tokens(&rest_of_line);
        let mut end_char = line_end;
        let mut next_line = None;
        let mut line = line_index + 1;
        let last_line = rope.len_lines();
        if line < last_line {
            // Include the cursor line's break so the suffix starts on the right line.
            end_char = rope.line_to_char(line);
        }
        while line < last_line && line - line_index < MAX_WINDOW_LINES {
            let slice = rope.line(line);
            if next_line.is_none() && slice.chars().any(|c| !c.is_whitespace()) {
                next_line = Some(slice.to_string().trim().to_string());
            }
            let cost = line_tokens(slice);
            if used + cost > suffix_budget {
                break;
            }
            used += cost;
            end_char = rope.line_to_char(line) + rope.line(line).len_chars();
            line += 1;
        }
        let suffix = rope
            .slice(cursor_char..end_char.max(cursor_char))
            .to_string();

        CursorContext {
            cursor_char,
            line_index,
            line_prefix,
            rest_of_line,
            prefix,
            suffix,
            next_line,
            indent_unit: detect_indent_unit(rope, line_index),
            window_lines: (first_line, line.max(line_index + 1)),
        }
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

/// `template` with `{prefix}` and `{suffix}` substituted in one pass, so that code which
/// happens to contain the text `{suffix}` is never substituted a second time.
pub fn apply_fim_template(template: &str, prefix: &str, suffix: &str) -> String {
    let mut out = String::with_capacity(template.len() + prefix.len() + suffix.len());
    let mut rest = template;
    loop {
        let next_prefix = rest.find("{prefix}");
        let next_suffix = rest.find("{suffix}");
        let (at, value) = match (next_prefix, next_suffix) {
            (Some(p), Some(s)) if p < s => (p, prefix),
            (Some(p), None) => (p, prefix),
            (_, Some(s)) => (s, suffix),
            (None, None) => break,
        };
        out.push_str(&rest[..at]);
        out.push_str(value);
        rest = &rest[at + "{prefix}".len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_substitutes_once() {
        let t = "<P>{prefix}<S>{suffix}<M>";
        assert_eq!(
            apply_fim_template(t, "a{suffix}", "b"),
            "<P>a{suffix}<S>b<M>"
        );
    }

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
}
