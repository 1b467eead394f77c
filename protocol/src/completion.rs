//! `POST /v1/completions`: the request body, the answer (whole, or one streamed chunk of it),
//! its `usage` and `timings`, and the events of a stream.

use serde::{Deserialize, Serialize};

use crate::error::ErrorDetail;

/// A string or a list of strings, as OpenAI takes `prompt` and `stop`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl Default for OneOrMany {
    fn default() -> Self {
        Self::One(String::new())
    }
}

/// Body of `POST /v1/completions`. The server acts on these fields and ignores others that
/// OpenAI clients send (`user`, `logit_bias`, ...); absent fields are left out of the JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub prompt: OneOrMany,
    /// Fill-in-the-middle: the server applies its model's FIM template to `prompt` and this.
    /// Without it the prompt is raw (a client may have applied a template itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// 0: prefill only (ghostline-serve), so the prompt's KV is in the prefix cache for the
    /// requests to come: the LSP's warm-ups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<bool>,
    /// Extension (as in vLLM): keep generating past end-of-sequence, for benchmarks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_eos: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Extension: a raw prompt that may end inside a word (a FIM prompt with the cursor's line
    /// after the middle marker) is healed. Sent only to a server whose `/v1/models` reports
    /// `token_healing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_healing: Option<bool>,
}

/// OpenAI's `stream_options`: `include_usage` adds a last chunk with no choices and the usage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// The answer of `/v1/completions`: the whole of it, or one chunk of a stream (the same shape,
/// as OpenAI's). The chunk with the finish reason carries `usage` and `timings`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    #[serde(default, deserialize_with = "crate::lenient")]
    pub id: String,
    /// `text_completion`.
    #[serde(default, deserialize_with = "crate::lenient")]
    pub object: String,
    #[serde(default, deserialize_with = "crate::lenient")]
    pub created: u64,
    #[serde(default, deserialize_with = "crate::lenient")]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// ghostline-serve's extension: where the time went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

impl Completion {
    /// The choices' text, joined (one choice in practice).
    pub fn text(&self) -> String {
        self.choices.iter().map(|c| c.text.as_str()).collect()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub text: String,
    #[serde(default, deserialize_with = "crate::lenient")]
    pub index: u32,
    /// Never computed; `null`, as OpenAI sends it when not asked for.
    #[serde(default)]
    pub logprobs: Option<serde_json::Value>,
    /// `stop`, `length`; `null` until the last chunk.
    #[serde(default, deserialize_with = "crate::lenient")]
    pub finish_reason: Option<String>,
}

/// OpenAI's `usage`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: usize,
    #[serde(default)]
    pub completion_tokens: usize,
    #[serde(default, deserialize_with = "crate::lenient")]
    pub total_tokens: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

impl Usage {
    /// Prompt tokens the server's prefix cache already held (0 when not reported).
    pub fn cached_tokens(&self) -> usize {
        self.prompt_tokens_details
            .as_ref()
            .map_or(0, |d| d.cached_tokens)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: usize,
}

/// ghostline-serve's `timings`, in milliseconds: waiting for the engine, computing the uncached
/// prompt tokens, decoding. A client learns the server's speed from them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_ms: Option<f64>,
}

/// The `data:` of the event that ends every stream.
pub const DONE: &str = "[DONE]";

/// One `data:` event of a stream, as a client reads it: a chunk, or (with `error` set, as the
/// server sends an [`crate::ErrorBody`]) the error that ended the stream.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct StreamEvent {
    #[serde(flatten)]
    pub chunk: Completion,
    #[serde(default)]
    pub error: Option<ErrorDetail>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorBody;
    use serde_json::json;

    /// The request ghostline-lsp sends for a suggestion, byte for byte as before the contract
    /// was one crate.
    #[test]
    fn a_suggestion_request_serializes_as_the_lsp_sent_it() {
        let request = CompletionRequest {
            model: Some("m".into()),
            prompt: OneOrMany::One("def f(".into()),
            suffix: None,
            max_tokens: Some(64),
            temperature: Some(0.2),
            top_p: Some(1.0),
            stop: Some(OneOrMany::Many(vec!["\n\n".into()])),
            seed: Some(0),
            stream: Some(true),
            stream_options: Some(StreamOptions {
                include_usage: true,
            }),
            token_healing: Some(true),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"model":"m","prompt":"def f(","max_tokens":64,"temperature":0.2,"top_p":1.0,"stop":["\n\n"],"seed":0,"stream":true,"stream_options":{"include_usage":true},"token_healing":true}"#
        );
        let back: CompletionRequest =
            serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn a_warm_up_is_max_tokens_zero_and_nothing_else_unasked() {
        let request = CompletionRequest {
            model: Some("m".into()),
            prompt: OneOrMany::One("p".into()),
            max_tokens: Some(0),
            temperature: Some(0.0),
            stream: Some(false),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"model":"m","prompt":"p","max_tokens":0,"temperature":0.0,"stream":false}"#
        );
    }

    /// What OpenAI clients send: strings or lists, fields we ignore, fields absent.
    #[test]
    fn openai_clients_bodies_are_read() {
        let request: CompletionRequest = serde_json::from_value(json!({
            "prompt": ["one"], "stop": "\n", "user": "someone", "logit_bias": {}, "suffix": "s",
            "stream_options": {}
        }))
        .unwrap();
        assert_eq!(request.prompt, OneOrMany::Many(vec!["one".into()]));
        assert_eq!(request.stop, Some(OneOrMany::One("\n".into())));
        assert_eq!(request.suffix.as_deref(), Some("s"));
        assert_eq!(request.stream_options, Some(StreamOptions::default()));
        assert_eq!(request.max_tokens, None);
        assert!(serde_json::from_value::<CompletionRequest>(json!({"max_tokens": 3})).is_err());
        assert!(serde_json::from_value::<CompletionRequest>(json!({"prompt": 3})).is_err());
    }

    /// The last chunk of a ghostline-serve stream, byte for byte as it was built with `json!`.
    #[test]
    fn the_final_chunk_serializes_as_the_server_sent_it() {
        let chunk = Completion {
            id: "cmpl-1f".into(),
            object: "text_completion".into(),
            created: 7,
            model: "tiny".into(),
            choices: vec![Choice {
                text: String::new(),
                index: 0,
                logprobs: None,
                finish_reason: Some("stop".into()),
            }],
            usage: Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 2,
                total_tokens: 7,
                prompt_tokens_details: Some(PromptTokensDetails { cached_tokens: 3 }),
            }),
            timings: Some(Timings {
                queue_ms: Some(0.1),
                prefill_ms: Some(2.0),
                decode_ms: Some(3.5),
            }),
        };
        let text = serde_json::to_string(&chunk).unwrap();
        assert_eq!(
            text,
            r#"{"id":"cmpl-1f","object":"text_completion","created":7,"model":"tiny","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":3}},"timings":{"queue_ms":0.1,"prefill_ms":2.0,"decode_ms":3.5}}"#
        );
        let event: StreamEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(event.chunk, chunk);
        assert_eq!(event.error, None);
        assert_eq!(event.chunk.usage.unwrap().cached_tokens(), 3);
    }

    /// Other OpenAI-compatible servers send less: no usage details, no timings, no index.
    #[test]
    fn sparse_chunks_of_other_servers_are_read() {
        let event: StreamEvent =
            serde_json::from_str(r#"{"choices":[{"text":"value"}],"usage":{"prompt_tokens":4}}"#)
                .unwrap();
        assert_eq!(event.chunk.text(), "value");
        let usage = event.chunk.usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.cached_tokens()), (4, 0));
        assert_eq!(event.chunk.timings, None);
        let empty: StreamEvent = serde_json::from_str("{}").unwrap();
        assert!(empty.chunk.choices.is_empty());
    }

    /// Fields the client does not act on never fail an answer, whatever another server puts
    /// there; the ones it acts on keep their types.
    #[test]
    fn fields_the_client_ignores_may_hold_anything() {
        let event: StreamEvent = serde_json::from_str(
            r#"{"id":null,"object":7,"created":"now","model":null,"choices":[{"text":"a","index":null,"finish_reason":1}],"usage":{"prompt_tokens":2,"total_tokens":null}}"#,
        )
        .unwrap();
        assert_eq!(event.chunk.text(), "a");
        assert_eq!(event.chunk.usage.unwrap().prompt_tokens, 2);
        assert!(serde_json::from_str::<StreamEvent>(r#"{"choices":[{"text":5}]}"#).is_err());
    }

    #[test]
    fn an_error_event_is_read_as_the_error() {
        let text =
            serde_json::to_string(&ErrorBody::new("server_error", "engine stopped", None)).unwrap();
        assert_eq!(
            text,
            r#"{"error":{"message":"engine stopped","type":"server_error","param":null,"code":null}}"#
        );
        let event: StreamEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(event.error.unwrap().message, "engine stopped");
        let partial: StreamEvent =
            serde_json::from_str(r#"{"error":{"message":"model exploded"}}"#).unwrap();
        assert_eq!(partial.error.unwrap().message, "model exploded");
    }
}
