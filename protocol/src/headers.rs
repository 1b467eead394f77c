//! Header names both programs use, and what a request id may look like.

/// The document's affinity key: a load balancer in front of several servers keeps one
/// document's requests on one replica (whose prefix cache holds its prompt).
pub const SESSION_ID: &str = "x-session-id";

/// One HTTP request's id: sent by the client, logged by both sides, returned by the server.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest request id the server takes from a client; a longer one is replaced by its own.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a client's request id may be logged and echoed as it is: 1 to `MAX_REQUEST_ID_LEN`
/// visible ASCII characters (no spaces, no control characters that could forge log lines).
pub fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_visible_ascii() {
        assert!(is_valid_request_id("lsp-0123456789abcdef"));
        assert!(is_valid_request_id(&"a".repeat(MAX_REQUEST_ID_LEN)));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id(&"a".repeat(MAX_REQUEST_ID_LEN + 1)));
        assert!(!is_valid_request_id("two words"));
        assert!(!is_valid_request_id("line\nbreak"));
        assert!(!is_valid_request_id("caf\u{e9}"));
    }
}
