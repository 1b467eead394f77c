//! Admission by tokens as well as requests (`--max-active-tokens`, `--queue-tokens`): the real
//! server, the tiny model, real HTTP. What the engine does is read from its load gauges, which
//! it publishes every round.

mod common;

use common::{client, metric, tiny_genai, wait_for_metrics, Server};
use serde_json::{json, Value};

/// A request of 4 prompt tokens that runs to `max_tokens` unless its client leaves.
fn greedy(max_tokens: u32) -> Value {
    json!({"prompt": "fn main() {", "max_tokens": max_tokens, "temperature": 0, "ignore_eos": true})
}

/// The same, sampled: never drafted, so exactly one token per engine round while it decodes
/// alone.
fn sampled(max_tokens: u32) -> Value {
    let mut body = greedy(max_tokens);
    body["temperature"] = json!(1.5);
    body["seed"] = json!(1);
    body
}

/// (waiting, running) as the scrape `text` reads them.
fn load(text: &str) -> (f64, f64) {
    (
        metric(text, "ghostline_num_requests_waiting"),
        metric(text, "ghostline_num_requests_running"),
    )
}

#[tokio::test]
async fn a_request_past_the_token_budget_waits_and_a_queue_full_of_tokens_answers_503() {
    // Prompts of 4 tokens: A costs 4,004 tokens, B and C 204 each, D 20. The request bounds (8
    // running, 16 waiting) are never reached: only tokens hold B back and refuse C.
    let server = Server::start(
        &tiny_genai(),
        &[
            "--max-tokens-cap",
            "4000",
            "--max-active-tokens",
            "4100",
            "--queue-tokens",
            "300",
        ],
    );

    // A: admitted alone, streaming until its client leaves (it has 4,000 tokens to go).
    let mut body = sampled(4000);
    body["stream"] = json!(true);
    let mut a = client()
        .post(server.url("/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 200);
    assert!(a.chunk().await.unwrap().is_some(), "A streams");

    // B: 4,004 + 204 would pass the 4,100-token budget, so it waits although 7 more requests
    // could run.
    let b = tokio::spawn(complete_owned(server.url("/v1/completions"), greedy(200)));
    wait_for_metrics(&server, "B waiting beside A", |m| load(m) == (1.0, 1.0)).await;

    // C: B's 204 waiting tokens + C's 204 pass the 300 the queue may hold: refused at once, as a
    // queue full of requests is.
    let resp = client()
        .post(server.url("/v1/completions"))
        .json(&greedy(200))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(
        resp.headers().contains_key("retry-after"),
        "{:?}",
        resp.headers()
    );
    // D: a small one still fits in the queue (tokens, not requests, filled it), and waits
    // behind B rather than overtaking it.
    let d = tokio::spawn(complete_owned(server.url("/v1/completions"), greedy(16)));
    let queued = wait_for_metrics(&server, "B and D waiting", |m| load(m) == (2.0, 1.0)).await;

    // Twenty more rounds of A (one token each): each began by admitting what fits, and B never
    // did, nor D behind it.
    let generated = metric(&queued, "ghostline_generated_tokens_total");
    let later = wait_for_metrics(&server, "A's next 20 tokens", |m| {
        metric(m, "ghostline_generated_tokens_total") >= generated + 20.0
    })
    .await;
    assert_eq!(load(&later), (2.0, 1.0), "{later}");

    // A's client leaves: B and D run, and run to their end.
    drop(a);
    let (status, answer) = b.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 200, "{answer}");
    let (status, answer) = d.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 16, "{answer}");
}

#[tokio::test]
async fn a_request_larger_than_the_whole_token_budget_runs_alone() {
    let server = Server::start(
        &tiny_genai(),
        &["--max-active-tokens", "10", "--queue-tokens", "10"],
    );
    // 4 prompt tokens + 32: more than either bound, yet nothing else waits or runs.
    let answer = tokio::spawn(complete_owned(server.url("/v1/completions"), greedy(32)));
    // (Were it never admitted, this would say so rather than wait for ever.)
    wait_for_metrics(&server, "it admitted", |m| {
        metric(m, "ghostline_generated_tokens_total") >= 32.0
    })
    .await;
    let (status, answer) = answer.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 32, "{answer}");
    assert_eq!(
        answer["usage"]["prompt_tokens"], 4,
        "the costs above count 4"
    );
}

/// POSTs `body` to `url` from a task of its own; the status and the JSON answer.
async fn complete_owned(url: String, body: Value) -> (u16, Value) {
    let resp = client().post(url).json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
}
