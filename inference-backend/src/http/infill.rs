//! `POST /infill`, llama.cpp's code-infill endpoint, for the clients that speak it (llama.vim,
//! llama.vscode): the request is read by `validation::infill`; admission, keys, limits, the
//! prefix cache and the audit line are those of `/v1/completions` (`start_generation`). The
//! answer is llama.cpp's: `content`, `stop`, `stop_type`, `tokens_predicted`,
//! `tokens_evaluated`, `tokens_cached` (prompt tokens the prefix cache held), `truncated`,
//! `timings` (`prompt_n` computed prompt tokens, `prompt_ms`, `predicted_n`, `predicted_ms`,
//! per token and per second); with `response_fields` only those paths, each under its path
//! (`"timings/prompt_n": 12`). Streamed: SSE chunks `{"content": …, "stop": false}`, then the
//! whole answer with `stop: true` (no `[DONE]`, as llama.cpp).

use std::{
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::State,
    response::{sse::Event, IntoResponse, Response, Sse},
    Extension, Json,
};
use futures_util::stream;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::{
    audit::{hold_until_body_ends, AuditSlot},
    auth::Caller,
    completions::{start_generation, Observer, Started},
    error::ApiError,
    AppState,
};
use crate::{
    lifecycle::{self, Phase},
    queue::{FinishReason, GenerationEvent, Usage},
    validation::infill::{parse_infill, validate_infill, InfillOptions},
};

pub async fn infill(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    audit: Option<Extension<AuditSlot>>,
    body: Body,
) -> Response {
    let started = start_generation(
        &state,
        caller.map(|Extension(c)| c),
        audit.map(|Extension(a)| a),
        body,
        |model, bytes| {
            let body = parse_infill(bytes)?;
            let (options, request) =
                validate_infill(body, &model.config, &model.tokenizer, &model.limits)?;
            let prompt_tokens = request.prompt_ids.len();
            let truncated = request.prompt_truncated;
            Ok(((options, prompt_tokens, truncated), request))
        },
    )
    .await;
    let ((options, prompt_tokens, truncated), started) = match started {
        Ok(started) => started,
        Err(refused) => return refused,
    };
    let Started {
        receiver,
        observer,
        phase,
        in_flight,
        model,
    } = started;
    let answer = Answer {
        model: model.config.name.clone(),
        prompt_tokens,
        truncated,
        response_fields: options.response_fields.clone(),
    };
    let run = Run {
        receiver,
        observer,
        phase,
        cutoff: Cutoff::new(&options),
        started: Instant::now(),
        first_token: None,
    };
    let response = if options.stream {
        stream_answer(run, answer)
    } else {
        let (content, end) = run.collect().await;
        match end {
            Ok(end) => Json(answer.body(&content, &end)).into_response(),
            Err(e) => e.into_response(),
        }
    };
    hold_until_body_ends(response, in_flight)
}

/// Where llama.cpp's own rules end an answer early, applied to the text as it comes.
struct Cutoff {
    n_indent: usize,
    t_max_predict: Option<Duration>,
    text: String,
    /// Bytes of `text` passed on (the rest may still be cut).
    passed: usize,
    done: bool,
}

impl Cutoff {
    fn new(options: &InfillOptions) -> Self {
        Self {
            n_indent: options.n_indent,
            t_max_predict: options
                .t_max_predict_ms
                .map(|ms| Duration::from_secs_f64(ms.min(86_400_000.0) / 1e3)),
            text: String::new(),
            passed: 0,
            done: false,
        }
    }

    /// Takes a piece of generated text; returns what may be passed on now. After a return with
    /// `done` set, nothing more is wanted.
    fn push(&mut self, piece: &str, generating_for: Duration) -> String {
        self.text.push_str(piece);
        if self.n_indent > 0 {
            // A line after the first whose indentation (spaces and tabs) is known and smaller
            // than n_indent ends the answer before its line break.
            let mut line_start = self.text.find('\n').map(|at| at + 1);
            while let Some(start) = line_start {
                let line = &self.text[start..];
                let indent = line
                    .bytes()
                    .take_while(|b| *b == b' ' || *b == b'\t')
                    .count();
                if indent < line.len()
                    && indent < self.n_indent
                    && !line[indent..].starts_with('\n')
                {
                    self.text.truncate(start - 1);
                    self.done = true;
                    break;
                }
                line_start = line.find('\n').map(|at| start + at + 1);
            }
        }
        if !self.done {
            if let Some(limit) = self.t_max_predict {
                if generating_for > limit && self.text.contains('\n') {
                    self.done = true;
                }
            }
        }
        // Held back: a last line of indentation only, which the next piece may still cut.
        let hold_from = if self.done || self.n_indent == 0 {
            self.text.len()
        } else {
            match self.text.rfind('\n') {
                Some(at) if self.text[at + 1..].bytes().all(|b| b == b' ' || b == b'\t') => at,
                _ => self.text.len(),
            }
        };
        let out = self.text[self.passed.min(hold_from)..hold_from].to_string();
        self.passed = self.passed.max(hold_from);
        out
    }

    /// At the end of the generation: whatever was held back.
    fn finish(&mut self) -> String {
        let out = self.text[self.passed..].to_string();
        self.passed = self.text.len();
        out
    }
}

/// How an answer ended.
struct End {
    stop_type: &'static str,
    usage: Usage,
}

/// One infill generation being read.
struct Run {
    receiver: mpsc::UnboundedReceiver<GenerationEvent>,
    observer: Observer,
    phase: watch::Receiver<Phase>,
    cutoff: Cutoff,
    started: Instant,
    first_token: Option<Instant>,
}

enum Step {
    Text(String),
    End(Result<End, ApiError>),
}

impl Run {
    /// The next text to pass on, or the end.
    async fn next(&mut self) -> Step {
        if self.cutoff.done {
            return Step::End(Ok(self.cut_short()));
        }
        let event = tokio::select! {
            event = self.receiver.recv() => event,
            () = lifecycle::ending(&mut self.phase) => {
                self.observer.failed();
                return Step::End(Err(ApiError::overloaded(
                    "the server is shutting down; the generation was stopped", 5)));
            }
        };
        match event {
            Some(GenerationEvent::Text(piece)) => {
                let now = Instant::now();
                let first = *self.first_token.get_or_insert(now);
                Step::Text(self.cutoff.push(&piece, now - first))
            }
            Some(GenerationEvent::Finished { reason, usage }) => {
                self.observer.finished(&reason, &usage);
                let stop_type = match reason {
                    FinishReason::Stop => "eos",
                    FinishReason::Length | FinishReason::Timeout => "limit",
                };
                Step::End(Ok(End { stop_type, usage }))
            }
            Some(GenerationEvent::Failed(message)) => {
                self.observer.failed();
                Step::End(Err(ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    message,
                )))
            }
            None => Step::End(Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the engine stopped before finishing",
            ))),
        }
    }

    /// Ended by n_indent or t_max_predict_ms: the engine is told by the receiver going away;
    /// the usage is what it had done, the timings this side's clock.
    fn cut_short(&mut self) -> End {
        self.receiver.close();
        let mut usage = self.observer.progress_usage();
        let first = self.first_token.unwrap_or_else(Instant::now);
        usage.prefill_ms = (first - self.started).as_secs_f64() * 1e3;
        usage.decode_ms = first.elapsed().as_secs_f64() * 1e3;
        self.observer.finished(&FinishReason::Stop, &usage);
        End {
            stop_type: "limit",
            usage,
        }
    }

    async fn collect(mut self) -> (String, Result<End, ApiError>) {
        let mut content = String::new();
        loop {
            match self.next().await {
                Step::Text(text) => content.push_str(&text),
                Step::End(end) => {
                    content.push_str(&self.cutoff.finish());
                    return (content, end);
                }
            }
        }
    }
}

/// The fields of a finished answer that do not depend on how it is sent.
struct Answer {
    model: String,
    prompt_tokens: usize,
    truncated: bool,
    response_fields: Option<Vec<String>>,
}

impl Answer {
    fn body(&self, content: &str, end: &End) -> Value {
        let usage = &end.usage;
        let prompt_n = usage.prompt_tokens.saturating_sub(usage.cached_tokens);
        let per_token = |ms: f64, n: usize| if n > 0 { ms / n as f64 } else { 0.0 };
        let per_second = |ms: f64, n: usize| if ms > 0.0 { n as f64 * 1e3 / ms } else { 0.0 };
        let full = json!({
            "index": 0,
            "content": content,
            "id_slot": 0,
            "stop": true,
            "model": self.model,
            "tokens_predicted": usage.completion_tokens,
            "tokens_evaluated": self.prompt_tokens,
            "tokens_cached": usage.cached_tokens,
            "truncated": self.truncated,
            "stop_type": end.stop_type,
            "stopping_word": "",
            "has_new_line": content.contains('\n'),
            "timings": {
                "prompt_n": prompt_n,
                "prompt_ms": usage.prefill_ms,
                "prompt_per_token_ms": per_token(usage.prefill_ms, prompt_n),
                "prompt_per_second": per_second(usage.prefill_ms, prompt_n),
                "predicted_n": usage.completion_tokens,
                "predicted_ms": usage.decode_ms,
                "predicted_per_token_ms": per_token(usage.decode_ms, usage.completion_tokens),
                "predicted_per_second": per_second(usage.decode_ms, usage.completion_tokens),
            },
        });
        match &self.response_fields {
            None => full,
            Some(paths) => select_fields(&full, paths),
        }
    }
}

/// llama.cpp's `response_fields`: each path (`timings/prompt_n`) found in the answer, under
/// the path itself as the key.
fn select_fields(full: &Value, paths: &[String]) -> Value {
    let mut out = serde_json::Map::new();
    for path in paths {
        let mut at = Some(full);
        for part in path.split('/') {
            at = at.and_then(|v| v.get(part));
        }
        if let Some(value) = at {
            out.insert(path.clone(), value.clone());
        }
    }
    Value::Object(out)
}

fn stream_answer(run: Run, answer: Answer) -> Response {
    let events = stream::unfold(Some((run, answer)), |state| async move {
        let (mut run, answer) = state?;
        match run.next().await {
            Step::Text(text) => {
                let chunk = json!({"index": 0, "content": text, "stop": false});
                Some((chunk, Some((run, answer))))
            }
            Step::End(Ok(end)) => {
                let rest = run.cutoff.finish();
                Some((answer.body(&rest, &end), None))
            }
            Step::End(Err(e)) => Some((
                json!({"error": {"code": e.status.as_u16(), "message": e.message, "type": e.kind}}),
                None,
            )),
        }
    });
    let events = futures_util::StreamExt::map(events, |data| {
        Ok::<_, Infallible>(Event::default().data(data.to_string()))
    });
    Sse::new(events).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cutoff(n_indent: usize) -> Cutoff {
        Cutoff::new(&InfillOptions {
            stream: false,
            n_indent,
            t_max_predict_ms: None,
            response_fields: None,
        })
    }

    #[test]
    fn a_line_indented_less_than_n_indent_ends_the_answer_before_it() {
        let mut c = cutoff(4);
        let mut out = c.push("x = 1\n    y = 2\n", Duration::ZERO);
        out += &c.push("  ", Duration::ZERO);
        assert!(!c.done);
        out += &c.push("  z = 3\nreturn", Duration::ZERO);
        assert!(c.done);
        out += &c.finish();
        assert_eq!(out, "x = 1\n    y = 2\n    z = 3");
    }

    #[test]
    fn without_n_indent_everything_passes_at_once() {
        let mut c = cutoff(0);
        assert_eq!(c.push("a\n", Duration::ZERO), "a\n");
        assert_eq!(c.push("b", Duration::ZERO), "b");
        assert!(!c.done);
    }

    #[test]
    fn response_fields_are_looked_up_by_path() {
        let full = json!({"content": "x", "timings": {"prompt_n": 3}});
        let picked = select_fields(
            &full,
            &[
                "content".into(),
                "timings/prompt_n".into(),
                "nope".into(),
                "".into(),
            ],
        );
        assert_eq!(picked, json!({"content": "x", "timings/prompt_n": 3}));
    }
}
