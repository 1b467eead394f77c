//! A real LSP client for tests: spawns the `ghostline-lsp` binary and speaks
//! Content-Length framed JSON-RPC over its stdin/stdout. Plus the real `ghostline-serve`
//! as a backend, and tiny raw TCP servers for the failure cases that a real server cannot
//! produce on demand.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub struct LspClient {
    child: Child,
    stdin: Option<ChildStdin>,
    incoming: Receiver<Value>,
    /// Messages read while waiting for something else.
    backlog: VecDeque<Value>,
    next_id: i64,
}

/// Reads framed messages; anything that is not a well-formed frame is a test failure
/// (stdout must carry nothing but protocol).
pub fn read_frames(stdout: impl Read, sender: mpsc::Sender<Value>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut length = None;
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header
                .split_once(':')
                .unwrap_or_else(|| panic!("not a header on stdout: {header:?}"));
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>().expect("bad Content-Length"));
            }
        }
        let mut body = vec![0; length.expect("frame without Content-Length")];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let message: Value = serde_json::from_slice(&body).expect("stdout frame is not JSON");
        if sender.send(message).is_err() {
            return;
        }
    }
}

impl LspClient {
    pub fn spawn() -> Self {
        Self::spawn_with_env(&[])
    }

    pub fn spawn_with_env(env: &[(&str, &str)]) -> Self {
        Self::spawn_with_stderr(env, Stdio::inherit())
    }

    /// Like `spawn_with_env`, with the server's log (its stderr) going to `stderr`.
    pub fn spawn_with_stderr(env: &[(&str, &str)], stderr: Stdio) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ghostline-lsp"))
            .env(
                "GHOSTLINE_LSP_LOG",
                std::env::var("GHOSTLINE_LSP_LOG").unwrap_or_else(|_| "warn".into()),
            )
            // The data folder (affinity key, acceptance stats) under target/, not the user's:
            // tests' suggestions must not show up in `ghostline-lsp stats`. `env` may override.
            .env(
                "GHOSTLINE_DATA_DIR",
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ghostline-data"),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn ghostline-lsp");
        let stdout = child.stdout.take().unwrap();
        let (sender, incoming) = mpsc::channel();
        std::thread::spawn(move || read_frames(stdout, sender));
        Self {
            stdin: child.stdin.take(),
            child,
            incoming,
            backlog: VecDeque::new(),
            next_id: 1,
        }
    }

    /// Spawns and initializes with the given capabilities and initializationOptions.
    pub fn start(capabilities: Value, options: Value) -> (Self, Value) {
        Self::start_with_env(capabilities, options, &[])
    }

    pub fn start_with_env(
        capabilities: Value,
        options: Value,
        env: &[(&str, &str)],
    ) -> (Self, Value) {
        let mut client = Self::spawn_with_env(env);
        let result = client.request_ok(
            "initialize",
            json!({"processId": null, "rootUri": null, "capabilities": capabilities, "initializationOptions": options}),
        );
        client.notify("initialized", json!({}));
        (client, result)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin closed");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, message: &Value) {
        let body = serde_json::to_vec(message).unwrap();
        let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        frame.extend_from_slice(&body);
        self.send_raw(&frame);
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request without waiting; returns its id.
    pub fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    fn next_message(&mut self, deadline: Instant) -> Option<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.incoming.recv_timeout(left) {
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The response (whole message) to request `id`.
    pub fn response(&mut self, id: i64, timeout: Duration) -> Value {
        if let Some(at) = self
            .backlog
            .iter()
            .position(|m| m.get("id") == Some(&json!(id)) && m.get("method").is_none())
        {
            return self.backlog.remove(at).unwrap();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let message = self
                .next_message(deadline)
                .unwrap_or_else(|| panic!("no response to request {id} within {timeout:?}"));
            if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                return message;
            }
            self.backlog.push_back(message);
        }
    }

    /// Whether the response to request `id` has arrived by now (it stays to be taken by
    /// `response`). Waits for nothing: for "not answered yet" checks.
    pub fn has_answered(&mut self, id: i64) -> bool {
        while let Ok(message) = self.incoming.try_recv() {
            self.backlog.push_back(message);
        }
        self.backlog
            .iter()
            .any(|m| m.get("id") == Some(&json!(id)) && m.get("method").is_none())
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.response(id, TIMEOUT)
    }

    pub fn request_ok(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params);
        assert!(
            response.get("error").is_none(),
            "{method} failed: {response}"
        );
        response["result"].clone()
    }

    /// Server-to-client notifications with this method received so far (waits `wait`).
    pub fn notifications(&mut self, method: &str, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        while let Some(message) = self.next_message(deadline) {
            self.backlog.push_back(message);
        }
        let (matching, rest): (Vec<Value>, Vec<Value>) = self
            .backlog
            .drain(..)
            .partition(|m| m.get("method").and_then(Value::as_str) == Some(method));
        self.backlog = rest.into();
        matching
    }

    /// Everything the server sent before its answer to a request sent now (a barrier), taken
    /// from the backlog. The server writes in order, and what a message causes (a request's
    /// warning or log line, awaited before its answer; an error for a damaged frame, written
    /// when the frame is read) goes out before the answer to anything read after it. So once
    /// the requests before are answered, all they caused is here: "nothing else came" is
    /// checked without waiting out a time window, which a merely late message would pass.
    pub fn messages_before_barrier(&mut self) -> Vec<Value> {
        let id = self.send_request(
            "ghostline/documentText",
            json!({"textDocument": {"uri": "file:///ghostline-test-barrier"}}),
        );
        let answer = self.response(id, TIMEOUT);
        assert!(
            answer.get("error").is_none(),
            "the barrier request failed: {answer}"
        );
        self.backlog.drain(..).collect()
    }

    /// The notifications with this method sent before a barrier (see
    /// `messages_before_barrier`); the other messages stay in the backlog.
    pub fn notifications_before_barrier(&mut self, method: &str) -> Vec<Value> {
        let (matching, rest): (Vec<Value>, Vec<Value>) = self
            .messages_before_barrier()
            .into_iter()
            .partition(|m| m.get("method").and_then(Value::as_str) == Some(method));
        self.backlog = rest.into();
        matching
    }

    /// Everything received and not yet consumed (waits `wait` for more first).
    pub fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        while let Some(message) = self.next_message(deadline) {
            self.backlog.push_back(message);
        }
        self.backlog.drain(..).collect()
    }

    pub fn open(&mut self, uri: &str, language: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}}),
        );
    }

    pub fn document_text(&mut self, uri: &str) -> Value {
        self.request_ok(
            "ghostline/documentText",
            json!({"textDocument": {"uri": uri}}),
        )
    }

    pub fn inline_completion_params(uri: &str, line: u32, character: u32) -> Value {
        json!({
            "textDocument": {"uri": uri},
            "position": {"line": line, "character": character},
            "context": {"triggerKind": 2}
        })
    }

    /// Sends shutdown and exit; returns the exit status.
    pub fn shutdown(mut self) -> ExitStatus {
        let result = self.request("shutdown", Value::Null);
        assert!(result.get("error").is_none(), "shutdown failed: {result}");
        self.notify("exit", Value::Null);
        self.wait_exit(Duration::from_secs(10))
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("ghostline-lsp did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdin_take(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for LspClient {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port with nothing listening on it (bound, noted, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real backend, `ghostline-serve`, on a free port.
pub struct Backend {
    pub child: Child,
    pub port: u16,
}

impl Backend {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn serve_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("GHOSTLINE_SERVE_BIN") {
        return Some(PathBuf::from(path)).filter(|p| p.exists());
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    // The debug binary first: `cargo test` has just built it from this source, whereas a
    // release binary may be left over from an older build.
    ["debug", "release"]
        .iter()
        .map(|profile| target.join(profile).join("ghostline-serve"))
        .find(|p| p.exists())
}

/// `$GHOSTLINE_CACHE`, or `~/.cache/ghostline`, as run.sh and test.sh read it.
pub fn cache_root() -> PathBuf {
    match std::env::var_os("GHOSTLINE_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
            .join(".cache/ghostline"),
    }
}

pub fn tiny_model_dir() -> PathBuf {
    std::env::var("GHOSTLINE_TINY_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| cache_root().join("models/tiny-qwen2-genai"))
}

pub fn default_model_dir() -> PathBuf {
    std::env::var("GHOSTLINE_DEFAULT_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| cache_root().join("models/qwen2.5-coder-0.5b-instruct-q4km-cpu"))
}

/// Written straight to the stderr handle, which libtest does not capture, so a skip is
/// seen even when the test "passes".
pub fn loud(message: &str) {
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!! {message} !!!!!!!!\n");
}

/// A missing backend fails the test: a test that passes without the real thing would say
/// more than it checked. `GHOSTLINE_ALLOW_SKIP=1` turns that into a loud skip for a developer
/// who knows; `CI=true` never allows it.
pub fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {reason}");
    }
    if std::env::var("GHOSTLINE_ALLOW_SKIP").is_ok_and(|v| v == "1") {
        loud(&format!("SKIPPED (GHOSTLINE_ALLOW_SKIP=1): {reason}"));
        return;
    }
    panic!("{reason}; set GHOSTLINE_ALLOW_SKIP=1 to skip tests that need it (loudly)");
}

/// Starts ghostline-serve with `model_dir` on `port` (a free one when `None`), waiting until
/// it is ready. `None`, with a loud message, when the binary or the model is missing.
pub fn start_backend(
    model_dir: PathBuf,
    port: Option<u16>,
    extra_args: &[&str],
) -> Option<Backend> {
    let Some(binary) = serve_binary() else {
        skip("no ghostline-serve binary (cargo build -p ghostline-serve, or set GHOSTLINE_SERVE_BIN)");
        return None;
    };
    if !model_dir.join("ghostline.json").exists() {
        skip(&format!(
            "no model at {} (./test.sh makes it)",
            model_dir.display()
        ));
        return None;
    }
    let port = port.unwrap_or_else(free_port);
    let child = Command::new(binary)
        .args([
            "--model",
            model_dir.to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--device",
            "cpu",
            "--threads",
            "1",
        ])
        .args(extra_args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ghostline-serve");
    let mut backend = Backend { child, port };
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(status) = backend.child.try_wait().unwrap() {
            panic!("ghostline-serve exited during start-up: {status}");
        }
        if http_get_status(port, "/ready") == Some(200) {
            return Some(backend);
        }
        assert!(
            Instant::now() < deadline,
            "ghostline-serve not ready after 180 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A connection to 127.0.0.1:`port` that has sent `GET path` (`None` when nothing answers).
fn send_get(port: u16, path: &str) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    Some(stream)
}

pub fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = send_get(port, path)?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The body of `GET path` on 127.0.0.1:`port` (`None` when nothing answers).
pub fn http_get_body(port: u16, path: &str) -> Option<String> {
    let mut stream = send_get(port, path)?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_string())
}

/// Waits until ghostline-serve on `port` says a request is running (`/metrics`,
/// `ghostline_num_requests_running`, the gauge routers scale by): a stream is under way.
pub fn wait_until_a_request_runs(port: u16) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let metrics = http_get_body(port, "/metrics").unwrap_or_default();
        let running = metrics
            .lines()
            .find_map(|line| line.strip_prefix("ghostline_num_requests_running "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if running >= 1.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no request ran at the backend within {TIMEOUT:?}:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How a raw TCP "backend" misbehaves.
#[derive(Clone, Copy)]
pub enum Misbehaviour {
    /// Accepts, reads the request, never answers.
    Stall,
    /// Answers 200 with an SSE stream, sends one chunk, then closes the socket.
    DieMidStream,
}

/// A raw TCP server on a free port that misbehaves on every connection, for the cases a
/// real server cannot be made to produce deterministically. Returns the port.
pub fn misbehaving_server(how: Misbehaviour) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buffer = [0u8; 65536];
                let _ = stream.set_read_timeout(Some(Duration::from_millis(300)));
                let mut request = Vec::new();
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buffer[..n]);
                }
                let is_models = request.starts_with(b"GET /v1/models");
                match how {
                    Misbehaviour::Stall => std::thread::sleep(Duration::from_secs(60)),
                    Misbehaviour::DieMidStream if is_models => {
                        let body = r#"{"object":"list","data":[{"id":"m","object":"model","owned_by":"test"}]}"#;
                        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}", body.len(), body);
                    }
                    Misbehaviour::DieMidStream => {
                        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
                        let event = "data: {\"choices\":[{\"text\":\"partial\",\"index\":0}]}\n\n";
                        let _ = write!(stream, "{:x}\r\n{}\r\n", event.len(), event);
                        let _ = stream.flush();
                        std::thread::sleep(Duration::from_millis(100));
                        // Dropping the socket mid-chunked-body: the stream breaks off.
                    }
                }
            });
        }
    });
    port
}

/// A backend the test controls: it answers `/v1/models` at once and holds every streaming
/// completion open, its request read and no byte answered, until the test calls `release`.
/// "Still waiting on the backend" is then certain, whatever the machine's load, instead of
/// guessed from a stopwatch.
pub struct HeldBackend {
    pub port: u16,
    /// One message per streaming completion request that arrived and is being held.
    arrived: Receiver<()>,
    /// One message per held completion whose client closed the connection.
    client_gone: Receiver<()>,
    released: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HeldBackend {
    pub fn start() -> Self {
        Self::start_with_first_text(None)
    }

    /// Sends `first` at once as the stream's first text, then holds the rest (`first` again,
    /// then `[DONE]`) until `release`: a suggestion that is already streaming.
    pub fn streaming_first(first: &'static str) -> Self {
        Self::start_with_first_text(Some(first))
    }

    fn start_with_first_text(first: Option<&'static str>) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (arrived_tx, arrived) = mpsc::channel();
        let (gone_tx, client_gone) = mpsc::channel();
        let released = Arc::new(AtomicBool::new(false));
        let flag = released.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let (arrived_tx, gone_tx, flag) =
                    (arrived_tx.clone(), gone_tx.clone(), flag.clone());
                std::thread::spawn(move || {
                    let Some((head, body)) = read_http_request(&mut stream) else {
                        return;
                    };
                    if head.starts_with("GET /v1/models") {
                        let body = r#"{"object":"list","data":[{"id":"m","object":"model","owned_by":"test"}]}"#;
                        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}", body.len(), body);
                        return;
                    }
                    let streaming = serde_json::from_slice::<Value>(&body)
                        .map(|b| b["stream"] == json!(true))
                        .unwrap_or(false);
                    if !head.starts_with("POST /v1/completions") || !streaming {
                        let _ = write!(stream, "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
                        return;
                    }
                    let event = |text: &str| {
                        let event = format!(
                            "data: {{\"choices\":[{{\"text\":\"{text}\",\"index\":0}}]}}\n\n"
                        );
                        format!("{:x}\r\n{event}\r\n", event.len())
                    };
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
                    if let Some(first) = first {
                        let _ = write!(stream, "{head}{}", event(first));
                        let _ = stream.flush();
                    }
                    let _ = arrived_tx.send(());
                    // Hold, watching for the client closing the connection.
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
                    let mut byte = [0u8; 1];
                    while !flag.load(Ordering::SeqCst) {
                        match stream.read(&mut byte) {
                            Ok(0) => {
                                let _ = gone_tx.send(());
                                return;
                            }
                            Ok(_) => {}
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => {
                                let _ = gone_tx.send(());
                                return;
                            }
                        }
                    }
                    let done = "data: [DONE]\n\n";
                    let rest = format!(
                        "{}{:x}\r\n{done}\r\n0\r\n\r\n",
                        event(first.unwrap_or("held")),
                        done.len()
                    );
                    let head = if first.is_none() { head } else { "" };
                    let _ = write!(stream, "{head}{rest}");
                });
            }
        });
        HeldBackend {
            port,
            arrived,
            client_gone,
            released,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until a streaming completion request has arrived and is being held (`within` is a
    /// hang guard: the test fails if none comes).
    pub fn wait_for_completion(&self, within: Duration) {
        self.arrived.recv_timeout(within).unwrap_or_else(|_| {
            panic!("no completion request reached the backend within {within:?}")
        });
    }

    /// Waits until the client closed a held completion's connection (hang guard `within`).
    pub fn wait_for_client_gone(&self, within: Duration) {
        self.client_gone.recv_timeout(within).unwrap_or_else(|_| {
            panic!("the held completion's connection was not closed within {within:?}")
        });
    }

    /// Lets every held completion (and any later one) answer `held`, then `[DONE]`.
    pub fn release(&self) {
        self.released
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One HTTP/1.1 request: the head (request line and headers) and a `Content-Length` body.
pub fn read_http_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 65536];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buffer).ok().filter(|&n| n > 0)?;
        data.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut buffer).ok().filter(|&n| n > 0)?;
        data.extend_from_slice(&buffer[..n]);
    }
    Some((head, data[head_end..head_end + length].to_vec()))
}

/// `inlineCompletion` result items.
pub fn items(response: &Value) -> Vec<Value> {
    let result = &response["result"];
    result
        .get("items")
        .or(Some(result))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// An inline completion item's text (a plain string or a snippet `StringValue`).
pub fn insert_text(item: &Value) -> String {
    item["insertText"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            item["insertText"]["value"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
}

/// A fresh empty folder under the system temp dir (`tempfile`: a unique name, removed when
/// dropped); `.0` is its path.
pub struct TempDir(pub PathBuf, tempfile::TempDir);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ghostline-{name}-"))
            .tempdir()
            .unwrap();
        Self(dir.path().to_path_buf(), dir)
    }

    /// Writes `text` at `relative` (creating folders); returns the absolute path.
    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn uri(&self, relative: &str) -> String {
        format!("file://{}", self.0.join(relative).display())
    }
}

/// An OpenAI-style backend that records every `/v1/completions` body and answers with a
/// short SSE stream; `/v1/models` reports `family` and the Qwen markers.
pub struct RecordingServer {
    pub port: u16,
    pub bodies: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl RecordingServer {
    pub fn start(family: &str) -> Self {
        Self::start_reporting(family, None)
    }

    /// Like `start`, with `/v1/models` also reporting `speed` and `token_healing` (as
    /// ghostline-serve does).
    pub fn start_with_speed(
        family: &str,
        prefill_tokens_per_s: f64,
        decode_tokens_per_s: f64,
    ) -> Self {
        Self::start_reporting(
            family,
            Some(ghostline_protocol::Speed {
                prefill_tokens_per_s: Some(prefill_tokens_per_s),
                decode_tokens_per_s: Some(decode_tokens_per_s),
            }),
        )
    }

    /// `/v1/models` built from the wire contract's types, as ghostline-serve builds it.
    fn start_reporting(family: &str, speed: Option<ghostline_protocol::Speed>) -> Self {
        let marker = |m: &str| Some(m.to_string());
        let models = ghostline_protocol::ModelList {
            object: "list".into(),
            data: vec![ghostline_protocol::ModelCard {
                id: "recorder".into(),
                object: "model".into(),
                owned_by: "test".into(),
                family: Some(family.into()),
                context_length: Some(8192),
                fim: Some(ghostline_protocol::FimInfo {
                    prefix: marker("<|fim_prefix|>"),
                    suffix: marker("<|fim_suffix|>"),
                    middle: marker("<|fim_middle|>"),
                    repo_name: marker("<|repo_name|>"),
                    file_sep: marker("<|file_sep|>"),
                    template: marker("<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"),
                }),
                token_healing: speed.is_some(),
                speed,
                ..Default::default()
            }],
        };
        Self::start_with_models(serde_json::to_value(models).unwrap())
    }

    /// Reports what ghostline-serve's `/v1/models` reports for the default model
    /// (Qwen2.5-Coder-0.5B-Instruct): its `ghostline.json`'s name as the id, family, context
    /// length and `fim`, `token_healing`, and a `speed` not measured yet. The model's
    /// `ghostline.json` is read when it is there (`GHOSTLINE_DEFAULT_MODEL`); otherwise the same
    /// values, as that file has them.
    pub fn start_as_default_model() -> Self {
        let config: Value = std::fs::read_to_string(default_model_dir().join("ghostline.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| {
                json!({"name": "qwen2.5-coder-0.5b-instruct", "family": "qwen2.5-coder",
                       "context_length": 32768,
                       "fim": {"prefix": "<|fim_prefix|>", "suffix": "<|fim_suffix|>", "middle": "<|fim_middle|>",
                               "repo_name": "<|repo_name|>", "file_sep": "<|file_sep|>",
                               "template": "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"}})
            });
        let models = json!({"object": "list", "data": [{
            "id": config["name"], "object": "model", "created": 0, "owned_by": "ghostline",
            "family": config["family"], "context_length": config["context_length"],
            "fim": config["fim"],
            "speed": {"prefill_tokens_per_s": null, "decode_tokens_per_s": null},
            "token_healing": true
        }]});
        Self::start_with_models(models)
    }

    fn start_with_models(models: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = bodies.clone();
        let models = models.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let recorded = recorded.clone();
                let models = models.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let Some((request_line, body)) = read_http_request(&mut stream) else {
                        return;
                    };
                    if request_line.starts_with("GET /v1/models") {
                        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}", models.len(), models);
                        return;
                    }
                    let body = serde_json::from_slice::<Value>(&body).ok();
                    let not_streamed = body.as_ref().is_some_and(|b| b["stream"] == json!(false));
                    if let Some(body) = body {
                        recorded.lock().unwrap().push(body);
                    }
                    if not_streamed {
                        // A warm-up (`max_tokens: 0`): one JSON body, as ghostline-serve answers.
                        let answer = json!({"object": "text_completion", "choices": [{"text": "", "index": 0, "finish_reason": "length"}],
                                            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}})
                        .to_string();
                        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}", answer.len(), answer);
                        return;
                    }
                    let events = "data: {\"choices\":[{\"text\":\"value\",\"index\":0,\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"text\":\"\",\"index\":0,\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
                    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}", events.len(), events);
                });
            }
        });
        Self { port, bodies }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Prompts of the completions received so far (warm-ups, `max_tokens: 0`, left out).
    pub fn prompts(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["max_tokens"] != json!(0))
            .map(|b| {
                b["prompt"].as_str().unwrap_or("").to_string() + b["suffix"].as_str().unwrap_or("")
            })
            .collect()
    }
}

impl LspClient {
    /// Spawns and initializes with `root` as the workspace folder.
    pub fn start_in_workspace(root: &std::path::Path, capabilities: Value, options: Value) -> Self {
        Self::start_in_workspace_with(Self::spawn(), root, capabilities, options)
    }

    /// `start_in_workspace` for a client spawned by the caller (another env, a log file).
    pub fn start_in_workspace_with(
        mut client: Self,
        root: &std::path::Path,
        capabilities: Value,
        options: Value,
    ) -> Self {
        let uri = format!("file://{}", root.display());
        let name = root.file_name().unwrap().to_str().unwrap().to_string();
        client.request_ok(
            "initialize",
            json!({"processId": null, "rootUri": uri, "capabilities": capabilities,
                   "workspaceFolders": [{"uri": uri, "name": name}],
                   "initializationOptions": options}),
        );
        client.notify("initialized", json!({}));
        client
    }

    pub fn index_status(&mut self) -> Value {
        self.request_ok(
            "workspace/executeCommand",
            json!({"command": "ghostline.indexStatus", "arguments": []}),
        )
    }

    /// Waits until the index reports ready and `done` holds for its status.
    pub fn wait_index(&mut self, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let status = self.index_status();
            if status["ready"] == json!(true) && done(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "index not ready: {status}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Asks for a suggestion in `uri` at line 1, character 11 (the end of a `def name(x):` body
/// line in the tests that use it): whether one came. When none did, nothing of `uri` may
/// have reached the backend either.
pub fn suggests(client: &mut LspClient, server: &RecordingServer, uri: &str) -> bool {
    let before = server.prompts().len();
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(uri, 1, 11),
    );
    assert!(response.get("error").is_none(), "{response}");
    let suggested = !items(&response).is_empty();
    if !suggested {
        assert_eq!(
            server.prompts().len(),
            before,
            "a prompt went out for {uri}"
        );
    }
    suggested
}
