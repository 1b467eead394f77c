//! An engine that fails loudly, drains on SIGTERM, and stays harmless under bad input: the real
//! server and models over real HTTP. What is asserted is behaviour (who answered, how, in which
//! order, what the metrics counted), not wall-clock limits.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{
    client, complete, default_model, metric, metrics_text, post_raw, sse_data, tiny_genai, Server,
};
use serde_json::{json, Value};

fn greedy(prompt: &str, max_tokens: u32) -> Value {
    json!({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": true})
}

/// The `data:` payloads of a whole SSE answer.
async fn stream_data(server: &Server, mut body: Value) -> Vec<String> {
    body["stream"] = json!(true);
    let resp = client()
        .post(server.url("/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    sse_data(&resp.text().await.unwrap())
}

/// A stream ended cleanly: `[DONE]` last, right after a chunk with a finish reason (or the
/// optional usage chunk after it) or an error event.
fn assert_clean_end(data: &[String]) -> &'static str {
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "stream must end with [DONE]: {data:?}"
    );
    let before: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    if before["error"]["message"].is_string() {
        return "error";
    }
    let finish = &before["choices"][0]["finish_reason"];
    assert!(
        finish.is_string(),
        "the last chunk before [DONE] has neither a finish reason nor an error: {before}"
    );
    "finished"
}

fn is_error_body(body: &Value) -> bool {
    body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty())
}

async fn wait_for_metric(server: &Server, name: &str, wanted: impl Fn(f64) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = metrics_text(server).await;
        if wanted(metric(&text, name)) {
            return text;
        }
        assert!(Instant::now() < deadline, "{name} never got there:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// 1. Tokenising a huge body runs off the async runtime.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_huge_prompts_stall_neither_health_nor_another_clients_stream() {
    let server = Arc::new(Server::start(&tiny_genai(), &[]));
    // Two 3 MB prompts (under the 4 MiB default body limit), seconds of tokenising each.
    let line = "let value = compute(1, 2); // a comment with words\n";
    let big = line.repeat(3 * 1024 * 1024 / line.len());
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut huge = Vec::new();
    for i in 0..2 {
        let (server, order, big) = (server.clone(), order.clone(), big.clone());
        huge.push(tokio::spawn(async move {
            let answer = complete(&server, &greedy(&big, 4)).await;
            order.lock().unwrap().push(format!("huge {i}"));
            answer
        }));
    }
    // Both bodies are uploaded in a moment; their tokenising takes seconds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let health = client().get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    order.lock().unwrap().push("health".to_string());
    let data = stream_data(&server, greedy("fn main() {", 8)).await;
    assert_eq!(assert_clean_end(&data), "finished");
    order.lock().unwrap().push("small stream".to_string());
    for task in huge {
        let (status, body) = task.await.unwrap();
        // Fitted to the context (cut from the left), or refused with a clear error.
        if status == 200 {
            let prompt_tokens = body["usage"]["prompt_tokens"].as_u64().unwrap();
            assert!(prompt_tokens <= 4096, "{body}");
        } else {
            assert!(is_error_body(&body), "status {status}: {body}");
            assert!(status < 500, "status {status}: {body}");
        }
    }
    let order = order.lock().unwrap().clone();
    let last_huge = order.iter().rposition(|e| e.starts_with("huge")).unwrap();
    let small = order.iter().position(|e| e == "small stream").unwrap();
    assert!(
        small < last_huge,
        "/health and the small stream waited for the huge prompts: {order:?}"
    );
    // And the server still serves.
    assert_eq!(complete(&server, &greedy("ok", 2)).await.0, 200);
}

// 2. A prompt alone in the engine is prefilled in chunks and stops when its client leaves.

#[tokio::test]
async fn a_long_prompt_whose_client_left_stops_within_a_chunk() {
    // The default model: a 6,000-token prompt takes it many seconds to prefill here, so the
    // client is gone long before the prompt would be done.
    let server = Server::start(&default_model(), &["--threads", "2"]);
    let before = metrics_text(&server).await;
    let prefilled_before = metric(&before, "ghostline_prefilled_tokens_total");
    let prompt = (0..600)
        .map(|i| format!("    let v{i} = w{i} + {i};\n"))
        .collect::<String>();
    let mut body = greedy(&prompt, 4);
    body["stream"] = json!(true);
    let resp = client()
        .post(server.url("/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Once the engine holds it (prefilling), the client hangs up.
    wait_for_metric(&server, "ghostline_active_requests", |n| n >= 1.0).await;
    drop(resp);
    let metrics = wait_for_metric(&server, "ghostline_cancelled_total", |n| n >= 1.0).await;
    // The next request is served, and the cancelled prompt stopped early.
    let (status, small) = complete(&server, &greedy("fn add(a: i32) -> i32 {", 4)).await;
    assert_eq!(status, 200, "{small}");
    let after = metrics_text(&server).await;
    let small_tokens = small["usage"]["prompt_tokens"].as_f64().unwrap();
    let cancelled_prefill =
        metric(&after, "ghostline_prefilled_tokens_total") - prefilled_before - small_tokens;
    // How long the prompt was, by the model's own tokenizer.
    let files = ghostline_serve::model::ModelFiles::resolve(&default_model()).unwrap();
    let tokenizer =
        ghostline_serve::model::ModelTokenizer::load(&files.tokenizer, &files.config.fim).unwrap();
    let prompt_tokens = tokenizer.encode_prompt(&prompt).unwrap().len() as f64;
    assert!(prompt_tokens > 5000.0, "{prompt_tokens}");
    assert!(
        cancelled_prefill >= 1.0 && cancelled_prefill < prompt_tokens / 4.0,
        "the abandoned prompt prefilled {cancelled_prefill} of {prompt_tokens} tokens:\n{metrics}"
    );
}

// 3. Panics end a request, not the engine; a dead engine makes the process exit non-zero.

#[tokio::test]
async fn a_dead_engine_thread_turns_ready_503_and_exits_non_zero() {
    let mut server =
        Server::start_with_env(&tiny_genai(), &[], &[("GHOSTLINE_FAULT", "engine-panic")]);
    let (status, body) = complete(&server, &greedy("fn main() {", 4)).await;
    assert!(status >= 500, "status {status}: {body}");
    assert!(is_error_body(&body), "{body}");
    let mut saw_503 = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match client().get(server.url("/ready")).send().await {
            Ok(resp) if resp.status() == 200 => {}
            Ok(resp) => {
                assert_eq!(resp.status(), 503);
                saw_503 = true;
                break;
            }
            Err(_) => break,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_503, "/ready never said 503 after the engine died");
    let exit = server
        .exit_status(Duration::from_secs(60))
        .expect("the process did not exit after its engine died");
    assert!(!exit.success(), "exit status {exit:?}");
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("engine thread stopped"), "{log}");
}

/// An engine thread that is alive but stuck (a forward pass that never returns) takes the
/// replica out of rotation: `/ready` turns 503 once the engine's heartbeat is older than
/// `--engine-stall-limit`, while `/health` (liveness) stays 200.
#[tokio::test]
async fn a_wedged_engine_thread_turns_ready_503_while_health_stays_200() {
    let server = Server::start_with_env(
        &tiny_genai(),
        &["--engine-stall-limit", "1"],
        &[("GHOSTLINE_FAULT", "engine-wedge")],
    );
    let status = |path: &str| {
        let url = server.url(path);
        async move { client().get(url).send().await.unwrap().status().as_u16() }
    };
    // Idle, the engine thread beats on its own: still ready well past the stall limit (the
    // passing time is what is tested here, nothing is ordered by it).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(status("/ready").await, 200);
    // Its next prefill chunk never ends.
    let url = server.url("/v1/completions");
    let wedged = tokio::spawn(async move {
        let _ = client()
            .post(url)
            .json(&greedy("fn main() {", 4))
            .send()
            .await;
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let resp = client().get(server.url("/ready")).send().await.unwrap();
        if resp.status() == 503 {
            break resp.json::<Value>().await.unwrap();
        }
        assert_eq!(resp.status(), 200);
        assert!(
            Instant::now() < deadline,
            "/ready still 200 with a wedged engine"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body["status"], "engine stalled", "{body}");
    assert_eq!(status("/health").await, 200);
    let text = metrics_text(&server).await;
    assert!(
        metric(&text, "ghostline_engine_heartbeat_age_seconds") > 1.0,
        "{text}"
    );
    wedged.abort();
}

#[tokio::test]
async fn a_panic_while_finishing_or_caching_ends_that_request_only() {
    let server = Server::start_with_env(
        &tiny_genai(),
        &[],
        &[("GHOSTLINE_FAULT", "finish-panic,cache-insert-panic")],
    );
    // The first request to finish panics in its finishing: it gets an error.
    let (status, body) = complete(&server, &greedy("fn main() {", 4)).await;
    assert_eq!(status, 500, "{body}");
    assert!(is_error_body(&body), "{body}");
    // The next one panics in the prefix-cache insert, after its answer was sent.
    let (status, body) = complete(&server, &greedy("fn main() {", 4)).await;
    assert_eq!(status, 200, "{body}");
    // The engine is fine: answers, streams and readiness.
    let (status, body) = complete(&server, &greedy("fn main() {", 4)).await;
    assert_eq!(status, 200, "{body}");
    let data = stream_data(&server, greedy("let x", 4)).await;
    assert_eq!(assert_clean_end(&data), "finished");
    let ready = client().get(server.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("injected fault: finish-panic"), "{log}");
    assert!(log.contains("injected fault: cache-insert-panic"), "{log}");
}

// 4. SIGTERM drains.

/// Starts 8 long greedy streams and resolves once each has sent text.
async fn eight_streams_decoding(server: &Server) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut streams = Vec::new();
    for i in 0..8 {
        let url = server.url("/v1/completions");
        let started = started_tx.clone();
        streams.push(tokio::spawn(async move {
            let mut body = greedy(&format!("fn f{i}() {{"), 4000);
            body["stream"] = json!(true);
            let mut resp = client().post(url).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let mut text = String::new();
            let mut told = false;
            while let Some(chunk) = resp.chunk().await.expect("the stream broke off") {
                text.push_str(&String::from_utf8_lossy(&chunk));
                if !told && text.contains("\"text\"") {
                    told = true;
                    let _ = started.send(());
                }
            }
            sse_data(&text)
        }));
    }
    for _ in 0..8 {
        started_rx.recv().await.unwrap();
    }
    streams
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_ends_eight_running_streams_cleanly_and_exits_zero() {
    let mut server = Server::start(
        &tiny_genai(),
        &["--max-tokens-cap", "4000", "--shutdown-grace", "2"],
    );
    let streams = eight_streams_decoding(&server).await;
    server.signal("TERM");
    // No new work is taken: /ready says 503 and a new request is refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match reqwest::Client::new()
            .get(server.url("/ready"))
            .send()
            .await
        {
            Ok(resp) if resp.status() == 200 => {
                assert!(Instant::now() < deadline, "/ready still 200 after SIGTERM")
            }
            _ => break,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Ok(resp) = reqwest::Client::new()
        .post(server.url("/v1/completions"))
        .json(&greedy("x", 2))
        .send()
        .await
    {
        assert_eq!(resp.status(), 503, "a new request was taken while draining");
    }
    let mut ends = Vec::new();
    for stream in streams {
        let data = stream.await.unwrap();
        ends.push(assert_clean_end(&data));
    }
    println!("streams ended: {ends:?}");
    let exit = server
        .exit_status(Duration::from_secs(60))
        .expect("the server did not exit after SIGTERM");
    assert!(exit.success(), "exit status {exit:?}: ended {ends:?}");
}

/// SIGTERM while eight streams decode, again and again: every time the streams end cleanly,
/// the process exits 0 and logs no error. The engine thread used to be inside ONNX Runtime
/// while the process tore it down: SIGSEGV now and then, "decode batch failed:
/// GetElementType is not implemented" most times.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_decode_twenty_times_exits_zero_without_an_error() {
    for run in 0..20 {
        // A grace of 0 ends the streams at once, so the exit races the decode steps.
        let grace = ["0", "0.05", "0.3"][run % 3];
        let mut server = Server::start(
            &tiny_genai(),
            &["--max-tokens-cap", "4000", "--shutdown-grace", grace],
        );
        let streams = eight_streams_decoding(&server).await;
        server.signal("TERM");
        for stream in streams {
            assert_clean_end(&stream.await.unwrap());
        }
        let exit = server
            .exit_status(Duration::from_secs(60))
            .expect("the server did not exit after SIGTERM");
        let log = server.log.lock().unwrap().clone();
        assert!(exit.success(), "run {run}: exit status {exit:?}\n{log}");
        let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
        assert!(
            errors.is_empty(),
            "run {run}: errors logged at shutdown: {errors:#?}"
        );
    }
}

// 5. Defects.

#[tokio::test]
async fn the_same_long_prompt_twice_never_outgrows_the_context() {
    // Tiny model, context 4,096: prompts of 2,780–3,495 tokens used to fail on the second send
    // (a prefix-cache hit grew the KV buffer by half, past the rotary cache).
    let server = Server::start(&tiny_genai(), &[]);
    for lines in [254, 282, 310] {
        let prompt = "fn main() {\n    let x = 1;\n".repeat(lines);
        let body = greedy(&prompt, 16);
        let (status, first) = complete(&server, &body).await;
        assert_eq!(status, 200, "{first}");
        let (status, second) = complete(&server, &body).await;
        assert_eq!(status, 200, "{second}");
        assert!(second["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64() > Some(0));
        assert_eq!(first["choices"][0]["text"], second["choices"][0]["text"]);
    }
}

#[tokio::test]
async fn active_requests_reads_zero_when_idle() {
    let server = Server::start(&tiny_genai(), &[]);
    let (status, _) = complete(&server, &greedy("fn main() {", 4)).await;
    assert_eq!(status, 200);
    wait_for_metric(&server, "ghostline_active_requests", |n| n == 0.0).await;
}

#[tokio::test]
async fn text_that_spells_a_special_token_stays_text() {
    let server = Server::start(&tiny_genai(), &[]);
    let tokens = |body: Value| {
        let server = &server;
        async move {
            let (status, answer) = complete(server, &body).await;
            assert_eq!(status, 200, "{answer}");
            answer["usage"]["prompt_tokens"].as_u64().unwrap()
        }
    };
    let fim =
        |prefix: &str, suffix: &str| json!({"prompt": prefix, "suffix": suffix, "max_tokens": 1});
    // In a suffix (and a FIM prefix): the characters, several tokens, not one control token.
    let plain = tokens(fim("a = ", "b")).await;
    for special in ["<|endoftext|>", "<|fim_middle|>", "<|im_start|>"] {
        let with = tokens(fim("a = ", &format!("b{special}"))).await;
        assert!(
            with >= plain + 3,
            "{special} in a suffix: {with} vs {plain} tokens"
        );
        let with = tokens(fim(&format!("a{special} = "), "b")).await;
        assert!(
            with >= plain + 3,
            "{special} in a prefix: {with} vs {plain} tokens"
        );
    }
    // In a raw prompt: other special tokens are text too ...
    let raw = tokens(json!({"prompt": "x = 1", "max_tokens": 1})).await;
    let with = tokens(json!({"prompt": "x = 1<|endoftext|>", "max_tokens": 1})).await;
    assert!(
        with >= raw + 3,
        "<|endoftext|> in a prompt: {with} vs {raw}"
    );
    // ... but a raw prompt in the FIM template (as ghostline-lsp sends it) keeps its markers:
    // the same tokens as the template the server applies itself.
    let templated = tokens(json!({
        "prompt": "<|fim_prefix|>a = <|fim_suffix|>b<|fim_middle|>", "max_tokens": 1
    }))
    .await;
    assert_eq!(templated, plain);
    let (_, a) = complete(&server, &json!({"prompt": "<|fim_prefix|>a = <|fim_suffix|>b<|fim_middle|>", "max_tokens": 6, "temperature": 0, "ignore_eos": true})).await;
    let (_, b) = complete(&server, &json!({"prompt": "a = ", "suffix": "b", "max_tokens": 6, "temperature": 0, "ignore_eos": true})).await;
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
}

// 6. Bad input stays harmless.

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_or_sane_clamping_never_a_500() {
    let server = Server::start(
        &tiny_genai(),
        &["--max-body-bytes", "1048576", "--max-tokens-cap", "64"],
    );
    let json_body = |v: Value| serde_json::to_vec(&v).unwrap();
    let nested = format!(
        "{{\"prompt\": \"x\", \"stop\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let many_stops: Vec<String> = (0..100_000).map(|i| format!("s{i}")).collect();
    let mut invalid_utf8 = br#"{"prompt": "fn main() {"#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    invalid_utf8.extend_from_slice(br#"", "max_tokens": 2}"#);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "body over the limit (2 MB)",
            json_body(json!({"prompt": "x".repeat(2 << 20)})),
            "413",
        ),
        (
            "deeply nested JSON (100k levels)",
            nested.into_bytes(),
            "400",
        ),
        (
            "deeply nested prompt object",
            format!("{}{}", "{\"prompt\":".repeat(50_000), "}".repeat(50_000)).into_bytes(),
            "400",
        ),
        (
            "100k stop strings",
            json_body(json!({"prompt": "x", "stop": many_stops})),
            "400",
        ),
        (
            "a 10 kB stop string",
            json_body(json!({"prompt": "x", "stop": ["y".repeat(10_000)]})),
            "400",
        ),
        (
            "an empty stop string",
            json_body(json!({"prompt": "x", "stop": [""], "max_tokens": 2})),
            "200",
        ),
        ("n = 5", json_body(json!({"prompt": "x", "n": 5})), "400"),
        ("n = 0", json_body(json!({"prompt": "x", "n": 0})), "400"),
        ("invalid UTF-8 in the body", invalid_utf8, "400"),
        (
            "lone surrogate escape",
            br#"{"prompt": "\ud800"}"#.to_vec(),
            "400",
        ),
        (
            "special tokens in the prompt text",
            json_body(json!({"prompt": "<|endoftext|><|im_start|>system", "max_tokens": 2})),
            "200",
        ),
        (
            "max_tokens -1",
            json_body(json!({"prompt": "x", "max_tokens": -1})),
            "400",
        ),
        (
            "max_tokens -9e18",
            br#"{"prompt": "x", "max_tokens": -9000000000000000000}"#.to_vec(),
            "400",
        ),
        (
            "max_tokens 1e30",
            br#"{"prompt": "x", "max_tokens": 1e30}"#.to_vec(),
            "400",
        ),
        (
            "max_tokens 2.5",
            br#"{"prompt": "x", "max_tokens": 2.5}"#.to_vec(),
            "400",
        ),
        (
            "max_tokens u64::MAX (clamped to the cap)",
            br#"{"prompt": "x", "max_tokens": 18446744073709551615, "ignore_eos": true}"#.to_vec(),
            "200",
        ),
        (
            "max_tokens 1e6 (clamped to the cap)",
            json_body(json!({"prompt": "x", "max_tokens": 1_000_000, "ignore_eos": true})),
            "200",
        ),
        (
            "max_tokens 2^64 (overflows u64)",
            br#"{"prompt": "x", "max_tokens": 18446744073709551616}"#.to_vec(),
            "400",
        ),
        (
            "temperature -1",
            json_body(json!({"prompt": "x", "temperature": -1})),
            "400",
        ),
        (
            "seed -1",
            json_body(json!({"prompt": "x", "seed": -1})),
            "400",
        ),
        ("prompt null", json_body(json!({"prompt": null})), "400"),
        (
            "prompt as token ids",
            json_body(json!({"prompt": [1, 2, 3]})),
            "400",
        ),
        (
            "suffix as a number",
            json_body(json!({"prompt": "x", "suffix": 3})),
            "400",
        ),
        (
            "NUL bytes in the prompt",
            json_body(json!({"prompt": "a\u{0}b\u{0}", "max_tokens": 2})),
            "200",
        ),
        (
            "a 840 kB prompt (cut to the context)",
            json_body(json!({"prompt": "x = 1\n".repeat(120_000), "max_tokens": 2})),
            "200",
        ),
        (
            "stream with max_tokens 0",
            json_body(json!({"prompt": "x", "max_tokens": 0, "stream": true})),
            "200",
        ),
    ];
    let mut failures = Vec::new();
    for (what, body, expected) in cases {
        let (status, answer) = post_raw(&server, body).await;
        let ok = status.to_string() == expected
            && (status == 200 || is_error_body(&answer) || expected == "200");
        println!(
            "{what}: {status} {}",
            if status == 200 {
                "ok".to_string()
            } else {
                answer["error"]["message"].to_string()
            }
        );
        if !ok {
            failures.push(format!(
                "{what}: expected {expected}, got {status} {answer}"
            ));
        }
        if what.contains("clamped") {
            let generated = answer["usage"]["completion_tokens"].as_u64().unwrap();
            assert!(generated <= 64, "{what}: {answer}");
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // Nothing answered 500, and the server still serves.
    let metrics = metrics_text(&server).await;
    assert!(!metrics.contains("status=\"500\""), "{metrics}");
    assert_eq!(complete(&server, &greedy("ok", 2)).await.0, 200);
}
