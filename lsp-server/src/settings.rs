use serde::{Deserialize, Serialize};
use serde_json::Value;

/// When a suggestion may span several lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MultilineMode {
    /// Decided from the syntax at the cursor.
    #[default]
    Auto,
    Always,
    Never,
}

/// What the prompt is built from (see `context`). The evaluation harness relies on exactly
/// these three names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContextMode {
    /// The current file plus definitions, similar code and recent edits that are likely to help.
    #[default]
    #[serde(rename = "full")]
    Full,
    /// Only the current file around the cursor.
    #[serde(rename = "currentFile")]
    CurrentFile,
    /// Baseline: the current file plus the most similar windows (Jaccard over identifiers)
    /// from other workspace files and open documents.
    #[serde(rename = "jaccard")]
    Jaccard,
}

/// The prompt format. `auto` picks it from the backend's `/v1/models` `family`, falling back
/// to the plain FIM template.
/// How windows of similar code from other files enter a `full` prompt. The default measured best
/// on the dev half (tests/eval/RESULTS.md, issue 28); the others are there to ablate it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SimilarWindows {
    /// Only windows that pass `context::select::MIN_SCORE`, like every other snippet; the most
    /// similar sits nearest the current file. (Dev half, 30 cross-file holes at 2,048 tokens:
    /// 50.0% exact against 36.7% for `fill`.)
    #[default]
    #[serde(rename = "floor")]
    Floor,
    /// What passes the floor first, then the most similar windows fill what is left of the
    /// share (the naive recipe of llama.vim and of the evaluation's `naive-full`).
    #[serde(rename = "fill")]
    Fill,
    /// As `fill`, the windows placed by path and line instead of by similarity.
    #[serde(rename = "fillByPath")]
    FillByPath,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PromptFamily {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "qwen2.5-coder", alias = "qwen")]
    Qwen,
    #[serde(rename = "starcoder", alias = "starcoder2")]
    StarCoder,
    #[serde(rename = "deepseek-coder", alias = "deepseek")]
    DeepSeek,
    #[serde(rename = "codellama")]
    CodeLlama,
    #[serde(rename = "codestral")]
    Codestral,
    /// The FIM template only (`fimTemplate` or the backend's), other files as comments.
    #[serde(rename = "fim")]
    Fim,
}

/// User settings, from `initializationOptions` and `workspace/didChangeConfiguration`.
/// Both accept either the bare object or one nested under a `"ghostline"` key, and a partial
/// object only changes the keys it names. The defaults talk to `./run.sh` on this machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// Base URL of an OpenAI-compatible server (`/v1/models`, `/v1/completions`).
    pub backend_url: String,
    /// Name of the environment variable that holds the API key; the key itself never
    /// travels through settings, so it never lands in an editor's config file or our logs.
    pub api_key_env: String,
    /// A PEM file of CA certificates trusted for an `https://` backend on top of the system's
    /// roots: a team's own CA that signed the server's certificate.
    pub ca_file: Option<String>,
    /// Model id; `None` takes the first model `/v1/models` lists.
    pub model: Option<String>,
    /// FIM template with `{prefix}` and `{suffix}`; `None` takes the one `/v1/models` reports,
    /// and when it reports none the server is sent `suffix` and applies its own.
    pub fim_template: Option<String>,
    pub max_tokens: u32,
    /// Most lines a multi-line suggestion may have.
    pub max_lines: usize,
    pub multiline: MultilineMode,
    /// Wait this long after a request before asking the backend, so that fast typing asks
    /// only once; most editors debounce already, hence the small default.
    pub debounce_ms: u64,
    /// Language ids to complete in; `["*"]` means all.
    pub enabled_languages: Vec<String>,
    /// How long a suggestion may take to start: past it with nothing streamed the request
    /// answers empty; a suggestion already streaming may finish within as long again.
    pub timeout_ms: u64,
    /// How long the backend should take for a suggestion: the prompt's budget is the largest
    /// (up to `context_tokens`) that the backend's measured speed and prefix cache let it answer
    /// in this time (see `complete::pacing`); a fast backend always gets `context_tokens`.
    pub latency_target_ms: u64,
    /// Token budget for prefix + suffix (counted with tiktoken's cl100k).
    pub context_tokens: usize,
    pub temperature: f32,
    pub context_mode: ContextMode,
    pub prompt_family: PromptFamily,
    /// Most of the token budget that context from other files may take (0..=1); the rest,
    /// and whatever retrieval leaves unused, goes to the current file.
    pub retrieved_share: f32,
    /// How similar windows of other files are chosen and placed (`full` mode).
    pub similar_windows: SimilarWindows,
    /// A folder laid out like the repo's `grammars/` whose `.scm` files replace the
    /// built-in queries; `None`: `GHOSTLINE_GRAMMARS_DIR`, else the built-in ones.
    pub grammars_dir: Option<String>,
    /// Globs of files never indexed, retrieved or completed in, on top of the built-in
    /// list of secret files (`.env`, `*.pem`, `id_rsa*`, ...); `!glob` lets a file that only
    /// a built-in glob excludes back in (`privacy::excludes`).
    pub exclude_globs: Vec<String>,
    /// Most files the workspace index reads.
    pub max_indexed_files: usize,
    /// Keep local acceptance stats (suggestions shown, accepted, partly accepted, time to
    /// shown; counts and timings only) in the data folder for `ghostline-lsp stats`.
    pub stats: bool,
    /// Send the same counters, per language, to the backend (`POST
    /// /v1/ghostline/suggestion-stats`, under the API key) for the team's `/metrics`.
    pub share_stats: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            backend_url: "http://127.0.0.1:8123".to_string(),
            api_key_env: "GHOSTLINE_API_KEY".to_string(),
            ca_file: None,
            model: None,
            fim_template: None,
            max_tokens: 128,
            max_lines: 12,
            multiline: MultilineMode::Auto,
            debounce_ms: 0,
            enabled_languages: vec!["*".to_string()],
            timeout_ms: 5000,
            latency_target_ms: 800,
            context_tokens: 2048,
            temperature: 0.0,
            context_mode: ContextMode::Full,
            prompt_family: PromptFamily::Auto,
            retrieved_share: 0.4,
            similar_windows: SimilarWindows::Floor,
            grammars_dir: None,
            exclude_globs: Vec::new(),
            max_indexed_files: 20_000,
            stats: true,
            share_stats: false,
        }
    }
}

impl Settings {
    /// A copy of `self` with the keys present in `update` replaced. Unknown keys and values
    /// of the wrong type are ignored with a warning rather than rejecting the whole update.
    pub fn merged(&self, update: &Value) -> Self {
        let update = match update.get("ghostline") {
            Some(nested) if nested.is_object() => nested,
            _ => update,
        };
        let Some(update) = update.as_object() else {
            return self.clone();
        };
        let mut merged = serde_json::to_value(self).unwrap_or(Value::Null);
        for (key, value) in update {
            let mut candidate = merged.clone();
            candidate[key] = value.clone();
            match serde_json::from_value::<Settings>(candidate.clone()) {
                Ok(_) => merged = candidate,
                Err(error) => tracing::warn!("ignoring setting `{key}`: {error}"),
            }
        }
        serde_json::from_value(merged).unwrap_or_else(|_| self.clone())
    }

    pub fn language_enabled(&self, language_id: &str) -> bool {
        self.enabled_languages
            .iter()
            .any(|l| l == "*" || l == language_id)
    }

    pub fn api_key(&self) -> Option<String> {
        if self.api_key_env.is_empty() {
            return None;
        }
        std::env::var(&self.api_key_env)
            .ok()
            .filter(|key| !key.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_and_nested_updates_change_only_named_keys() {
        let base = Settings::default();
        let merged = base.merged(&json!({"ghostline": {"maxTokens": 7, "multiline": "never"}}));
        assert_eq!(merged.max_tokens, 7);
        assert_eq!(merged.multiline, MultilineMode::Never);
        assert_eq!(merged.backend_url, base.backend_url);
        let merged = merged.merged(&json!({"timeoutMs": "soon", "backendUrl": "http://x:1"}));
        assert_eq!(merged.timeout_ms, base.timeout_ms);
        assert_eq!(merged.backend_url, "http://x:1");
    }

    #[test]
    fn context_settings_use_the_documented_names() {
        let merged = Settings::default().merged(&json!({
            "contextMode": "currentFile", "promptFamily": "qwen2.5-coder",
            "excludeGlobs": ["*.secret"], "retrievedShare": 0.25, "grammarsDir": "/g",
            "similarWindows": "fillByPath"
        }));
        assert_eq!(merged.context_mode, ContextMode::CurrentFile);
        assert_eq!(merged.similar_windows, SimilarWindows::FillByPath);
        assert_eq!(merged.prompt_family, PromptFamily::Qwen);
        assert_eq!(merged.exclude_globs, ["*.secret"]);
        assert_eq!(merged.grammars_dir.as_deref(), Some("/g"));
        assert_eq!(
            merged
                .merged(&json!({"contextMode": "jaccard"}))
                .context_mode,
            ContextMode::Jaccard
        );
        assert_eq!(
            merged.merged(&json!({"contextMode": "bogus"})).context_mode,
            ContextMode::CurrentFile
        );
    }
}
