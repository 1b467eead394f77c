//! The wire contract between ghostline-lsp (the client) and ghostline-serve (the server): every
//! JSON body and header name that crosses HTTP between them, defined once. Both programs and both
//! test suites use these types, so a change to the contract on one side that the other does not
//! follow fails to compile.
//!
//! One type serves both directions. The server serializes it and its JSON is what OpenAI
//! clients, llama.vim and the tests already read (field order, `null`s and omitted fields as
//! before); the client deserializes it leniently, as it must read other OpenAI-compatible
//! servers too: every field it can do without has a default, and unknown fields are ignored.

pub mod completion;
pub mod error;
pub mod headers;
pub mod models;
pub mod stats;

pub use completion::{
    Choice, Completion, CompletionRequest, OneOrMany, PromptTokensDetails, StreamEvent,
    StreamOptions, Timings, Usage, DONE,
};
pub use error::{ErrorBody, ErrorDetail};

/// For a field the client does not act on: `null`, or a value of another type than this
/// server sends (another OpenAI-compatible server's), reads as the default instead of failing
/// the whole answer.
pub(crate) fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let value = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
}
pub use models::{FimInfo, ModelCard, ModelList, Speed};
