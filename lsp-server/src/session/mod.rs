//! The session owns everything that outlives one request: open documents, settings, the
//! negotiated position encoding, the latest completion request per document, suggestion
//! memory and the backend client.

mod document;
mod settings;

pub use document::Document;
pub use settings::{MultilineMode, Settings};

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use dashmap::DashMap;
use tokio::sync::watch;
use tower_lsp_server::gen_lsp_types::Uri;

use crate::backend::Backend;
use crate::complete::memory::SuggestionMemory;
use crate::complete::timings::Timings;
use crate::edit::PositionEncoding;

pub struct Session {
    documents: DashMap<Uri, Document>,
    settings: RwLock<Arc<Settings>>,
    encoding: AtomicU8,
    /// Latest completion request generation per document. A request whose generation is no
    /// longer the latest has been superseded and stops (see `server::dispatch`).
    latest_request: DashMap<Uri, watch::Sender<u64>>,
    next_generation: AtomicU64,
    pub memory: Mutex<SuggestionMemory>,
    pub backend: Backend,
    pub timings: Timings,
    /// Set when the client sends `exit`: the process ends without waiting for requests
    /// still in flight.
    pub exit_requested: tokio::sync::Notify,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        Self {
            documents: DashMap::new(),
            settings: RwLock::new(Arc::new(Settings::default())),
            encoding: AtomicU8::new(PositionEncoding::Utf16.as_u8()),
            latest_request: DashMap::new(),
            next_generation: AtomicU64::new(1),
            memory: Mutex::new(SuggestionMemory::default()),
            backend: Backend::new(),
            timings: Timings::default(),
            exit_requested: tokio::sync::Notify::new(),
        }
    }

    pub fn encoding(&self) -> PositionEncoding {
        PositionEncoding::from_u8(self.encoding.load(Ordering::Relaxed))
    }

    pub fn set_encoding(&self, encoding: PositionEncoding) {
        self.encoding.store(encoding.as_u8(), Ordering::Relaxed);
    }

    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(settings) => settings.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn update_settings(&self, update: &serde_json::Value) {
        let merged = Arc::new(self.settings().merged(update));
        match self.settings.write() {
            Ok(mut settings) => *settings = merged,
            Err(poisoned) => *poisoned.into_inner() = merged,
        }
    }

    pub fn open_document(&self, uri: Uri, document: Document) {
        self.documents.insert(uri, document);
    }

    /// Runs `edit` on the document if it is open; returns whether it was.
    pub fn edit_document(&self, uri: &Uri, edit: impl FnOnce(&mut Document)) -> bool {
        match self.documents.get_mut(uri) {
            Some(mut document) => {
                edit(&mut document);
                true
            }
            None => false,
        }
    }

    /// Frees everything kept for the document and stops its in-flight completion.
    pub fn close_document(&self, uri: &Uri) {
        self.documents.remove(uri);
        if let Some((_, latest)) = self.latest_request.remove(uri) {
            latest.send_replace(0);
        }
        self.lock_memory().forget(uri);
    }

    pub fn snapshot(&self, uri: &Uri) -> Option<Document> {
        self.documents.get(uri).map(|document| document.clone())
    }

    pub fn open_document_count(&self) -> usize {
        self.documents.len()
    }

    /// Registers a new completion request for `uri`, superseding (and so cancelling) any
    /// older one still running for the same document. Called in arrival order.
    pub fn begin_request(&self, uri: &Uri) -> u64 {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        match self.latest_request.get(uri) {
            Some(latest) => {
                latest.send_replace(generation);
            }
            None => {
                self.latest_request
                    .insert(uri.clone(), watch::channel(generation).0);
            }
        }
        generation
    }

    /// A receiver that changes when a newer request for `uri` arrives.
    pub fn watch_requests(&self, uri: &Uri) -> Option<watch::Receiver<u64>> {
        self.latest_request
            .get(uri)
            .map(|latest| latest.subscribe())
    }

    pub fn lock_memory(&self) -> std::sync::MutexGuard<'_, SuggestionMemory> {
        match self.memory.lock() {
            Ok(memory) => memory,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
