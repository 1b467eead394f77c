//! Acceptance stats end to end (issue 32, items 3 and 4): a typing session through the real
//! `ghostline-lsp` binary against the real `ghostline-serve` (tiny model, a key file), then
//! `ghostline-lsp stats` prints the counts the session produced and, with `shareStats`, the
//! server's `/metrics` shows the same counts under the key's owner. Against a recording
//! backend: with `shareStats` off nothing is sent; with `stats` off nothing is written.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{
    insert_text, items, start_backend, tiny_model_dir, LspClient, RecordingServer, TempDir,
};
use serde_json::{json, Value};

const URI: &str = "file:///project/src/shapes.rs";
/// Empty indented lines (2, 4, 6, ...) where the session types.
const TEXT: &str = "fn area(r: f64) -> f64 {\n    let pi = 3.14159;\n    \n    let d = r * 2.0;\n    \n    let c = pi * d;\n    \n    let s = c * r;\n    \n    let t = s / 2.0;\n    \n    let u = t + 1.0;\n    \n    let v = u * u;\n    \n    let w = v - u;\n    \n    w\n}\n";
const TYPING_LINES: [u32; 8] = [2, 4, 6, 8, 10, 12, 14, 16];
/// As in tests/inline_completion.rs: the tiny random model says something in this order.
const TINY_FIM_TEMPLATE: &str = "<|fim_suffix|>{suffix}<|fim_prefix|>{prefix}";

fn start_lsp(data_dir: &std::path::Path, key: Option<&str>, options: Value) -> LspClient {
    let data = data_dir.to_str().unwrap();
    let mut env = vec![("GHOSTLINE_DATA_DIR", data)];
    if let Some(key) = key {
        env.push(("GHOSTLINE_API_KEY", key));
    }
    let (mut client, _) = LspClient::start_with_env(json!({}), options, &env);
    client.open(URI, "rust", TEXT);
    client
}

fn accept(client: &mut LspClient, kind: Option<&str>) {
    let mut argument = json!({"uri": URI});
    if let Some(kind) = kind {
        argument["kind"] = json!(kind);
    }
    client.request_ok(
        "workspace/executeCommand",
        json!({"command": "ghostline.accept", "arguments": [argument]}),
    );
}

/// What one session did, as the user saw it.
#[derive(Debug, Default, PartialEq)]
struct Produced {
    shown: u64,
    accepted: u64,
    partial: u64,
    texts: Vec<String>,
}

/// Types a letter on each empty line in turn and asks for a suggestion after it (as an
/// editor does after a keystroke). Of the suggestions shown, the first is accepted whole
/// (the editor sends the accept twice: counted once), the second a word then a line of it
/// (one partly accepted suggestion) and then whole, the third a word only, the rest ignored.
fn typing_session(client: &mut LspClient, lines: &[u32]) -> Produced {
    let mut produced = Produced::default();
    for (version, &line) in (2..).zip(lines) {
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": URI, "version": version},
                   "contentChanges": [{"range": {"start": {"line": line, "character": 4},
                                                 "end": {"line": line, "character": 4}},
                                       "text": "l"}]}),
        );
        let response = client.request(
            "textDocument/inlineCompletion",
            LspClient::inline_completion_params(URI, line, 5),
        );
        assert!(response.get("error").is_none(), "{response}");
        let Some(item) = items(&response).first().cloned() else {
            continue;
        };
        produced.shown += 1;
        produced.texts.push(insert_text(&item));
        match produced.shown {
            1 => {
                assert_eq!(item["command"]["command"], "ghostline.accept", "{item}");
                accept(client, None);
                accept(client, None);
                produced.accepted += 1;
            }
            2 => {
                accept(client, Some("word"));
                accept(client, Some("line"));
                accept(client, None);
                produced.partial += 1;
                produced.accepted += 1;
            }
            3 => {
                accept(client, Some("word"));
                produced.partial += 1;
            }
            _ => {}
        }
    }
    produced
}

/// `ghostline-lsp stats`'s row for `language` in its "Today" section:
/// [language, model, shown, accepted, partly, rate, p50, p90].
fn stats_row(data_dir: &std::path::Path, language: &str) -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_ghostline-lsp"))
        .arg("stats")
        .env("GHOSTLINE_DATA_DIR", data_dir)
        .output()
        .expect("run ghostline-lsp stats");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{text}");
    let today: Vec<&str> = text
        .split("\nToday\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no Today section:\n{text}"))
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .collect();
    let rows: Vec<Vec<String>> = today
        .iter()
        .filter(|l| l.starts_with(&format!("{language} ")))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 1, "one row for {language} today:\n{text}");
    rows[0].clone()
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn metric_value(metrics: &str, series: &str) -> Option<u64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Every stored line holds counts and timings only: no suggestion text, no path or URI.
fn check_store_holds_no_text(data_dir: &std::path::Path, texts: &[String]) {
    let store = std::fs::read_to_string(data_dir.join("stats.jsonl")).expect("stats.jsonl");
    for line in store.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&str> = event
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(
            keys.iter()
                .all(|k| ["t", "e", "lang", "model", "ms"].contains(k)),
            "{line}"
        );
    }
    assert!(
        !store.contains("shapes") && !store.contains("file:"),
        "{store}"
    );
    for text in texts.iter().map(|t| t.trim()).filter(|t| t.len() >= 4) {
        assert!(!store.contains(text), "suggestion text {text:?} in {store}");
    }
}

#[test]
fn a_typing_session_shows_up_in_stats_and_in_the_owners_metrics() {
    let keys = TempDir::new("stats-keys");
    let key_file = keys.write("keys", "alice alice-key\nbob bob-key\n");
    let Some(backend) = start_backend(
        tiny_model_dir(),
        None,
        &["--api-key-file", key_file.to_str().unwrap()],
    ) else {
        return;
    };
    let data = TempDir::new("stats-data");
    let options = json!({"backendUrl": backend.url(), "timeoutMs": 20000, "maxTokens": 16,
                         "fimTemplate": TINY_FIM_TEMPLATE, "shareStats": true});
    let mut client = start_lsp(&data.0, Some("alice-key"), options);
    let produced = typing_session(&mut client, &TYPING_LINES);
    assert!(
        produced.shown >= 3,
        "the tiny model suggested too little to accept: {produced:?}"
    );
    assert!(client.shutdown().success());

    // Locally: the table of `ghostline-lsp stats` (the model as /v1/models names it).
    let model: Value = serde_json::from_str(
        &std::fs::read_to_string(tiny_model_dir().join("ghostline.json")).unwrap(),
    )
    .unwrap();
    let row = stats_row(&data.0, "rust");
    assert_eq!(row[1], model["name"].as_str().unwrap(), "{row:?}");
    let counts: Vec<u64> = row[2..5].iter().map(|v| v.parse().unwrap()).collect();
    assert_eq!(
        counts,
        [produced.shown, produced.accepted, produced.partial],
        "{row:?}"
    );
    let rate = 100.0 * produced.accepted as f64 / produced.shown as f64;
    assert_eq!(row[5], format!("{rate:.1}%"), "{row:?}");
    check_store_holds_no_text(&data.0, &produced.texts);

    // For the team: the same counts under the key's owner, none under anyone else.
    let metrics = http_get(backend.port, "/metrics");
    let labels = "{owner=\"alice\",language=\"rust\"}";
    for (name, expected) in [
        ("ghostline_suggestions_shown_total", produced.shown),
        ("ghostline_suggestions_accepted_total", produced.accepted),
        (
            "ghostline_suggestions_partially_accepted_total",
            produced.partial,
        ),
        ("ghostline_suggestion_latency_seconds_count", produced.shown),
    ] {
        assert_eq!(
            metric_value(&metrics, &format!("{name}{labels}")),
            Some(expected),
            "{name}{labels} in:\n{metrics}"
        );
    }
    assert!(!metrics.contains("owner=\"bob\",language"), "{metrics}");
    assert!(!metrics.contains("owner=\"anonymous\""), "{metrics}");
}

#[test]
fn share_off_sends_nothing_and_stats_off_writes_nothing() {
    let recorder = RecordingServer::start("qwen2.5-coder");
    let stats_bodies = || -> Vec<Value> {
        recorder
            .bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b.get("counts").is_some() || b.get("prompt").is_none())
            .cloned()
            .collect()
    };

    // The defaults: stats kept here, nothing shared.
    let data = TempDir::new("stats-local-only");
    let mut client = start_lsp(&data.0, None, json!({"backendUrl": recorder.url()}));
    let produced = typing_session(&mut client, &TYPING_LINES[..4]);
    assert_eq!(
        produced.shown, 4,
        "the recorder always answers: {produced:?}"
    );
    // What VS Code's status bar item and :checkhealth show: the same table through the LSP.
    let table = client.request_ok(
        "workspace/executeCommand",
        json!({"command": "ghostline.stats", "arguments": [{"days": 7}]}),
    );
    let table = table.as_str().expect("the table as text");
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..]
                .starts_with(&["rust", "recorder", "4", "2", "2", "50.0%"])),
        "{table}"
    );
    assert!(client.shutdown().success());
    assert!(
        !recorder.bodies.lock().unwrap().is_empty(),
        "the recorder saw no request at all"
    );
    assert_eq!(
        stats_bodies(),
        Vec::<Value>::new(),
        "sent with shareStats off"
    );
    assert_eq!(
        stats_row(&data.0, "rust")[2..5],
        ["4".to_string(), "2".into(), "2".into()]
    );

    // Local stats off, sharing on: counts per language go to the backend, nothing to disk.
    let data = TempDir::new("stats-shared-only");
    let mut client = start_lsp(
        &data.0,
        None,
        json!({"backendUrl": recorder.url(), "stats": false, "shareStats": true}),
    );
    let produced = typing_session(&mut client, &TYPING_LINES[4..]);
    assert_eq!(produced.shown, 4, "{produced:?}");
    assert!(client.shutdown().success());
    let sent = stats_bodies();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let counts = &sent[0]["counts"];
    assert_eq!(sent[0].as_object().unwrap().len(), 1, "{sent:?}");
    assert_eq!(counts.as_array().unwrap().len(), 1, "{sent:?}");
    let entry = counts[0].as_object().unwrap();
    let mut keys: Vec<&str> = entry.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "accepted",
            "language",
            "latency_count",
            "latency_ms_sum",
            "partial",
            "shown"
        ]
    );
    assert_eq!(entry["language"], "rust");
    assert_eq!(
        (&entry["shown"], &entry["accepted"], &entry["partial"]),
        (&json!(4), &json!(2), &json!(2))
    );
    assert_eq!(entry["latency_count"], 4);
    assert!(
        !data.0.join("stats.jsonl").exists(),
        "stats: false wrote {}",
        data.0.join("stats.jsonl").display()
    );
}
