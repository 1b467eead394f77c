//! Limits on what the editor sends, through the real binary: a document over the size limit
//! stays in sync but is never completed in (nothing reaches the backend), and requests on
//! documents that were never opened are answered empty.

mod common;

use common::{items, suggests, LspClient, RecordingServer};
use serde_json::json;

/// `session::MAX_DOCUMENT_BYTES`.
const MAX_DOCUMENT_BYTES: usize = 8 << 20;

#[test]
fn a_document_over_the_size_limit_stays_in_sync_and_gets_no_suggestions() {
    let server = RecordingServer::start("qwen2.5-coder");
    let (mut client, _) = LspClient::start(json!({}), json!({"backendUrl": server.url()}));
    let small_uri = "file:///limits/small.py";
    client.open(small_uri, "python", "def f(x):\n    return \n");
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(small_uri, 1, 11),
    );
    assert!(response.get("error").is_none(), "{response}");
    assert_eq!(server.prompts().len(), 1, "a small document is completed");

    let big_uri = "file:///limits/big.py";
    let line = "value = compute(1, 2, 3)  # a generated line\n";
    let big = line.repeat(MAX_DOCUMENT_BYTES / line.len() + 1);
    client.open(big_uri, "python", &big);
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": big_uri, "version": 2}, "contentChanges": [
            {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 5}}, "text": "total"}]}),
    );
    let expected = format!("total{}", &big[5..]);
    assert!(client.document_text(big_uri).as_str() == Some(expected.as_str()));
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(big_uri, 3, 5),
    );
    assert!(response.get("error").is_none(), "{response}");
    assert!(items(&response).is_empty(), "{response}");
    assert_eq!(
        server.prompts().len(),
        1,
        "nothing of the big document reached the backend"
    );

    // Never opened: an empty answer, and the server goes on as before.
    for i in 0..20 {
        let response = client.request(
            "textDocument/inlineCompletion",
            LspClient::inline_completion_params(&format!("file:///limits/never{i}.py"), 0, 0),
        );
        assert!(response.get("error").is_none(), "{response}");
        assert!(items(&response).is_empty(), "{response}");
    }
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(small_uri, 1, 11),
    );
    assert!(response.get("error").is_none(), "{response}");
    assert!(client.shutdown().success());
}

/// `session::MAX_OPEN_DOCUMENTS`.
const MAX_OPEN_DOCUMENTS: usize = 1_000;

/// Opens `MAX_OPEN_DOCUMENTS` small documents, `file:///limits/open{i}.py`.
fn fill_the_open_document_limit(client: &mut LspClient) {
    for i in 0..MAX_OPEN_DOCUMENTS {
        client.open(&format!("file:///limits/open{i}.py"), "python", "x = 1\n");
    }
}

/// A document of its own for `name` (the same text twice could be answered from memory).
fn text(name: &str) -> String {
    format!("def {name}(x):\n    return \n")
}

#[test]
fn reopening_a_document_past_the_open_limit_does_not_get_it_served() {
    let server = RecordingServer::start("qwen2.5-coder");
    let (mut client, _) = LspClient::start(json!({}), json!({"backendUrl": server.url()}));
    fill_the_open_document_limit(&mut client);
    let extra = "file:///limits/extra.py";
    client.open(extra, "python", &text("extra"));
    assert!(!suggests(&mut client, &server, extra));
    // The same URI opened again and again, never closed: still one document past the limit.
    for i in 0..20 {
        client.open(extra, "python", &text(&format!("extra{i}")));
        assert!(!suggests(&mut client, &server, extra));
    }
    assert_eq!(
        client.document_text(extra),
        json!(text("extra19")),
        "kept in sync"
    );
    // A served document reopened stays served.
    client.open("file:///limits/open7.py", "python", &text("open7"));
    assert!(suggests(&mut client, &server, "file:///limits/open7.py"));
    assert!(client.shutdown().success());
}

#[test]
fn a_document_opened_past_the_limit_is_served_once_another_closes() {
    let server = RecordingServer::start("qwen2.5-coder");
    let (mut client, _) = LspClient::start(json!({}), json!({"backendUrl": server.url()}));
    fill_the_open_document_limit(&mut client);
    let (first, second) = ("file:///limits/first.py", "file:///limits/second.py");
    client.open(first, "python", &text("first"));
    client.open(second, "python", &text("second"));
    assert!(!suggests(&mut client, &server, first));
    assert!(!suggests(&mut client, &server, second));

    client.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": "file:///limits/open0.py"}}),
    );
    assert!(
        suggests(&mut client, &server, first),
        "the longest-waiting document takes the place"
    );
    assert!(!suggests(&mut client, &server, second));
    // A waiting document that closes gives up its turn; the served count is not touched.
    client.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": second}}),
    );
    client.open("file:///limits/third.py", "python", &text("third"));
    assert!(!suggests(&mut client, &server, "file:///limits/third.py"));
    client.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": first}}),
    );
    assert!(suggests(&mut client, &server, "file:///limits/third.py"));
    assert!(client.shutdown().success());
}
