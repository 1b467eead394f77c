use ropey::Rope;
use tower_lsp_server::gen_lsp_types::TextDocumentContentChangeEvent;

use crate::edit::{apply_content_change, PositionEncoding};

/// An open text document. Cloning is O(1): ropey shares its tree, so handlers take a
/// snapshot and never hold the session's lock across an await.
#[derive(Clone, Debug)]
pub struct Document {
    pub rope: Rope,
    pub version: i32,
    pub language_id: String,
}

impl Document {
    pub fn new(text: &str, version: i32, language_id: String) -> Self {
        Self {
            rope: Rope::from_str(text),
            version,
            language_id,
        }
    }

    pub fn apply_changes(
        &mut self,
        changes: &[TextDocumentContentChangeEvent],
        version: i32,
        encoding: PositionEncoding,
    ) {
        for change in changes {
            apply_content_change(&mut self.rope, change, encoding);
        }
        self.version = version;
    }
}
