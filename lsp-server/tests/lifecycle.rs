//! The protocol itself, over the real binary's stdio: lifecycle, capabilities, encoding
//! negotiation, and what happens with malformed input and unknown methods.

mod common;

use std::time::Duration;

use common::LspClient;
use serde_json::{json, Value};

#[test]
fn initialize_shutdown_exit() {
    let (client, result) = LspClient::start(json!({}), json!({}));
    let capabilities = &result["capabilities"];
    assert_eq!(
        capabilities["positionEncoding"], "utf-16",
        "UTF-16 is the default"
    );
    assert_eq!(
        capabilities["textDocumentSync"]["change"], 2,
        "incremental sync"
    );
    assert_eq!(capabilities["inlineCompletionProvider"], true);
    assert!(capabilities["completionProvider"].is_object());
    let commands = capabilities["executeCommandProvider"]["commands"]
        .as_array()
        .unwrap();
    assert!(
        commands.contains(&json!("ghostline.accept"))
            && commands.contains(&json!("ghostline.dismiss"))
    );
    assert_eq!(result["serverInfo"]["name"], "ghostline-lsp");
    let status = client.shutdown();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn utf8_is_chosen_when_offered() {
    let (client, result) = LspClient::start(
        json!({"general": {"positionEncodings": ["utf-16", "utf-8"]}}),
        json!({}),
    );
    assert_eq!(result["capabilities"]["positionEncoding"], "utf-8");
    assert!(client.shutdown().success());
}

#[test]
fn requests_before_initialize_are_refused() {
    let mut client = LspClient::spawn();
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params("file:///a.rs", 0, 0),
    );
    assert_eq!(response["error"]["code"], -32002, "{response}");
    drop(client.stdin_take());
    let status = client.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "ended without shutdown: {status}");
}

#[test]
fn malformed_messages_and_unknown_methods_do_not_hurt() {
    let (mut client, _) = LspClient::start(json!({}), json!({}));

    // Not JSON at all.
    client.send_raw(b"Content-Length: 9\r\n\r\n{not json");
    // JSON, but not JSON-RPC.
    client.send_raw(b"Content-Length: 2\r\n\r\n[]");
    // Valid request for a method nobody implements.
    let response = client.request("ghostline/noSuchMethod", json!({}));
    assert_eq!(response["error"]["code"], -32601, "{response}");
    // Unknown notification: ignored, no answer.
    client.notify("$/somethingOptional", json!({}));
    client.notify("ghostline/unknownNotification", json!({"x": 1}));
    // Wrong params shape for a known request.
    let response = client.request("textDocument/inlineCompletion", json!({"textDocument": 42}));
    assert_eq!(response["error"]["code"], -32602, "{response}");
    // Completion for a document that was never opened: an empty answer, not an error.
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params("file:///never.rs", 3, 3),
    );
    assert!(response.get("error").is_none(), "{response}");
    // Malformed document notifications are ignored.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": 5}}),
    );
    client.notify("textDocument/didOpen", json!({}));

    // Still alive and answering.
    client.open("file:///ok.rs", "rust", "fn main() {}\n");
    assert_eq!(
        client.document_text("file:///ok.rs"),
        json!("fn main() {}\n")
    );
    // A change whose range does not parse is ignored, not read as a whole-document
    // replacement (which the LSP type, an untagged enum, would otherwise make of it).
    for range in [
        json!({"start": {"line": -1, "character": 0}, "end": {"line": 0, "character": 0}}),
        json!("0:0"),
    ] {
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": "file:///ok.rs", "version": 2}, "contentChanges": [{"range": range, "text": "lost"}]}),
        );
        assert_eq!(
            client.document_text("file:///ok.rs"),
            json!("fn main() {}\n")
        );
    }
    assert!(client.is_running());
    // The two undecodable messages were answered with errors carrying id null.
    let stray = client.messages_before_barrier();
    let mut codes: Vec<i64> = stray
        .iter()
        .filter(|m| m["id"].is_null() && m.get("error").is_some())
        .map(|m| m["error"]["code"].as_i64().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, vec![-32700, -32600], "{stray:?}");
    assert!(client.shutdown().success());
}

#[test]
fn settings_from_did_change_configuration_apply() {
    let (mut client, _) = LspClient::start(json!({}), json!({"enabledLanguages": ["python"]}));
    client.open("file:///a.rs", "rust", "fn main() {\n    \n}\n");
    // Rust is not enabled: an empty answer at once, without contacting any backend.
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params("file:///a.rs", 1, 4),
    );
    assert_eq!(common::items(&response).len(), 0);
    client.notify("workspace/didChangeConfiguration", json!({"settings": {"ghostline": {"enabledLanguages": ["*"], "backendUrl": format!("http://127.0.0.1:{}", common::free_port())}}}));
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params("file:///a.rs", 1, 4),
    );
    assert_eq!(common::items(&response).len(), 0);
    // With everything enabled the request went to the (absent) backend: one warning.
    let warnings = client.notifications_before_barrier("window/showMessage");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(client.shutdown().success());
}

#[test]
fn end_of_input_without_exit_ends_the_process() {
    let (mut client, _) = LspClient::start(json!({}), json!({}));
    drop(client.stdin_take());
    let status = client.wait_exit(Duration::from_secs(10));
    // LSP: exit code 1 when the server ends without a shutdown request first.
    assert_eq!(status.code(), Some(1), "{status}");
}

#[test]
fn exit_without_shutdown_exits_with_1_and_after_it_with_0() {
    let (mut client, _) = LspClient::start(json!({}), json!({}));
    client.notify("exit", Value::Null);
    let status = client.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{status}");

    let (mut client, _) = LspClient::start(json!({}), json!({}));
    assert!(client
        .request("shutdown", Value::Null)
        .get("error")
        .is_none());
    // Requests after shutdown are refused, each with one answer.
    let response = client.request(
        "ghostline/documentText",
        json!({"textDocument": {"uri": "file:///a"}}),
    );
    assert_eq!(response["error"]["code"], -32600, "{response}");
    client.notify("exit", Value::Null);
    let status = client.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn every_request_with_an_id_gets_one_answer() {
    let (mut client, _) = LspClient::start(json!({}), json!({}));
    let uri = "file:///with-id.rs";
    // Notifications sent with an id: answered with an error, and (document changes) still
    // applied, so nothing typed is lost.
    let response = client.request(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "rust", "version": 1, "text": "ab"}}),
    );
    assert_eq!(response["error"]["code"], -32600, "{response}");
    let response = client.request(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": "abc"}]}),
    );
    assert_eq!(response["error"]["code"], -32600, "{response}");
    assert_eq!(client.document_text(uri), json!("abc"));
    for method in [
        "initialized",
        "workspace/didChangeConfiguration",
        "textDocument/didSave",
    ] {
        let response = client.request(
            method,
            json!({"settings": {}, "textDocument": {"uri": uri}}),
        );
        assert_eq!(response["error"]["code"], -32600, "{method}: {response}");
    }
    // `$/` requests the server does not know: method not found (tower-lsp-server would
    // drop them silently, as it must for `$/` notifications).
    let response = client.request("$/someRequest", json!({}));
    assert_eq!(response["error"]["code"], -32601, "{response}");
    let response = client.request("$/cancelRequest", json!({"id": 12345}));
    assert_eq!(response["error"]["code"], -32600, "{response}");
    // Wrong param types.
    let response = client.request("ghostline/documentText", json!([1, 2]));
    assert_eq!(response["error"]["code"], -32602, "{response}");
    let response = client.request("textDocument/completion", json!("x"));
    assert_eq!(response["error"]["code"], -32602, "{response}");
    // A duplicate initialize.
    let response = client.request("initialize", json!({"capabilities": {}}));
    assert_eq!(response["error"]["code"], -32600, "{response}");
    // Nothing else came: every answer above was the only one for its id.
    let stray = client.messages_before_barrier();
    assert!(
        stray.iter().all(|m| m.get("method").is_some()),
        "unexpected answers: {stray:?}"
    );
    assert!(client.shutdown().success());
}

#[test]
fn a_request_reusing_a_pending_id_is_refused_and_both_are_answered_once() {
    let port = common::misbehaving_server(common::Misbehaviour::Stall);
    let (mut client, _) = LspClient::start(
        json!({}),
        json!({"backendUrl": format!("http://127.0.0.1:{port}"), "timeoutMs": 1500}),
    );
    let uri = "file:///dup.rs";
    client.open(uri, "rust", "fn main() {\n    let x = \n}\n");
    let params = LspClient::inline_completion_params(uri, 1, 12);
    let request = json!({"jsonrpc": "2.0", "id": 777, "method": "textDocument/inlineCompletion", "params": params});
    client.send(&request);
    client.send(&request);
    let answers = [
        client.response(777, common::TIMEOUT),
        client.response(777, common::TIMEOUT),
    ];
    // The duplicate is refused; the original is answered without an error (empty: the
    // duplicate superseded it, or the stalled backend ran out of time). Either may come first.
    let refused = answers
        .iter()
        .filter(|a| a["error"]["code"] == -32600)
        .count();
    let answered = answers.iter().filter(|a| a.get("error").is_none()).count();
    assert_eq!((refused, answered), (1, 1), "{answers:?}");
    let stray = client.messages_before_barrier();
    assert!(
        stray
            .iter()
            .all(|m| m.get("id") != Some(&json!(777)) || m.get("method").is_some()),
        "a third answer: {stray:?}"
    );
    assert!(client.shutdown().success());
}

#[test]
fn a_panic_answers_its_request_with_an_error_and_the_server_lives_on() {
    let log = common::TempDir::new("panic-log");
    let log_path = log.0.join("stderr.log");
    let client = LspClient::spawn_with_stderr(
        &[
            (
                "GHOSTLINE_LSP_FAULT",
                "panic-in-inline-completion,panic-in-did-change",
            ),
            ("GHOSTLINE_LSP_LOG", "info"),
        ],
        std::fs::File::create(&log_path).unwrap().into(),
    );
    let mut client = LspClient::start_in_workspace_with(client, &log.0, json!({}), json!({}));
    let faulty = "file:///fault-panic.rs";
    let healthy = "file:///healthy.rs";
    client.open(faulty, "rust", "fn a() {}\n");
    client.open(healthy, "rust", "fn b() {}\n");
    for _ in 0..3 {
        let response = client.request(
            "textDocument/inlineCompletion",
            LspClient::inline_completion_params(faulty, 0, 3),
        );
        assert_eq!(response["error"]["code"], -32603, "{response}");
        let message = response["error"]["message"].as_str().unwrap();
        assert!(message.contains("internal error"), "{message}");
        // The next request is answered.
        assert_eq!(client.document_text(healthy), json!("fn b() {}\n"));
    }
    // A panic in a notification applied at arrival: dropped, and the server goes on.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": faulty, "version": 2}, "contentChanges": [{"text": "lost"}]}),
    );
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": healthy, "version": 2}, "contentChanges": [{"text": "kept"}]}),
    );
    assert_eq!(client.document_text(faulty), json!("fn a() {}\n"));
    assert_eq!(client.document_text(healthy), json!("kept"));
    assert!(client.is_running());
    assert!(client.shutdown().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("ERROR") && log.contains("injected fault: panic in inlineCompletion"),
        "{log}"
    );
    assert!(log.contains("injected fault: panic in didChange"), "{log}");
}

/// Sends `damaged` and then a request; the request must be answered, and the damaged frame
/// with exactly one error (id null).
fn probe_after(client: &mut LspClient, damaged: &[u8], uri: &str, what: &str) {
    client.send_raw(damaged);
    let text = client.document_text(uri);
    assert_eq!(text, json!("probe"), "{what}");
    let stray = client.messages_before_barrier();
    let errors: Vec<&Value> = stray
        .iter()
        .filter(|m| m["id"].is_null() && m.get("error").is_some())
        .collect();
    assert_eq!(errors.len(), 1, "{what}: {stray:?}");
    assert_eq!(errors[0]["error"]["code"], -32700, "{what}: {stray:?}");
}

#[test]
fn after_a_damaged_frame_the_next_frame_is_read() {
    let (mut client, _) = LspClient::start(json!({}), json!({}));
    let uri = "file:///probe.txt";
    client.open(uri, "plaintext", "probe");
    let body = json!({"jsonrpc": "2.0", "id": "damaged", "method": "ghostline/documentText",
                      "params": {"textDocument": {"uri": uri}}})
    .to_string();
    let n = body.len();
    let cases: Vec<(String, Vec<u8>)> = vec![
        (
            "non-numeric length".into(),
            format!("Content-Length: abc\r\n\r\n{body}").into_bytes(),
        ),
        (
            "negative length".into(),
            format!("Content-Length: -5\r\n\r\n{body}").into_bytes(),
        ),
        (
            "missing length".into(),
            format!("Content-Type: x\r\n\r\n{body}").into_bytes(),
        ),
        (
            "body 5 bytes short".into(),
            format!("Content-Length: {}\r\n\r\n{body}", n + 5).into_bytes(),
        ),
        (
            "body 20 bytes long".into(),
            format!("Content-Length: {}\r\n\r\n{body}", n - 20).into_bytes(),
        ),
        (
            "huge length".into(),
            format!("Content-Length: 99999999999\r\n\r\n{body}").into_bytes(),
        ),
        ("no header at all".into(), body.clone().into_bytes()),
        (
            "not JSON".into(),
            b"Content-Length: 9\r\n\r\n{not json".to_vec(),
        ),
        (
            "a 20 MB line".into(),
            [vec![b'h'; 20 << 20], b"\r\n\r\n".to_vec()].concat(),
        ),
    ];
    for (what, damaged) in cases {
        probe_after(&mut client, &damaged, uri, &what);
    }
    // No damaged frame was executed: the request inside them was never answered.
    let stray = client.messages_before_barrier();
    assert!(
        stray.iter().all(|m| m["id"] != json!("damaged")),
        "{stray:?}"
    );
    assert!(client.shutdown().success());
}
