//! OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`: every error answer
//! of the server, and the event that ends a stream that failed.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: String,
    /// `invalid_request_error`, `server_overloaded`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The request field at fault, when one is.
    #[serde(default)]
    pub param: Option<String>,
    /// Always `null` from ghostline-serve; other servers put a string here.
    #[serde(default)]
    pub code: Option<serde_json::Value>,
}

impl ErrorBody {
    pub fn new(kind: impl Into<String>, message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            error: ErrorDetail {
                message: message.into(),
                kind: kind.into(),
                param: param.map(str::to_string),
                code: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_body_is_openais() {
        let body = ErrorBody::new("invalid_request_error", "prompt is empty", Some("prompt"));
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"message":"prompt is empty","type":"invalid_request_error","param":"prompt","code":null}}"#
        );
        let read: ErrorBody = serde_json::from_str(
            r#"{"error":{"message":"x","type":"t","param":null,"code":"rate_limit","extra":1}}"#,
        )
        .unwrap();
        assert_eq!(read.error.code, Some(serde_json::json!("rate_limit")));
        assert_eq!(read.error.param, None);
    }
}
