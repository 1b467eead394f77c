//! `GET /v1/models`: the served model, with what a client needs to build its prompts (family,
//! context length, FIM markers and template) and to size them (measured speed).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    /// `list`.
    #[serde(default, deserialize_with = "crate::lenient")]
    pub object: String,
    pub data: Vec<ModelCard>,
}

/// One model. Only `id` is required of a server; ghostline-serve sends every field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub id: String,
    /// `model`.
    #[serde(default, deserialize_with = "crate::lenient")]
    pub object: String,
    #[serde(default, deserialize_with = "crate::lenient")]
    pub created: u64,
    #[serde(default, deserialize_with = "crate::lenient")]
    pub owned_by: String,
    /// `qwen2.5-coder`, `starcoder2`, ...: which prompt format the model was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<usize>,
    /// The most tokens one request may generate.
    #[serde(
        default,
        deserialize_with = "crate::lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_tokens_cap: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fim: Option<FimInfo>,
    /// `cpu` or `cuda`.
    #[serde(
        default,
        deserialize_with = "crate::lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub device: Option<String>,
    /// Which exporter's conventions the decoder follows (`genai`, `optimum`).
    #[serde(
        default,
        deserialize_with = "crate::lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub layout: Option<String>,
    /// Which weights run (ghostline.json's `source`: the GGUF's sha256 and name, ...).
    #[serde(default)]
    pub source: serde_json::Value,
    /// Measured by the server: clients size their prompts by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<Speed>,
    /// The server heals a raw prompt that ends inside a word (`token_healing` in a request).
    #[serde(default)]
    pub token_healing: bool,
}

/// The model's fill-in-the-middle markers (special tokens) and its template with `{prefix}`
/// and `{suffix}`. Data only: how a prompt is laid out from them is the client's business.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FimInfo {
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub middle: Option<String>,
    #[serde(default)]
    pub repo_name: Option<String>,
    #[serde(default)]
    pub file_sep: Option<String>,
    #[serde(default)]
    pub template: Option<String>,
}

/// Tokens per second; `null` until measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Speed {
    #[serde(default)]
    pub prefill_tokens_per_s: Option<f64>,
    #[serde(default)]
    pub decode_tokens_per_s: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served() -> ModelList {
        ModelList {
            object: "list".into(),
            data: vec![ModelCard {
                id: "tiny".into(),
                object: "model".into(),
                created: 0,
                owned_by: "ghostline".into(),
                family: Some("qwen2.5-coder".into()),
                context_length: Some(4096),
                max_tokens_cap: Some(256),
                fim: Some(FimInfo {
                    prefix: Some("<|fim_prefix|>".into()),
                    suffix: Some("<|fim_suffix|>".into()),
                    middle: Some("<|fim_middle|>".into()),
                    repo_name: None,
                    file_sep: Some("<|file_sep|>".into()),
                    template: Some(
                        "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>".into(),
                    ),
                }),
                device: Some("cpu".into()),
                layout: Some("genai".into()),
                source: serde_json::Value::Null,
                speed: Some(Speed {
                    prefill_tokens_per_s: Some(1234.5),
                    decode_tokens_per_s: None,
                }),
                token_healing: true,
            }],
        }
    }

    /// ghostline-serve's `/v1/models`, byte for byte as it was built with `json!`.
    #[test]
    fn the_model_list_serializes_as_the_server_sent_it() {
        let text = serde_json::to_string(&served()).unwrap();
        assert_eq!(
            text,
            r#"{"object":"list","data":[{"id":"tiny","object":"model","created":0,"owned_by":"ghostline","family":"qwen2.5-coder","context_length":4096,"max_tokens_cap":256,"fim":{"prefix":"<|fim_prefix|>","suffix":"<|fim_suffix|>","middle":"<|fim_middle|>","repo_name":null,"file_sep":"<|file_sep|>","template":"<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"},"device":"cpu","layout":"genai","source":null,"speed":{"prefill_tokens_per_s":1234.5,"decode_tokens_per_s":null},"token_healing":true}]}"#
        );
        assert_eq!(serde_json::from_str::<ModelList>(&text).unwrap(), served());
    }

    /// Other OpenAI-compatible servers list models with an id and little else.
    #[test]
    fn a_bare_openai_model_list_is_read() {
        let list: ModelList = serde_json::from_str(
            r#"{"object":"list","data":[{"id":"m","object":"model","owned_by":"test","speed":null,"permission":[]}]}"#,
        )
        .unwrap();
        let card = &list.data[0];
        assert_eq!(card.id, "m");
        assert_eq!((card.fim.as_ref(), card.speed.as_ref()), (None, None));
        assert!(!card.token_healing);
        assert!(serde_json::from_str::<ModelList>(r#"{"data":[{"object":"model"}]}"#).is_err());
        let odd: ModelList = serde_json::from_str(
            r#"{"object":null,"data":[{"id":"m","object":null,"created":-1,"owned_by":null,"device":{"gpu":0}}]}"#,
        )
        .unwrap();
        assert_eq!(
            (odd.data[0].created, odd.data[0].device.as_ref()),
            (0, None)
        );
    }
}
