//! Starts the real `ghostline-serve` binary on a free port and talks to it over HTTP.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub fn cache_root() -> PathBuf {
    std::env::var_os("GHOSTLINE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/ghostline"))
}

/// A model directory the tests need. `GHOSTLINE_PREPARE_ONLY=1 ./run.sh` (from the repository
/// root) prepares ONNX Runtime and the default model; the tiny random-weight ones are then made
/// by `inference-backend/scripts/make_tiny_model.py`, as `./test.sh` does before it runs every
/// test. A missing one is a failure, not a skip, so CI can never pass without really running
/// the model.
pub fn model_dir(env: &str, name: &str) -> PathBuf {
    let dir = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_root().join("models").join(name));
    assert!(
        dir.join("ghostline.json").is_file(),
        "model {} is missing (or set {env}): `GHOSTLINE_PREPARE_ONLY=1 ./run.sh` prepares the \
         default model; `./test.sh` prepares that and the tiny ones (its make_tiny_model.py \
         lines), then runs every test",
        dir.display()
    );
    dir
}

pub fn tiny_genai() -> PathBuf {
    model_dir("GHOSTLINE_TINY_GENAI", "tiny-qwen2-genai")
}

pub fn tiny_optimum() -> PathBuf {
    model_dir("GHOSTLINE_TINY_OPTIMUM", "tiny-qwen2-optimum")
}

/// The float16 CUDA variant of the same tiny GGUF (float16 weights, KV and logits); ONNX
/// Runtime's CPU provider runs it too, which tests the server's f16 path here.
pub fn tiny_cuda_fp16() -> PathBuf {
    model_dir("GHOSTLINE_TINY_CUDA_FP16", "tiny-qwen2-genai-cuda-fp16")
}

pub fn default_model() -> PathBuf {
    model_dir(
        "GHOSTLINE_DEFAULT_MODEL",
        "qwen2.5-coder-0.5b-instruct-q4km-cpu",
    )
}

pub struct Server {
    child: Child,
    pub base: String,
    pub log: Arc<Mutex<String>>,
}

impl Server {
    pub fn start(model: &Path, extra: &[&str]) -> Server {
        Self::start_with_env(model, extra, &[])
    }

    pub fn start_with_env(model: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::try_start(model, extra, env)
            .unwrap_or_else(|log| panic!("server did not become ready:\n{log}"))
    }

    /// Starts the server and waits for /ready; on failure returns what it logged.
    pub fn try_start(model: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<Server, String> {
        let threads = if extra.contains(&"--threads") {
            &[][..]
        } else {
            &["--threads", "1"][..]
        };
        // The 60 s default was seen to end answers of the batching tests early on a two-core
        // machine busy with other work (a run of the evaluation and cargo builds beside them),
        // which then read as wrong answers; tests of the timeout itself pass their own.
        let timeout = if extra.contains(&"--request-timeout") {
            &[][..]
        } else {
            &["--request-timeout", "900"][..]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_ghostline-serve"))
            .args(["--port", "0", "--device", "cpu", "--model"])
            .arg(model)
            .args(threads)
            .args(timeout)
            .args(extra)
            .env("GHOSTLINE_LOG", "info,ort=warn,ghostline_serve=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ghostline-serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    // `http://ADDR` or, with --tls-cert, `https://ADDR`.
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = addr_tx.send(addr);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(180);
        let addr = loop {
            if let Ok(addr) = addr_rx.recv_timeout(Duration::from_millis(100)) {
                break addr;
            }
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                let _ = child.kill();
                std::thread::sleep(Duration::from_millis(200));
                return Err(log.lock().unwrap().clone());
            }
        };
        let server = Server {
            child,
            base: addr,
            log,
        };
        if server.base.starts_with("https://") {
            // The blocking poll below speaks plain HTTP only; TLS tests wait with their own
            // client, which trusts their certificate (`tls::wait_ready`).
            return Ok(server);
        }
        let mut server = server;
        loop {
            if let Ok(resp) = raw_http::get_status(&format!("{}/ready", server.base)) {
                if resp == 200 {
                    return Ok(server);
                }
            }
            if server.child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                std::thread::sleep(Duration::from_millis(200));
                return Err(server.log.lock().unwrap().clone());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the process to end by itself (for start-up refusals).
    pub fn exit_status(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Sends a signal (`TERM`, `HUP`, …) to the server process.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the binary to completion (for refusals at start-up) and returns (success, stderr). A
/// server that does not refuse is killed after 60 s and counts as a failure (success false,
/// its log with a note), so a test of a refusal cannot hang.
pub fn run_to_exit(model: &Path, extra: &[&str]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ghostline-serve"))
        .args([
            "--port",
            "0",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--model",
        ])
        .arg(model)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ghostline-serve");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = reader.join().unwrap_or_default();
    if status.is_none() {
        log.push_str("\n(still running after 60 s: killed)\n");
    }
    (status.is_some_and(|s| s.success()), log)
}

/// A blocking GET for polling, without a second HTTP client.
mod raw_http {
    use std::io::{Read, Write};
    pub fn get_status(url: &str) -> std::io::Result<u16> {
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest
            .split_once('/')
            .map(|(h, p)| (h, format!("/{p}")))
            .unwrap_or((rest, "/".into()));
        let mut stream = std::net::TcpStream::connect(host)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut buf = String::new();
        stream.read_to_string(&mut buf)?;
        buf.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("bad response"))
    }
}

/// POSTs `body` as JSON and returns the JSON answer (panics on a transport or JSON error).
pub async fn post_json(url: impl reqwest::IntoUrl, body: &serde_json::Value) -> serde_json::Value {
    reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// GETs `url` and returns its JSON answer.
pub async fn get_json(url: impl reqwest::IntoUrl) -> serde_json::Value {
    reqwest::Client::new()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Parses an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim_start().to_string())
        .collect()
}

pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} not found in:\n{text}"))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// The server's Prometheus text.
pub async fn metrics_text(server: &Server) -> String {
    client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Scrapes /metrics until `ready` holds for its text (an event the server publishes: a gauge
/// reached, a counter passed) and returns that text. Gives up after a minute, a net for a server
/// that never gets there, reporting `what` was awaited and the last text.
pub async fn wait_for_metrics(server: &Server, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = metrics_text(server).await;
        if ready(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never saw {what}:\n{text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// POSTs a completion request; the status and the JSON body (Null when it is not JSON).
pub async fn complete(
    server: &Server,
    body: impl std::borrow::Borrow<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let resp = client()
        .post(server.url("/v1/completions"))
        .json(body.borrow())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// POSTs raw bytes as a completion request; the status and the JSON body (Null when it is not JSON).
pub async fn post_raw(server: &Server, body: Vec<u8>) -> (u16, serde_json::Value) {
    let resp = client()
        .post(server.url("/v1/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}
