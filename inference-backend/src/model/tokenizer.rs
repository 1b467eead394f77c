//! Tokenizer with the model's FIM markers checked at load time.
//!
//! A tokenizer.json converted from a GGUF may list the FIM markers as ordinary text; the prompt
//! then silently turns into `<`, `|`, `fim`, … and the model answers with prose. Loading refuses
//! such a tokenizer instead of serving nonsense.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use tokenizers::Tokenizer;

use super::FimConfig;

pub struct ModelTokenizer {
    inner: Tokenizer,
    /// The same tokenizer with special tokens not recognised in text: what a client wrote is
    /// encoded as the characters it is, never as a control token.
    plain: Tokenizer,
    /// The model's FIM markers (and repo/file markers) with their ids: the only special tokens
    /// a client's raw prompt may spell (it is then the FIM template, applied by the client).
    markers: Vec<(String, u32)>,
    /// Each id's text alone ("" for special tokens and pieces of a character), for token
    /// healing; built on first use.
    texts: OnceLock<Vec<String>>,
}

/// Tokens a healed word tail may span, at most.
const HEAL_TOKENS: usize = 4;

impl ModelTokenizer {
    pub fn load(path: &Path, fim: &FimConfig) -> Result<Self> {
        let inner = Tokenizer::from_file(path)
            .map_err(|e| anyhow!("{}: cannot load tokenizer: {e}", path.display()))?;
        let mut plain = inner.clone();
        plain.set_encode_special_tokens(true);
        let mut tokenizer = Self {
            inner,
            plain,
            markers: Vec::new(),
            texts: OnceLock::new(),
        };
        let mut markers = Vec::new();
        for marker in [&fim.prefix, &fim.suffix, &fim.middle]
            .into_iter()
            .chain([&fim.repo_name, &fim.file_sep].into_iter().flatten())
        {
            markers.push((marker.clone(), tokenizer.check_special(marker)?));
        }
        tokenizer.markers = markers;
        Ok(tokenizer)
    }

    /// A FIM marker must encode to exactly one id, inside running text too, and be special so
    /// that it is never shown to the user.
    fn check_special(&self, marker: &str) -> Result<u32> {
        let id = self
            .inner
            .token_to_id(marker)
            .with_context(|| format!("tokenizer has no token {marker:?}; FIM would break"))?;
        let decoder = self.inner.get_added_tokens_decoder();
        match decoder.get(&id) {
            Some(added) if added.special => {}
            _ => bail!("tokenizer token {marker:?} (id {id}) is not marked special; FIM would silently break"),
        }
        let probe = format!("x = 1{marker}y");
        let ids = self.encode(&probe)?;
        if ids.iter().filter(|&&t| t == id).count() != 1 {
            bail!("tokenizer splits {marker:?} inside text; FIM would silently break");
        }
        Ok(id)
    }

    /// Encodes text as the model sees it: special tokens written in the text become their ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("tokenize: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Encodes a client's text as plain text: `<|endoftext|>` written in it is those characters,
    /// not the control token (a `suffix`, the prefix of a FIM request).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .plain
            .encode(text, false)
            .map_err(|e| anyhow!("tokenize: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Encodes a client's raw prompt: the model's FIM markers in it become their tokens (the
    /// client applied the FIM template itself, as ghostline-lsp does), every other special
    /// token it spells (`<|endoftext|>`, `<|im_start|>`) stays plain text. The same ids as
    /// `encode` for a prompt whose only special tokens are FIM markers, since the tokenizer
    /// splits text at special tokens before anything else.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        let mut rest = text;
        loop {
            let next = self
                .markers
                .iter()
                .filter_map(|(marker, id)| rest.find(marker.as_str()).map(|at| (at, marker, *id)))
                .min_by_key(|&(at, marker, _)| (at, std::cmp::Reverse(marker.len())));
            let Some((at, marker, id)) = next else {
                break;
            };
            if at > 0 {
                ids.extend(self.encode_plain(&rest[..at])?);
            }
            ids.push(id);
            rest = &rest[at + marker.len()..];
        }
        if !rest.is_empty() {
            ids.extend(self.encode_plain(rest)?);
        }
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| anyhow!("detokenize: {e}"))
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The text of every id on its own: "" for special tokens and for byte pieces that are not
    /// a whole character.
    pub fn token_texts(&self) -> &[String] {
        self.texts.get_or_init(|| {
            (0..self.inner.get_vocab_size(true) as u32)
                .map(|id| match self.inner.decode(&[id], true) {
                    Ok(text) if !text.contains('\u{FFFD}') => text,
                    _ => String::new(),
                })
                .collect()
        })
    }

    /// Token healing: takes the prompt's last token off `ids` — and, when it is part of a
    /// word, the word's other tokens (`retu`, ` self_val`) — and returns their text, which the
    /// generation must then start with (`engine::sampling::Healing`). A prompt cut where the
    /// text goes on ends in a token the model has hardly ever seen followed by what comes next:
    /// `retu` + `rn` is always ` return` in training, `if` + ` ` always `if` + ` not`; left
    /// so, the model starts a new word (`retu = …`, `if 0:`). Nothing is taken when the prompt
    /// ends in a special token (a FIM marker), or when it would take everything.
    pub fn heal_tail(&self, ids: &mut Vec<u32>) -> String {
        let texts = self.token_texts();
        let word =
            |text: &str| !text.is_empty() && text.chars().all(|c| c.is_alphanumeric() || c == '_');
        let mut tail = String::new();
        let mut taken = 0;
        while taken < HEAL_TOKENS && ids.len() > taken + 1 {
            let id = ids[ids.len() - 1 - taken];
            let Some(text) = texts
                .get(id as usize)
                .filter(|t| !t.is_empty() && !self.is_special(id))
            else {
                break;
            };
            // Before the last token, only more of the same word (which a leading space starts).
            let bare = text.strip_prefix(' ').unwrap_or(text);
            if taken > 0 && !(word(bare) && word(&tail)) {
                break;
            }
            tail.insert_str(0, text);
            taken += 1;
            if !word(bare) || bare.len() < text.len() {
                break;
            }
        }
        ids.truncate(ids.len() - taken);
        tail
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.inner
            .get_added_tokens_decoder()
            .get(&id)
            .is_some_and(|t| t.special)
    }
}

/// Turns a growing list of token ids into text deltas without splitting a UTF-8 character that
/// spans several byte-level tokens.
#[derive(Default)]
pub struct IncrementalDecoder {
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl IncrementalDecoder {
    pub fn push(&mut self, tokenizer: &ModelTokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let before = tokenizer.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let now = tokenizer.decode(&self.ids[self.prefix_offset..])?;
        if now.ends_with('\u{FFFD}') || now.len() <= before.len() || !now.starts_with(&before) {
            // An incomplete character, or a special token that decodes to nothing: wait.
            return Ok(String::new());
        }
        let delta = now[before.len()..].to_string();
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        Ok(delta)
    }
}
