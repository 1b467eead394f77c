//! The finish stage: after the stream, pacing is told how it went, the next tier is warmed
//! (`warm`), the backend's health is reported (`report`); the raw text is cleaned up
//! (`postprocess`), remembered for the same prompt and as the suggestion on screen, timed, and
//! made the answer.

use super::analyze::{Analysis, CursorLine};
use super::memory::RecentResult;
use super::postprocess::{self, PostContext};
use super::recall::remember_shown;
use super::report;
use super::request::RequestContext;
use super::stream::{Generated, Outcome};
use super::timings::now_ns;
use super::warm::{warm_next_tier, WarmTarget};
use super::Suggestion;
use crate::context::window::{following_lines, language_indent_unit, CursorContext};
use crate::session::Document;

/// The answer to a request whose stream stage ended with `outcome`; `key` is its prompt's
/// (see `recall::prompt_key`).
pub(super) async fn finish(
    ctx: &RequestContext<'_>,
    analysis: &Analysis,
    line: &CursorLine,
    key: u64,
    outcome: Outcome,
) -> Option<Suggestion> {
    let generated = settle(ctx, analysis, line, outcome).await?;
    // Code stays out of logs unless asked for at trace level.
    tracing::trace!("raw suggestion {:?}", generated.raw);
    let finished = clean_up(&generated.raw, &analysis.document, &analysis.window, line);
    let completer = &ctx.env.completer;
    completer
        .lock_memory()
        .remember_recent(key, generated.tier, finished.clone());
    let after_last_token_ns = now_ns().saturating_sub(generated.last_token_ns);
    ctx.record("backend", generated.before_backend_ns, after_last_token_ns);
    let finished = finished?;
    let shown = (generated.tier, analysis.multiline);
    remember_shown(completer, &ctx.uri, line, &finished, shown);
    Some(suggestion(&analysis.document, line, finished, false))
}

/// Pacing told how the request ended; on an answer, the next tier warmed and the backend's
/// recovery reported; on a failure, the failure reported. The generated text, if any.
async fn settle(
    ctx: &RequestContext<'_>,
    analysis: &Analysis,
    line: &CursorLine,
    outcome: Outcome,
) -> Option<Box<Generated>> {
    let (completer, settings) = (&ctx.env.completer, &ctx.env.settings);
    let uri = ctx.uri.0.as_str();
    let generated = match outcome {
        Outcome::Superseded => {
            completer.pacing.abandoned(uri);
            return None;
        }
        Outcome::Failed(error) => {
            completer.pacing.abandoned(uri);
            report::failure(completer, ctx.client, settings, &error).await;
            return None;
        }
        Outcome::Generated(generated) => generated,
    };
    let usage = generated.usage.as_ref();
    completer.pacing.ended(uri, generated.tier, true, usage);
    let target = WarmTarget {
        uri: ctx.uri.clone(),
        document: analysis.document.clone(),
        cursor: line.cursor,
        line_index: line.index,
        generation: ctx.ticket.generation,
        multiline: generated.multiline,
    };
    warm_next_tier(&ctx.env, &generated, target);
    report::success(completer, ctx.client, settings).await;
    Some(generated)
}

/// The model's raw text as the suggestion to show at `line` of `document` (see
/// `postprocess`); `None` when nothing worth showing is left.
pub(super) fn clean_up(
    raw: &str,
    document: &Document,
    window: &CursorContext,
    line: &CursorLine,
) -> Option<RecentResult> {
    let following = following_lines(&document.rope, line.index, 4);
    let context = PostContext {
        line_prefix: &line.prefix,
        rest_of_line: &line.rest,
        indent_unit: language_indent_unit(&document.language_id, window.indent_unit),
        following: &following,
        line_comment: crate::syntax::line_comment(&document.language_id),
    };
    postprocess::finish(raw, &context).map(|finished| RecentResult {
        text: finished.text,
        replaced_chars: finished.replaced_chars,
    })
}

/// `result` as the answer at `line` of `document` (the request's snapshot, on which the
/// answer's range is computed).
pub(super) fn suggestion(
    document: &Document,
    line: &CursorLine,
    result: RecentResult,
    typed_through: bool,
) -> Suggestion {
    Suggestion {
        rope: document.rope.clone(),
        text: result.text,
        cursor_char: line.cursor,
        replace_end_char: line.cursor + result.replaced_chars,
        line_prefix: line.prefix.clone(),
        language_id: document.language_id.clone(),
        typed_through,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::complete::analyze::cursor_line;
    use crate::context::window::cursor_context;

    fn at(text: &str, language_id: &str, line: usize, column: usize) -> (Document, CursorLine) {
        let document = Document::new(text, 1, language_id.into());
        let cursor = document.rope.line_to_char(line) + column;
        let line = cursor_line(&document.rope, cursor);
        (document, line)
    }

    #[test]
    fn the_raw_text_is_cleaned_up_for_the_line_it_continues() {
        let (document, line) = at("def f(a, b):\n    return \n", "python", 1, 11);
        let window = cursor_context(&document.rope, line.cursor, 2048);
        // Trailing whitespace goes; after the typed space, the model's own leading space too.
        let cleaned = clean_up(" a + b   \n\n", &document, &window, &line).unwrap();
        assert_eq!(cleaned.text, "a + b");
        assert_eq!(cleaned.replaced_chars, 0);
        // Nothing but whitespace: nothing to show.
        assert!(clean_up("  \n ", &document, &window, &line).is_none());
    }

    #[test]
    fn a_suggestion_ending_with_the_rest_of_the_line_replaces_it() {
        let (document, line) = at("let v = vec![1, 2];\nprint(\nfoo(a)\n", "rust", 2, 5);
        assert_eq!((line.prefix.as_str(), line.rest.as_str()), ("foo(a", ")"));
        let window = cursor_context(&document.rope, line.cursor, 2048);
        let cleaned = clean_up(", b)", &document, &window, &line).unwrap();
        assert_eq!((cleaned.text.as_str(), cleaned.replaced_chars), (", b)", 1));
        let answer = suggestion(&document, &line, cleaned, false);
        assert_eq!(answer.cursor_char, line.cursor);
        assert_eq!(answer.replace_end_char, line.cursor + 1);
        assert_eq!(answer.line_prefix, "foo(a");
        assert_eq!(answer.language_id, "rust");
        assert_eq!(answer.rope, document.rope);
        assert!(!answer.typed_through);
    }
}
