//! Suggestions remembered so that typing needs no backend call: the suggestion on screen
//! (typing-through) and a small LRU of recent results keyed by the prompt.

use std::collections::{HashMap, VecDeque};

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

const RECENT_CAPACITY: usize = 64;

#[derive(Default)]
pub struct SuggestionMemory {
    shown: HashMap<Uri, ShownSuggestion>,
    /// Most recent last; linear scans are cheaper than hashing at this size.
    recent: VecDeque<(u64, Option<RecentResult>)>,
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
        let at = self.recent.iter().position(|(k, _)| *k == key)?;
        let entry = self.recent.remove(at)?;
        let result = entry.1.clone();
        self.recent.push_back(entry);
        Some(result)
    }

    pub fn remember_recent(&mut self, key: u64, result: Option<RecentResult>) {
        if let Some(at) = self.recent.iter().position(|(k, _)| *k == key) {
            self.recent.remove(at);
        }
        if self.recent.len() >= RECENT_CAPACITY {
            self.recent.pop_front();
        }
        self.recent.push_back((key, result));
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
        for key in 0..100 {
            memory.remember_recent(key, None);
        }
        assert!(memory.recent(0).is_none());
        assert!(memory.recent(99).is_some());
    }
}
