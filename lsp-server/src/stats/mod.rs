//! Acceptance stats: per language and model, the suggestions shown, accepted and partly
//! accepted, and the time from a completion request's arrival in ghostline-lsp to its answer.
//! Counts and timings only: no text, no path, no URI is ever written or sent (the URI of the
//! suggestion on screen is kept in memory, to count each suggestion's accept once).
//!
//! Local (`stats` setting, on by default): one JSON line per event in `stats.jsonl` in the data
//! folder (`backend::affinity::data_dir`), appended by one `ghostline-stats` thread fed through
//! a bounded channel (a full channel drops the event; the editor never waits), rotated to
//! `stats.jsonl.1` past `store::MAX_FILE_BYTES`. `ghostline-lsp stats` and the
//! `ghostline.stats` command print the table (`store::table`).
//!
//! Team (`shareStats`, off by default): the same counters per language only (no model, no
//! text, no path) are sent to the backend every `SHARE_INTERVAL` and at shutdown
//! (`POST /v1/ghostline/suggestion-stats`, under the completions' API key); what fails to go
//! is kept for the next try.
//!
//! "Shown": an inline completion answered with a suggestion that is not the one already on
//! screen (typing through a suggestion answers its rest: the same suggestion, not counted
//! again). "Accepted": `ghostline.accept` (the item's command, sent by the editor on a full
//! accept); "partly accepted": `ghostline.accept` with `{"kind": "word" | "line"}`, counted
//! once per suggestion.

pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::backend::{Backend, BackendConfig, BackendError};

pub use store::Event;

/// Where the counters go on the backend (ghostline-serve's `http/suggestion_stats.rs`).
pub const SHARE_PATH: &str = ghostline_protocol::stats::PATH;
/// How often shared counters are sent (and once more at shutdown).
pub const SHARE_INTERVAL: Duration = Duration::from_secs(60);
/// Languages kept for sending at once; more (an editor inventing language ids) go to "other".
const MAX_SHARED_LANGUAGES: usize = 64;
/// Documents whose suggestion on screen is remembered (for counting its accept once).
const MAX_ON_SCREEN: usize = 1_000;

/// What an accept took: all of the suggestion, or its next word or line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    Whole,
    Part,
}

impl Accepted {
    /// The `kind` argument of `ghostline.accept`: "word" and "line" are partial accepts;
    /// none (or anything else) the whole suggestion.
    pub fn from_kind(kind: Option<&str>) -> Self {
        match kind {
            Some("word" | "line" | "partial") => Self::Part,
            _ => Self::Whole,
        }
    }
}

/// Counters of one language, as sent to the backend (the wire contract's).
pub use ghostline_protocol::stats::LanguageCounts as SharedCounts;

struct OnScreen {
    language: String,
    model: String,
    accepted: bool,
    partly: bool,
}

enum Message {
    Event(Event),
    Flush(tokio::sync::oneshot::Sender<()>),
}

#[derive(Default)]
pub struct Stats {
    writer: OnceLock<Option<SyncSender<Message>>>,
    on_screen: Mutex<HashMap<String, OnScreen>>,
    shared: Mutex<BTreeMap<String, SharedCounts>>,
}

/// A language id as it may be stored and sent: `[a-z0-9_+-]{1,32}` (lowercased, others `_`).
pub fn clean_language(language_id: &str) -> String {
    let cleaned: String = language_id
        .chars()
        .take(32)
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "unknown".to_string()
    } else {
        cleaned
    }
}

/// A model name as stored: one word (blanks and controls become `_`), at most 64 characters.
pub fn clean_model(model: &str) -> String {
    let cleaned: String = model
        .chars()
        .take(64)
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if cleaned.is_empty() {
        "unknown".to_string()
    } else {
        cleaned
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stats {
    /// A suggestion shown in `uri` (kept in memory only), `elapsed_ms` after its request
    /// arrived. `local`, `share`: the `stats` and `shareStats` settings.
    pub fn shown(
        &self,
        uri: &str,
        language_id: &str,
        model: &str,
        elapsed_ms: u64,
        local: bool,
        share: bool,
    ) {
        let language = clean_language(language_id);
        let model = clean_model(model);
        {
            let mut on_screen = lock(&self.on_screen);
            if on_screen.len() >= MAX_ON_SCREEN && !on_screen.contains_key(uri) {
                on_screen.clear();
            }
            on_screen.insert(
                uri.to_string(),
                OnScreen {
                    language: language.clone(),
                    model: model.clone(),
                    accepted: false,
                    partly: false,
                },
            );
        }
        if share {
            self.share(&language, |c| {
                c.shown += 1;
                c.latency_ms_sum += elapsed_ms;
                c.latency_count += 1;
            });
        }
        if local {
            self.write(Event::now(
                store::Kind::Shown,
                language,
                model,
                Some(elapsed_ms),
            ));
        }
    }

    /// `ghostline.accept` for `uri`: counted once per suggestion shown there (a whole accept
    /// after partial ones counts as both).
    pub fn accepted(&self, uri: &str, how: Accepted, local: bool, share: bool) {
        let counted = {
            let mut on_screen = lock(&self.on_screen);
            let Some(entry) = on_screen.get_mut(uri) else {
                return;
            };
            let already = match how {
                Accepted::Whole => std::mem::replace(&mut entry.accepted, true),
                Accepted::Part => std::mem::replace(&mut entry.partly, true),
            };
            if already {
                return;
            }
            (entry.language.clone(), entry.model.clone())
        };
        let (language, model) = counted;
        if share {
            self.share(&language, |c| match how {
                Accepted::Whole => c.accepted += 1,
                Accepted::Part => c.partial += 1,
            });
        }
        if local {
            let kind = match how {
                Accepted::Whole => store::Kind::Accepted,
                Accepted::Part => store::Kind::Partial,
            };
            self.write(Event::now(kind, language, model, None));
        }
    }

    /// The document closed: its suggestion is gone.
    pub fn forget(&self, uri: &str) {
        lock(&self.on_screen).remove(uri);
    }

    fn share(&self, language: &str, f: impl FnOnce(&mut SharedCounts)) {
        let mut shared = lock(&self.shared);
        let language = if shared.len() >= MAX_SHARED_LANGUAGES && !shared.contains_key(language) {
            "other"
        } else {
            language
        };
        let counts = shared
            .entry(language.to_string())
            .or_insert_with(|| SharedCounts {
                language: language.to_string(),
                ..SharedCounts::default()
            });
        f(counts);
    }

    fn writer(&self) -> Option<&SyncSender<Message>> {
        self.writer
            .get_or_init(|| {
                let dir = crate::backend::affinity::data_dir();
                let Some(dir) = dir else {
                    tracing::warn!("no data folder (GHOSTLINE_DATA_DIR, XDG_DATA_HOME, HOME): acceptance stats are not kept");
                    return None;
                };
                let (sender, receiver) = sync_channel(4096);
                let spawned = std::thread::Builder::new()
                    .name("ghostline-stats".into())
                    .spawn(move || store::write_loop(&dir, receiver));
                match spawned {
                    Ok(_) => Some(sender),
                    Err(e) => {
                        tracing::warn!("cannot start the stats writer ({e}): acceptance stats are not kept");
                        None
                    }
                }
            })
            .as_ref()
    }

    fn write(&self, event: Event) {
        let Some(writer) = self.writer() else {
            return;
        };
        match writer.try_send(Message::Event(event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => tracing::debug!("stats writer behind: one event dropped"),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Waits (up to `within`) until the events recorded so far are on disk.
    pub async fn flush_local(&self, within: Duration) {
        let Some(Some(writer)) = self.writer.get() else {
            return;
        };
        let (done, written) = tokio::sync::oneshot::channel();
        if writer.try_send(Message::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(within, written).await;
        }
    }

    /// Sends the counters gathered since the last send, when `share` (the `shareStats`
    /// setting) is on; with it off they are dropped, never sent. What fails to go is kept.
    pub async fn send_shared(
        &self,
        backend: &Backend,
        config: &BackendConfig,
        share: bool,
    ) -> Result<usize, BackendError> {
        let counts: Vec<SharedCounts> = std::mem::take(&mut *lock(&self.shared))
            .into_values()
            .collect();
        if !share || counts.is_empty() {
            return Ok(0);
        }
        let body = ghostline_protocol::stats::SuggestionStats { counts };
        match backend.post_json(config, SHARE_PATH, &body).await {
            Ok(()) => Ok(body.counts.len()),
            Err(error) => {
                let mut shared = lock(&self.shared);
                for old in body.counts {
                    let c = shared
                        .entry(old.language.clone())
                        .or_insert_with(|| SharedCounts {
                            language: old.language.clone(),
                            ..SharedCounts::default()
                        });
                    c.shown += old.shown;
                    c.accepted += old.accepted;
                    c.partial += old.partial;
                    c.latency_ms_sum += old.latency_ms_sum;
                    c.latency_count += old.latency_count;
                }
                Err(error)
            }
        }
    }
}

/// The table for the data folder's stats (see `store::table`); reads the disk.
pub fn table_for_data_dir(days: u64) -> String {
    let dir: Option<PathBuf> = crate::backend::affinity::data_dir();
    match dir {
        Some(dir) => store::table(&dir, store::unix_now(), days),
        None => "no data folder (set GHOSTLINE_DATA_DIR, XDG_DATA_HOME or HOME)\n".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_and_model_names_are_cleaned() {
        assert_eq!(clean_language("Rust"), "rust");
        assert_eq!(clean_language("c++"), "c++");
        assert_eq!(clean_language("/home/me/x.py"), "_home_me_x_py");
        assert_eq!(clean_language(&"a".repeat(40)).len(), 32);
        assert_eq!(clean_language(""), "unknown");
        assert_eq!(clean_model("qwen 2.5\n"), "qwen_2.5_");
    }

    #[test]
    fn each_suggestion_counts_one_accept_of_each_kind() {
        let stats = Stats::default();
        stats.accepted("file:///a", Accepted::Whole, false, true); // nothing shown there
        stats.shown("file:///a", "rust", "m", 10, false, true);
        stats.accepted("file:///a", Accepted::Part, false, true);
        stats.accepted("file:///a", Accepted::Part, false, true);
        stats.accepted("file:///a", Accepted::Whole, false, true);
        stats.accepted("file:///a", Accepted::Whole, false, true);
        stats.shown("file:///a", "rust", "m", 30, false, true);
        stats.shown("file:///b", "python", "m", 5, false, false); // not shared
        let shared = lock(&stats.shared);
        assert_eq!(shared.len(), 1);
        assert_eq!(
            shared["rust"],
            SharedCounts {
                language: "rust".into(),
                shown: 2,
                accepted: 1,
                partial: 1,
                latency_ms_sum: 40,
                latency_count: 2
            }
        );
    }
}
