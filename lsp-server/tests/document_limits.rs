//! Limits on what the editor sends, through the real binary: a document over the size limit
//! stays in sync but is never completed in (nothing reaches the backend), and requests on
//! documents that were never opened are answered empty.

mod common;

use common::{items, LspClient, RecordingServer};
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
