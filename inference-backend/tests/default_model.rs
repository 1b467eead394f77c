//! End to end with the default model (Qwen2.5-Coder-0.5B-Instruct, int4): the server must turn a
//! fill-in-the-middle request into the obviously right code.

mod common;

use common::{default_model, Server};
use serde_json::{json, Value};

async fn fim(server: &Server, prefix: &str, suffix: &str) -> String {
    let body = json!({"prompt": prefix, "suffix": suffix, "max_tokens": 24, "temperature": 0});
    let resp = reqwest::Client::new().post(server.url("/v1/completions")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["choices"][0]["text"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn default_model_fills_in_the_middle_of_rust_and_python() {
    let server = Server::start(&default_model(), &["--threads", "2"]);
    let rust = fim(&server, "fn add(a: i32, b: i32) -> i32 {\n    ", "\n}\n").await;
    assert!(rust.contains("a + b"), "Rust middle: {rust:?}");
    let python = fim(&server, "def add(a, b):\n    ", "\n").await;
    assert!(python.contains("a + b"), "Python middle: {python:?}");

    // Streaming with a stop string gives the first line only.
    let body = json!({"prompt": "def add(a, b):\n    ", "suffix": "\n", "max_tokens": 24, "temperature": 0, "stop": ["\n"], "stream": true});
    let text = reqwest::Client::new().post(server.url("/v1/completions")).json(&body).send().await.unwrap().text().await.unwrap();
    let line: String = common::sse_data(&text)
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap()["choices"][0]["text"].as_str().unwrap().to_string())
        .collect();
    assert!(line.contains("a + b") && !line.contains('\n'), "{line:?}");
}

#[tokio::test]
async fn default_model_drafts_from_the_surrounding_code() {
    // Prompt lookup with real weights: the next match arm follows the shape of the ones above,
    // so some guessed tokens are confirmed, and the answer is still the right code.
    let server = Server::start(&default_model(), &["--threads", "2"]);
    let prefix = "enum Color { Red, Green, Blue, Yellow, Cyan }\n\nfn color_name(c: Color) -> &'static str {\n    match c {\n        Color::Red => \"red\",\n        Color::Green => \"green\",\n";
    let body = json!({"prompt": prefix, "suffix": "    }\n}\n", "max_tokens": 48, "temperature": 0});
    let answer: Value = reqwest::Client::new().post(server.url("/v1/completions")).json(&body).send().await.unwrap().json().await.unwrap();
    let text = answer["choices"][0]["text"].as_str().unwrap();
    assert!(text.contains("Color::Blue => \"blue\",") && text.contains("Color::Cyan => \"cyan\","), "{text:?}");
    let metrics = reqwest::Client::new().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(common::metric(&metrics, "ghostline_draft_accepted_tokens_total") >= 1.0, "no guess confirmed for {text:?}:\n{metrics}");
}
