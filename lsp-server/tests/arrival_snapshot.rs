//! A request works on the document as it was when it arrived. An editor sends a keystroke's
//! didChange right behind the completion request it triggered; the request must not see the
//! later text. Here, per round and per fresh document: didOpen `def alpha_N`, a completion
//! request at the end of that line, and a didChange to `def beta_N`, written in one go. The
//! prompts the real ghostline-serve (tiny model) received are recorded by a proxy in front of
//! it: each round's prompt must hold `alpha_N` and never `beta_N`.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::{read_http_request, start_backend, tiny_model_dir, LspClient, TIMEOUT};
use serde_json::{json, Value};

/// Rounds per request kind: enough that the old code (which read the document when the
/// request ran) put the later text in a prompt many times over.
const INLINE_ROUNDS: usize = 60;
const COMPLETION_ROUNDS: usize = 16;

/// Forwards each HTTP request to `backend` (one request per connection) and records the
/// completion prompts (prompt + suffix) it carried; warm-ups (`max_tokens: 0`) are left out.
struct RecordingProxy {
    port: u16,
    prompts: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    fn start(backend_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let prompts = Arc::new(Mutex::new(Vec::new()));
        let recorded = prompts.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let recorded = recorded.clone();
                std::thread::spawn(move || forward(client, backend_port, &recorded));
            }
        });
        Self { port, prompts }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn prompts(&self) -> Vec<String> {
        self.prompts.lock().unwrap().clone()
    }
}

fn forward(mut client: TcpStream, backend_port: u16, recorded: &Mutex<Vec<String>>) {
    let Some((head, body)) = read_http_request(&mut client) else {
        return;
    };
    if let Ok(request) = serde_json::from_slice::<Value>(&body) {
        if request["max_tokens"] != json!(0) {
            if let Some(prompt) = request["prompt"].as_str() {
                let suffix = request["suffix"].as_str().unwrap_or("");
                recorded.lock().unwrap().push(format!("{prompt}{suffix}"));
            }
        }
    }
    // One request per connection: the backend closes it after answering, and so do we.
    let head: String = head
        .trim_end()
        .lines()
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .map(|line| format!("{line}\r\n"))
        .collect();
    let Ok(mut backend) = TcpStream::connect(("127.0.0.1", backend_port)) else {
        return;
    };
    let _ = backend.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
    let _ = backend.write_all(&body);
    let mut buffer = [0u8; 16 * 1024];
    while let Ok(n) = backend.read(&mut buffer) {
        if n == 0 || client.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
}

fn frame(message: &Value) -> Vec<u8> {
    let body = serde_json::to_vec(message).unwrap();
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Runs `rounds` rounds of didOpen alpha / `method` / didChange beta, each written to the
/// server's stdin in one write, and waits for each answer. Returns the documents' names.
fn race(client: &mut LspClient, dir: &std::path::Path, method: &str, rounds: usize) -> Vec<usize> {
    let mut sent = Vec::new();
    for round in 0..rounds {
        let n = round
            + if method == "textDocument/completion" {
                1000
            } else {
                0
            };
        let uri = format!("file://{}/doc_{n}.py", dir.display());
        let alpha = format!("def alpha_{n}");
        let id = 10_000 + n as i64;
        let mut bytes = frame(&json!({"jsonrpc": "2.0", "method": "textDocument/didOpen",
            "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": alpha}}}));
        bytes.extend(frame(&json!({"jsonrpc": "2.0", "id": id, "method": method,
            "params": LspClient::inline_completion_params(&uri, 0, alpha.len() as u32)})));
        bytes.extend(frame(
            &json!({"jsonrpc": "2.0", "method": "textDocument/didChange",
            "params": {"textDocument": {"uri": uri, "version": 2},
                       "contentChanges": [{"text": format!("def beta_{n}")}]}}),
        ));
        client.send_raw(&bytes);
        let answer = client.response(id, TIMEOUT);
        assert!(answer.get("error").is_none(), "{method} failed: {answer}");
        sent.push(n);
    }
    sent
}

#[test]
fn requests_work_on_the_document_as_it_was_when_they_arrived() {
    let Some(backend) = start_backend(tiny_model_dir(), None, &[]) else {
        return;
    };
    let proxy = RecordingProxy::start(backend.port);
    let dir = std::env::temp_dir().join(format!("ghostline-arrival-{}", std::process::id()));
    let (mut client, _) = LspClient::start(json!({}), json!({"backendUrl": proxy.url()}));

    let mut rounds = race(
        &mut client,
        &dir,
        "textDocument/inlineCompletion",
        INLINE_ROUNDS,
    );
    rounds.extend(race(
        &mut client,
        &dir,
        "textDocument/completion",
        COMPLETION_ROUNDS,
    ));

    let prompts = proxy.prompts();
    let later_text: Vec<usize> = rounds
        .iter()
        .copied()
        .filter(|n| prompts.iter().any(|p| p.contains(&format!("beta_{n}"))))
        .collect();
    let inline = later_text.iter().filter(|n| **n < 1000).count();
    assert!(
        later_text.is_empty(),
        "the text sent after the request was in the prompt of {inline} of {INLINE_ROUNDS} \
         inline requests and {} of {COMPLETION_ROUNDS} completion requests (rounds {later_text:?})",
        later_text.len() - inline
    );
    // Every round reached the backend, so a clean record is not an empty one.
    for n in &rounds {
        assert!(
            prompts.iter().any(|p| p.contains(&format!("alpha_{n}"))),
            "no prompt for round {n} reached the backend ({} prompts)",
            prompts.len()
        );
    }
    assert!(client.shutdown().success());
}
