//! A model directory: `ghostline.json`, the ONNX decoder and `tokenizer.json`.
//!
//! The KV layout is detected from the files and the graph rather than declared, so a directory
//! produced by another tool is either understood or refused with an error naming what was
//! expected.

pub mod tokenizer;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use tokenizer::ModelTokenizer;

/// `ghostline.json`, see ARCHITECTURE.md.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ModelConfig {
    pub format: u32,
    pub name: String,
    pub family: String,
    pub context_length: usize,
    #[serde(default)]
    pub eos_token_ids: Vec<u32>,
    #[serde(default)]
    pub stop_token_ids: Vec<u32>,
    pub fim: FimConfig,
    pub kv: KvDims,
    /// Optional second graph file of the same weights, used on the CPU for long prefill passes
    /// (see `Engine`); fetch_default_model.py writes one with `MatMulNBits` computing in f32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_onnx: Option<String>,
    #[serde(default)]
    pub source: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FimConfig {
    pub prefix: String,
    pub suffix: String,
    pub middle: String,
    #[serde(default)]
    pub repo_name: Option<String>,
    #[serde(default)]
    pub file_sep: Option<String>,
    pub template: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub struct KvDims {
    pub num_layers: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

/// Which exporter's conventions the decoder follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// onnxruntime-genai builder: GroupQueryAttention, `genai_config.json` beside the graph.
    Genai,
    /// Hugging Face Optimum `text-generation-with-past`: `model.onnx` with explicit position ids.
    Optimum,
}

/// Files of a model directory, resolved but not yet loaded.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub onnx: PathBuf,
    /// ghostline.json `prefill_onnx`, resolved.
    pub prefill_onnx: Option<PathBuf>,
    pub tokenizer: PathBuf,
    /// Layout suggested by the files; confirmed against the graph's inputs when the session loads.
    pub layout_hint: Layout,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelDirError {
    #[error("model directory {0} does not exist (fetch the default model with ./run.sh, or pass --model DIR)")]
    Missing(PathBuf),
    #[error("{path}: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    #[error(
        "{0} is not a model directory this server understands: expected either an onnxruntime-genai \
         export (genai_config.json naming its decoder .onnx) or an Optimum export (model.onnx with \
         past_key_values.N.key/value inputs), plus tokenizer.json and ghostline.json"
    )]
    UnknownLayout(PathBuf),
}

impl ModelFiles {
    pub fn resolve(dir: &Path) -> Result<Self, ModelDirError> {
        if !dir.is_dir() {
            return Err(ModelDirError::Missing(dir.to_path_buf()));
        }
        let config_path = dir.join("ghostline.json");
        let config: ModelConfig = read_json(&config_path)?;
        if config.format != 1 {
            return Err(ModelDirError::BadConfig {
                path: config_path,
                reason: format!("format {} is not supported (expected 1)", config.format),
            });
        }
        if !config.fim.template.contains("{prefix}") || !config.fim.template.contains("{suffix}") {
            return Err(ModelDirError::BadConfig {
                path: config_path,
                reason: "fim.template must contain {prefix} and {suffix}".into(),
            });
        }
        let tokenizer = dir.join("tokenizer.json");
        if !tokenizer.is_file() {
            return Err(ModelDirError::UnknownLayout(dir.to_path_buf()));
        }

        let genai_config = dir.join("genai_config.json");
        let (onnx, layout_hint) = if genai_config.is_file() {
            let genai: serde_json::Value = read_json(&genai_config)?;
            let file = genai
                .pointer("/model/decoder/filename")
                .and_then(|v| v.as_str())
                .ok_or_else(|| ModelDirError::BadConfig {
                    path: genai_config.clone(),
                    reason: "model.decoder.filename is missing".into(),
                })?;
            (dir.join(file), Layout::Genai)
        } else {
            (dir.join("model.onnx"), Layout::Optimum)
        };
        if !onnx.is_file() {
            return Err(ModelDirError::UnknownLayout(dir.to_path_buf()));
        }
        let prefill_onnx = match &config.prefill_onnx {
            Some(file) => {
                let path = dir.join(file);
                if !path.is_file() {
                    return Err(ModelDirError::BadConfig {
                        path: config_path,
                        reason: format!("prefill_onnx {file} does not exist"),
                    });
                }
                Some(path)
            }
            None => None,
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            onnx,
            prefill_onnx,
            tokenizer,
            layout_hint,
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelDirError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelDirError::BadConfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| ModelDirError::BadConfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Where models live unless `--model` says otherwise: `$GHOSTLINE_CACHE/models`, by default
/// `~/.cache/ghostline/models`.
/// The external-data files an ONNX graph names (`TensorProto.external_data`, key `location`),
/// in the order first named. Read from the protobuf bytes directly: each entry is a
/// `StringStringEntryProto` whose key field is the 8 bytes `location` and whose value follows.
pub fn external_data_locations(onnx: &Path) -> anyhow::Result<Vec<String>> {
    const ENTRY: &[u8] = b"\x0a\x08location\x12";
    let bytes =
        std::fs::read(onnx).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", onnx.display()))?;
    let mut names: Vec<String> = Vec::new();
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(ENTRY.len()).position(|w| w == ENTRY) {
        let mut pos = at + found + ENTRY.len();
        // The value's length, a varint.
        let (mut len, mut shift) = (0usize, 0);
        while let Some(&b) = bytes.get(pos) {
            pos += 1;
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 || shift > 28 {
                break;
            }
        }
        let name = bytes
            .get(pos..pos + len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| {
                anyhow::anyhow!("{}: a malformed external data entry", onnx.display())
            })?;
        anyhow::ensure!(
            !name.is_empty() && !name.split(['/', '\\']).any(|part| part == ".."),
            "{}: external data location {name:?} leaves the model directory",
            onnx.display()
        );
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
        at = pos + len;
    }
    Ok(names)
}

pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("GHOSTLINE_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("ghostline")
}

pub const DEFAULT_MODEL_DIR_NAME: &str = "qwen2.5-coder-0.5b-instruct-q4km-cpu";

pub fn default_model_dir() -> PathBuf {
    cache_root().join("models").join(DEFAULT_MODEL_DIR_NAME)
}
