//! Turning the raw suggestion into what the editor shows: no trailing whitespace, the
//! file's indentation, no overlap with the text after the cursor, brackets balanced on the
//! cursor's line, and how much of that line the suggestion replaces.

use super::stop::{CLOSERS, OPENERS};
use crate::context::window::IndentUnit;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Text inserted at the cursor.
    pub text: String,
    /// Chars after the cursor, on its line, that the text replaces.
    pub replaced_chars: usize,
}

pub struct PostContext<'a> {
    pub line_prefix: &'a str,
    pub rest_of_line: &'a str,
    pub indent_unit: IndentUnit,
    /// The first few non-blank lines after the cursor's line, trimmed.
    pub following: &'a [String],
    /// The language's line comment (`//`, `#`).
    pub line_comment: &'a str,
}

/// A suggestion that fills a whole line and starts with comment lines before its code starts
/// with the code: the default model, asked for a block's body, often opens with a comment it
/// made up (`// Shrink the iterator…`, then the right code), and the ghost text should be the
/// code the user is about to type. Only where the code is at the cursor's own indentation, so
/// that it can take the comment's place; a suggestion that is only comments is kept.
fn drop_leading_comments(text: &str, ctx: &PostContext<'_>) -> String {
    if !ctx.line_prefix.trim().is_empty() || !ctx.rest_of_line.trim().is_empty() {
        return text.to_string();
    }
    let is_comment = |line: &str| line.trim_start().starts_with(ctx.line_comment);
    let lines: Vec<&str> = text.split('\n').collect();
    if !is_comment(lines[0]) {
        return text.to_string();
    }
    let Some(code) = lines
        .iter()
        .position(|line| !line.trim().is_empty() && !is_comment(line))
    else {
        return text.to_string();
    };
    let first = lines[code];
    match first.strip_prefix(ctx.line_prefix) {
        Some(body) if !body.starts_with([' ', '\t']) => {
            let mut kept = vec![body];
            kept.extend_from_slice(&lines[code + 1..]);
            kept.join("\n")
        }
        _ => text.to_string(),
    }
}

/// A suggestion that fills a whole line (nothing but indentation before and after the cursor)
/// loses its last lines where they repeat the lines that follow the cursor (`}` before a `}`
/// line: the model closed the block the file already closes), and is nothing when that is all
/// it has: showing the text that is already there is worse than showing nothing.
fn drop_repeated_following(text: &str, ctx: &PostContext<'_>) -> Option<String> {
    if !ctx.line_prefix.trim().is_empty()
        || !ctx.rest_of_line.trim().is_empty()
        || ctx.following.is_empty()
    {
        return Some(text.to_string());
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let trimmed: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
    let non_blank = trimmed.iter().filter(|l| !l.is_empty()).count();
    let same = |a: &[&str], b: &[String]| {
        a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| *x == y.as_str())
    };
    let repeats_all = {
        let kept: Vec<&str> = trimmed.iter().copied().filter(|l| !l.is_empty()).collect();
        same(&kept, ctx.following)
    };
    if non_blank == 0 || repeats_all {
        return None;
    }
    // The longest tail of whole lines that is the start of what follows.
    for k in (1..lines.len()).rev() {
        let tail: Vec<&str> = trimmed[lines.len() - k..]
            .iter()
            .copied()
            .filter(|l| !l.is_empty())
            .collect();
        if !tail.is_empty() && same(&tail, ctx.following) {
            let kept = lines[..lines.len() - k].join("\n");
            // A closer that closes what the suggestion itself opened is not the file's: `fn
            // default() -> Self {⏎…⏎    }` before the `impl`'s `}` keeps its `    }` (cut, the
            // evaluation's multi-line bodies lost their last line).
            if net_depth(&kept) > 0 {
                continue;
            }
            return Some(kept.trim_end().to_string());
        }
    }
    Some(text.to_string())
}

/// Net bracket depth of `text` (opened minus closed), ignoring double-quoted strings.
fn net_depth(text: &str) -> i32 {
    let mut depth = 0;
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            c if OPENERS.contains(&c) => depth += 1,
            c if CLOSERS.contains(&c) => depth -= 1,
            _ => {}
        }
    }
    depth
}

fn reindent(line: &str, unit: IndentUnit) -> String {
    let body = line.trim_start_matches([' ', '\t']);
    let leading = &line[..line.len() - body.len()];
    match unit {
        IndentUnit::Tab if leading.contains(' ') => {
            let width: usize = leading.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum();
            format!(
                "{}{}{}",
                "\t".repeat(width / 4),
                " ".repeat(width % 4),
                body
            )
        }
        IndentUnit::Spaces(n) if leading.contains('\t') => {
            let spaces: String = leading
                .chars()
                .map(|c| if c == '\t' { " ".repeat(n) } else { " ".into() })
                .collect();
            format!("{spaces}{body}")
        }
        _ => line.to_string(),
    }
}

/// The model's raw text as the suggestion to show: tidied, then fitted to the rest of the line.
pub fn finish(raw: &str, ctx: &PostContext<'_>) -> Option<Finished> {
    let text = tidy(raw, ctx)?;
    Some(fit_to_rest_of_line(text, ctx))
}

/// The suggestion's own text cleaned up: trailing and doubled whitespace, the file's
/// indentation, comments the model led with, lines repeating what follows. `None` when nothing
/// is left.
fn tidy(raw: &str, ctx: &PostContext<'_>) -> Option<String> {
    // Trailing whitespace, per line and at the end; the file's indentation on every line
    // after the first (the first continues the cursor's line).
    let mut lines: Vec<String> = raw
        .split('\n')
        .enumerate()
        .map(|(i, line)| {
            let line = line.trim_end();
            if i == 0 {
                line.to_string()
            } else {
                reindent(line, ctx.indent_unit)
            }
        })
        .collect();
    while lines.len() > 1 && lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut text = lines.join("\n");
    // Typing a space after `=` and being offered " value" would double the space; and after
    // the line's indentation, the model's own leading whitespace doubles the indentation
    // (seen in 6 of 20 multi-line cases of the evaluation, e.g. `    _ => self.0,` after 12
    // spaces).
    if ctx.line_prefix.ends_with([' ', '\t']) {
        let trimmed = text.trim_start_matches([' ', '\t']);
        if !trimmed.starts_with('\n') {
            text = trimmed.to_string();
        }
    }
    if text.trim().is_empty() {
        return None;
    }
    let text = drop_leading_comments(&text, ctx);
    let text = drop_repeated_following(&text, ctx)?;
    if text.trim().is_empty() {
        return None;
    }
    Some(text)
}

/// How the suggestion meets the text after the cursor on its line: replacing it where the
/// suggestion ends with it (or only whitespace follows), shortened where it ends with the start
/// of it, inserted before it otherwise.
fn fit_to_rest_of_line(text: String, ctx: &PostContext<'_>) -> Finished {
    let rest = ctx.rest_of_line;
    let rest_trimmed = rest.trim_end();
    if rest_trimmed.is_empty() {
        // Nothing after the cursor but whitespace: replace it, so no stray blanks remain.
        return Finished {
            text,
            replaced_chars: rest.chars().count(),
        };
    }

    let keep = format!("{}{}{}", ctx.line_prefix, text, rest);
    let replace = format!("{}{}", ctx.line_prefix, text);
    let last_line = text.rsplit('\n').next().unwrap_or("");
    let tail_covers_rest =
        last_line.ends_with(rest_trimmed) || is_subsequence_of_tail(rest_trimmed, last_line);
    let rest_is_closers = rest_trimmed
        .chars()
        .all(|c| CLOSERS.contains(&c) || "\"'`;,: ".contains(c));

    // The suggestion already ends with the rest of the line: replace it rather than
    // showing it twice.
    if last_line.ends_with(rest_trimmed)
        || (rest_is_closers
            && tail_covers_rest
            && net_depth(&replace).abs() <= net_depth(&keep).abs())
    {
        return Finished {
            text,
            replaced_chars: rest.chars().count(),
        };
    }

    // Partial overlap: the suggestion ends with the start of the rest (`foo(a|)` → `a)`).
    // Drop the overlapping part when that balances the line's brackets better.
    for overlap in (1..=rest.len().min(text.len())).rev() {
        if !rest.is_char_boundary(overlap) || !text.is_char_boundary(text.len() - overlap) {
            continue;
        }
        if text.ends_with(&rest[..overlap]) {
            let shortened = &text[..text.len() - overlap];
            let shortened_line = format!("{}{}{}", ctx.line_prefix, shortened, rest);
            if net_depth(&shortened_line).abs() < net_depth(&keep).abs()
                && !shortened.trim().is_empty()
            {
                return Finished {
                    text: shortened.to_string(),
                    replaced_chars: 0,
                };
            }
            break;
        }
    }
    Finished {
        text,
        replaced_chars: 0,
    }
}

/// Whether the chars of `needle` (spaces ignored) appear in order at the end of `haystack`
/// with only other closers or punctuation between them.
fn is_subsequence_of_tail(needle: &str, haystack: &str) -> bool {
    let mut wanted = needle.chars().rev().filter(|c| *c != ' ').peekable();
    for c in haystack.chars().rev() {
        match wanted.peek() {
            None => return true,
            Some(&w) if w == c => {
                wanted.next();
            }
            Some(_) if CLOSERS.contains(&c) || ";,:\"' ".contains(c) => {}
            Some(_) => return false,
        }
    }
    wanted.peek().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(raw: &str, line_prefix: &str, rest: &str) -> Option<Finished> {
        finish(
            raw,
            &PostContext {
                line_prefix,
                rest_of_line: rest,
                indent_unit: IndentUnit::Spaces(4),
                following: &[],
                line_comment: "//",
            },
        )
    }

    fn post_before(raw: &str, line_prefix: &str, following: &[&str]) -> Option<String> {
        let following: Vec<String> = following.iter().map(|s| s.to_string()).collect();
        finish(
            raw,
            &PostContext {
                line_prefix,
                rest_of_line: "",
                indent_unit: IndentUnit::Spaces(4),
                following: &following,
                line_comment: "//",
            },
        )
        .map(|f| f.text)
    }

    #[test]
    fn repeating_what_follows_is_worse_than_nothing() {
        // `fn add(a: i32, b: i32) -> i32 {⏎    |⏎}`: a lone `}` only repeats the next line.
        assert_eq!(post_before("}", "    ", &["}", "fn main() {"]), None);
        assert_eq!(
            post_before("a + b\n}", "    ", &["}"]),
            Some("a + b".into())
        );
        assert_eq!(post_before("a + b", "    ", &["}"]), Some("a + b".into()));
        // The suggestion's own block keeps its closer, though the file's next line is one too.
        assert_eq!(
            post_before(
                "fn default() -> Self {\n        Self::empty()\n    }",
                "    ",
                &["}"]
            ),
            Some("fn default() -> Self {\n        Self::empty()\n    }".into())
        );
        assert_eq!(
            post_before(
                "if a {\n        b();\n    }\n}",
                "    ",
                &["}", "fn main() {"]
            ),
            Some("if a {\n        b();\n    }".into())
        );
        // Mid-line, the same text may well be wanted.
        assert_eq!(post_before("}", "    x = ", &["}"]), Some("}".into()));
    }

    #[test]
    fn a_body_starts_with_its_code_not_a_made_up_comment() {
        // Cursor on an empty body line (8 spaces); the model wrote a comment, then the code.
        assert_eq!(
            post(
                "// Shrink the entries.\n        self.entries.shrink_to_fit();\n        self.indices.clear();",
                "        ",
                ""
            )
            .unwrap()
            .text,
            "self.entries.shrink_to_fit();\n        self.indices.clear();"
        );
        // Only a comment: kept. Code that is not at the cursor's indentation: kept as written.
        assert_eq!(post("// TODO", "        ", "").unwrap().text, "// TODO");
        let nested = "// loop\n            x += 1;";
        assert_eq!(post(nested, "        ", "").unwrap().text, nested);
        // After code on the line, a comment is the user's business.
        let trailing = "// the sum\n    total";
        assert_eq!(
            post(trailing, "    let x = 1; ", "").unwrap().text,
            trailing
        );
    }

    #[test]
    fn trailing_whitespace_and_blank_tail_go() {
        let f = post("x = 1;   \n  \n", "    let ", "").unwrap();
        assert_eq!(f.text, "x = 1;");
    }

    #[test]
    fn whitespace_after_the_indentation_is_not_doubled() {
        let f = post("    _ => self.0,\n            }", "            ", "").unwrap();
        assert_eq!(f.text, "_ => self.0,\n            }");
        // At column 0 the model's indentation is all there is: kept.
        let f = post("    x = 1", "", "").unwrap();
        assert_eq!(f.text, "    x = 1");
    }

    #[test]
    fn suggestion_that_ends_with_the_rest_replaces_it() {
        assert_eq!(
            post("a, b)", "foo(", ")"),
            Some(Finished {
                text: "a, b)".into(),
                replaced_chars: 1
            })
        );
        assert_eq!(
            post("a, b);", "foo(", ")"),
            Some(Finished {
                text: "a, b);".into(),
                replaced_chars: 1
            })
        );
    }

    #[test]
    fn partial_overlap_is_dropped_when_it_balances() {
        assert_eq!(
            post("a)", "foo(", ") + 1"),
            Some(Finished {
                text: "a".into(),
                replaced_chars: 0
            })
        );
        // Here the `)` closes something the suggestion opened: keep it.
        assert_eq!(
            post("f(a)", "g(", ") + 1"),
            Some(Finished {
                text: "f(a)".into(),
                replaced_chars: 0
            })
        );
    }

    #[test]
    fn tabs_files_get_tabs() {
        let f = finish(
            "{\n        x\n    }",
            &PostContext {
                line_prefix: "if a ",
                rest_of_line: "",
                indent_unit: IndentUnit::Tab,
                following: &[],
                line_comment: "//",
            },
        )
        .unwrap();
        assert_eq!(f.text, "{\n\t\tx\n\t}");
    }

    #[test]
    fn whitespace_only_is_nothing() {
        assert_eq!(post("   \n  ", "x", ""), None);
    }
}
