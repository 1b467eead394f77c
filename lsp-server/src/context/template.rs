//! Prompt formats per model family. Families trained with a file separator get other files
//! as files (`<|file_sep|>path`), the others as comments in the current file's language above
//! the prefix. Every format is sent as one raw prompt; the backend parses the markers as
//! special tokens.

use ghostline_protocol::FimInfo;

use crate::settings::PromptFamily;

use super::Snippet;

/// Marker strings of a model, as `/v1/models` reports them in `fim`. Where one is not
/// reported, Qwen2.5-Coder's (`qwen`) stands in: the one fallback in the crate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FimMarkers {
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub middle: Option<String>,
    pub repo_name: Option<String>,
    pub file_sep: Option<String>,
}

/// Qwen2.5-Coder's special tokens (the default model's family): the fallback for markers
/// `/v1/models` does not report, and the tokens that end a suggestion when a server passes
/// them through as text.
pub mod qwen {
    pub const FIM_PREFIX: &str = "<|fim_prefix|>";
    pub const FIM_SUFFIX: &str = "<|fim_suffix|>";
    pub const FIM_MIDDLE: &str = "<|fim_middle|>";
    pub const FIM_PAD: &str = "<|fim_pad|>";
    pub const REPO_NAME: &str = "<|repo_name|>";
    pub const FILE_SEP: &str = "<|file_sep|>";
    pub const END_OF_TEXT: &str = "<|endoftext|>";
    pub const IM_START: &str = "<|im_start|>";
    pub const IM_END: &str = "<|im_end|>";
}

impl FimMarkers {
    /// The markers the backend reported in `/v1/models` (its `fim`, empty when it has none).
    pub fn reported(fim: &FimInfo) -> Self {
        Self {
            prefix: fim.prefix.clone(),
            suffix: fim.suffix.clone(),
            middle: fim.middle.clone(),
            repo_name: fim.repo_name.clone(),
            file_sep: fim.file_sep.clone(),
        }
    }

    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(qwen::FIM_PREFIX)
    }
    pub fn suffix(&self) -> &str {
        self.suffix.as_deref().unwrap_or(qwen::FIM_SUFFIX)
    }
    pub fn middle(&self) -> &str {
        self.middle.as_deref().unwrap_or(qwen::FIM_MIDDLE)
    }
    pub fn repo_name(&self) -> &str {
        self.repo_name.as_deref().unwrap_or(qwen::REPO_NAME)
    }
    pub fn file_sep(&self) -> &str {
        self.file_sep.as_deref().unwrap_or(qwen::FILE_SEP)
    }

    /// The `{prefix}`/`{suffix}` template of these markers (filled by `apply_fim_template`,
    /// the one place a template is filled).
    pub fn template(&self) -> String {
        format!(
            "{}{{prefix}}{}{{suffix}}{}",
            self.prefix(),
            self.suffix(),
            self.middle()
        )
    }

    /// Text that ends a suggestion wherever it appears, should a server pass special tokens
    /// through as text: this model's FIM and repository markers, as `/v1/models` reports them,
    /// and the end-of-text and chat-turn tokens (the fallback family's, none of which belongs
    /// in code).
    pub fn ending_markers(&self) -> Vec<String> {
        let mut markers: Vec<String> = [
            self.prefix(),
            self.suffix(),
            self.middle(),
            self.repo_name(),
            self.file_sep(),
            qwen::END_OF_TEXT,
            qwen::FIM_PAD,
            qwen::IM_START,
            qwen::IM_END,
        ]
        .iter()
        .map(|m| m.to_string())
        .filter(|m| !m.is_empty())
        .collect();
        markers.sort();
        markers.dedup();
        markers
    }

    /// Whether the backend reported all three FIM markers.
    fn all_reported(&self) -> bool {
        self.prefix.is_some() && self.suffix.is_some() && self.middle.is_some()
    }
}

/// The model's own template: the one the backend reported, else the one its markers make
/// when it reported all three; `None` when it reported neither.
pub fn model_template(fim: &FimInfo) -> Option<String> {
    let markers = FimMarkers::reported(fim);
    fim.template
        .clone()
        .or_else(|| markers.all_reported().then(|| markers.template()))
}

/// The resolved format of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Qwen(FimMarkers),
    StarCoder,
    DeepSeek,
    CodeLlama,
    Codestral,
    /// A `{prefix}`/`{suffix}` template; other files as comments.
    Template(String),
    /// No template known: `prompt` + `suffix`, the server applies its own.
    ServerSide,
}

/// `setting` wins unless it is `auto`; then the backend's `family` (and, for Qwen, whether
/// the model `id` names an Instruct checkpoint); then a template.
pub fn resolve(
    setting: PromptFamily,
    explicit_template: Option<&str>,
    model_family: Option<&str>,
    model_id: Option<&str>,
    model_template: Option<&str>,
    markers: &FimMarkers,
) -> Format {
    let template = explicit_template.or(model_template);
    let family = match setting {
        PromptFamily::Auto => {
            if explicit_template.is_some() {
                // The user said exactly how the prompt looks.
                PromptFamily::Fim
            } else {
                let family = model_family.unwrap_or("").to_ascii_lowercase();
                let instruct = model_id
                    .unwrap_or("")
                    .to_ascii_lowercase()
                    .contains("instruct");
                if family.contains("qwen") && instruct {
                    // Qwen2.5-Coder-0.5B-Instruct (the default model) used other files better
                    // as comments above the FIM prefix than in the repo-level format: exact
                    // match on 40 cross-file cases of the evaluation 8/40 against 5/40, and
                    // 5/40 with the current file alone (tests/eval/RESULTS.md). Base
                    // checkpoints, trained on the repo-level format, keep it.
                    return Format::Template(
                        template.map_or_else(|| markers.template(), str::to_string),
                    );
                } else if family.contains("qwen") {
                    PromptFamily::Qwen
                } else if family.contains("starcoder") {
                    PromptFamily::StarCoder
                } else if family.contains("deepseek") {
                    PromptFamily::DeepSeek
                } else if family.contains("codellama")
                    || family.contains("code-llama")
                    || family.contains("code_llama")
                {
                    PromptFamily::CodeLlama
                } else if family.contains("codestral") {
                    PromptFamily::Codestral
                } else {
                    PromptFamily::Fim
                }
            }
        }
        other => other,
    };
    match family {
        PromptFamily::Qwen => Format::Qwen(markers.clone()),
        PromptFamily::StarCoder => Format::StarCoder,
        PromptFamily::DeepSeek => Format::DeepSeek,
        PromptFamily::CodeLlama => Format::CodeLlama,
        PromptFamily::Codestral => Format::Codestral,
        PromptFamily::Fim | PromptFamily::Auto => match template {
            Some(template) => Format::Template(template.to_string()),
            None => Format::ServerSide,
        },
    }
}

pub struct Rendered {
    pub prompt: String,
    pub suffix: Option<String>,
}

pub struct Parts<'a> {
    pub repo_name: &'a str,
    pub current_path: &'a str,
    /// In prompt order (the most useful last).
    pub snippets: &'a [Snippet],
    pub prefix: &'a str,
    pub suffix: &'a str,
    /// Line-comment marker of the current file's language.
    pub comment: &'a str,
}

/// Blocks of consecutive snippets of the same file joined, so a file is named once.
fn file_blocks(snippets: &[Snippet]) -> Vec<(&str, String)> {
    let mut blocks: Vec<(&str, String)> = Vec::new();
    for snippet in snippets {
        match blocks.last_mut() {
            Some((path, text)) if *path == snippet.path => {
                text.push_str("\n...\n");
                text.push_str(snippet.text.trim_end_matches('\n'));
            }
            _ => blocks.push((
                &snippet.path,
                snippet.text.trim_end_matches('\n').to_string(),
            )),
        }
    }
    blocks
}

/// Snippets as comments: `// path` then every line commented.
pub fn commented(snippets: &[Snippet], comment: &str) -> String {
    let mut out = String::new();
    for (path, text) in file_blocks(snippets) {
        out.push_str(&format!("{comment} {path}\n"));
        for line in text.lines() {
            if line.is_empty() {
                out.push_str(comment);
            } else {
                out.push_str(&format!("{comment} {line}"));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

fn with_files(parts: &Parts<'_>, repo: &str, sep: &str, newline_after_repo: bool) -> String {
    let mut out = String::new();
    out.push_str(repo);
    out.push_str(parts.repo_name);
    if newline_after_repo {
        out.push('\n');
    }
    for (path, text) in file_blocks(parts.snippets) {
        out.push_str(sep);
        out.push_str(path);
        out.push('\n');
        out.push_str(&text);
        out.push('\n');
    }
    out
}

pub fn render(format: &Format, parts: &Parts<'_>) -> Rendered {
    let raw = |prompt: String| Rendered {
        prompt,
        suffix: None,
    };
    let comments = || commented(parts.snippets, parts.comment);
    match format {
        Format::Qwen(markers) => {
            let mut out = String::new();
            // With nothing retrieved, the plain FIM prompt: the repo-level header around a lone
            // file was measured to derail Qwen2.5-Coder-0.5B-Instruct (the default model), which
            // then continued the file's `__main__` block instead of filling the hole, while the
            // same prefix and suffix without the header gave the right line.
            if !parts.snippets.is_empty() {
                let sep = markers.file_sep();
                out = with_files(parts, markers.repo_name(), sep, true);
                out.push_str(sep);
                out.push_str(parts.current_path);
                out.push('\n');
            }
            out.push_str(&apply_fim_template(
                &markers.template(),
                parts.prefix,
                parts.suffix,
            ));
            raw(out)
        }
        Format::StarCoder => {
            let mut out = with_files(parts, "<repo_name>", "<file_sep>", false);
            out.push_str("<file_sep>");
            out.push_str("<fim_prefix>");
            out.push_str(parts.current_path);
            out.push('\n');
            out.push_str(parts.prefix);
            out.push_str("<fim_suffix>");
            out.push_str(parts.suffix);
            out.push_str("<fim_middle>");
            raw(out)
        }
        Format::DeepSeek => raw(format!(
            "<｜fim▁begin｜>{}{}<｜fim▁hole｜>{}<｜fim▁end｜>",
            comments(),
            parts.prefix,
            parts.suffix
        )),
        Format::CodeLlama => raw(format!(
            "<PRE> {}{} <SUF>{} <MID>",
            comments(),
            parts.prefix,
            parts.suffix
        )),
        Format::Codestral => raw(format!(
            "[SUFFIX]{}[PREFIX]{}{}",
            parts.suffix,
            comments(),
            parts.prefix
        )),
        Format::Template(template) => raw(apply_fim_template(
            template,
            &format!("{}{}", comments(), parts.prefix),
            parts.suffix,
        )),
        Format::ServerSide => Rendered {
            prompt: format!("{}{}", comments(), parts.prefix),
            suffix: Some(parts.suffix.to_string()),
        },
    }
}

/// Stop strings worth sending for a format, in case a server passes markers through.
pub fn stops(format: &Format) -> &'static [&'static str] {
    match format {
        Format::StarCoder => &["<file_sep>", "<|endoftext|>", "<fim_prefix>"],
        Format::DeepSeek => &["<｜end▁of▁sentence｜>", "<｜fim▁begin｜>"],
        Format::CodeLlama => &["<EOT>", " <EOT>"],
        Format::Codestral => &["[PREFIX]", "[SUFFIX]"],
        _ => &[],
    }
}

/// `template` with `{prefix}` and `{suffix}` substituted in one pass, so that code which
/// happens to contain the text `{suffix}` is never substituted a second time.
pub fn apply_fim_template(template: &str, prefix: &str, suffix: &str) -> String {
    let mut out = String::with_capacity(template.len() + prefix.len() + suffix.len());
    let mut rest = template;
    loop {
        let next_prefix = rest.find("{prefix}");
        let next_suffix = rest.find("{suffix}");
        let (at, value) = match (next_prefix, next_suffix) {
            (Some(p), Some(s)) if p < s => (p, prefix),
            (Some(p), None) => (p, prefix),
            (_, Some(s)) => (s, suffix),
            (None, None) => break,
        };
        out.push_str(&rest[..at]);
        out.push_str(value);
        rest = &rest[at + "{prefix}".len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::SourceKind;

    fn snippet(path: &str, text: &str) -> Snippet {
        Snippet {
            path: path.into(),
            start_line: 0,
            end_line: 1,
            text: text.into(),
            score: 1.0,
            kind: SourceKind::Definition,
            verbatim: false,
        }
    }

    fn parts<'a>(snippets: &'a [Snippet]) -> Parts<'a> {
        Parts {
            repo_name: "repo",
            current_path: "src/main.rs",
            snippets,
            prefix: "fn main() {\n    ",
            suffix: "\n}\n",
            comment: "//",
        }
    }

    #[test]
    fn the_models_template_is_reported_or_made_of_its_markers() {
        let markers = |template: Option<&str>, middle: Option<&str>| FimInfo {
            prefix: Some("<P>".into()),
            suffix: Some("<S>".into()),
            middle: middle.map(str::to_string),
            template: template.map(str::to_string),
            ..FimInfo::default()
        };
        assert_eq!(
            model_template(&markers(Some("{suffix}<P>{prefix}"), Some("<M>"))).as_deref(),
            Some("{suffix}<P>{prefix}")
        );
        assert_eq!(
            model_template(&markers(None, Some("<M>"))).as_deref(),
            Some("<P>{prefix}<S>{suffix}<M>")
        );
        // Two of three markers make no template: the server applies its own.
        assert_eq!(model_template(&markers(None, None)), None);
        assert_eq!(model_template(&FimInfo::default()), None);
        // Markers not reported fall back to Qwen's, one by one.
        let partial = FimMarkers::reported(&markers(None, None));
        assert_eq!(partial.template(), "<P>{prefix}<S>{suffix}<|fim_middle|>");
    }

    #[test]
    fn template_substitutes_once() {
        let t = "<P>{prefix}<S>{suffix}<M>";
        assert_eq!(
            apply_fim_template(t, "a{suffix}", "b"),
            "<P>a{suffix}<S>b<M>"
        );
    }

    #[test]
    fn qwen_repo_level_format() {
        let snippets = [snippet("src/a.rs", "fn a() {}")];
        let format = resolve(
            PromptFamily::Auto,
            None,
            Some("qwen2.5-coder"),
            Some("qwen2.5-coder-1.5b"),
            None,
            &FimMarkers::default(),
        );
        let rendered = render(&format, &parts(&snippets));
        assert_eq!(
            rendered.prompt,
            "<|repo_name|>repo\n<|file_sep|>src/a.rs\nfn a() {}\n<|file_sep|>src/main.rs\n<|fim_prefix|>fn main() {\n    <|fim_suffix|>\n}\n<|fim_middle|>"
        );
        assert!(rendered.suffix.is_none());
        // Nothing retrieved: no repo header, the plain FIM prompt.
        let alone = render(&format, &parts(&[]));
        assert_eq!(
            alone.prompt,
            "<|fim_prefix|>fn main() {\n    <|fim_suffix|>\n}\n<|fim_middle|>"
        );
    }

    #[test]
    fn families_without_file_separators_get_comments() {
        let snippets = [snippet("src/a.rs", "fn a() {}")];
        let p = parts(&snippets);
        let deepseek = render(&Format::DeepSeek, &p).prompt;
        assert_eq!(deepseek, "<｜fim▁begin｜>// src/a.rs\n// fn a() {}\n\nfn main() {\n    <｜fim▁hole｜>\n}\n<｜fim▁end｜>");
        assert!(render(&Format::CodeLlama, &p)
            .prompt
            .starts_with("<PRE> // src/a.rs\n"));
        assert!(render(&Format::Codestral, &p)
            .prompt
            .starts_with("[SUFFIX]\n}\n[PREFIX]// src/a.rs"));
        let star = render(&Format::StarCoder, &p).prompt;
        assert!(star.starts_with(
            "<repo_name>repo<file_sep>src/a.rs\nfn a() {}\n<file_sep><fim_prefix>src/main.rs\n"
        ));
        let template = resolve(
            PromptFamily::Auto,
            Some("<P>{prefix}<S>{suffix}<M>"),
            Some("qwen2.5-coder"),
            None,
            None,
            &FimMarkers::default(),
        );
        assert_eq!(
            render(&template, &p).prompt,
            "<P>// src/a.rs\n// fn a() {}\n\nfn main() {\n    <S>\n}\n<M>"
        );
        let server = render(
            &resolve(
                PromptFamily::Auto,
                None,
                Some("other"),
                None,
                None,
                &FimMarkers::default(),
            ),
            &p,
        );
        assert_eq!(server.suffix.as_deref(), Some("\n}\n"));
    }

    #[test]
    fn qwen_instruct_gets_comments_unless_the_repo_format_is_asked_for() {
        let snippets = [snippet("src/a.rs", "fn a() {}")];
        let p = parts(&snippets);
        let instruct = |setting| {
            resolve(
                setting,
                None,
                Some("qwen2.5-coder"),
                Some("qwen2.5-coder-0.5b-instruct"),
                None,
                &FimMarkers::default(),
            )
        };
        assert_eq!(
            render(&instruct(PromptFamily::Auto), &p).prompt,
            "<|fim_prefix|>// src/a.rs\n// fn a() {}\n\nfn main() {\n    <|fim_suffix|>\n}\n<|fim_middle|>"
        );
        assert!(render(&instruct(PromptFamily::Qwen), &p)
            .prompt
            .starts_with("<|repo_name|>repo\n<|file_sep|>src/a.rs\n"));
    }
}
