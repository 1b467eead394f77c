//! Warm-ups: prefilling the backend's prefix cache with the prompts the next keystrokes will
//! send — the next budget tier after a suggestion, or the whole budget's prompt when it is
//! short enough to be held after a rest (`warm_next_tier`), and the spot a cursor
//! came to rest on (`warm_at_cursor`). A cursor hint passes the request's gates (`gate`);
//! prompts are built on the blocking pool like a request's, and a newer request (or hint)
//! cancels them there too.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::gen_lsp_types::Uri;

use super::gate::{admit_cursor, admit_document};
use super::pacing::Ask;
use super::prompt::{build_prompt_on_pool, Prompt, PromptJob};
use super::request::{until_superseded, Env, Request};
use super::stream::Generated;
use super::{backend_config, Completer};
use crate::backend::{affinity, ModelInfo};
use crate::edit::position_to_char;
use crate::session::{Document, Session};

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

impl WarmTarget {
    /// What pacing is asked about a warm-up here, above `tier`.
    fn ask(&self, env: &Env) -> Ask<'_> {
        Ask {
            uri: self.uri.0.as_str(),
            cursor_line: self.line_index,
            max: env.settings.context_tokens,
            multiline: self.multiline,
            target_ms: env.settings.latency_target_ms,
        }
    }
}

/// After a suggestion, prefills the stable part of a larger prompt (`pacing::warm_up_tier`) in
/// the background, so the following pauses in this region, or the same spot asked again after
/// a rest, can afford it; while nothing newer comes, the next larger one follows, up to
/// `contextTokens`. Only for backends that take `max_tokens: 0` (ghostline-serve, which
/// reports its speed) and raw prompts. A newer request for the document cancels it; the
/// backend keeps what it computed.
pub(super) fn warm_next_tier(env: &Env, generated: &Generated, target: WarmTarget) {
    if generated.model.speed.is_none() {
        return;
    }
    let ask = target.ask(env);
    let Some(tier) = env.completer.pacing.warm_up_tier(ask, generated.tier) else {
        return;
    };
    spawn_warm_up(env, generated.model.clone(), target, tier, None);
}

/// The user moved the cursor to `request.position` (a code action request, which VS Code sends
/// on every cursor move, or any other sign of where they are) and has typed nothing there yet:
/// prefill the prompt a keystroke there would send (`pacing::warm_here_tier`), so the first
/// pause in a region is already a follow-up. The document is the request's snapshot; a request
/// for the document after it, or a newer hint, ends it; the backend keeps what it computed.
pub fn warm_at_cursor(completer: &Arc<Completer>, session: &Arc<Session>, request: Request) {
    let mut hint = 0;
    completer.cursor_hints.send_modify(|n| {
        *n += 1;
        hint = *n;
    });
    // The requests that came before this hint; a later one supersedes its warm-up.
    let generation = session
        .watch_requests(&request.uri)
        .map_or(0, |r| *r.borrow());
    let env = Env {
        completer: completer.clone(),
        session: session.clone(),
        settings: session.settings(),
    };
    tokio::spawn(async move {
        // A cursor moving line by line sends a hint per line: wait for it to rest.
        tokio::time::sleep(HINT_REST).await;
        if *env.completer.cursor_hints.borrow() != hint {
            return;
        }
        if let Some((model, target, tier)) = warm_here(&env, request, generation).await {
            spawn_warm_up(&env, model, target, tier, Some(hint));
        }
    });
}

/// How long a cursor hint waits for the next one before its warm-up starts.
const HINT_REST: Duration = Duration::from_millis(100);

/// Whether the spot of a cursor hint is worth a warm-up: through the request's gates, with a
/// backend that reports its speed, at a tier the backend does not hold there yet. The model,
/// the target and the tier when it is.
async fn warm_here(
    env: &Env,
    request: Request,
    generation: u64,
) -> Option<(ModelInfo, WarmTarget, usize)> {
    let (completer, session, settings) = (&env.completer, &env.session, &env.settings);
    if completer.backend.health.is_backing_off() {
        return None;
    }
    let uri = request.uri;
    let document = admit_document(session, settings, &uri, request.document)?;
    let model = completer
        .backend
        .model(&backend_config(settings))
        .await
        .ok()?;
    let (prefill, decode) = model.speed?;
    completer.pacing.reported(prefill, decode);
    let cursor = position_to_char(&document.rope, request.position, session.encoding());
    let unwatched = CancellationToken::new();
    admit_cursor(&unwatched, &uri, &document.rope, cursor).await?;
    let line_index = document
        .rope
        .char_to_line(cursor.min(document.rope.len_chars()));
    let tier = completer.pacing.warm_here_tier(
        uri.0.as_str(),
        line_index,
        settings.context_tokens,
        settings.latency_target_ms,
    )?;
    let target = WarmTarget {
        uri,
        document,
        cursor,
        line_index,
        generation,
        multiline: false,
    };
    Some((model, target, tier))
}

/// Prefills the stable part of `target`'s prompt at `tier` in the background, until a newer
/// request for the document (or, for a cursor hint, a newer hint) ends it; answered, it climbs
/// on to the next tier worth it.
fn spawn_warm_up(env: &Env, model: ModelInfo, target: WarmTarget, tier: usize, hint: Option<u64>) {
    // Until the token counter has loaded, budgets are estimated and the window is cut elsewhere
    // than the keystrokes after it will cut it: such a warm-up would fill the cache with a
    // prompt nobody sends, while pacing counted it as held.
    if !crate::tokens::is_ready() {
        return;
    }
    let env = env.clone();
    let requests = env.session.watch_requests(&target.uri);
    let hints = hint.map(|hint| (env.completer.cursor_hints.subscribe(), hint));
    tokio::spawn(async move {
        if requests
            .as_ref()
            .is_some_and(|r| *r.borrow() != target.generation)
        {
            return;
        }
        let cancel = warm_cancellation(requests, target.generation, hints);
        let _cancel_when_done = cancel.clone().drop_guard();
        // After an answer, the whole budget's prompt when it is small enough to be held by
        // the ask after a rest (`pacing::fits_rest`); else the tier pacing chose.
        let largest = match hint {
            None => largest_within_rest(&env, &model, &target, tier, &cancel).await,
            Some(_) => None,
        };
        let (tier, prompt) = match largest {
            Some(found) => found,
            None => {
                let job = prompt_job(&target, tier);
                let Some(prompt) = build_prompt_on_pool(&env, &model, job, &cancel).await else {
                    return;
                };
                (tier, prompt)
            }
        };
        let warmed = warm_prompt(
            &env,
            &model,
            &target,
            (tier, prompt),
            &cancel,
            hint.is_some(),
        );
        if !warmed.await {
            return;
        }
        // Still resting: climb to the next larger prompt.
        let next = env.completer.pacing.warm_up_tier(target.ask(&env), tier);
        if let Some(next) = next.filter(|_| !cancel.is_cancelled()) {
            spawn_warm_up(&env, model, target, next, hint);
        }
    });
}

/// A token cancelled by a newer request for the document than `generation`, or (for a cursor
/// hint) a newer hint.
fn warm_cancellation(
    requests: Option<watch::Receiver<u64>>,
    generation: u64,
    hints: Option<(watch::Receiver<u64>, u64)>,
) -> CancellationToken {
    let cancel = CancellationToken::new();
    let watcher = cancel.clone();
    tokio::spawn(async move {
        let newer_hint = async move {
            match hints {
                Some((hints, hint)) => until_superseded(Some(hints), hint).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = until_superseded(requests, generation) => watcher.cancel(),
            () = newer_hint => watcher.cancel(),
            () = watcher.cancelled() => {}
        }
    });
    cancel
}

fn prompt_job(target: &WarmTarget, tier: usize) -> PromptJob {
    PromptJob {
        uri: target.uri.clone(),
        document: target.document.clone(),
        cursor: target.cursor,
        tier,
        reparse: true,
    }
}

/// The whole budget's prompt at `target` (`contextTokens`, when above `tier`), built, when
/// pacing says a warm-up of it is held by the ask after a rest: its real size decides, not
/// the tier's cap. `None` otherwise, or when cancelled.
async fn largest_within_rest(
    env: &Env,
    model: &ModelInfo,
    target: &WarmTarget,
    tier: usize,
    cancel: &CancellationToken,
) -> Option<(usize, Prompt)> {
    let largest = env.settings.context_tokens;
    if largest <= tier {
        return None;
    }
    let prompt = build_prompt_on_pool(env, model, prompt_job(target, largest), cancel).await?;
    let fits = env
        .completer
        .pacing
        .fits_rest(target.ask(env), largest, prompt.stable_tokens);
    fits.then_some((largest, prompt))
}

/// Has the backend prefill the stable part of `target`'s prompt built for `tier`; pacing
/// hears of both. Whether the backend answered (and the chain may climb).
async fn warm_prompt(
    env: &Env,
    model: &ModelInfo,
    target: &WarmTarget,
    (tier, prompt): (usize, Prompt),
    cancel: &CancellationToken,
    hinted: bool,
) -> bool {
    let completer = &env.completer;
    let Some(stable) = prompt.stable.as_deref().filter(|s| !s.is_empty()) else {
        return false;
    };
    let uri = target.uri.0.as_str();
    completer
        .pacing
        .sent(prompt.sent(uri, tier, target.line_index));
    tracing::debug!(tier, hint = hinted, "warming a prompt tier");
    let affinity = affinity::key(&env.session.roots(), uri);
    let config = backend_config(&env.settings);
    tokio::select! {
        biased;
        () = cancel.cancelled() => {
            completer.pacing.ended(uri, tier, false, None);
            false
        }
        result = completer.backend.warm(&config, &model.id, stable, &affinity) => match result {
            Ok(usage) => {
                completer.pacing.ended(uri, tier, true, usage.as_ref());
                true
            }
            Err(error) => {
                tracing::debug!("warm-up failed: {error}");
                completer.backend.health.record_background_failure(&error);
                completer.pacing.ended(uri, tier, false, None);
                false
            }
        },
    }
}
