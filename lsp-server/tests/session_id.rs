//! The `X-Session-ID` the LSP sends (the document's affinity key, `backend/affinity.rs`),
//! observed at a backend through the real binary: keyed by a secret of the installation, kept in
//! the user's data folder (0600), so the same installation sends the same key for a document
//! across restarts, another installation another one, and hashing guessed paths finds nothing.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{read_http_request, LspClient, TempDir};
use serde_json::json;
use sha2::{Digest, Sha256};

/// A backend that answers like ghostline-serve (a model, a short stream) and records the
/// `X-Session-ID` of every completion.
struct HeaderRecorder {
    port: u16,
    session_ids: Arc<Mutex<Vec<String>>>,
}

impl HeaderRecorder {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let session_ids = Arc::new(Mutex::new(Vec::new()));
        let recorded = session_ids.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let recorded = recorded.clone();
                std::thread::spawn(move || {
                    let Some((head, _)) = read_http_request(&mut stream) else {
                        return;
                    };
                    if head.starts_with("GET /v1/models") {
                        let body = r#"{"object":"list","data":[{"id":"m","object":"model","owned_by":"test"}]}"#;
                        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                        return;
                    }
                    if let Some(id) = head.lines().find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("x-session-id")
                            .then(|| value.trim().to_string())
                    }) {
                        recorded.lock().unwrap().push(id);
                    }
                    let events = "data: {\"choices\":[{\"text\":\"value\",\"index\":0,\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
                    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{events}", events.len());
                });
            }
        });
        Self { port, session_ids }
    }
}

const DOCUMENT: &str = "src/payroll.py";

/// One LSP run in `workspace` with `env`: the `X-Session-ID` its completion in `DOCUMENT` sent.
fn session_id(workspace: &Path, env: &[(&str, &str)]) -> String {
    let backend = HeaderRecorder::start();
    let client = LspClient::spawn_with_env(env);
    let mut client = LspClient::start_in_workspace_with(
        client,
        workspace,
        json!({}),
        json!({"backendUrl": format!("http://127.0.0.1:{}", backend.port)}),
    );
    let uri = format!("file://{}", workspace.join(DOCUMENT).display());
    client.open(&uri, "python", "def pay(amount):\n    return \n");
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(&uri, 1, 11),
    );
    assert!(response.get("error").is_none(), "{response}");
    assert!(client.shutdown().success());
    let ids = backend.session_ids.lock().unwrap().clone();
    assert!(!ids.is_empty(), "no completion reached the backend");
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    assert!(
        ids[0].len() == 32 && ids[0].bytes().all(|b| b.is_ascii_hexdigit()),
        "{}",
        ids[0]
    );
    ids[0].clone()
}

/// The key as it was computed before it had a secret: SHA-256 of the workspace folders and
/// the URI, which anyone can recompute from guessed paths.
fn unkeyed(roots: &[PathBuf], uri: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"ghostline-affinity/1\0");
    for root in roots {
        hasher.update(root.as_os_str().as_encoded_bytes());
        hasher.update(b"\0");
    }
    hasher.update(b"\0");
    hasher.update(uri.as_bytes());
    hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_session_id_is_keyed_by_a_secret_of_the_installation() {
    let workspace = TempDir::new("session-id-workspace");
    workspace.write(DOCUMENT, "def pay(amount):\n    return \n");
    let (first, second) = (TempDir::new("data-a"), TempDir::new("data-b"));
    let dir_a = first.0.join("ghostline");
    let dir_b = second.0.join("ghostline");
    let env_a = [("GHOSTLINE_DATA_DIR", dir_a.to_str().unwrap())];

    let a = session_id(&workspace.0, &env_a);
    let secret = dir_a.join("affinity.key");
    assert_eq!(std::fs::read(&secret).unwrap().len(), 32);
    #[cfg(unix)]
    assert_eq!(mode(&secret), 0o600, "the secret is its owner's alone");

    assert_eq!(
        a,
        session_id(&workspace.0, &env_a),
        "the same installation, restarted: the same key (the replica keeps its cache)"
    );
    let b = session_id(
        &workspace.0,
        &[("GHOSTLINE_DATA_DIR", dir_b.to_str().unwrap())],
    );
    assert_ne!(a, b, "another installation, another key");

    let uri = format!("file://{}", workspace.0.join(DOCUMENT).display());
    assert_ne!(
        a,
        unkeyed(std::slice::from_ref(&workspace.0), &uri),
        "recomputable from the path alone"
    );
}

#[test]
fn the_secret_lives_in_the_xdg_data_folder_else_under_home() {
    let workspace = TempDir::new("session-id-xdg");
    workspace.write(DOCUMENT, "def pay(amount):\n    return \n");
    let data_home = TempDir::new("xdg-data");
    let home = TempDir::new("home");
    let home_dir = home.0.to_str().unwrap();
    let xdg = data_home.0.to_str().unwrap();
    let in_xdg = session_id(
        &workspace.0,
        &[
            ("GHOSTLINE_DATA_DIR", ""),
            ("XDG_DATA_HOME", xdg),
            ("HOME", home_dir),
        ],
    );
    assert!(data_home.0.join("ghostline/affinity.key").exists());
    assert!(!home.0.join(".local/share/ghostline/affinity.key").exists());
    // XDG_DATA_HOME empty counts as unset.
    let in_home = session_id(
        &workspace.0,
        &[
            ("GHOSTLINE_DATA_DIR", ""),
            ("XDG_DATA_HOME", ""),
            ("HOME", home_dir),
        ],
    );
    assert!(home.0.join(".local/share/ghostline/affinity.key").exists());
    assert_ne!(in_xdg, in_home, "two data folders, two secrets");
}

#[test]
fn without_a_writable_data_folder_the_key_is_kept_for_the_session_only() {
    let workspace = TempDir::new("session-id-readonly");
    workspace.write(DOCUMENT, "def pay(amount):\n    return \n");
    // A file where the folder should be: nothing can be created under it, even by root.
    let blocked = workspace.write("not-a-folder", "");
    let data_dir = blocked.join("ghostline");
    let log = TempDir::new("session-id-log");
    let log_path = log.0.join("stderr.log");
    let client = LspClient::spawn_with_stderr(
        &[("GHOSTLINE_DATA_DIR", data_dir.to_str().unwrap())],
        std::fs::File::create(&log_path).unwrap().into(),
    );
    let backend = HeaderRecorder::start();
    let mut client = LspClient::start_in_workspace_with(
        client,
        &workspace.0,
        json!({}),
        json!({"backendUrl": format!("http://127.0.0.1:{}", backend.port)}),
    );
    let uri = workspace.uri(DOCUMENT);
    client.open(&uri, "python", "def pay(amount):\n    return \n");
    for character in [11, 10] {
        let response = client.request(
            "textDocument/inlineCompletion",
            LspClient::inline_completion_params(&uri, 1, character),
        );
        assert!(response.get("error").is_none(), "{response}");
    }
    assert!(client.shutdown().success());
    let ids = backend.session_ids.lock().unwrap().clone();
    assert!(ids.len() >= 2, "{ids:?}");
    assert!(
        ids.iter().all(|id| id == &ids[0]),
        "one key for the session: {ids:?}"
    );
    assert_ne!(ids[0], unkeyed(std::slice::from_ref(&workspace.0), &uri));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(
        log.matches("cannot keep the affinity key").count(),
        1,
        "one log line: {log}"
    );
}
