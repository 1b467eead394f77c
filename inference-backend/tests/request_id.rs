//! `X-Request-ID` over real HTTP: ghostline-serve returns a client's id (short, visible ASCII) in
//! the answer's header, streamed answers and refusals included, logs the request in a span
//! carrying it, and replaces an id it cannot log as it is with its own. The bodies are read
//! through the wire contract's types (`ghostline-protocol`), as ghostline-lsp reads them.

mod common;

use common::{client, sse_data, tiny_genai, Server};
use ghostline_protocol::{
    headers::{is_valid_request_id, REQUEST_ID},
    Completion, CompletionRequest, ErrorBody, ModelList, OneOrMany, StreamEvent, DONE,
};

fn request(stream: bool) -> CompletionRequest {
    CompletionRequest {
        prompt: OneOrMany::One("def add(a, b):\n    return".into()),
        max_tokens: Some(4),
        temperature: Some(0.0),
        stream: Some(stream),
        ..Default::default()
    }
}

fn id_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(REQUEST_ID)
        .unwrap_or_else(|| panic!("no {REQUEST_ID} in {:?}", response.headers()))
        .to_str()
        .unwrap()
        .to_string()
}

/// The first line of the server's log that `wanted` accepts, waiting for it: the log reaches
/// the test through a pipe and a reader thread, and an audit line is written when the answer
/// has ended, which the server may finish after the client has read it all.
async fn log_line(server: &Server, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let log = server.log.lock().unwrap().clone();
        if let Some(line) = log.lines().find(|line| wanted(line)) {
            return line.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no such line in the server's log:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_clients_request_id_comes_back_and_is_logged() {
    // Without colours, a field reads `id=VALUE` in the log; the request's lines are at trace.
    let log = "info,ort=warn,ghostline_serve=debug,ghostline_serve::http::request_id=trace";
    let server = Server::start_with_env(
        &tiny_genai(),
        &["--audit-log", "-"],
        &[("NO_COLOR", "1"), ("GHOSTLINE_LOG", log)],
    );

    let response = client()
        .post(server.url("/v1/completions"))
        .header(REQUEST_ID, "client-1")
        .json(&request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(id_of(&response), "client-1");
    let answer: Completion = response.json().await.unwrap();
    assert_eq!(answer.object, "text_completion");
    assert!(answer.usage.is_some_and(|u| u.prompt_tokens > 0));

    // A stream: the header comes with the head, before the first event.
    let response = client()
        .post(server.url("/v1/completions"))
        .header(REQUEST_ID, "client-2")
        .json(&request(true))
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&response), "client-2");
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some(DONE));
    let last: StreamEvent = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert!(last.error.is_none(), "{last:?}");
    assert!(last.chunk.choices[0].finish_reason.is_some(), "{last:?}");

    // A refusal too (an empty prompt), with OpenAI's error body.
    let response = client()
        .post(server.url("/v1/completions"))
        .header(REQUEST_ID, "client-3")
        .json(&CompletionRequest::default())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(id_of(&response), "client-3");
    let refusal: ErrorBody = response.json().await.unwrap();
    assert_eq!(refusal.error.kind, "invalid_request_error");

    let response = client()
        .get(server.url("/v1/models"))
        .header(REQUEST_ID, "client-4")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&response), "client-4");
    let models: ModelList = response.json().await.unwrap();
    let fim = models.data[0].fim.clone().expect("the model's FIM markers");
    assert!(fim.template.is_some_and(|t| t.contains("{prefix}")));

    // Each request was handled in a span carrying its id.
    for (id, path) in [
        ("client-1", "/v1/completions"),
        ("client-2", "/v1/completions"),
        ("client-3", "/v1/completions"),
        ("client-4", "/v1/models"),
    ] {
        log_line(&server, |line| {
            line.contains(&format!("id={id} ")) && line.contains(path)
        })
        .await;
    }
    // The audit line of a completion carries its id too.
    let audit = log_line(&server, |line| {
        line.starts_with('{') && line.contains(r#""request_id":"client-2""#)
    })
    .await;
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    assert_eq!(audit["path"], "/v1/completions");
    assert_eq!(audit["status"], 200);
}

#[tokio::test]
async fn an_id_that_cannot_be_logged_as_it_is_is_replaced() {
    let server = Server::start(&tiny_genai(), &[]);
    let long = "x".repeat(65);
    let mut seen = Vec::new();
    for bad in [&b"two words"[..], long.as_bytes(), b"caf\xc3\xa9", b""] {
        let response = client()
            .get(server.url("/v1/models"))
            .header(
                REQUEST_ID,
                reqwest::header::HeaderValue::from_bytes(bad).unwrap(),
            )
            .send()
            .await
            .unwrap();
        let id = id_of(&response);
        assert!(is_valid_request_id(&id), "{id:?}");
        assert_ne!(id.as_bytes(), bad);
        seen.push(id);
    }
    // Without one, the server makes one too; every one it makes is new.
    let response = client().get(server.url("/health")).send().await.unwrap();
    seen.push(id_of(&response));
    let count = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), count, "{seen:?}");
}
