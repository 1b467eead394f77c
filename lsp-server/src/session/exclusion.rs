//! Whether a request may read a document into a prompt: secret files (`.env`, keys, ...) may
//! not, by any name they go by, including where a symlink leads. Following the links reads
//! the disk, so it is done once per opened document, by the first request that asks, and
//! kept on the document (`Document::link_target`); an edit never asks. Not the arrival lane:
//! the handlers applied at arrival use `Session::is_excluded_by_name` (`tests/tidy.rs` holds
//! them to it).

use tower_lsp_server::gen_lsp_types::Uri;

use super::Session;
use crate::index::uri_to_path;
use crate::privacy::excludes::resolve_links;

impl Session {
    /// Whether `uri` is a secret file, by its name or by where its symlinks lead. The first
    /// call after a didOpen resolves the links (disk); later ones reuse that.
    pub fn is_excluded(&self, uri: &Uri) -> bool {
        if self.is_excluded_by_name(uri) {
            return true;
        }
        let Some(path) = uri_to_path(uri) else {
            return false; // no local path: no link to follow
        };
        // The cell is cloned out so that the map's shard is not locked while the disk is read.
        let link_target = self.documents.get(uri).map(|d| d.link_target.clone());
        let excludes = self.excludes();
        match link_target {
            Some(cell) => {
                let target = cell.get_or_init(|| resolve_links(&path));
                excludes.excludes_link_target(&path, target.as_deref())
            }
            // Not open: nothing to keep it on (and nothing to complete in).
            None => excludes.excludes_link_target(&path, resolve_links(&path).as_deref()),
        }
    }

    /// Whether `uri`'s link target has been resolved (for the tests).
    #[cfg(test)]
    fn link_resolved(&self, uri: &Uri) -> bool {
        self.documents
            .get(uri)
            .is_some_and(|d| d.link_target.get().is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Document;
    use super::*;

    fn uri_of(path: &Path) -> Uri {
        Uri::from(format!("file://{}", path.display()).as_str())
    }

    /// A symlink to a `.env` under an ordinary name: excluded once a request asks, resolved
    /// once per open (edits and later requests reuse it), afresh after a reopen.
    #[cfg(unix)]
    #[test]
    fn links_are_followed_once_per_open_document() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "A=1\n").unwrap();
        std::fs::write(dir.path().join("plain.py"), "a = 1\n").unwrap();
        let link = dir.path().join("app_settings.py");
        std::os::unix::fs::symlink(dir.path().join(".env"), &link).unwrap();
        let session = Session::new();
        let linked = uri_of(&link);
        session.open_document(linked.clone(), Document::new("A=1\n", 1, "python".into()));
        assert!(
            !session.is_excluded_by_name(&linked),
            "its own name is ordinary"
        );
        assert!(!session.link_resolved(&linked), "didOpen reads no disk");
        assert!(session.is_excluded(&linked), "it leads to a .env");
        assert!(session.link_resolved(&linked));
        // Retargeted while open: the verdict of this open stands (no disk per request).
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(dir.path().join("plain.py"), &link).unwrap();
        session.edit_document(&linked, |d| d.version = 2);
        assert!(session.is_excluded(&linked));
        // A reopen resolves afresh.
        session.open_document(linked.clone(), Document::new("a = 1\n", 3, "python".into()));
        assert!(!session.link_resolved(&linked));
        assert!(!session.is_excluded(&linked));
        // Secret names need no disk at all.
        let env = uri_of(&dir.path().join("x/.env"));
        assert!(session.is_excluded_by_name(&env));
        assert!(session.is_excluded(&env));
    }
}
