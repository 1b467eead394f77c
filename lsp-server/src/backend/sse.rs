use serde::Deserialize;

use super::{root_cause, BackendError};

/// Text deltas from an SSE `/v1/completions` stream.
pub struct CompletionStream {
    response: reqwest::Response,
    pending: Vec<u8>,
    finished: bool,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    error: Option<serde_json::Value>,
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
        }
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
        let text: String = chunk
            .choices
            .into_iter()
            .map(|choice| choice.text)
            .collect();
        Ok((!text.is_empty()).then_some(text))
    }
}
