use serde::Deserialize;

use super::{root_cause, BackendError, Usage};

/// Text deltas from an SSE `/v1/completions` stream.
pub struct CompletionStream {
    response: reqwest::Response,
    pending: Vec<u8>,
    finished: bool,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<UsageJson>,
    #[serde(default)]
    timings: Option<TimingsJson>,
}

/// OpenAI's `usage`.
#[derive(Deserialize)]
pub(super) struct UsageJson {
    #[serde(default)]
    prompt_tokens: usize,
    #[serde(default)]
    completion_tokens: usize,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: usize,
}

/// ghostline-serve's `timings`.
#[derive(Deserialize)]
pub(super) struct TimingsJson {
    #[serde(default)]
    prefill_ms: Option<f64>,
    #[serde(default)]
    decode_ms: Option<f64>,
}

pub(super) fn usage_of(usage: Option<UsageJson>, timings: Option<TimingsJson>) -> Option<Usage> {
    let usage = usage?;
    Some(Usage {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        cached_tokens: usage.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
        prefill_ms: timings.as_ref().and_then(|t| t.prefill_ms),
        decode_ms: timings.as_ref().and_then(|t| t.decode_ms),
    })
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    text: String,
}

impl CompletionStream {
    pub(super) fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            pending: Vec::new(),
            finished: false,
            usage: None,
        }
    }

    /// What the backend reported the request cost, once its last chunk was read.
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// The next non-empty text delta, or `None` at the end of the stream.
    pub async fn next_text(&mut self) -> Result<Option<String>, BackendError> {
        loop {
            while let Some(newline) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=newline).collect();
                if let Some(text) = self.parse_line(&line)? {
                    return Ok(Some(text));
                }
                if self.finished {
                    return Ok(None);
                }
            }
            if self.finished {
                return Ok(None);
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.pending.extend_from_slice(&bytes),
                Ok(None) => {
                    // A stream that ends without `[DONE]` still ends cleanly as far as
                    // HTTP is concerned; whatever text arrived is usable.
                    self.finished = true;
                    if !self.pending.is_empty() {
                        let line = std::mem::take(&mut self.pending);
                        return self.parse_line(&line);
                    }
                    return Ok(None);
                }
                Err(error) => return Err(BackendError::Died(root_cause(&error))),
            }
        }
    }

    fn parse_line(&mut self, line: &[u8]) -> Result<Option<String>, BackendError> {
        let line = std::str::from_utf8(line)
            .map_err(|_| BackendError::Protocol("stream is not UTF-8".into()))?
            .trim_end_matches(['\r', '\n']);
        let Some(data) = line.strip_prefix("data:") else {
            return Ok(None); // blank separators, `event:`, `:` comments
        };
        let data = data.trim_start();
        if data == "[DONE]" {
            self.finished = true;
            return Ok(None);
        }
        let chunk: Chunk =
            serde_json::from_str(data).map_err(|e| BackendError::Protocol(e.to_string()))?;
        if let Some(error) = chunk.error {
            return Err(BackendError::Protocol(error.to_string()));
        }
        if let Some(usage) = usage_of(chunk.usage, chunk.timings) {
            self.usage = Some(usage);
        }
        let text: String = chunk
            .choices
            .into_iter()
            .map(|choice| choice.text)
            .collect();
        Ok((!text.is_empty()).then_some(text))
    }
}
