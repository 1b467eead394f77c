//! From a completion request to a suggestion: the pipeline and the state it keeps between
//! requests (`Completer`). Shared by inline completion and the completion fallback.
//!
//! One inline request, top to bottom (`suggest.rs`):
//! request (`server/api/inline_completion.rs`, stamped at arrival by `server/dispatch.rs`) →
//! document snapshot (`session`) → typing-through (`memory`) → cursor analysis on the
//! blocking pool (`cursor`: reparse, `syntax`, single or multi-line, the cursor window) →
//! recent answers (`memory`) → prompt on the blocking pool (`prompt` → `context`: window,
//! sources, template; sized by `pacing`) → backend stream (`backend`) with the stop rules
//! (`stop`) → post-processing (`postprocess`) → response. `warm` prefills the next prompts in
//! the background; `report` tells the user about the backend; `blocking` is the pool.

pub mod blocking;
pub mod cursor;
pub mod memory;
pub mod pacing;
pub mod postprocess;
pub mod prompt;
pub mod report;
pub mod stop;
pub mod suggest;
pub mod syntax;
pub mod timings;
pub mod warm;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ropey::Rope;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::backend::{Backend, BackendConfig};
use crate::context::SnippetMemo;
use crate::session::Session;
use crate::settings::Settings;
use crate::stats::Stats;
use blocking::BlockingPool;
use memory::SuggestionMemory;
use pacing::Pacing;
use timings::Timings;

pub use suggest::suggest;
pub use warm::warm_at_cursor;

/// Stamped on a completion request when it arrives (see `server::dispatch`): which
/// request it is for its document, and when it arrived.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub generation: u64,
    pub arrived_ns: u64,
}

/// A suggestion for the document as it was when the request started.
#[derive(Clone, Debug)]
pub struct Suggestion {
    pub rope: Rope,
    pub text: String,
    pub cursor_char: usize,
    /// End of the replaced range on the cursor's line (== `cursor_char` when inserting).
    pub replace_end_char: usize,
    pub line_prefix: String,
    /// The document's `languageId` (the acceptance stats are per language).
    pub language_id: String,
    /// The rest of the suggestion already on screen, the user typing through it: the same
    /// suggestion, not a new one shown.
    pub typed_through: bool,
}

/// What the completion pipeline keeps between requests. Owned by the server next to the
/// `Session` (which holds what the editor said); nothing here is part of a document.
pub struct Completer {
    pub backend: Backend,
    pub memory: Mutex<SuggestionMemory>,
    /// The backend's speed and what it holds in its prefix cache: sizes each prompt.
    pub pacing: Pacing,
    /// Other files' context chosen per region of a file, kept while the user types there.
    pub snippet_memo: SnippetMemo,
    pub timings: Timings,
    /// Counts cursor hints (see `warm::warm_at_cursor`): a newer one ends an older one's
    /// warm-up.
    pub cursor_hints: watch::Sender<u64>,
    /// Where reparsing, the context sources and the template run (never the async threads).
    pub pool: BlockingPool,
    /// Suggestions shown and accepted (see `stats`).
    pub stats: Stats,
}

impl Completer {
    /// A completer for `session`; what it remembers per document goes when that closes.
    pub fn new(session: &Session) -> Arc<Self> {
        let completer = Arc::new(Self {
            backend: Backend::new(),
            memory: Mutex::new(SuggestionMemory::default()),
            pacing: Pacing::default(),
            snippet_memo: SnippetMemo::default(),
            timings: Timings::default(),
            cursor_hints: watch::channel(0).0,
            pool: BlockingPool::default(),
            stats: Stats::default(),
        });
        let weak = Arc::downgrade(&completer);
        session.on_close(move |uri| {
            if let Some(completer) = weak.upgrade() {
                completer.lock_memory().forget(uri);
                completer.stats.forget(uri.0.as_str());
            }
        });
        completer
    }

    pub fn lock_memory(&self) -> MutexGuard<'_, SuggestionMemory> {
        match self.memory.lock() {
            Ok(memory) => memory,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The backend's part of the settings.
pub fn backend_config(settings: &Settings) -> BackendConfig {
    BackendConfig {
        url: settings.backend_url.clone(),
        api_key: settings.api_key(),
        ca_file: settings.ca_file.clone(),
        model: settings.model.clone(),
        timeout: Duration::from_millis(settings.timeout_ms),
    }
}
