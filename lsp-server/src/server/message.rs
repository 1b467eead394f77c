//! A frame's body as a JSON-RPC message, in one JSON parse: the envelope's fields are read
//! straight from the bytes, `params` and `result` into the values tower-lsp-server's
//! `Request` and `Response` hold (moved in, never copied), unknown fields skipped unread.
//!
//! What counts as a request or a response is what tower-lsp-server's own decoder accepts
//! (`jsonrpc: "2.0"`; a response has an `id` and a `result` or an `error`, and wins over a
//! request, as in its untagged `Message`); anything else that is one JSON value is answered
//! with one "invalid request" error.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error, Id, Request, Response};

/// One message from the client.
#[derive(Debug)]
pub enum Incoming {
    Request(Request),
    /// The client's answer to a request of ours.
    Response(Response),
    /// One JSON value that is no JSON-RPC message: its answer.
    Invalid(Response),
}

/// A present field, even `null` (`"id": null` is an id; a missing one is none).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The fields a JSON-RPC message may have, each as it came.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default, deserialize_with = "present")]
    jsonrpc: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    method: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    params: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    result: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Value>,
}

/// A JSON-RPC id as tower-lsp-server reads one: an integer, a string or null.
fn id_of(value: &Value) -> Option<Id> {
    match value {
        Value::Number(n) => n.as_i64().map(Id::Number),
        Value::String(s) => Some(Id::String(s.clone())),
        Value::Null => Some(Id::Null),
        _ => None,
    }
}

impl Envelope {
    fn into_incoming(self) -> Incoming {
        let id = self.id.as_ref().map(id_of);
        if self.jsonrpc.as_ref().and_then(Value::as_str) != Some("2.0") {
            return Incoming::Invalid(invalid(self.id.as_ref()));
        }
        if let Some(Some(id)) = &id {
            if let Some(result) = self.result {
                return Incoming::Response(Response::from_ok(id.clone(), result));
            }
            if let Some(Ok(error)) = self.error.map(serde_json::from_value::<Error>) {
                return Incoming::Response(Response::from_error(id.clone(), error));
            }
        }
        let method = match self.method {
            None => String::new(),
            Some(Value::String(method)) => method,
            Some(_) => return Incoming::Invalid(invalid(self.id.as_ref())),
        };
        let mut request = Request::build(method);
        match id {
            None => {}
            Some(Some(id)) => request = request.id(id),
            Some(None) => return Incoming::Invalid(invalid(self.id.as_ref())),
        }
        if let Some(params) = self.params {
            request = request.params(params);
        }
        Incoming::Request(request.finish())
    }
}

/// The answer to one JSON value that is no JSON-RPC message: "invalid request", with its id
/// when one can be read (null otherwise, which the specification allows for these).
fn invalid(id: Option<&Value>) -> Response {
    let id = match id {
        Some(Value::Number(n)) => n.as_i64().map_or(Id::Null, Id::Number),
        Some(Value::String(s)) => Id::String(s.clone()),
        _ => Id::Null,
    };
    Response::from_error(id, Error::invalid_request())
}

/// Whether `body` is exactly one JSON value (whitespace around it aside).
fn is_one_value(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

/// The message in `body`, or `None` when `body` is not one JSON value (a damaged frame).
pub fn decode(body: &[u8]) -> Option<Incoming> {
    // serde would read an array as the envelope's fields in order; only an object is one.
    let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !object {
        return is_one_value(body).then(|| Incoming::Invalid(invalid(None)));
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => Some(envelope.into_incoming()),
        // Only on this error path is the body read again, to tell JSON of the wrong shape
        // (an array, a number, a duplicate field) from a body that is no JSON at all.
        Err(error) if error.is_data() && is_one_value(body) => {
            let id = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|value| value.get("id").cloned());
            Some(Incoming::Invalid(invalid(id.as_ref())))
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decoded(value: Value) -> Incoming {
        decode(value.to_string().as_bytes()).expect("one JSON value")
    }

    /// What tower-lsp-server's own decoder makes of the same bytes, through the types' serde.
    fn as_tower_reads(value: &Value) -> Option<String> {
        if let Ok(response) = Response::deserialize(value) {
            return Some(format!(
                "response {}",
                serde_json::to_string(&response).unwrap()
            ));
        }
        Request::deserialize(value)
            .ok()
            .map(|request| format!("request {}", serde_json::to_string(&request).unwrap()))
    }

    fn as_we_read(value: &Value) -> Option<String> {
        match decoded(value.clone()) {
            Incoming::Request(request) => Some(format!(
                "request {}",
                serde_json::to_string(&request).unwrap()
            )),
            Incoming::Response(response) => Some(format!(
                "response {}",
                serde_json::to_string(&response).unwrap()
            )),
            Incoming::Invalid(_) => None,
        }
    }

    #[test]
    fn reads_what_tower_lsp_server_reads() {
        let cases = [
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"a": [1]}}),
            json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
            json!({"jsonrpc": "2.0", "method": "exit"}),
            json!({"jsonrpc": "2.0", "id": "s3", "method": "m", "params": null}),
            json!({"jsonrpc": "2.0", "id": null, "method": "m"}),
            json!({"jsonrpc": "2.0", "id": 1}),
            json!({"jsonrpc": "2.0"}),
            json!({"jsonrpc": "2.0", "id": 1, "result": null}),
            json!({"jsonrpc": "2.0", "id": 1, "result": [1, 2], "method": "m"}),
            json!({"jsonrpc": "2.0", "id": 2, "error": {"code": -32601, "message": "no"}}),
            json!({"jsonrpc": "2.0", "id": 2, "error": {"code": "x"}, "method": "m"}),
            json!({"jsonrpc": "2.0", "id": 1.5, "method": "m"}),
            json!({"jsonrpc": "2.0", "id": u64::MAX, "method": "m"}),
            json!({"jsonrpc": "2.0", "id": [1], "method": "m"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": 5}),
            json!({"jsonrpc": "1.0", "id": 1, "method": "m"}),
            json!({"id": 1, "method": "m"}),
            json!({"jsonrpc": 2, "id": 1, "method": "m"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "m", "extra": {"deep": [1]}}),
        ];
        for value in cases {
            assert_eq!(as_we_read(&value), as_tower_reads(&value), "{value}");
        }
    }

    #[test]
    fn json_of_another_shape_is_invalid_with_its_id() {
        for (body, id) in [
            ("5", Id::Null),
            ("[1, 2]", Id::Null),
            ("\"x\"", Id::Null),
            (
                r#"{"jsonrpc": "1.0", "id": 7, "method": "m"}"#,
                Id::Number(7),
            ),
            (
                r#"{"jsonrpc": "2.0", "id": 7, "id": 8, "method": "m"}"#,
                Id::Number(8),
            ),
            (r#"{"jsonrpc": "2.0", "id": true, "method": "m"}"#, Id::Null),
        ] {
            match decode(body.as_bytes()) {
                Some(Incoming::Invalid(answer)) => {
                    let (answer_id, error) = answer.into_parts();
                    assert_eq!(answer_id, id, "{body}");
                    assert_eq!(error.unwrap_err(), Error::invalid_request(), "{body}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn what_is_no_json_value_is_none() {
        for body in [
            "",
            "{",
            r#"{"a": 1} x"#,
            r#"{"a": 1}{"b": 2}"#,
            "{\"a\":\"x\0y\"}",
        ] {
            assert!(decode(body.as_bytes()).is_none(), "{body:?}");
        }
    }
}
