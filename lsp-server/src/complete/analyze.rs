//! The analyze stage: the cursor's line, whether the suggestion may span several lines (the
//! line, then the syntax tree), and the current file's window (whose text keys the
//! suggestion memory). `analyze` reparses and counts tokens, so it runs on the blocking pool.

use ropey::Rope;
use tower_lsp_server::gen_lsp_types::Uri;

use super::gate::secret_at;
use super::request::RequestContext;
use super::syntax::{self, syntax_at_cursor_in, SyntaxAtCursor};
use crate::context::window::{cursor_context, CursorContext};
use crate::edit::line_content_end_char;
use crate::session::{Document, Session};
use crate::settings::{MultilineMode, Settings};

/// The cursor and its line, split at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorLine {
    /// The cursor, in chars from the document's start.
    pub cursor: usize,
    pub index: usize,
    /// The line before the cursor, and after it (without the line break).
    pub prefix: String,
    pub rest: String,
}

/// The cursor's line split at `cursor`.
pub fn cursor_line(rope: &Rope, cursor: usize) -> CursorLine {
    let index = rope.char_to_line(cursor);
    let start = rope.line_to_char(index);
    let end = line_content_end_char(rope, index).max(cursor);
    CursorLine {
        cursor,
        index,
        prefix: rope.slice(start..cursor).to_string(),
        rest: rope.slice(cursor..end).to_string(),
    }
}

pub fn auto_multiline(syntax: &SyntaxAtCursor, line_prefix: &str, rest_of_line: &str) -> bool {
    if syntax.in_comment_or_string {
        return false;
    }
    let rest_is_closers = rest_of_line
        .chars()
        .all(|c| c.is_whitespace() || ")]};,".contains(c));
    if !rest_is_closers {
        return false;
    }
    let before = line_prefix.trim_end();
    before.is_empty()
        || before.ends_with(['{', '(', '['])
        || before.ends_with("=>")
        || (syntax.indent_based && before.ends_with(':'))
}

/// What the rest of the pipeline knows about the cursor.
pub struct Analysis {
    /// The document with a syntax tree that matches its text.
    pub document: Document,
    pub multiline: bool,
    pub indent_based: bool,
    /// The current file's window at the full budget (the memory's key).
    pub window: CursorContext,
}

/// Blocking: reparses the snapshot if its tree is stale (stored back for the next request)
/// and cuts the cursor window.
pub fn analyze(
    session: &Session,
    uri: &Uri,
    settings: &Settings,
    document: Document,
    line: &CursorLine,
) -> Analysis {
    let (cursor, line_prefix, rest_of_line) = (line.cursor, &line.prefix, &line.rest);
    let document = session.parsed(uri, document);
    let rope = &document.rope;
    // The parse can only veto a multi-line suggestion (inside a comment or string), so it
    // is skipped whenever the line alone already says single-line.
    let indent_based = syntax::is_indent_based(&document.language_id);
    let plain = SyntaxAtCursor {
        in_comment_or_string: false,
        indent_based,
    };
    let multiline = match settings.multiline {
        MultilineMode::Always => true,
        MultilineMode::Never => false,
        MultilineMode::Auto => {
            auto_multiline(&plain, line_prefix, rest_of_line)
                && auto_multiline(
                    &syntax_at_cursor_in(
                        &document.language_id,
                        rope,
                        cursor,
                        document.tree.as_ref(),
                    ),
                    line_prefix,
                    rest_of_line,
                )
        }
    };
    let window = cursor_context(rope, cursor, settings.context_tokens);
    Analysis {
        document,
        multiline,
        indent_based,
        window,
    }
}

/// The analyze stage of a request, on the pool in one job with the cursor's gate
/// (`gate::secret_at`: the secret check's regexes): `None` when the cursor may get no
/// suggestion, or the request was cancelled first.
pub(super) async fn analyze_on_pool(
    ctx: &RequestContext<'_>,
    document: Document,
    line: &CursorLine,
) -> Option<Analysis> {
    let (env, uri, line) = (ctx.env.clone(), ctx.uri.clone(), line.clone());
    let work = move || match secret_at(&document.rope, line.cursor) {
        Some(why) => Err(why),
        None => Ok(analyze(&env.session, &uri, &env.settings, document, &line)),
    };
    match ctx.env.completer.pool.run(&ctx.cancel, work).await? {
        Ok(analysis) => Some(analysis),
        Err(why) => {
            tracing::debug!("no suggestions in {}: {why}", ctx.uri);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_only_where_a_block_can_start() {
        let code = SyntaxAtCursor::default();
        assert!(auto_multiline(&code, "    ", ""));
        assert!(auto_multiline(&code, "fn main() {", ""));
        assert!(auto_multiline(&code, "foo(", ")"));
        assert!(!auto_multiline(&code, "let x = ", ""));
        assert!(!auto_multiline(&code, "    ", "x + 1"));
        let comment = SyntaxAtCursor {
            in_comment_or_string: true,
            indent_based: false,
        };
        assert!(!auto_multiline(&comment, "    ", ""));
    }
}
