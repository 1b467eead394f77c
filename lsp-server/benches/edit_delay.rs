//! Do completions delay edits? On a generated 20,000-file workspace, the real `ghostline-lsp`
//! over stdio applies a stream of edits (`didChange`, then at once `ghostline/documentText`,
//! whose answer shows the edit was applied) first with nothing else running, then while waves
//! of ten completion requests, issued at once on ten large documents, build their prompts
//! (definitions, similar windows over the whole index, recent edits) and stream.
//! Each wave moves every cursor to another region of its document, so the snippet memo and the
//! suggestion memory cannot answer: every request does the full work.
//!
//! Prints p50/p90/p99/max of the edit delay (didChange sent → documentText answered) without
//! and with the completions, side by side, and the machine's load (`/proc/loadavg`).
//! Target: p99 with completions ≤ p99 without + 5 ms.
//!
//! Measured on a shared 2-core machine (load 2–9 from other work), 1,000 edits per phase,
//! ghostline-serve with the tiny model: prompts built on the async runtime (before the work
//! pool) added 73 and 663 ms to the p99 edit delay (max 6.3 s); on the work pool, 4.2 and
//! 4.8 ms (max 9.8 and 11.1 ms), with completions answered faster too (p50 ~0.9 s against
//! 1.2–4 s). 2026-12-01, quiet machine (load ~1): the pool at one thread per core gave
//! +4.4 ms with the fake backend and +4.9/+5.3/+7.4 ms with ghostline-serve on the same two
//! cores; leaving one core to the async threads (pool of cores − 1) gave +0.8 ms (fake) and
//! +5.0 ms (ghostline-serve, whose threads then take the other core; +4.6 ms with it at nice 19).
//!
//!     cargo bench -p ghostline-lsp --bench edit_delay
//!
//! Backend: ghostline-serve with the tiny random model (GHOSTLINE_SERVE_BIN /
//! GHOSTLINE_TINY_MODEL, as the tests), or a running one from GHOSTLINE_BENCH_BACKEND (a URL).
//! Without either (or with GHOSTLINE_BENCH_FAKE=1) a slow fake backend answers: it streams a
//! token every 50 ms for a second; what is measured is the LSP's own threads, so that is enough
//! to load it, and the table says which backend ran. GHOSTLINE_BENCH_LSP runs another
//! `ghostline-lsp` binary (to compare builds on the same bench); GHOSTLINE_BENCH_FILES and
//! GHOSTLINE_BENCH_EDITS change the workspace size (20,000) and edits per phase (600).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::{start_backend, tiny_model_dir};
use serde_json::{json, Value};

const COMPLETION_DOCS: usize = 10;
const BIG_DOC_LINES: usize = 3_000;
const EDIT_URI_NAME: &str = "scratch.py";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small, realistic Python module: imports of its neighbours, a class, a few functions.
fn python_module(package: usize, module: usize) -> String {
    let other = (package * 7 + module * 3) % 200;
    let peer = (module * 11 + 5) % 100;
    let mut out = format!(
        "\"\"\"Records of package {package}, module {module}.\"\"\"\nimport json\nfrom pkg{other}.mod{peer} import Store{other}_{peer}, load_{other}_{peer}\n\n\nclass Store{package}_{module}:\n    \"\"\"Keeps rows of kind {module} in memory.\"\"\"\n\n    def __init__(self, path, limit=100):\n        self.path = path\n        self.limit = limit\n        self.rows = []\n\n"
    );
    for step in 0..3 {
        out.push_str(&format!(
            "    def step_{step}(self, rows, scale={step}):\n        totals = {{}}\n        for row in rows[: self.limit]:\n            value = load_{other}_{peer}(row[\"id\"]) * scale\n            totals[row[\"id\"]] = totals.get(row[\"id\"], 0) + value\n        return totals\n\n"
        ));
    }
    out.push_str(&format!(
        "\ndef load_{package}_{module}(row_id):\n    with open(\"data/{package}/{module}.json\") as handle:\n        return json.load(handle).get(str(row_id), 0)\n"
    ));
    out
}

/// A long document: many small functions, so any region has identifiers to resolve.
fn big_document(index: usize) -> String {
    let mut out = format!("\"\"\"Big module {index}.\"\"\"\nimport json\nfrom pkg{index}.mod1 import Store{index}_1, load_{index}_1\n\n\n");
    let mut function = 0;
    while out.lines().count() < BIG_DOC_LINES {
        let package = (index * 13 + function) % 200;
        let module = (function * 7) % 100;
        out.push_str(&format!(
            "def handle_{index}_{function}(rows, store=None):\n    store = store or Store{index}_1(\"data\")\n    result = load_{package}_{module}(rows[0][\"id\"])\n    for row in rows:\n        result += store.step_1([row])[row[\"id\"]]\n    return result\n\n\n"
        ));
        function += 1;
    }
    out
}

fn generate_workspace(root: &Path, files: usize) -> Vec<PathBuf> {
    let _ = std::fs::remove_dir_all(root);
    let packages = files.div_ceil(100);
    let mut written = 0;
    'outer: for package in 0..packages {
        let dir = root.join(format!("pkg{package}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("__init__.py"), "").unwrap();
        for module in 0..100 {
            if written >= files.saturating_sub(COMPLETION_DOCS) {
                break 'outer;
            }
            std::fs::write(
                dir.join(format!("mod{module}.py")),
                python_module(package, module),
            )
            .unwrap();
            written += 1;
        }
    }
    let big = root.join("big");
    std::fs::create_dir_all(&big).unwrap();
    (0..COMPLETION_DOCS)
        .map(|i| {
            let path = big.join(format!("big{i}.py"));
            std::fs::write(&path, big_document(i)).unwrap();
            path
        })
        .collect()
}

/// A backend that is slow on purpose: `/v1/models` like ghostline-serve's for a Qwen model
/// (no speed, so no warm-ups), and every completion a token each 50 ms for a second.
fn slow_fake_backend() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let models = json!({"object": "list", "data": [{
        "id": "slow-fake", "object": "model", "owned_by": "bench", "family": "qwen2.5-coder",
        "context_length": 32768,
        "fim": {"prefix": "<|fim_prefix|>", "suffix": "<|fim_suffix|>", "middle": "<|fim_middle|>",
                "repo_name": "<|repo_name|>", "file_sep": "<|file_sep|>",
                "template": "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"}
    }]})
    .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let models = models.clone();
            std::thread::spawn(move || {
                let Some((request_line, _body)) = common::read_http_request(&mut stream) else {
                    return;
                };
                if request_line.starts_with("GET /v1/models") {
                    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}", models.len(), models);
                    return;
                }
                if write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n").is_err() {
                    return;
                }
                for _ in 0..20 {
                    std::thread::sleep(Duration::from_millis(50));
                    let chunk = "data: {\"choices\":[{\"text\":\"x\",\"index\":0,\"finish_reason\":null}]}\n\n";
                    if stream.write_all(chunk.as_bytes()).is_err() {
                        return; // the LSP dropped the stream (superseded, stopped)
                    }
                }
                let _ = stream.write_all(b"data: {\"choices\":[{\"text\":\"\",\"index\":0,\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n");
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// The LSP over stdio, with a reader thread that stamps each response when it arrives.
struct Lsp {
    child: Child,
    stdin: ChildStdin,
    responses: Receiver<(i64, Instant, Value)>,
    early: HashMap<i64, (Instant, Value)>,
    next_id: i64,
}

impl Lsp {
    fn spawn(binary: &Path) -> Self {
        let mut child = Command::new(binary)
            .env("GHOSTLINE_LSP_LOG", "warn")
            // The benchmark's suggestions stay out of the person's own `ghostline-lsp stats`.
            .env(
                "GHOSTLINE_DATA_DIR",
                std::env::temp_dir().join("ghostline-bench-data"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (sender, responses) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 {
                        return;
                    }
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let at = Instant::now();
                let Ok(message) = serde_json::from_slice::<Value>(&body) else {
                    continue;
                };
                if message.get("method").is_some() {
                    continue; // notifications and requests from the server
                }
                if let Some(id) = message.get("id").and_then(Value::as_i64) {
                    if sender.send((id, at, message)).is_err() {
                        return;
                    }
                }
            }
        });
        Self {
            child,
            stdin,
            responses,
            early: HashMap::new(),
            next_id: 1,
        }
    }

    fn send(&mut self, message: &Value) {
        let body = serde_json::to_vec(message).unwrap();
        let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        frame.extend_from_slice(&body);
        self.stdin.write_all(&frame).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// Waits for `id`'s answer; answers to others that arrive meanwhile are kept and passed
    /// to `other`.
    fn wait(&mut self, id: i64, mut other: impl FnMut(i64, Instant, Value)) -> (Instant, Value) {
        if let Some(found) = self.early.remove(&id) {
            return found;
        }
        loop {
            match self.responses.recv_timeout(Duration::from_secs(120)) {
                Ok((got, at, message)) if got == id => return (at, message),
                Ok((got, at, message)) => other(got, at, message),
                Err(RecvTimeoutError::Timeout) => panic!("no answer to request {id} in 120 s"),
                Err(RecvTimeoutError::Disconnected) => panic!("ghostline-lsp exited"),
            }
        }
    }

    /// Answers that arrived without waiting.
    fn ready(&mut self) -> Vec<(i64, Instant, Value)> {
        self.responses.try_iter().collect()
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params);
        let mut early = Vec::new();
        let (_, message) = self.wait(id, |i, at, m| early.push((i, at, m)));
        for (i, at, m) in early {
            self.early.insert(i, (at, m));
        }
        message
    }
}

impl Drop for Lsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

struct EditStream {
    uri: String,
    version: i32,
    line: u32,
    column: u32,
}

impl EditStream {
    /// Types one character at the end of the scratch document and asks for its text at once:
    /// the answer comes after the edit was applied. Returns the edit's delay in ms.
    fn one(&mut self, lsp: &mut Lsp, mut other: impl FnMut(i64, Instant, Value)) -> f64 {
        self.version += 1;
        let started = Instant::now();
        lsp.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": self.uri, "version": self.version}, "contentChanges": [
                {"range": {"start": {"line": self.line, "character": self.column},
                           "end": {"line": self.line, "character": self.column}}, "text": "x"}]}),
        );
        self.column += 1;
        if self.column > 60 {
            self.version += 1;
            lsp.notify(
                "textDocument/didChange",
                json!({"textDocument": {"uri": self.uri, "version": self.version}, "contentChanges": [
                    {"range": {"start": {"line": self.line, "character": self.column},
                               "end": {"line": self.line, "character": self.column}}, "text": "\n"}]}),
            );
            self.line += 1;
            self.column = 0;
        }
        let id = lsp.request(
            "ghostline/documentText",
            json!({"textDocument": {"uri": self.uri}}),
        );
        let (at, message) = lsp.wait(id, &mut other);
        assert!(message["result"].is_string(), "documentText: {message}");
        at.duration_since(started).as_secs_f64() * 1e3
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("edit_delay: a benchmark; run it with `cargo bench -p ghostline-lsp --bench edit_delay`");
        return;
    }
    let files = env_usize("GHOSTLINE_BENCH_FILES", 20_000);
    let edits = env_usize("GHOSTLINE_BENCH_EDITS", 600);
    let binary = std::env::var("GHOSTLINE_BENCH_LSP")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_BIN_EXE_ghostline-lsp")));

    let mut options = json!({"maxTokens": 16, "timeoutMs": 60000});
    let _backend;
    let (url, backend_name) = match std::env::var("GHOSTLINE_BENCH_BACKEND") {
        Ok(url) => (url.clone(), format!("running backend {url}")),
        Err(_) if std::env::var("GHOSTLINE_BENCH_FAKE").is_ok_and(|v| v == "1") => (
            slow_fake_backend(),
            "slow fake backend (a token per 50 ms for 1 s)".to_string(),
        ),
        Err(_) => match start_backend(tiny_model_dir(), None, &[]) {
            Some(backend) => {
                let url = backend.url();
                _backend = backend;
                // The tiny model repeats its last input token; with the prefix last it says
                // something (see tests/inline_completion.rs).
                options["fimTemplate"] = json!("<|fim_suffix|>{suffix}<|fim_prefix|>{prefix}");
                (url, "ghostline-serve, tiny random model".to_string())
            }
            None => (
                slow_fake_backend(),
                "slow fake backend (a token per 50 ms for 1 s): no ghostline-serve".to_string(),
            ),
        },
    };
    options["backendUrl"] = json!(url);

    let root = std::env::temp_dir().join(format!("ghostline-edit-delay-{}", std::process::id()));
    let started = Instant::now();
    let big_paths = generate_workspace(&root, files);
    eprintln!(
        "edit_delay: wrote {files} files in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut lsp = Lsp::spawn(&binary);
    let root_uri = format!("file://{}", root.display());
    lsp.call(
        "initialize",
        json!({"processId": null, "rootUri": root_uri, "capabilities": {},
               "workspaceFolders": [{"uri": root_uri, "name": "bench"}],
               "initializationOptions": options}),
    );
    lsp.notify("initialized", json!({}));
    let started = Instant::now();
    loop {
        let status = lsp.call(
            "workspace/executeCommand",
            json!({"command": "ghostline.indexStatus", "arguments": []}),
        )["result"]
            .clone();
        if status["ready"] == json!(true) && status["tokenizerReady"] != json!(false) {
            eprintln!(
                "edit_delay: index ready in {:.1} s: {status}",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "index not ready: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let big_uris: Vec<String> = big_paths
        .iter()
        .map(|p| format!("file://{}", p.display()))
        .collect();
    let mut big_versions = [1; COMPLETION_DOCS];
    for (uri, path) in big_uris.iter().zip(&big_paths) {
        lsp.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                   "text": std::fs::read_to_string(path).unwrap()}}),
        );
    }
    let scratch = root.join(EDIT_URI_NAME);
    let scratch_text = "def scratch():\n    return 1\n\n".repeat(50);
    std::fs::write(&scratch, &scratch_text).unwrap();
    let mut stream = EditStream {
        uri: format!("file://{}", scratch.display()),
        version: 1,
        line: 150,
        column: 0,
    };
    lsp.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": stream.uri, "languageId": "python", "version": 1, "text": scratch_text}}),
    );
    // Let the opened documents' line counts settle before measuring.
    std::thread::sleep(Duration::from_secs(2));

    let pause = Duration::from_millis(10);
    let load_before_idle = loadavg();
    let mut idle = Vec::new();
    for _ in 0..edits {
        idle.push(stream.one(&mut lsp, |_, _, _| {}));
        std::thread::sleep(pause);
    }
    let load_after_idle = loadavg();

    // Waves of ten completions, one per big document, each at a new region: a line typed
    // there, then the request at its end.
    let mut wave = 0usize;
    let mut in_flight: HashMap<i64, Instant> = HashMap::new();
    let mut completion_ms = Vec::new();
    let mut answered_with_text = 0usize;
    let mut issue_wave = |lsp: &mut Lsp, in_flight: &mut HashMap<i64, Instant>, wave: usize| {
        for (doc, uri) in big_uris.iter().enumerate() {
            let line = ((wave * 389 + doc * 97) % (BIG_DOC_LINES - 20) + 10) as u32;
            let typed = format!("    total_{wave} = handle_{doc}_");
            big_versions[doc] += 1;
            lsp.notify(
                "textDocument/didChange",
                json!({"textDocument": {"uri": uri, "version": big_versions[doc]}, "contentChanges": [
                    {"range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 0}},
                     "text": format!("{typed}\n")}]}),
            );
            let id = lsp.request(
                "textDocument/inlineCompletion",
                json!({"textDocument": {"uri": uri},
                       "position": {"line": line, "character": typed.len()},
                       "context": {"triggerKind": 2}}),
            );
            in_flight.insert(id, Instant::now());
        }
    };
    let load_before_busy = loadavg();
    let busy_started = Instant::now();
    issue_wave(&mut lsp, &mut in_flight, wave);
    let mut busy = Vec::new();
    for _ in 0..edits {
        let mut finished = Vec::new();
        busy.push(stream.one(&mut lsp, |id, at, message| finished.push((id, at, message))));
        finished.extend(lsp.ready());
        for (id, at, message) in finished {
            if let Some(sent) = in_flight.remove(&id) {
                completion_ms.push(at.duration_since(sent).as_secs_f64() * 1e3);
                if message["result"]["items"]
                    .as_array()
                    .is_some_and(|items| !items.is_empty())
                {
                    answered_with_text += 1;
                }
                assert!(message.get("error").is_none(), "completion: {message}");
            }
        }
        if in_flight.is_empty() {
            wave += 1;
            issue_wave(&mut lsp, &mut in_flight, wave);
        }
        std::thread::sleep(pause);
    }
    let busy_seconds = busy_started.elapsed().as_secs_f64();
    let load_after_busy = loadavg();
    let _ = std::fs::remove_dir_all(&root);

    idle.sort_by(|a, b| a.partial_cmp(b).unwrap());
    busy.sort_by(|a, b| a.partial_cmp(b).unwrap());
    completion_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "\nghostline-lsp edit delay (didChange → documentText answered), {files}-file workspace, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("binary: {}", binary.display());
    println!("backend: {backend_name}");
    println!(
        "| {:<6} | {:>14} | {:>24} | {:>9} |",
        "ms", "no completions", "10 concurrent completions", "extra"
    );
    println!("|--------|----------------|--------------------------|-----------|");
    for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)] {
        let a = percentile(&idle, p);
        let b = percentile(&busy, p);
        println!("| {name:<6} | {a:>14.3} | {b:>24.3} | {:>9.3} |", b - a);
    }
    println!(
        "| {:<6} | {:>14} | {:>24} | {:>9} |",
        "edits",
        idle.len(),
        busy.len(),
        ""
    );
    println!(
        "load (1/5/15 min): idle phase {load_before_idle} → {load_after_idle}; busy phase {load_before_busy} → {load_after_busy}"
    );
    println!(
        "completions: {} waves in {busy_seconds:.1} s, {} answered ({} with text), latency p50 {:.0} ms, p99 {:.0} ms",
        wave + 1,
        completion_ms.len(),
        answered_with_text,
        percentile(&completion_ms, 50.0),
        percentile(&completion_ms, 99.0)
    );
    let extra = percentile(&busy, 99.0) - percentile(&idle, 99.0);
    println!(
        "target p99 extra ≤ 5 ms: {}",
        if extra <= 5.0 { "met" } else { "NOT met" }
    );
}
