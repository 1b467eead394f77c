//! The real server, the tiny random-weight model (real Qwen2 architecture and tokenizer), real
//! HTTP. Generated text is meaningless; what is checked is the serving behaviour.

mod common;

use common::{
    client, complete, metric, metrics_text, sse_data, tiny_cuda_fp16, tiny_genai, tiny_optimum,
    wait_for_metrics, Server,
};
use serde_json::{json, Value};

/// Streams a completion and returns the text pieces in order and the finish reason.
async fn stream(server: &Server, mut body: Value) -> (Vec<String>, String) {
    body["stream"] = json!(true);
    let resp = client()
        .post(server.url("/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "stream must end with [DONE]: {data:?}"
    );
    let mut pieces = Vec::new();
    let mut finish = String::new();
    for d in &data[..data.len() - 1] {
        let chunk: Value = serde_json::from_str(d).unwrap();
        assert_eq!(chunk["object"], "text_completion");
        let choice = &chunk["choices"][0];
        pieces.push(choice["text"].as_str().unwrap().to_string());
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = reason.to_string();
        }
    }
    (pieces, finish)
}

fn greedy(prompt: &str, max_tokens: u32) -> Value {
    json!({"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": true})
}

#[tokio::test]
async fn streaming_and_plain_answers_agree_for_both_layouts() {
    for dir in [tiny_genai(), tiny_optimum()] {
        let server = Server::start(&dir, &[]);
        let models: Value = client()
            .get(server.url("/v1/models"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let info = &models["data"][0];
        assert_eq!(info["family"], "qwen2.5-coder");
        assert_eq!(
            info["fim"]["template"],
            "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"
        );
        let expected_layout = if dir == tiny_genai() {
            "genai"
        } else {
            "optimum"
        };
        assert_eq!(info["layout"], expected_layout);

        let (status, body) = complete(&server, greedy("def fib(n):\n", 20)).await;
        assert_eq!(status, 200, "{body}");
        let text = body["choices"][0]["text"].as_str().unwrap().to_string();
        assert_eq!(body["usage"]["completion_tokens"], 20);
        assert_eq!(body["choices"][0]["finish_reason"], "length");
        assert!(!text.is_empty());

        let (pieces, finish) = stream(&server, greedy("def fib(n):\n", 20)).await;
        assert_eq!(finish, "length");
        assert_eq!(
            pieces.concat(),
            text,
            "streamed text must equal the plain answer ({})",
            dir.display()
        );

        // The FIM path: with a suffix the server applies the template itself.
        let (status, body) = complete(
            &server,
            json!({"prompt": "fn add(a: i32) {", "suffix": "}", "max_tokens": 5, "temperature": 0}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let fim_prompt_tokens = body["usage"]["prompt_tokens"].as_u64().unwrap();
        let (_, raw) = complete(
            &server,
            json!({"prompt": "<|fim_prefix|>fn add(a: i32) {<|fim_suffix|>}<|fim_middle|>", "max_tokens": 5, "temperature": 0}),
        )
        .await;
        assert_eq!(
            raw["usage"]["prompt_tokens"].as_u64().unwrap(),
            fim_prompt_tokens,
            "markers must be single tokens"
        );
        assert_eq!(raw["choices"][0]["text"], body["choices"][0]["text"]);
    }
}

#[tokio::test]
async fn seeded_sampling_is_reproducible() {
    let server = Server::start(&tiny_genai(), &[]);
    // The random model's distributions are peaked; a high temperature makes seeds matter.
    let body = |seed: u64| json!({"prompt": "import os\n", "max_tokens": 12, "temperature": 2.0, "top_p": 1.0, "seed": seed, "ignore_eos": true});
    let (_, a) = complete(&server, body(11)).await;
    let (_, b) = complete(&server, body(11)).await;
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    let mut others = Vec::new();
    for seed in 1..=4 {
        others.push(complete(&server, body(seed)).await.1["choices"][0]["text"].clone());
    }
    assert!(
        others.iter().any(|t| *t != a["choices"][0]["text"]),
        "every seed gave the same text: {others:?}"
    );
}

#[tokio::test]
async fn stop_string_split_across_tokens_ends_the_completion() {
    let server = Server::start(&tiny_genai(), &[]);
    let (pieces, _) = stream(&server, greedy("class Stack:\n", 40)).await;
    let full = pieces.concat();
    // A stop string made of the end of one token's text and the start of the next one's.
    let i = (1..pieces.len() - 1)
        .find(|&i| !pieces[i].is_empty() && !pieces[i + 1].is_empty() && i > 2)
        .expect("two consecutive non-empty pieces");
    let stop: String = format!(
        "{}{}",
        pieces[i].chars().last().unwrap(),
        pieces[i + 1].chars().next().unwrap()
    );
    let expected = &full[..full.find(&stop).unwrap()];
    let mut body = greedy("class Stack:\n", 40);
    body["stop"] = json!([stop.clone()]);
    let (status, answer) = complete(&server, body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["choices"][0]["text"], expected,
        "stop {stop:?} in {full:?}"
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let (streamed, finish) = stream(&server, body).await;
    assert_eq!(streamed.concat(), expected);
    assert_eq!(finish, "stop");
}

#[tokio::test]
async fn client_disconnect_stops_generation() {
    let server = Server::start(&tiny_genai(), &["--max-tokens-cap", "3000"]);
    let mut body = greedy("fn main() {", 3000);
    body["stream"] = json!(true);
    let mut resp = client()
        .post(server.url("/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap();
    assert!(first.is_some());
    drop(resp);
    let metrics = wait_for_metrics(&server, "the generation cancelled", |m| {
        metric(m, "ghostline_cancelled_total") >= 1.0
    })
    .await;
    let generated = metric(&metrics, "ghostline_generated_tokens_total");
    assert!(
        generated < 3000.0,
        "generation ran to the end ({generated} tokens)"
    );
    // A sampled request of 8 tokens (never drafted: one token per round) runs to its end after
    // the cancel: the engine ran 8 rounds meanwhile, and a generation still going on would
    // have added its tokens in them.
    let sampled = json!({"prompt": "fn main() {", "max_tokens": 8, "temperature": 1.5, "seed": 3, "ignore_eos": true});
    let (status, answer) = complete(&server, sampled).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 8, "{answer}");
    let later = metrics_text(&server).await;
    assert_eq!(
        metric(&later, "ghostline_generated_tokens_total"),
        generated + 8.0,
        "tokens kept coming after the cancel"
    );
}

#[tokio::test]
async fn api_keys_guard_the_api_but_not_health() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "# team keys\nsecret-one\n\nsecret-two\n").unwrap();
    let server = Server::start(&tiny_genai(), &["--api-key-file", keys.to_str().unwrap()]);
    let post = |key: Option<&str>| {
        let mut req = client()
            .post(server.url("/v1/completions"))
            .json(&greedy("x", 2));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        req.send()
    };
    let none = post(None).await.unwrap();
    assert_eq!(none.status(), 401);
    let err: Value = none.json().await.unwrap();
    assert_eq!(err["error"]["type"], "invalid_api_key");
    assert_eq!(post(Some("secret")).await.unwrap().status(), 401);
    assert_eq!(post(Some("secret-one-x")).await.unwrap().status(), 401);
    assert_eq!(post(Some("secret-two")).await.unwrap().status(), 200);
    assert_eq!(
        client()
            .get(server.url("/v1/models"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client()
            .get(server.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn malformed_requests_get_openai_style_400s() {
    let server = Server::start(&tiny_genai(), &[]);
    let raw = |body: &'static str| {
        client()
            .post(server.url("/v1/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in [
        "{not json",
        "",
        "[]",
        r#"{"max_tokens": 3}"#,
        r#"{"prompt": "x", "max_tokens": "ten"}"#,
        r#"{"prompt": 12}"#,
        r#"{"prompt": "x", "temperature": 5}"#,
        r#"{"prompt": "x", "top_p": 0}"#,
        r#"{"prompt": "x", "n": 2}"#,
        r#"{"prompt": "x", "max_tokens": -1}"#,
        r#"{"prompt": ["a", "b"]}"#,
        r#"{"prompt": ""}"#,
        "{\"prompt\": \"\\ud800\"}",
    ] {
        let resp = raw(body).await.unwrap();
        assert_eq!(resp.status(), 400, "body {body:?}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(
            err["error"]["type"], "invalid_request_error",
            "body {body:?}: {err}"
        );
        assert!(err["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let resp = client()
        .get(server.url("/v2/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // The server is still fine afterwards.
    assert_eq!(complete(&server, greedy("ok", 2)).await.0, 200);
}

#[tokio::test]
async fn limits_body_size_context_max_tokens_and_timeout() {
    let server = Server::start(
        &tiny_genai(),
        &[
            "--max-body-bytes",
            "8000",
            "--context-length",
            "64",
            "--max-tokens-cap",
            "8",
            "--request-timeout",
            "30",
        ],
    );
    let big = "x".repeat(20_000);
    let resp = client()
        .post(server.url("/v1/completions"))
        .json(&greedy(&big, 2))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(resp.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("larger than"));

    // 300 words are far over a 64-token context: left-truncated, not refused, not crashed.
    let long = "word ".repeat(300);
    let (status, body) = complete(&server, greedy(&long, 4)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() <= 60);
    let (status, body) = complete(
        &server,
        json!({"prompt": long, "suffix": long, "max_tokens": 4, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() <= 60);

    // max_tokens above the cap is clamped to it.
    let (_, body) = complete(&server, greedy("abc", 50)).await;
    assert_eq!(body["usage"]["completion_tokens"], 8);
    drop(server);

    let slow = Server::start(
        &tiny_genai(),
        &[
            "--request-timeout",
            "0.3",
            "--max-tokens-cap",
            "100000",
            "--context-length",
            "4096",
        ],
    );
    let (status, body) = complete(&slow, greedy("abc", 4000)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "timeout");
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() < 4000);
}

#[tokio::test]
async fn full_queue_answers_503_with_retry_after() {
    let server = Server::start(
        &tiny_genai(),
        &[
            "--queue-size",
            "1",
            "--max-active",
            "1",
            "--max-tokens-cap",
            "2000",
        ],
    );
    let mut handles = Vec::new();
    for _ in 0..6 {
        let url = server.url("/v1/completions");
        handles.push(tokio::spawn(async move {
            let resp = reqwest::Client::new()
                .post(url)
                .json(&greedy("loop", 400))
                .send()
                .await
                .unwrap();
            let retry = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (resp.status().as_u16(), retry)
        }));
    }
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    assert!(results.iter().any(|(s, _)| *s == 200), "{results:?}");
    let refused: Vec<_> = results.iter().filter(|(s, _)| *s == 503).collect();
    assert!(!refused.is_empty(), "{results:?}");
    assert!(refused
        .iter()
        .all(|(_, retry)| retry.as_deref() == Some("1")));
    let metrics = metrics_text(&server).await;
    assert!(metrics.contains("ghostline_requests_total{status=\"503\"}"));
    assert!(metric(&metrics, "ghostline_time_to_first_token_seconds_count") >= 1.0);
}

#[test]
fn refuses_a_directory_that_is_not_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, log) = common::run_to_exit(dir.path(), &[]);
    assert!(!ok);
    assert!(log.contains("ghostline.json"), "{log}");

    // A real model directory whose tokenizer lost the special flag on the FIM markers.
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(tiny_genai()).unwrap().flatten() {
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    let tok_path = copy.path().join("tokenizer.json");
    let mut tok: Value =
        serde_json::from_str(&std::fs::read_to_string(&tok_path).unwrap()).unwrap();
    for added in tok["added_tokens"].as_array_mut().unwrap() {
        if added["content"].as_str().unwrap().starts_with("<|fim_") {
            added["special"] = json!(false);
        }
    }
    std::fs::write(&tok_path, tok.to_string()).unwrap();
    let (ok, log) = common::run_to_exit(copy.path(), &[]);
    assert!(!ok);
    assert!(log.contains("not marked special"), "{log}");

    // A genai graph without its genai_config.json: taken for an Optimum export, which it is not.
    std::fs::copy(tiny_genai().join("tokenizer.json"), &tok_path).unwrap();
    std::fs::remove_file(copy.path().join("genai_config.json")).unwrap();
    let (ok, log) = common::run_to_exit(copy.path(), &[]);
    assert!(!ok);
    assert!(
        log.contains("onnxruntime-genai") && log.contains("Optimum"),
        "{log}"
    );
}

#[tokio::test]
async fn prefix_cache_reuses_kv_without_changing_results() {
    let prefix = "def parse(line):\n    fields = line.split(',')\n    return fields\n".repeat(6);
    let fim = |extra: &str| json!({"prompt": format!("{prefix}{extra}"), "suffix": "\nprint(parse('a,b'))\n", "max_tokens": 12, "temperature": 0, "ignore_eos": true});
    for dir in [tiny_genai(), tiny_optimum()] {
        let warm = Server::start(&dir, &[]);
        let cold = Server::start(&dir, &["--prefix-cache-mb", "0"]);
        // First keystroke, then the next one: the second prompt shares everything up to the
        // cursor with the first, and the first's generated tokens are cached too.
        let (_, first) = complete(&warm, fim("def ")).await;
        let (_, second) = complete(&warm, fim("def m")).await;
        let (_, again) = complete(&warm, fim("def m")).await;
        let metrics = metrics_text(&warm).await;
        let prompt_tokens = second["usage"]["prompt_tokens"].as_f64().unwrap();
        assert!(
            metric(&metrics, "ghostline_prefix_cache_hits_total") >= 2.0,
            "{metrics}"
        );
        assert!(
            metric(&metrics, "ghostline_prefix_cache_reused_tokens_total")
                >= 1.5 * (prompt_tokens - 20.0),
            "{metrics}"
        );

        let (_, cold_first) = complete(&cold, fim("def ")).await;
        let (_, cold_second) = complete(&cold, fim("def m")).await;
        let cold_metrics = metrics_text(&cold).await;
        assert_eq!(
            metric(&cold_metrics, "ghostline_prefix_cache_reused_tokens_total"),
            0.0
        );
        assert_eq!(
            first["choices"][0]["text"],
            cold_first["choices"][0]["text"],
            "{}",
            dir.display()
        );
        assert_eq!(
            second["choices"][0]["text"],
            cold_second["choices"][0]["text"],
            "{}",
            dir.display()
        );
        assert_eq!(
            again["choices"][0]["text"],
            cold_second["choices"][0]["text"],
            "{}",
            dir.display()
        );
    }
}

#[tokio::test]
async fn in_place_kv_matches_the_concatenating_path() {
    // GroupQueryAttention graphs update one preallocated KV buffer in place; the plain path feeds
    // each step's longer `present` back. Both must produce the same tokens, also when the
    // buffer has to grow (prefix-cache reuse followed by a longer request).
    let in_place = Server::start(&tiny_genai(), &[]);
    let concat = Server::start_with_env(&tiny_genai(), &[], &[("GHOSTLINE_KV_CONCAT", "1")]);
    let prompts = [
        "def f(x):\n    return x * 2\n",
        "def f(x):\n    return x * 2\nprint(f(3))\n",
    ];
    for prompt in prompts {
        let mut body = greedy(prompt, 40);
        body["temperature"] = json!(1.5);
        body["seed"] = json!(5);
        let (_, a) = complete(&in_place, body.clone()).await;
        let (_, b) = complete(&concat, body).await;
        assert_eq!(
            a["choices"][0]["text"], b["choices"][0]["text"],
            "prompt {prompt:?}"
        );
    }
}

#[tokio::test]
async fn prefill_graph_takes_long_passes_and_changes_no_answer() {
    // The tiny model's prefill graph is its main graph again (its f32 weights have no
    // MatMulNBits to compute otherwise), so every answer must be the one-graph server's exactly:
    // what is tested is the switch, a sequence prefilled on one session and decoded on the other.
    let one = Server::start(&tiny_genai(), &["--prefill-graph", "off"]);
    let two = Server::start(&tiny_genai(), &[]);
    assert!(
        two.log.lock().unwrap().contains("layout, prefill graph)"),
        "{}",
        two.log.lock().unwrap()
    );
    assert!(!one.log.lock().unwrap().contains("prefill graph"));
    let code =
        "def parse(line):\n    fields = line.split(',')\n    return [f.strip() for f in fields]\n"
            .repeat(8);
    let body = |prompt: String| {
        let mut body = greedy(&prompt, 24);
        body["temperature"] = json!(1.5);
        body["seed"] = json!(3);
        body
    };
    let graph_tokens = |m: &str| metric(m, "ghostline_prefill_graph_tokens_total");
    let mut lengths = Vec::new();
    // Distinct first tokens, so no prompt reuses another's KV from the prefix cache.
    let names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    // (charlie, delta and echo are 63, 64 and 65 tokens long: either side of the threshold.)
    for (name, chars) in names.into_iter().zip([40, 130, 232, 238, 242, 600]) {
        let request = body(format!("{name} = 1\n{}", &code[..chars]));
        let before = graph_tokens(&metrics_text(&two).await);
        let (_, got) = complete(&two, request.clone()).await;
        let (_, want) = complete(&one, request).await;
        let prompt_tokens = got["usage"]["prompt_tokens"].as_f64().unwrap();
        assert_eq!(
            got["choices"][0]["text"], want["choices"][0]["text"],
            "{prompt_tokens} prompt tokens"
        );
        let ran = graph_tokens(&metrics_text(&two).await) - before;
        // Prompts go in chunks of 128 (--prefill-chunk); each chunk of 64 tokens or more runs
        // on the prefill graph.
        let chunks = (0..prompt_tokens as usize)
            .step_by(128)
            .map(|start| (prompt_tokens as usize - start).min(128));
        let expected = chunks.filter(|&n| n >= 64).sum::<usize>() as f64;
        assert_eq!(
            ran, expected,
            "prompt tokens run on the prefill graph for a prompt of {prompt_tokens}"
        );
        lengths.push(prompt_tokens);
    }
    assert_eq!(
        lengths[2..5],
        [63.0, 64.0, 65.0],
        "prompt lengths {lengths:?} miss the threshold"
    );
    // The next keystroke: the prefix cache gives all but the new tokens, too few for the prefill
    // graph; the answer is still the one-graph server's.
    let request = body(format!("foxtrot = 1\n{}x = 10\n", &code[..600]));
    let before = metrics_text(&two).await;
    let (_, got) = complete(&two, request.clone()).await;
    let (_, want) = complete(&one, request).await;
    assert_eq!(got["choices"][0]["text"], want["choices"][0]["text"]);
    let after = metrics_text(&two).await;
    assert_eq!(graph_tokens(&after), graph_tokens(&before));
    assert_eq!(
        metric(&after, "ghostline_prefix_cache_hits_total"),
        metric(&before, "ghostline_prefix_cache_hits_total") + 1.0
    );
    assert_eq!(graph_tokens(&metrics_text(&one).await), 0.0);
}

#[tokio::test]
async fn cuda_fp16_export_gives_the_fp32_tokens() {
    // Same seeded weights, exported for CUDA in fp16 (float16 KV cache and logits) and for the
    // CPU in fp32: greedy tokens agree, so the f16 buffers are fed and read correctly.
    let fp16 = Server::start(&tiny_cuda_fp16(), &[]);
    let fp32 = Server::start(&tiny_genai(), &[]);
    let models: Value = client()
        .get(fp16.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["layout"], "genai");
    for prompt in ["def fib(n):", "import os\nimport sys\n", "class Stack:\n"] {
        let (status, a) = complete(&fp16, greedy(prompt, 12)).await;
        assert_eq!(status, 200, "{a}");
        let (_, b) = complete(&fp32, greedy(prompt, 12)).await;
        assert_eq!(
            a["choices"][0]["text"], b["choices"][0]["text"],
            "prompt {prompt:?}"
        );
    }
}

#[tokio::test]
async fn a_short_request_is_not_stuck_behind_a_long_one() {
    let server = Server::start(
        &tiny_genai(),
        &["--max-tokens-cap", "100000", "--context-length", "4096"],
    );
    let mut long = greedy("fn main() {", 3500);
    long["stream"] = json!(true);
    let mut long_stream = client()
        .post(server.url("/v1/completions"))
        .json(&long)
        .send()
        .await
        .unwrap();
    assert!(
        long_stream.chunk().await.unwrap().is_some(),
        "the long generation started"
    );
    // While it decodes, a short request is admitted beside it and answered long before the
    // long one is through (a one-at-a-time engine would have generated all 3,500 first).
    let (status, short) = complete(&server, greedy("x = ", 4)).await;
    assert_eq!(status, 200);
    assert_eq!(short["usage"]["completion_tokens"], 4);
    let metrics = metrics_text(&server).await;
    let generated = metric(&metrics, "ghostline_generated_tokens_total");
    assert!(
        generated < 3000.0,
        "{generated} tokens generated before the short request was answered"
    );
    drop(long_stream);
}

#[tokio::test]
async fn a_prompt_prefilled_in_chunks_beside_a_stream_gives_the_same_answer() {
    let prompt =
        "def parse(line):\n    fields = line.split(',')\n    return [f.strip() for f in fields]\n"
            .repeat(20);
    let mut body = greedy(&prompt, 8);
    body["temperature"] = json!(1.5);
    body["seed"] = json!(3);
    let alone = Server::start(&tiny_genai(), &[]);
    let (_, expected) = complete(&alone, body.clone()).await;
    drop(alone);

    // Beside a running stream, the 500-token prompt goes in 32-token chunks between its steps.
    let server = Server::start(
        &tiny_genai(),
        &["--max-tokens-cap", "100000", "--prefill-chunk", "32"],
    );
    let mut long = greedy("fn main() {", 3000);
    long["stream"] = json!(true);
    let mut long_stream = client()
        .post(server.url("/v1/completions"))
        .json(&long)
        .send()
        .await
        .unwrap();
    assert!(long_stream.chunk().await.unwrap().is_some());
    let (status, chunked) = complete(&server, body).await;
    assert_eq!(status, 200, "{chunked}");
    assert!(expected["usage"]["prompt_tokens"].as_u64().unwrap() > 300);
    assert_eq!(
        chunked["choices"][0]["text"],
        expected["choices"][0]["text"]
    );
    let metrics = metrics_text(&server).await;
    assert!(
        metric(&metrics, "ghostline_generated_tokens_total") < 3000.0,
        "the prompt was not taken in beside the stream"
    );
}

/// Requests of different prompt lengths and lengths of completion: (prompt, max_tokens, seed).
/// A seed means temperature 1.5 sampling (reproducible per request); none means greedy.
fn mixed_requests() -> Vec<Value> {
    let cases: [(String, u32, Option<u64>); 6] = [
        ("def fib(n):\n".into(), 24, None),
        ("import os\nimport sys\n".repeat(5), 64, Some(7)),
        ("class Stack:\n    def __init__(self):\n        self.items = []\n".repeat(3), 10, None),
        ("fn main() {\n    let x = 1;\n".repeat(8), 96, None),
        ("x = ".into(), 40, Some(11)),
        ("def parse(line):\n    fields = line.split(',')\n    return [f.strip() for f in fields]\n".repeat(12), 64, None),
    ];
    cases
        .into_iter()
        .map(|(prompt, max_tokens, seed)| {
            let mut body = greedy(&prompt, max_tokens);
            if let Some(seed) = seed {
                body["temperature"] = json!(1.5);
                body["seed"] = json!(seed);
            }
            body
        })
        .collect()
}

/// Each request alone (one after the other): the reference answers. Run them on a server with
/// `--max-active 1 --batching off`, so that they come from the batch-1 path (which
/// `in_place_kv_matches_the_concatenating_path` ties to the plain concatenating one), not from
/// the batched path under test.
async fn answers_alone(server: &Server, requests: &[Value]) -> Vec<Value> {
    let mut answers = Vec::new();
    for body in requests {
        let (status, answer) = complete(server, body.clone()).await;
        assert_eq!(status, 200, "{answer}");
        answers.push(answer["choices"][0]["text"].clone());
    }
    answers
}

/// A shorter answer than the one alone must mean a wrong answer, not a machine too busy to
/// finish within the request timeout.
fn not_timed_out(answer: &Value, i: usize) {
    assert_ne!(
        answer["choices"][0]["finish_reason"], "timeout",
        "request {i} hit the request timeout: the machine is overloaded"
    );
}

/// How many decode forward passes advanced more than `rows` sequences at once.
fn steps_wider_than(metrics: &str, rows: u32) -> f64 {
    metric(metrics, "ghostline_decode_batch_size_count")
        - metric(
            metrics,
            &format!("ghostline_decode_batch_size_bucket{{le=\"{rows}\"}}"),
        )
}

/// Sends `requests` one after the other, each as soon as the one before it has streamed its
/// first chunk (the engine has then taken it in: requests join while others decode, and the
/// short ones leave while the long ones go on), twice (the second time their prompts are in the
/// prefix cache), and checks every answer against `expected`.
async fn staggered_answers_match(server: &Server, requests: &[Value], expected: &[Value]) {
    for round in 0..2 {
        let mut streams = Vec::new();
        for body in requests {
            let mut body = body.clone();
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
            let mut resp = client()
                .post(server.url("/v1/completions"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let first = resp.chunk().await.unwrap().unwrap_or_default();
            streams.push(tokio::spawn(async move {
                let mut bytes = first.to_vec();
                while let Some(chunk) = resp.chunk().await.unwrap() {
                    bytes.extend_from_slice(&chunk);
                }
                String::from_utf8(bytes).unwrap()
            }));
        }
        for (i, stream) in streams.into_iter().enumerate() {
            let answer = streamed_answer(&stream.await.unwrap());
            not_timed_out(&answer, i);
            assert_eq!(
                answer["choices"][0]["text"], expected[i],
                "request {i} in round {round} differs from its answer alone"
            );
            assert_eq!(
                answer["usage"]["completion_tokens"], requests[i]["max_tokens"],
                "request {i}"
            );
        }
    }
}

/// A streamed completion (`include_usage`) put back into the shape of a plain answer: its text
/// pieces joined, its finish reason, its usage.
fn streamed_answer(body: &str) -> Value {
    let data = sse_data(body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{body}");
    let mut text = String::new();
    let mut finish = Value::Null;
    let mut usage = Value::Null;
    for d in &data[..data.len() - 1] {
        let chunk: Value = serde_json::from_str(d).unwrap();
        if let Some(choice) = chunk["choices"].get(0) {
            text.push_str(choice["text"].as_str().unwrap());
            if !choice["finish_reason"].is_null() {
                finish = choice["finish_reason"].clone();
            }
        }
        if !chunk["usage"].is_null() {
            usage = chunk["usage"].clone();
        }
    }
    json!({"choices": [{"text": text, "finish_reason": finish}], "usage": usage})
}

#[tokio::test]
async fn batched_decoding_gives_every_request_its_answer_alone() {
    let requests = mixed_requests();
    let alone = Server::start(&tiny_genai(), &["--max-active", "1", "--batching", "off"]);
    let expected = answers_alone(&alone, &requests).await;
    drop(alone);

    // With 16-token prefill chunks, requests join the batch while others decode, and the short
    // ones leave it while the long ones go on.
    let server = Server::start(&tiny_genai(), &["--prefill-chunk", "16"]);
    staggered_answers_match(&server, &requests, &expected).await;
    let metrics = metrics_text(&server).await;
    assert!(
        steps_wider_than(&metrics, 2) > 0.0,
        "requests never decoded three at a time:\n{metrics}"
    );
    assert!(
        metric(&metrics, "ghostline_decode_batch_rebuilds_total") >= 6.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ghostline_decode_batch"),
        0.0,
        "the batch is empty once all are answered"
    );
    // A greedy request decoding alone (the first, before the others join; the last ones) drafts,
    // so joins and leaves also happen right after drafted steps.
    assert!(
        metric(&metrics, "ghostline_draft_accepted_tokens_total") > 0.0,
        "no drafted step:\n{metrics}"
    );
    drop(server);

    // The fixed-shape batch used with CUDA graphs (slots in buffers allocated once, idle slots
    // decoding a dummy token), here on the CPU: 4 slots for 6 requests, so slots are reused.
    let fixed = Server::start_with_env(
        &tiny_genai(),
        &[
            "--prefill-chunk",
            "16",
            "--max-active",
            "4",
            "--context-length",
            "1024",
        ],
        &[("GHOSTLINE_FIXED_BATCH", "1")],
    );
    assert!(fixed
        .log
        .lock()
        .unwrap()
        .contains("fixed-shape decode batch"));
    staggered_answers_match(&fixed, &requests, &expected).await;
    let metrics = metrics_text(&fixed).await;
    assert!(
        steps_wider_than(&metrics, 2) > 0.0,
        "requests never decoded three at a time:\n{metrics}"
    );
}

#[tokio::test]
async fn a_cancelled_request_leaves_the_batch_without_disturbing_the_others() {
    let requests = mixed_requests();
    let alone = Server::start(&tiny_genai(), &["--max-active", "1", "--batching", "off"]);
    let expected = answers_alone(&alone, &requests).await;
    drop(alone);

    let server = Server::start(&tiny_genai(), &["--max-tokens-cap", "3000"]);
    let mut handles = Vec::new();
    for (i, body) in requests.iter().cloned().enumerate().skip(1) {
        let url = server.url("/v1/completions");
        handles.push((
            i,
            tokio::spawn(async move { common::post_json(url, &body).await }),
        ));
    }
    // A long stream that joins the batch beside them and whose client goes away after two
    // pieces of text; then one more request joins.
    let mut body = greedy("fn main() {", 3000);
    body["stream"] = json!(true);
    let mut gone = client()
        .post(server.url("/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(gone.chunk().await.unwrap().is_some());
    assert!(gone.chunk().await.unwrap().is_some());
    drop(gone);
    let url = server.url("/v1/completions");
    let first = requests[0].clone();
    handles.push((
        0,
        tokio::spawn(async move { common::post_json(url, &first).await }),
    ));
    for (i, handle) in handles {
        let answer = handle.await.unwrap();
        not_timed_out(&answer, i);
        assert_eq!(
            answer["choices"][0]["text"], expected[i],
            "request {i} differs from its answer alone"
        );
    }
    let metrics = metrics_text(&server).await;
    assert_eq!(
        metric(&metrics, "ghostline_cancelled_total"),
        1.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "ghostline_generated_tokens_total") < 1500.0,
        "the cancelled stream kept decoding:\n{metrics}"
    );
    assert!(
        steps_wider_than(&metrics, 2) > 0.0,
        "requests never decoded three at a time:\n{metrics}"
    );
}

#[tokio::test]
async fn batching_off_and_optimum_models_interleave_with_the_same_answers() {
    let requests = mixed_requests();
    for (dir, extra) in [
        (tiny_genai(), &["--batching", "off"][..]),
        (tiny_optimum(), &[][..]),
    ] {
        let alone = Server::start(&dir, &["--max-active", "1", "--batching", "off"]);
        let expected = answers_alone(&alone, &requests).await;
        drop(alone);
        let server = Server::start(&dir, extra);
        let mut handles = Vec::new();
        for body in &requests {
            let (url, body) = (server.url("/v1/completions"), body.clone());
            handles.push(tokio::spawn(
                async move { common::post_json(url, &body).await },
            ));
        }
        for (i, handle) in handles.into_iter().enumerate() {
            let answer = handle.await.unwrap();
            not_timed_out(&answer, i);
            assert_eq!(
                answer["choices"][0]["text"],
                expected[i],
                "{} request {i}",
                dir.display()
            );
        }
        let metrics = metrics_text(&server).await;
        assert_eq!(
            steps_wider_than(&metrics, 1),
            0.0,
            "{}: decode steps were batched:\n{metrics}",
            dir.display()
        );
        assert_eq!(
            metric(&metrics, "ghostline_decode_batch_rebuilds_total"),
            0.0
        );
    }
}

#[tokio::test]
async fn prompt_lookup_gives_the_same_greedy_answers_in_fewer_steps() {
    // Repetitive prompts, so earlier text predicts the next tokens; lengths from 1 token (no
    // room for a draft) to long ones, streamed and not, and ending on a stop string. The random
    // model soon repeats one or two tokens, which drafts predict; the text before that loop in
    // the prompts (chosen by trying, for make_tiny_model.py's seeded weights) makes it reject
    // some drafts too, so rewinding is tested.
    let parse =
        "def parse(line):\n    fields = line.split(',')\n    return [f.strip() for f in fields]\n";
    let prompts = [
        format!("{}]\n]\nimport os\n]\n]\nx = 1\n{parse}", parse.repeat(3)),
        format!("{}{parse}", "a = [1, 2]\n]\n;\n:\n".repeat(4)),
        // The tiny model loops on one token (甲状腺, " sexism") after these two; the same token
        // earlier in the prompt followed by "(" makes a draft it rejects.
        format!(
            "{}(\n{}class Stack:\n",
            "甲状腺".repeat(4),
            ":\n:\n:\nreturn self\n:\n:\nclass Queue:\n".repeat(3)
        ),
        format!(
            "{}(\n{}",
            " sexism".repeat(4),
            "fn main() {\n    let x = 1;\n".repeat(8)
        ),
    ];
    let off = Server::start(&tiny_genai(), &["--prompt-lookup", "off"]);
    let on = Server::start(&tiny_genai(), &[]);
    for prompt in &prompts {
        for max_tokens in [1, 2, 7, 80] {
            let body = greedy(prompt, max_tokens);
            let (_, want) = complete(&off, body.clone()).await;
            let (_, got) = complete(&on, body.clone()).await;
            assert_eq!(
                got["choices"][0]["text"], want["choices"][0]["text"],
                "{prompt:?}, {max_tokens} tokens"
            );
            assert_eq!(got["usage"]["completion_tokens"], max_tokens);
            let (pieces, finish) = stream(&on, body).await;
            assert_eq!(
                pieces.concat(),
                want["choices"][0]["text"].as_str().unwrap(),
                "streamed {prompt:?}"
            );
            assert_eq!(finish, "length");
        }
        let full = {
            let (_, want) = complete(&off, greedy(prompt, 80)).await;
            want["choices"][0]["text"].as_str().unwrap().to_string()
        };
        // A stop string from the middle of the answer: the text up to it, on both.
        let chars: Vec<char> = full.chars().collect();
        let stop: String = chars[chars.len() / 2..(chars.len() / 2 + 3).min(chars.len())]
            .iter()
            .collect();
        let mut body = greedy(prompt, 80);
        body["stop"] = json!([stop]);
        let (_, want) = complete(&off, body.clone()).await;
        let (_, got) = complete(&on, body).await;
        assert_eq!(
            got["choices"][0]["text"], want["choices"][0]["text"],
            "stop {stop:?} in {full:?}"
        );
        assert_eq!(
            got["choices"][0]["finish_reason"],
            want["choices"][0]["finish_reason"]
        );
    }
    let on_metrics = metrics_text(&on).await;
    let off_metrics = metrics_text(&off).await;
    let drafted = metric(&on_metrics, "ghostline_draft_tokens_total");
    let accepted = metric(&on_metrics, "ghostline_draft_accepted_tokens_total");
    assert!(
        accepted > 20.0 && accepted + 5.0 <= drafted,
        "drafts: {accepted} of {drafted} confirmed, expected some of each\n{on_metrics}"
    );
    assert_eq!(metric(&off_metrics, "ghostline_draft_tokens_total"), 0.0);
    // Every confirmed draft is a decode step saved, exactly: one more request on each server.
    let counts = |m: &str| {
        (
            metric(m, "ghostline_decode_batch_size_count"),
            metric(m, "ghostline_draft_accepted_tokens_total"),
        )
    };
    let fresh = greedy(&prompts[1].replace("x", "y"), 60);
    let mut steps = Vec::new();
    for server in [&on, &off] {
        let before = counts(&metrics_text(server).await);
        complete(server, fresh.clone()).await;
        let after = counts(&metrics_text(server).await);
        steps.push((after.0 - before.0, after.1 - before.1));
    }
    let [(on_steps, saved), (off_steps, _)] = steps[..] else {
        unreachable!()
    };
    assert!(
        saved > 0.0 && on_steps + saved == off_steps && off_steps == 59.0,
        "on: {on_steps} steps + {saved} confirmed drafts, off: {off_steps} steps"
    );

    // Sampling (temperature > 0) is never drafted: a guess cannot be checked against a draw.
    let drafted = metric(&metrics_text(&on).await, "ghostline_draft_tokens_total");
    let mut sampled = greedy(&prompts[0], 40);
    sampled["temperature"] = json!(1.5);
    sampled["seed"] = json!(3);
    let (_, a) = complete(&on, sampled.clone()).await;
    let (_, b) = complete(&off, sampled).await;
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    let after = metrics_text(&on).await;
    assert_eq!(
        metric(&after, "ghostline_draft_tokens_total"),
        drafted,
        "a sampled request was drafted"
    );

    // Models without logits_to_keep (the Optimum export) run without drafts.
    let optimum = Server::start(&tiny_optimum(), &[]);
    let (status, _) = complete(&optimum, greedy(&prompts[0], 20)).await;
    assert_eq!(status, 200);
    let metrics = metrics_text(&optimum).await;
    assert_eq!(metric(&metrics, "ghostline_draft_tokens_total"), 0.0);
}

/// Reads an SSE response until its first text piece, then drops it (closing the connection):
/// what an editor's superseded request looks like to the server.
async fn leave_at_first_token(server: &Server, mut body: Value) {
    body["stream"] = json!(true);
    let mut resp = client()
        .post(server.url("/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut seen = String::new();
    // Text chunks are the ones whose finish_reason is null.
    while !seen.contains("\"finish_reason\":null") {
        let chunk = resp
            .chunk()
            .await
            .unwrap()
            .expect("stream ended before any text");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(resp);
    // Until the server has noticed (a keystroke's request comes a few milliseconds later).
    wait_for_metrics(server, "the server notice the client leaving", |m| {
        metric(m, "ghostline_cancelled_total") >= 1.0
    })
    .await;
}

#[tokio::test]
async fn a_request_superseded_at_its_first_token_leaves_its_kv_to_the_next() {
    for extra in [&[][..], &["--batching", "off"][..]] {
        let server = Server::start(
            &tiny_genai(),
            &[extra, &["--max-tokens-cap", "3000"][..]].concat(),
        );
        let prefix =
            "def parse(line):\n    fields = line.split(',')\n    return fields\n".repeat(12);
        let fim = |typed: &str, max_tokens: u32| json!({"prompt": format!("{prefix}{typed}"), "suffix": "\nprint(parse('a,b'))\n", "max_tokens": max_tokens, "temperature": 0, "ignore_eos": true});
        leave_at_first_token(&server, fim("def", 3000)).await;
        // The next keystroke, sent at once: its prompt shares all but its last tokens.
        let (status, next) = complete(&server, fim("def p", 4)).await;
        assert_eq!(status, 200, "{next}");
        let prompt = next["usage"]["prompt_tokens"].as_u64().unwrap();
        let cached = next["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap();
        assert!(
            prompt > 150 && cached + 20 >= prompt,
            "{extra:?}: only {cached} of {prompt} prompt tokens came from the cache: {next}"
        );
        let timings = &next["timings"];
        assert!(
            timings["prefill_ms"].as_f64().is_some() && timings["decode_ms"].as_f64().is_some(),
            "{next}"
        );
        // And the answer is what a cold server gives.
        let cold = Server::start(&tiny_genai(), &["--prefix-cache-mb", "0"]);
        let (_, expected) = complete(&cold, fim("def p", 4)).await;
        assert_eq!(next["choices"][0]["text"], expected["choices"][0]["text"]);
        assert_eq!(
            expected["usage"]["prompt_tokens_details"]["cached_tokens"],
            0
        );
    }
}

#[tokio::test]
async fn max_tokens_zero_only_prefills_and_the_next_prompt_reuses_it() {
    let server = Server::start(&tiny_genai(), &["--prefill-chunk", "16"]);
    let prefix = "fn total(items: &[u32]) -> u32 {\n    items.iter().sum()\n}\n".repeat(10);
    let (status, warm) = complete(&server, json!({"prompt": prefix, "max_tokens": 0})).await;
    assert_eq!(status, 200, "{warm}");
    assert_eq!(warm["choices"][0]["text"], "");
    assert_eq!(warm["choices"][0]["finish_reason"], "length");
    assert_eq!(warm["usage"]["completion_tokens"], 0);
    let warmed = warm["usage"]["prompt_tokens"].as_u64().unwrap();
    let metrics = metrics_text(&server).await;
    assert_eq!(metric(&metrics, "ghostline_generated_tokens_total"), 0.0);
    assert_eq!(
        metric(&metrics, "ghostline_prefilled_tokens_total"),
        warmed as f64
    );

    let (_, next) = complete(&server, json!({"prompt": format!("{prefix}fn main() {{"), "max_tokens": 3, "temperature": 0, "ignore_eos": true})).await;
    let cached = next["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(
        cached + 1 >= warmed,
        "{cached} of the {warmed} warmed tokens reused: {next}"
    );
    assert_eq!(next["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn usage_comes_in_its_own_last_chunk_when_asked_and_models_report_speed() {
    let server = Server::start(&tiny_genai(), &[]);
    let resp = client()
        .post(server.url("/v1/completions"))
        .json(&json!({"prompt": "def f(x):\n", "max_tokens": 5, "temperature": 0, "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}}))
        .send()
        .await
        .unwrap();
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let last: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(last["choices"], json!([]), "{last}");
    assert_eq!(last["usage"]["completion_tokens"], 5);
    assert!(last["usage"]["prompt_tokens_details"]["cached_tokens"].is_u64());
    let finish: Value = serde_json::from_str(&data[data.len() - 3]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    assert_eq!(finish["usage"], last["usage"]);

    let models: Value = client()
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let speed = &models["data"][0]["speed"];
    assert!(
        speed["prefill_tokens_per_s"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{models}"
    );
    assert!(
        speed["decode_tokens_per_s"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{models}"
    );
}

/// The gauges a router or an autoscaler reads (deploy/README.md): once a request has finished
/// the server reads idle (nothing waiting or running, no KV held by a request; it used to read
/// one request running forever), while the prefix cache now holds the finished sequence.
#[tokio::test]
async fn router_gauges_read_idle_after_a_request_and_count_the_prefix_cache() {
    let server = Server::start(&tiny_genai(), &[]);
    let before = metrics_text(&server).await;
    assert_eq!(metric(&before, "ghostline_prefix_cache_usage_perc"), 0.0);
    let (status, _) = complete(&server, greedy("def add(a, b):\n    return", 8)).await;
    assert_eq!(status, 200);
    // The answer is sent before the engine's loop comes round to publish its load.
    let after = wait_for_metrics(&server, "no request running", |m| {
        metric(m, "ghostline_num_requests_running") == 0.0
    })
    .await;
    assert_eq!(metric(&after, "ghostline_num_requests_waiting"), 0.0);
    assert_eq!(metric(&after, "ghostline_num_requests_running"), 0.0);
    assert_eq!(metric(&after, "ghostline_active_requests"), 0.0);
    assert_eq!(metric(&after, "ghostline_kv_cache_usage_perc"), 0.0);
    let cached = metric(&after, "ghostline_prefix_cache_usage_perc");
    assert!(cached > 0.0 && cached <= 1.0, "{cached}");
}
