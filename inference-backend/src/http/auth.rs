//! Optional bearer API keys. Keys are compared in constant time so that response timing does not
//! reveal how much of a guessed key was right.

use std::{path::Path, sync::Arc};

use anyhow::{bail, Context, Result};
use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;

use super::{error::ApiError, AppState};

/// One key per line; blank lines and `#` comments are ignored.
pub fn load_api_keys(path: &Path) -> Result<Vec<Vec<u8>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read API key file {}", path.display()))?;
    let keys: Vec<Vec<u8>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.as_bytes().to_vec())
        .collect();
    if keys.is_empty() {
        bail!("API key file {} holds no key", path.display());
    }
    Ok(keys)
}

fn key_matches(keys: &[Vec<u8>], offered: &[u8]) -> bool {
    // Every key is compared, so the time taken does not depend on which one matched.
    keys.iter().fold(false, |found, key| {
        found | bool::from(key.as_slice().ct_eq(offered))
    })
}

pub async fn require_api_key(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(keys) = &state.api_keys {
        let offered = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match offered {
            Some(key) if key_matches(keys, key.as_bytes()) => {}
            _ => return ApiError::unauthorized().into_response(),
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::key_matches;

    #[test]
    fn only_exact_keys_match() {
        let keys = vec![b"alpha".to_vec(), b"beta-key".to_vec()];
        assert!(key_matches(&keys, b"beta-key"));
        assert!(!key_matches(&keys, b"beta"));
        assert!(!key_matches(&keys, b"beta-key2"));
        assert!(!key_matches(&keys, b""));
    }
}
