use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ropey::Rope;
use tower_lsp_server::gen_lsp_types::TextDocumentContentChangeEvent;
use tree_sitter::Tree;

use crate::edit::{apply_content_change, AppliedChange, PositionEncoding};
use crate::syntax::Lang;

/// Lines of the latest edits kept per document (a source of prompt context).
const RECENT_EDITS: usize = 8;

/// Another open document as the context sources see it (a snapshot: ropes clone in O(1)).
pub struct OpenDocument {
    pub rope: Rope,
    pub recent_edits: Vec<usize>,
}

/// An open text document. Cloning is O(1): ropey shares its tree and so does tree-sitter,
/// so handlers take a snapshot and never hold the session's lock across an await.
#[derive(Clone, Debug)]
pub struct Document {
    pub rope: Rope,
    pub version: i32,
    pub language_id: String,
    /// `None` for languages without a grammar.
    pub lang: Option<Lang>,
    /// The last parse, kept in step with the text by `Tree::edit` on every change; when
    /// `tree_stale` the next reader reparses, reusing it (incremental), and stores the result.
    pub tree: Option<Tree>,
    pub tree_stale: bool,
    /// Lines of the latest edits, newest last, one entry per line. Eight numbers read whole
    /// in order: a `VecDeque` is the whole cache; an LRU crate would add nothing.
    pub recent_edits: VecDeque<usize>,
    /// False while `MAX_OPEN_DOCUMENTS` others are served: kept in sync, nothing more
    /// (`Session::close_document` serves it when one of those closes).
    pub served: bool,
    /// False after an edit failed to apply (see `Session::mark_out_of_sync`): the text may
    /// differ from the editor's, so nothing is suggested from it until the editor sends it
    /// whole again (a didOpen, or a change without a range).
    pub in_sync: bool,
    /// Where the document's path leads once symlinks are followed (`None`: nowhere else, or
    /// no file), resolved from the disk once per didOpen by the first request that needs it
    /// (`Session::is_excluded`), never on an edit. Shared by every snapshot and kept across
    /// edits; a reopen starts afresh.
    pub link_target: Arc<OnceLock<Option<PathBuf>>>,
}

impl Document {
    pub fn new(text: &str, version: i32, language_id: String) -> Self {
        Self {
            rope: Rope::from_str(text),
            version,
            lang: Lang::from_language_id(&language_id),
            language_id,
            tree: None,
            tree_stale: true,
            recent_edits: VecDeque::new(),
            served: true,
            in_sync: true,
            link_target: Arc::new(OnceLock::new()),
        }
    }

    /// Whether suggestions, the parse tree and the index take this document: it is one of
    /// the `MAX_OPEN_DOCUMENTS` served, at most `MAX_DOCUMENT_BYTES` long, and its text is
    /// the editor's.
    pub fn gets_suggestions(&self) -> bool {
        self.served && self.in_sync && self.rope.len_bytes() <= super::MAX_DOCUMENT_BYTES
    }

    pub fn apply_changes(
        &mut self,
        changes: &[TextDocumentContentChangeEvent],
        version: i32,
        encoding: PositionEncoding,
    ) {
        for change in changes {
            match apply_content_change(&mut self.rope, change, encoding) {
                AppliedChange::Ranged(edit) => {
                    if let Some(tree) = &mut self.tree {
                        tree.edit(&edit);
                    }
                    self.note_edit(edit.start_position.row);
                }
                AppliedChange::Replaced => {
                    self.tree = None;
                    self.recent_edits.clear();
                    // The editor sent the whole text: whatever an earlier failed edit left
                    // behind is gone.
                    self.in_sync = true;
                }
            }
            self.tree_stale = true;
        }
        self.version = version;
    }

    fn note_edit(&mut self, line: usize) {
        if self.recent_edits.back() == Some(&line) {
            return;
        }
        self.recent_edits.retain(|&l| l != line);
        if self.recent_edits.len() >= RECENT_EDITS {
            self.recent_edits.pop_front();
        }
        self.recent_edits.push_back(line);
    }
}
