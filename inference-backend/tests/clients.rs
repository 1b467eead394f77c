//! The clients people already run against a local server, pointed at ghostline-serve unchanged:
//! llama.vim / llama.vscode (llama.cpp's `POST /infill`) and Zed's `open_ai_compatible_api`
//! edit-prediction provider (`POST /v1/completions` with its own FIM prompt). The requests are
//! the ones those clients send, field for field, recorded from their source:
//! llama.vim `autoload/llama.vim` at a1c8e6e (`s:ring_update` and `llama#fim`), Zed's
//! `RawCompletionRequest` (model, prompt, max_tokens, stop; no temperature, no suffix).

mod common;

use common::{client, default_model, tiny_genai, Server};
use serde_json::{json, Value};

async fn post(server: &Server, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = client().post(server.url(path)).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// llama.vim's background request when its ring of extra context changes: the chunks only,
/// `n_predict: 0`, nothing wanted back (`response_fields: [""]`).
fn llama_vim_ring_update(extra: &Value) -> Value {
    json!({
        "id_slot": 0,
        "input_prefix": "",
        "input_suffix": "",
        "input_extra": extra,
        "prompt": "",
        "n_predict": 0,
        "temperature": 0.0,
        "samplers": [],
        "stream": false,
        "cache_prompt": true,
        "t_max_prompt_ms": 1,
        "t_max_predict_ms": 1,
        "response_fields": [""]
    })
}

/// llama.vim's completion request at the cursor (its defaults: n_predict 128, no stop strings,
/// t_max_prompt_ms 500, t_max_predict_ms 1000 — 250 for the first request on a line).
fn llama_vim_fim(prefix: &str, middle: &str, suffix: &str, indent: usize, extra: &Value) -> Value {
    json!({
        "id_slot": 0,
        "input_prefix": prefix,
        "input_suffix": suffix,
        "input_extra": extra,
        "prompt": middle,
        "n_predict": 128,
        "stop": [],
        "n_indent": indent,
        "top_k": 40,
        "top_p": 0.90,
        "samplers": ["top_k", "top_p", "infill"],
        "stream": false,
        "cache_prompt": true,
        "t_max_prompt_ms": 500,
        "t_max_predict_ms": 1000,
        "response_fields": [
            "content",
            "timings/prompt_n",
            "timings/prompt_ms",
            "timings/prompt_per_token_ms",
            "timings/prompt_per_second",
            "timings/predicted_n",
            "timings/predicted_ms",
            "timings/predicted_per_token_ms",
            "timings/predicted_per_second",
            "truncated",
            "tokens_cached",
        ],
    })
}

/// The default model, as a person using llama.vim or Zed would run it: the warm-up's chunks are
/// reused by the completion that follows, and both clients get the obvious code.
#[tokio::test]
async fn llama_vim_and_zed_requests_get_clean_completions_from_the_default_model() {
    let server = Server::start(&default_model(), &["--threads", "2"]);
    // llama.vim's ring: chunks of lines it saw in other buffers (`{text, time, filename}`).
    let extra = json!([
        {"text": "def rectangle_area(width, height):\n    return width * height\n\n\ndef square_area(side):\n    return side * side\n", "time": 1733400000.0, "filename": "shapes.py"},
        {"text": "import math\n\nTAU = 2 * math.pi\n", "time": 1733400001.0, "filename": "constants.py"}
    ]);
    let (status, warm) = post(&server, "/infill", None, &llama_vim_ring_update(&extra)).await;
    assert_eq!(status, 200, "{warm}");
    assert_eq!(warm, json!({}), "response_fields [\"\"] asks for nothing");

    let prefix = "import math\n\n\ndef circle_area(radius):\n";
    let suffix = "\n\n\nprint(circle_area(2.0))\n";
    let (status, answer) = post(
        &server,
        "/infill",
        None,
        &llama_vim_fim(prefix, "    return ", suffix, 4, &extra),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let content = answer["content"].as_str().expect("content");
    println!("llama.vim /infill: {answer}");
    assert!(
        content.contains("radius") && content.contains("math.pi"),
        "not the circle's area: {content:?}"
    );
    assert!(!content.contains("<|"), "{content:?}");
    assert!(
        !content.trim_end().contains('\n'),
        "n_indent 4 ends the answer at the dedented line: {content:?}"
    );
    // The chunks and the repo header were computed by the warm-up: the prefix cache held them.
    let cached = answer["tokens_cached"].as_u64().expect("tokens_cached");
    assert!(cached >= 40, "tokens_cached {cached}: {answer}");
    assert!(answer["timings/prompt_n"].as_u64().unwrap() > 0);
    assert!(answer["timings/predicted_n"].as_u64().unwrap() > 0);
    assert_eq!(answer["truncated"], false);
    assert_eq!(
        answer.as_object().unwrap().len(),
        11,
        "exactly the response_fields: {answer}"
    );

    // Zed: its own Qwen FIM prompt, max_tokens and stop; no temperature, no suffix field.
    let zed = json!({
        "model": "qwen2.5-coder-0.5b-instruct",
        "prompt": "<|fim_prefix|>def fahrenheit(celsius):\n    return <|fim_suffix|>\n\n\nprint(fahrenheit(100))\n<|fim_middle|>",
        "max_tokens": 64,
        "stop": ["<|endoftext|>", "<|file_sep|>", "<|fim_pad|>", "<|repo_name|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]
    });
    let (status, answer) = post(&server, "/v1/completions", None, &zed).await;
    assert_eq!(status, 200, "{answer}");
    let text = answer["choices"][0]["text"]
        .as_str()
        .expect("choices[0].text");
    println!("Zed /v1/completions: {text:?}");
    assert!(
        text.contains("celsius") && text.contains("9") && text.contains("32"),
        "not the conversion: {text:?}"
    );
    assert!(
        !text.contains("<|"),
        "a marker leaked into the text: {text:?}"
    );
}

#[tokio::test]
async fn infill_streams_and_obeys_keys_and_limits_like_completions() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let audit = dir.path().join("audit.log");
    std::fs::write(&keys, "alice alice-key rpm=3\n").unwrap();
    let server = Server::start(
        &tiny_genai(),
        &[
            "--api-key-file",
            keys.to_str().unwrap(),
            "--audit-log",
            audit.to_str().unwrap(),
        ],
    );
    let body = json!({"input_prefix": "fn main() {\n", "input_suffix": "}\n", "prompt": "    let",
                      "n_predict": 8});
    let (status, refused) = post(&server, "/infill", None, &body).await;
    assert_eq!(status, 401, "{refused}");

    let (status, answer) = post(&server, "/infill", Some("alice-key"), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stop"], true);
    assert!(answer["content"].is_string());
    assert!(answer["tokens_predicted"].as_u64().unwrap() <= 8);
    assert!(answer["timings"]["predicted_n"].is_u64(), "{answer}");

    // Streamed: content chunks with stop false, then the whole answer with stop true.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let text = client()
        .post(server.url("/infill"))
        .bearer_auth("alice-key")
        .json(&streamed)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chunks: Vec<Value> = common::sse_data(&text)
        .iter()
        .map(|d| serde_json::from_str(d).expect("every chunk is JSON"))
        .collect();
    let (last, rest) = chunks.split_last().expect("chunks");
    assert_eq!(last["stop"], true, "{text}");
    assert!(last["timings"]["prompt_n"].is_u64(), "{last}");
    assert!(rest
        .iter()
        .all(|c| c["stop"] == false && c["content"].is_string()));

    let (status, bad) = post(
        &server,
        "/infill",
        Some("alice-key"),
        &json!({"input_prefix": 3}),
    )
    .await;
    assert_eq!(status, 400, "{bad}");

    // The owner's rpm=3 counts /infill: the fourth request (a bad one counts too) is refused.
    let (status, limited) = post(&server, "/infill", Some("alice-key"), &body).await;
    assert_eq!(status, 429, "{limited}");

    // The audit log's writer thread writes the line soon after the answer ends.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let lines = std::fs::read_to_string(&audit).unwrap();
        if lines
            .lines()
            .any(|l| l.contains("\"path\":\"/infill\"") && l.contains("\"owner\":\"alice\""))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{lines}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn infill_bodies_that_do_not_fit_get_a_clear_400() {
    let server = Server::start(&tiny_genai(), &[]);
    for (body, param) in [
        (json!({"input_prefix": ["not", "text"]}), Value::Null),
        (
            json!({"prompt": "x", "temperature": 7}),
            json!("temperature"),
        ),
        (json!({"prompt": "x", "top_p": 0}), json!("top_p")),
        (json!({"prompt": "x", "stop": vec!["s"; 40]}), json!("stop")),
    ] {
        let (status, answer) = post(&server, "/infill", None, &body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"]["param"], param, "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap().len() > 5);
    }
    // A prompt longer than the context is cut, not refused: the chunks lose their start first.
    let long = "x = 1\n".repeat(3000);
    let (status, answer) = post(
        &server,
        "/infill",
        None,
        &json!({"input_extra": [{"filename": "a.py", "text": long}], "input_prefix": "y = ",
                "n_predict": 2}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["truncated"], true);
}
