//! The indexing thread. One thread only (the target machines have two cores, and requests
//! need the other): it walks the workspace, reads and parses files one at a time, and
//! between files handles document and disk events, which therefore never wait for the walk.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ignore::WalkBuilder;
use ropey::Rope;

use super::{relative_to, FileEntry, IndexConfig, WorkspaceIndex};
use crate::syntax::{is_plain_source, Lang};

pub enum Message {
    Walk {
        roots: Vec<PathBuf>,
        config: IndexConfig,
    },
    DocumentOpened {
        path: PathBuf,
        rope: Rope,
    },
    DocumentChanged {
        path: PathBuf,
        rope: Rope,
    },
    DocumentClosed {
        path: PathBuf,
    },
    DiskChanged {
        path: PathBuf,
    },
    DiskDeleted {
        path: PathBuf,
    },
}

/// Files above this are not read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Entries the walk looks at, at most (bounds a walk of a huge tree, e.g. a home folder).
const MAX_WALK_ENTRIES: usize = 400_000;
/// A line this long means generated or minified code.
const MAX_LINE_BYTES: usize = 2_000;
/// Edits to an open document are indexed once typing pauses this long.
const DOCUMENT_DEBOUNCE: Duration = Duration::from_millis(300);

/// Folders of dependencies, build output and tooling, never source of the workspace.
const SKIPPED_DIRS: &[&str] = &[
    "target",
    "node_modules",
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    "dist",
    ".next",
    ".gradle",
    "bower_components",
];

/// Generated or lock files, by name.
fn is_generated_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".lock")
        || matches!(
            lower.as_str(),
            "package-lock.json" | "pnpm-lock.yaml" | "yarn.lock" | "npm-shrinkwrap.json" | "go.sum"
        )
        || lower.contains(".min.")
        || lower.ends_with(".map")
        || lower.ends_with(".pb.go")
        || lower.ends_with("_pb2.py")
        || lower.ends_with(".generated.ts")
        || lower.ends_with(".d.ts.map")
}

pub fn spawn(index: Arc<WorkspaceIndex>) -> Option<mpsc::Sender<Message>> {
    let (sender, receiver) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("ghostline-index".into())
        .spawn(move || Worker::new(index).run(receiver));
    match spawned {
        Ok(_) => Some(sender),
        Err(error) => {
            tracing::error!("cannot start the indexing thread: {error}; no workspace index");
            None
        }
    }
}

struct Worker {
    index: Arc<WorkspaceIndex>,
    config: IndexConfig,
    roots: Vec<PathBuf>,
    /// Files found by the walk and not yet read.
    queue: VecDeque<PathBuf>,
    walking: bool,
    /// Open documents: the disk copy of these is ignored until they close.
    open: HashSet<PathBuf>,
    /// Changed open documents waiting for typing to pause: (due, text).
    pending: HashMap<PathBuf, (Instant, Rope)>,
    walk_started: Option<Instant>,
    /// Files not indexed since the last walk started, by reason: logged once, as one line, when
    /// the walk is done (one line per file would flood the log of a large workspace).
    skipped: Skipped,
    /// `maxIndexedFiles` was reached after the walk (a new file on disk): logged once per walk.
    limit_logged: bool,
}

/// Counts of files left out, for the one summary line at the end of a walk.
#[derive(Default)]
struct Skipped {
    too_large: usize,
    generated: usize,
    binary: usize,
    unreadable: usize,
}

impl Skipped {
    fn count(&mut self, why: &Skip) {
        match why {
            Skip::TooLarge(_) => self.too_large += 1,
            Skip::Generated => self.generated += 1,
            Skip::Binary | Skip::NotUtf8 => self.binary += 1,
            Skip::NotAFile | Skip::Io(_) => self.unreadable += 1,
        }
    }

    fn total(&self) -> usize {
        self.too_large + self.generated + self.binary + self.unreadable
    }
}

/// Why a file is not indexed.
#[derive(Debug, PartialEq, Eq)]
pub enum Skip {
    /// Over `MAX_FILE_BYTES` (the size seen, or `MAX_FILE_BYTES + 1` if it grew while read).
    TooLarge(u64),
    /// A line over `MAX_LINE_BYTES`: generated or minified.
    Generated,
    /// A NUL byte in the first 8 KiB.
    Binary,
    NotUtf8,
    NotAFile,
    Io(String),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(bytes) => write!(f, "{bytes} bytes, over {MAX_FILE_BYTES}"),
            Self::Generated => write!(f, "generated or minified"),
            Self::Binary => write!(f, "binary"),
            Self::NotUtf8 => write!(f, "not UTF-8"),
            Self::NotAFile => write!(f, "not a file"),
            Self::Io(why) => f.write_str(why),
        }
    }
}

impl Worker {
    fn new(index: Arc<WorkspaceIndex>) -> Self {
        Self {
            index,
            config: IndexConfig::default(),
            roots: Vec::new(),
            queue: VecDeque::new(),
            walking: false,
            open: HashSet::new(),
            pending: HashMap::new(),
            walk_started: None,
            skipped: Skipped::default(),
            limit_logged: false,
        }
    }

    fn run(mut self, receiver: mpsc::Receiver<Message>) {
        loop {
            let wait = if !self.queue.is_empty() {
                Duration::ZERO
            } else if let Some(due) = self.pending.values().map(|(due, _)| *due).min() {
                due.saturating_duration_since(Instant::now())
            } else {
                Duration::from_secs(3600)
            };
            match receiver.recv_timeout(wait) {
                Ok(message) => {
                    self.handle(message);
                    // Take everything already waiting before the next file.
                    while let Ok(message) = receiver.try_recv() {
                        self.handle(message);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            self.index_due_documents();
            if let Some(path) = self.queue.pop_front() {
                self.index_disk_file(&path);
            }
            if self.walking && self.queue.is_empty() {
                self.walking = false;
                let status = self.index.status();
                tracing::info!(
                    "workspace index ready: {} files, {} definitions, ~{} KiB, in {:?}",
                    status.files,
                    status.definitions,
                    self.index.approx_bytes() / 1024,
                    self.walk_started.map(|t| t.elapsed()).unwrap_or_default()
                );
                if self.skipped.total() > 0 {
                    tracing::info!(
                        "workspace index: {} files left out: {} over {} KiB, {} generated or minified, {} binary or not UTF-8, {} unreadable",
                        self.skipped.total(),
                        self.skipped.too_large,
                        MAX_FILE_BYTES / 1024,
                        self.skipped.generated,
                        self.skipped.binary,
                        self.skipped.unreadable
                    );
                }
                self.index.ready.store(true, Ordering::Relaxed);
            }
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Walk { roots, config } => {
                self.roots = roots;
                self.config = config;
                self.walk();
            }
            Message::DocumentOpened { path, rope } => {
                self.open.insert(path.clone());
                self.pending.remove(&path);
                if let Err(why) = self.index_document(&path, &rope) {
                    // Once when opened, not on every pause in typing.
                    tracing::info!("not indexing open document {}: {why}", path.display());
                }
            }
            Message::DocumentChanged { path, rope } => {
                let due = self
                    .pending
                    .get(&path)
                    .map_or(Instant::now() + DOCUMENT_DEBOUNCE, |(due, _)| *due);
                self.pending.insert(path, (due, rope));
            }
            Message::DocumentClosed { path } => {
                self.open.remove(&path);
                self.pending.remove(&path);
                // Back to what is on disk (the editor may have discarded the changes).
                if path.exists() {
                    self.index_disk_file(&path);
                } else {
                    self.index.remove(&path);
                }
            }
            Message::DiskChanged { path } => {
                if !self.open.contains(&path) {
                    self.index_disk_file(&path);
                }
            }
            Message::DiskDeleted { path } => {
                if !self.open.contains(&path) {
                    self.index.remove(&path);
                    // A deleted folder: everything under it goes.
                    let under: Vec<PathBuf> = self
                        .index
                        .files
                        .iter()
                        .filter(|entry| entry.key().starts_with(&path))
                        .map(|entry| entry.key().to_path_buf())
                        .collect();
                    for file in under {
                        self.index.remove(&file);
                    }
                }
            }
        }
    }

    fn index_due_documents(&mut self) {
        let now = Instant::now();
        let due: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, (due, _))| *due <= now)
            .map(|(path, _)| path.clone())
            .collect();
        for path in due {
            if let Some((_, rope)) = self.pending.remove(&path) {
                let _ = self.index_document(&path, &rope);
            }
        }
    }

    fn excluded(&self, path: &Path) -> bool {
        let relative = relative_to(&self.roots, path);
        self.config
            .excludes
            .is_excluded(path, Some(Path::new(&relative)))
    }

    fn walk(&mut self) {
        self.walk_started = Some(Instant::now());
        self.walking = true;
        self.index.ready.store(false, Ordering::Relaxed);
        self.queue.clear();
        self.skipped = Skipped::default();
        self.limit_logged = false;
        let Some((first, rest)) = self.roots.split_first() else {
            return;
        };
        let mut builder = WalkBuilder::new(first);
        for root in rest {
            builder.add(root);
        }
        builder
            .hidden(true)
            .git_ignore(true)
            .git_exclude(true)
            .git_global(false)
            // Respect .gitignore even in a folder that is not (yet) a git repository.
            .require_git(false)
            .follow_links(false)
            .max_filesize(Some(MAX_FILE_BYTES))
            .filter_entry(|entry| {
                !(entry.file_type().is_some_and(|t| t.is_dir())
                    && entry
                        .file_name()
                        .to_str()
                        .is_some_and(|name| SKIPPED_DIRS.contains(&name)))
            });
        let mut seen = HashSet::new();
        for (visited, result) in builder.build().enumerate() {
            if self.queue.len() >= self.config.max_files {
                tracing::warn!(
                    "workspace index: the walk stopped at {} files, the `maxIndexedFiles` limit; files beyond it are not indexed ({visited} entries looked at)",
                    self.config.max_files
                );
                break;
            }
            if visited >= MAX_WALK_ENTRIES {
                tracing::warn!(
                    "workspace index: the walk stopped after looking at {MAX_WALK_ENTRIES} entries (a very large folder?) with {} files found; files beyond them are not indexed",
                    self.queue.len()
                );
                break;
            }
            let Ok(entry) = result else { continue };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.into_path();
            if self.wanted(&path) && seen.insert(path.clone()) {
                self.queue.push_back(path);
            }
        }
        tracing::debug!("workspace walk found {} files", self.queue.len());
    }

    fn wanted(&self, path: &Path) -> bool {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        (Lang::from_path(path).is_some() || is_plain_source(path))
            && !is_generated_name(name)
            && !self.excluded(path)
    }

    fn index_disk_file(&mut self, path: &Path) {
        if self.open.contains(path) {
            return;
        }
        if !self.wanted(path) || self.outside_roots(path) {
            self.index.remove(path);
            return;
        }
        if self.index.files.len() >= self.config.max_files && self.index.file(path).is_none() {
            if !self.limit_logged {
                self.limit_logged = true;
                tracing::warn!(
                    "workspace index: {} files, the `maxIndexedFiles` limit; new files (first: {}) are not indexed",
                    self.config.max_files,
                    path.display()
                );
            }
            return;
        }
        match read_source(path) {
            Ok(text) => self.index_text(path, &text),
            Err(why) => {
                tracing::debug!("not indexing {}: {why}", path.display());
                self.skipped.count(&why);
                self.index.remove(path);
            }
        }
    }

    /// Indexes an open document's text, unless it is over the size limit (checked before the
    /// text is copied out of the rope).
    fn index_document(&mut self, path: &Path, rope: &Rope) -> Result<(), Skip> {
        if rope.len_bytes() as u64 > MAX_FILE_BYTES {
            self.index.remove(path);
            return Err(Skip::TooLarge(rope.len_bytes() as u64));
        }
        let text = rope.to_string();
        if looks_generated(&text) {
            self.index.remove(path);
            return Err(Skip::Generated);
        }
        self.index_text(path, &text);
        Ok(())
    }

    /// Files outside every workspace folder are indexed only while open.
    fn outside_roots(&self, path: &Path) -> bool {
        !self.roots.iter().any(|root| path.starts_with(root))
    }

    fn index_text(&mut self, path: &Path, text: &str) {
        // Size and generated code were judged by the callers (`read_source`, `index_document`).
        if self.excluded(path) {
            return;
        }
        if let Some(format) = crate::privacy::content::credential_format(text) {
            // A credential file under another name: excluded like one (`privacy::content`).
            tracing::debug!(
                "not indexing {}: its content is a {format} file",
                path.display()
            );
            self.index.remove(path);
            return;
        }
        let relative = relative_to(&self.roots, path);
        let entry = FileEntry::build(path.to_path_buf(), relative, text);
        self.index.insert(entry);
    }
}

/// The text of a source file, or why it is skipped: too large, binary (a NUL byte in the
/// first 8 KiB), not UTF-8, or generated/minified. At most `MAX_FILE_BYTES + 1` bytes are read,
/// whatever the size said before: a file that grows between the check and the read (a log being
/// written) cannot make this allocate more.
pub fn read_source(path: &Path) -> Result<String, Skip> {
    let file = std::fs::File::open(path).map_err(|e| Skip::Io(e.to_string()))?;
    let metadata = file.metadata().map_err(|e| Skip::Io(e.to_string()))?;
    if !metadata.is_file() {
        return Err(Skip::NotAFile);
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(Skip::TooLarge(metadata.len()));
    }
    let bytes = read_at_most(file, metadata.len())?;
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Err(Skip::Binary);
    }
    let text = String::from_utf8(bytes).map_err(|_| Skip::NotUtf8)?;
    if looks_generated(&text) {
        return Err(Skip::Generated);
    }
    Ok(text)
}

/// Up to `MAX_FILE_BYTES` of `reader`, `expected` bytes reserved up front; `TooLarge` if it
/// holds more, found by reading one byte past the limit and no further.
fn read_at_most(reader: impl std::io::Read, expected: u64) -> Result<Vec<u8>, Skip> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(expected.min(MAX_FILE_BYTES) as usize);
    reader
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Skip::Io(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Skip::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

fn looks_generated(text: &str) -> bool {
    text.lines().any(|line| line.len() > MAX_LINE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_recognised() {
        assert!(is_generated_name("Cargo.lock"));
        assert!(is_generated_name("app.min.js"));
        assert!(is_generated_name("package-lock.json"));
        assert!(!is_generated_name("main.rs"));
        assert!(looks_generated(&"x".repeat(5000)));
        assert!(!looks_generated("fn main() {}\n"));
    }

    #[test]
    fn a_file_longer_than_its_size_said_is_read_only_to_the_limit() {
        // An endless reader stands for a file that grows while it is read.
        assert_eq!(
            read_at_most(std::io::repeat(b'a'), 10),
            Err(Skip::TooLarge(MAX_FILE_BYTES + 1))
        );
        assert_eq!(
            read_at_most(&b"fn main() {}\n"[..], 0).as_deref(),
            Ok(&b"fn main() {}\n"[..])
        );
    }

    #[test]
    fn unreadable_files_say_why() {
        let dir = std::env::temp_dir().join(format!("ghostline-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let big = vec![b'a'; MAX_FILE_BYTES as usize + 1];
        assert_eq!(
            read_source(&write("big.rs", &big)),
            Err(Skip::TooLarge(MAX_FILE_BYTES + 1))
        );
        assert_eq!(read_source(&write("nul.rs", b"a\0b")), Err(Skip::Binary));
        assert_eq!(
            read_source(&write("latin1.rs", b"caf\xe9")),
            Err(Skip::NotUtf8)
        );
        let minified = "x".repeat(MAX_LINE_BYTES + 1);
        assert_eq!(
            read_source(&write("app.js", minified.as_bytes())),
            Err(Skip::Generated)
        );
        assert_eq!(read_source(&dir), Err(Skip::NotAFile));
        assert!(matches!(
            read_source(&dir.join("missing.rs")),
            Err(Skip::Io(_))
        ));
        assert_eq!(
            read_source(&write("ok.rs", b"fn main() {}\n")).as_deref(),
            Ok("fn main() {}\n")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
