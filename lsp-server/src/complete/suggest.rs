//! One completion request through the stages, in order: gate (the document) → recall (the
//! suggestion on screen, through the cursor's gate) → gate (the cursor) and analyze →
//! recall (the same prompt lately) → stream (with the prompt stage) → finish. Cheap steps run
//! here on the async runtime; the cursor analysis (with the secret check) and the prompt run on
//! the work pool (`blocking`; the secret check alone, for typing-through, on tokio's blocking
//! threads), and a newer request for the document,
//! a `$/cancelRequest` or the deadline ends whichever stage is running.

use std::sync::Arc;

use tower_lsp_server::Client;

use super::analyze::{analyze_on_pool, cursor_line};
use super::finish::{finish, suggestion};
use super::gate::{admit_cursor, admit_document};
use super::recall::{self, on_screen, prompt_key, remember_shown};
use super::request::{Env, Request, RequestContext};
use super::stream::{before_sending, generate_within_deadline};
use super::{Completer, Suggestion};
use crate::edit::position_to_char;
use crate::session::Session;

/// The suggestion for `request`, on the document as it was when the request arrived; `None`
/// when there is none (gated, nothing from memory or the backend, superseded, failed).
pub async fn suggest(
    completer: &Arc<Completer>,
    session: &Arc<Session>,
    client: &Client,
    request: Request,
) -> Option<Suggestion> {
    let env = Env {
        completer: completer.clone(),
        session: session.clone(),
        settings: session.settings(),
    };
    let Request {
        uri,
        position,
        ticket,
        document,
    } = request;
    // Gate: the document here; the cursor (the secret check) on the pool, before any answer.
    let document = admit_document(session, &env.settings, &uri, document)?;
    let ctx = RequestContext::new(env, client, uri, ticket);
    let cursor = position_to_char(&document.rope, position, session.encoding());
    let line = cursor_line(&document.rope, cursor);

    // Recall: the user is typing what the suggestion on screen says (once the cursor's gate
    // lets it through: what is typed may have made the line a secret).
    let screen = on_screen(completer, &ctx.env.settings, &ctx.uri, &line);
    if let Some(typed) = screen.typed_through {
        admit_cursor(&ctx.cancel, &ctx.uri, &document.rope, cursor).await?;
        ctx.record("typing", 0, 0);
        return Some(suggestion(&document, &line, typed, true));
    }

    // The cursor's gate and the analysis, one job on the pool: reparse, single or multi-line,
    // the window.
    let analysis = analyze_on_pool(&ctx, document, &line).await?;

    // Recall: the same prompt answered lately (a keystroke and its backspace came back to it).
    let key = prompt_key(&ctx.env.settings, &analysis.window, analysis.multiline);
    if let Some((tier, recent)) = recall::recent(completer, key, screen.rest_tier) {
        ctx.record("recent", 0, 0);
        let recent = recent?;
        let shown = (tier, analysis.multiline);
        remember_shown(completer, &ctx.uri, &line, &recent, shown);
        return Some(suggestion(&analysis.document, &line, recent, false));
    }

    // Prompt and stream within the deadline, then finish.
    before_sending(&ctx).await?;
    let outcome = generate_within_deadline(&ctx, &analysis, &line, screen.rest_tier).await;
    finish(&ctx, &analysis, &line, key, outcome).await
}
