//! What the model sees, all of it: the current file's window around the cursor (`window`),
//! the context from elsewhere (`sources`, `select`, the snippet memo) and the prompt format
//! (`template`). Runs on the blocking pool (see `complete::blocking`): the sources read files
//! from disk and scan the whole index, so every long loop checks `Workspace::cancel` and a
//! superseded request stops within one file. Imports only the layers below it: `tokens`,
//! `edit`, `syntax`, `privacy`, `index`, `settings`, `session` (the documents' snapshot
//! type) and `backend` (the markers `/v1/models` reports).
//!
//! Sources (`sources`) each propose scored snippets: definitions of identifiers used near the
//! cursor, resolved through the file's imports and the workspace index; windows of similar
//! code (Jaccard over identifier tokens); regions edited recently. `select` takes those likely
//! to help (`select::MIN_SCORE`; `settings::SimilarWindows::Fill` also fills what is left of the
//! retrieved share with the most similar windows) beside the current file's prefix and suffix,
//! merging overlaps,
//! dropping the lowest scores first, and ordering them by a stable key so consecutive keystrokes produce prompts with a long common prefix (the
//! backend's KV cache then re-reads only the end). `template` writes the prompt for the
//! model family. Everything that enters a prompt is redacted (`privacy`), each text as a whole
//! before it is cut.

pub mod select;
pub mod sources;
pub mod template;
pub mod window;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ropey::Rope;
use tokio_util::sync::CancellationToken;
use tree_sitter::Tree;

use crate::index::WorkspaceIndex;
use crate::privacy::{Excludes, Region};
pub use crate::session::OpenDocument;
use crate::settings::{ContextMode, SimilarWindows};
use crate::syntax::Lang;
use window::{cursor_context, CursorContext};

/// Where a snippet came from. The order is the placement order: later kinds sit nearer the
/// cursor, where the model attends most, so the most useful kind (definitions) goes last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    Similar,
    RecentEdit,
    Definition,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Snippet {
    /// Relative to the workspace root.
    pub path: String,
    /// 0-based lines of the file it shows, end exclusive.
    pub start_line: usize,
    pub end_line: usize,
    pub text: String,
    pub score: f32,
    pub kind: SourceKind,
    /// `text` is exactly those lines of the file (so overlapping ones can be joined).
    pub verbatim: bool,
}

/// What the sources may look at besides the current file.
pub struct Workspace<'a> {
    pub index: &'a WorkspaceIndex,
    pub open: &'a HashMap<PathBuf, OpenDocument>,
    /// Documents edited lately, newest first.
    pub recently_edited: &'a [PathBuf],
    pub excludes: &'a Excludes,
    /// Snippets chosen for earlier prompts, reused while the cursor stays in their region.
    pub memo: Option<&'a SnippetMemo>,
    /// Set when the request this is for was superseded or cancelled: the sources stop at the
    /// next file or identifier and what they found is thrown away (never memoized).
    pub cancel: Option<&'a CancellationToken>,
}

impl Workspace<'_> {
    pub fn cancelled(&self) -> bool {
        self.cancel.is_some_and(CancellationToken::is_cancelled)
    }
}

/// The snippets chosen for a region of a file (file, mode, budget and the first line of the
/// current file's window), kept while the user types there: other files' context comes first
/// in the prompt, so choosing it again on every keystroke (a newly typed identifier resolves to
/// another definition) would change the prompt from its start and the backend would compute all
/// of it again. A move to another region, or another budget, chooses afresh.
pub struct SnippetMemo {
    chosen: std::sync::Mutex<quick_cache::unsync::Cache<MemoKey, Vec<Snippet>>>,
}

impl Default for SnippetMemo {
    fn default() -> Self {
        Self {
            chosen: std::sync::Mutex::new(quick_cache::unsync::Cache::new(MEMO_ENTRIES)),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct MemoKey {
    path: String,
    mode: ContextMode,
    budget: usize,
    window_start: usize,
}

/// Regions remembered (a few files' worth); when it is full the least used go one at a time,
/// so the region the user is typing in keeps its snippets (and the prompt its prefix).
const MEMO_ENTRIES: usize = 64;

impl SnippetMemo {
    fn get(&self, key: &MemoKey) -> Option<Vec<Snippet>> {
        self.chosen.lock().ok()?.get(key).cloned()
    }

    fn put(&self, key: MemoKey, snippets: Vec<Snippet>) {
        if let Ok(mut chosen) = self.chosen.lock() {
            // One region per file and budget: the cursor left the others.
            chosen.retain(|k, _| {
                !(k.path == key.path && k.mode == key.mode && k.budget == key.budget)
            });
            chosen.insert(key, snippets);
        }
    }
}

pub struct CurrentFile<'a> {
    pub path: Option<&'a Path>,
    pub relative: &'a str,
    pub rope: &'a Rope,
    pub cursor_char: usize,
    pub lang: Option<Lang>,
    pub tree: Option<&'a Tree>,
}

/// One budget for the whole prompt, in cl100k tokens.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub total: usize,
    pub retrieved_share: f32,
    /// How similar windows spend the retrieved share (`full` mode).
    pub similar: SimilarWindows,
}

/// cl100k is not the model's tokenizer; this much of the budget is left as a margin.
pub const TOKENIZER_MARGIN: f32 = 0.9;

impl Budget {
    /// `context_tokens` of the settings, capped by the model's context less the completion.
    pub fn new(
        context_tokens: usize,
        model_context: Option<usize>,
        max_tokens: u32,
        retrieved_share: f32,
    ) -> Self {
        let cap = model_context
            .map(|context| context.saturating_sub(max_tokens as usize))
            .unwrap_or(usize::MAX);
        let tokens = context_tokens.min(cap);
        // Small budgets (a slow backend's first prompts, see `complete::pacing`) go to the
        // current file first: when only a few hundred tokens fit, its nearby lines are worth
        // more than other files' context. Other files get their share from 1,024 tokens on.
        let ramp = ((tokens as f32 - 256.0) / 768.0).clamp(0.0, 1.0);
        Self {
            total: (tokens as f32 * TOKENIZER_MARGIN) as usize,
            retrieved_share: retrieved_share.clamp(0.0, 0.9) * ramp,
            similar: SimilarWindows::default(),
        }
    }

    pub fn with_similar(self, similar: SimilarWindows) -> Self {
        Self { similar, ..self }
    }

    pub fn retrieved(&self) -> usize {
        (self.total as f32 * self.retrieved_share) as usize
    }
}

pub struct BuiltContext {
    /// The current file around the cursor, redacted.
    pub cursor: CursorContext,
    /// Other context in prompt order.
    pub snippets: Vec<Snippet>,
}

pub fn build(
    mode: ContextMode,
    current: &CurrentFile<'_>,
    workspace: &Workspace<'_>,
    budget: Budget,
) -> BuiltContext {
    let finish = |mut cursor: CursorContext, snippets| {
        redact_current(current.rope, &mut cursor);
        BuiltContext { cursor, snippets }
    };
    if mode == ContextMode::CurrentFile {
        return finish(
            cursor_context(current.rope, current.cursor_char, budget.total),
            Vec::new(),
        );
    }
    let retrieved_budget = budget.retrieved();
    // The window the current file takes when retrieval uses its whole share: snippets of
    // the current file inside it would repeat what the prompt already has.
    let narrow = cursor_context(
        current.rope,
        current.cursor_char,
        budget.total - retrieved_budget,
    );
    let key = MemoKey {
        path: current.relative.to_string(),
        mode,
        budget: budget.total,
        window_start: narrow.window_lines.0,
    };
    let chosen = match workspace.memo.and_then(|memo| memo.get(&key)) {
        Some(chosen) => chosen,
        None => {
            let candidates = sources::collect(mode, current, workspace, narrow.window_lines);
            // `full` adds another file's lines only where they are likely to help; the
            // `jaccard` baseline takes whatever is most similar.
            let min_score = match mode {
                ContextMode::Full => select::MIN_SCORE,
                _ => f32::MIN_POSITIVE,
            };
            let chosen = select::choose(
                candidates,
                retrieved_budget,
                min_score,
                mode == ContextMode::Full && budget.similar != SimilarWindows::Floor,
            );
            // A cancelled collection may be partial: it must not stand for the region.
            if let Some(memo) = workspace.memo.filter(|_| !workspace.cancelled()) {
                memo.put(key, chosen.clone());
            }
            chosen
        }
    };
    let used: usize = chosen.iter().map(select::cost).sum();
    let cursor = cursor_context(
        current.rope,
        current.cursor_char,
        budget.total.saturating_sub(used),
    );
    // The window grew into the unused share: drop what it now covers.
    let (first, last) = cursor.window_lines;
    let chosen = chosen
        .into_iter()
        .filter(|s| s.path != current.relative || s.end_line <= first || s.start_line >= last)
        .collect();
    finish(
        cursor,
        select::order(chosen, budget.similar != SimilarWindows::FillByPath),
    )
}

/// The current file's window with its secrets replaced. They are found in the lines around
/// the window as one text (`privacy::Region`) and only then cut at the cursor and the window's
/// edges, so a secret the cursor or an edge falls into is replaced whole: cut first, its two
/// halves would match no rule. (`complete::suggest` asks for nothing with the cursor inside
/// one; if asked, both sides of the cursor show `<redacted>`.)
fn redact_current(rope: &Rope, cursor: &mut CursorContext) {
    let region = Region::around(rope, cursor.window_lines.0, cursor.window_lines.1);
    if !region.has_secrets() {
        return;
    }
    let at = cursor.cursor_char;
    let prefix_start = at - cursor.prefix.chars().count();
    let suffix_end = at + cursor.suffix.chars().count();
    let line_start = at - cursor.line_prefix.chars().count();
    let line_end = at + cursor.rest_of_line.chars().count();
    cursor.prefix = region.text(rope, prefix_start..at);
    cursor.suffix = region.text(rope, at..suffix_end);
    cursor.line_prefix = region.text(rope, line_start..at);
    cursor.rest_of_line = region.text(rope, at..line_end);
}

#[cfg(test)]
mod tests {
    use super::template::{render, FimMarkers, Format, Parts};
    use super::*;
    use crate::index::FileEntry;

    const STORE: &str = "/// A line of an order.\npub struct Item {\n    pub price: u32,\n    pub quantity: u32,\n}\n\n/// Adds an item to the order and returns the new total.\npub fn add_item(order: &mut Vec<Item>, item: Item) -> u32 {\n    order.push(item);\n    order.iter().map(|i| i.price * i.quantity).sum()\n}\n";
    const REPORT: &str = "use crate::store::Item;\n\npub fn report(order: &[Item]) -> String {\n    let mut total = 0;\n    for item in order {\n        total += item.price * item.quantity;\n    }\n    format!(\"total {total}\")\n}\n";
    const MAIN: &str = "use crate::store::{add_item, Item};\n\nfn checkout(order: &mut Vec<Item>) -> u32 {\n    let mut total = 0;\n    for item in order.iter() {\n        total += item.price * item.quantity;\n    }\n    let extra = Item { price: 3, quantity: 1 };\n    let total = add_it";

    fn workspace_index() -> WorkspaceIndex {
        let index = WorkspaceIndex::new();
        for (path, text) in [
            ("src/store.rs", STORE),
            ("src/report.rs", REPORT),
            ("src/main.rs", MAIN),
        ] {
            index.insert(FileEntry::build(
                PathBuf::from("/w").join(path),
                path.into(),
                text,
            ));
        }
        index
    }

    fn prompt(index: &WorkspaceIndex, text: &str, mode: ContextMode) -> (String, Vec<Snippet>) {
        let rope = Rope::from_str(text);
        let path = PathBuf::from("/w/src/main.rs");
        // The other files are open in the editor: their text comes from there, not the disk.
        let open: HashMap<PathBuf, OpenDocument> =
            [("src/store.rs", STORE), ("src/report.rs", REPORT)]
                .into_iter()
                .map(|(p, t)| {
                    (
                        PathBuf::from("/w").join(p),
                        OpenDocument {
                            rope: Rope::from_str(t),
                            recent_edits: vec![],
                        },
                    )
                })
                .collect();
        let excludes = Excludes::default();
        let workspace = Workspace {
            index,
            open: &open,
            recently_edited: &[],
            excludes: &excludes,
            memo: None,
            cancel: None,
        };
        let tree = crate::syntax::parse_rope(Lang::Rust, &rope, None);
        let current = CurrentFile {
            path: Some(&path),
            relative: "src/main.rs",
            rope: &rope,
            cursor_char: rope.len_chars(),
            lang: Some(Lang::Rust),
            tree: tree.as_ref(),
        };
        let built = build(
            mode,
            &current,
            &workspace,
            Budget::new(2048, Some(32768), 128, 0.4),
        );
        let rendered = render(
            &Format::Qwen(FimMarkers::default()),
            &Parts {
                repo_name: "w",
                current_path: "src/main.rs",
                snippets: &built.snippets,
                prefix: &built.cursor.prefix,
                suffix: &built.cursor.suffix,
                comment: "//",
            },
        );
        (rendered.prompt, built.snippets)
    }

    #[test]
    fn full_mode_retrieves_imported_definitions_nearest_the_cursor() {
        let index = workspace_index();
        let (prompt, snippets) = prompt(&index, MAIN, ContextMode::Full);
        assert!(
            prompt.contains("pub fn add_item(order: &mut Vec<Item>, item: Item) -> u32"),
            "{prompt}"
        );
        assert!(prompt.contains("<|file_sep|>src/store.rs"));
        assert_eq!(
            snippets.last().map(|s| s.kind),
            Some(SourceKind::Definition)
        );
        let (current_only, none) = super::tests::prompt(&index, MAIN, ContextMode::CurrentFile);
        assert!(none.is_empty());
        assert!(!current_only.contains("src/store.rs\n"));
        let (_, similar) = super::tests::prompt(&index, MAIN, ContextMode::Jaccard);
        assert!(similar.iter().all(|s| s.kind == SourceKind::Similar));
        assert!(
            similar.iter().any(|s| s.path == "src/report.rs"),
            "{similar:?}"
        );
    }

    #[test]
    fn the_memo_keeps_the_region_in_use_while_others_come_and_go() {
        let memo = SnippetMemo::default();
        let key = |path: &str| MemoKey {
            path: path.into(),
            mode: ContextMode::Full,
            budget: 512,
            window_start: 0,
        };
        memo.put(key("src/current.rs"), Vec::new());
        // The user types in one file while many others are visited once each: the region in
        // use stays (it was cleared whole when the memo filled up, re-choosing its snippets).
        for i in 0..10 * MEMO_ENTRIES {
            assert!(
                memo.get(&key("src/current.rs")).is_some(),
                "lost after {i} others"
            );
            memo.put(key(&format!("src/other{i}.rs")), Vec::new());
        }
        assert!(memo.chosen.lock().unwrap().len() <= MEMO_ENTRIES);
    }

    #[test]
    fn a_cancelled_request_collects_nothing_and_memoizes_nothing() {
        let index = workspace_index();
        let rope = Rope::from_str(MAIN);
        let path = PathBuf::from("/w/src/main.rs");
        let open = HashMap::new();
        let excludes = Excludes::default();
        let memo = SnippetMemo::default();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let workspace = Workspace {
            index: &index,
            open: &open,
            recently_edited: &[],
            excludes: &excludes,
            memo: Some(&memo),
            cancel: Some(&cancel),
        };
        let tree = crate::syntax::parse_rope(Lang::Rust, &rope, None);
        let current = CurrentFile {
            path: Some(&path),
            relative: "src/main.rs",
            rope: &rope,
            cursor_char: rope.len_chars(),
            lang: Some(Lang::Rust),
            tree: tree.as_ref(),
        };
        let budget = Budget::new(2048, Some(32768), 128, 0.4);
        let built = build(ContextMode::Full, &current, &workspace, budget);
        assert!(built.snippets.is_empty(), "{:?}", built.snippets);
        assert!(memo.chosen.lock().unwrap().is_empty());
        // The same request not cancelled finds the imported definition, and remembers it.
        let workspace = Workspace {
            cancel: None,
            ..workspace
        };
        let built = build(ContextMode::Full, &current, &workspace, budget);
        assert!(built
            .snippets
            .iter()
            .any(|s| s.kind == SourceKind::Definition));
        assert_eq!(memo.chosen.lock().unwrap().len(), 1);
    }

    #[test]
    fn consecutive_keystrokes_share_the_retrieved_prefix() {
        let index = workspace_index();
        let retrieved =
            |prompt: &str| prompt[..prompt.find("<|file_sep|>src/main.rs").unwrap()].to_string();
        let mut previous: Option<String> = None;
        for typed in ["add_it", "add_ite", "add_item", "add_item(", "add_item(o"] {
            let text = format!("{}{typed}", MAIN.strip_suffix("add_it").unwrap());
            let (prompt, _) = prompt(&index, &text, ContextMode::Full);
            let part = retrieved(&prompt);
            assert!(part.len() > 100, "no retrieved context: {prompt}");
            if let Some(previous) = previous {
                let shared = previous
                    .bytes()
                    .zip(part.bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                assert!(
                    shared * 10 >= previous.len().max(part.len()) * 9,
                    "typing {typed:?} kept only {shared} of {} bytes:\n{previous}\n---\n{part}",
                    previous.len()
                );
            }
            previous = Some(part);
        }
    }
}
