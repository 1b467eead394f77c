//! A fuzzer over the real binary's stdio: a seeded random stream of damaged frames, wrong
//! types, huge values and random valid traffic, against a backend that answers garbage.
//!
//! Checked throughout: the process never exits until told (and then exits 0); every request
//! with an id is answered exactly once, with an answer of the expected kind; after each
//! damaged frame exactly one parse error (id null) comes and the next request is answered;
//! and the server's copy of each document equals an independent oracle's.
//!
//! `GHOSTLINE_FUZZ_MESSAGES` sets the length (default 20,000, which `cargo test` runs);
//! `GHOSTLINE_FUZZ_SEED` the seed. The long run:
//! `GHOSTLINE_FUZZ_MESSAGES=1000000 cargo test --release -p ghostline-lsp --test fuzz_stdio -- --nocapture`

mod common;
#[path = "fuzz/oracle.rs"]
mod oracle;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oracle::{Oracle, Rng, Unit};
use serde_json::{json, Value};

/// How long any one answer may take before the server counts as hung.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
/// Requests in flight before the fuzzer waits for answers (a real editor has a few).
const MAX_IN_FLIGHT: usize = 48;

/// Stand-ins in generated text for what `serde_json` cannot write: a lone high surrogate
/// escape (`\ud800`) and a byte that is not UTF-8 (0xFF). The server reads both as U+FFFD.
const LONE_SURROGATE: char = '\u{E000}';
const NOT_UTF8: char = '\u{E001}';

const PIECES: &[&str] = &[
    "a",
    "xyz",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "é",
    "😀",
    "中文",
    "👩‍💻",
    "𝄞x",
    "fn f() {",
    "}",
    "\r\n\r\n",
    "ß",
    "",
    "\0",
    "def g(x):\n    return x\n",
    "let v = vec![1, 2];",
    "\u{FEFF}",
    "\u{2028}",
    "\"quoted\\\"",
    "\u{E000}",
    "\u{E001}",
];

const LANGUAGES: &[&str] = &["rust", "python", "plaintext", "typescript", "go", "c", "??"];

/// What a request's answer must be.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// A result (any value).
    Result,
    /// A result, or "cancelled" (-32800) when the fuzzer may have cancelled it.
    ResultOrCancelled,
    /// This error code.
    Error(i64),
    /// The documentText of this document, checked against the oracle.
    Text(usize),
}

struct InFlight {
    expect: Expect,
    kind: &'static str,
}

#[derive(Default)]
struct Stats {
    sent: BTreeMap<&'static str, u64>,
    requests: u64,
    answers: u64,
    notifications_from_server: u64,
    damaged_frames: u64,
    parse_errors: u64,
    probes_answered: u64,
    oracle_checks: u64,
    injected_panics_answered: u64,
    cancelled: u64,
    bytes_sent: u64,
}

struct Fuzzer {
    rng: Rng,
    child: Child,
    stdin: BufWriter<ChildStdin>,
    incoming: Receiver<Value>,
    in_flight: HashMap<String, InFlight>,
    /// Parse errors (id null) received and not yet matched to a damaged frame.
    null_errors: Vec<Value>,
    docs: Vec<Doc>,
    next_id: u64,
    stats: Stats,
    backend: Arc<GarbageStats>,
    seed: u64,
    started: Instant,
    crashed: bool,
}

struct Doc {
    uri: String,
    /// `None` while closed.
    oracle: Option<Oracle>,
    version: i64,
}

fn id_key(id: &Value) -> String {
    id.to_string()
}

/// JSON bytes of `value` with the stand-in characters turned into what they stand for.
fn encode(value: &Value) -> Vec<u8> {
    let bytes = serde_json::to_vec(value).unwrap();
    let lone = LONE_SURROGATE.to_string();
    let bad = NOT_UTF8.to_string();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(lone.as_bytes()) {
            out.extend_from_slice(b"\\ud800");
            i += lone.len();
        } else if bytes[i..].starts_with(bad.as_bytes()) {
            out.push(0xFF);
            i += bad.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// What the server makes of generated text: both stand-ins become U+FFFD.
fn as_server_reads(text: &str) -> String {
    text.replace([LONE_SURROGATE, NOT_UTF8], "\u{FFFD}")
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

impl Fuzzer {
    fn count(&mut self, kind: &'static str) {
        *self.stats.sent.entry(kind).or_default() += 1;
    }

    fn write(&mut self, bytes: &[u8]) {
        self.stats.bytes_sent += bytes.len() as u64;
        if let Err(error) = self.stdin.write_all(bytes) {
            self.fail(&format!("writing to the server failed: {error}"));
        }
    }

    fn flush(&mut self) {
        if let Err(error) = self.stdin.flush() {
            self.fail(&format!("writing to the server failed: {error}"));
        }
    }

    fn send_value(&mut self, value: &Value) {
        let frame = framed(&encode(value));
        self.write(&frame);
    }

    fn notify(&mut self, kind: &'static str, method: &str, params: Value) {
        self.count(kind);
        self.send_value(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn fresh_id(&mut self) -> Value {
        self.next_id += 1;
        if self.next_id.is_multiple_of(3) {
            json!(format!("s{}", self.next_id))
        } else {
            json!(self.next_id)
        }
    }

    fn request(
        &mut self,
        kind: &'static str,
        method: &str,
        params: Value,
        expect: Expect,
    ) -> Value {
        let id = self.fresh_id();
        self.count(kind);
        self.stats.requests += 1;
        self.in_flight
            .insert(id_key(&id), InFlight { expect, kind });
        self.send_value(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    fn summary(&self) -> String {
        let mut out = String::new();
        let b = &self.backend;
        out += &format!(
            "\n==== ghostline-lsp stdio fuzz: seed {:#x}, {:.1} s ====\n",
            self.seed,
            self.started.elapsed().as_secs_f64()
        );
        out += &format!("{:<34} {:>10}\n", "messages sent, by kind", "count");
        let mut total = 0;
        for (kind, n) in &self.stats.sent {
            out += &format!("  {kind:<32} {n:>10}\n");
            total += n;
        }
        let rows = [
            ("messages sent (total)", total),
            ("bytes sent", self.stats.bytes_sent),
            ("requests with an id", self.stats.requests),
            ("answers received", self.stats.answers),
            ("  of which cancelled (-32800)", self.stats.cancelled),
            (
                "  injected panics answered (-32603)",
                self.stats.injected_panics_answered,
            ),
            ("unanswered at the end", self.in_flight.len() as u64),
            ("server notifications", self.stats.notifications_from_server),
            ("damaged frames", self.stats.damaged_frames),
            ("parse errors (id null) received", self.stats.parse_errors),
            ("probes answered after damage", self.stats.probes_answered),
            (
                "document checks against the oracle",
                self.stats.oracle_checks,
            ),
            ("backend connections", b.connections.load(Ordering::Relaxed)),
            (
                "backend answers (all garbage-prone)",
                b.garbage.load(Ordering::Relaxed),
            ),
            ("crashes (exits before exit)", u64::from(self.crashed)),
        ];
        for (name, n) in rows {
            out += &format!("{name:<34} {n:>10}\n");
        }
        for (kind, name) in BACKEND_KINDS.iter().enumerate() {
            let n = b.by_kind[kind].load(Ordering::Relaxed);
            out += &format!("  backend: {name:<24} {n:>10}\n");
        }
        out
    }

    fn fail(&self, message: &str) -> ! {
        eprintln!("{}", self.summary());
        panic!("{message} (seed {:#x})", self.seed);
    }

    fn check_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            self.crashed = true;
            self.fail(&format!("ghostline-lsp exited on its own: {status}"));
        }
    }

    fn handle(&mut self, message: Value) {
        if message.get("method").is_some() {
            self.stats.notifications_from_server += 1;
            if let Some(id) = message.get("id") {
                // A request from the server: answer it as an editor would.
                let answer = json!({"jsonrpc": "2.0", "id": id, "result": null});
                self.send_value(&answer);
            }
            return;
        }
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        if id.is_null() {
            if message["error"]["code"] != json!(-32700)
                && message["error"]["code"] != json!(-32600)
            {
                self.fail(&format!(
                    "an answer with id null that is no parse error: {message}"
                ));
            }
            self.stats.parse_errors += 1;
            self.null_errors.push(message);
            return;
        }
        let Some(flight) = self.in_flight.remove(&id_key(&id)) else {
            self.fail(&format!(
                "an answer to no request in flight (a second answer?): {message}"
            ));
        };
        self.stats.answers += 1;
        let error = message.get("error");
        let code = error.map(|e| e["code"].as_i64().unwrap_or(0));
        let ok = match flight.expect {
            Expect::Result => error.is_none(),
            Expect::ResultOrCancelled => {
                if code == Some(-32800) {
                    self.stats.cancelled += 1;
                }
                error.is_none() || code == Some(-32800)
            }
            Expect::Error(expected) => {
                if expected == -32603 && code == Some(-32603) {
                    self.stats.injected_panics_answered += 1;
                }
                code == Some(expected)
            }
            Expect::Text(doc) => {
                let expected = match &self.docs[doc].oracle {
                    Some(oracle) => json!(oracle.text),
                    None => Value::Null,
                };
                if message.get("result") != Some(&expected) {
                    self.fail(&format!(
                        "{} differs from the oracle:\nserver: {:?}\noracle: {:?}",
                        self.docs[doc].uri,
                        message.get("result"),
                        expected
                    ));
                }
                self.stats.oracle_checks += 1;
                true
            }
        };
        if !ok {
            self.fail(&format!(
                "{} expected {:?}, got {message}",
                flight.kind, flight.expect
            ));
        }
    }

    /// Handles whatever has arrived, waiting at most `wait` for the first message.
    fn pump(&mut self, wait: Duration) -> bool {
        match self.incoming.recv_timeout(wait) {
            Ok(message) => {
                self.handle(message);
                while let Ok(message) = self.incoming.try_recv() {
                    self.handle(message);
                }
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().unwrap();
                self.crashed = true;
                self.fail(&format!("ghostline-lsp closed its stdout: {status}"));
            }
        }
    }

    /// Waits until `id` is answered.
    fn wait_for(&mut self, id: &Value) {
        self.flush();
        let key = id_key(id);
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        while self.in_flight.contains_key(&key) {
            if Instant::now() > deadline {
                self.check_alive();
                self.fail(&format!("no answer to {id} within {ANSWER_TIMEOUT:?}"));
            }
            self.pump(Duration::from_millis(200));
        }
    }

    fn throttle(&mut self) {
        if self.in_flight.len() < MAX_IN_FLIGHT {
            while let Ok(message) = self.incoming.try_recv() {
                self.handle(message);
            }
            return;
        }
        self.flush();
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        while self.in_flight.len() >= MAX_IN_FLIGHT / 2 {
            if Instant::now() > deadline {
                self.check_alive();
                let kinds: Vec<_> = self.in_flight.values().map(|f| f.kind).collect();
                self.fail(&format!(
                    "no answers for {ANSWER_TIMEOUT:?}; in flight: {kinds:?}"
                ));
            }
            self.pump(Duration::from_millis(200));
        }
    }

    // ---- generators ----

    fn random_text(&mut self, pieces: usize) -> String {
        let mut text = String::new();
        for _ in 0..self.rng.below(pieces + 1) {
            let piece = *self.rng.pick(PIECES);
            text.push_str(piece);
        }
        text
    }

    fn big_text(&mut self) -> String {
        match self.rng.below(3) {
            // One very long line.
            0 => "x".repeat(50_000 + self.rng.below(200_000)),
            // A multi-MB document of ordinary lines.
            1 => "fn f(x: u32) -> u32 { x + 1 } // é😀\n".repeat(40_000 + self.rng.below(40_000)),
            _ => {
                let mut text = String::new();
                for _ in 0..2000 {
                    let piece = self.random_text(6);
                    text.push_str(&piece);
                }
                text
            }
        }
    }

    fn closed_doc(&mut self) -> Option<usize> {
        let closed: Vec<usize> = (0..self.docs.len())
            .filter(|&i| self.docs[i].oracle.is_none())
            .collect();
        (!closed.is_empty()).then(|| closed[self.rng.below(closed.len())])
    }

    fn open_doc(&mut self) -> Option<usize> {
        let open: Vec<usize> = (0..self.docs.len())
            .filter(|&i| self.docs[i].oracle.is_some())
            .collect();
        (!open.is_empty()).then(|| open[self.rng.below(open.len())])
    }

    fn did_open(&mut self, doc: usize, big: bool) {
        let text = if big {
            self.big_text()
        } else {
            self.random_text(20)
        };
        let language = *self.rng.pick(LANGUAGES);
        let uri = self.docs[doc].uri.clone();
        self.docs[doc].version = 1;
        self.docs[doc].oracle = Some(Oracle {
            text: as_server_reads(&text),
        });
        self.notify(
            if big { "didOpen (big)" } else { "didOpen" },
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}}),
        );
    }

    /// A random edit batch for an open document, applied to its oracle.
    fn changes(&mut self, doc: usize) -> Vec<Value> {
        let mut changes = Vec::new();
        for _ in 0..1 + self.rng.below(3) {
            let text = self.random_text(4);
            let server_text = as_server_reads(&text);
            let kind = self.rng.below(40);
            let oracle = self.docs[doc].oracle.as_mut().unwrap();
            if kind == 0 {
                oracle.apply(None, &server_text, Unit::Utf16);
                changes.push(json!({"text": text}));
                continue;
            }
            let (sl, sc, el, ec) = match kind {
                // Far past the end.
                1 => {
                    let line = self.rng.below(oracle.lines().len() + 3);
                    (
                        line,
                        1000 + self.rng.below(10),
                        line + self.rng.below(50),
                        5000,
                    )
                }
                // The largest positions the protocol allows.
                2 => (u32::MAX as usize, u32::MAX as usize, u32::MAX as usize, 0),
                // Inside a surrogate pair or a multi-byte character, maybe.
                3 => {
                    let line = self.rng.below(oracle.lines().len());
                    (line, self.rng.below(6), line, self.rng.below(9))
                }
                _ => {
                    let a = oracle.random_boundary(&mut self.rng);
                    let b = if self.rng.chance(1, 3) {
                        a
                    } else {
                        oracle.random_boundary(&mut self.rng)
                    };
                    let (a, b) = (a.min(b), a.max(b));
                    let (sl, sc) = oracle.position(a, Unit::Utf16);
                    let (el, ec) = oracle.position(b, Unit::Utf16);
                    // Sometimes reversed: the server orders the ends.
                    if self.rng.chance(1, 10) {
                        (el, ec, sl, sc)
                    } else {
                        (sl, sc, el, ec)
                    }
                }
            };
            oracle.apply(Some((sl, sc, el, ec)), &server_text, Unit::Utf16);
            changes.push(json!({
                "range": {"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}},
                "text": text
            }));
        }
        changes
    }

    fn did_change(&mut self, with_id: bool) {
        let Some(doc) = self.open_doc() else { return };
        let changes = self.changes(doc);
        self.docs[doc].version += 1;
        let params = json!({"textDocument": {"uri": self.docs[doc].uri, "version": self.docs[doc].version}, "contentChanges": changes});
        if with_id {
            // Applied all the same, and answered with an error.
            self.request(
                "didChange with an id",
                "textDocument/didChange",
                params,
                Expect::Error(-32600),
            );
        } else {
            self.notify("didChange", "textDocument/didChange", params);
        }
    }

    fn position_params(&mut self, doc: usize) -> Value {
        let (line, character) = match self.rng.below(8) {
            0 => (u32::MAX as u64, u32::MAX as u64),
            1 => (self.rng.below(1000) as u64, 100_000),
            _ => {
                let oracle = self.docs[doc].oracle.as_ref();
                match oracle {
                    Some(oracle) => {
                        let at = oracle.random_boundary(&mut self.rng);
                        let (l, c) = oracle.position(at, Unit::Utf16);
                        (l as u64, c as u64)
                    }
                    None => (0, 0),
                }
            }
        };
        json!({"textDocument": {"uri": self.docs[doc].uri}, "position": {"line": line, "character": character}})
    }

    fn completion(&mut self, inline: bool) {
        let doc = self.open_doc().unwrap_or(0);
        let mut params = self.position_params(doc);
        let fault = self.docs[doc].uri.contains("fault-panic");
        let expect = if fault && inline {
            Expect::Error(-32603)
        } else {
            Expect::ResultOrCancelled
        };
        let id = if inline {
            params["context"] = json!({"triggerKind": 1 + self.rng.below(2)});
            self.request(
                "inlineCompletion",
                "textDocument/inlineCompletion",
                params,
                expect,
            )
        } else {
            self.request("completion", "textDocument/completion", params, expect)
        };
        if expect == Expect::ResultOrCancelled && self.rng.chance(1, 6) {
            self.notify("$/cancelRequest", "$/cancelRequest", json!({"id": id}));
        }
    }

    /// Asks for a document's text and waits for it (edits sent after the request could
    /// otherwise land before its handler reads the document), checking it against the oracle.
    fn check_text(&mut self, doc: usize, kind: &'static str) {
        let uri = self.docs[doc].uri.clone();
        let id = self.request(
            kind,
            "ghostline/documentText",
            json!({"textDocument": {"uri": uri}}),
            Expect::Text(doc),
        );
        self.wait_for(&id);
    }

    fn settings(&mut self) -> Value {
        let mut settings = json!({
            "timeoutMs": 50 + self.rng.below(400),
            "debounceMs": self.rng.below(20),
        });
        let odd: &[(&str, Value)] = &[
            ("contextMode", json!("full")),
            ("contextMode", json!("currentFile")),
            ("contextMode", json!("jaccard")),
            ("contextMode", json!(5)),
            ("multiline", json!("always")),
            ("multiline", json!("sometimes")),
            ("maxTokens", json!(-1)),
            ("maxTokens", json!(u64::MAX)),
            ("maxLines", json!(0)),
            ("contextTokens", json!(1)),
            ("contextTokens", json!(1_000_000)),
            ("enabledLanguages", json!(["*"])),
            ("enabledLanguages", json!("rust")),
            ("temperature", json!("hot")),
            ("retrievedShare", json!(7.5)),
            ("promptFamily", json!("starcoder")),
            ("promptFamily", json!("auto")),
            ("fimTemplate", json!("<pre>{prefix}<suf>{suffix}<mid>")),
            ("fimTemplate", json!(null)),
            ("excludeGlobs", json!(["**/*.md", "["])),
            ("noSuchSetting", json!({"a": [1, 2]})),
            ("latencyTargetMs", json!(0)),
        ];
        for _ in 0..self.rng.below(4) {
            let (key, value) = self.rng.pick(odd).clone();
            settings[key] = value;
        }
        // The backend stays the garbage one.
        settings["backendUrl"] = json!(self.backend.url());
        if self.rng.chance(1, 2) {
            json!({"ghostline": settings})
        } else {
            settings
        }
    }

    /// Wrong JSON types in params: requests must get an error, notifications nothing.
    fn wrong_types(&mut self) {
        // Not the fault-injection document: its inline completions panic before params count.
        let doc = self.rng.below(self.docs.len() - 1);
        let uri = self.docs[doc].uri.clone();
        match self.rng.below(10) {
            0 => {
                self.request("wrong types", "textDocument/inlineCompletion", json!({"textDocument": {"uri": uri}, "position": {"line": "a", "character": 0}}), Expect::Error(-32602));
            }
            1 => {
                self.request("wrong types", "textDocument/completion", json!(5), Expect::Error(-32602));
            }
            2 => {
                self.request("wrong types", "ghostline/documentText", json!({"textDocument": 5}), Expect::Error(-32602));
            }
            3 => {
                self.request("wrong types", "textDocument/codeAction", json!({}), Expect::Error(-32602));
            }
            4 => {
                self.request("wrong types", "workspace/executeCommand", json!({"command": 5}), Expect::Error(-32602));
            }
            5 => {
                self.request("wrong types", "textDocument/inlineCompletion", json!({"textDocument": {"uri": uri}, "position": {"line": -1, "character": 0}, "context": {"triggerKind": 1}}), Expect::Error(-32602));
            }
            6 => {
                self.request("wrong types", "textDocument/inlineCompletion", json!({"textDocument": {"uri": uri}, "position": {"line": 1u64 << 40, "character": 0}, "context": {"triggerKind": 1}}), Expect::Error(-32602));
            }
            // Malformed notifications are ignored: the oracle does not change.
            7 => self.notify("wrong types", "textDocument/didChange", json!({"textDocument": {"uri": uri, "version": "x"}, "contentChanges": "all"})),
            8 => self.notify("wrong types", "textDocument/didChange", json!({"textDocument": {"uri": uri, "version": 1}, "contentChanges": [{"range": {"start": {"line": -1, "character": 0}, "end": {"line": 0, "character": 0}}, "text": "lost"}]})),
            _ => self.notify("wrong types", "textDocument/didOpen", json!({"textDocument": {"uri": 7}})),
        }
    }

    fn other_request(&mut self) {
        let doc = self.open_doc().unwrap_or(0);
        let uri = self.docs[doc].uri.clone();
        match self.rng.below(9) {
            0 => {
                let range = json!({"start": {"line": 0, "character": 0}, "end": {"line": self.rng.below(5), "character": self.rng.below(5)}});
                self.request("codeAction", "textDocument/codeAction", json!({"textDocument": {"uri": uri}, "range": range, "context": {"diagnostics": []}}), Expect::ResultOrCancelled);
            }
            1 => {
                let command = *self.rng.pick(&[
                    "ghostline.accept",
                    "ghostline.dismiss",
                    "ghostline.indexStatus",
                ]);
                self.request(
                    "executeCommand",
                    "workspace/executeCommand",
                    json!({"command": command, "arguments": [{"uri": uri}]}),
                    Expect::Result,
                );
            }
            2 => {
                self.request(
                    "executeCommand (unknown)",
                    "workspace/executeCommand",
                    json!({"command": "no.such", "arguments": []}),
                    Expect::Error(-32602),
                );
            }
            3 => {
                self.request("timings", "ghostline/timings", Value::Null, Expect::Result);
            }
            4 => {
                self.request(
                    "unknown method",
                    "ghostline/noSuchMethod",
                    json!({}),
                    Expect::Error(-32601),
                );
            }
            5 => {
                self.request(
                    "$/ request",
                    "$/noSuchRequest",
                    json!({}),
                    Expect::Error(-32601),
                );
            }
            6 => {
                self.request(
                    "notification with an id",
                    "textDocument/didSave",
                    json!({"textDocument": {"uri": uri}}),
                    Expect::Error(-32600),
                );
            }
            7 => self.notify("$/ notification", "$/setTrace", json!({"value": "off"})),
            _ => {
                self.request(
                    "initialize again",
                    "initialize",
                    json!({"capabilities": {}}),
                    Expect::Error(-32600),
                );
            }
        }
    }

    /// A damaged frame (or a frame that is no JSON-RPC message), then a probe that must be
    /// answered; exactly the expected errors must come in between.
    fn damage(&mut self) {
        // Errors with id null come only from damaged or invalid frames, each of which is
        // followed by a probe whose answer comes after the frame's error; so the errors
        // received up to the probe's answer are this frame's.
        let probe_doc = self.rng.below(self.docs.len());
        let tag = self.next_id + 1;
        // The body of a damaged frame: a request that must never run.
        let body = json!({"jsonrpc": "2.0", "id": format!("damaged-{tag}"), "method": "ghostline/timings"}).to_string();
        let n = body.len();
        let (kind, bytes, errors): (&'static str, Vec<u8>, usize) = match self.rng.below(14) {
            0 => (
                "damage: length not a number",
                format!("Content-Length: abc\r\n\r\n{body}").into_bytes(),
                1,
            ),
            1 => (
                "damage: negative length",
                format!("Content-Length: -{}\r\n\r\n{body}", self.rng.below(100)).into_bytes(),
                1,
            ),
            2 => (
                "damage: missing length",
                format!("Content-Type: application/json\r\n\r\n{body}").into_bytes(),
                1,
            ),
            3 => {
                let short = 1 + self.rng.below(40);
                (
                    "damage: body short",
                    format!("Content-Length: {}\r\n\r\n{body}", n + short).into_bytes(),
                    1,
                )
            }
            4 => {
                let long = 1 + self.rng.below(n - 2);
                (
                    "damage: body long",
                    format!("Content-Length: {}\r\n\r\n{body}", n - long).into_bytes(),
                    1,
                )
            }
            5 => (
                "damage: length over the limit",
                format!(
                    "Content-Length: {}\r\n\r\n{body}",
                    64 * 1024 * 1024 + 1 + self.rng.below(1 << 40)
                )
                .into_bytes(),
                1,
            ),
            6 => ("damage: no header", body.clone().into_bytes(), 1),
            7 => (
                "damage: not JSON",
                framed(
                    &body.as_bytes()[..n / 2 + 1]
                        .iter()
                        .map(|b| if *b == b'"' { b'\'' } else { *b })
                        .collect::<Vec<u8>>(),
                ),
                1,
            ),
            8 => (
                "damage: raw NUL in JSON",
                framed(
                    format!("{{\"jsonrpc\":\"2.0\",\"id\":\"damaged-{tag}\",\"method\":\"x\0\"}}")
                        .as_bytes(),
                ),
                1,
            ),
            9 => {
                let size = if self.rng.chance(1, 200) {
                    64 << 20
                } else {
                    9 * 1024 + self.rng.below(100_000)
                };
                (
                    "damage: long junk line",
                    [vec![b'j'; size], b"\r\n\r\n".to_vec()].concat(),
                    1,
                )
            }
            10 => (
                "damage: header cut short",
                format!("Content-Length: {n}\r\n").into_bytes(),
                1,
            ),
            11 => (
                "damage: binary junk",
                {
                    let mut junk = vec![b'#'];
                    junk.extend(
                        (0..self.rng.below(300))
                            .map(|_| (self.rng.next() & 0xFF) as u8)
                            .filter(|b| *b != b'\n' && *b != b'\r'),
                    );
                    junk.extend_from_slice(b"\r\n\r\n");
                    junk
                },
                1,
            ),
            // Frames that are JSON but no JSON-RPC message: -32600, with the id if it has one.
            12 => (
                "invalid: not JSON-RPC",
                framed(
                    self.rng
                        .pick(&[
                            "[]",
                            "{}",
                            "\"text\"",
                            "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"x\"}",
                            "[{\"jsonrpc\":\"2.0\",\"method\":\"x\"}]",
                        ])
                        .as_bytes(),
                ),
                1,
            ),
            _ => {
                let id = format!("bad-version-{tag}");
                self.in_flight.insert(
                    id_key(&json!(id)),
                    InFlight {
                        expect: Expect::Error(-32600),
                        kind: "invalid: jsonrpc 1.0",
                    },
                );
                self.stats.requests += 1;
                (
                    "invalid: jsonrpc 1.0",
                    framed(
                        json!({"jsonrpc": "1.0", "id": id, "method": "x"})
                            .to_string()
                            .as_bytes(),
                    ),
                    0,
                )
            }
        };
        self.count(kind);
        self.stats.damaged_frames += 1;
        self.write(&bytes);
        self.check_text(probe_doc, "probe after damage");
        self.stats.probes_answered += 1;
        // The errors for the damaged frame came before the probe's answer.
        if self.null_errors.len() != errors {
            let got = self.null_errors.clone();
            self.fail(&format!(
                "{kind}: expected {errors} error(s) with id null, got {got:?}"
            ));
        }
        self.null_errors.clear();
    }

    /// A multi-MB (or one-long-line) document: opened, checked, edited once, checked, closed.
    fn big_document(&mut self) {
        self.docs.push(Doc {
            uri: "file:///fuzz/big.txt".to_string(),
            oracle: None,
            version: 0,
        });
        let doc = self.docs.len() - 1;
        self.did_open(doc, true);
        self.check_text(doc, "documentText (big)");
        let changes = self.changes(doc);
        self.notify("didChange (big)", "textDocument/didChange", json!({"textDocument": {"uri": self.docs[doc].uri, "version": 2}, "contentChanges": changes}));
        self.check_text(doc, "documentText (big)");
        self.notify(
            "didClose",
            "textDocument/didClose",
            json!({"textDocument": {"uri": self.docs[doc].uri}}),
        );
        self.docs.pop();
    }

    fn step(&mut self) {
        let roll = self.rng.below(1000);
        match roll {
            0..=379 => self.did_change(false),
            380..=389 => self.did_change(true),
            390..=419 => {
                if self.rng.chance(1, 150) {
                    self.big_document();
                } else if let Some(doc) = self.closed_doc() {
                    self.did_open(doc, false);
                } else {
                    self.did_change(false);
                }
            }
            420..=434 => {
                if let Some(doc) = self.open_doc() {
                    self.docs[doc].oracle = None;
                    let uri = self.docs[doc].uri.clone();
                    self.notify(
                        "didClose",
                        "textDocument/didClose",
                        json!({"textDocument": {"uri": uri}}),
                    );
                }
            }
            435..=544 => self.completion(true),
            545..=594 => self.completion(false),
            595..=654 => self.other_request(),
            655..=694 => {
                let doc = self.rng.below(self.docs.len());
                self.check_text(doc, "documentText");
            }
            695..=709 => {
                let settings = self.settings();
                self.notify(
                    "didChangeConfiguration",
                    "workspace/didChangeConfiguration",
                    json!({"settings": settings}),
                );
            }
            710..=719 => {
                let uri = format!("file:///fuzz/watched/{}.rs", self.rng.below(50));
                let kind = 1 + self.rng.below(3);
                self.notify(
                    "didChangeWatchedFiles",
                    "workspace/didChangeWatchedFiles",
                    json!({"changes": [{"uri": uri, "type": kind}]}),
                );
            }
            720..=729 => {
                let doc = self.rng.below(self.docs.len());
                let uri = self.docs[doc].uri.clone();
                self.notify(
                    "didSave",
                    "textDocument/didSave",
                    json!({"textDocument": {"uri": uri}}),
                );
            }
            730..=779 => self.wrong_types(),
            780..=969 => self.did_change(false),
            970..=979 => {
                // A response from the client to a request the server never sent.
                self.count("stray response");
                let id = self.rng.below(1000);
                self.send_value(&json!({"jsonrpc": "2.0", "id": id, "result": {"x": [1, 2]}}));
            }
            _ => self.damage(),
        }
        self.throttle();
    }
}

// ---- the backend that answers garbage ----

/// What the garbage backend answered, by `answer_garbage`'s kinds.
const BACKEND_KINDS: [&str; 13] = [
    "valid SSE",
    "invalid SSE",
    "invalid UTF-8 in SSE",
    "error, multi-byte at 200",
    "429/503 odd Retry-After",
    "closed mid-event",
    "endless line",
    "slow drip",
    "garbage status line",
    "closed without a word",
    "100 KB header line",
    "wrong chunk size",
    "/v1/models (4 in 5 odd)",
];

struct GarbageStats {
    by_kind: [AtomicU64; 13],
    port: AtomicU64,
    connections: AtomicU64,
    garbage: AtomicU64,
}

impl GarbageStats {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port.load(Ordering::Relaxed))
    }
}

/// Reads an HTTP request; its request line.
fn read_http_request(stream: &mut TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let (head, _body) = common::read_http_request(stream)?;
    Some(head.lines().next().unwrap_or_default().to_string())
}

fn sse_head(stream: &mut TcpStream) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    )
}

fn event(text: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"choices": [{"text": text, "index": 0, "finish_reason": null}]})
    )
}

fn answer_garbage(
    stream: &mut TcpStream,
    rng: &mut Rng,
    by_kind: &[AtomicU64; 13],
) -> std::io::Result<()> {
    let request_line = read_http_request(stream).unwrap_or_default();
    if request_line.starts_with("GET /v1/models") {
        by_kind[12].fetch_add(1, Ordering::Relaxed);
        let body = match rng.below(5) {
            0 => json!({"object": "list", "data": [{"id": "garbage", "object": "model", "owned_by": "fuzz", "family": "qwen2.5-coder", "context_length": 4096,
                "fim": {"prefix": "<|fim_prefix|>", "suffix": "<|fim_suffix|>", "middle": "<|fim_middle|>", "template": "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"}}]}).to_string(),
            1 => json!({"object": "list", "data": 5}).to_string(),
            2 => json!({"data": [{"id": 7, "fim": "x", "context_length": -3, "speed": {"prefill_tokens_per_s": "fast"}}]}).to_string(),
            3 => json!({"object": "list", "data": [{"id": "m", "fim": {"template": "{suffix}{suffix}{prefix}"}, "context_length": 0}]}).to_string(),
            _ => "{\"data\": [".to_string(),
        };
        return write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    }
    let kind = rng.below(12);
    by_kind[kind].fetch_add(1, Ordering::Relaxed);
    match kind {
        0 => {
            sse_head(stream)?;
            write!(stream, "{}{}data: [DONE]\n\n", event("x"), event(" + 1"))
        }
        1 => {
            sse_head(stream)?;
            let lines = [
                "data: {not json\n\n",
                "data: \n\n",
                ": comment\n",
                "event: x\n",
                "data: [DONE\n\n",
                "data: {\"choices\": \"x\"}\n\n",
                "data: {\"choices\": [{\"text\": 5}]}\n\n",
                "retry: -1\n",
                "data: null\n\n",
                "\n\n\n",
                "data:{\"choices\":[]}\n\n",
                "id: \0\n",
            ];
            for _ in 0..1 + rng.below(8) {
                stream.write_all(rng.pick(&lines).as_bytes())?;
            }
            Ok(())
        }
        2 => {
            sse_head(stream)?;
            stream
                .write_all(b"data: {\"choices\":[{\"text\":\"\xff\xfe\xc3\",\"index\":0}]}\n\n")?;
            stream.write_all(b"data: \xed\xa0\x80\n\n")
        }
        3 => {
            // An error whose body has a multi-byte character across byte 200.
            let status = *rng.pick(&[400u16, 404, 413, 422, 500, 502, 504]);
            let body = format!("{}{}", "x".repeat(199 - rng.below(3)), "é€😀".repeat(100));
            write!(stream, "HTTP/1.1 {status} Odd\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        }
        4 => {
            let status = *rng.pick(&[429u16, 503]);
            let retry = *rng.pick(&[
                "-1",
                "abc",
                "1.5",
                "",
                "0",
                "1",
                "Wed, 21 Oct 2015 07:28:00 GMT",
                "\u{00e9}",
            ]);
            write!(stream, "HTTP/1.1 {status} Busy\r\nRetry-After: {retry}\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{{}}")
        }
        5 => {
            sse_head(stream)?;
            stream.write_all(b"data: {\"choices\":[{\"text\":\"par")?;
            stream.flush()
            // Closed mid-event.
        }
        6 => {
            // An endless line without a newline (until the client gives up, or 8 MB).
            sse_head(stream)?;
            stream.write_all(b"data: ")?;
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..128 {
                stream.write_all(&chunk)?;
            }
            Ok(())
        }
        7 => {
            // A slow drip.
            sse_head(stream)?;
            for _ in 0..40 {
                stream.write_all(event("y").as_bytes())?;
                stream.flush()?;
                std::thread::sleep(Duration::from_millis(25));
            }
            stream.write_all(b"data: [DONE]\n\n")
        }
        8 => {
            let garbage: &[&[u8]] = &[
                b"HTTP/1.1 abc\r\n\r\n",
                b"garbage\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
                b"\xff\xfe\r\n",
            ];
            let chosen: &[u8] = garbage[rng.below(garbage.len())];
            stream.write_all(chosen)
        }
        9 => Ok(()), // closed without a word
        10 => {
            let long = "v".repeat(100_000);
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nX-Long: {long}\r\nContent-Type: text/event-stream\r\n\r\n{}",
                event("z")
            )
        }
        _ => {
            // Chunked encoding with a wrong chunk size.
            write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nfff\r\n{}", event("w"))
        }
    }
}

fn garbage_backend(seed: u64) -> Arc<GarbageStats> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let stats = Arc::new(GarbageStats {
        by_kind: Default::default(),
        port: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        garbage: AtomicU64::new(0),
    });
    stats.port.store(
        u64::from(listener.local_addr().unwrap().port()),
        Ordering::Relaxed,
    );
    let shared = stats.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let n = shared.connections.fetch_add(1, Ordering::Relaxed);
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(seed ^ (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1));
                let _ = answer_garbage(&mut stream, &mut rng, &shared.by_kind);
                shared.garbage.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    stats
}

#[test]
fn fuzz_stdio() {
    let messages: u64 = std::env::var("GHOSTLINE_FUZZ_MESSAGES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("GHOSTLINE_FUZZ_SEED")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0x5EED_F00D_1234_5678);
    let backend = garbage_backend(seed);
    let log = common::TempDir::new("fuzz-log");
    let log_path = log.0.join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ghostline-lsp"))
        .env("GHOSTLINE_LSP_LOG", "error")
        // Backtrace lines would read as more panics in the log check below.
        .env("RUST_BACKTRACE", "0")
        .env("GHOSTLINE_LSP_FAULT", "panic-in-inline-completion")
        // Its suggestions stay out of the person's own `ghostline-lsp stats`.
        .env("GHOSTLINE_DATA_DIR", log.0.join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("spawn ghostline-lsp");
    let stdout = child.stdout.take().unwrap();
    let (sender, incoming) = mpsc::channel();
    std::thread::spawn(move || common::read_frames(stdout, sender));
    let stdin = BufWriter::with_capacity(1 << 16, child.stdin.take().unwrap());
    let mut docs: Vec<Doc> = (0..6)
        .map(|i| Doc {
            uri: format!(
                "file:///fuzz/doc{i}.{}",
                ["rs", "py", "txt", "ts", "go", "c"][i]
            ),
            oracle: None,
            version: 0,
        })
        .collect();
    docs.push(Doc {
        uri: "file:///fuzz/fault-panic.rs".to_string(),
        oracle: None,
        version: 0,
    });
    let mut fuzzer = Fuzzer {
        rng: Rng(seed),
        child,
        stdin,
        incoming,
        in_flight: HashMap::new(),
        null_errors: Vec::new(),
        docs,
        next_id: 0,
        stats: Stats::default(),
        backend: backend.clone(),
        seed,
        started: Instant::now(),
        crashed: false,
    };

    // Before initialize: requests are refused, each with one answer.
    fuzzer.request(
        "before initialize",
        "textDocument/completion",
        json!({"textDocument": {"uri": "file:///x"}, "position": {"line": 0, "character": 0}}),
        Expect::Error(-32002),
    );
    fuzzer.request(
        "before initialize",
        "ghostline/timings",
        Value::Null,
        Expect::Error(-32002),
    );
    let settings = fuzzer.settings();
    let init = fuzzer.request(
        "initialize",
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": {}, "initializationOptions": settings}),
        Expect::Result,
    );
    fuzzer.wait_for(&init);
    fuzzer.notify("initialized", "initialized", json!({}));

    let mut sent = 0u64;
    let mut last_report = Instant::now();
    while sent < messages {
        fuzzer.step();
        sent += 1;
        if sent.is_multiple_of(1000) {
            fuzzer.check_alive();
            if last_report.elapsed() > Duration::from_secs(30) {
                eprintln!(
                    "fuzz: {sent} messages, {:.0} s",
                    fuzzer.started.elapsed().as_secs_f64()
                );
                last_report = Instant::now();
            }
        }
    }
    // Every document checked once more, then shutdown and exit.
    for doc in 0..fuzzer.docs.len() {
        fuzzer.check_text(doc, "documentText");
    }
    let shutdown = fuzzer.request("shutdown", "shutdown", Value::Null, Expect::Result);
    fuzzer.wait_for(&shutdown);
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    while !fuzzer.in_flight.is_empty() && Instant::now() < deadline {
        fuzzer.pump(Duration::from_millis(200));
    }
    if !fuzzer.in_flight.is_empty() {
        let kinds: Vec<_> = fuzzer.in_flight.values().map(|f| f.kind).collect();
        fuzzer.fail(&format!("requests never answered: {kinds:?}"));
    }
    fuzzer.notify("exit", "exit", Value::Null);
    fuzzer.flush();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = fuzzer.child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            fuzzer.fail("ghostline-lsp did not exit after shutdown and exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Anything said after shutdown was handled as it came (no second answers).
    while let Ok(message) = fuzzer.incoming.try_recv() {
        fuzzer.handle(message);
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let panics: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("panic") && !line.contains("injected fault"))
        .collect();
    eprintln!("{}", fuzzer.summary());
    eprintln!(
        "{:<34} {:>10}",
        "panics other than injected ones",
        panics.len()
    );
    eprintln!("{:<34} {:>10}", "exit status", status.code().unwrap_or(-1));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after shutdown and exit"
    );
    assert!(panics.is_empty(), "panics in the log: {panics:#?}");
}
