//! Suggestions remembered so that typing needs no backend call: the suggestion on screen
//! (typing-through) and a small LRU of recent results keyed by the prompt.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use lru::LruCache;

use tower_lsp_server::gen_lsp_types::Uri;

/// The suggestion last shown for a document, anchored where it was shown.
#[derive(Clone, Debug)]
pub struct ShownSuggestion {
    pub line_index: usize,
    /// The line's text before the anchor when it was shown.
    pub line_before_anchor: String,
    /// The line's text after the anchor when it was shown; typing happens before it, so it
    /// must still be there unchanged.
    pub rest_of_line: String,
    pub text: String,
    pub replaced_chars: usize,
    /// The budget tier of the prompt it came from, and whether it was a multi-line ask: a
    /// person resting at the spot is given a better one once a larger prompt is affordable.
    pub tier: usize,
    pub multiline: bool,
}

/// A remembered result for one prompt.
#[derive(Clone, Debug)]
pub struct RecentResult {
    pub text: String,
    pub replaced_chars: usize,
}

const RECENT_CAPACITY: NonZeroUsize = NonZeroUsize::new(64).unwrap();

pub struct SuggestionMemory {
    shown: HashMap<Uri, ShownSuggestion>,
    /// Least recently used out, as the prompts worth remembering are the latest (a backspace
    /// and the same letter again). Not `quick_cache` (the line-token cache's): its S3-FIFO
    /// keeps the first prompts of a session and churns the newest among the last few slots
    /// (checked: after 100 new prompts it held the first 61 and the last 2).
    recent: LruCache<u64, (usize, Option<RecentResult>)>,
}

impl Default for SuggestionMemory {
    fn default() -> Self {
        SuggestionMemory {
            shown: HashMap::new(),
            recent: LruCache::new(RECENT_CAPACITY),
        }
    }
}

impl SuggestionMemory {
    pub fn remember_shown(&mut self, uri: &Uri, shown: ShownSuggestion) {
        self.shown.insert(uri.clone(), shown);
    }

    pub fn forget(&mut self, uri: &Uri) {
        self.shown.remove(uri);
    }

    /// The rest of the shown suggestion when the user has typed a prefix of it since it
    /// was shown (and changed nothing else on the line). Asked again where it was shown with
    /// nothing typed, it is not the answer when `better(tier, multiline)` says a larger prompt
    /// than its own is affordable now (the person rested, and a warm-up made it cheap).
    pub fn typed_through(
        &self,
        uri: &Uri,
        line_index: usize,
        line_prefix: &str,
        rest_of_line: &str,
        better: impl Fn(usize, bool) -> bool,
    ) -> Option<RecentResult> {
        let shown = self.shown.get(uri)?;
        if shown.line_index != line_index || shown.rest_of_line != rest_of_line {
            return None;
        }
        let typed = line_prefix.strip_prefix(shown.line_before_anchor.as_str())?;
        if typed.is_empty() && better(shown.tier, shown.multiline) {
            return None;
        }
        let remaining = shown.text.strip_prefix(typed)?;
        if remaining.trim().is_empty() {
            return None;
        }
        Some(RecentResult {
            text: remaining.to_string(),
            replaced_chars: shown.replaced_chars,
        })
    }

    /// The answer to a prompt asked lately, and the budget tier it had. `(tier, None)` means
    /// "asked before, and the answer was nothing".
    pub fn recent(&mut self, key: u64) -> Option<(usize, Option<RecentResult>)> {
        self.recent.get(&key).cloned()
    }

    pub fn remember_recent(&mut self, key: u64, tier: usize, result: Option<RecentResult>) {
        self.recent.put(key, (tier, result));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_a_prefix_of_the_suggestion_answers_the_rest() {
        let uri = Uri::from("file:///a.rs");
        let mut memory = SuggestionMemory::default();
        memory.remember_shown(
            &uri,
            ShownSuggestion {
                line_index: 3,
                line_before_anchor: "    let ".into(),
                rest_of_line: "".into(),
                text: "value = 42;".into(),
                replaced_chars: 0,
                tier: 192,
                multiline: false,
            },
        );
        let never = |_: usize, _: bool| false;
        assert_eq!(
            memory
                .typed_through(&uri, 3, "    let val", "", never)
                .unwrap()
                .text,
            "ue = 42;"
        );
        assert!(memory
            .typed_through(&uri, 3, "    let vax", "", never)
            .is_none());
        assert!(memory
            .typed_through(&uri, 4, "    let val", "", never)
            .is_none());
        assert!(memory
            .typed_through(&uri, 3, "    let value = 42;", "", never)
            .is_none());
        // Asked again where it was shown: the same, unless a larger prompt is affordable now;
        // typing through it is answered from memory either way.
        let larger = |tier: usize, _: bool| tier < 1024;
        assert!(memory
            .typed_through(&uri, 3, "    let ", "", never)
            .is_some());
        assert!(memory
            .typed_through(&uri, 3, "    let ", "", larger)
            .is_none());
        assert!(memory
            .typed_through(&uri, 3, "    let v", "", larger)
            .is_some());
    }

    #[test]
    fn recent_is_bounded_lru() {
        let mut memory = SuggestionMemory::default();
        let result = |text: &str| {
            Some(RecentResult {
                text: text.into(),
                replaced_chars: 0,
            })
        };
        for key in 0..100 {
            memory.remember_recent(key, 192, None);
            // One prompt asked again all along stays, however many came after it.
            if key == 0 {
                memory.remember_recent(1_000, 192, result("x"));
            }
            assert!(memory.recent(1_000).is_some());
        }
        assert_eq!(memory.recent.len(), RECENT_CAPACITY.get());
        assert!(
            memory.recent(0).is_none(),
            "the least recently used is gone"
        );
        assert!(memory.recent(36).is_none());
        assert!(memory.recent(37).is_some(), "the last 63 are kept");
        assert!(
            matches!(memory.recent(99), Some((192, None))),
            "asked, and the answer was nothing"
        );
        // Remembering a prompt again replaces its result.
        memory.remember_recent(99, 1024, result("y"));
        assert_eq!(memory.recent(99).unwrap().1.unwrap().text, "y");
    }
}
