//! From a cursor to a suggestion: memory first, then the backend, streamed and stopped
//! early, then post-processed. Shared by inline completion and the completion fallback.

pub mod context;
pub mod memory;
pub mod pacing;
pub mod postprocess;
pub mod stop;
pub mod syntax;
pub mod timings;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ropey::Rope;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tower_lsp_server::gen_lsp_types::{MessageType, Position, Uri};
use tower_lsp_server::Client;

use crate::backend::health::HealthChange;
use crate::backend::{affinity, BackendError, CompletionRequest, ModelInfo, Usage};
use crate::context::template::{self, Format, Parts, Rendered};
use crate::context::{Budget, CurrentFile, Workspace};
use crate::edit::{line_content_end_char, position_to_char};
use crate::index::uri_to_path;
use crate::session::{ContextMode, Document, MultilineMode, PromptFamily, Session, Settings};
use context::{count_tokens_cached, cursor_context, CursorContext};
use memory::{RecentResult, ShownSuggestion};
use pacing::Sent;
use postprocess::PostContext;
use stop::{StopConfig, StopDetector};
use syntax::{syntax_at_cursor_in, SyntaxAtCursor};
use timings::{now_ns, RequestTiming};

/// Stamped on a completion request when it arrives (see `server::dispatch`): which
/// request it is for its document, and when it arrived.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub generation: u64,
    pub arrived_ns: u64,
}

/// A suggestion for the document as it was when the request started.
#[derive(Clone, Debug)]
pub struct Suggestion {
    pub rope: Rope,
    pub text: String,
    pub cursor_char: usize,
    /// End of the replaced range on the cursor's line (== `cursor_char` when inserting).
    pub replace_end_char: usize,
    pub line_prefix: String,
}

/// Stop sequences sent to the backend, in case it passes markers through as text.
const BACKEND_STOPS: &[&str] = &[
    "<|endoftext|>",
    "<|file_sep|>",
    "<|fim_prefix|>",
    "<|im_end|>",
];

/// The cursor's line split at the cursor: (line index, before, after).
fn cursor_line(rope: &Rope, cursor: usize) -> (usize, String, String) {
    let line_index = rope.char_to_line(cursor);
    let start = rope.line_to_char(line_index);
    let end = line_content_end_char(rope, line_index).max(cursor);
    (
        line_index,
        rope.slice(start..cursor).to_string(),
        rope.slice(cursor..end).to_string(),
    )
}

fn auto_multiline(syntax: &SyntaxAtCursor, line_prefix: &str, rest_of_line: &str) -> bool {
    if syntax.in_comment_or_string {
        return false;
    }
    let rest_is_closers = rest_of_line
        .chars()
        .all(|c| c.is_whitespace() || ")]};,".contains(c));
    if !rest_is_closers {
        return false;
    }
    let before = line_prefix.trim_end();
    before.is_empty()
        || before.ends_with(['{', '(', '['])
        || before.ends_with("=>")
        || (syntax.indent_based && before.ends_with(':'))
}

fn prompt_key(settings: &Settings, ctx: &CursorContext, multiline: bool) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        &settings.backend_url,
        &settings.model,
        &settings.fim_template,
        settings.max_tokens,
        settings.context_mode,
        settings.prompt_family,
    )
        .hash(&mut hasher);
    (&ctx.prefix, &ctx.suffix, multiline, settings.max_lines).hash(&mut hasher);
    hasher.finish()
}

fn instant_of(ns: u64) -> Instant {
    let now = now_ns();
    Instant::now() - Duration::from_nanos(now.saturating_sub(ns))
}

/// Resolves once a newer request for the same document has arrived (or it was closed).
async fn until_superseded(requests: Option<watch::Receiver<u64>>, generation: u64) {
    let Some(mut requests) = requests else {
        return std::future::pending().await;
    };
    loop {
        if *requests.borrow_and_update() != generation {
            return;
        }
        if requests.changed().await.is_err() {
            return;
        }
    }
}

struct Generated {
    raw: String,
    before_backend_ns: u64,
    last_token_ns: u64,
    /// The prompt's budget tier (see `pacing`), and what the backend reported it cost.
    tier: usize,
    multiline: bool,
    usage: Option<Usage>,
    model: ModelInfo,
}

enum Outcome {
    Generated(Generated),
    Failed(BackendError),
    Superseded,
}

pub async fn suggest(
    session: &Arc<Session>,
    client: &Client,
    uri: &Uri,
    position: Position,
    ticket: Ticket,
) -> Option<Suggestion> {
    let arrived_ns = if ticket.arrived_ns == 0 {
        now_ns()
    } else {
        ticket.arrived_ns
    };
    let record = |source, before_backend_ns, after_last_token_ns| {
        session.timings.record(RequestTiming {
            source,
            before_backend_ns,
            after_last_token_ns,
            total_ns: now_ns().saturating_sub(arrived_ns),
        });
    };
    let settings = session.settings();
    if session.is_excluded(uri) {
        // A secret file (`.env`, a key, ...): nothing of it may go into a prompt.
        tracing::debug!("no suggestions in {uri}: excluded");
        return None;
    }
    let document = session.snapshot_parsed(uri)?;
    if !settings.language_enabled(&document.language_id) {
        return None;
    }
    let rope = document.rope.clone();
    let cursor = position_to_char(&rope, position, session.encoding());
    if crate::privacy::cursor_in_secret(&rope, cursor) {
        // Inside a key or password: whatever a prompt held, a suggestion would guess at it.
        tracing::debug!("no suggestions in {uri}: the cursor is inside a secret");
        return None;
    }
    let (line_index, line_prefix, rest_of_line) = cursor_line(&rope, cursor);
    let make = |text: String, replaced_chars: usize, line_prefix: String| Suggestion {
        rope: rope.clone(),
        text,
        cursor_char: cursor,
        replace_end_char: cursor + replaced_chars,
        line_prefix,
    };

    // The user is typing what the suggestion on screen says: answer from memory.
    let typed = session
        .lock_memory()
        .typed_through(uri, line_index, &line_prefix, &rest_of_line);
    if let Some(typed) = typed {
        record("typing", 0, 0);
        return Some(make(typed.text, typed.replaced_chars, line_prefix));
    }

    // The parse can only veto a multi-line suggestion (inside a comment or string), so it
    // is skipped whenever the line alone already says single-line.
    let indent_based = syntax::is_indent_based(&document.language_id);
    let plain = SyntaxAtCursor {
        in_comment_or_string: false,
        indent_based,
    };
    let multiline = match settings.multiline {
        MultilineMode::Always => true,
        MultilineMode::Never => false,
        MultilineMode::Auto => {
            auto_multiline(&plain, &line_prefix, &rest_of_line)
                && auto_multiline(
                    &syntax_at_cursor_in(
                        &document.language_id,
                        &rope,
                        cursor,
                        document.tree.as_ref(),
                    ),
                    &line_prefix,
                    &rest_of_line,
                )
        }
    };
    let ctx = cursor_context(&rope, cursor, settings.context_tokens);
    let key = prompt_key(&settings, &ctx, multiline);
    let recent = session.lock_memory().recent(key);
    let remember = |result: &RecentResult| {
        session.lock_memory().remember_shown(
            uri,
            ShownSuggestion {
                line_index,
                line_before_anchor: line_prefix.clone(),
                rest_of_line: rest_of_line.clone(),
                text: result.text.clone(),
                replaced_chars: result.replaced_chars,
            },
        );
    };
    if let Some(recent) = recent {
        record("recent", 0, 0);
        let recent = recent?;
        remember(&recent);
        return Some(make(
            recent.text,
            recent.replaced_chars,
            line_prefix.clone(),
        ));
    }
    if session.backend.health.is_backing_off() {
        if let Some(error) = session.backend.health.take_unreported() {
            report_failure(session, client, &settings, &error).await;
        }
        return None;
    }

    let requests = session.watch_requests(uri);
    if settings.debounce_ms > 0 {
        tokio::time::sleep(Duration::from_millis(settings.debounce_ms)).await;
        if requests
            .as_ref()
            .is_some_and(|r| *r.borrow() != ticket.generation)
        {
            return None;
        }
    }

    let deadline = instant_of(arrived_ns) + Duration::from_millis(settings.timeout_ms);
    let stop = StopConfig {
        multiline,
        max_lines: settings.max_lines,
        indent_based,
        line_prefix: line_prefix.clone(),
        next_line: ctx.next_line.clone(),
    };
    // `timeoutMs` bounds the wait for the suggestion to start; once text is streaming it may
    // finish (within as long again), so a suggestion that is coming is not thrown away.
    let streaming = std::sync::atomic::AtomicBool::new(false);
    let generation = generate(
        session,
        &settings,
        PromptSource {
            uri,
            document: &document,
            cursor,
        },
        stop,
        arrived_ns,
        &streaming,
    );
    tokio::pin!(generation);
    let superseded = until_superseded(requests, ticket.generation);
    tokio::pin!(superseded);
    let mut deadline = deadline;
    let mut extended = false;
    let outcome = loop {
        tokio::select! {
            biased;
            () = &mut superseded => break Outcome::Superseded,
            () = tokio::time::sleep_until(deadline.into()) => {
                if extended || !streaming.load(std::sync::atomic::Ordering::Relaxed) {
                    break Outcome::Failed(BackendError::Timeout);
                }
                extended = true;
                deadline += Duration::from_millis(settings.timeout_ms);
            }
            outcome = &mut generation => break outcome,
        }
    };

    let generated = match outcome {
        Outcome::Superseded => {
            session.pacing.abandoned(uri.0.as_str());
            return None;
        }
        Outcome::Failed(error) => {
            session.pacing.abandoned(uri.0.as_str());
            report_failure(session, client, &settings, &error).await;
            return None;
        }
        Outcome::Generated(generated) => generated,
    };
    session.pacing.ended(
        uri.0.as_str(),
        generated.tier,
        true,
        generated.usage.as_ref(),
    );
    warm_next_tier(
        session,
        &settings,
        &generated,
        WarmTarget {
            uri: uri.clone(),
            document: document.clone(),
            cursor,
            line_index,
            generation: ticket.generation,
        },
    );
    if session.backend.health.record_success() == HealthChange::Recovered {
        tracing::info!("backend at {} answers again", settings.backend_url);
        client
            .log_message(
                MessageType::Info,
                format!(
                    "ghostline: the backend at {} answers again",
                    settings.backend_url
                ),
            )
            .await;
    }
    // Code stays out of logs unless asked for at trace level.
    tracing::trace!("raw suggestion {:?}", generated.raw);
    let following = context::following_lines(&rope, line_index, 4);
    let finished = postprocess::finish(
        &generated.raw,
        &PostContext {
            line_prefix: &line_prefix,
            rest_of_line: &rest_of_line,
            indent_unit: ctx.indent_unit,
            following: &following,
        },
    )
    .map(|f| RecentResult {
        text: f.text,
        replaced_chars: f.replaced_chars,
    });
    session.lock_memory().remember_recent(key, finished.clone());
    let after_last_token_ns = now_ns().saturating_sub(generated.last_token_ns);
    record("backend", generated.before_backend_ns, after_last_token_ns);
    let finished = finished?;
    remember(&finished);
    Some(make(
        finished.text,
        finished.replaced_chars,
        line_prefix.clone(),
    ))
}

/// The document a prompt is built for.
struct PromptSource<'a> {
    uri: &'a Uri,
    document: &'a Document,
    cursor: usize,
}

/// A prompt, and the part of it that stays the same while the user types on the cursor's line.
struct Prompt {
    rendered: Rendered,
    format: Format,
    /// The raw prompt without the cursor's line before the cursor, which comes last (a prefix
    /// of `rendered.prompt`); `None` where the backend applies the template.
    stable: Option<String>,
    /// First line of the current file's window.
    window_start: usize,
    /// Tokens of the cursor line's prefix, of the suffix, and whether the cap cut the suffix.
    line_tokens: usize,
    suffix_tokens: usize,
    suffix_capped: bool,
}

impl Prompt {
    /// What pacing is told about a request carrying this prompt.
    fn sent(&self, uri: &str, tier: usize, cursor_line: usize, stable: &str) -> Sent {
        Sent {
            uri: uri.to_string(),
            tier,
            cursor_line,
            window_start: self.window_start,
            stable_tokens: count_tokens_cached(stable),
            line_tokens: self.line_tokens,
            suffix_tokens: self.suffix_tokens,
            suffix_capped: self.suffix_capped,
            line_last: self.stable.is_some(),
        }
    }
}

/// The prompt for `source` within `context_tokens`: context from the sources
/// `settings.context_mode` allows, in the format of the model's family.
fn build_prompt(
    session: &Session,
    settings: &Settings,
    model: &ModelInfo,
    source: &PromptSource<'_>,
    context_tokens: usize,
) -> Prompt {
    // `currentFile` keeps the plain FIM prompt of before unless a family was asked for.
    let family = match (settings.context_mode, settings.prompt_family) {
        (ContextMode::CurrentFile, PromptFamily::Auto) => PromptFamily::Fim,
        (_, family) => family,
    };
    let format = template::resolve(
        family,
        settings.fim_template.as_deref(),
        model.family.as_deref(),
        Some(model.id.as_str()),
        model.fim_template.as_deref(),
        &model.markers,
    );
    let path = uri_to_path(source.uri);
    let relative = match &path {
        Some(path) => session.index.relative(path),
        None => source
            .uri
            .0
            .rsplit('/')
            .next()
            .unwrap_or("untitled")
            .to_string(),
    };
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
        memo: Some(&session.snippet_memo),
    };
    let current = CurrentFile {
        path: path.as_deref(),
        relative: &relative,
        rope: &source.document.rope,
        cursor_char: source.cursor,
        lang: source.document.lang,
        tree: source.document.tree.as_ref(),
    };
    let budget = Budget::new(
        context_tokens,
        model.context_length,
        settings.max_tokens,
        settings.retrieved_share,
    );
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
    let repo_name = session.index.repo_name();
    let parts = Parts {
        repo_name: &repo_name,
        current_path: &relative,
        snippets: &built.snippets,
        prefix: &built.cursor.prefix,
        suffix: &built.cursor.suffix,
        comment: crate::syntax::line_comment(&source.document.language_id),
    };
    // With a backend that heals a prompt ending inside a word (ghostline-serve), the cursor's
    // line goes last, after the middle marker, as the start of the text the model writes: what
    // comes before it — other files, the window up to this line, the suffix — stays the same
    // while the user types on the line, so a keystroke costs the backend the characters typed,
    // not the line and the whole suffix again. Without healing the model, seeing a prompt end
    // in `retu`, starts a new word (` = …`) instead of finishing `return` (typing benchmark:
    // 4% of pauses exact, against 19% with the line in the prefix), so other backends get the
    // line at the end of the prefix, and no stable part. So does a cursor with text after it on
    // its line (more than closing brackets): the model, writing the line from its start, wrote
    // its own end of the line (`sum(n` → `umbers)  # sum of all of them` before
    // `)  # all of them`) where, asked for just the middle, it wrote `umbers`.
    let rest_is_closers = built
        .cursor
        .rest_of_line
        .chars()
        .all(|c| c.is_whitespace() || ")]}>;,:'\"`".contains(c));
    let (head, line) = built
        .cursor
        .prefix
        .split_at(built.cursor.prefix.rfind('\n').map_or(0, |at| at + 1));
    let healed = (model.token_healing && rest_is_closers).then(|| {
        template::render(
            &format,
            &Parts {
                prefix: head,
                ..parts
            },
        )
    });
    let (rendered, stable) = match healed {
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
        _ => (template::render(&format, &parts), None),
    };
    Prompt {
        rendered,
        format,
        stable,
        window_start: built.cursor.window_lines.0,
        line_tokens: context::count_tokens(&built.cursor.line_prefix),
        suffix_tokens: built.cursor.suffix_tokens,
        suffix_capped: built.cursor.suffix_capped,
    }
}

/// Where a warm-up prefills: the document and cursor of the request that was just answered.
struct WarmTarget {
    uri: Uri,
    document: Document,
    cursor: usize,
    line_index: usize,
    generation: u64,
}

/// After a suggestion, prefills the stable part of the next larger prompt (`pacing`) in the
/// background, so the following pauses in this region can afford it. Only for backends that
/// take `max_tokens: 0` (ghostline-serve, which reports its speed) and raw prompts. A newer
/// request for the document cancels it; the backend keeps what it computed.
fn warm_next_tier(
    session: &Arc<Session>,
    settings: &Arc<Settings>,
    generated: &Generated,
    target: WarmTarget,
) {
    if generated.model.speed.is_none() {
        return;
    }
    let max = settings.context_tokens;
    let Some(tier) = session.pacing.warm_up_tier(
        target.uri.0.as_str(),
        target.line_index,
        generated.tier,
        max,
        generated.multiline,
        settings.latency_target_ms,
    ) else {
        return;
    };
    spawn_warm_up(
        session,
        settings,
        generated.model.clone(),
        target,
        tier,
        None,
    );
}

/// The user moved the cursor to `position` (a code action request, which VS Code sends on
/// every cursor move, or any other sign of where they are) and has typed nothing there yet:
/// prefill the prompt a keystroke there would send (`pacing::warm_here_tier`), so the first
/// pause in a region is already a follow-up. A request for the document, or a newer hint,
/// ends it; the backend keeps what it computed.
pub fn warm_at_cursor(session: &Arc<Session>, uri: &Uri, position: Position) {
    let mut hint = 0;
    session.cursor_hints.send_modify(|n| {
        *n += 1;
        hint = *n;
    });
    let session = session.clone();
    let uri = uri.clone();
    tokio::spawn(async move {
        // A cursor moving line by line sends a hint per line: wait for it to rest.
        tokio::time::sleep(HINT_REST).await;
        if *session.cursor_hints.borrow() != hint
            || session.is_excluded(&uri)
            || session.backend.health.is_backing_off()
        {
            return;
        }
        let settings = session.settings();
        let Some(document) = session.snapshot_parsed(&uri) else {
            return;
        };
        if !settings.language_enabled(&document.language_id) {
            return;
        }
        let Ok(model) = session.backend.model(&settings).await else {
            return;
        };
        let Some((prefill, decode)) = model.speed else {
            return;
        };
        session.pacing.reported(prefill, decode);
        let cursor = position_to_char(&document.rope, position, session.encoding());
        if crate::privacy::cursor_in_secret(&document.rope, cursor) {
            return;
        }
        let line_index = document
            .rope
            .char_to_line(cursor.min(document.rope.len_chars()));
        let Some(tier) = session.pacing.warm_here_tier(
            uri.0.as_str(),
            line_index,
            settings.context_tokens,
            settings.latency_target_ms,
        ) else {
            return;
        };
        let generation = session.watch_requests(&uri).map_or(0, |r| *r.borrow());
        let target = WarmTarget {
            uri,
            document,
            cursor,
            line_index,
            generation,
        };
        spawn_warm_up(&session, &settings, model, target, tier, Some(hint));
    });
}

/// How long a cursor hint waits for the next one before its warm-up starts.
const HINT_REST: Duration = Duration::from_millis(100);

/// Prefills the stable part of `target`'s prompt at `tier` in the background, until a newer
/// request for the document (or, for a cursor hint, a newer hint) ends it.
fn spawn_warm_up(
    session: &Arc<Session>,
    settings: &Arc<Settings>,
    model: ModelInfo,
    target: WarmTarget,
    tier: usize,
    hint: Option<u64>,
) {
    let session = session.clone();
    let settings = settings.clone();
    let requests = session.watch_requests(&target.uri);
    let hints = hint.map(|hint| (session.cursor_hints.subscribe(), hint));
    tokio::spawn(async move {
        if requests
            .as_ref()
            .is_some_and(|r| *r.borrow() != target.generation)
        {
            return;
        }
        let source = PromptSource {
            uri: &target.uri,
            document: &target.document,
            cursor: target.cursor,
        };
        let prompt = build_prompt(&session, &settings, &model, &source, tier);
        let Some(stable) = prompt.stable.clone().filter(|s| !s.is_empty()) else {
            return;
        };
        let uri = target.uri.0.as_str();
        session
            .pacing
            .sent(prompt.sent(uri, tier, target.line_index, &stable));
        tracing::debug!(tier, hint = hints.is_some(), "warming a prompt tier");
        let newer_hint = async move {
            match hints {
                Some((hints, hint)) => until_superseded(Some(hints), hint).await,
                None => std::future::pending().await,
            }
        };
        let affinity = affinity::key(&session.roots(), uri);
        tokio::select! {
            biased;
            () = until_superseded(requests, target.generation) => session.pacing.ended(uri, tier, false, None),
            () = newer_hint => session.pacing.ended(uri, tier, false, None),
            result = session.backend.warm(&settings, &model.id, &stable, &affinity) => match result {
                Ok(usage) => session.pacing.ended(uri, tier, true, usage.as_ref()),
                Err(error) => {
                    tracing::debug!("warm-up failed: {error}");
                    session.backend.health.record_background_failure(&error);
                    session.pacing.ended(uri, tier, false, None);
                }
            },
        }
    });
}

async fn generate(
    session: &Session,
    settings: &Settings,
    source: PromptSource<'_>,
    stop: StopConfig,
    arrived_ns: u64,
    streaming: &std::sync::atomic::AtomicBool,
) -> Outcome {
    let model = match session.backend.model(settings).await {
        Ok(model) => model,
        Err(error) => return Outcome::Failed(error),
    };
    if let Some((prefill, decode)) = model.speed {
        session.pacing.reported(prefill, decode);
    }
    let uri = source.uri.0.as_str();
    let line_index = source
        .document
        .rope
        .char_to_line(source.cursor.min(source.document.rope.len_chars()));
    let tier = session.pacing.choose(
        uri,
        line_index,
        settings.context_tokens,
        stop.multiline,
        settings.latency_target_ms,
    );
    let prompt = build_prompt(session, settings, &model, &source, tier);
    let multiline = stop.multiline;
    let mut stops: Vec<String> = BACKEND_STOPS.iter().map(|s| s.to_string()).collect();
    stops.extend(
        template::stops(&prompt.format)
            .iter()
            .map(|s| s.to_string()),
    );
    if !stop.multiline {
        // A single-line suggestion ends at the line break (see `stop`); the backend stopping
        // there itself also ends the stream with its usage, which paces the next prompts.
        stops.push("\n".to_string());
    }
    session.pacing.sent(prompt.sent(
        uri,
        tier,
        line_index,
        prompt.stable.as_deref().unwrap_or(""),
    ));
    let request = CompletionRequest {
        model: model.id.clone(),
        prompt: prompt.rendered.prompt,
        suffix: prompt.rendered.suffix,
        max_tokens: settings.max_tokens,
        temperature: settings.temperature,
        top_p: 1.0,
        stop: stops,
        seed: 0,
        stream: true,
        stream_options: Some(serde_json::json!({"include_usage": true})),
        token_healing: (model.token_healing && prompt.stable.is_some()).then_some(true),
    };
    let before_backend_ns = now_ns().saturating_sub(arrived_ns);
    let affinity = affinity::key(&session.roots(), uri);
    let mut stream = match session.backend.stream(settings, &request, &affinity).await {
        Ok(stream) => stream,
        Err(error) => return Outcome::Failed(error),
    };
    let mut detector = StopDetector::new(stop);
    let mut last_token_ns = now_ns();
    loop {
        match stream.next_text().await {
            Ok(Some(delta)) => {
                streaming.store(true, std::sync::atomic::Ordering::Relaxed);
                last_token_ns = now_ns();
                tracing::trace!("delta {delta:?}");
                if detector.push(&delta) {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => return Outcome::Failed(error),
        }
    }
    // Our own work starts when the stream is done: after the last token when the stop
    // rules end it, after the final chunk and `[DONE]` when the backend does.
    last_token_ns = last_token_ns.max(now_ns());
    let usage = stream.usage().cloned();
    // Dropping the stream here closes the connection, which stops the backend decoding.
    drop(stream);
    Outcome::Generated(Generated {
        raw: detector.finish(),
        before_backend_ns,
        last_token_ns,
        tier,
        multiline,
        usage,
        model,
    })
}

async fn report_failure(
    session: &Session,
    client: &Client,
    settings: &Settings,
    error: &BackendError,
) {
    if session.backend.health.record_failure(error) != HealthChange::WentBad {
        tracing::debug!("backend still failing: {error}");
        return;
    }
    if matches!(error, BackendError::Died(_)) {
        // It may come back as a different model.
        session.backend.forget_model().await;
    }
    let hint = match error {
        BackendError::Unauthorized => {
            format!(
                " (the key is read from the environment variable {})",
                settings.api_key_env
            )
        }
        _ => String::new(),
    };
    let message = format!(
        "ghostline: {error}{hint} at {}; suggestions pause and resume by themselves when it answers",
        settings.backend_url
    );
    tracing::warn!("{message}");
    client.show_message(MessageType::Warning, message).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_only_where_a_block_can_start() {
        let code = SyntaxAtCursor::default();
        assert!(auto_multiline(&code, "    ", ""));
        assert!(auto_multiline(&code, "fn main() {", ""));
        assert!(auto_multiline(&code, "foo(", ")"));
        assert!(!auto_multiline(&code, "let x = ", ""));
        assert!(!auto_multiline(&code, "    ", "x + 1"));
        let comment = SyntaxAtCursor {
            in_comment_or_string: true,
            indent_based: false,
        };
        assert!(!auto_multiline(&comment, "    ", ""));
    }
}
