//! What an operator meets in the first week, probed as hostile clients and careless operators
//! would: slow request bodies from one address, draining behind a load balancer, who may read
//! `/metrics`. The real binary, the tiny model, real sockets.

mod common;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{client, sse_data, tiny_genai, Server};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpSocket,
};

fn addr(server: &Server) -> SocketAddr {
    server
        .base
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap()
}

/// A connection from `source` (any 127.x.y.z is this machine) that sends complete headers of
/// a large body and then one body byte every `every`; returns what the server answered, if
/// anything, when it ends the connection.
async fn slow_body(server: SocketAddr, source: [u8; 4], every: Duration) -> Option<String> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((source, 0))).ok()?;
    let mut stream = socket.connect(server).await.ok()?;
    stream
        .write_all(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{",
        )
        .await
        .ok()?;
    let mut answer = Vec::new();
    loop {
        let mut buf = [0u8; 1024];
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            () = tokio::time::sleep(every) => {
                if stream.write_all(b" ").await.is_err() {
                    // Closed by the server: what it said before is still to be read.
                    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut answer)).await;
                    break;
                }
            }
        }
    }
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// An HTTP client whose connections come from `source` (any 127.x.y.z is this machine), one
/// fresh connection per request.
fn client_from(source: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .local_address(std::net::IpAddr::from(source))
        .build()
        .unwrap()
}

/// A greedy stream of `max_tokens` tokens, returned once its first text has arrived; the task
/// resolves to its `data:` payloads when it ends.
async fn stream_once_started(
    server: &Server,
    max_tokens: u32,
) -> tokio::task::JoinHandle<Vec<String>> {
    let url = server.url("/v1/completions");
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let stream = tokio::spawn(async move {
        let body = json!({"prompt": "fn f() {", "max_tokens": max_tokens, "temperature": 0,
                          "ignore_eos": true, "stream": true});
        let mut resp = client().post(url).json(&body).send().await.unwrap();
        let mut text = String::new();
        let mut started = Some(started_tx);
        while let Ok(Some(chunk)) = resp.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("\"text\"") {
                if let Some(tx) = started.take() {
                    let _ = tx.send(());
                }
            }
        }
        sse_data(&text)
    });
    started_rx.await.unwrap();
    stream
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_a_byte_at_a_time_gets_408_and_its_connection_closed() {
    let server = Server::start(&tiny_genai(), &["--body-timeout", "2"]);
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        slow_body(addr(&server), [127, 0, 0, 1], Duration::from_millis(500)),
    )
    .await
    .expect("the slow body kept its connection")
    .expect("connect");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer:?}"
    );
    assert!(answer.contains("did not arrive within 2 s"), "{answer:?}");
}

/// 1,100 connections from 127.0.0.2 that send complete headers and then a body byte a
/// second (reconnecting half a second after the server closes them); meanwhile another
/// address (127.0.0.1), then a client at 127.0.0.2 itself, ask `/health` and for completions.
/// Every one is answered. Before the per-address bound and the eviction of connections still
/// waiting for their request, `/health` answered 0 of 14 times in 45 s under this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_hundred_slow_bodies_from_one_address_leave_other_clients_answered() {
    let server = Server::start(&tiny_genai(), &[]);
    let target = addr(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for _ in 0..1100 {
        let stop = stop.clone();
        let connected = connected.clone();
        flood.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                connected.fetch_add(1, Ordering::Relaxed);
                let _ = slow_body(target, [127, 0, 0, 2], Duration::from_secs(1)).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }
    // The flood is in place: every client has connected at least once.
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected.load(Ordering::Relaxed) < 1100 {
        assert!(Instant::now() < deadline, "the flood never connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut health_ms = Vec::new();
    let mut completion_ms = Vec::new();
    // Another address, then a well-behaved client behind the flooding address itself (a
    // shared NAT): the connections waiting longest for their requests make room for it.
    for round in 0..30 {
        let source = if round < 20 {
            [127, 0, 0, 1]
        } else {
            [127, 0, 0, 2]
        };
        let probe = client_from(source);
        let started = Instant::now();
        let resp = probe.get(server.url("/health")).send().await;
        let status = resp.as_ref().map(|r| r.status().as_u16());
        assert_eq!(
            status.ok(),
            Some(200),
            "/health from {source:?}, round {round}: {resp:?}"
        );
        health_ms.push(started.elapsed().as_secs_f64() * 1e3);
        if round % 5 == 0 {
            let started = Instant::now();
            let resp = probe
                .post(server.url("/v1/completions"))
                .json(&json!({"prompt": "fn main() {", "max_tokens": 4, "temperature": 0}))
                .send()
                .await
                .expect("a completion from another address was not answered");
            assert_eq!(resp.status(), 200);
            completion_ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.abort();
    }
    health_ms.sort_by(f64::total_cmp);
    completion_ms.sort_by(f64::total_cmp);
    println!(
        "under 1,100 slow bodies from one address: /health p50 {:.1} ms, p99 {:.1} ms ({} probes); completions p50 {:.1} ms, p99 {:.1} ms ({})",
        percentile(&health_ms, 0.5),
        percentile(&health_ms, 0.99),
        health_ms.len(),
        percentile(&completion_ms, 0.5),
        percentile(&completion_ms, 0.99),
        completion_ms.len()
    );
}

/// SIGTERM with a stream running: until it ends, the port still answers, `/ready` says 503
/// (a load balancer's probe sees the drain instead of a refused connection), `/health` 200, and
/// a new completion gets 503 with Retry-After. Then the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_keeps_the_port_and_answers_ready_503() {
    let mut server = Server::start(
        &tiny_genai(),
        &["--max-tokens-cap", "100000", "--shutdown-grace", "30"],
    );
    let stream = stream_once_started(&server, 3000).await;
    server.signal("TERM");
    // Fresh connections each time: the drain must answer them, not refuse them.
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let resp = fresh()
            .get(server.url("/ready"))
            .send()
            .await
            .expect("/ready refused while draining");
        if resp.status() != 200 {
            break resp;
        }
        assert!(Instant::now() < deadline, "/ready still 200 after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "shutting down");
    let health = fresh().get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let refused = fresh()
        .post(server.url("/v1/completions"))
        .json(&json!({"prompt": "x", "max_tokens": 2}))
        .send()
        .await
        .expect("a completion was refused a connection while draining");
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let data = stream.await.unwrap();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let exit = server
        .exit_status(Duration::from_secs(60))
        .expect("no exit after the stream ended");
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn a_metrics_key_keeps_owner_counts_from_anyone_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "alice alice-key\n").unwrap();
    let server = Server::start_with_env(
        &tiny_genai(),
        &["--api-key-file", keys.to_str().unwrap()],
        &[("GHOSTLINE_METRICS_KEY", "scrape-key")],
    );
    let resp = client()
        .post(server.url("/v1/completions"))
        .bearer_auth("alice-key")
        .json(&json!({"prompt": "fn main() {", "max_tokens": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for offered in [None, Some("alice-key"), Some("scrape-ke")] {
        let mut request = client().get(server.url("/metrics"));
        if let Some(key) = offered {
            request = request.bearer_auth(key);
        }
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), 401, "/metrics with {offered:?}");
        let text = resp.text().await.unwrap();
        assert!(!text.contains("alice"), "{text}");
    }
    let text = client()
        .get(server.url("/metrics"))
        .bearer_auth("scrape-key")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("owner=\"alice\""), "{text}");
}

fn audit_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
        .collect()
}

/// logrotate's `postrotate kill -HUP`: on a server started without `--api-key-file` (the
/// default), SIGHUP used to end the process and cut its streams. Now a running stream
/// finishes, the server keeps answering, and the audit log, renamed away, is reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_the_server_and_its_streams_and_reopens_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let server = Server::start(
        &tiny_genai(),
        &[
            "--audit-log",
            log.to_str().unwrap(),
            "--max-tokens-cap",
            "1000",
        ],
    );
    let stream = stream_once_started(&server, 300).await;
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    server.signal("HUP");
    let data = stream.await.unwrap();
    let last: serde_json::Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(
        last["choices"][0]["finish_reason"], "length",
        "the stream did not finish: {data:?}"
    );
    // The audit log's writer thread reopens the file and says so.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.log.lock().unwrap().contains("audit log reopened") {
        assert!(Instant::now() < deadline, "the audit log was not reopened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = common::complete(&server, json!({"prompt": "x", "max_tokens": 2})).await;
    assert_eq!(status, 200);
    // The stream's line went to the file it started in or to the new one (it may have ended
    // before or after the reopen); the request after the signal is in the new file.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (before, after) = loop {
        let (before, after) = (audit_lines(&rotated), audit_lines(&log));
        if before.len() + after.len() >= 2 {
            break (before, after);
        }
        assert!(Instant::now() < deadline, "{before:?} {after:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(before.len() + after.len(), 2, "{before:?} {after:?}");
    assert!(
        after.iter().any(|l| l["completion_tokens"] == 2),
        "the request after SIGHUP is not in the reopened log: {after:?}"
    );
}

/// Audit lines are written by a thread of their own; on a normal exit (SIGTERM) every line
/// queued is written first. The `audit-stall` fault holds that thread until the exit, as a
/// disk that stalls would, so all the lines are still queued when SIGTERM comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_every_queued_audit_line_before_the_exit() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let mut server = Server::start_with_env(
        &tiny_genai(),
        &["--audit-log", log.to_str().unwrap()],
        &[("GHOSTLINE_FAULT", "audit-stall")],
    );
    for i in 0..3 {
        let (status, _) = common::complete(
            &server,
            json!({"prompt": format!("fn f{i}("), "max_tokens": 2, "ignore_eos": true}),
        )
        .await;
        assert_eq!(status, 200);
    }
    assert_eq!(audit_lines(&log).len(), 0, "the writer did not stall");
    server.signal("TERM");
    let exit = server
        .exit_status(Duration::from_secs(60))
        .expect("no exit after SIGTERM");
    assert!(exit.success(), "{exit:?}");
    let lines = audit_lines(&log);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines
        .iter()
        .all(|l| l["status"] == 200 && l["completion_tokens"] == 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_names_a_known_method_or_other() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let server = Server::start(&tiny_genai(), &["--audit-log", log.to_str().unwrap()]);
    let target = addr(&server);
    let long_method = "X".repeat(20_000);
    for method in [long_method.as_str(), "PURGE", "DELETE"] {
        let mut stream = std::net::TcpStream::connect(target).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "{method} /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer:.200}");
    }
    // The lines are written when the answers end; the last one may trail the read.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines = audit_lines(&log);
        if lines.len() >= 3 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let methods: Vec<&str> = lines
        .iter()
        .map(|l| l["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["other", "other", "DELETE"]);
    let longest = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::len)
        .max()
        .unwrap();
    assert!(longest < 1000, "an audit line of {longest} bytes");
}

#[test]
fn a_key_under_two_owners_is_refused_at_start_naming_both_lines() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        "alice team-key rpm=10\nbob bob-key\ncarol team-key\n",
    )
    .unwrap();
    let (ok, log) = common::run_to_exit(&tiny_genai(), &["--api-key-file", keys.to_str().unwrap()]);
    assert!(!ok, "started with a key under two owners:\n{log}");
    assert!(
        log.contains("line 3: the same key as line 1"),
        "the error does not name both lines:\n{log}"
    );
}

/// A key file that stays broken is reported once (and the keys in use stay), not every 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_key_file_is_reported_once_and_the_old_keys_stay() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "alice alice-key\n").unwrap();
    let server = Server::start(&tiny_genai(), &["--api-key-file", keys.to_str().unwrap()]);
    std::fs::write(&keys, "alice alice-key rpm=oops\n").unwrap();
    // Three checks of the file's modification time (one every 2 s).
    tokio::time::sleep(Duration::from_secs(7)).await;
    let reports = server.log.lock().unwrap().matches("not reloaded").count();
    assert_eq!(reports, 1, "{}", server.log.lock().unwrap());
    let resp = client()
        .post(server.url("/v1/completions"))
        .bearer_auth("alice-key")
        .json(&json!({"prompt": "x", "max_tokens": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // An explicit SIGHUP is an operator asking: it is reported again.
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log.lock().unwrap().matches("not reloaded").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not report the broken file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_audit_lines(path: &std::path::Path, count: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = audit_lines(path);
        if lines.len() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} audit lines, {count} expected: {lines:?}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An editor abandons almost every stream (the next keystroke supersedes it). Under `tpm=100`
/// two streams left after 90 tokens each use the minute up: the third request is refused,
/// the owner's generated-token counter and the audit lines carry what was generated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_streams_are_charged_what_they_generated() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let log = dir.path().join("audit.log");
    std::fs::write(&keys, "alice alice-key tpm=100\n").unwrap();
    let server = Server::start(
        &tiny_genai(),
        &[
            "--api-key-file",
            keys.to_str().unwrap(),
            "--audit-log",
            log.to_str().unwrap(),
            "--max-tokens-cap",
            "1000",
        ],
    );
    let body = json!({"prompt": "fn f() {", "max_tokens": 1000, "temperature": 0,
                      "ignore_eos": true, "stream": true});
    for abandoned in 1..=2 {
        let mut resp = client()
            .post(server.url("/v1/completions"))
            .bearer_auth("alice-key")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "stream {abandoned}");
        let mut text = String::new();
        while text.matches("\"text\"").count() < 90 {
            let chunk = resp.chunk().await.unwrap().expect("the stream ended early");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        drop(resp);
        // Its answer has ended on the server's side once its audit line is written.
        wait_for_audit_lines(&log, abandoned).await;
    }
    let third = client()
        .post(server.url("/v1/completions"))
        .bearer_auth("alice-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 429, "a third stream under tpm=100");
    assert!(third.headers().contains_key("retry-after"));
    let lines = wait_for_audit_lines(&log, 3).await;
    for line in &lines[..2] {
        assert_eq!(line["status"], 200);
        assert_eq!(line["finish_reason"], "abandoned", "{line}");
        let generated = line["completion_tokens"].as_u64().expect("usage recorded");
        assert!(generated >= 90, "{line}");
        assert!(line["prompt_tokens"].as_u64().unwrap() > 0, "{line}");
    }
    assert_eq!(lines[2]["limited"], "tpm");
    let metrics = common::metrics_text(&server).await;
    let counted: f64 = metrics
        .lines()
        .find(|l| l.starts_with("ghostline_owner_generated_tokens_total{owner=\"alice\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no generated-token counter for alice:\n{metrics}"));
    assert!(counted >= 180.0, "{counted} generated tokens counted");
}

/// Concurrent requests used to be admitted before any of their tokens counted: 8 × 64 tokens
/// under `tpm=40` all answered. A running request now holds its max_tokens, so one runs and
/// the others are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_cannot_overdraw_the_token_limit() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "alice alice-key tpm=40\n").unwrap();
    let server = Server::start(&tiny_genai(), &["--api-key-file", keys.to_str().unwrap()]);
    let mut requests = Vec::new();
    for i in 0..8 {
        let url = server.url("/v1/completions");
        requests.push(tokio::spawn(async move {
            client()
                .post(url)
                .bearer_auth("alice-key")
                .json(&json!({"prompt": format!("fn g{i}() {{"), "max_tokens": 64,
                              "temperature": 0, "ignore_eos": true}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 429, 429, 429, 429, 429, 429, 429]);
}

/// A weights file truncated in place under a running server (what a model preparation re-run
/// into the served directory would do) used to kill it with SIGBUS, without a word. The
/// server now holds its own copy: the same answers go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weights_file_truncated_under_the_server_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(tiny_genai()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let server = Server::start(dir.path(), &[]);
    let ask = json!({"prompt": "fn main() {\n    let", "max_tokens": 24, "temperature": 0,
                     "ignore_eos": true});
    let (status, before) = common::complete(&server, &ask).await;
    assert_eq!(status, 200);
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("model.onnx.data"))
        .unwrap()
        .set_len(0)
        .unwrap();
    for round in 0..3 {
        let (status, after) = common::complete(&server, &ask).await;
        assert_eq!(status, 200, "round {round}: {after}");
        assert_eq!(after["choices"][0]["text"], before["choices"][0]["text"]);
    }
    assert_eq!(
        client()
            .get(server.url("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Slow headers that reconnect as soon as they are closed (80 clients, `--max-connections 64`)
/// used to starve `/health` (4 answers of 27 in 75 s). Another address now always gets in;
/// and since the connection of the flooding address waiting longest for its headers makes
/// room for a new one, probes from that address get some answers too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_that_reconnect_at_once_cannot_starve_health() {
    let server = Server::start(&tiny_genai(), &["--max-connections", "64"]);
    let target = addr(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = Vec::new();
    for _ in 0..80 {
        let stop = stop.clone();
        flood.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(socket) = TcpSocket::new_v4() else {
                    continue;
                };
                if socket.bind(SocketAddr::from(([127, 0, 0, 3], 0))).is_err() {
                    continue;
                }
                let Ok(mut stream) = socket.connect(target).await else {
                    continue;
                };
                let _ = stream
                    .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                    .await;
                // A header line now and then, until the server closes the connection.
                loop {
                    let mut buf = [0u8; 256];
                    tokio::select! {
                        read = stream.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { break },
                        () = tokio::time::sleep(Duration::from_secs(2)) => {
                            if stream.write_all(b"X-Slow: 1\r\n").await.is_err() { break }
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut same_address_answered = 0;
    for round in 0..20 {
        let source = if round % 2 == 0 {
            [127, 0, 0, 1]
        } else {
            [127, 0, 0, 3]
        };
        let probe = client_from(source);
        let resp = probe.get(server.url("/health")).send().await;
        let status = resp.as_ref().map(|r| r.status().as_u16()).ok();
        if source[3] == 1 {
            assert_eq!(
                status,
                Some(200),
                "/health from another address, round {round}: {resp:?}"
            );
        } else if status == Some(200) {
            same_address_answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Behind the flooding address itself a client races the flood's reconnects for the
    // places its slow connections leave; it gets some (none before). How many of ten it wins
    // depends on the scheduler (on two loaded cores, sometimes none), so it may keep trying:
    // the claim is that it gets through at all, which before the fix it never did.
    let mut extra_tries = 0;
    while same_address_answered == 0 && extra_tries < 40 {
        extra_tries += 1;
        let probe = client_from([127, 0, 0, 3]);
        let resp = probe.get(server.url("/health")).send().await;
        if resp.as_ref().map(|r| r.status().as_u16()).ok() == Some(200) {
            same_address_answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "/health from the flooding address: {same_address_answered} answered (10 probes, then {extra_tries} more)"
    );
    assert!(
        same_address_answered > 0,
        "no probe from the flooding address got through"
    );
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.abort();
    }
}
