//! The recall stage: answers from memory, without the backend. First the suggestion on screen,
//! when the user is typing what it says (`typed_through`); then, once the cursor is analyzed,
//! the same prompt answered lately (`recent`: a keystroke and its backspace come back to it).
//! What is shown is remembered here too (`remember_shown`).

use std::cell::Cell;
use std::hash::{Hash, Hasher};

use tower_lsp_server::gen_lsp_types::Uri;

use super::analyze::CursorLine;
use super::memory::{RecentResult, ShownSuggestion};
use super::pacing::{Ask, REST_PATIENCE};
use super::Completer;
use crate::context::window::CursorContext;
use crate::settings::Settings;

/// What the suggestion on screen says about this request.
#[derive(Debug, Default)]
pub(super) struct OnScreen {
    /// The rest of the suggestion on screen, which the user is typing through.
    pub typed_through: Option<RecentResult>,
    /// Asked again where it was shown, nothing typed since: the person is resting, and the
    /// backend holds a larger prompt there now (see `pacing::Pacing::rest_tier`). The tier to
    /// ask with, instead of the suggestion on screen or a recent answer.
    pub rest_tier: Option<usize>,
}

/// Whether the user is typing what the suggestion on screen in `uri` says. A person resting
/// where it was shown gets the better answer once the backend holds a larger prompt there (the
/// warm-ups after an answer climb while nothing happens), computed within a longer target
/// (`pacing::REST_PATIENCE`): they have the old one to read meanwhile.
pub(super) fn on_screen(
    completer: &Completer,
    settings: &Settings,
    uri: &Uri,
    line: &CursorLine,
) -> OnScreen {
    let rest_target_ms = settings.latency_target_ms * REST_PATIENCE;
    let rest_tier = Cell::new(None);
    let better_at_rest = |tier: usize, multiline: bool| {
        let ask = Ask {
            uri: uri.0.as_str(),
            cursor_line: line.index,
            max: settings.context_tokens,
            multiline,
            target_ms: rest_target_ms,
        };
        rest_tier.set(completer.pacing.rest_tier(ask, tier));
        rest_tier.get().is_some()
    };
    let typed_through = completer.lock_memory().typed_through(
        uri,
        line.index,
        &line.prefix,
        &line.rest,
        better_at_rest,
    );
    OnScreen {
        typed_through,
        rest_tier: rest_tier.get(),
    }
}

/// The memory's key for a prompt: what decides its answer (the backend, the model and the
/// prompt's settings, the window's text, single or multi-line).
pub(super) fn prompt_key(settings: &Settings, window: &CursorContext, multiline: bool) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        &settings.backend_url,
        &settings.model,
        &settings.fim_template,
        settings.max_tokens,
        settings.context_mode,
        settings.prompt_family,
    )
        .hash(&mut hasher);
    (
        &window.prefix,
        &window.suffix,
        multiline,
        settings.max_lines,
    )
        .hash(&mut hasher);
    hasher.finish()
}

/// The answer to the prompt `key` asked lately, and its tier; `(tier, None)`: asked, and the
/// answer was nothing. Not for a person resting (`rest_tier`): they wait for a better one.
pub(super) fn recent(
    completer: &Completer,
    key: u64,
    rest_tier: Option<usize>,
) -> Option<(usize, Option<RecentResult>)> {
    completer
        .lock_memory()
        .recent(key)
        .filter(|_| rest_tier.is_none())
}

/// Remembers `result` as the suggestion on screen in `uri`, anchored at `line`: typing through
/// it is answered from memory (`on_screen`).
pub(super) fn remember_shown(
    completer: &Completer,
    uri: &Uri,
    line: &CursorLine,
    result: &RecentResult,
    (tier, multiline): (usize, bool),
) {
    completer.lock_memory().remember_shown(
        uri,
        ShownSuggestion {
            line_index: line.index,
            line_before_anchor: line.prefix.clone(),
            rest_of_line: line.rest.clone(),
            text: result.text.clone(),
            replaced_chars: result.replaced_chars,
            tier,
            multiline,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::complete::analyze::cursor_line;
    use crate::context::window::cursor_context;
    use crate::session::Session;
    use ropey::Rope;

    fn shown(text: &str) -> RecentResult {
        RecentResult {
            text: text.into(),
            replaced_chars: 0,
        }
    }

    #[test]
    fn typing_through_the_suggestion_on_screen_is_answered_from_memory() {
        let session = Session::new();
        let completer = Completer::new(&session);
        let settings = Settings::default();
        let uri = Uri::from("file:///w/a.py");
        let before = Rope::from_str("def f():\n    return \n");
        let line = cursor_line(&before, before.line_to_char(1) + 11);
        assert!(on_screen(&completer, &settings, &uri, &line)
            .typed_through
            .is_none());
        remember_shown(&completer, &uri, &line, &shown("a + b"), (192, false));
        // Two characters of it typed: the rest, from memory.
        let typed = Rope::from_str("def f():\n    return a \n");
        let line = cursor_line(&typed, typed.line_to_char(1) + 13);
        let answer = on_screen(&completer, &settings, &uri, &line);
        assert_eq!(answer.typed_through.unwrap().text, "+ b");
        // The backend's speed is unknown: no larger tier is worth a rest.
        assert_eq!(answer.rest_tier, None);
        // Something else typed: not the suggestion on screen.
        let other = Rope::from_str("def f():\n    return x\n");
        let line = cursor_line(&other, other.line_to_char(1) + 12);
        assert!(on_screen(&completer, &settings, &uri, &line)
            .typed_through
            .is_none());
        // Forgotten (accepted, dismissed): typing cannot bring it back.
        let line = cursor_line(&typed, typed.line_to_char(1) + 13);
        completer.forget_shown(&uri);
        assert!(on_screen(&completer, &settings, &uri, &line)
            .typed_through
            .is_none());
    }

    #[test]
    fn the_same_prompt_is_recalled_unless_the_person_rests() {
        let session = Session::new();
        let completer = Completer::new(&session);
        let settings = Settings::default();
        let rope = Rope::from_str("fn main() {\n    let x = \n}\n");
        let cursor = rope.line_to_char(1) + 12;
        let window = cursor_context(&rope, cursor, settings.context_tokens);
        let key = prompt_key(&settings, &window, false);
        assert_ne!(key, prompt_key(&settings, &window, true));
        let other_model = Settings {
            model: Some("another".into()),
            ..Settings::default()
        };
        assert_ne!(key, prompt_key(&other_model, &window, false));
        assert!(recent(&completer, key, None).is_none());
        completer
            .lock_memory()
            .remember_recent(key, 384, Some(shown("42;")));
        let (tier, answer) = recent(&completer, key, None).unwrap();
        assert_eq!((tier, answer.unwrap().text.as_str()), (384, "42;"));
        assert!(recent(&completer, key, Some(1024)).is_none());
    }
}
