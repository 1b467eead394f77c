//! llama.cpp's `POST /infill` JSON → [`GenerationRequest`], for the clients that speak it
//! (llama.vim, llama.vscode). The fields they send, as llama.cpp's server reads them:
//! `input_prefix`, `input_suffix`, `input_extra` (`[{filename, text}]`: other files' chunks),
//! `prompt` (the cursor line typed so far), `n_predict` (0: only compute the prompt, a
//! warm-up), `n_indent`, `t_max_predict_ms`, `temperature`, `top_p`, `stop`, `seed`,
//! `stream`, `response_fields`; `cache_prompt`, `id_slot`, `samplers`, `top_k` and
//! `t_max_prompt_ms` are accepted and have no effect (the prefix cache is always on; sampling is
//! temperature and top-p).
//!
//! The prompt, at token level (client text never becomes a control token):
//! `<|repo_name|>myproject\n` + for each chunk `<|file_sep|>FILENAME\n` + text, then
//! `<|file_sep|>filename\n` (llama.cpp's repo-level layout; without those markers the chunks are
//! separated by a plain `--- snippet ---` line), then
//! `<|fim_prefix|>PREFIX<|fim_suffix|>SUFFIX<|fim_middle|>PROMPT`. The typed part of the line
//! comes after the middle marker, so while a person types along a line everything before it is
//! unchanged and comes from the prefix cache. Over the context, the chunks lose their start
//! first, then the prefix its start and the suffix its end (llama.cpp's shares: the prefix up to
//! 1,536 tokens, the suffix up to 512).

use serde::Deserialize;

use super::{check_stop, invalid, sampling_params, GenerationRequest, InvalidRequest, Limits};
use crate::{
    engine::sampling::SamplingParams,
    model::{ModelConfig, ModelTokenizer},
};

/// llama.cpp takes the prefix from the last 3/4 and the suffix from the first 1/4 of a
/// 2,048-token batch.
const PREFIX_TOKENS: usize = 1536;
const SUFFIX_TOKENS: usize = 512;
const MAX_EXTRA_CHUNKS: usize = 256;

#[derive(Debug, Deserialize)]
pub struct ExtraChunk {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub filename: Option<String>,
}

/// The fields acted on (see the module's documentation); others are ignored.
#[derive(Debug, Deserialize)]
pub struct InfillBody {
    #[serde(default)]
    pub input_prefix: String,
    #[serde(default)]
    pub input_suffix: String,
    #[serde(default)]
    pub input_extra: Vec<ExtraChunk>,
    #[serde(default)]
    pub prompt: String,
    /// -1 (llama.cpp's default) or absent: up to `--max-tokens-cap`.
    #[serde(default)]
    pub n_predict: Option<i64>,
    #[serde(default)]
    pub n_indent: Option<u64>,
    #[serde(default)]
    pub t_max_predict_ms: Option<f64>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub stop: Option<Vec<String>>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub response_fields: Option<Vec<String>>,
}

/// What the `/infill` handler needs besides the generation itself.
#[derive(Debug, Clone)]
pub struct InfillOptions {
    pub stream: bool,
    /// A new line indented less than this ends the answer (before that line).
    pub n_indent: usize,
    /// Past this many milliseconds of generation, the answer ends at its next line break.
    pub t_max_predict_ms: Option<f64>,
    /// Only these fields (paths such as `timings/prompt_n`) in the answer, each under its path.
    pub response_fields: Option<Vec<String>>,
}

pub fn parse_infill(bytes: &[u8]) -> Result<InfillBody, InvalidRequest> {
    serde_json::from_slice(bytes).map_err(|e| InvalidRequest {
        message: format!("request body is not a valid infill request: {e}"),
        param: None,
    })
}

pub fn validate_infill(
    body: InfillBody,
    config: &ModelConfig,
    tokenizer: &ModelTokenizer,
    limits: &Limits,
) -> Result<(InfillOptions, GenerationRequest), InvalidRequest> {
    // Code completion wants the likeliest continuation; a client asks for sampling by name.
    let (temperature, top_p) = sampling_params(body.temperature.unwrap_or(0.0), body.top_p)?;
    let cap = limits
        .max_tokens_cap
        .min(limits.context_length.saturating_sub(1));
    let max_tokens = match body.n_predict {
        Some(n) if n >= 0 => (n as u64).min(cap as u64) as usize,
        _ => cap,
    };
    let stop = body.stop.unwrap_or_default();
    check_stop(&stop)?;
    if body.input_extra.len() > MAX_EXTRA_CHUNKS {
        return Err(invalid(
            "input_extra",
            format!("at most {MAX_EXTRA_CHUNKS} chunks"),
        ));
    }
    let fim = &config.fim;
    let marker = |text: &str, param| {
        tokenizer
            .token_id(text)
            .ok_or_else(|| invalid(param, format!("the model has no {text} token for infill")))
    };
    let plain = |text: &str, param| {
        tokenizer
            .encode_plain(text)
            .map_err(|e| invalid(param, e.to_string()))
    };
    let pre = marker(&fim.prefix, "input_prefix")?;
    let suf = marker(&fim.suffix, "input_suffix")?;
    let mid = marker(&fim.middle, "input_prefix")?;
    let repo = fim.repo_name.as_deref().and_then(|m| tokenizer.token_id(m));
    let sep = fim.file_sep.as_deref().and_then(|m| tokenizer.token_id(m));

    let mut extra = Vec::new();
    if let (Some(repo), Some(_)) = (repo, sep) {
        extra.push(repo);
        extra.extend(plain("myproject\n", "input_extra")?);
    }
    for chunk in &body.input_extra {
        let filename = chunk.filename.as_deref().unwrap_or("tmp");
        match sep {
            Some(sep) => {
                extra.push(sep);
                extra.extend(plain(&format!("{filename}\n"), "input_extra")?);
            }
            None => extra.extend(plain("\n\n--- snippet ---\n\n", "input_extra")?),
        }
        extra.extend(plain(&chunk.text, "input_extra")?);
    }
    if let Some(sep) = sep {
        if !body.input_extra.is_empty() || repo.is_some() {
            extra.push(sep);
            extra.extend(plain("filename\n", "input_extra")?);
        }
    }
    let mut prefix = plain(&body.input_prefix, "input_prefix")?;
    let mut suffix = plain(&body.input_suffix, "input_suffix")?;
    let typed = plain(&body.prompt, "prompt")?;

    let budget = limits.context_length - max_tokens;
    let fixed = 3 + typed.len();
    if fixed > budget {
        return Err(invalid(
            "prompt",
            "the prompt alone does not fit the context window",
        ));
    }
    let available = budget - fixed;
    let suffix_keep = suffix
        .len()
        .min(SUFFIX_TOKENS.saturating_sub(2 + typed.len()))
        .min(available / 4);
    let prefix_keep = prefix.len().min(PREFIX_TOKENS).min(available - suffix_keep);
    let extra_keep = extra.len().min(available - suffix_keep - prefix_keep);
    let truncated =
        suffix_keep < suffix.len() || prefix_keep < prefix.len() || extra_keep < extra.len();
    prefix.drain(..prefix.len() - prefix_keep);
    suffix.truncate(suffix_keep);

    let mut prompt_ids = Vec::with_capacity(extra_keep + prefix_keep + suffix_keep + fixed);
    prompt_ids.extend_from_slice(&extra[extra.len() - extra_keep..]);
    prompt_ids.push(pre);
    prompt_ids.extend(prefix);
    prompt_ids.push(suf);
    prompt_ids.extend(suffix);
    prompt_ids.push(mid);
    prompt_ids.extend(typed);

    let options = InfillOptions {
        stream: body.stream.unwrap_or(false),
        n_indent: body.n_indent.unwrap_or(0).min(1 << 16) as usize,
        t_max_predict_ms: body.t_max_predict_ms.filter(|ms| *ms > 0.0),
        response_fields: body.response_fields,
    };
    Ok((
        options,
        GenerationRequest {
            prompt_ids,
            prompt_truncated: truncated,
            max_tokens,
            sampling: SamplingParams {
                temperature,
                top_p,
                seed: body.seed,
            },
            stop,
            ignore_eos: false,
            heal: String::new(),
            partition: std::sync::Arc::from(""),
        },
    ))
}
