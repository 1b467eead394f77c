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
    let (mut client, _) = LspClient::start(
        json!({}),
        json!({"backendUrl": backend.url(), "timeoutMs": 60000}),
    );
    client.open("file:///add.rs", "rust", text);
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params("file:///add.rs", 1, 4),
    );
    let got = items(&response);
    assert_eq!(got.len(), 1, "{response}");
    let suggestion = insert_text(&got[0]);
    assert!(suggestion.contains("a + b"), "{suggestion:?}");
    assert!(
        !suggestion.contains("```") && !suggestion.trim_end().ends_with('}'),
        "{suggestion:?}"
    );
    assert!(client.shutdown().success());
}

/// A Python file long enough that the default budget (2,048 tokens) could take far more than a
/// slow backend answers in time, with the first body line of `handler_300` (line 1201) emptied
/// but for its indentation: where the user is about to type.
fn long_python() -> String {
    (0..600)
        .map(|i| match i {
            300 => format!("def handler_{i}(request):\n    \n    return value * 2\n\n"),
            _ => format!("def handler_{i}(request):\n    value = request.get('field_{i}', {i})\n    return value * 2\n\n"),
        })
        .collect()
}

const HANDLERS: &str = "file:///handlers.py";
/// The emptied first body line of `handler_300` (see `long_python`).
const HANDLER_300_BODY: u32 = 1201;

/// A recording backend that reports a slow CPU's speed (100 prompt tokens a second: a cold
/// 2,048-token prompt would take 20 s), and the LSP with `long_python` open at `HANDLERS`.
fn slow_backend_with_long_python_open() -> (RecordingServer, LspClient) {
    let server = RecordingServer::start_with_speed("qwen2.5-coder", 100.0, 40.0);
    let (mut client, _) = LspClient::start(
        json!({}),
        json!({"backendUrl": server.url(), "contextMode": "currentFile", "timeoutMs": 10000}),
    );
    client.open(HANDLERS, "python", &long_python());
    // Until the token counter has loaded, budgets are estimated: a warm-up built then and a
    // keystroke's prompt built after would cut the window at different lines.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.request_ok(
            "workspace/executeCommand",
            json!({"command": "ghostline.indexStatus", "arguments": []}),
        );
        if status["tokenizerReady"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the token counter never loaded: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, client)
}

fn bodies_now(server: &RecordingServer) -> Vec<Value> {
    server.bodies.lock().unwrap().clone()
}

/// The prompts of the warm-ups (`max_tokens: 0`) received so far, in order.
fn warm_prompts(server: &RecordingServer) -> Vec<String> {
    bodies_now(server)
        .iter()
        .filter(|b| b["max_tokens"] == 0)
        .map(|b| b["prompt"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Waits until the backend has received no request for `quiet`.
fn until_quiet(server: &RecordingServer, quiet: Duration) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = bodies_now(server).len();
    let mut since = Instant::now();
    while since.elapsed() < quiet {
        assert!(Instant::now() < deadline, "the warm-ups never stopped");
        std::thread::sleep(Duration::from_millis(20));
        let now = bodies_now(server).len();
        if now != seen {
            (seen, since) = (now, Instant::now());
        }
    }
}

#[test]
fn resting_at_the_spot_climbs_and_the_same_ask_gets_the_larger_prompt() {
    let (server, mut client) = slow_backend_with_long_python_open();
    let (uri, line) = (HANDLERS, HANDLER_300_BODY);
    let ask = |client: &mut LspClient| {
        let response = client.request(
            "textDocument/inlineCompletion",
            LspClient::inline_completion_params(uri, line, 4),
        );
        assert_eq!(items(&response).len(), 1, "{response}");
    };
    ask(&mut client);
    // Nothing happens: the warm-ups climb, each larger than the last, to the whole budget.
    until_quiet(&server, Duration::from_millis(500));
    let warmed = warm_prompts(&server);
    assert!(warmed.len() >= 2, "{warmed:?}");
    assert!(
        warmed.windows(2).all(|w| w[1].len() > w[0].len()),
        "the warm-ups did not climb: {:?}",
        warmed.iter().map(String::len).collect::<Vec<_>>()
    );
    let first = server.prompts();
    assert_eq!(first.len(), 1);
    // Asked again where the suggestion is shown, nothing typed: not the remembered answer of
    // the small prompt, but one from the largest prompt the backend now holds.
    ask(&mut client);
    let prompts = server.prompts();
    assert_eq!(prompts.len(), 2, "answered from memory after the rest");
    let largest = warmed.last().unwrap();
    assert!(
        prompts[1].starts_with(largest.as_str()) && prompts[1].len() > first[0].len(),
        "the ask after the rest did not take the warmed prompt:\n{}",
        prompts[1]
    );
    // Asked once more: nothing larger is held now, so the answer on screen stands.
    until_quiet(&server, Duration::from_millis(300));
    ask(&mut client);
    assert_eq!(
        server.prompts().len(),
        2,
        "asked the backend again for nothing"
    );
    assert!(client.shutdown().success());
}

#[test]
fn a_slow_backend_gets_a_small_prompt_first_and_the_next_tier_warmed() {
    let (server, mut client) = slow_backend_with_long_python_open();
    let (uri, line) = (HANDLERS, HANDLER_300_BODY);
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(uri, line, 4),
    );
    assert_eq!(items(&response).len(), 1, "{response}");

    // The background warm-up: the next tier's prompt up to the cursor's line, no tokens asked.
    let deadline = Instant::now() + Duration::from_secs(10);
    while bodies_now(&server).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no warm-up request: {:?}",
            bodies_now(&server)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let bodies = bodies_now(&server);
    let first = bodies[0]["prompt"].as_str().unwrap().to_string();
    assert_eq!(bodies[0]["max_tokens"], 128);
    assert!(
        first.len() < 2_000,
        "a {}-byte first prompt for a backend this slow",
        first.len()
    );
    let warm = &bodies[1];
    assert_eq!(warm["max_tokens"], 0, "{warm}");
    let warm_prompt = warm["prompt"].as_str().unwrap();
    // What is typed on the cursor's line comes last, after the middle marker; everything before
    // it, the line's indentation included, is what the next keystrokes share, and what a
    // warm-up prefills. Nothing is typed yet: the whole prompt is that part.
    assert!(first.ends_with("<|fim_middle|>"), "{first:?}");
    assert!(
        first[..first.find("<|fim_suffix|>").unwrap()].ends_with("):\n    "),
        "{first:?}"
    );
    let first_stable = first.as_str();
    assert!(
        warm_prompt.starts_with("<|fim_prefix|>") && warm_prompt.ends_with("<|fim_middle|>"),
        "{warm_prompt}"
    );
    assert!(
        warm_prompt.len() > first_stable.len(),
        "the warm-up is not larger than the first prompt"
    );
    let warm_prefix = &warm_prompt[..warm_prompt.find("<|fim_suffix|>").unwrap()];
    assert!(
        warm_prefix.ends_with("def handler_300(request):\n    "),
        "{warm_prompt:?}"
    );

    // Typing on the line (not what was suggested, `value`, which would be answered from
    // memory): the next prompt starts with the first one's text before the cursor.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2},
               "contentChanges": [{"range": {"start": {"line": line, "character": 4}, "end": {"line": line, "character": 4}}, "text": "x"}]}),
    );
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(uri, line, 5),
    );
    assert_eq!(items(&response).len(), 1, "{response}");
    let bodies = bodies_now(&server);
    let next = bodies
        .iter()
        .skip(2)
        .find(|b| b["max_tokens"] == 128)
        .and_then(|b| b["prompt"].as_str())
        .expect("no second completion request");
    // Whichever tier it took (a warm-up's, once answered: they climb while nothing is typed),
    // the prompt is one the backend has computed, and only the typed line after it is new.
    let warmed = warm_prompts(&server);
    let stable = std::iter::once(first_stable)
        .chain(warmed.iter().map(String::as_str))
        .find(|stable| next.starts_with(stable))
        .unwrap_or_else(|| {
            panic!("the prompt changed before the cursor's line:\n{first_stable}\n---\n{next}")
        });
    assert_eq!(&next[stable.len()..], "x");
    assert!(client.shutdown().success());
}

#[test]
fn placing_the_cursor_prefills_the_prompt_a_keystroke_there_sends() {
    let (server, mut client) = slow_backend_with_long_python_open();
    let (uri, line) = (HANDLERS, HANDLER_300_BODY);
    // VS Code asks for code actions wherever the cursor comes to rest on code; Ghostline has
    // none to offer, and takes the request as the sign of where typing will happen.
    let cursor = json!({"line": line, "character": 4});
    let response = client.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri}, "range": {"start": cursor, "end": cursor}, "context": {"diagnostics": []}}),
    );
    assert!(
        response.get("error").is_none() && response["result"].is_null(),
        "{response}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while bodies_now(&server).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no warm-up after the cursor came to rest"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let warm = bodies_now(&server)[0].clone();
    assert_eq!(warm["max_tokens"], 0, "{warm}");
    let warm_prompt = warm["prompt"].as_str().unwrap();
    assert!(warm_prompt.ends_with("<|fim_middle|>"), "{warm_prompt:?}");
    assert!(warm_prompt[..warm_prompt.find("<|fim_suffix|>").unwrap()]
        .ends_with("def handler_300(request):\n    "));

    // The first keystroke there sends that prompt and the typed line after it.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2},
               "contentChanges": [{"range": {"start": cursor, "end": cursor}, "text": "x"}]}),
    );
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(uri, line, 5),
    );
    assert_eq!(items(&response).len(), 1, "{response}");
    let completion = bodies_now(&server)
        .into_iter()
        .find(|b| b["max_tokens"] == 128)
        .expect("no completion request");
    // (Once the spot's prompt was held the warm-ups climbed on to larger ones; the keystroke
    // takes the largest held.)
    let warmed = warm_prompts(&server);
    assert!(
        warmed
            .iter()
            .any(|w| completion["prompt"].as_str().unwrap() == format!("{w}x")),
        "{completion}"
    );
    // The prompt ends inside a word: the backend is asked to heal it.
    assert_eq!(completion["token_healing"], true, "{completion}");
    assert!(client.shutdown().success());
}
