//! The audit trail (`--audit-log FILE`, or `-` for stderr): one JSON line per API request when
//! its answer has ended (a stream when its last chunk went out or its client left):
//!
//! ```json
//! {"time":"2026-11-30T23:59:01.123Z","owner":"alice","method":"POST","path":"/v1/completions","status":200,
//!  "prompt_tokens":412,"cached_tokens":400,"completion_tokens":9,"finish_reason":"stop",
//!  "queue_ms":0.1,"prefill_ms":31.0,"decode_ms":80.2,"duration_ms":112.9}
//! ```
//!
//! Counts and timings only: never a prompt, a completion, a key or a query string. The same end
//! of each answer also feeds the per-owner counters of `/metrics`.

use std::{
    io::Write,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError},
        Arc, Mutex,
    },
    task::{Context, Poll},
    thread::JoinHandle,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};
use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use serde_json::json;

use super::AppState;
use crate::queue::Usage;

/// Lines waiting for the writer thread at most. A disk that cannot keep up for that long
/// costs lines (counted in `ghostline_audit_lines_dropped_total`), never a runtime thread.
const QUEUE_LINES: usize = 4096;

/// The audit trail's writer: request ends queue their line (never waiting: a runtime thread
/// must not sit on a slow disk), one thread of its own writes them in order.
pub struct AuditLog {
    /// `None` once closed.
    queue: Mutex<Option<SyncSender<Message>>>,
    /// SIGHUP asked for the file to be opened again by its name; the writer does so before
    /// its next line.
    reopen: Arc<AtomicBool>,
    /// Set by `close`: a writer held by the `audit-stall` test fault goes on.
    closing: Arc<AtomicBool>,
    writer: Mutex<Option<JoinHandle<()>>>,
    dropped: AtomicU64,
}

enum Message {
    Line(String),
    /// Look at the reopen flag now (the queue was empty, so no line would make it look).
    Wake,
}

/// A line the queue had no room for (or that came after `close`).
#[derive(Debug)]
pub struct Dropped;

fn open_sink(target: &str) -> Result<Box<dyn Write + Send>> {
    Ok(if target == "-" {
        Box::new(std::io::stderr())
    } else {
        Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(target)
                .with_context(|| format!("cannot open the audit log {target}"))?,
        )
    })
}

impl AuditLog {
    /// `-` is stderr; anything else a file, appended to (created when missing).
    pub fn open(target: &str) -> Result<Self> {
        Self::start(target.to_string(), open_sink(target)?, QUEUE_LINES)
    }

    /// A writer thread for `sink` (opened from `target`, which SIGHUP opens again), with room
    /// for `capacity` lines.
    fn start(target: String, sink: Box<dyn Write + Send>, capacity: usize) -> Result<Self> {
        let (queue, lines) = std::sync::mpsc::sync_channel(capacity);
        let reopen = Arc::new(AtomicBool::new(false));
        let closing = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            target,
            sink: std::io::BufWriter::new(sink),
            reopen: reopen.clone(),
        };
        let stall = closing.clone();
        let writer = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                if crate::fault::take("audit-stall") {
                    while !stall.load(Ordering::SeqCst) {
                        std::thread::park();
                    }
                }
                writer.run(lines);
            })
            .context("cannot start the audit log's writer thread")?;
        Ok(Self {
            queue: Mutex::new(Some(queue)),
            reopen,
            closing,
            writer: Mutex::new(Some(writer)),
            dropped: AtomicU64::new(0),
        })
    }

    /// Opens the file again by its name (SIGHUP), so that rotation by rename (logrotate's
    /// default) goes on in a new file; the lines queued before go to the old one. On an error
    /// the old file stays in use.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::SeqCst);
        if let Some(queue) = &*self.queue.lock().unwrap_or_else(|e| e.into_inner()) {
            // Full: the writer has lines to write and looks at the flag before the next.
            let _ = queue.try_send(Message::Wake);
        }
    }

    /// Queues one line, or drops it (with a warning, now and then) when the writer is that far
    /// behind: never waits.
    fn write(&self, line: &serde_json::Value) -> Result<(), Dropped> {
        let mut text = line.to_string();
        text.push('\n');
        let sent = match &*self.queue.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(queue) => queue.try_send(Message::Line(text)),
            None => Err(TrySendError::Disconnected(Message::Wake)),
        };
        if sent.is_ok() {
            return Ok(());
        }
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // 1, 2, 4, 8...: a burst says so without a warning per line.
        if dropped.is_power_of_two() {
            tracing::warn!(
                "audit log: {dropped} line(s) dropped so far, the writer is {} (see ghostline_audit_lines_dropped_total)",
                if matches!(sent, Err(TrySendError::Full(_))) { "behind" } else { "closed" }
            );
        }
        Err(Dropped)
    }

    /// Writes every line queued so far and stops the writer (a normal exit: no line is lost).
    /// Lines after this are dropped. Blocks until the writer is done.
    pub fn close(&self) {
        drop(self.queue.lock().unwrap_or_else(|e| e.into_inner()).take());
        self.closing.store(true, Ordering::SeqCst);
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            writer.thread().unpark();
            if writer.join().is_err() {
                tracing::error!("the audit log's writer thread panicked");
            }
        }
    }
}

/// The writer thread's side: the file and what reopening it needs.
struct Writer {
    target: String,
    sink: std::io::BufWriter<Box<dyn Write + Send>>,
    reopen: Arc<AtomicBool>,
}

impl Writer {
    /// Writes lines in order until the queue closes; flushes whenever it is empty, so a line
    /// reaches the file as soon as the writer is idle and a burst goes out in few writes.
    fn run(mut self, lines: Receiver<Message>) {
        while let Ok(first) = lines.recv() {
            let mut next = Some(first);
            while let Some(message) = next {
                self.handle(message);
                next = lines.try_recv().ok();
            }
            self.flush();
        }
        self.flush();
    }

    fn handle(&mut self, message: Message) {
        if self.reopen.swap(false, Ordering::SeqCst) && self.target != "-" {
            self.flush();
            match open_sink(&self.target) {
                Ok(sink) => {
                    self.sink = std::io::BufWriter::new(sink);
                    tracing::info!("audit log reopened");
                }
                Err(e) => tracing::error!("{e:#}; still writing to the file open before"),
            }
        }
        if let Message::Line(text) = message {
            if let Err(e) = self.sink.write_all(text.as_bytes()) {
                tracing::warn!("cannot write the audit log: {e}");
            }
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.sink.flush() {
            tracing::warn!("cannot write the audit log: {e}");
        }
    }
}

/// What the layers below learn about a request, for its audit line: the owner (auth), the
/// limit that refused it, the usage (completions).
#[derive(Default)]
pub struct AuditRecord {
    pub owner: Option<Arc<str>>,
    pub limited: Option<&'static str>,
    pub usage: Option<Usage>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Clone, Default)]
pub struct AuditSlot(pub Arc<Mutex<AuditRecord>>);

impl AuditSlot {
    pub fn update(&self, f: impl FnOnce(&mut AuditRecord)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// The method as the audit line names it: one of HTTP's own, or `other` (a client chooses the
/// method's text, and a 200,000-character one made as long a line).
fn known_method(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ]
    .into_iter()
    .find(|(known, _)| known == method)
    .map_or("other", |(_, name)| name)
}

/// Probes are not requests of anyone's.
fn is_probe(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
}

pub async fn audit(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if is_probe(&path) {
        return next.run(request).await;
    }
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = known_method(request.method());
    let request_id = request
        .extensions()
        .get::<super::request_id::RequestId>()
        .map(|id| id.0.clone());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    // Only route paths the server knows go in the line; anything else is "other".
    let path = match path.as_str() {
        "/v1/completions" | "/v1/models" | "/infill" | "/v1/ghostline/suggestion-stats" => path,
        _ => "other".to_string(),
    };
    let ender = AnswerEnd {
        state,
        slot,
        request_id,
        method,
        path,
        status,
        started,
        wall: SystemTime::now(),
    };
    hold_until_body_ends(response, ender)
}

struct AnswerEnd {
    state: Arc<AppState>,
    slot: AuditSlot,
    /// The request's `X-Request-ID` (`request_id.rs`), to find it in the server's log.
    request_id: Option<String>,
    method: &'static str,
    path: String,
    status: u16,
    started: Instant,
    wall: SystemTime,
}

impl Drop for AnswerEnd {
    fn drop(&mut self) {
        let record = std::mem::take(&mut *self.slot.0.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(owner) = &record.owner {
            self.state.owner_metrics.count_request(owner, self.status);
            if let Some(usage) = &record.usage {
                self.state.owner_metrics.count_usage(owner, usage);
            }
        }
        let Some(log) = &self.state.audit else {
            return;
        };
        let round = |ms: f64| (ms * 10.0).round() / 10.0;
        let usage = record.usage.unwrap_or_default();
        let has_usage = record.usage.is_some();
        let line = json!({
            "time": rfc3339(self.wall),
            "owner": record.owner.as_deref(),
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "limited": record.limited,
            "prompt_tokens": has_usage.then_some(usage.prompt_tokens),
            "cached_tokens": has_usage.then_some(usage.cached_tokens),
            "completion_tokens": has_usage.then_some(usage.completion_tokens),
            "finish_reason": record.finish_reason,
            "queue_ms": has_usage.then(|| round(usage.queue_ms)),
            "prefill_ms": has_usage.then(|| round(usage.prefill_ms)),
            "decode_ms": has_usage.then(|| round(usage.decode_ms)),
            "duration_ms": round(self.started.elapsed().as_secs_f64() * 1e3),
            "request_id": self.request_id,
        });
        if log.write(&line).is_err() {
            self.state
                .metrics
                .audit_lines_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `2026-11-30T23:59:01.123Z` (UTC), without a date crate.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The response with `guard` kept alive until its body has been sent or abandoned (a stream's
/// last chunk, or its client leaving), then dropped.
pub fn hold_until_body_ends<T: Send + Sync + Unpin + 'static>(
    response: Response,
    guard: T,
) -> Response {
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(Guarded {
            inner: body,
            _guard: guard,
        }),
    )
}

struct Guarded<T> {
    inner: Body,
    _guard: T,
}

impl<T: Unpin> http_body::Body for Guarded<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::{rfc3339, AuditLog};
    use serde_json::json;
    use std::{
        io::Write,
        sync::{mpsc, Arc, Mutex},
        time::{Duration, UNIX_EPOCH},
    };

    /// A sink that holds its first write until the test lets it go (a disk that stalls), and
    /// keeps what it was given.
    struct StallingSink {
        written: Arc<Mutex<Vec<u8>>>,
        entered: Option<mpsc::Sender<()>>,
        release: Option<mpsc::Receiver<()>>,
    }

    impl Write for StallingSink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let (Some(entered), Some(release)) = (self.entered.take(), self.release.take()) {
                let _ = entered.send(());
                let _ = release.recv();
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A writer stuck on its disk costs the lines past the queue's room, each refused at once
    /// (the caller counts it); `close` then writes every line that was queued, in order.
    #[test]
    fn a_stalled_writer_drops_what_does_not_fit_and_close_writes_the_rest() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let (entered, writer_entered) = mpsc::channel();
        let (release_writer, release) = mpsc::channel();
        let sink = StallingSink {
            written: written.clone(),
            entered: Some(entered),
            release: Some(release),
        };
        let log = AuditLog::start("-".into(), Box::new(sink), 3).unwrap();
        // The first line goes straight to the writer, which then stalls inside its write.
        log.write(&json!({"n": 0})).unwrap();
        writer_entered.recv().unwrap();
        let results: Vec<bool> = (1..=5)
            .map(|n| log.write(&json!({ "n": n })).is_ok())
            .collect();
        assert_eq!(results, [true, true, true, false, false]);
        release_writer.send(()).unwrap();
        log.close();
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
        assert!(log.write(&json!({"n": 6})).is_err(), "a line after close");
    }

    #[test]
    fn formats_utc_times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_709_251_199_250)),
            "2024-02-29T23:59:59.250Z"
        );
    }
}
