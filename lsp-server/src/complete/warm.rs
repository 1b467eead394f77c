//! Warm-ups: prefilling the backend's prefix cache with the prompts the next keystrokes will
//! send — the next budget tier after a suggestion (`warm_next_tier`), and the spot a cursor
//! came to rest on (`warm_at_cursor`). Their prompts are built on the blocking pool like a
//! request's, and a newer request (or hint) cancels them there too.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tower_lsp_server::gen_lsp_types::{Position, Uri};

use super::prompt::build_prompt_on_pool;
use super::suggest::{until_superseded, Generated};
use super::{backend_config, Completer};
use crate::backend::{affinity, ModelInfo};
use crate::edit::position_to_char;
use crate::session::{Document, Session};
use crate::settings::Settings;

/// Where a warm-up prefills: the document and cursor of the request that was just answered.
pub(super) struct WarmTarget {
    pub uri: Uri,
    pub document: Document,
    pub cursor: usize,
    pub line_index: usize,
    pub generation: u64,
    /// Whether the ask there was multi-line (its decoding leaves less time for the prompt).
    pub multiline: bool,
}

/// After a suggestion, prefills the stable part of a larger prompt (`pacing::warm_up_tier`) in
/// the background, so the following pauses in this region, or the same spot asked again after
/// a rest, can afford it; while nothing newer comes, the next larger one follows, up to
/// `contextTokens`. Only for backends that take `max_tokens: 0` (ghostline-serve, which
/// reports its speed) and raw prompts. A newer request for the document cancels it; the
/// backend keeps what it computed.
pub(super) fn warm_next_tier(
    completer: &Arc<Completer>,
    session: &Arc<Session>,
    settings: &Arc<Settings>,
    generated: &Generated,
    target: WarmTarget,
) {
    if generated.model.speed.is_none() {
        return;
    }
    let max = settings.context_tokens;
    let Some(tier) = completer.pacing.warm_up_tier(
        target.uri.0.as_str(),
        target.line_index,
        generated.tier,
        max,
        target.multiline,
        settings.latency_target_ms,
    ) else {
        return;
    };
    spawn_warm_up(
        completer,
        session,
        settings,
        generated.model.clone(),
        target,
        tier,
        None,
    );
}

/// The user moved the cursor to `position` (a code action request, which VS Code sends on
/// every cursor move, or any other sign of where they are) and has typed nothing there yet:
/// prefill the prompt a keystroke there would send (`pacing::warm_here_tier`), so the first
/// pause in a region is already a follow-up. A request for the document, or a newer hint,
/// ends it; the backend keeps what it computed. `document`: `uri` as it was when the hint
/// arrived (`None`: as it is when the warm-up starts).
pub fn warm_at_cursor(
    completer: &Arc<Completer>,
    session: &Arc<Session>,
    uri: &Uri,
    position: Position,
    document: Option<Document>,
) {
    let mut hint = 0;
    completer.cursor_hints.send_modify(|n| {
        *n += 1;
        hint = *n;
    });
    let completer = completer.clone();
    let session = session.clone();
    let uri = uri.clone();
    tokio::spawn(async move {
        // A cursor moving line by line sends a hint per line: wait for it to rest.
        tokio::time::sleep(HINT_REST).await;
        if *completer.cursor_hints.borrow() != hint
            || session.is_excluded(&uri)
            || completer.backend.health.is_backing_off()
        {
            return;
        }
        let settings = session.settings();
        let Some(document) = document.or_else(|| session.snapshot(&uri)) else {
            return;
        };
        if !document.gets_suggestions() || !settings.language_enabled(&document.language_id) {
            return;
        }
        let Ok(model) = completer.backend.model(&backend_config(&settings)).await else {
            return;
        };
        let Some((prefill, decode)) = model.speed else {
            return;
        };
        completer.pacing.reported(prefill, decode);
        let cursor = position_to_char(&document.rope, position, session.encoding());
        if crate::privacy::cursor_in_secret(&document.rope, cursor)
            || crate::privacy::rope_is_credential_file(&document.rope)
        {
            return;
        }
        let line_index = document
            .rope
            .char_to_line(cursor.min(document.rope.len_chars()));
        let Some(tier) = completer.pacing.warm_here_tier(
            uri.0.as_str(),
            line_index,
            settings.context_tokens,
            settings.latency_target_ms,
        ) else {
            return;
        };
        let generation = session.watch_requests(&uri).map_or(0, |r| *r.borrow());
        let target = WarmTarget {
            uri,
            document,
            cursor,
            line_index,
            generation,
            multiline: false,
        };
        spawn_warm_up(
            &completer,
            &session,
            &settings,
            model,
            target,
            tier,
            Some(hint),
        );
    });
}

/// How long a cursor hint waits for the next one before its warm-up starts.
const HINT_REST: Duration = Duration::from_millis(100);

/// Prefills the stable part of `target`'s prompt at `tier` in the background, until a newer
/// request for the document (or, for a cursor hint, a newer hint) ends it.
fn spawn_warm_up(
    completer: &Arc<Completer>,
    session: &Arc<Session>,
    settings: &Arc<Settings>,
    model: ModelInfo,
    target: WarmTarget,
    tier: usize,
    hint: Option<u64>,
) {
    // Until the token counter has loaded, budgets are estimated and the window is cut elsewhere
    // than the keystrokes after it will cut it: such a warm-up would fill the cache with a
    // prompt nobody sends, while pacing counted it as held.
    if !crate::tokens::is_ready() {
        return;
    }
    let completer = completer.clone();
    let session = session.clone();
    let settings = settings.clone();
    let requests = session.watch_requests(&target.uri);
    let hints = hint.map(|hint| (completer.cursor_hints.subscribe(), hint));
    tokio::spawn(async move {
        if requests
            .as_ref()
            .is_some_and(|r| *r.borrow() != target.generation)
        {
            return;
        }
        // Ended by a newer request for the document, or (for a cursor hint) a newer hint.
        let cancel = CancellationToken::new();
        let _cancel_when_done = cancel.clone().drop_guard();
        tokio::spawn({
            let cancel = cancel.clone();
            let (requests, generation) = (requests.clone(), target.generation);
            async move {
                let newer_hint = async move {
                    match hints {
                        Some((hints, hint)) => until_superseded(Some(hints), hint).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = until_superseded(requests, generation) => cancel.cancel(),
                    () = newer_hint => cancel.cancel(),
                    () = cancel.cancelled() => {}
                }
            }
        });
        let hinted = hint.is_some();
        let prompt = build_prompt_on_pool(
            &completer,
            &session,
            &settings,
            &model,
            &target.uri,
            &target.document,
            target.cursor,
            tier,
            &cancel,
            true,
        )
        .await;
        let Some(prompt) = prompt else {
            return;
        };
        let Some(stable) = prompt.stable.clone().filter(|s| !s.is_empty()) else {
            return;
        };
        let uri = target.uri.0.as_str().to_string();
        let uri = uri.as_str();
        completer
            .pacing
            .sent(prompt.sent(uri, tier, target.line_index, &stable));
        tracing::debug!(tier, hint = hinted, "warming a prompt tier");
        let affinity = affinity::key(&session.roots(), uri);
        let config = backend_config(&settings);
        tokio::select! {
            biased;
            () = cancel.cancelled() => completer.pacing.ended(uri, tier, false, None),
            result = completer.backend.warm(&config, &model.id, &stable, &affinity) => match result {
                Ok(usage) => {
                    completer.pacing.ended(uri, tier, true, usage.as_ref());
                    // Still resting: climb to the next larger prompt.
                    let next = completer.pacing.warm_up_tier(
                        uri,
                        target.line_index,
                        tier,
                        settings.context_tokens,
                        target.multiline,
                        settings.latency_target_ms,
                    );
                    if let Some(next) = next.filter(|_| !cancel.is_cancelled()) {
                        spawn_warm_up(&completer, &session, &settings, model.clone(), target, next, hint);
                    }
                }
                Err(error) => {
                    tracing::debug!("warm-up failed: {error}");
                    completer.backend.health.record_background_failure(&error);
                    completer.pacing.ended(uri, tier, false, None);
                }
            },
        }
    });
}
