//! One request, followed through both programs: an inline completion through the real
//! `ghostline-lsp` binary over stdio to a real `ghostline-serve` (the tiny random model). The LSP
//! logs the `X-Request-ID` it sends; the server logs the same id in the span of the request it
//! received and when its answer ended. Both logs are read; the ids must match.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{http_get_status, serve_binary, skip, tiny_model_dir, LspClient, TempDir, TIMEOUT};
use serde_json::json;

const URI: &str = "file:///project/calc.py";
const TEXT: &str = "import math\n\n\ndef area(radius):\n    \n\n\nprint(area(2.0))\n";
/// See `inline_completion.rs`: the tiny model says something with the prefix last.
const TINY_FIM_TEMPLATE: &str = "<|fim_suffix|>{suffix}<|fim_prefix|>{prefix}";

/// ghostline-serve logging each HTTP request (its span, at debug), its log lines sent to the
/// test as they are written.
struct LoggingServe {
    child: Child,
    port: u16,
    lines: Receiver<String>,
    /// Every line read from `lines` so far, for the failure message.
    seen: Vec<String>,
}

impl LoggingServe {
    fn start() -> Option<Self> {
        let Some(binary) = serve_binary() else {
            skip("no ghostline-serve binary (cargo build -p ghostline-serve, or set GHOSTLINE_SERVE_BIN)");
            return None;
        };
        let model = tiny_model_dir();
        if !model.join("ghostline.json").exists() {
            skip(&format!(
                "no model at {} (./test.sh makes it)",
                model.display()
            ));
            return None;
        }
        let port = common::free_port();
        let mut child = Command::new(binary)
            .args([
                "--model",
                model.to_str().unwrap(),
                "--port",
                &port.to_string(),
            ])
            .args(["--device", "cpu", "--threads", "1"])
            .env(
                "GHOSTLINE_LOG",
                "warn,ghostline_serve::http=debug,ghostline_serve::http::request_id=trace",
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ghostline-serve");
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let serve = Self {
            child,
            port,
            lines,
            seen: Vec::new(),
        };
        // As `common::start_backend`: the model loads after the port opens.
        let deadline = Instant::now() + Duration::from_secs(180);
        while http_get_status(port, "/ready") != Some(200) {
            assert!(
                Instant::now() < deadline,
                "ghostline-serve not ready after 180 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(serve)
    }

    /// Waits for a log line that contains every one of `parts`; the log so far when none comes.
    fn wait_for_line(&mut self, parts: &[&str]) -> String {
        let matches = |line: &str| parts.iter().all(|part| line.contains(part));
        if let Some(line) = self.seen.iter().find(|line| matches(line)) {
            return line.clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "ghostline-serve logged no line with {parts:?}; its log:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for LoggingServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `request_id=` values of the LSP's log lines that contain `what`.
fn lsp_request_ids(log: &str, what: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains(what))
        .filter_map(|line| line.split("request_id=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|id| id.trim_matches('"').to_string())
        .collect()
}

#[test]
fn one_completion_has_the_same_request_id_in_both_programs_logs() {
    let Some(mut serve) = LoggingServe::start() else {
        return;
    };
    let logs = TempDir::new("request-id-logs");
    let lsp_log: PathBuf = logs.0.join("lsp.log");
    let client = LspClient::spawn_with_stderr(
        &[(
            "GHOSTLINE_LSP_LOG",
            "warn,ghostline_lsp::backend=debug,ghostline_lsp::server::dispatch=info",
        )],
        Stdio::from(std::fs::File::create(&lsp_log).unwrap()),
    );
    let mut client = client;
    client.request_ok(
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": {},
               "initializationOptions": {"backendUrl": format!("http://127.0.0.1:{}", serve.port),
                   "timeoutMs": 20000, "maxTokens": 8, "fimTemplate": TINY_FIM_TEMPLATE}}),
    );
    client.notify("initialized", json!({}));
    client.open(URI, "python", TEXT);
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(URI, 4, 4),
    );
    assert!(response.get("error").is_none(), "{response}");
    assert!(client.shutdown().success());

    let log = std::fs::read_to_string(&lsp_log).unwrap();
    let sent = lsp_request_ids(&log, "backend request sent request_id=");
    let completions: Vec<&String> = sent
        .iter()
        .filter(|id| {
            log.lines().any(|line| {
                line.contains("backend request sent")
                    && line.contains(&format!("request_id={id} "))
                    && line.contains("/v1/completions")
            })
        })
        .collect();
    assert!(
        !completions.is_empty(),
        "the LSP logged no completion request it sent; its log:\n{log}"
    );
    for id in completions {
        // The line sits in the span of the LSP message that asked for it (`server::dispatch`
        // opens one per message), so an editor's request can be followed to the backend's.
        let sent_line = log
            .lines()
            .find(|line| {
                line.contains("backend request sent") && line.contains(&format!("request_id={id} "))
            })
            .unwrap();
        assert!(
            sent_line.contains("lsp{method=textDocument/inlineCompletion id="),
            "the LSP's line for {id} is not in its message's span: {sent_line}"
        );
        // The LSP saw this request's answer end, ...
        assert!(
            lsp_request_ids(&log, "backend answer ended").contains(id),
            "the LSP logged no end of {id}'s answer; its log:\n{log}"
        );
        // ... and ghostline-serve handled it under the same id, to the end of its answer.
        let received = serve.wait_for_line(&[&format!("id={id} "), "/v1/completions", "received"]);
        assert!(received.contains("method=POST"), "{received}");
        serve.wait_for_line(&[&format!("id={id} "), "answer ended", "status=200"]);
    }
}
