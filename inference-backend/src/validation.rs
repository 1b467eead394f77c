//! OpenAI `/v1/completions` JSON → [`GenerationRequest`]: types checked, limits applied, the FIM
//! template applied when a `suffix` is given, and the prompt fitted to the context window.

pub mod infill;

use crate::{
    engine::sampling::SamplingParams,
    model::{ModelConfig, ModelTokenizer},
};

/// What the engine needs to run one request: no JSON, no HTTP.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    pub prompt_ids: Vec<u32>,
    pub prompt_truncated: bool,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    pub ignore_eos: bool,
    /// Text taken off the prompt's end that the generation must start with (token healing);
    /// empty when nothing was taken.
    pub heal: String,
    /// Whose prefix-cache partition this request may read and fill: the API key's owner (or
    /// its shared group), set by the HTTP layer after validation; empty without API keys.
    pub partition: std::sync::Arc<str>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_tokens_cap: usize,
    pub context_length: usize,
}

pub const DEFAULT_MAX_TOKENS: u64 = 16;
const MAX_STOP_STRINGS: usize = 16;
const MAX_STOP_LEN: usize = 256;

/// The body of `/v1/completions`, as the wire contract defines it: the fields acted on here;
/// others that OpenAI clients send (`user`, `logit_bias`, …) are ignored.
pub use ghostline_protocol::{CompletionRequest as CompletionBody, OneOrMany};

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InvalidRequest {
    pub message: String,
    pub param: Option<&'static str>,
}

fn invalid(param: &'static str, message: impl Into<String>) -> InvalidRequest {
    InvalidRequest {
        message: message.into(),
        param: Some(param),
    }
}

pub fn parse_body(bytes: &[u8]) -> Result<CompletionBody, InvalidRequest> {
    serde_json::from_slice(bytes).map_err(|e| InvalidRequest {
        message: format!("request body is not a valid completion request: {e}"),
        param: None,
    })
}

pub fn validate(
    body: CompletionBody,
    config: &ModelConfig,
    tokenizer: &ModelTokenizer,
    limits: &Limits,
) -> Result<GenerationRequest, InvalidRequest> {
    let prompt = match body.prompt {
        OneOrMany::One(p) => p,
        OneOrMany::Many(mut v) if v.len() == 1 => v.remove(0),
        OneOrMany::Many(_) => {
            return Err(invalid(
                "prompt",
                "exactly one prompt per request is supported",
            ))
        }
    };
    if body.n.is_some_and(|n| n != 1) {
        return Err(invalid("n", "only n = 1 is supported"));
    }
    if body.echo == Some(true) {
        return Err(invalid("echo", "echo is not supported"));
    }
    // OpenAI's default is 1; a fill-in-the-middle request (a `suffix`, or a prompt in the
    // model's FIM template, as Zed sends it) that names no temperature wants the likeliest
    // code, so it gets 0.
    let fim_shaped = body.suffix.is_some() || prompt.contains(config.fim.middle.as_str());
    let (temperature, top_p) = sampling_params(
        body.temperature
            .unwrap_or(if fim_shaped { 0.0 } else { 1.0 }),
        body.top_p,
    )?;
    // 0: prefill only, so the prompt's KV is in the prefix cache for the requests to come.
    let requested = body.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    // Clamped rather than refused: editors often ask for more than a server allows.
    let max_tokens = (requested as usize)
        .min(limits.max_tokens_cap)
        .min(limits.context_length.saturating_sub(1));
    let stop = match body.stop {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    check_stop(&stop)?;

    let budget = limits.context_length - max_tokens;
    let heal = body.token_healing == Some(true) && body.suffix.is_none();
    // A client's text never becomes a control token, except the FIM markers of a raw prompt
    // (then the client applied the template itself); the template the server applies is its own.
    let tokenize_error = |e: anyhow::Error| invalid("prompt", e.to_string());
    let (mut prompt_ids, prompt_truncated) = match body.suffix {
        Some(suffix) => fim_prompt(
            &config.fim.template,
            &prompt,
            &suffix,
            budget,
            |text| tokenizer.encode_plain(text).map_err(tokenize_error),
            |text| tokenizer.encode(text).map_err(tokenize_error),
        )?,
        None => fit_raw_prompt(
            tokenizer.encode_prompt(&prompt).map_err(tokenize_error)?,
            budget,
            tokenizer,
        ),
    };
    let heal = if heal {
        tokenizer.heal_tail(&mut prompt_ids)
    } else {
        String::new()
    };
    if prompt_ids.is_empty() {
        return Err(invalid("prompt", "prompt is empty"));
    }
    Ok(GenerationRequest {
        prompt_ids,
        prompt_truncated,
        max_tokens,
        sampling: SamplingParams {
            temperature,
            top_p,
            seed: body.seed,
        },
        stop,
        ignore_eos: body.ignore_eos.unwrap_or(false),
        heal,
        partition: std::sync::Arc::from(""),
    })
}

/// Temperature and top-p checked (top-p 1 when absent).
fn sampling_params(temperature: f32, top_p: Option<f32>) -> Result<(f32, f32), InvalidRequest> {
    if !(0.0..=2.0).contains(&temperature) {
        return Err(invalid(
            "temperature",
            "temperature must be between 0 and 2",
        ));
    }
    let top_p = top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(invalid(
            "top_p",
            "top_p must be greater than 0 and at most 1",
        ));
    }
    Ok((temperature, top_p))
}

fn check_stop(stop: &[String]) -> Result<(), InvalidRequest> {
    if stop.len() > MAX_STOP_STRINGS || stop.iter().any(|s| s.len() > MAX_STOP_LEN) {
        return Err(invalid(
            "stop",
            format!("at most {MAX_STOP_STRINGS} stop strings of at most {MAX_STOP_LEN} bytes"),
        ));
    }
    Ok(())
}

/// A raw prompt over budget loses tokens from the left, but keeps a leading special token (a FIM
/// or repo marker), without which the rest would mean something else.
fn fit_raw_prompt(
    mut ids: Vec<u32>,
    budget: usize,
    tokenizer: &ModelTokenizer,
) -> (Vec<u32>, bool) {
    if ids.len() <= budget {
        return (ids, false);
    }
    let keep_head =
        usize::from(ids.first().is_some_and(|&t| tokenizer.is_special(t)) && budget > 1);
    let drop = ids.len() - budget;
    ids.drain(keep_head..keep_head + drop);
    (ids, true)
}

enum Piece<'a> {
    Literal(&'a str),
    Prefix,
    Suffix,
}

/// Applies a template such as `<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>` at
/// the token level so that an over-long request loses the far start of the prefix and the far
/// end of the suffix, never the markers.
fn fim_prompt(
    template: &str,
    prefix: &str,
    suffix: &str,
    budget: usize,
    encode_text: impl Fn(&str) -> Result<Vec<u32>, InvalidRequest>,
    encode_template: impl Fn(&str) -> Result<Vec<u32>, InvalidRequest>,
) -> Result<(Vec<u32>, bool), InvalidRequest> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let next = [("{prefix}", Piece::Prefix), ("{suffix}", Piece::Suffix)]
            .into_iter()
            .filter_map(|(marker, piece)| rest.find(marker).map(|at| (at, marker.len(), piece)))
            .min_by_key(|(at, _, _)| *at);
        match next {
            Some((at, len, piece)) => {
                if at > 0 {
                    pieces.push(Piece::Literal(&rest[..at]));
                }
                pieces.push(piece);
                rest = &rest[at + len..];
            }
            None => {
                pieces.push(Piece::Literal(rest));
                rest = "";
            }
        }
    }
    let mut prefix_ids = encode_text(prefix)?;
    let mut suffix_ids = encode_text(suffix)?;
    let mut literal_ids = Vec::new();
    for piece in &pieces {
        if let Piece::Literal(text) = piece {
            literal_ids.push(encode_template(text)?);
        }
    }
    let fixed: usize = literal_ids.iter().map(Vec::len).sum();
    let available = budget.saturating_sub(fixed);
    let truncated = prefix_ids.len() + suffix_ids.len() > available;
    if truncated {
        // The code just before the cursor matters most; the suffix gets at most a quarter.
        let suffix_keep = suffix_ids.len().min(available / 4);
        let prefix_keep = prefix_ids.len().min(available - suffix_keep);
        let suffix_keep = suffix_ids.len().min(available - prefix_keep);
        prefix_ids.drain(..prefix_ids.len() - prefix_keep);
        suffix_ids.truncate(suffix_keep);
    }
    let mut ids = Vec::with_capacity(fixed + prefix_ids.len() + suffix_ids.len());
    let mut literals = literal_ids.into_iter();
    for piece in &pieces {
        match piece {
            Piece::Literal(_) => ids.extend(literals.next().unwrap_or_default()),
            Piece::Prefix => ids.extend_from_slice(&prefix_ids),
            Piece::Suffix => ids.extend_from_slice(&suffix_ids),
        }
    }
    Ok((ids, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(text: &str) -> Result<Vec<u32>, InvalidRequest> {
        Ok(text.chars().map(|c| c as u32).collect())
    }

    #[test]
    fn template_applied_in_order() {
        let (ids, cut) =
            fim_prompt("<P>{prefix}<S>{suffix}<M>", "ab", "cd", 100, chars, chars).unwrap();
        assert!(!cut);
        assert_eq!(
            ids.iter()
                .map(|&c| char::from_u32(c).unwrap())
                .collect::<String>(),
            "<P>ab<S>cd<M>"
        );
    }

    #[test]
    fn over_budget_cuts_far_prefix_and_far_suffix_but_keeps_markers() {
        let (ids, cut) = fim_prompt(
            "<P>{prefix}<S>{suffix}<M>",
            "0123456789",
            "abcdefghij",
            9 + 8,
            chars,
            chars,
        )
        .unwrap();
        assert!(cut);
        let text: String = ids.iter().map(|&c| char::from_u32(c).unwrap()).collect();
        assert_eq!(text, "<P>456789<S>ab<M>");
    }
}
