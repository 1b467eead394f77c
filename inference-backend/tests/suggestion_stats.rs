//! `POST /v1/ghostline/suggestion-stats` over real HTTP: the counts go to the key's owner (or
//! `anonymous` without a key file) and show on `/metrics`; a bad body is refused whole and
//! changes no counter; the route is behind the API key.

mod common;

use common::{client, metrics_text, tiny_genai, Server};
use serde_json::{json, Value};

const PATH: &str = "/v1/ghostline/suggestion-stats";

async fn post(server: &Server, key: Option<&str>, body: &[u8]) -> u16 {
    let mut request = client()
        .post(server.url(PATH))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap().status().as_u16()
}

/// The suggestion series of the metrics text, each line as it reads.
fn suggestion_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("ghostline_suggestion"))
        .map(str::to_string)
        .collect()
}

fn entry(language: &str, shown: u64, accepted: u64, partial: u64) -> Value {
    json!({"language": language, "shown": shown, "accepted": accepted, "partial": partial,
           "latency_ms_sum": shown * 100, "latency_count": shown})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_go_to_the_key_owner_and_bad_bodies_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "alice alice-key\nbob bob-key\n").unwrap();
    let server = Server::start(&tiny_genai(), &["--api-key-file", keys.to_str().unwrap()]);

    let good = json!({"counts": [entry("rust", 5, 2, 1), entry("python", 3, 0, 0)]}).to_string();
    assert_eq!(post(&server, None, good.as_bytes()).await, 401);
    assert_eq!(post(&server, Some("wrong"), good.as_bytes()).await, 401);
    assert_eq!(post(&server, Some("alice-key"), good.as_bytes()).await, 204);
    assert_eq!(post(&server, Some("alice-key"), good.as_bytes()).await, 204);
    let one = json!({"counts": [entry("rust", 1, 1, 0)]}).to_string();
    assert_eq!(post(&server, Some("bob-key"), one.as_bytes()).await, 204);

    let text = metrics_text(&server).await;
    for line in [
        "ghostline_suggestions_shown_total{owner=\"alice\",language=\"rust\"} 10",
        "ghostline_suggestions_accepted_total{owner=\"alice\",language=\"rust\"} 4",
        "ghostline_suggestions_partially_accepted_total{owner=\"alice\",language=\"rust\"} 2",
        "ghostline_suggestions_shown_total{owner=\"alice\",language=\"python\"} 6",
        "ghostline_suggestions_accepted_total{owner=\"alice\",language=\"python\"} 0",
        "ghostline_suggestions_shown_total{owner=\"bob\",language=\"rust\"} 1",
        "ghostline_suggestion_latency_seconds_sum{owner=\"alice\",language=\"rust\"} 1.0",
        "ghostline_suggestion_latency_seconds_count{owner=\"alice\",language=\"rust\"} 10",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
    let before = suggestion_lines(&text);

    let big =
        json!({"counts": (0..65).map(|i| entry(&format!("l{i}"), 1, 0, 0)).collect::<Vec<_>>()})
            .to_string();
    let huge = format!(
        "{{\"counts\":[{}],\"pad\":\"{}\"}}",
        entry("rust", 1, 0, 0),
        "x".repeat(20_000)
    );
    let bad_bodies: Vec<String> = vec![
        "not json".into(),
        "{}".into(),
        json!({"counts": []}).to_string(),
        json!({"counts": [entry("Rust", 1, 0, 0)]}).to_string(),
        json!({"counts": [entry("a b", 1, 0, 0)]}).to_string(),
        json!({"counts": [entry(&"x".repeat(33), 1, 0, 0)]}).to_string(),
        json!({"counts": [{"language": "rust", "shown": -1, "accepted": 0, "partial": 0, "latency_ms_sum": 0, "latency_count": 0}]}).to_string(),
        json!({"counts": [{"language": "rust", "shown": 1, "accepted": 0, "partial": 0, "latency_ms_sum": 0, "latency_count": 0, "text": "fn main"}]}).to_string(),
        json!({"counts": [{"language": "rust", "shown": 1}]}).to_string(),
        json!({"counts": [entry("rust", 2_000_000, 0, 0)]}).to_string(),
        json!({"counts": [{"language": "rust", "shown": 1, "accepted": 0, "partial": 0, "latency_ms_sum": 900_000, "latency_count": 1}]}).to_string(),
        // A valid entry next to a bad one: nothing of the request is counted.
        json!({"counts": [entry("go", 1, 0, 0), entry("GO!", 1, 0, 0)]}).to_string(),
        json!({"counts": [entry("go", 1, 0, 0), entry("go", 1, 0, 0)]}).to_string(),
        big,
    ];
    for body in &bad_bodies {
        let status = post(&server, Some("alice-key"), body.as_bytes()).await;
        assert_eq!(status, 400, "{body}");
    }
    assert_eq!(post(&server, Some("alice-key"), huge.as_bytes()).await, 413);
    let text = metrics_text(&server).await;
    assert_eq!(
        before,
        suggestion_lines(&text),
        "a refused body changed the counters"
    );

    // The Grafana dashboard in deploy/ plots only series this server exposes.
    let dashboard = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/grafana/ghostline-acceptance.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&dashboard).unwrap()).unwrap();
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("ghostline_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.push(name);
            }
        }
    }
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))),
            "the dashboard plots {name}, which /metrics does not have:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_file_the_counts_are_anonymous() {
    let server = Server::start(&tiny_genai(), &[]);
    let body = json!({"counts": [entry("go", 4, 3, 1)]}).to_string();
    assert_eq!(post(&server, None, body.as_bytes()).await, 204);
    let text = metrics_text(&server).await;
    for line in [
        "ghostline_suggestions_shown_total{owner=\"anonymous\",language=\"go\"} 4",
        "ghostline_suggestions_accepted_total{owner=\"anonymous\",language=\"go\"} 3",
        "ghostline_suggestions_partially_accepted_total{owner=\"anonymous\",language=\"go\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
}
