//! Deciding, token by token, when a streamed suggestion is done.
//!
//! The backend's instruct model does not stop at the end of the middle by itself, so the
//! server ends the stream as soon as the suggestion is complete: a single-line suggestion at
//! its first line break; a multi-line one when it closes the block or statement it opened,
//! dedents out of the block (indentation-based languages), closes a bracket that was open
//! before the cursor, starts repeating the text after the cursor, or reaches the line cap.

#[derive(Clone, Debug, Default)]
pub struct StopConfig {
    pub multiline: bool,
    pub max_lines: usize,
    pub indent_based: bool,
    /// The cursor's line before the cursor.
    pub line_prefix: String,
    /// The first non-blank line after the cursor's line, trimmed, and its indentation.
    pub next_line: Option<String>,
    pub next_line_indent: usize,
    /// Text that ends the suggestion wherever it appears (the model's special tokens, should
    /// the backend pass them through as text): `FimMarkers::ending_markers`.
    pub markers: Vec<String>,
}

pub struct StopDetector {
    config: StopConfig,
    text: String,
    /// Complete lines already judged.
    judged_lines: usize,
    /// Byte offset into `text` at which the suggestion ends, once decided.
    cut: Option<usize>,
    depth: i32,
    max_depth: i32,
    blank_run: usize,
    /// Indentation-based languages: lines indented less than this leave the block.
    block_indent: Option<usize>,
    in_string: Option<char>,
}

pub const OPENERS: [char; 3] = ['(', '[', '{'];
pub const CLOSERS: [char; 3] = [')', ']', '}'];

fn indent_width(line: &str) -> usize {
    line.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

impl StopDetector {
    pub fn new(config: StopConfig) -> Self {
        let block_indent = if !config.indent_based {
            None
        } else if config.line_prefix.trim().is_empty() {
            // On a blank (or indentation-only) line the block is the one the cursor sits in.
            Some(indent_width(&config.line_prefix))
        } else if config.line_prefix.trim_end().ends_with(':') {
            // Right after `def f():` and the like: the body is anything indented deeper.
            Some(indent_width(&config.line_prefix) + 1)
        } else {
            None
        };
        Self {
            config,
            text: String::new(),
            judged_lines: 0,
            cut: None,
            depth: 0,
            max_depth: 0,
            blank_run: 0,
            block_indent,
            in_string: None,
        }
    }

    /// Adds a streamed delta; returns true when the suggestion is complete and the stream
    /// should be dropped.
    pub fn push(&mut self, delta: &str) -> bool {
        if self.cut.is_some() {
            return true;
        }
        let judged_bytes = self.text.len();
        self.text.push_str(delta);
        // A marker may straddle two deltas: search from a little before the new text.
        let search_from = judged_bytes.saturating_sub(16);
        let search_from = (0..=search_from)
            .rev()
            .find(|&i| self.text.is_char_boundary(i))
            .unwrap_or(0);
        if let Some(at) = self
            .config
            .markers
            .iter()
            .filter_map(|marker| {
                self.text[search_from..]
                    .find(marker)
                    .map(|at| search_from + at)
            })
            .min()
        {
            self.text.truncate(at);
            self.judge_lines(false);
            if self.cut.is_none() {
                self.judge_lines(true);
            }
            if self.cut.is_none() {
                self.cut = Some(self.text.len());
            }
            return true;
        }
        self.judge_lines(false);
        self.cut.is_some()
    }

    /// The suggestion so far, cut where the rules say. Call at the end of the stream.
    pub fn finish(mut self) -> String {
        if self.cut.is_none() {
            self.judge_lines(true);
        }
        let cut = self.cut.unwrap_or(self.text.len());
        self.text.truncate(cut);
        self.text
    }

    /// Judges complete lines (and, at the end, the unterminated last one).
    fn judge_lines(&mut self, final_pass: bool) {
        while self.cut.is_none() {
            let starts: Vec<usize> = std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect();
            let index = self.judged_lines;
            let Some(&start) = starts.get(index) else {
                return;
            };
            let end = match starts.get(index + 1) {
                Some(&next) => next - 1,
                None if final_pass && start < self.text.len() => self.text.len(),
                None => return,
            };
            let line = self.text[start..end].to_string();
            self.judged_lines += 1;
            self.judge_line(index, &line, start, end);
            if end == self.text.len() {
                return;
            }
        }
    }

    fn cut_before(&mut self, line_start: usize) {
        // Drop the line break (and any blank lines) before it too.
        self.cut = Some(self.text[..line_start].trim_end().len());
    }

    fn judge_line(&mut self, index: usize, line: &str, start: usize, end: usize) {
        let line = Line {
            index,
            text: line,
            trimmed: line.trim(),
            start,
            end,
        };
        if self.ends_before_code(&line) {
            return;
        }
        let depth_at_line_start = self.depth;
        if self.scan_brackets(&line) {
            return;
        }
        self.judge_line_end(&line, depth_at_line_start);
    }

    /// The rules a line meets before its code is read: a Markdown fence, single-line mode, the
    /// text after the cursor coming next, blank lines, a dedent out of the block. True when
    /// the suggestion was decided (cut) or the line needs nothing more (blank).
    fn ends_before_code(&mut self, line: &Line<'_>) -> bool {
        let Line {
            index,
            text,
            trimmed,
            start,
            end,
        } = *line;
        if text.trim_start().starts_with("```") {
            // A Markdown fence: the (Instruct) model left the code to explain it; nothing from
            // here on is code.
            if index == 0 {
                self.cut = Some(start);
            } else {
                self.cut_before(start);
            }
            return true;
        }
        if !self.config.multiline {
            // Single-line: the first line is the suggestion (even if empty: the model
            // wanted to continue on another line, which single-line mode does not show).
            self.cut = Some(end);
            return true;
        }
        // The text after the cursor comes next: the suggestion is done. Only at the same
        // indentation: deeper in, the same words are the suggestion's own block (evaluation:
        // `if silent:` lost its `return None` to the file's `return None` after the block).
        if index > 0
            && trimmed.chars().any(char::is_alphanumeric)
            && self.config.next_line.as_deref() == Some(trimmed)
            && indent_width(text) == self.config.next_line_indent
        {
            self.cut_before(start);
            return true;
        }
        if trimmed.is_empty() {
            if index > 0 {
                self.blank_run += 1;
                if self.blank_run >= 2 {
                    // Two blank lines: the model has moved on to something else.
                    self.cut = Some(self.text[..start].trim_end().len());
                }
            }
            return true;
        }
        self.blank_run = 0;
        if index > 0 {
            if let Some(block_indent) = self.block_indent {
                if indent_width(text) < block_indent {
                    self.cut_before(start);
                    return true;
                }
            }
        }
        false
    }

    /// Follows the line's brackets (outside strings); true when one closes a bracket opened
    /// before the cursor, which ends the suggestion.
    fn scan_brackets(&mut self, line: &Line<'_>) -> bool {
        for c in line.text.chars() {
            if let Some(quote) = self.in_string {
                if c == quote {
                    self.in_string = None;
                }
                continue;
            }
            match c {
                '"' | '`' => self.in_string = Some(c),
                c if OPENERS.contains(&c) => {
                    self.depth += 1;
                    self.max_depth = self.max_depth.max(self.depth);
                }
                c if CLOSERS.contains(&c) => {
                    self.depth -= 1;
                    if self.depth < 0 {
                        self.close_outer_bracket(line);
                        return true;
                    }
                }
                _ => {}
            }
        }
        // Strings do not span lines in the languages we care about; do not let one
        // unbalanced quote swallow the rest of the suggestion.
        self.in_string = None;
        false
    }

    /// The line closes a bracket opened before the cursor. If the text after the cursor
    /// already has that closer, stop before repeating it.
    fn close_outer_bracket(&mut self, line: &Line<'_>) {
        let trimmed = line.trimmed;
        let only_closers = trimmed
            .chars()
            .all(|c| CLOSERS.contains(&c) || matches!(c, ';' | ',' | ' '));
        let suffix_has_it = self
            .config
            .next_line
            .as_deref()
            .is_some_and(|next| next.starts_with(trimmed.chars().next().unwrap_or(' ')));
        if line.index > 0 && only_closers && suffix_has_it {
            self.cut_before(line.start);
        } else {
            self.cut = Some(line.end);
        }
    }

    /// After the line's code: a block opened (indentation-based), a block closed, a statement
    /// finished, or the line cap reached.
    fn judge_line_end(&mut self, line: &Line<'_>, depth_at_line_start: i32) {
        let Line {
            index,
            text,
            trimmed,
            end,
            ..
        } = *line;
        if self.config.indent_based && trimmed.ends_with(':') && self.depth == 0 {
            // Opens an indented block: it ends at the first line indented no deeper
            // than this one.
            let opener_indent = if index == 0 {
                indent_width(&self.config.line_prefix)
            } else {
                indent_width(text)
            };
            // Only the outermost block bounds the suggestion: a nested block may end and
            // the suggestion go on in the enclosing one.
            if self.block_indent.is_none() {
                self.block_indent = Some(opener_indent + 1);
            }
            self.max_depth = self.max_depth.max(1);
        } else if self.depth == 0 && depth_at_line_start > 0 && !self.config.indent_based {
            // Closed, on a later line, the block it opened.
            self.cut = Some(end);
            return;
        } else if index == 0
            && self.depth == 0
            && self.max_depth == 0
            && !self.config.line_prefix.trim().is_empty()
        {
            // Finished the statement the cursor was in without opening anything.
            self.cut = Some(end);
            return;
        }
        if index + 1 >= self.config.max_lines.max(1) {
            self.cut = Some(end);
        }
    }
}

/// One line of the suggestion being judged: its index, text (and trimmed), and byte range in
/// the whole text.
#[derive(Clone, Copy)]
struct Line<'a> {
    index: usize,
    text: &'a str,
    trimmed: &'a str,
    start: usize,
    end: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: StopConfig, deltas: &[&str]) -> (String, bool) {
        let mut detector = StopDetector::new(config);
        let mut stopped_early = false;
        for delta in deltas {
            if detector.push(delta) {
                stopped_early = true;
                break;
            }
        }
        (detector.finish(), stopped_early)
    }

    use crate::context::template::FimMarkers;

    fn multi(line_prefix: &str, next_line: Option<&str>) -> StopConfig {
        StopConfig {
            multiline: true,
            max_lines: 10,
            indent_based: false,
            line_prefix: line_prefix.into(),
            next_line: next_line.map(Into::into),
            next_line_indent: 0,
            markers: FimMarkers::default().ending_markers(),
        }
    }

    #[test]
    fn single_line_stops_at_first_newline() {
        let config = StopConfig {
            multiline: false,
            max_lines: 10,
            ..Default::default()
        };
        assert_eq!(
            run(config, &["let x", " = 1;\nlet y", " = 2;"]),
            ("let x = 1;".into(), true)
        );
    }

    #[test]
    fn block_it_opened_ends_it() {
        let (text, early) = run(
            multi("    ", Some("}")),
            &["if x {\n", "        y();\n", "    }\n", "    z();\n"],
        );
        assert_eq!(text, "if x {\n        y();\n    }");
        assert!(early);
    }

    #[test]
    fn closing_the_enclosing_block_stops_before_it_when_suffix_has_it() {
        let (text, _) = run(
            multi("    ", Some("}")),
            &["a();\n    b();\n}\nfn next() {}\n"],
        );
        assert_eq!(text, "a();\n    b();");
    }

    #[test]
    fn repeating_the_suffix_stops() {
        let (text, _) = run(multi("", Some("return x;")), &["let y = 2;\nreturn x;\n}"]);
        assert_eq!(text, "let y = 2;");
    }

    #[test]
    fn the_same_line_in_the_suggestions_own_block_is_not_the_suffix() {
        let mut config = multi("        ", Some("return None"));
        config.indent_based = true;
        config.next_line_indent = 8;
        let (text, _) = run(
            config,
            &["if silent:\n            return None\n        return None\n"],
        );
        assert_eq!(text, "if silent:\n            return None");
    }

    #[test]
    fn mid_statement_finishes_the_statement() {
        let (text, _) = run(multi("let x = foo(", None), &["a, b);\nlet z = 1;\n"]);
        assert_eq!(text, "a, b);");
    }

    #[test]
    fn python_dedent_ends_the_block() {
        let mut config = multi("def f(x):", Some("print(f(1))"));
        config.indent_based = true;
        let (text, _) = run(config, &["\n    y = x + 1\n    return y\n\nz = 3\n"]);
        assert_eq!(text, "\n    y = x + 1\n    return y");
    }

    #[test]
    fn python_nested_block_may_end_inside_the_cursor_block() {
        let mut config = multi("    ", None);
        config.indent_based = true;
        let body = "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return b\n\n\ndef g():\n";
        assert_eq!(
            run(config, &[body]).0,
            "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return b"
        );
    }

    #[test]
    fn markers_and_line_cap() {
        let (text, early) = run(multi("", None), &["a\nb<|endof", "text|>c"]);
        assert_eq!(text, "a\nb");
        assert!(early);
        let mut config = multi("", None);
        config.max_lines = 2;
        assert_eq!(run(config, &["a\nb\nc\nd"]).0, "a\nb");
    }

    #[test]
    fn a_models_own_markers_end_the_suggestion() {
        // A StarCoder-style model, as `/v1/models` would report it: its markers, not Qwen's.
        let markers = FimMarkers {
            prefix: Some("<fim_prefix>".into()),
            suffix: Some("<fim_suffix>".into()),
            middle: Some("<fim_middle>".into()),
            repo_name: Some("<reponame>".into()),
            file_sep: Some("<file_sep>".into()),
        };
        let mut config = multi("", None);
        config.markers = markers.ending_markers();
        let (text, early) = run(config, &["x = 1<file", "_sep>other.py"]);
        assert_eq!(text, "x = 1");
        assert!(early);
    }

    #[test]
    fn a_markdown_fence_ends_the_code() {
        let (text, early) = run(multi("    ", None), &["a + b\n", "```\n\nIn this code"]);
        assert_eq!(text, "a + b");
        assert!(early);
        let single = StopConfig {
            multiline: false,
            max_lines: 1,
            ..Default::default()
        };
        assert_eq!(run(single, &["```rust\nfn x"]).0, "");
    }
}
