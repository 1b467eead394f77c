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
    recent: LruCache<u64, Option<RecentResult>>,
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
    /// was shown (and changed nothing else on the line).
    pub fn typed_through(
        &self,
        uri: &Uri,
        line_index: usize,
        line_prefix: &str,
        rest_of_line: &str,
    ) -> Option<RecentResult> {
        let shown = self.shown.get(uri)?;
        if shown.line_index != line_index || shown.rest_of_line != rest_of_line {
            return None;
        }
        let typed = line_prefix.strip_prefix(shown.line_before_anchor.as_str())?;
        let remaining = shown.text.strip_prefix(typed)?;
        if remaining.trim().is_empty() {
            return None;
        }
        Some(RecentResult {
            text: remaining.to_string(),
            replaced_chars: shown.replaced_chars,
        })
    }

    /// `Some(None)` means "asked before, and the answer was nothing".
    pub fn recent(&mut self, key: u64) -> Option<Option<RecentResult>> {
        self.recent.get(&key).cloned()
    }

    pub fn remember_recent(&mut self, key: u64, result: Option<RecentResult>) {
        self.recent.put(key, result);
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
            },
        );
        assert_eq!(
            memory
                .typed_through(&uri, 3, "    let val", "")
                .unwrap()
                .text,
            "ue = 42;"
        );
        assert!(memory.typed_through(&uri, 3, "    let vax", "").is_none());
        assert!(memory.typed_through(&uri, 4, "    let val", "").is_none());
        assert!(memory
            .typed_through(&uri, 3, "    let value = 42;", "")
            .is_none());
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
            memory.remember_recent(key, None);
            // One prompt asked again all along stays, however many came after it.
            if key == 0 {
                memory.remember_recent(1_000, result("x"));
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
            matches!(memory.recent(99), Some(None)),
            "asked, and the answer was nothing"
        );
        // Remembering a prompt again replaces its result.
        memory.remember_recent(99, result("y"));
        assert_eq!(memory.recent(99).unwrap().unwrap().text, "y");
    }
}
