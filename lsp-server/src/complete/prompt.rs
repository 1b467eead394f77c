//! The prompt of one request: the model's format resolved from the settings and
//! `/v1/models`, the context built (`crate::context`: window, sources, selection) and rendered
//! through the one template (`context::template`), with the cursor's line placed last where the
//! backend heals. Runs on the blocking pool.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;
use tower_lsp_server::gen_lsp_types::Uri;

use super::analyze::{Analysis, CursorLine};
use super::pacing::{Ask, Sent};
use super::request::{Env, RequestContext};
use crate::backend::ModelInfo;
use crate::context::template::{self, qwen, FimMarkers, Format, Parts, Rendered};
use crate::context::{Budget, BuiltContext, CurrentFile, Workspace};
use crate::index::uri_to_path;
use crate::session::{Document, Session};
use crate::settings::{ContextMode, PromptFamily, Settings};
use crate::tokens;

/// Stop sequences sent to the backend, in case it passes markers through as text: the end of
/// text and of a chat turn, and the model's markers that would start another file or hole.
fn backend_stops(markers: &FimMarkers) -> Vec<String> {
    [
        qwen::END_OF_TEXT,
        markers.file_sep(),
        markers.prefix(),
        qwen::IM_END,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Stop sequences for a request carrying `prompt` to `model`.
pub fn stops(model: &ModelInfo, prompt: &Prompt, multiline: bool) -> Vec<String> {
    let mut stops = backend_stops(&FimMarkers::reported(&model.fim));
    stops.extend(
        template::stops(&prompt.format)
            .iter()
            .map(|s| s.to_string()),
    );
    if !multiline {
        // A single-line suggestion ends at the line break (see `stop`); the backend stopping
        // there itself also ends the stream with its usage, which paces the next prompts.
        stops.push("\n".to_string());
    }
    stops
}

/// The document a prompt is built for, and its budget.
pub struct PromptSource<'a> {
    pub uri: &'a Uri,
    pub document: &'a Document,
    pub cursor: usize,
    /// The prompt's budget tier (see `pacing`).
    pub context_tokens: usize,
}

/// A prompt, and the part of it that stays the same while the user types on the cursor's line.
pub struct Prompt {
    pub rendered: Rendered,
    pub format: Format,
    /// The raw prompt without what is typed on the cursor's line after its indentation, which
    /// comes last (a prefix of `rendered.prompt`); `None` where the backend applies the template.
    pub stable: Option<String>,
    /// Tokens of `stable` (counted on the pool, with the prompt).
    pub stable_tokens: usize,
    /// First line of the current file's window.
    pub window_start: usize,
    /// Tokens of the cursor line's prefix, of the suffix, and whether the cap cut the suffix.
    pub line_tokens: usize,
    pub suffix_tokens: usize,
    pub suffix_capped: bool,
}

impl Prompt {
    /// What pacing is told about a request carrying this prompt.
    pub fn sent(&self, uri: &str, tier: usize, cursor_line: usize) -> Sent {
        Sent {
            uri: uri.to_string(),
            tier,
            cursor_line,
            window_start: self.window_start,
            stable_tokens: self.stable_tokens,
            line_tokens: self.line_tokens,
            suffix_tokens: self.suffix_tokens,
            suffix_capped: self.suffix_capped,
            line_last: self.stable.is_some(),
        }
    }
}

/// What to build a prompt for on the pool: `uri` as `document` holds it, at `cursor`, within
/// `tier` tokens. `reparse`: bring a stale syntax tree up to date first (a cursor hint's
/// snapshot may have one; a request's was parsed by the analyze stage).
pub(super) struct PromptJob {
    pub uri: Uri,
    pub document: Document,
    pub cursor: usize,
    pub tier: usize,
    pub reparse: bool,
}

/// `build_prompt` on the work pool for `job`; `None` when `cancel` fired first.
pub(super) async fn build_prompt_on_pool(
    env: &Env,
    model: &ModelInfo,
    job: PromptJob,
    cancel: &CancellationToken,
) -> Option<Prompt> {
    let (env_, model, token) = (env.clone(), model.clone(), cancel.clone());
    let work = move || {
        let document = if job.reparse {
            env_.session.parsed(&job.uri, job.document)
        } else {
            job.document
        };
        let source = PromptSource {
            uri: &job.uri,
            document: &document,
            cursor: job.cursor,
            context_tokens: job.tier,
        };
        build_prompt(&env_, &model, &source, Some(&token))
    };
    env.completer.pool.run(cancel, work).await
}

/// The prompt stage of a request: its budget tier (the one a rest earned, else the largest
/// pacing says is answered within the target) and its prompt, built on the pool from the
/// analyzed document. `None` when the request was cancelled first.
pub(super) async fn prompt_for_request(
    ctx: &RequestContext<'_>,
    model: &ModelInfo,
    analysis: &Analysis,
    line: &CursorLine,
    rest_tier: Option<usize>,
) -> Option<(Prompt, usize)> {
    let settings = &ctx.env.settings;
    let tier = rest_tier.unwrap_or_else(|| {
        ctx.env.completer.pacing.choose(Ask {
            uri: ctx.uri.0.as_str(),
            cursor_line: line.index,
            max: settings.context_tokens,
            multiline: analysis.multiline,
            target_ms: settings.latency_target_ms,
        })
    });
    tracing::debug!(tier, rest = rest_tier.is_some(), "prompt budget");
    let job = PromptJob {
        uri: ctx.uri.clone(),
        document: analysis.document.clone(),
        cursor: line.cursor,
        tier,
        reparse: false,
    };
    let prompt = build_prompt_on_pool(&ctx.env, model, job, &ctx.cancel).await?;
    Some((prompt, tier))
}

/// The prompt format for the model: the settings' family and template, else the model's.
/// (`currentFile` keeps the plain FIM prompt of before unless a family was asked for.)
fn prompt_format(settings: &Settings, model: &ModelInfo) -> Format {
    let family = match (settings.context_mode, settings.prompt_family) {
        (ContextMode::CurrentFile, PromptFamily::Auto) => PromptFamily::Fim,
        (_, family) => family,
    };
    template::resolve(
        family,
        settings.fim_template.as_deref(),
        model.family.as_deref(),
        Some(model.id.as_str()),
        template::model_template(&model.fim).as_deref(),
        &FimMarkers::reported(&model.fim),
    )
}

/// The current file's path (if local) and its name relative to the workspace.
fn file_names(session: &Session, uri: &Uri) -> (Option<PathBuf>, String) {
    let path = uri_to_path(uri);
    let relative = match &path {
        Some(path) => session.index.relative(path),
        None => uri.0.rsplit('/').next().unwrap_or("untitled").to_string(),
    };
    (path, relative)
}

/// The context for `source`: the current file's window and what the sources
/// `settings.context_mode` allows found elsewhere, within the budget.
fn build_context(
    env: &Env,
    model: &ModelInfo,
    source: &PromptSource<'_>,
    (path, relative): (Option<&Path>, &str),
    cancel: Option<&CancellationToken>,
) -> BuiltContext {
    let (session, settings) = (&env.session, &env.settings);
    let open = if settings.context_mode == ContextMode::CurrentFile {
        Default::default()
    } else {
        session.open_documents()
    };
    let recently_edited = session.recently_edited();
    let excludes = session.excludes();
    let workspace = Workspace {
        index: &session.index,
        open: &open,
        recently_edited: &recently_edited,
        excludes: &excludes,
        memo: Some(&env.completer.snippet_memo),
        cancel,
    };
    let current = CurrentFile {
        path,
        relative,
        rope: &source.document.rope,
        cursor_char: source.cursor,
        lang: source.document.lang,
        tree: source.document.tree.as_ref(),
    };
    let budget = Budget::new(
        source.context_tokens,
        model.context_length,
        settings.max_tokens,
        settings.retrieved_share,
    )
    .with_similar(settings.similar_windows);
    let built = crate::context::build(settings.context_mode, &current, &workspace, budget);
    tracing::debug!(
        "context: {} snippets ({}), prefix {} bytes, suffix {} bytes",
        built.snippets.len(),
        built
            .snippets
            .iter()
            .map(|s| format!("{:?} {}:{}", s.kind, s.path, s.start_line + 1))
            .collect::<Vec<_>>()
            .join(", "),
        built.cursor.prefix.len(),
        built.cursor.suffix.len()
    );
    built
}

/// The prompt for `source` within `source.context_tokens`: context from the sources
/// `settings.context_mode` allows, in the format of the model's family. Blocking work (the
/// sources scan the index and read files, the tokens are counted): runs on the pool; `cancel`
/// stops the sources early.
pub(super) fn build_prompt(
    env: &Env,
    model: &ModelInfo,
    source: &PromptSource<'_>,
    cancel: Option<&CancellationToken>,
) -> Prompt {
    let format = prompt_format(&env.settings, model);
    let (path, relative) = file_names(&env.session, source.uri);
    let built = build_context(env, model, source, (path.as_deref(), &relative), cancel);
    let repo_name = env.session.index.repo_name();
    let parts = Parts {
        repo_name: &repo_name,
        current_path: &relative,
        snippets: &built.snippets,
        prefix: &built.cursor.prefix,
        suffix: &built.cursor.suffix,
        comment: crate::syntax::line_comment(&source.document.language_id),
    };
    let (rendered, stable) = render_with_line_last(model, &format, &built, parts);
    Prompt {
        rendered,
        format,
        stable_tokens: tokens::count_cached(stable.as_deref().unwrap_or("")),
        stable,
        window_start: built.cursor.window_lines.0,
        line_tokens: tokens::count(&built.cursor.line_prefix),
        suffix_tokens: built.cursor.suffix_tokens,
        suffix_capped: built.cursor.suffix_capped,
    }
}

/// The prompt rendered, and its stable part where the cursor's line goes last.
///
/// With a backend that heals a prompt ending inside a word (ghostline-serve), the cursor's
/// line goes last, after the middle marker, as the start of the text the model writes: what
/// comes before it — other files, the window up to this line, the suffix — stays the same
/// while the user types on the line, so a keystroke costs the backend the characters typed,
/// not the line and the whole suffix again. Without healing the model, seeing a prompt end
/// in `retu`, starts a new word (` = …`) instead of finishing `return` (typing benchmark:
/// 4% of pauses exact, against 19% with the line in the prefix), so other backends get the
/// line at the end of the prefix, and no stable part. So does a cursor with text after it on
/// its line (more than closing brackets): the model, writing the line from its start, wrote
/// its own end of the line (`sum(n` → `umbers)  # sum of all of them` before
/// `)  # all of them`) where, asked for just the middle, it wrote `umbers`.
fn render_with_line_last(
    model: &ModelInfo,
    format: &Format,
    built: &BuiltContext,
    parts: Parts<'_>,
) -> (Rendered, Option<String>) {
    let rest_is_closers = built
        .cursor
        .rest_of_line
        .chars()
        .all(|c| c.is_whitespace() || ")]}>;,:'\"`".contains(c));
    // The line's indentation stays with the fixed part: it does not change while the user types
    // the line, and the model writes a better line when what comes before the middle marker
    // ends at the indentation than when the middle starts with it (dev half, 60 block bodies:
    // bodies that open with a made-up comment 4 → 0, exact 3 → 5; tests/eval/RESULTS.md).
    let line_start = built.cursor.prefix.rfind('\n').map_or(0, |at| at + 1);
    let indentation = built.cursor.prefix[line_start..].len()
        - built.cursor.prefix[line_start..]
            .trim_start_matches([' ', '\t'])
            .len();
    let (head, line) = built.cursor.prefix.split_at(line_start + indentation);
    let healed = (model.token_healing && rest_is_closers).then(|| {
        template::render(
            format,
            &Parts {
                prefix: head,
                ..parts
            },
        )
    });
    match healed {
        Some(rendered) if rendered.suffix.is_none() => {
            let stable = rendered.prompt;
            let prompt = format!("{stable}{line}");
            (
                Rendered {
                    prompt,
                    suffix: None,
                },
                Some(stable),
            )
        }
        _ => (template::render(format, &parts), None),
    }
}
