//! Optional API keys (`--api-key-file`, format in `keys.rs`). A request to `/v1/*` names its key
//! in `Authorization: Bearer KEY` (the scheme in any case, RFC 7235); the key's owner, limits
//! and prefix-cache partition then travel with the request as a [`Caller`].

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{
    audit::{hold_until_body_ends, AuditSlot},
    error::ApiError,
    keys::{LimitKind, OwnerLimits, OwnerUsage},
    AppState,
};

/// Who sent a request: set by [`require_api_key`] when the server has API keys.
#[derive(Clone)]
pub struct Caller {
    pub owner: Arc<str>,
    /// The prefix-cache partition (`owner:NAME` or `group:NAME`).
    pub partition: Arc<str>,
    pub usage: Arc<OwnerUsage>,
    pub limits: OwnerLimits,
}

/// Longer Authorization headers are refused (431) before any key is compared.
pub const MAX_AUTHORIZATION_BYTES: usize = 1024;

/// Query parameters that look like a credential.
fn key_in_query(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair
            .split('=')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        matches!(
            name.as_str(),
            "key"
                | "api_key"
                | "api-key"
                | "apikey"
                | "access_token"
                | "token"
                | "auth"
                | "authorization"
                | "bearer"
        )
    })
}

/// The key of an `Authorization` header: `Bearer KEY`, the scheme in any case, one key of
/// visible ASCII characters.
pub(super) fn bearer_key(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, key) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let key = key.trim_start_matches(' ');
    (!key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic())).then_some(key)
}

fn unauthorized(message: &str) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", message).into_response()
}

pub async fn require_api_key(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(store) = &state.keys else {
        return next.run(request).await;
    };
    if request.uri().query().is_some_and(key_in_query) {
        return unauthorized(
            "API keys are not accepted in the URL (URLs end up in logs and histories); send the header Authorization: Bearer KEY",
        );
    }
    let mut values = request.headers().get_all(header::AUTHORIZATION).iter();
    let (first, second) = (values.next(), values.next());
    let Some(value) = first else {
        return ApiError::unauthorized().into_response();
    };
    if second.is_some() {
        return unauthorized("more than one Authorization header");
    }
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request_error",
            format!("the Authorization header is longer than {MAX_AUTHORIZATION_BYTES} bytes"),
        )
        .into_response();
    }
    let Some(key) = bearer_key(value.as_bytes()) else {
        return ApiError::unauthorized().into_response();
    };
    let ring = store.current();
    let Some(owner) = ring.owner_of(key.as_bytes()) else {
        return ApiError::unauthorized().into_response();
    };
    let audit = request.extensions().get::<AuditSlot>().cloned();
    if let Some(audit) = &audit {
        audit.update(|r| r.owner = Some(owner.name.clone()));
    }
    let usage = state.tenants.usage(&owner.name);
    let slot = if matches!(request.uri().path(), "/v1/completions" | "/infill") {
        match usage.admit(&owner.limits) {
            Ok(slot) => Some(slot),
            Err((limit, retry_after)) => {
                return refuse_over_limit(&state, &owner.name, audit.as_ref(), limit, retry_after)
            }
        }
    } else {
        None
    };
    request.extensions_mut().insert(Caller {
        owner: owner.name.clone(),
        partition: owner.partition.clone(),
        usage,
        limits: owner.limits,
    });
    drop(ring);
    let response = next.run(request).await;
    match slot {
        // The stream is the owner's until its body has ended.
        Some(slot) => hold_until_body_ends(response, slot),
        None => response,
    }
}

/// The 429 for an owner over one of its limits (counted in `/metrics` and the audit line).
pub(super) fn refuse_over_limit(
    state: &AppState,
    owner: &str,
    audit: Option<&AuditSlot>,
    limit: LimitKind,
    retry_after: u32,
) -> Response {
    state.owner_metrics.count_limited(owner, limit.as_str());
    if let Some(audit) = audit {
        audit.update(|r| r.limited = Some(limit.as_str()));
    }
    let what = match limit {
        LimitKind::RequestsPerMinute => "requests per minute",
        LimitKind::Streams => "concurrent requests",
        LimitKind::TokensPerMinute => "generated tokens per minute",
    };
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
        format!("{owner} is over its limit of {what}; retry after {retry_after} s"),
    )
    .retry_after(retry_after)
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::{bearer_key, key_in_query};

    #[test]
    fn bearer_scheme_in_any_case() {
        assert_eq!(bearer_key(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer_key(b"bearer abc"), Some("abc"));
        assert_eq!(bearer_key(b"BEARER  abc "), Some("abc"));
        assert_eq!(bearer_key(b"Basic abc"), None);
        assert_eq!(bearer_key(b"Bearer"), None);
        assert_eq!(bearer_key(b"Bearer a b"), None);
        assert_eq!(bearer_key(b"Bearer \xff\xfe"), None);
    }

    #[test]
    fn credentials_in_the_query_are_spotted() {
        assert!(key_in_query("api_key=x"));
        assert!(key_in_query("a=1&Key=x"));
        assert!(!key_in_query("monkey=1"));
    }
}
