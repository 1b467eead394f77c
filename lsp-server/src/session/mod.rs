//! The session owns everything that outlives one request: open documents, settings, the
//! negotiated position encoding, the latest completion request per document, suggestion
//! memory and the backend client.

mod document;
mod settings;

pub use document::Document;
pub use settings::{ContextMode, MultilineMode, PromptFamily, Settings};

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use dashmap::DashMap;
use tokio::sync::watch;
use tower_lsp_server::gen_lsp_types::Uri;

use crate::backend::Backend;
use crate::complete::memory::SuggestionMemory;
use crate::complete::pacing::Pacing;
use crate::complete::timings::Timings;
use crate::context::{OpenDocument, SnippetMemo};
use crate::edit::PositionEncoding;
use crate::index::{uri_to_path, IndexConfig, WorkspaceIndex};
use crate::privacy::Excludes;
use crate::syntax::{parse_rope, queries};

/// Documents remembered as recently edited (a source of prompt context).
const RECENTLY_EDITED: usize = 8;

pub struct Session {
    documents: DashMap<Uri, Document>,
    settings: RwLock<Arc<Settings>>,
    encoding: AtomicU8,
    /// Latest completion request generation per document. A request whose generation is no
    /// longer the latest has been superseded and stops (see `server::dispatch`).
    latest_request: DashMap<Uri, watch::Sender<u64>>,
    next_generation: AtomicU64,
    /// Counts cursor hints (see `complete::warm_at_cursor`): a newer one ends an older one's
    /// warm-up.
    pub cursor_hints: watch::Sender<u64>,
    pub memory: Mutex<SuggestionMemory>,
    pub backend: Backend,
    /// The backend's speed and what it holds in its prefix cache: sizes each prompt.
    pub pacing: Pacing,
    /// Other files' context chosen per region of a file, kept while the user types there.
    pub snippet_memo: SnippetMemo,
    pub timings: Timings,
    /// Definitions, imports and similarity windows of the workspace, built in the background.
    pub index: Arc<WorkspaceIndex>,
    /// Workspace folders from `initialize`.
    roots: RwLock<Vec<PathBuf>>,
    /// Open documents edited lately, newest first.
    recently_edited: Mutex<VecDeque<PathBuf>>,
    excludes: RwLock<Arc<Excludes>>,
    /// The client can register `workspace/didChangeWatchedFiles` dynamically.
    pub can_watch_files: AtomicBool,
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
            cursor_hints: watch::channel(0).0,
            memory: Mutex::new(SuggestionMemory::default()),
            backend: Backend::new(),
            pacing: Pacing::default(),
            snippet_memo: SnippetMemo::default(),
            timings: Timings::default(),
            index: Arc::new(WorkspaceIndex::new()),
            roots: RwLock::new(Vec::new()),
            recently_edited: Mutex::new(VecDeque::new()),
            excludes: RwLock::new(Arc::new(Excludes::default())),
            can_watch_files: AtomicBool::new(false),
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

    /// Applies a settings update; returns whether what the index reads changed.
    pub fn update_settings(&self, update: &serde_json::Value) -> bool {
        let before = self.settings();
        let merged = Arc::new(before.merged(update));
        queries::set_override_dir(merged.grammars_dir.as_deref());
        let index_changed = before.exclude_globs != merged.exclude_globs
            || before.max_indexed_files != merged.max_indexed_files;
        *self.excludes.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Excludes::new(&merged.exclude_globs));
        match self.settings.write() {
            Ok(mut settings) => *settings = merged,
            Err(poisoned) => *poisoned.into_inner() = merged,
        }
        index_changed
    }

    pub fn excludes(&self) -> Arc<Excludes> {
        self.excludes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_roots(&self, roots: Vec<PathBuf>) {
        *self.roots.write().unwrap_or_else(|p| p.into_inner()) = roots;
    }

    pub fn roots(&self) -> Vec<PathBuf> {
        self.roots.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// (Re)starts the workspace index with the current roots and settings.
    pub fn start_index(&self) {
        let settings = self.settings();
        self.index.start(
            self.roots(),
            IndexConfig {
                excludes: self.excludes(),
                max_files: settings.max_indexed_files,
            },
        );
    }

    /// Whether a document may be read into prompts at all (secret files may not).
    pub fn is_excluded(&self, uri: &Uri) -> bool {
        let Some(path) = uri_to_path(uri) else {
            // No local path (`untitled:`, a remote file): its name still counts.
            let name = uri.0.as_str().rsplit(['/', ':']).next().unwrap_or("");
            return self
                .excludes()
                .is_excluded_name(&crate::privacy::excludes::percent_decoded(name));
        };
        let relative = self.index.relative(&path);
        self.excludes()
            .is_excluded(&path, Some(std::path::Path::new(&relative)))
    }

    /// A snapshot whose syntax tree matches its text: a stale tree is reparsed here,
    /// incrementally from the edited old one, and stored back for the next request.
    pub fn snapshot_parsed(&self, uri: &Uri) -> Option<Document> {
        let mut document = self.snapshot(uri)?;
        let Some(lang) = document.lang else {
            return Some(document);
        };
        if !document.tree_stale && document.tree.is_some() {
            return Some(document);
        }
        let tree = parse_rope(lang, &document.rope, document.tree.as_ref());
        if let Some(mut stored) = self.documents.get_mut(uri) {
            if stored.version == document.version && stored.tree_stale {
                stored.tree = tree.clone();
                stored.tree_stale = false;
            }
        }
        document.tree = tree;
        document.tree_stale = false;
        Some(document)
    }

    pub fn note_edited(&self, uri: &Uri) {
        let Some(path) = uri_to_path(uri) else { return };
        let mut recent = self
            .recently_edited
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if recent.front() == Some(&path) {
            return;
        }
        recent.retain(|p| p != &path);
        recent.push_front(path);
        recent.truncate(RECENTLY_EDITED);
    }

    pub fn recently_edited(&self) -> Vec<PathBuf> {
        self.recently_edited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Open documents by path (ropes are O(1) snapshots), for the context sources.
    pub fn open_documents(&self) -> HashMap<PathBuf, OpenDocument> {
        self.documents
            .iter()
            .filter_map(|entry| {
                let path = uri_to_path(entry.key())?;
                Some((
                    path,
                    OpenDocument {
                        rope: entry.rope.clone(),
                        recent_edits: entry.recent_edits.iter().copied().collect(),
                    },
                ))
            })
            .collect()
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
        self.index.document_closed(uri);
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
