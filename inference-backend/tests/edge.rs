//! The server's edge, probed like an attacker would: keys that belong to owners (limits, hashed
//! keys, reload on SIGHUP), no prefix-cache reuse across owners, the audit log, HTTPS with a
//! generated certificate, odd HTTP, and connections that never finish their headers. The real
//! binary, the tiny model, real sockets.

#[path = "../../tests/support/certificates.rs"]
mod certificates;
mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    time::Duration,
};

use common::{client, metric, metrics_text, sse_data, tiny_genai, Server};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A prompt of a few hundred tokens that no other test sends.
fn long_prompt(tag: &str) -> String {
    (0..40)
        .map(|i| format!("fn {tag}_helper_{i}(x: u32) -> u32 {{ x + {i} }}\n"))
        .collect()
}

async fn post(server: &Server, key: &str, body: &Value) -> reqwest::Response {
    client()
        .post(server.url("/v1/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn cached_tokens(server: &Server, key: &str, prompt: &str) -> (u64, u64) {
    let resp = post(
        server,
        key,
        &json!({"prompt": prompt, "max_tokens": 1, "temperature": 0}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    (
        answer["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap(),
        answer["usage"]["prompt_tokens"].as_u64().unwrap(),
    )
}

/// Waits until `/metrics` holds every line of `lines` (the per-owner counters move when an
/// answer's body has ended, a moment after the client has read it).
async fn metrics_with(server: &Server, lines: &[&str]) -> String {
    let mut text = String::new();
    for _ in 0..50 {
        text = metrics_text(server).await;
        if lines.iter().all(|l| text.contains(l)) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("missing some of {lines:?} in:\n{text}");
}

#[tokio::test]
async fn another_owner_never_reuses_or_times_an_owners_cached_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!(
            "alice key-of-alice\nbob sha256:{}\ncarol key-of-carol group=team\ndave key-of-dave group=team\n",
            sha256_hex("key-of-bob")
        ),
    )
    .unwrap();
    let server = Server::start(&tiny_genai(), &["--api-key-file", keys.to_str().unwrap()]);
    let prompt = long_prompt("tenant");

    let (cold, total) = cached_tokens(&server, "key-of-alice", &prompt).await;
    assert_eq!(cold, 0, "nobody sent this prompt before");
    assert!(total > 200);
    let prefilled_before = metric(
        &metrics_text(&server).await,
        "ghostline_prefilled_tokens_total",
    );
    // The attacker: bob (a hashed key) sends alice's prompt, and a prompt that shares its start.
    let (stolen, _) = cached_tokens(&server, "key-of-bob", &prompt).await;
    assert_eq!(stolen, 0, "bob reused alice's KV");
    let prefilled_after = metric(
        &metrics_text(&server).await,
        "ghostline_prefilled_tokens_total",
    );
    assert!(
        prefilled_after - prefilled_before >= total as f64,
        "bob's request must compute every prompt token, as a cold prompt does ({prefilled_before} -> {prefilled_after})"
    );
    let (shared_start, _) =
        cached_tokens(&server, "key-of-bob", &format!("{prompt}fn more() {{}}\n")).await;
    assert!(
        shared_start > total / 2,
        "bob's own follow-up reuses bob's own entry ({shared_start} of {total})"
    );
    // Alice's own follow-up still hits her entry.
    let (own, _) = cached_tokens(&server, "key-of-alice", &prompt).await;
    assert!(own >= total - 1, "alice's own follow-up: {own} of {total}");

    // A shared group shares; outside it nothing does.
    // (It starts unlike alice's earlier prompt, so alice's own entry shares nothing with it.)
    let team_prompt = format!("// team\n{}", long_prompt("team"));
    assert_eq!(
        cached_tokens(&server, "key-of-carol", &team_prompt).await.0,
        0
    );
    assert!(cached_tokens(&server, "key-of-dave", &team_prompt).await.0 > 0);
    assert_eq!(
        cached_tokens(&server, "key-of-alice", &team_prompt).await.0,
        0
    );

    let text = metrics_with(
        &server,
        &["ghostline_owner_requests_total{owner=\"bob\",status=\"200\"} 2"],
    )
    .await;
    assert!(!text.contains("key-of"), "a key leaked into /metrics");
}

#[tokio::test]
async fn limits_answer_429_with_retry_after_and_count_per_owner() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        "alice a-key rpm=2\nbob b-key\ncarol c-key streams=1\ndave d-key tpm=5\n",
    )
    .unwrap();
    let server = Server::start(&tiny_genai(), &["--api-key-file", keys.to_str().unwrap()]);
    let small = json!({"prompt": "x", "max_tokens": 2, "temperature": 0});

    assert_eq!(post(&server, "a-key", &small).await.status(), 200);
    assert_eq!(post(&server, "a-key", &small).await.status(), 200);
    let refused = post(&server, "a-key", &small).await;
    assert_eq!(refused.status(), 429);
    let after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&after), "Retry-After {after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_exceeded");
    // Another owner is not affected.
    assert_eq!(post(&server, "b-key", &small).await.status(), 200);
    // /v1/models does not count against the request limit.
    let models = client()
        .get(server.url("/v1/models"))
        .bearer_auth("a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);

    // streams=1: a second request while the first streams is refused; after it, accepted.
    let long = json!({"prompt": "x", "max_tokens": 400, "temperature": 0, "ignore_eos": true, "stream": true});
    let mut first = post(&server, "c-key", &long).await;
    assert_eq!(first.status(), 200);
    let _ = first.chunk().await.unwrap();
    let second = post(&server, "c-key", &small).await;
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    while first.chunk().await.unwrap().is_some() {}
    drop(first);
    let mut again = 0;
    loop {
        // The slot is freed when the finished stream's body is dropped by the server.
        let status = post(&server, "c-key", &small).await.status();
        if status == 200 {
            break;
        }
        again += 1;
        assert!(again < 50, "carol's stream slot never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // tpm=5: 8 generated tokens use up the minute.
    let eight = json!({"prompt": "x", "max_tokens": 8, "temperature": 0, "ignore_eos": true});
    assert_eq!(post(&server, "d-key", &eight).await.status(), 200);
    let refused = post(&server, "d-key", &small).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));

    let text = metrics_with(
        &server,
        &[
            "ghostline_owner_requests_total{owner=\"alice\",status=\"429\"} 1",
            "ghostline_owner_rate_limited_total{owner=\"alice\",limit=\"rpm\"} 1",
            "ghostline_owner_rate_limited_total{owner=\"carol\",limit=\"streams\"} 1",
            "ghostline_owner_rate_limited_total{owner=\"dave\",limit=\"tpm\"} 1",
            "ghostline_owner_generated_tokens_total{owner=\"dave\"} 8",
        ],
    )
    .await;
    assert!(!text.contains("a-key") && !text.contains("d-key"));
}

#[tokio::test]
async fn the_key_file_reloads_on_sighup_without_dropping_streams() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "alice a-key\n").unwrap();
    let server = Server::start(&tiny_genai(), &["--api-key-file", keys.to_str().unwrap()]);
    let long = json!({"prompt": "x", "max_tokens": 200, "temperature": 0, "ignore_eos": true, "stream": true});
    let mut stream = post(&server, "a-key", &long).await;
    assert_eq!(stream.status(), 200);
    let mut body = String::from_utf8(stream.chunk().await.unwrap().unwrap().to_vec()).unwrap();

    std::fs::write(&keys, "bob b-key\n").unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut tries = 0;
    while post(&server, "b-key", &json!({"prompt": "x", "max_tokens": 1}))
        .await
        .status()
        != 200
    {
        tries += 1;
        assert!(
            tries < 100,
            "the new key never became valid:\n{}",
            server.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        post(&server, "a-key", &json!({"prompt": "x", "max_tokens": 1}))
            .await
            .status(),
        401,
        "a removed key is refused after the reload"
    );
    // The stream admitted under the old key runs to its end.
    while let Some(chunk) = stream.chunk().await.unwrap() {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let last: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(last["usage"]["completion_tokens"], 200);

    // A broken file keeps the keys in use.
    std::fs::write(&keys, "bob b-key rpm=nonsense\n").unwrap();
    Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    // The reload has been tried once the server says so; only then does "still valid" mean
    // that the broken file was refused.
    let mut tries = 0;
    while !server.log.lock().unwrap().contains("not reloaded") {
        tries += 1;
        assert!(
            tries < 100,
            "the broken key file was never reported:\n{}",
            server.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        post(&server, "b-key", &json!({"prompt": "x", "max_tokens": 1}))
            .await
            .status(),
        200
    );
}

/// Sends raw bytes and returns the status line's code and the body (after the blank line).
fn raw(server: &Server, request: &[u8]) -> (u16, String) {
    let addr = server.base.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn json_error(body: &str) -> Value {
    let value: Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not a JSON body: {body:?}"));
    assert!(value["error"]["message"].is_string(), "{value}");
    value
}

#[tokio::test]
async fn authorization_headers_odd_and_long_and_keys_in_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "the-key\n").unwrap();
    let server = Server::start(&tiny_genai(), &["--api-key-file", keys.to_str().unwrap()]);
    let body = r#"{"prompt":"x","max_tokens":1}"#;
    let request = |auth: &[u8], query: &str| {
        let mut r = format!(
            "POST /v1/completions{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(auth);
        r.extend_from_slice(b"\r\n");
        r.extend_from_slice(body.as_bytes());
        r
    };
    // RFC 7235: the scheme is case-insensitive.
    assert_eq!(
        raw(&server, &request(b"Authorization: bearer the-key\r\n", "")).0,
        200
    );
    assert_eq!(
        raw(&server, &request(b"Authorization: BEARER the-key\r\n", "")).0,
        200
    );
    // A key in the query string is refused, saying where it belongs.
    let (code, text) = raw(&server, &request(b"", "?api_key=the-key"));
    assert_eq!(code, 401);
    assert!(json_error(&text)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));
    let (code, _) = raw(
        &server,
        &request(b"Authorization: Bearer the-key\r\n", "?key=the-key"),
    );
    assert_eq!(code, 401);
    // Odd ones: 401 with a JSON body, never a crash.
    for odd in [
        &b"Authorization: Basic dGhlLWtleQ==\r\n"[..],
        b"Authorization: Bearer\r\n",
        b"Authorization: Bearer the-key extra\r\n",
        b"Authorization: Bearer \xff\xfe\xfd\r\n",
        b"Authorization: Bearer the-key\r\nAuthorization: Bearer the-key\r\n",
        b"Authorization: \r\n",
    ] {
        let (code, text) = raw(&server, &request(odd, ""));
        assert_eq!(code, 401, "{:?}", String::from_utf8_lossy(odd));
        json_error(&text);
    }
    // Long: 431 with a JSON body.
    let long = format!("Authorization: Bearer {}\r\n", "k".repeat(8 * 1024));
    let (code, text) = raw(&server, &request(long.as_bytes(), ""));
    assert_eq!(code, 431);
    json_error(&text);
    let huge = format!("X-Filler: {}\r\n", "f".repeat(100 * 1024));
    let (code, text) = raw(&server, &request(huge.as_bytes(), ""));
    assert_eq!(code, 431);
    json_error(&text);
    // Past hyper's own buffer: refused or closed, and the server carries on.
    let enormous = format!("X-Filler: {}\r\n", "f".repeat(2 * 1024 * 1024));
    let (code, _) = raw(&server, &request(enormous.as_bytes(), ""));
    assert!(code == 0 || code == 431, "{code}");
    assert_eq!(
        raw(
            &server,
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .0,
        200
    );
}

#[tokio::test]
async fn errors_axum_answers_by_itself_have_json_bodies() {
    let server = Server::start(&tiny_genai(), &[]);
    let (code, text) = raw(
        &server,
        b"GET /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 405);
    assert!(
        json_error(&text)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST"),
        "{text}"
    );
    let (code, text) = raw(
        &server,
        b"DELETE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 405);
    json_error(&text);
    // HEAD: no body allowed, but the error says it is JSON.
    let resp = client()
        .head(server.url("/v1/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let resp = client().head(server.url("/nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let (code, text) = raw(
        &server,
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 404);
    json_error(&text);
}

#[tokio::test]
async fn the_audit_log_has_counts_and_owners_but_no_text() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "alice alice-secret-key\n").unwrap();
    let audit = dir.path().join("audit.jsonl");
    let server = Server::start(
        &tiny_genai(),
        &[
            "--api-key-file",
            keys.to_str().unwrap(),
            "--audit-log",
            audit.to_str().unwrap(),
        ],
    );
    let marker = "zanzibar_quokka_password_hunter2";
    let prompt = format!("fn {marker}() {{\n    let {marker}_value = \"{marker}\";\n");
    let plain: Value = post(
        &server,
        "alice-secret-key",
        &json!({"prompt": prompt, "suffix": format!("// {marker} suffix\n}}"), "max_tokens": 12, "temperature": 0, "ignore_eos": true}),
    )
    .await
    .json()
    .await
    .unwrap();
    let completion = plain["choices"][0]["text"].as_str().unwrap().to_string();
    let streamed = post(
        &server,
        "alice-secret-key",
        &json!({"prompt": prompt, "max_tokens": 6, "temperature": 0, "ignore_eos": true, "stream": true}),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(streamed.contains("[DONE]"));
    let refused = client()
        .post(server.url("/v1/completions?marker=zanzibar"))
        .bearer_auth("wrong-key")
        .json(&json!({"prompt": prompt}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // Lines are written when each answer has ended.
    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        if lines.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lines.len(), 3, "{lines:?}");
    let log = lines.join("\n");
    assert!(
        !log.contains("zanzibar") && !log.contains("quokka") && !log.contains("hunter2"),
        "{log}"
    );
    assert!(
        !log.contains("alice-secret-key") && !log.contains("wrong-key"),
        "{log}"
    );
    if completion.trim().len() >= 8 {
        assert!(!log.contains(completion.trim()), "completion text in {log}");
    }
    let entries: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries[0]["owner"], "alice");
    assert_eq!(entries[0]["status"], 200);
    assert_eq!(entries[0]["completion_tokens"], 12);
    assert_eq!(entries[0]["prompt_tokens"], plain["usage"]["prompt_tokens"]);
    assert_eq!(entries[0]["finish_reason"], "length");
    assert!(entries[0]["prefill_ms"].is_number() && entries[0]["duration_ms"].is_number());
    assert!(entries[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(entries[1]["completion_tokens"], 6);
    assert_eq!(entries[2]["status"], 401);
    assert!(entries[2]["owner"].is_null());
}

#[tokio::test]
async fn the_audit_log_can_go_to_stderr() {
    let server = Server::start(&tiny_genai(), &["--audit-log", "-"]);
    let resp = client()
        .post(server.url("/v1/completions"))
        .json(&json!({"prompt": "okapi_marker", "max_tokens": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.text().await;
    let mut found = None;
    for _ in 0..50 {
        found = server
            .log
            .lock()
            .unwrap()
            .lines()
            .find(|l| l.starts_with('{') && l.contains("\"path\":\"/v1/completions\""))
            .map(String::from);
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line: Value = serde_json::from_str(&found.expect("no audit line on stderr")).unwrap();
    assert_eq!(line["status"], 200);
    assert!(!server.log.lock().unwrap().contains("okapi_marker"));
}

#[tokio::test]
async fn three_hundred_stalled_connections_cannot_starve_health() {
    let server = Server::start(
        &tiny_genai(),
        // One address may hold every slot here: this checks that the header deadline frees
        // them (the per-address bound has its own test in operators.rs).
        &[
            "--max-connections",
            "64",
            "--max-connections-per-address",
            "64",
            "--header-timeout",
            "2",
        ],
    );
    let addr = server.base.strip_prefix("http://").unwrap().to_string();
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        stalled.push(s);
    }
    // Past the limit new connections wait to be accepted; the header deadline frees slots.
    let health = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer
        }
    })
    .await
    .unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health:?}");
    // The stalled ones were closed by the server (end of stream or reset), not left open:
    // a read on them ends instead of timing out.
    for s in &mut stalled[..64] {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = [0u8; 512];
        let mut read = s.read(&mut buf);
        while matches!(read, Ok(n) if n > 0) {
            read = s.read(&mut buf);
        }
        assert!(
            !matches!(&read, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
            "a stalled connection was left open: {read:?}"
        );
    }
}

// ---- HTTPS ---------------------------------------------------------------------------------

#[tokio::test]
async fn https_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates::make_certificates(dir.path());
    let server = Server::start(
        &tiny_genai(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let trusted = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let mut ready = false;
    for _ in 0..1800 {
        if let Ok(r) = trusted.get(server.url("/ready")).send().await {
            if r.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "{}", server.log.lock().unwrap());
    let answer: Value = trusted
        .post(server.url("/v1/completions"))
        .json(&json!({"prompt": "fn main() {", "max_tokens": 4, "temperature": 0, "ignore_eos": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["usage"]["completion_tokens"], 4);
    // A client that does not trust the CA is refused at the handshake.
    let err = reqwest::Client::new()
        .get(server.url("/health"))
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "{err:?}"
    );
    // Plain HTTP to the TLS port gets no answer that a client could take for one.
    let plain = server.base.replace("https://", "http://");
    assert!(reqwest::Client::new()
        .get(format!("{plain}/health"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true));
}

#[test]
fn tls_flags_come_in_pairs_and_bad_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificates::make_certificates(dir.path());
    let (ok, log) = common::run_to_exit(&tiny_genai(), &["--tls-cert", cert.to_str().unwrap()]);
    assert!(!ok && log.contains("--tls-key"), "{log}");
    let (ok, log) = common::run_to_exit(
        &tiny_genai(),
        &[
            "--tls-cert",
            key.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(!ok && log.contains("certificate"), "{log}");
}
