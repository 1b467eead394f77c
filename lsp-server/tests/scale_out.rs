//! Two real ghostline-serve replicas behind vllm-router, started by the one-command launcher
//! (`inference-backend/scripts/replicas.py`, as `GHOSTLINE_REPLICAS=2 ./run.sh` starts it), and
//! the real LSP in front: every request of a document lands on one replica (the `X-Session-ID`
//! the LSP sends, hashed by the router), and when that replica is killed the document's next
//! requests go to the other one, with at most one of them failing.

mod common;

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{serve_binary, skip, tiny_model_dir, LspClient, TempDir};
use serde_json::{json, Value};

const TINY_FIM_TEMPLATE: &str = "<|fim_suffix|>{suffix}<|fim_prefix|>{prefix}";

struct Cluster {
    launcher: Child,
    state: Value,
    _dir: TempDir,
}

impl Cluster {
    fn router_url(&self) -> String {
        self.state["router"]["url"].as_str().unwrap().to_string()
    }

    fn replica_ports(&self) -> Vec<u16> {
        self.state["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let url = r["url"].as_str().unwrap();
                url.rsplit(':').next().unwrap().parse().unwrap()
            })
            .collect()
    }

    fn replica_pid(&self, index: usize) -> u64 {
        self.state["replicas"][index]["pid"].as_u64().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The launcher stops the router and the replicas on SIGTERM.
        let _ = Command::new("kill")
            .args(["-TERM", &self.launcher.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.launcher.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.launcher.kill();
    }
}

/// A port whose next three are free too (router, two replicas, the router's metrics).
fn free_port_run() -> u16 {
    for _ in 0..50 {
        let port = common::free_port();
        if port < 60000 && (1..=3).all(|i| TcpListener::bind(("127.0.0.1", port + i)).is_ok()) {
            return port;
        }
    }
    panic!("no run of four free ports");
}

fn start_cluster() -> Option<Cluster> {
    let Some(serve) = serve_binary() else {
        skip("no ghostline-serve binary (cargo build -p ghostline-serve)");
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
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = TempDir::new("scale-out");
    let state_file = dir.0.join("state.json");
    let port = free_port_run();
    let launcher = Command::new("python3")
        .arg(root.join("inference-backend/scripts/replicas.py"))
        .args(["--replicas", "2", "--port", &port.to_string(), "--model"])
        .arg(&model)
        .arg("--serve-bin")
        .arg(&serve)
        .arg("--state")
        .arg(&state_file)
        .args(["--", "--device", "cpu", "--request-timeout", "900"])
        .env("GHOSTLINE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn replicas.py");
    let mut cluster = Cluster {
        launcher,
        state: Value::Null,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(text) = std::fs::read_to_string(&state_file) {
            if let Ok(state) = serde_json::from_str::<Value>(&text) {
                cluster.state = state;
                return Some(cluster);
            }
        }
        if let Some(status) = cluster.launcher.try_wait().unwrap() {
            panic!("replicas.py exited before it was ready: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "replicas.py not ready after 300 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn get_body(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response.split_once("\r\n\r\n")?.1.to_string())
}

fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Per replica: prefix-cache lookups so far (one per request the engine took), or `None`
/// for a replica that does not answer.
fn lookups(ports: &[u16]) -> Vec<Option<f64>> {
    ports
        .iter()
        .map(|&port| {
            let body = get_body(port, "/metrics")?;
            Some(
                metric(&body, "ghostline_prefix_cache_hits_total")?
                    + metric(&body, "ghostline_prefix_cache_misses_total")?,
            )
        })
        .collect()
}

/// Waits until no replica is working and their counters stand still (the LSP may warm the
/// next prompt in the background after answering), then returns the counters.
fn settled(ports: &[u16]) -> Vec<Option<f64>> {
    let mut last = lookups(ports);
    loop {
        std::thread::sleep(Duration::from_millis(400));
        let running: f64 = ports
            .iter()
            .filter_map(|&port| get_body(port, "/metrics"))
            .filter_map(|body| metric(&body, "ghostline_num_requests_running"))
            .sum();
        let now = lookups(ports);
        if now == last && running == 0.0 {
            return now;
        }
        last = now;
    }
}

/// Which replicas took work between two readings (a dead one never counts).
fn changed(before: &[Option<f64>], after: &[Option<f64>]) -> Vec<usize> {
    before
        .iter()
        .zip(after)
        .enumerate()
        .filter(|(_, (b, a))| matches!((b, a), (Some(b), Some(a)) if a > b))
        .map(|(i, _)| i)
        .collect()
}

/// Types one character at `column` of line 4 and asks for a suggestion there. The characters
/// differ from one keystroke to the next: the tiny model tends to repeat its last input, and a
/// keystroke that matches the shown suggestion is answered from the LSP's memory (typing
/// through), which would ask no replica at all.
fn type_and_ask(client: &mut LspClient, uri: &str, version: i64, column: u32) -> Value {
    let typed = ["k", "z", "q", "x", "v", "j", "w", "y"][column as usize % 8];
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": version},
               "contentChanges": [{"range": {"start": {"line": 4, "character": column},
                                             "end": {"line": 4, "character": column}}, "text": typed}]}),
    );
    client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(uri, 4, column + 1),
    )
}

#[test]
fn a_documents_keystrokes_stay_on_one_replica_and_survive_its_death() {
    let Some(cluster) = start_cluster() else {
        return;
    };
    let ports = cluster.replica_ports();
    // The router gauges an inference-aware router or autoscaler reads, on every replica.
    for &port in &ports {
        let body = get_body(port, "/metrics").expect("replica /metrics");
        for name in [
            "ghostline_num_requests_waiting",
            "ghostline_num_requests_running",
            "ghostline_kv_cache_usage_perc",
            "ghostline_prefix_cache_usage_perc",
        ] {
            assert!(metric(&body, name).is_some(), "{name} missing:\n{body}");
        }
    }

    let workspace = TempDir::new("scale-out-ws");
    let names: Vec<String> = (0..6).map(|i| format!("module_{i}.py")).collect();
    for (i, name) in names.iter().enumerate() {
        workspace.write(
            name,
            &format!("import math\n\n\ndef area_{i}(radius):\n    \n\n\nprint(area_{i}(2.0))\n"),
        );
    }
    let mut client = LspClient::start_in_workspace(
        &workspace.0,
        json!({}),
        json!({"backendUrl": cluster.router_url(), "timeoutMs": 20000, "fimTemplate": TINY_FIM_TEMPLATE,
               "maxTokens": 8, "multiline": "never", "contextMode": "currentFile"}),
    );
    let uris: Vec<String> = names.iter().map(|n| workspace.uri(n)).collect();
    for (uri, name) in uris.iter().zip(&names) {
        let text = std::fs::read_to_string(workspace.0.join(name)).unwrap();
        client.open(uri, "python", &text);
    }

    // Three keystrokes in each document: each request lands on exactly one replica, the same
    // one for the whole document.
    let mut home = Vec::new();
    let mut versions = vec![1i64; uris.len()];
    let mut columns = vec![4u32; uris.len()];
    for (d, uri) in uris.iter().enumerate() {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let before = settled(&ports);
            versions[d] += 1;
            let response = type_and_ask(&mut client, uri, versions[d], columns[d]);
            columns[d] += 1;
            assert!(response.get("error").is_none(), "{response}");
            let after = settled(&ports);
            seen.extend(changed(&before, &after));
        }
        seen.dedup();
        assert_eq!(
            seen.len(),
            1,
            "document {d}'s requests went to replicas {seen:?}"
        );
        home.push(seen[0]);
    }
    eprintln!("documents per replica: {home:?}");

    // Kill the replica holding document 0 (no warning to it: SIGKILL, as a crash would).
    let dead = home[0];
    let alive = 1 - dead;
    let status = Command::new("kill")
        .args(["-KILL", &cluster.replica_pid(dead).to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = client.notifications("window/showMessage", Duration::from_millis(100));
    let mut landed_on_alive = 0;
    for _ in 0..4 {
        let before = settled(&ports);
        versions[0] += 1;
        let response = type_and_ask(&mut client, &uris[0], versions[0], columns[0]);
        columns[0] += 1;
        assert!(response.get("error").is_none(), "{response}");
        let after = settled(&ports);
        if changed(&before, &after) == vec![alive] {
            landed_on_alive += 1;
        }
    }
    let warnings = client.notifications("window/showMessage", Duration::from_millis(300));
    assert!(
        warnings.len() <= 1,
        "at most one failed request for the document: {warnings:?}"
    );
    assert!(
        landed_on_alive >= 3,
        "after the kill the document's requests go to the live replica ({landed_on_alive} of 4 did)"
    );
    // A document that lived on the surviving replica is not disturbed.
    if let Some(d) = home.iter().position(|&r| r == alive) {
        let before = settled(&ports);
        versions[d] += 1;
        let response = type_and_ask(&mut client, &uris[d], versions[d], columns[d]);
        assert!(response.get("error").is_none(), "{response}");
        assert_eq!(changed(&before, &settled(&ports)), vec![alive]);
    }
    assert!(client.shutdown().success());
}
