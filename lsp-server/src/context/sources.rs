//! The sources of retrieved context. Each returns candidate snippets with a score in about
//! 0..1; `select` decides what fits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CurrentFile, Snippet, SourceKind, Workspace};
use crate::index::entry::{
    identifiers, import_segments, jaccard, minhash, path_matches, token_set, FileEntry,
};
use crate::privacy::{redact_lines, Region};
use crate::settings::ContextMode;
use crate::syntax::extract::cursor_scopes;
use crate::syntax::queries;

/// Lines above the cursor whose identifiers are looked up / compared.
const NEAR_BEFORE: usize = 30;
const NEAR_AFTER: usize = 6;
/// The enclosing function is read up to this many lines.
const FUNCTION_LINES: usize = 150;
/// Lines before the cursor compared against windows of other files (the cursor's own line
/// is left out: it changes on every keystroke and would reshuffle the retrieved windows).
const QUERY_LINES: usize = 20;
const MAX_IDENTIFIERS: usize = 40;
const MAX_DEFINITIONS_PER_NAME: usize = 2;
/// A name defined in more files than this says little (`new`, `get`, `run`) unless imported.
const AMBIGUOUS_NAME: usize = 6;
const SIMILAR_CANDIDATES: usize = 64;
const SIMILAR_RESULTS: usize = 8;
const MIN_JACCARD: f32 = 0.08;
const RECENT_EDIT_RADIUS: usize = 6;

/// Words that are syntax, not names worth looking up.
const KEYWORDS: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "def",
    "default",
    "del",
    "do",
    "elif",
    "else",
    "enum",
    "except",
    "export",
    "extends",
    "false",
    "final",
    "finally",
    "fn",
    "for",
    "from",
    "func",
    "function",
    "go",
    "if",
    "impl",
    "import",
    "in",
    "interface",
    "is",
    "lambda",
    "let",
    "loop",
    "match",
    "mod",
    "mut",
    "new",
    "nil",
    "none",
    "None",
    "not",
    "null",
    "or",
    "and",
    "package",
    "pass",
    "pub",
    "raise",
    "return",
    "self",
    "Self",
    "static",
    "struct",
    "super",
    "switch",
    "this",
    "throw",
    "trait",
    "true",
    "True",
    "False",
    "try",
    "type",
    "typeof",
    "use",
    "var",
    "void",
    "where",
    "while",
    "with",
    "yield",
    "int",
    "char",
    "bool",
    "float",
    "double",
    "long",
    "unsigned",
    "string",
    "str",
    "u8",
    "u16",
    "u32",
    "u64",
    "usize",
    "i8",
    "i16",
    "i32",
    "i64",
    "isize",
    "f32",
    "f64",
    "include",
    "define",
    "public",
    "private",
    "protected",
    "println",
    "print",
    "String",
    "Vec",
    "Option",
    "Some",
    "Ok",
    "Err",
    "Result",
    "len",
    "range",
];

pub fn collect(
    mode: ContextMode,
    current: &CurrentFile<'_>,
    workspace: &Workspace<'_>,
    window_lines: (usize, usize),
) -> Vec<Snippet> {
    let mut texts = FileTexts::new(workspace);
    let mut out = similar(mode, current, workspace, &mut texts);
    if mode == ContextMode::Full && !workspace.cancelled() {
        let imported = imported_files(current, workspace);
        out.extend(definitions(current, workspace, &imported));
        out.extend(recent_edits(current, workspace, &mut texts));
    }
    // The current file's own lines already in the prompt would only repeat it.
    let (first, last) = window_lines;
    out.retain(|s| s.path != current.relative || s.end_line <= first || s.start_line >= last);
    out
}

/// File texts for this request: open documents from their rope (they win over the disk),
/// others read from disk once.
struct FileTexts<'a> {
    workspace: &'a Workspace<'a>,
    disk: HashMap<PathBuf, Option<Arc<Vec<String>>>>,
}

impl<'a> FileTexts<'a> {
    fn new(workspace: &'a Workspace<'a>) -> Self {
        Self {
            workspace,
            disk: HashMap::new(),
        }
    }

    /// Lines `start..end` of `path`, redacted; `None` when the file cannot be read, or when
    /// it now resolves to a secret file (a symlink retargeted since it was indexed).
    fn lines(&mut self, path: &Path, start: usize, end: usize) -> Option<String> {
        if self.workspace.excludes.is_excluded(path, None) || self.workspace.cancelled() {
            return None;
        }
        if let Some(document) = self.workspace.open.get(path) {
            let rope = &document.rope;
            let end = end.min(rope.len_lines());
            if start >= end {
                return None;
            }
            // Redacted with the lines around it, then cut (see `privacy::Region`).
            let region = Region::around(rope, start, end);
            let text = region.text(rope, rope.line_to_char(start)..rope.line_to_char(end));
            return Some(text.trim_end_matches('\n').to_string());
        }
        let lines = self
            .disk
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                crate::index::read_source(path)
                    .ok()
                    .map(|text| Arc::new(text.lines().map(str::to_string).collect()))
            })
            .clone()?;
        let end = end.min(lines.len());
        if start >= end {
            return None;
        }
        Some(redact_lines(&lines, start..end))
    }
}

/// By name only: the index judged where an indexed file resolves when it read it, and
/// `FileTexts::lines` judges it again before reading its text (many candidates, few reads).
fn excluded(workspace: &Workspace<'_>, file: &FileEntry) -> bool {
    workspace
        .excludes
        .excludes_name(&file.path, Some(Path::new(&file.relative)))
}

fn is_current(current: &CurrentFile<'_>, file: &FileEntry) -> bool {
    current.path == Some(file.path.as_path())
}

/// Most agreeing MinHash slots first; then path and window, so the order is total.
fn by_agreement(
    a: &(usize, Arc<FileEntry>, usize),
    b: &(usize, Arc<FileEntry>, usize),
) -> std::cmp::Ordering {
    b.0.cmp(&a.0)
        .then_with(|| a.1.path_order(&b.1))
        .then(a.2.cmp(&b.2))
}

/// (c) Windows of other files most similar to the lines before the cursor: MinHash picks
/// candidates across the whole index cheaply, exact Jaccard ranks them.
fn similar(
    mode: ContextMode,
    current: &CurrentFile<'_>,
    workspace: &Workspace<'_>,
    texts: &mut FileTexts<'_>,
) -> Vec<Snippet> {
    let rope = current.rope;
    let line = rope.char_to_line(current.cursor_char.min(rope.len_chars()));
    let first = line.saturating_sub(QUERY_LINES);
    let query_lines: Vec<String> = (first..line).map(|l| rope.line(l).to_string()).collect();
    let query = token_set(query_lines.iter().map(String::as_str));
    if query.len() < 3 {
        return Vec::new();
    }
    let signature = minhash(&query);
    // Top candidates by estimated similarity: (agreeing slots, file, window index).
    let mut best: Vec<(usize, Arc<FileEntry>, usize)> = Vec::new();
    let mut floor = 1;
    for file in workspace.index.all_files() {
        // Exclusion is checked on the few candidates below, not here: glob matching every
        // file would cost more than the whole scan.
        if is_current(current, &file) {
            continue;
        }
        if workspace.cancelled() {
            return Vec::new();
        }
        for (at, window) in file.windows.iter().enumerate() {
            let agree = window
                .minhash
                .iter()
                .zip(&signature)
                .filter(|(a, b)| a == b)
                .count();
            if agree < floor {
                continue;
            }
            best.push((agree, file.clone(), at));
            if best.len() >= SIMILAR_CANDIDATES * 4 {
                // The full key, ties included: the index is scanned in hash order, which
                // differs between processes, so cutting ties by arrival would make the same
                // cursor's candidates depend on the process.
                best.sort_by(by_agreement);
                best.truncate(SIMILAR_CANDIDATES);
                floor = best.last().map_or(1, |b| b.0);
            }
        }
    }
    best.sort_by(by_agreement);
    best.truncate(SIMILAR_CANDIDATES);
    let recent: HashSet<&Path> = workspace
        .recently_edited
        .iter()
        .map(PathBuf::as_path)
        .collect();
    let mut scored: Vec<(f32, Arc<FileEntry>, usize)> = best
        .into_iter()
        .map(|(_, file, at)| {
            let mut score = jaccard(&query, &file.windows[at].tokens);
            if mode == ContextMode::Full
                && (workspace.open.contains_key(&file.path) || recent.contains(file.path.as_path()))
            {
                // Files the user is working with are likelier to matter.
                score *= 1.2;
            }
            (score, file, at)
        })
        .filter(|(score, file, _)| *score >= MIN_JACCARD && !excluded(workspace, file))
        .collect();
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| a.1.path.cmp(&b.1.path))
            .then(a.2.cmp(&b.2))
    });
    // At most two windows of one file, so one file cannot take the whole share.
    let mut per_file: HashMap<PathBuf, usize> = HashMap::new();
    let mut out = Vec::new();
    for (score, file, at) in scored {
        if out.len() >= SIMILAR_RESULTS {
            break;
        }
        let count = per_file.entry(file.path.clone()).or_default();
        if *count >= 2 {
            continue;
        }
        *count += 1;
        let window = &file.windows[at];
        let (start, end) = (window.start_line as usize, window.end_line as usize);
        if let Some(text) = texts.lines(&file.path, start, end) {
            out.push(Snippet {
                path: file.relative.clone(),
                start_line: start,
                end_line: end,
                text,
                score: score.min(1.0) * 0.9,
                kind: SourceKind::Similar,
                verbatim: true,
            });
        }
    }
    out
}

/// Files the current file imports, resolved against the index by path suffix.
pub fn imported_files(current: &CurrentFile<'_>, workspace: &Workspace<'_>) -> Vec<Arc<FileEntry>> {
    let Some(path) = current.path else {
        return Vec::new();
    };
    let Some(entry) = workspace.index.file(path) else {
        return Vec::new();
    };
    let mut found: BTreeMap<PathBuf, Arc<FileEntry>> = BTreeMap::new();
    for import in &entry.imports {
        let segments = import_segments(import, entry.lang);
        let mut targets: Vec<Vec<String>> = import
            .names
            .iter()
            .map(|name| {
                let mut with_name = segments.clone();
                with_name.push(name.clone());
                with_name
            })
            .collect();
        targets.push(segments);
        for target in targets {
            // The longest prefix of the path that names a file: `a::b::C` is in a/b.rs.
            for n in (1..=target.len()).rev() {
                let stem = &target[n - 1];
                let mut matches: Vec<Arc<FileEntry>> = workspace
                    .index
                    .files_with_stem(stem)
                    .into_iter()
                    .chain(workspace.index.files_with_stem("mod"))
                    .chain(workspace.index.files_with_stem("__init__"))
                    .chain(workspace.index.files_with_stem("index"))
                    .filter(|f| f.path != entry.path && path_matches(&f.path, &target[..n]))
                    .collect();
                if !matches.is_empty() {
                    matches.sort_by(|a, b| a.path_order(b));
                    for file in matches.into_iter().take(4) {
                        found.insert(file.path.clone(), file);
                    }
                    break;
                }
            }
        }
        // Go imports a package: every file of the folder.
        if entry.lang == Some(crate::syntax::Lang::Go) {
            if let Some(dir) = import.path.rsplit('/').next() {
                for file in workspace
                    .index
                    .all_files_in_dir_named(dir)
                    .into_iter()
                    .take(8)
                {
                    found.insert(file.path.clone(), file);
                }
            }
        }
    }
    found
        .into_values()
        .filter(|file| !excluded(workspace, file))
        .collect()
}

/// Identifiers near the cursor and in its function, weighted by closeness to the cursor.
fn nearby_identifiers(current: &CurrentFile<'_>) -> Vec<(String, f32)> {
    let rope = current.rope;
    let cursor = current.cursor_char.min(rope.len_chars());
    let line = rope.char_to_line(cursor);
    // The word being typed is left out: it changes on every keystroke.
    let line_start = rope.line_to_char(line);
    let before: String = rope.slice(line_start..cursor).to_string();
    let typed_len = before
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .count();
    let mut weights: HashMap<String, f32> = HashMap::new();
    let mut add = |text: &str, weight: f32| {
        for token in identifiers(text) {
            if token.len() < 2 || KEYWORDS.contains(&token) {
                continue;
            }
            let entry = weights.entry(token.to_string()).or_default();
            *entry = entry.max(weight);
        }
    };
    let mut lines: Vec<usize> =
        (line.saturating_sub(NEAR_BEFORE)..(line + NEAR_AFTER).min(rope.len_lines())).collect();
    if let (Some(lang), Some(tree)) = (current.lang, current.tree) {
        if let Some(queries) = queries::get(lang) {
            let scopes = cursor_scopes(&queries, tree, rope, rope.char_to_byte(cursor));
            if let Some((start, end)) = scopes.function_lines {
                let end = end
                    .min(start + FUNCTION_LINES)
                    .min(rope.len_lines().saturating_sub(1));
                lines.extend(start..=end);
            }
        }
    }
    lines.sort_unstable();
    lines.dedup();
    for l in lines {
        let distance = l.abs_diff(line) as f32;
        let weight = 1.0 / (1.0 + distance / 8.0);
        if l == line {
            let text = rope.line(l).to_string();
            let cut = before.len()
                - before
                    .chars()
                    .rev()
                    .take(typed_len)
                    .map(char::len_utf8)
                    .sum::<usize>();
            add(&text[..cut.min(text.len())], 1.0);
            let after_cursor = text.get(before.len()..).unwrap_or("");
            let after_word =
                after_cursor.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_');
            add(after_word, 1.0);
        } else {
            add(&rope.line(l).to_string(), weight);
        }
    }
    let mut list: Vec<(String, f32)> = weights.into_iter().collect();
    list.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    list.truncate(MAX_IDENTIFIERS);
    list
}

/// (b) Definitions of the identifiers near the cursor: from imported files first, then the
/// current folder, then anywhere.
fn definitions(
    current: &CurrentFile<'_>,
    workspace: &Workspace<'_>,
    imported: &[Arc<FileEntry>],
) -> Vec<Snippet> {
    let imported: HashSet<&Path> = imported.iter().map(|f| f.path.as_path()).collect();
    let current_dir = current.path.and_then(Path::parent);
    let mut out = Vec::new();
    for (name, weight) in nearby_identifiers(current) {
        if workspace.cancelled() {
            break;
        }
        let found = workspace.index.definitions_named(&name);
        if found.is_empty() {
            continue;
        }
        let ambiguous = found
            .iter()
            .map(|(f, _)| f.path.as_path())
            .collect::<HashSet<_>>()
            .len()
            > AMBIGUOUS_NAME;
        let mut ranked: Vec<(f32, &Arc<FileEntry>, usize)> = found
            .iter()
            .filter(|(file, _)| !excluded(workspace, file))
            .map(|(file, at)| {
                let tier = if imported.contains(file.path.as_path()) {
                    1.0
                } else if is_current(current, file) {
                    0.75
                } else if file.path.parent() == current_dir {
                    0.7
                } else if ambiguous {
                    0.0
                } else {
                    0.45
                };
                (tier * weight, file, *at)
            })
            .filter(|(score, _, _)| *score > 0.0)
            .collect();
        ranked.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then_with(|| a.1.path.cmp(&b.1.path))
                .then(a.2.cmp(&b.2))
        });
        for (score, file, at) in ranked.into_iter().take(MAX_DEFINITIONS_PER_NAME) {
            let definition = &file.definitions[at];
            out.push(Snippet {
                path: file.relative.clone(),
                start_line: definition.start_line as usize,
                end_line: definition.end_line as usize + 1,
                text: definition.display(),
                score,
                kind: SourceKind::Definition,
                verbatim: false,
            });
        }
    }
    out
}

/// (d) Regions edited lately, in open documents (the current one included: edits far from
/// the cursor are outside its prefix/suffix).
fn recent_edits(
    current: &CurrentFile<'_>,
    workspace: &Workspace<'_>,
    texts: &mut FileTexts<'_>,
) -> Vec<Snippet> {
    let mut out = Vec::new();
    let mut documents: Vec<PathBuf> = workspace.recently_edited.iter().take(4).cloned().collect();
    if let Some(path) = current.path {
        if !documents.iter().any(|p| p == path) {
            documents.push(path.to_path_buf());
        }
    }
    for (rank, path) in documents.into_iter().enumerate() {
        let path = path.as_path();
        let Some(document) = workspace.open.get(path) else {
            continue;
        };
        let Some(file) = workspace.index.file(path) else {
            continue;
        };
        if excluded(workspace, &file) {
            continue;
        }
        for (age, &line) in document.recent_edits.iter().rev().take(3).enumerate() {
            let start = line.saturating_sub(RECENT_EDIT_RADIUS);
            let end = line + RECENT_EDIT_RADIUS + 1;
            if let Some(text) = texts.lines(path, start, end) {
                out.push(Snippet {
                    path: file.relative.clone(),
                    start_line: start,
                    end_line: start + text.lines().count(),
                    text,
                    score: 0.5 / (1.0 + rank as f32 * 0.5 + age as f32 * 0.3),
                    kind: SourceKind::RecentEdit,
                    verbatim: true,
                });
            }
        }
    }
    out
}
