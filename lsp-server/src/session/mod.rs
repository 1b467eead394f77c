//! The session: what the editor told us and the workspace it works in. Open documents (with
//! their limits), settings, the negotiated position encoding, the latest completion request
//! per document, workspace folders, exclusions and the workspace index. Nothing of the
//! completion pipeline lives here (`complete::Completer` holds the backend client, memory,
//! pacing, timings and the snippet memo); this module imports only the layers below it
//! (`settings`, `edit`, `syntax`, `index`, `privacy`).

mod document;
mod exclusion;

pub use document::{Document, OpenDocument};

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use dashmap::DashMap;
use tokio::sync::watch;
use tower_lsp_server::gen_lsp_types::Uri;

use crate::edit::PositionEncoding;
use crate::index::{uri_to_path, IndexConfig, WorkspaceIndex};
use crate::privacy::Excludes;
use crate::settings::Settings;
use crate::syntax::{parse_rope, queries};

/// Documents remembered as recently edited (a source of prompt context).
const RECENTLY_EDITED: usize = 8;

/// Open documents that get suggestions, a parse tree and a place in the index. An editor with
/// more open (a script opening every file of a repository) keeps the rest in sync, text only:
/// each served document costs its syntax tree, index entry and line counts, and the context
/// sources look at every open document on every request. Counted on distinct open URIs; when
/// a served one closes, the longest-waiting other one takes its place.
pub const MAX_OPEN_DOCUMENTS: usize = 1_000;

/// Largest document (UTF-8 bytes) that gets suggestions, a parse tree and a place in the
/// index. A larger one (a generated file, a log) is still kept in sync, so that it is right
/// when it shrinks again, but reparsing and indexing it on every change would cost more than
/// a suggestion there is worth. The index reads files of at most 1 MiB from disk; an open
/// document may be larger because the user is working in it.
pub const MAX_DOCUMENT_BYTES: usize = 8 << 20;

/// Called when a document closes, so layers above the session can forget it (see
/// `Session::on_close`).
type CloseListener = Box<dyn Fn(&Uri) + Send + Sync>;

/// Which open documents are served (see `MAX_OPEN_DOCUMENTS`): how many are, and the others in
/// the order they were opened, next in line for a place.
#[derive(Default)]
struct ServedDocuments {
    served: usize,
    waiting: VecDeque<Uri>,
}

pub struct Session {
    documents: DashMap<Uri, Document>,
    /// Changed only together with `documents`' entries, under this lock (opens and closes
    /// arrive in order on one thread; the lock keeps the count honest regardless).
    served: Mutex<ServedDocuments>,
    settings: RwLock<Arc<Settings>>,
    encoding: AtomicU8,
    /// Latest completion request generation per document. A request whose generation is no
    /// longer the latest has been superseded and stops (see `server::dispatch`).
    latest_request: DashMap<Uri, watch::Sender<u64>>,
    next_generation: AtomicU64,
    close_listeners: RwLock<Vec<CloseListener>>,
    /// Definitions, imports and similarity windows of the workspace, built in the background.
    pub index: Arc<WorkspaceIndex>,
    /// Workspace folders from `initialize`.
    roots: RwLock<Vec<PathBuf>>,
    /// Open documents edited lately, newest first. Eight paths read whole in order: a
    /// `VecDeque` is the whole cache; an LRU crate would add hashing and nothing else.
    recently_edited: Mutex<VecDeque<PathBuf>>,
    excludes: RwLock<Arc<Excludes>>,
    /// The client can register `workspace/didChangeWatchedFiles` dynamically.
    pub can_watch_files: AtomicBool,
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
            served: Mutex::new(ServedDocuments::default()),
            settings: RwLock::new(Arc::new(Settings::default())),
            encoding: AtomicU8::new(PositionEncoding::Utf16.as_u8()),
            latest_request: DashMap::new(),
            next_generation: AtomicU64::new(1),
            close_listeners: RwLock::new(Vec::new()),
            index: Arc::new(WorkspaceIndex::new()),
            roots: RwLock::new(Vec::new()),
            recently_edited: Mutex::new(VecDeque::new()),
            excludes: RwLock::new(Arc::new(Excludes::default())),
            can_watch_files: AtomicBool::new(false),
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

    /// Whether a document is a secret file by the name it is opened under (its path, the
    /// path relative to its workspace folder, its file name). No file system access, so the
    /// arrival lane may ask it; where a symlink leads is judged by `is_excluded` (on requests)
    /// and by the index on its own thread.
    pub fn is_excluded_by_name(&self, uri: &Uri) -> bool {
        let Some(path) = uri_to_path(uri) else {
            // No local path (`untitled:`, a remote file): its name still counts.
            let name = uri.0.as_str().rsplit(['/', ':']).next().unwrap_or("");
            return self
                .excludes()
                .is_excluded_name(&crate::privacy::excludes::percent_decoded(name));
        };
        let relative = self.index.relative(&path);
        self.excludes()
            .excludes_name(&path, Some(std::path::Path::new(&relative)))
    }

    /// `document` (a snapshot of `uri`) with a tree that matches its text: a stale tree is
    /// reparsed here, incrementally from the edited old one, and stored back when the document
    /// has not changed since. Blocking work: runs on the pool (see `complete::blocking`).
    pub fn parsed(&self, uri: &Uri, mut document: Document) -> Document {
        let Some(lang) = document.lang.filter(|_| document.gets_suggestions()) else {
            return document;
        };
        if !document.tree_stale && document.tree.is_some() {
            return document;
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
        document
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
            .filter(|entry| entry.gets_suggestions())
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

    /// Opens (or reopens) a document. Past `MAX_OPEN_DOCUMENTS` it is kept in sync, text
    /// only (see there); returns whether it is served (suggestions, parse, index). Reopening a
    /// URI that is open replaces its text and keeps its place: served or waiting, it is still
    /// one document.
    pub fn open_document(&self, uri: Uri, mut document: Document) -> bool {
        let mut served = self.served.lock().unwrap_or_else(|p| p.into_inner());
        let previously_served = self.documents.get(&uri).map(|previous| previous.served);
        if let Some(previously_served) = previously_served {
            document.served = previously_served;
        } else if served.served < MAX_OPEN_DOCUMENTS {
            document.served = true;
            served.served += 1;
        } else {
            document.served = false;
            served.waiting.push_back(uri.clone());
            tracing::warn!(
                "{} documents are open (the limit is {MAX_OPEN_DOCUMENTS}): {} is kept in sync but gets no suggestions and is not indexed until one of them closes",
                self.documents.len(),
                uri.0.as_str()
            );
        }
        if document.rope.len_bytes() > MAX_DOCUMENT_BYTES {
            tracing::warn!(
                "{} is {} bytes, over the limit of {MAX_DOCUMENT_BYTES}: it is kept in sync but gets no suggestions and is not indexed",
                uri.0.as_str(),
                document.rope.len_bytes()
            );
        }
        let is_served = document.served;
        self.documents.insert(uri, document);
        is_served
    }

    /// After an edit to `uri` failed part-way (a panic, a change that could not be read), its
    /// text may no longer be the editor's: no suggestions from it (nor context for others)
    /// until the editor sends it whole again. Logged once per failure spell.
    pub fn mark_out_of_sync(&self, uri: &Uri, why: &str) {
        let Some(mut document) = self.documents.get_mut(uri) else {
            return;
        };
        if std::mem::replace(&mut document.in_sync, false) {
            tracing::error!(
                "an edit to {} failed ({why}): its text may differ from the editor's, so it gets no suggestions until the editor sends it whole (reopen the file)",
                uri.0.as_str()
            );
        }
    }

    /// Runs `edit` on the document if it is open; returns whether it was.
    pub fn edit_document(&self, uri: &Uri, edit: impl FnOnce(&mut Document)) -> bool {
        match self.documents.get_mut(uri) {
            Some(mut document) => {
                let was_small = document.rope.len_bytes() <= MAX_DOCUMENT_BYTES;
                edit(&mut document);
                let is_small = document.rope.len_bytes() <= MAX_DOCUMENT_BYTES;
                if was_small != is_small {
                    if is_small {
                        tracing::info!(
                            "{} is back under {MAX_DOCUMENT_BYTES} bytes: suggestions resume",
                            uri.0.as_str()
                        );
                    } else {
                        tracing::warn!(
                            "{} grew past {MAX_DOCUMENT_BYTES} bytes: it is kept in sync but gets no suggestions and is not indexed",
                            uri.0.as_str()
                        );
                    }
                }
                true
            }
            None => false,
        }
    }

    /// `listener` runs (in arrival order, on the thread that reads messages) whenever a
    /// document closes: state kept per document elsewhere is dropped with it.
    pub fn on_close(&self, listener: impl Fn(&Uri) + Send + Sync + 'static) {
        self.close_listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(listener));
    }

    /// Frees everything kept for the document and stops its in-flight completion. When it was
    /// served, the longest-waiting document past the limit is served in its place; returns
    /// those now served, with their text, for the caller to index.
    pub fn close_document(&self, uri: &Uri) -> Vec<(Uri, Document)> {
        let mut now_served = Vec::new();
        {
            let mut served = self.served.lock().unwrap_or_else(|p| p.into_inner());
            match self.documents.remove(uri) {
                Some((_, closed)) if closed.served => {
                    served.served = served.served.saturating_sub(1);
                }
                Some(_) => served.waiting.retain(|waiting| waiting != uri),
                None => {}
            }
            while served.served < MAX_OPEN_DOCUMENTS {
                let Some(next) = served.waiting.pop_front() else {
                    break;
                };
                if let Some(mut document) = self.documents.get_mut(&next) {
                    document.served = true;
                    served.served += 1;
                    tracing::info!(
                        "{} is now among the {MAX_OPEN_DOCUMENTS} served documents: suggestions start",
                        next.0.as_str()
                    );
                    now_served.push((next.clone(), document.clone()));
                }
            }
        }
        self.index.document_closed(uri);
        if let Some((_, latest)) = self.latest_request.remove(uri) {
            latest.send_replace(0);
        }
        for listener in self
            .close_listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            listener(uri);
        }
        now_served
    }

    pub fn snapshot(&self, uri: &Uri) -> Option<Document> {
        self.documents.get(uri).map(|document| document.clone())
    }

    pub fn open_document_count(&self) -> usize {
        self.documents.len()
    }

    /// Registers a new completion request for `uri`, superseding (and so cancelling) any
    /// older one still running for the same document. Called in arrival order. A request for
    /// a document that is not open leaves nothing behind: it gets its generation, answers
    /// empty (there is no text to complete) and nothing can supersede it.
    pub fn begin_request(&self, uri: &Uri) -> u64 {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        if let Some(latest) = self.latest_request.get(uri) {
            latest.send_replace(generation);
        } else if self.documents.contains_key(uri) {
            // Checked while the entry is absent; `close_document` removes both in arrival
            // order, on this same thread, so no entry outlives its document.
            self.latest_request
                .insert(uri.clone(), watch::channel(generation).0);
        }
        generation
    }

    /// Documents with a request generation (for the bounds' tests).
    #[cfg(test)]
    fn tracked_request_count(&self) -> usize {
        self.latest_request.len()
    }

    /// A receiver that changes when a newer request for `uri` arrives.
    pub fn watch_requests(&self, uri: &Uri) -> Option<watch::Receiver<u64>> {
        self.latest_request
            .get(uri)
            .map(|latest| latest.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(name: &str) -> Uri {
        Uri::from(format!("file:///w/{name}").as_str())
    }

    #[test]
    fn requests_on_documents_never_opened_leave_nothing_behind() {
        let session = Session::new();
        for i in 0..100 {
            session.begin_request(&uri(&format!("never{i}.rs")));
        }
        assert_eq!(session.tracked_request_count(), 0);
        let open = uri("open.rs");
        session.open_document(open.clone(), Document::new("fn a() {}\n", 1, "rust".into()));
        let first = session.begin_request(&open);
        let watch = session
            .watch_requests(&open)
            .expect("an open document is tracked");
        assert_eq!(*watch.borrow(), first);
        let second = session.begin_request(&open);
        assert_eq!(*watch.borrow(), second, "the newer request supersedes");
        assert_eq!(session.tracked_request_count(), 1);
        session.close_document(&open);
        assert_eq!(session.tracked_request_count(), 0);
        assert_eq!(*watch.borrow(), 0, "closing ends the request in flight");
    }

    #[test]
    fn documents_past_the_limits_stay_in_sync_without_suggestions() {
        let session = Session::new();
        for i in 0..MAX_OPEN_DOCUMENTS {
            let served = session.open_document(
                uri(&format!("f{i}.py")),
                Document::new("x = 1\n", 1, "python".into()),
            );
            assert!(served);
        }
        let extra = uri("extra.py");
        assert!(!session.open_document(extra.clone(), Document::new("y = 2\n", 1, "python".into())));
        let snapshot = session.snapshot(&extra).expect("kept in sync");
        assert!(!snapshot.gets_suggestions());
        assert!(!session
            .open_documents()
            .contains_key(&PathBuf::from("/w/extra.py")));
        // Reopening a served document is not a new one.
        assert!(session.open_document(uri("f0.py"), Document::new("x = 3\n", 2, "python".into())));

        let big = uri("big.py");
        let text = "z = 0\n".repeat(MAX_DOCUMENT_BYTES / 6 + 1);
        let session = Session::new();
        session.open_document(big.clone(), Document::new(&text, 1, "python".into()));
        let snapshot = session.parsed(&big, session.snapshot(&big).unwrap());
        assert!(!snapshot.gets_suggestions());
        assert!(
            snapshot.tree.is_none(),
            "a document over the limit is not parsed"
        );
        assert_eq!(snapshot.rope.len_bytes(), text.len());
    }

    #[test]
    fn close_listeners_hear_every_close() {
        let session = Session::new();
        let closed = Arc::new(Mutex::new(Vec::new()));
        let heard = closed.clone();
        session.on_close(move |uri| heard.lock().unwrap().push(uri.clone()));
        let a = uri("a.rs");
        session.open_document(a.clone(), Document::new("", 1, "rust".into()));
        session.close_document(&a);
        assert_eq!(*closed.lock().unwrap(), vec![a]);
    }
}
