//! The protocol itself, over the real binary's stdio: lifecycle, capabilities, encoding
//! negotiation, and what happens with malformed input and unknown methods.

mod common;

use std::time::Duration;

use common::LspClient;
use serde_json::json;

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
    assert!(client.is_running());
    // The two undecodable messages were answered with errors carrying id null.
    let stray = client.drain(Duration::from_millis(200));
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
    let warnings = client.notifications("window/showMessage", Duration::from_millis(500));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(client.shutdown().success());
}

#[test]
fn end_of_input_without_exit_ends_the_process() {
    let (mut client, _) = LspClient::start(json!({}), json!({}));
    drop(client.stdin_take());
    let status = client.wait_exit(Duration::from_secs(10));
    let _ = status;
}
