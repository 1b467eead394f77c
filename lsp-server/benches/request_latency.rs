//! The server's own time per inline-completion request on a 10,000-line file, measured
//! inside the server (`ghostline/timings`) against a real ghostline-serve:
//!   - arrival → backend call: everything before the HTTP request goes out;
//!   - last token → response: stop detection, post-processing, building the answer;
//!   - typing-through: arrival → response when the answer comes from memory.
//!
//! Targets: p99 under 5 ms, typing-through under 1 ms. Prints a table; asserts nothing.
//!
//!     cargo bench -p ghostline-lsp --bench request_latency
//!
//! Uses GHOSTLINE_SERVE_BIN / GHOSTLINE_TINY_MODEL like the tests, or an already running
//! backend from GHOSTLINE_BENCH_BACKEND (a URL).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{items, start_backend, tiny_model_dir, LspClient};
use serde_json::{json, Value};

const LINES: usize = 10_000;
const BACKEND_REQUESTS: usize = 200;
const URI: &str = "file:///bench/big.py";

fn big_file() -> String {
    let mut text = String::new();
    let mut i = 0;
    while text.lines().count() < LINES {
        text.push_str(&format!(
            "def function_{i}(value, scale=2):\n    \"\"\"Scale value {i} — naïve ✓.\"\"\"\n    result = value * scale + {i}\n    if result > 100:\n        return result - 100\n    return result\n\n\n"
        ));
        i += 1;
    }
    text.lines().take(LINES).collect::<Vec<_>>().join("\n") + "\n"
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn row(name: &str, mut values_ms: Vec<f64>) {
    values_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "| {name:<38} | {:>6} | {:>8.3} | {:>8.3} | {:>8.3} |",
        values_ms.len(),
        percentile(&values_ms, 50.0),
        percentile(&values_ms, 99.0),
        values_ms.last().copied().unwrap_or(f64::NAN)
    );
}

/// Chars of the suggestion's first line up to its last visible one: typing-through covers
/// the cursor's line.
fn first_line_visible(suggestion: &str) -> usize {
    suggestion
        .split('\n')
        .next()
        .unwrap_or("")
        .trim_end()
        .chars()
        .count()
}

fn take_timings(client: &mut LspClient) -> Vec<Value> {
    client.request_ok("ghostline/timings", Value::Null)["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it,
    // and a minutes-long benchmark has no place in a test run.
    if !std::env::args().any(|a| a == "--bench") {
        println!("request_latency: a benchmark; run it with `cargo bench -p ghostline-lsp --bench request_latency`");
        return;
    }
    let _backend;
    let mut options = json!({"maxTokens": 8, "timeoutMs": 30000});
    let url = match std::env::var("GHOSTLINE_BENCH_BACKEND") {
        Ok(url) => url,
        Err(_) => match start_backend(tiny_model_dir(), None, &[]) {
            Some(backend) => {
                let url = backend.url();
                _backend = backend;
                // The tiny model repeats its last input token; with the prefix last it
                // says something (see tests/inline_completion.rs).
                options["fimTemplate"] = json!("<|fim_suffix|>{suffix}<|fim_prefix|>{prefix}");
                url
            }
            None => return,
        },
    };
    options["backendUrl"] = json!(url);
    let (mut client, _) = LspClient::start(json!({}), options);
    let text = big_file();
    client.open(URI, "python", &text);
    // Let the tokenizer tables load (done in the background at initialize).
    std::thread::sleep(Duration::from_secs(2));

    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut version = 1;
    for _ in 0..BACKEND_REQUESTS {
        // Somewhere in the file, freshly edited so that neither memory nor the LRU can
        // answer: every other request types a word at the start of a line (single-line,
        // no parse), the others open a new indented line (multi-line candidate: parsed).
        let line = (next() % (LINES as u64 - 10)) as u32;
        let (edit, character) = if next() % 2 == 0 {
            let marker = format!("x{}", next() % 1_000_000);
            let width = marker.len() as u32;
            (marker, width)
        } else {
            ("    \n".to_string(), 4)
        };
        version += 1;
        client.notify("textDocument/didChange", json!({"textDocument": {"uri": URI, "version": version}, "contentChanges": [
            {"range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 0}}, "text": edit}
        ]}));
        let response = client.request(
            "textDocument/inlineCompletion",
            LspClient::inline_completion_params(URI, line, character),
        );
        assert!(response.get("error").is_none(), "{response}");
    }
    let backend_timings = take_timings(&mut client);

    // Typing-through: a fresh suggestion, then its first line typed char by char. Requests
    // are sequential, so the i-th timing belongs to the i-th request.
    let mut round_trips = Vec::new();
    let mut typed_suggestions = 0;
    while typed_suggestions < 60 {
        let line = (next() % (LINES as u64 - 10)) as u32;
        let marker = format!("y{}", next() % 1_000_000);
        version += 1;
        client.notify("textDocument/didChange", json!({"textDocument": {"uri": URI, "version": version}, "contentChanges": [
            {"range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 0}}, "text": marker}
        ]}));
        let mut column = marker.len() as u32;
        let started = Instant::now();
        let response = client.request(
            "textDocument/inlineCompletion",
            LspClient::inline_completion_params(URI, line, column),
        );
        round_trips.push(started.elapsed().as_secs_f64() * 1e3);
        let Some(suggestion) = items(&response)
            .first()
            .and_then(|item| item["insertText"].as_str().map(str::to_string))
        else {
            continue;
        };
        typed_suggestions += 1;
        for c in suggestion
            .chars()
            .take(first_line_visible(&suggestion).saturating_sub(1))
        {
            version += 1;
            client.notify("textDocument/didChange", json!({"textDocument": {"uri": URI, "version": version}, "contentChanges": [
                {"range": {"start": {"line": line, "character": column}, "end": {"line": line, "character": column}}, "text": c.to_string()}
            ]}));
            column += c.len_utf16() as u32;
            let started = Instant::now();
            let _ = client.request(
                "textDocument/inlineCompletion",
                LspClient::inline_completion_params(URI, line, column),
            );
            round_trips.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    let typing_timings = take_timings(&mut client);
    let _ = client.shutdown();

    let ms = |timing: &Value, key: &str| timing[key].as_f64().unwrap_or(f64::NAN) / 1e6;
    let from_backend: Vec<&Value> = backend_timings
        .iter()
        .filter(|t| t["source"] == "backend")
        .collect();
    let typed: Vec<&Value> = typing_timings
        .iter()
        .filter(|t| t["source"] == "typing")
        .collect();

    println!("\nghostline-lsp request latency, {LINES}-line Python file, backend {url}");
    println!(
        "| {:<38} | {:>6} | {:>8} | {:>8} | {:>8} |",
        "server's own time (ms)", "n", "p50", "p99", "max"
    );
    println!(
        "|{}|{}|{}|{}|{}|",
        "-".repeat(40),
        "-".repeat(8),
        "-".repeat(10),
        "-".repeat(10),
        "-".repeat(10)
    );
    row(
        "arrival → backend call",
        from_backend
            .iter()
            .map(|t| ms(t, "beforeBackendNs"))
            .collect(),
    );
    row(
        "last token → response",
        from_backend
            .iter()
            .map(|t| ms(t, "afterLastTokenNs"))
            .collect(),
    );
    row(
        "typing-through (arrival → response)",
        typed.iter().map(|t| ms(t, "totalNs")).collect(),
    );
    let typing_round_trips: Vec<f64> = typing_timings
        .iter()
        .zip(&round_trips)
        .filter(|(t, _)| t["source"] == "typing")
        .map(|(_, ms)| *ms)
        .collect();
    row("typing-through, client round trip", typing_round_trips);
    row(
        "whole request incl. backend (context)",
        from_backend.iter().map(|t| ms(t, "totalNs")).collect(),
    );
}
