//! The affinity key sent with every backend request (`X-Session-ID`), so that a router in
//! front of several ghostline-serve replicas (vllm-router's `consistent_hash`, nginx
//! `hash $http_x_session_id consistent`, an ingress's `upstream-hash-by`) sends every
//! keystroke of a document to the replica whose prefix cache already holds its prompt.
//!
//! The key is a hash: it names no path and carries no code. It is the same for a document
//! across keystrokes and restarts of the editor (the same workspace and file give the same
//! key), and different for different documents, so one person's open files spread over the
//! replicas.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

pub const HEADER: &str = "x-session-id";

/// `roots`: the workspace folders, in the order the editor gave them; `uri`: the document.
pub fn key(roots: &[PathBuf], uri: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"ghostline-affinity/1\0");
    for root in roots {
        hasher.update(root.as_os_str().as_encoded_bytes());
        hasher.update(b"\0");
    }
    hasher.update(b"\0");
    hasher.update(uri.as_bytes());
    let digest = hasher.finalize();
    // 128 bits: plenty to spread documents over replicas, and nothing to read back.
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::key;
    use std::path::PathBuf;

    #[test]
    fn stable_per_document_and_free_of_the_path() {
        let roots = vec![PathBuf::from("/home/ada/project")];
        let a = key(&roots, "file:///home/ada/project/src/lib.rs");
        assert_eq!(a, key(&roots, "file:///home/ada/project/src/lib.rs"));
        assert_ne!(a, key(&roots, "file:///home/ada/project/src/main.rs"));
        assert_ne!(
            a,
            key(
                &[PathBuf::from("/home/bob/project")],
                "file:///home/ada/project/src/lib.rs"
            )
        );
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!a.contains("lib") && !a.contains("ada"));
    }
}
