//! Thousands of random incremental edits, sent back to back (so the server's concurrent
//! dispatch would reorder them if it could), with multi-byte text and every kind of line
//! break, checked against a full-text oracle that implements the LSP rules independently.
//! And an edit that fails (a panic while applying it, a range that cannot be read): its
//! document is out of sync, gets no suggestions and one log line, until the editor sends it
//! whole again.

mod common;
#[path = "fuzz/oracle.rs"]
mod oracle;

use common::{suggests, LspClient, RecordingServer, TempDir};
use oracle::{Oracle, Rng, Unit};
use serde_json::json;

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
];

fn run_random_edits(unit: Unit, seed: u64, edits: usize) {
    let capabilities = match unit {
        Unit::Utf8 => json!({"general": {"positionEncodings": ["utf-8"]}}),
        Unit::Utf16 => json!({}),
    };
    let (mut client, result) = LspClient::start(capabilities, json!({}));
    let expected_encoding = if unit == Unit::Utf8 {
        "utf-8"
    } else {
        "utf-16"
    };
    assert_eq!(
        result["capabilities"]["positionEncoding"],
        expected_encoding
    );
    let uri = "file:///random.txt";
    let mut oracle = Oracle {
        text: "héllo 😀\r\nwörld\n中文\rend".to_string(),
    };
    client.open(uri, "plaintext", &oracle.text);
    let mut rng = Rng(seed);
    let mut version = 1;
    for round in 0..edits {
        let changes_in_batch = 1 + rng.below(3);
        let mut changes = Vec::new();
        for _ in 0..changes_in_batch {
            let mut text = String::new();
            for _ in 0..rng.below(4) {
                text.push_str(PIECES[rng.below(PIECES.len())]);
            }
            let kind = rng.below(20);
            if kind == 0 {
                // Occasionally a whole-document replacement.
                oracle.text = text.clone();
                changes.push(json!({"text": text}));
                continue;
            }
            let (start_line, start_col, end_line, end_col) = if kind == 1 {
                // Out of range: a line far past the end and a column far past its line.
                let line = rng.below(oracle.lines().len() + 3);
                (line, 1000 + rng.below(10), line + rng.below(50), 5000)
            } else {
                let a = oracle.random_boundary(&mut rng);
                let b = if rng.below(3) == 0 {
                    a
                } else {
                    oracle.random_boundary(&mut rng)
                };
                let (a, b) = (a.min(b), a.max(b));
                let (sl, sc) = oracle.position(a, unit);
                let (el, ec) = oracle.position(b, unit);
                (sl, sc, el, ec)
            };
            let start = oracle.offset(start_line, start_col, unit);
            let end = oracle.offset(end_line, end_col, unit);
            let (start, end) = (start.min(end), start.max(end));
            oracle.text.replace_range(start..end, &text);
            changes.push(json!({
                "range": {"start": {"line": start_line, "character": start_col}, "end": {"line": end_line, "character": end_col}},
                "text": text
            }));
        }
        version += 1;
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": changes}),
        );
        // Check now and then (and at the end); in between, edits pile up unread.
        if round % 500 == 499 || round + 1 == edits {
            assert_eq!(
                client.document_text(uri),
                json!(oracle.text),
                "after edit {round} (seed {seed})"
            );
        }
    }
    client.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": uri}}),
    );
    assert_eq!(
        client.document_text(uri),
        serde_json::Value::Null,
        "closing frees the document"
    );
    assert!(client.shutdown().success());
}

#[test]
fn random_edits_utf16_match_the_oracle() {
    run_random_edits(Unit::Utf16, 0x9E37_79B9_7F4A_7C15, 3000);
}

#[test]
fn random_edits_utf8_match_the_oracle() {
    run_random_edits(Unit::Utf8, 0xD1B5_4A32_D192_ED03, 2000);
}

#[test]
fn positions_inside_surrogate_pairs_and_past_the_end_never_crash() {
    let (mut client, _) = LspClient::start(json!({}), json!({}));
    let uri = "file:///e.txt";
    client.open(uri, "plaintext", "a😀b\r\nc");
    // Column 2 is inside the emoji's surrogate pair: rounds down to before the emoji.
    client.notify("textDocument/didChange", json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
        {"range": {"start": {"line": 0, "character": 2}, "end": {"line": 0, "character": 2}}, "text": "X"},
        {"range": {"start": {"line": 9, "character": 0}, "end": {"line": 99, "character": 99}}, "text": "!"},
        {"range": {"start": {"line": 1, "character": 0}, "end": {"line": 0, "character": 99}}, "text": "|"},
        {"range": {"start": {"line": 4294967295u32, "character": 4294967295u32}, "end": {"line": 0, "character": 0}}, "text": ""}
    ]}));
    // Reversed range (line 1 → line 0) replaces the CRLF between them; the huge one
    // deletes everything.
    assert_eq!(client.document_text(uri), json!(""));
    client.notify("textDocument/didChange", json!({"textDocument": {"uri": uri, "version": 3}, "contentChanges": [
        {"text": "x😀y"},
        {"range": {"start": {"line": 0, "character": 2}, "end": {"line": 0, "character": 3}}, "text": "Z"}
    ]}));
    // Start column 2 rounds down to before the emoji, end column 3 is after it.
    assert_eq!(
        client.document_text(uri),
        json!("xZy"),
        "a column inside a pair rounds down"
    );
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(uri, 7, 99),
    );
    assert!(response.get("error").is_none());
    assert!(client.shutdown().success());
}

/// The LSP with its log (stderr) in a file, `extra_env` set, against `server`.
fn start_logged(
    server: &RecordingServer,
    log: &TempDir,
    extra_env: &[(&str, &str)],
) -> (LspClient, std::path::PathBuf) {
    let log_path = log.0.join("stderr.log");
    let client =
        LspClient::spawn_with_stderr(extra_env, std::fs::File::create(&log_path).unwrap().into());
    let client = LspClient::start_in_workspace_with(
        client,
        &log.0,
        json!({}),
        json!({"backendUrl": server.url()}),
    );
    (client, log_path)
}

fn out_of_sync_lines(log_path: &std::path::Path) -> usize {
    std::fs::read_to_string(log_path)
        .unwrap()
        .lines()
        .filter(|line| line.contains("an edit to") && line.contains("failed"))
        .count()
}

#[test]
fn a_panicking_change_leaves_its_document_unserved_until_it_is_opened_again() {
    let server = RecordingServer::start("qwen2.5-coder");
    let log = TempDir::new("out-of-sync-panic");
    let (mut client, log_path) = start_logged(
        &server,
        &log,
        &[("GHOSTLINE_LSP_FAULT", "panic-in-did-change")],
    );
    let uri = "file:///sync/fault-panic.py";
    client.open(uri, "python", "def area(r):\n    return \n");
    assert!(suggests(&mut client, &server, uri));
    for version in 2..4 {
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [
                {"range": {"start": {"line": 1, "character": 11}, "end": {"line": 1, "character": 11}}, "text": "r"}]}),
        );
        assert!(
            !suggests(&mut client, &server, uri),
            "suggested from a text that lost the editor's edit"
        );
    }
    assert!(client.is_running());
    assert_eq!(
        out_of_sync_lines(&log_path),
        1,
        "one log line, not one per change"
    );

    // The editor sends it whole again: served again.
    client.open(uri, "python", "def area(r):\n    return r\n");
    assert!(suggests(&mut client, &server, uri));
    assert!(client.shutdown().success());
}

#[test]
fn a_change_whose_range_cannot_be_read_leaves_its_document_unserved_until_a_full_change() {
    let server = RecordingServer::start("qwen2.5-coder");
    let log = TempDir::new("out-of-sync-range");
    let (mut client, log_path) = start_logged(&server, &log, &[]);
    let uri = "file:///sync/area.py";
    client.open(uri, "python", "def area(r):\n    return \n");
    assert!(suggests(&mut client, &server, uri));
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
            {"range": {"start": {"line": -1, "character": 0}, "end": {"line": 1, "character": "x"}}, "text": "r"}]}),
    );
    assert!(!suggests(&mut client, &server, uri));
    // A ranged change that applies does not make the text whole again.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 3}, "contentChanges": [
            {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "text": "# a\n"}]}),
    );
    assert!(!suggests(&mut client, &server, uri));
    assert_eq!(out_of_sync_lines(&log_path), 1);

    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 4}, "contentChanges": [
            {"text": "def area(r):\n    return r\n"}]}),
    );
    assert!(suggests(&mut client, &server, uri));
    assert!(client.shutdown().success());
}
