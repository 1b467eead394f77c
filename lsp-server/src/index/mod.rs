//! The workspace index: definitions, imports and similarity windows of every source file in
//! the workspace folders, built on one background thread after `initialized` and kept
//! current from open documents (which win over the disk), saves and watched-file events.
//!
//! Requests never wait for it: they read the sharded maps below, whose locks are held only
//! for a lookup or an insert, and see whatever has been indexed so far.

pub mod entry;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};

use dashmap::DashMap;
use ropey::Rope;
use serde::Serialize;
use tower_lsp_server::gen_lsp_types::Uri;

pub use entry::FileEntry;
pub use worker::read_source;
use worker::Message;

use crate::privacy::Excludes;

/// What `ghostline.indexStatus` answers.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct IndexStatus {
    pub files: usize,
    pub definitions: usize,
    /// The start-up walk is done and every file it found has been read.
    pub ready: bool,
}

#[derive(Clone, Debug)]
pub struct IndexConfig {
    pub excludes: Arc<Excludes>,
    pub max_files: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            excludes: Arc::new(Excludes::default()),
            max_files: 20_000,
        }
    }
}

pub type SharedPath = Arc<Path>;

#[derive(Default)]
pub struct WorkspaceIndex {
    files: DashMap<SharedPath, Arc<FileEntry>>,
    /// Definition name → files that define it.
    names: DashMap<Box<str>, Vec<SharedPath>>,
    /// File stem (`store` for `src/store.rs`) → files: resolves imports without a scan.
    stems: DashMap<Box<str>, Vec<SharedPath>>,
    definition_count: AtomicUsize,
    approx_bytes: AtomicUsize,
    ready: AtomicBool,
    roots: RwLock<Vec<PathBuf>>,
    sender: Mutex<Option<mpsc::Sender<Message>>>,
}

impl WorkspaceIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the indexing thread (once) and walks `roots`.
    pub fn start(self: &Arc<Self>, roots: Vec<PathBuf>, config: IndexConfig) {
        *self.roots.write().unwrap_or_else(|p| p.into_inner()) = roots.clone();
        let mut sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        if sender.is_none() {
            *sender = worker::spawn(self.clone());
        }
        if let Some(sender) = sender.as_ref() {
            let _ = sender.send(Message::Walk { roots, config });
        } else {
            // No thread: nothing will ever be indexed, so do not keep anyone waiting.
            self.ready.store(true, Ordering::Relaxed);
        }
    }

    fn send(&self, message: Message) {
        if let Some(sender) = self
            .sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = sender.send(message);
        }
    }

    pub fn document_opened(&self, uri: &Uri, rope: Rope) {
        if let Some(path) = uri_to_path(uri) {
            self.send(Message::DocumentOpened { path, rope });
        }
    }

    /// Re-indexed after a short quiet spell, not on every keystroke.
    pub fn document_changed(&self, uri: &Uri, rope: Rope) {
        if let Some(path) = uri_to_path(uri) {
            self.send(Message::DocumentChanged { path, rope });
        }
    }

    pub fn document_closed(&self, uri: &Uri) {
        if let Some(path) = uri_to_path(uri) {
            self.send(Message::DocumentClosed { path });
        }
    }

    pub fn disk_changed(&self, path: PathBuf) {
        self.send(Message::DiskChanged { path });
    }

    pub fn disk_deleted(&self, path: PathBuf) {
        self.send(Message::DiskDeleted { path });
    }

    pub fn status(&self) -> IndexStatus {
        IndexStatus {
            files: self.files.len(),
            definitions: self.definition_count.load(Ordering::Relaxed),
            ready: self.ready.load(Ordering::Relaxed),
        }
    }

    pub fn approx_bytes(&self) -> usize {
        self.approx_bytes.load(Ordering::Relaxed)
    }

    pub fn file(&self, path: &Path) -> Option<Arc<FileEntry>> {
        self.files.get(path).map(|entry| entry.clone())
    }

    /// Files defining `name`, with the indices of those definitions.
    pub fn definitions_named(&self, name: &str) -> Vec<(Arc<FileEntry>, usize)> {
        let Some(paths) = self.names.get(name).map(|paths| paths.clone()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for path in paths {
            if let Some(file) = self.file(&path) {
                for (at, definition) in file.definitions.iter().enumerate() {
                    if definition.name == name {
                        out.push((file.clone(), at));
                    }
                }
            }
        }
        out
    }

    pub fn files_with_stem(&self, stem: &str) -> Vec<Arc<FileEntry>> {
        let Some(paths) = self.stems.get(stem).map(|paths| paths.clone()) else {
            return Vec::new();
        };
        paths.iter().filter_map(|path| self.file(path)).collect()
    }

    /// Every indexed file (a snapshot of the handles, taken shard by shard).
    pub fn all_files(&self) -> Vec<Arc<FileEntry>> {
        self.files
            .iter()
            .map(|entry| entry.value().clone())
            .collect()
    }

    /// Files in folders named `name` (a Go package), by path.
    pub fn all_files_in_dir_named(&self, name: &str) -> Vec<Arc<FileEntry>> {
        let mut files: Vec<Arc<FileEntry>> = self
            .files
            .iter()
            .filter(|entry| {
                entry
                    .key()
                    .parent()
                    .and_then(|dir| dir.file_name())
                    .is_some_and(|dir| dir == name)
            })
            .map(|entry| entry.value().clone())
            .collect();
        files.sort_by(|a, b| a.path_order(b));
        files
    }

    /// `path` relative to the workspace root that holds it, `/`-separated.
    pub fn relative(&self, path: &Path) -> String {
        let roots = self.roots.read().unwrap_or_else(|p| p.into_inner());
        relative_to(&roots, path)
    }

    /// The name of the (first) workspace folder, for `<|repo_name|>`.
    pub fn repo_name(&self) -> String {
        let roots = self.roots.read().unwrap_or_else(|p| p.into_inner());
        roots
            .first()
            .and_then(|root| root.file_name())
            .and_then(|name| name.to_str())
            .unwrap_or("workspace")
            .to_string()
    }

    /// Adds (or replaces) a file built elsewhere: the worker, tests, the benchmark.
    ///
    /// The new entry's names are added and the entry swapped in before the old entry's
    /// names go, so a request reading the index meanwhile sees the old file or the new one,
    /// never neither (re-indexing a document the editor has just opened used to remove it
    /// first, and a request at that moment did not see the file at all).
    pub fn insert(&self, entry: FileEntry) {
        let path: SharedPath = Arc::from(entry.path.as_path());
        for definition in &entry.definitions {
            let mut paths = self
                .names
                .entry(definition.name.as_str().into())
                .or_default();
            if !paths.contains(&path) {
                paths.push(path.clone());
            }
        }
        if let Some(stem) = entry.stem() {
            let mut paths = self.stems.entry(stem.into()).or_default();
            if !paths.contains(&path) {
                paths.push(path.clone());
            }
        }
        self.definition_count
            .fetch_add(entry.definitions.len(), Ordering::Relaxed);
        self.approx_bytes
            .fetch_add(entry.approx_bytes(), Ordering::Relaxed);
        let entry = Arc::new(entry);
        if let Some(old) = self.files.insert(path.clone(), entry.clone()) {
            self.forget(&path, &old, Some(&entry));
        }
    }

    fn remove(&self, path: &Path) -> bool {
        let Some((_, old)) = self.files.remove(path) else {
            return false;
        };
        self.forget(path, &old, None);
        true
    }

    /// Drops what `old` added to the name and stem maps, except what `replacement` (the entry
    /// now at `path`) also has.
    fn forget(&self, path: &Path, old: &FileEntry, replacement: Option<&FileEntry>) {
        // A set, not a scan per name: a re-indexed file with hundreds of definitions would
        // otherwise compare every old name with every new one.
        let kept: std::collections::HashSet<&str> = replacement
            .map(|new| new.definitions.iter().map(|d| d.name.as_str()).collect())
            .unwrap_or_default();
        for definition in &old.definitions {
            if kept.contains(definition.name.as_str()) {
                continue;
            }
            let emptied = match self.names.get_mut(definition.name.as_str()) {
                Some(mut paths) => {
                    paths.retain(|p| p.as_ref() != path);
                    paths.is_empty()
                }
                None => false,
            };
            if emptied {
                self.names
                    .remove_if(definition.name.as_str(), |_, paths| paths.is_empty());
            }
        }
        if let Some(stem) = old.stem() {
            if replacement.and_then(|new| new.stem()) != Some(stem) {
                if let Some(mut paths) = self.stems.get_mut(stem) {
                    paths.retain(|p| p.as_ref() != path);
                }
            }
        }
        self.definition_count
            .fetch_sub(old.definitions.len(), Ordering::Relaxed);
        self.approx_bytes
            .fetch_sub(old.approx_bytes(), Ordering::Relaxed);
    }
}

pub fn relative_to(roots: &[PathBuf], path: &Path) -> String {
    let relative = roots
        .iter()
        .filter_map(|root| path.strip_prefix(root).ok())
        .min_by_key(|relative| relative.as_os_str().len())
        .unwrap_or_else(|| Path::new(path.file_name().unwrap_or(path.as_os_str())));
    relative
        .iter()
        .filter_map(|part| part.to_str())
        .collect::<Vec<_>>()
        .join("/")
}

/// The local path of a `file:` URI; `None` for other schemes, a remote host
/// (`file://host/x`; `localhost` is local) or a path this platform cannot have. The `url`
/// crate does the decoding: escapes (`%20`, `%2F`, bytes that are not UTF-8 on Unix), a
/// query or fragment left out of the path, and on Windows `file:///C:/x` → `C:\x`.
pub fn uri_to_path(uri: &Uri) -> Option<PathBuf> {
    url::Url::parse(uri.0.as_str()).ok()?.to_file_path().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_decode() {
        let path = |uri: &str| uri_to_path(&Uri::from(uri));
        assert_eq!(
            path("file:///tmp/a%20b/c.rs"),
            Some(PathBuf::from("/tmp/a b/c.rs"))
        );
        // A malformed escape stays as written.
        assert_eq!(path("file:///x%2"), Some(PathBuf::from("/x%2")));
        assert_eq!(path("file://localhost/x.rs"), Some(PathBuf::from("/x.rs")));
        // Unicode, written as escapes (as editors send it) or as is.
        assert_eq!(
            path("file:///w/caf%C3%A9/%E6%97%A5.py"),
            Some(PathBuf::from("/w/café/日.py"))
        );
        assert_eq!(path("file:///w/café.py"), Some(PathBuf::from("/w/café.py")));
        // An escaped slash is a slash in the path, as before.
        assert_eq!(path("file:///w/a%2Fb.rs"), Some(PathBuf::from("/w/a/b.rs")));
        // Not part of the path.
        assert_eq!(
            path("file:///w/a.rs?x=1#L3"),
            Some(PathBuf::from("/w/a.rs"))
        );
    }

    #[test]
    fn uris_without_a_local_path_have_none() {
        let path = |uri: &str| uri_to_path(&Uri::from(uri));
        assert_eq!(path("untitled:1"), None);
        assert_eq!(path("untitled:Untitled-1"), None);
        assert_eq!(path("vscode-remote://ssh-remote+box/home/a.rs"), None);
        assert_eq!(path("https://example.com/a.rs"), None);
        assert_eq!(path("file://fileserver/share/a.rs"), None);
        assert_eq!(path("not a uri"), None);
        assert_eq!(path(""), None);
    }

    #[cfg(unix)]
    #[test]
    fn file_names_that_are_not_utf8_still_have_a_path() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(
            uri_to_path(&Uri::from("file:///w/a%FF.rs")),
            Some(PathBuf::from(std::ffi::OsStr::from_bytes(b"/w/a\xFF.rs")))
        );
        // A drive letter means nothing here: the path is left as it is written.
        assert_eq!(
            uri_to_path(&Uri::from("file:///C:/w/a.rs")),
            Some(PathBuf::from("/C:/w/a.rs"))
        );
    }

    #[cfg(windows)]
    #[test]
    fn drive_letters_are_windows_paths() {
        assert_eq!(
            uri_to_path(&Uri::from("file:///C:/w/a.rs")),
            Some(PathBuf::from(r"C:\w\a.rs"))
        );
        assert_eq!(
            uri_to_path(&Uri::from("file:///c%3A/w/a%20b.rs")),
            Some(PathBuf::from(r"c:\w\a b.rs"))
        );
    }

    #[test]
    fn relative_paths_prefer_the_innermost_root() {
        let roots = vec![PathBuf::from("/w"), PathBuf::from("/w/sub")];
        assert_eq!(relative_to(&roots, Path::new("/w/sub/a/b.rs")), "a/b.rs");
        assert_eq!(relative_to(&roots, Path::new("/elsewhere/c.rs")), "c.rs");
    }

    #[test]
    fn reindexing_a_file_keeps_its_names_current() {
        let index = WorkspaceIndex::new();
        let path = PathBuf::from("/w/src/shapes.rs");
        let build = |text: &str| FileEntry::build(path.clone(), "src/shapes.rs".into(), text);
        index.insert(build("fn area() {}\nfn perimeter() {}\n"));
        index.insert(build("fn area() {}\nfn volume() {}\n"));
        assert_eq!(
            index.definitions_named("area").len(),
            1,
            "a kept name is listed once"
        );
        assert_eq!(index.definitions_named("volume").len(), 1);
        assert!(index.definitions_named("perimeter").is_empty());
        assert!(
            index.names.get("perimeter").is_none(),
            "a removed name leaves the name map"
        );
        assert_eq!(index.files_with_stem("shapes").len(), 1);
        assert_eq!(index.status().definitions, 2);
        assert!(index.remove(&path));
        assert!(index.definitions_named("area").is_empty());
        assert!(index.names.is_empty());
        assert!(index.files_with_stem("shapes").is_empty());
        assert_eq!(index.status().definitions, 0);
    }
}
