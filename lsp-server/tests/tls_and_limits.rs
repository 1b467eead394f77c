//! ghostline-lsp as built by default against the real ghostline-serve over HTTPS (a CA and a
//! certificate generated here, trusted through `caFile`; the README's self-signed team
//! certificate, made by the README's own command), an untrusted certificate (one clear
//! notice), a `caFile` that is missing or not PEM and an `http://` URL to a TLS port (one notice
//! naming the cause), plain HTTP on loopback, and a key whose rate limit is reached (one notice,
//! no retry storm). A missing ghostline-serve binary or tiny model fails these tests: they exist to show
//! the real thing working.

#[path = "../../tests/support/certificates.rs"]
mod certificates;
mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    let dir = tempfile_dir("https");
    let (ca, cert, key) = certificates::make_certificates(&dir);
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
    let warnings = client.notifications("window/showMessage", Duration::from_millis(200));
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
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_untrusted_certificate_is_reported_once_and_clearly() {
    let dir = tempfile_dir("untrusted");
    let (_, cert, key) = certificates::make_certificates(&dir);
    let backend = serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let mut client = lsp(&backend.base, json!({}), &[]);
    assert_eq!(suggestions(&mut client), 0);
    let warnings = client.notifications("window/showMessage", Duration::from_secs(1));
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
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_rate_limited_key_gets_one_notice_and_no_retry_storm() {
    let dir = tempfile_dir("limits");
    let keys = dir.join("keys");
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
    let warnings = client.notifications("window/showMessage", Duration::from_secs(1));
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
    let _ = std::fs::remove_dir_all(dir);
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

/// Runs `command` with `sh` in `dir`, as a user would in a terminal.
fn shell(dir: &std::path::Path, command: &str) {
    let out = Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The one notice after several suggestion requests (asserting there is exactly one).
fn the_one_notice(client: &mut LspClient) -> String {
    assert_eq!(suggestions(client), 0);
    assert_eq!(suggestions(client), 0);
    let warnings = client.notifications("window/showMessage", Duration::from_secs(1));
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
    let dir = tempfile_dir("readme-certificate");
    let command = readme_certificate_command();
    shell(&dir, &command);
    let (cert, key) = (dir.join("ghostline.pem"), dir.join("ghostline.key"));
    // The premise: OpenSSL marks a self-signed certificate as a CA, which webpki refuses as a
    // server's own unless it is pinned.
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"));
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
    let warnings = client.notifications("window/showMessage", Duration::from_millis(200));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(client.shutdown().success());

    // Without it in caFile, the same certificate is not trusted: the pin is what trusts it.
    let mut client = lsp(&backend.base, json!({}), &[]);
    let message = the_one_notice(&mut client);
    assert!(message.contains("not trusted"), "{message}");
    assert!(client.shutdown().success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_pinned_certificate_is_still_checked_against_the_host_name() {
    let dir = tempfile_dir("pinned-other-name");
    // The README's command for a box whose only name is gpu-box, reached here as 127.0.0.1.
    let command = readme_certificate_command().replace(
        "subjectAltName=DNS:gpu-box,DNS:localhost,IP:127.0.0.1",
        "subjectAltName=DNS:gpu-box",
    );
    assert!(!command.contains("127.0.0.1"), "{command}");
    shell(&dir, &command);
    let (cert, key) = (dir.join("ghostline.pem"), dir.join("ghostline.key"));
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
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_pinned_certificate_is_still_checked_against_its_dates() {
    let dir = tempfile_dir("pinned-expired");
    // The README's certificate (self-signed, CA:TRUE, the same names), valid for one day in
    // 2020: `openssl req -x509` cannot back-date, `openssl ca -selfsign` can.
    std::fs::write(
        dir.join("ca.cnf"),
        "[ ca ]\ndefault_ca = own\n[ own ]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
         default_md = sha256\npolicy = any\n[ any ]\ncommonName = supplied\n[ server ]\n\
         basicConstraints = critical,CA:TRUE\nsubjectAltName = DNS:gpu-box,DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "01\n").unwrap();
    shell(
        &dir,
        "openssl req -new -newkey rsa:2048 -nodes -keyout ghostline.key -out ghostline.csr -subj /CN=gpu-box",
    );
    shell(
        &dir,
        "openssl ca -batch -notext -config ca.cnf -selfsign -keyfile ghostline.key -in ghostline.csr \
         -out ghostline.pem -startdate 20200101000000Z -enddate 20200102000000Z -extensions server",
    );
    let (cert, key) = (dir.join("ghostline.pem"), dir.join("ghostline.key"));
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
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_ca_file_that_is_missing_or_not_pem_is_named_in_the_one_notice() {
    let dir = tempfile_dir("bad-ca-file");
    let (_, cert, key) = certificates::make_certificates(&dir);
    let backend = serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let missing = dir.join("no-such.pem");
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
    let warnings = client.notifications("window/showMessage", Duration::from_millis(200));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(client.shutdown().success());
    drop(plain);

    // The certificate in DER: a certificate, but not PEM.
    let der = dir.join("server.der");
    shell(
        &dir,
        &format!(
            "openssl x509 -in {} -outform DER -out {}",
            cert.display(),
            der.display()
        ),
    );
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
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn plain_http_to_a_tls_port_says_to_use_https() {
    let dir = tempfile_dir("http-to-tls");
    let (ca, cert, key) = certificates::make_certificates(&dir);
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
    let _ = std::fs::remove_dir_all(dir);
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

fn tempfile_dir(tag: &str) -> PathBuf {
    let nanos = Instant::now().elapsed().as_nanos()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "ghostline-tls-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
