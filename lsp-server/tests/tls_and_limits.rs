//! ghostline-lsp as built by default against the real ghostline-serve over HTTPS (a CA and a
//! certificate generated here with rcgen, trusted through `caFile`; a self-signed team
//! certificate made to the README's recipe, or by the README's own command when `test.sh` has
//! run it: `GHOSTLINE_TEAM_CERT_DIR`), an untrusted certificate (one clear
//! notice), a `caFile` that is missing or not PEM and an `http://` URL to a TLS port (one notice
//! naming the cause), plain HTTP on loopback, and a key whose rate limit is reached (one notice,
//! no retry storm). A missing ghostline-serve binary or tiny model fails these tests: they exist to show
//! the real thing working.

#[path = "../../tests/support/certificates.rs"]
mod certificates;
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{items, serve_binary, tiny_model_dir, LspClient};
use serde_json::{json, Value};

const URI: &str = "file:///project/calc.py";
const TEXT: &str = "import math\n\n\ndef area(radius):\n    \n\n\nprint(area(2.0))\n";
/// See inline_completion.rs: the tiny random model says something with the prefix last.
const TINY_FIM_TEMPLATE: &str = "<|fim_suffix|>{suffix}<|fim_prefix|>{prefix}";

/// ghostline-serve with the tiny model and `extra` flags, on a free port; returns it with its
/// base URL (`http://` or `https://`, from its log) once it says it is ready.
struct Serve {
    child: Child,
    base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Serve {
    let binary = serve_binary().expect(
        "no ghostline-serve binary: cargo build -p ghostline-serve (or set GHOSTLINE_SERVE_BIN)",
    );
    let model = tiny_model_dir();
    assert!(
        model.join("ghostline.json").exists(),
        "no tiny model at {} (./test.sh makes it)",
        model.display()
    );
    let mut child = Command::new(binary)
        .args([
            "--model",
            model.to_str().unwrap(),
            "--port",
            "0",
            "--device",
            "cpu",
            "--threads",
            "1",
        ])
        .args(extra)
        .env("GHOSTLINE_LOG", "info,ort=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ghostline-serve");
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut base = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                base = rest.split_whitespace().next().map(String::from);
            }
            if line.contains("ready: model") {
                let _ = tx.send(base.clone().unwrap_or_default());
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(180))
        .unwrap_or_else(|_| panic!("ghostline-serve not ready:\n{}", log.lock().unwrap()));
    Serve { child, base, log }
}

fn lsp(backend_url: &str, extra: Value, env: &[(&str, &str)]) -> LspClient {
    let mut options = json!({"backendUrl": backend_url, "timeoutMs": 20000, "fimTemplate": TINY_FIM_TEMPLATE, "maxTokens": 16});
    for (key, value) in extra.as_object().unwrap() {
        options[key] = value.clone();
    }
    let (mut client, _) = LspClient::start_with_env(json!({}), options, env);
    client.open(URI, "python", TEXT);
    client
}

const POSITIONS: [(u32, u32); 4] = [(4, 4), (3, 17), (0, 11), (7, 16)];

fn inline(client: &mut LspClient, line: u32, character: u32) -> Value {
    client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(URI, line, character),
    )
}

/// Suggestions at several places; how many came back.
fn suggestions(client: &mut LspClient) -> usize {
    POSITIONS
        .iter()
        .map(|&(line, character)| {
            let response = inline(client, line, character);
            assert!(response.get("error").is_none(), "{response}");
            items(&response).len()
        })
        .sum()
}

#[test]
fn the_default_build_completes_over_https_with_ca_file_and_over_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates::make_certificates(dir.path());
    let backend = serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(backend.base.starts_with("https://"), "{}", backend.base);

    let mut client = lsp(&backend.base, json!({"caFile": ca.to_str().unwrap()}), &[]);
    assert!(
        suggestions(&mut client) > 0,
        "no suggestion over https; server log:\n{}",
        backend.log.lock().unwrap()
    );
    let warnings = client.notifications_before_barrier("window/showMessage");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(client.shutdown().success());

    // Plain HTTP on loopback, unchanged.
    let plain = serve(&[]);
    assert!(plain.base.starts_with("http://"), "{}", plain.base);
    let mut client = lsp(&plain.base, json!({}), &[]);
    assert!(
        suggestions(&mut client) > 0,
        "no suggestion over plain http"
    );
    assert!(client.shutdown().success());
}

#[test]
fn an_untrusted_certificate_is_reported_once_and_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificates::make_certificates(dir.path());
    let backend = serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let mut client = lsp(&backend.base, json!({}), &[]);
    assert_eq!(suggestions(&mut client), 0);
    let warnings = client.notifications_before_barrier("window/showMessage");
    assert_eq!(
        warnings.len(),
        1,
        "one notice, not one per request: {warnings:?}"
    );
    let message = warnings[0]["params"]["message"].as_str().unwrap();
    assert!(
        message.contains("certificate") && message.contains("caFile"),
        "{message}"
    );
    assert!(client.shutdown().success());
}

#[test]
fn a_rate_limited_key_gets_one_notice_and_no_retry_storm() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "alice alice-key rpm=2\n").unwrap();
    let backend = serve(&["--api-key-file", keys.to_str().unwrap()]);
    let mut client = lsp(
        &backend.base,
        json!({"apiKeyEnv": "GHOSTLINE_TEST_KEY"}),
        &[("GHOSTLINE_TEST_KEY", "alice-key")],
    );
    // Far more suggestion requests than the limit allows, at different places (no memory).
    for _ in 0..3 {
        suggestions(&mut client);
    }
    let warnings = client.notifications_before_barrier("window/showMessage");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let message = warnings[0]["params"]["message"].as_str().unwrap();
    assert!(message.contains("limit"), "{message}");
    // The server saw at most two accepted requests and one refusal: after the 429 the LSP waits
    // for Retry-After instead of asking again.
    let metrics = http_get(&backend.base, "/metrics");
    let refused = counter(
        &metrics,
        "ghostline_owner_requests_total{owner=\"alice\",status=\"429\"}",
    );
    assert_eq!(refused, 1.0, "{metrics}");
    assert!(client.shutdown().success());
    drop(backend);
}

/// The README's command for a team certificate: the `openssl req -x509` line of its section
/// "A team certificate", exactly as a user would paste it.
fn readme_certificate_command() -> String {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .unwrap();
    let section = readme
        .split("\n### ")
        .find(|section| section.starts_with("A team certificate"))
        .expect("README.md has no section \"A team certificate\"");
    let commands: Vec<&str> = section
        .lines()
        .filter(|line| line.starts_with("openssl req -x509"))
        .collect();
    assert_eq!(commands.len(), 1, "{commands:?}");
    commands[0].to_string()
}

/// The SANs the README's recipe gives a team certificate (for a box named gpu-box).
const README_NAMES: &str = "subjectAltName=DNS:gpu-box,DNS:localhost,IP:127.0.0.1";

/// The README's team certificate in `dir`: the files its own `openssl req -x509` line made
/// when `test.sh` ran it (`GHOSTLINE_TEAM_CERT_DIR`, copied here), else one made here to the
/// same recipe (self-signed, a CA as OpenSSL marks it, the README's names): `cargo test`
/// needs no openssl.
fn readme_team_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let command = readme_certificate_command();
    assert!(
        command.contains(README_NAMES) && command.contains("-subj /CN=gpu-box"),
        "the README's recipe changed; make_team_certificate follows it: {command}"
    );
    match std::env::var_os("GHOSTLINE_TEAM_CERT_DIR") {
        Some(made) => {
            let made = PathBuf::from(made);
            let (cert, key) = (dir.join("ghostline.pem"), dir.join("ghostline.key"));
            std::fs::copy(made.join("ghostline.pem"), &cert).unwrap();
            std::fs::copy(made.join("ghostline.key"), &key).unwrap();
            (cert, key)
        }
        None => {
            certificates::make_team_certificate(dir, &["gpu-box", "localhost", "127.0.0.1"], None)
        }
    }
}

/// The one notice after several suggestion requests (asserting there is exactly one).
fn the_one_notice(client: &mut LspClient) -> String {
    assert_eq!(suggestions(client), 0);
    assert_eq!(suggestions(client), 0);
    let warnings = client.notifications_before_barrier("window/showMessage");
    assert_eq!(
        warnings.len(),
        1,
        "one notice, not one per request: {warnings:?}"
    );
    warnings[0]["params"]["message"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_readme_team_certificate_completes_with_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = readme_team_certificate(dir.path());
    let backend = serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(backend.base.starts_with("https://"), "{}", backend.base);

    let mut client = lsp(
        &backend.base,
        json!({"caFile": cert.to_str().unwrap()}),
        &[],
    );
    assert!(
        suggestions(&mut client) > 0,
        "no suggestion with the README's certificate; server log:\n{}",
        backend.log.lock().unwrap()
    );
    let warnings = client.notifications_before_barrier("window/showMessage");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(client.shutdown().success());

    // Without it in caFile, the same certificate is not trusted: the pin is what trusts it.
    let mut client = lsp(&backend.base, json!({}), &[]);
    let message = the_one_notice(&mut client);
    assert!(message.contains("not trusted"), "{message}");
    assert!(client.shutdown().success());
}

#[test]
fn a_pinned_certificate_is_still_checked_against_the_host_name() {
    let dir = tempfile::tempdir().unwrap();
    // The README's certificate for a box whose only name is gpu-box, reached here as 127.0.0.1.
    let (cert, key) = certificates::make_team_certificate(dir.path(), &["gpu-box"], None);
    let backend = serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let mut client = lsp(
        &backend.base,
        json!({"caFile": cert.to_str().unwrap()}),
        &[],
    );
    let message = the_one_notice(&mut client);
    assert!(
        message.contains("not made out to the host") && message.contains("gpu-box"),
        "{message}"
    );
    assert!(client.shutdown().success());
}

#[test]
fn a_pinned_certificate_is_still_checked_against_its_dates() {
    let dir = tempfile::tempdir().unwrap();
    // The README's certificate (self-signed, CA:TRUE, the same names), valid for one day in
    // 2020.
    let (cert, key) = certificates::make_team_certificate(
        dir.path(),
        &["gpu-box", "localhost", "127.0.0.1"],
        Some(((2020, 1, 1), (2020, 1, 2))),
    );
    let backend = serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let mut client = lsp(
        &backend.base,
        json!({"caFile": cert.to_str().unwrap()}),
        &[],
    );
    let message = the_one_notice(&mut client);
    assert!(
        message.contains("outside its dates") && message.contains("expired"),
        "{message}"
    );
    assert!(client.shutdown().success());
}

#[test]
fn a_ca_file_that_is_missing_or_not_pem_is_named_in_the_one_notice() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificates::make_certificates(dir.path());
    let backend = serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let missing = dir.path().join("no-such.pem");
    let mut client = lsp(
        &backend.base,
        json!({"caFile": missing.to_str().unwrap()}),
        &[],
    );
    let message = the_one_notice(&mut client);
    assert!(
        message.contains(&format!("caFile {} does not exist", missing.display())),
        "{message}"
    );
    assert!(client.shutdown().success());
    // It concerns HTTPS only: a plain http:// backend is still used.
    let plain = serve(&[]);
    let mut client = lsp(
        &plain.base,
        json!({"caFile": missing.to_str().unwrap()}),
        &[],
    );
    assert!(suggestions(&mut client) > 0);
    let warnings = client.notifications_before_barrier("window/showMessage");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(client.shutdown().success());
    drop(plain);

    // The certificate in DER: a certificate, but not PEM.
    let der = dir.path().join("server.der");
    let mut client = lsp(&backend.base, json!({"caFile": der.to_str().unwrap()}), &[]);
    let message = the_one_notice(&mut client);
    assert!(
        message.contains(&format!(
            "caFile {} holds no PEM certificate",
            der.display()
        )),
        "{message}"
    );
    assert!(client.shutdown().success());
}

#[test]
fn plain_http_to_a_tls_port_says_to_use_https() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates::make_certificates(dir.path());
    let backend = serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let plain = backend.base.replacen("https://", "http://", 1);
    assert!(plain.starts_with("http://"), "{plain}");
    let mut client = lsp(&plain, json!({"caFile": ca.to_str().unwrap()}), &[]);
    let message = the_one_notice(&mut client);
    assert!(
        message.contains(&format!(
            "the backend at {plain} answered with TLS: use https://"
        )),
        "{message}"
    );
    assert!(client.shutdown().success());
}

fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn http_get(base: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let host = base.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}
