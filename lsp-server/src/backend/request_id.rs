//! The id of each request to the backend, sent as `X-Request-ID`: ghostline-serve logs it in
//! the request's span and returns it, so one suggestion's request can be found in both
//! programs' logs. Logged here (debug) when the request goes out and when its answer ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// `lsp-<process tag>-<count>`: the tag (random, once per process) tells two editors' language
/// servers apart at one backend; the count orders this one's requests.
pub fn next() -> String {
    static TAG: OnceLock<u32> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(1);
    let tag = TAG.get_or_init(|| {
        let mut bytes = [0u8; 4];
        if getrandom::getrandom(&mut bytes).is_err() {
            // No entropy: the process id still tells processes apart.
            bytes = std::process::id().to_le_bytes();
        }
        u32::from_le_bytes(bytes)
    });
    format!("lsp-{tag:08x}-{}", COUNT.fetch_add(1, Ordering::Relaxed))
}

/// Logs the end of request `id`'s answer, how it ended.
pub fn ended(id: &str, outcome: &dyn std::fmt::Display) {
    tracing::debug!(request_id = %id, %outcome, "backend answer ended");
}

/// `result`, its end logged for request `id`.
pub fn ended_with<T, E: std::fmt::Display>(id: &str, result: Result<T, E>) -> Result<T, E> {
    match &result {
        Ok(_) => ended(id, &"ok"),
        Err(error) => ended(id, error),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_valid_on_the_wire() {
        let (a, b) = (next(), next());
        assert_ne!(a, b);
        for id in [a, b] {
            assert!(
                ghostline_protocol::headers::is_valid_request_id(&id),
                "{id}"
            );
            assert!(id.starts_with("lsp-"), "{id}");
        }
    }
}
