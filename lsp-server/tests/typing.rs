//! What typing needs from the prompt: the real binary over stdio, against the default model
//! (a suggestion that is not just the next line again) and against a recording backend that
//! reports a slow CPU's speed (a small first prompt, the next tier warmed in the background,
//! and the next keystroke's prompt starting with the same text).

mod common;

use std::time::{Duration, Instant};

use common::{default_model_dir, insert_text, items, start_backend, LspClient, RecordingServer};
use serde_json::{json, Value};

#[test]
fn default_model_fills_the_body_instead_of_closing_the_block_again() {
    let Some(backend) = start_backend(default_model_dir(), None, &[]) else {
        return;
    };
    // With the whole rest of the file as suffix the model wrote `}` then a Markdown fence and
    // prose, and `}` was shown although the next line already is `}`.
    let text = "fn add(a: i32, b: i32) -> i32 {\n    \n}\n\nfn main() {\n    println!(\"{}\", add(1, 2));\n}\n";
    let (mut client, _) = LspClient::start(json!({}), json!({"backendUrl": backend.url(), "timeoutMs": 60000}));
    client.open("file:///add.rs", "rust", text);
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params("file:///add.rs", 1, 4),
    );
    let got = items(&response);
    assert_eq!(got.len(), 1, "{response}");
    let suggestion = insert_text(&got[0]);
    assert!(suggestion.contains("a + b"), "{suggestion:?}");
    assert!(!suggestion.contains("```") && !suggestion.trim_end().ends_with('}'), "{suggestion:?}");
    assert!(client.shutdown().success());
}

/// A Python file long enough that the default budget (2,048 tokens) could take far more than a
/// slow backend answers in time.
fn long_python() -> String {
    (0..600)
        .map(|i| format!("def handler_{i}(request):\n    value = request.get('field_{i}', {i})\n    return value * 2\n\n"))
        .collect()
}

fn bodies_now(server: &RecordingServer) -> Vec<Value> {
    server.bodies.lock().unwrap().clone()
}

#[test]
fn a_slow_backend_gets_a_small_prompt_first_and_the_next_tier_warmed() {
    // 100 prompt tokens a second: a cold 2,048-token prompt would take 20 s.
    let server = RecordingServer::start_with_speed("qwen2.5-coder", 100.0, 40.0);
    let (mut client, _) = LspClient::start(
        json!({}),
        json!({"backendUrl": server.url(), "contextMode": "currentFile", "timeoutMs": 10000}),
    );
    let uri = "file:///handlers.py";
    // The cursor after the indentation of `def handler_300(request):`'s first body line.
    let line = 1201u32;
    client.open(uri, "python", &long_python());
    let response = client.request("textDocument/inlineCompletion", LspClient::inline_completion_params(uri, line, 4));
    assert_eq!(items(&response).len(), 1, "{response}");

    // The background warm-up: the next tier's prompt up to the cursor's line, no tokens asked.
    let deadline = Instant::now() + Duration::from_secs(10);
    while bodies_now(&server).len() < 2 {
        assert!(Instant::now() < deadline, "no warm-up request: {:?}", bodies_now(&server));
        std::thread::sleep(Duration::from_millis(20));
    }
    let bodies = bodies_now(&server);
    let first = bodies[0]["prompt"].as_str().unwrap().to_string();
    assert_eq!(bodies[0]["max_tokens"], 128);
    assert!(first.len() < 2_000, "a {}-byte first prompt for a backend this slow", first.len());
    let warm = &bodies[1];
    assert_eq!(warm["max_tokens"], 0, "{warm}");
    let warm_prompt = warm["prompt"].as_str().unwrap();
    assert!(warm_prompt.starts_with("<|fim_prefix|>") && !warm_prompt.contains("<|fim_suffix|>"), "{warm_prompt}");
    let first_stable = &first[..first.find("<|fim_suffix|>").unwrap()];
    assert!(warm_prompt.len() > first_stable.len(), "the warm-up is not larger than the first prompt");
    assert!(warm_prompt.ends_with("def handler_300(request):\n"), "{warm_prompt:?}");

    // Typing on the line (not what was suggested, `value`, which would be answered from
    // memory): the next prompt starts with the first one's text before the cursor.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2},
               "contentChanges": [{"range": {"start": {"line": line, "character": 4}, "end": {"line": line, "character": 4}}, "text": "x"}]}),
    );
    let response = client.request("textDocument/inlineCompletion", LspClient::inline_completion_params(uri, line, 5));
    assert_eq!(items(&response).len(), 1, "{response}");
    let bodies = bodies_now(&server);
    let next = bodies
        .iter()
        .skip(2)
        .find(|b| b["max_tokens"] == 128)
        .and_then(|b| b["prompt"].as_str())
        .expect("no second completion request");
    assert!(next.starts_with(first_stable), "the prompt changed before the cursor's line:\n{first_stable}\n---\n{next}");
    assert!(next.contains("<|fim_prefix|>") && next[..next.find("<|fim_suffix|>").unwrap()].ends_with("    x"));
    assert!(client.shutdown().success());
}
