//! From a completion request to a suggestion: the pipeline and the state it keeps between
//! requests (`Completer`). Shared by inline completion and the completion fallback.
//!
//! One request (`Request`: the document as it was when the request arrived, the cursor, the
//! ticket) passes through named stages, each a file (`suggest.rs` runs them in order, over one
//! `RequestContext` from `request.rs`: settings, ticket, cancellation):
//! `gate` (excluded files, limits, languages; on the blocking pool, credential files and a
//! cursor inside a secret) → `recall` (typing through the suggestion on screen) → `analyze`
//! on the pool (reparse, single or multi-line, the cursor window) → `recall` (the same prompt
//! answered lately) → `prompt` on the pool (`context`: window, sources, template; sized by
//! `pacing`) → `stream` (the backend, the stop rules of `stop`, within the deadline) →
//! `finish` (pacing told, the next tier warmed, `postprocess`, remembered, timed). `warm`
//! prefills the next prompts in the background through the same gates; `report` tells the
//! user about the backend; `blocking` is the pool.

pub mod analyze;
pub mod blocking;
mod finish;
mod gate;
pub mod memory;
pub mod pacing;
pub mod postprocess;
pub mod prompt;
mod recall;
pub mod report;
mod request;
pub mod stop;
mod stream;
pub mod suggest;
pub mod syntax;
pub mod timings;
pub mod warm;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ropey::Rope;
use tokio::sync::watch;
use tower_lsp_server::gen_lsp_types::Uri;

use crate::backend::{Backend, BackendConfig};
use crate::context::SnippetMemo;
use crate::session::Session;
use crate::settings::Settings;
use crate::stats::Stats;
use blocking::BlockingPool;
use memory::SuggestionMemory;
use pacing::Pacing;
use timings::{RequestTiming, Timings};

pub use request::Request;
pub use suggest::suggest;
pub use warm::warm_at_cursor;

/// Stamped on a completion request when it arrives (see `server::dispatch`): which
/// request it is for its document, and when it arrived.
#[derive(Clone, Copy, Debug, Default)]
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
/// `Session` (which holds what the editor said); nothing here is part of a document. Its state
/// is the pipeline's own: the server reaches it through the methods below.
pub struct Completer {
    backend: Backend,
    memory: Mutex<SuggestionMemory>,
    /// The backend's speed and what it holds in its prefix cache: sizes each prompt.
    pacing: Pacing,
    /// Other files' context chosen per region of a file, kept while the user types there.
    snippet_memo: SnippetMemo,
    timings: Timings,
    /// Counts cursor hints (see `warm::warm_at_cursor`): a newer one ends an older one's
    /// warm-up.
    cursor_hints: watch::Sender<u64>,
    /// Where reparsing, the secret check, the context sources and the template run (never
    /// the async threads).
    pool: BlockingPool,
    /// Suggestions shown and accepted (see `stats`).
    stats: Stats,
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
                completer.forget_shown(uri);
                completer.stats.forget(uri.0.as_str());
            }
        });
        completer
    }

    /// The backend client (its model, the acceptance stats' destination).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Suggestions shown and accepted.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The model the backend last said it serves, if it said.
    pub fn cached_model_id(&self) -> Option<String> {
        self.backend.cached_model_id()
    }

    /// Forgets the suggestion on screen in `uri` (accepted, dismissed, closed): typing can no
    /// longer bring it back.
    pub fn forget_shown(&self, uri: &Uri) {
        self.lock_memory().forget(uri);
    }

    /// The server's own time for each request since the last call (see `timings`).
    pub fn take_timings(&self) -> Vec<RequestTiming> {
        self.timings.take()
    }

    fn lock_memory(&self) -> MutexGuard<'_, SuggestionMemory> {
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
