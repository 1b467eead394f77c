//! The context engine through the real binary: the workspace index, retrieval into the
//! prompt, the three context modes, and secrets that must never reach the backend.

mod common;

use common::{LspClient, RecordingServer, TempDir};
use serde_json::{json, Value};

const PLANTED: &[&str] = &[
    "AKIAIOSFODNN7PLANTED",
    "ghp_PlantedGithubToken0123456789abcdefABCD",
    "xoxb-2233445566-PlantedSlackToken",
    "sk-proj-PlantedOpenAIKey0123456789abcdef",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.PlantedJwtSignature0123",
    "hunter2-planted-password",
    "MIIEplantedPRIVATEkeyBODY",
    "env-file-planted-secret-42",
    "pem-file-planted-body",
    "npmrc-planted-token",
];

fn write_workspace(dir: &TempDir) {
    dir.write(
        "app/config.py",
        "\"\"\"Settings.\"\"\"\nAWS_ACCESS_KEY_ID = \"AKIAIOSFODNN7PLANTED\"\nGITHUB_TOKEN = \"ghp_PlantedGithubToken0123456789abcdefABCD\"\n\n\ndef load_settings(path, strict=False):\n    \"\"\"Reads the settings file at path.\"\"\"\n    with open(path) as handle:\n        return parse_settings(handle.read(), strict)\n\n\ndef parse_settings(text, strict):\n    return dict(line.split('=', 1) for line in text.splitlines() if line)\n",
    );
    dir.write(
        ".env",
        "DATABASE_URL=postgres://app@db/app\nSESSION=env-file-planted-secret-42\n",
    );
    dir.write(
        "certs/server.pem",
        "-----BEGIN PRIVATE KEY-----\npem-file-planted-body\n-----END PRIVATE KEY-----\n",
    );
    dir.write(
        ".npmrc",
        "//registry.npmjs.org/:_authToken=npmrc-planted-token\n",
    );
    dir.write(
        "app/env_notes.py",
        "NOTE = 'env-file-planted-secret-42 is not here'\n",
    );
}

const APP: &str = "from app.config import load_settings\n\nSLACK = \"xoxb-2233445566-PlantedSlackToken\"\nOPENAI_API_KEY = \"sk-proj-PlantedOpenAIKey0123456789abcdef\"\nSESSION_JWT = \"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.PlantedJwtSignature0123\"\npassword = \"hunter2-planted-password\"\nKEY = \"\"\"-----BEGIN RSA PRIVATE KEY-----\nMIIEplantedPRIVATEkeyBODY\n-----END RSA PRIVATE KEY-----\"\"\"\n\n\ndef main(path):\n    settings = load_settings(path)\n    return \nTRAILER = \"ghp_PlantedGithubToken0123456789abcdefABCD\"\n";

fn complete(client: &mut LspClient, uri: &str, line: u32, character: u32) -> Value {
    client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(uri, line, character),
    )
}

#[test]
fn planted_secrets_never_reach_the_backend() {
    let dir = TempDir::new("secrets");
    // A note file must not make the index think .env is fine: it only mentions a value.
    write_workspace(&dir);
    std::fs::remove_file(dir.0.join("app/env_notes.py")).unwrap();
    // The default model's prompt format: other files as comments above the FIM prefix.
    let server = RecordingServer::start_as_default_model();
    let mut client = LspClient::start_in_workspace(
        &dir.0,
        json!({}),
        json!({"backendUrl": server.url(), "contextMode": "full"}),
    );
    let status = client.wait_index(|s| s["files"].as_u64() >= Some(1));
    assert_eq!(
        status["files"],
        json!(1),
        "only app/config.py may be indexed: {status}"
    );
    assert!(status["definitions"].as_u64().unwrap() >= 2, "{status}");

    let app = dir.write("app/main.py", APP);
    let app_uri = format!("file://{}", app.display());
    client.open(&app_uri, "python", APP);
    let env_uri = dir.uri(".env");
    client.open(
        &env_uri,
        "plaintext",
        &std::fs::read_to_string(dir.0.join(".env")).unwrap(),
    );
    client.wait_index(|s| s["files"] == json!(2));

    // Cursor after `return ` in main().
    let response = complete(&mut client, &app_uri, 13, 11);
    assert!(response.get("error").is_none(), "{response}");
    // Nothing at all is asked for inside a secret file.
    let response = complete(&mut client, &env_uri, 1, 3);
    assert!(response.get("error").is_none(), "{response}");

    let prompts = server.prompts();
    assert_eq!(
        prompts.len(),
        1,
        "exactly one prompt (none for .env): {prompts:?}"
    );
    let prompt = &prompts[0];
    for secret in PLANTED {
        assert!(
            !prompt.contains(secret),
            "{secret} leaked into the prompt:\n{prompt}"
        );
    }
    assert!(prompt.contains("<redacted>"), "{prompt}");
    // The default model's format (Qwen2.5-Coder Instruct through ghostline-serve): the FIM
    // template around everything, the retrieved definition as Python comments under its file
    // name above the current file, no repo-level markers, and what is typed on the cursor's
    // line last, after the middle marker (the server heals a prompt that ends inside a word);
    // the line's indentation ends the prefix.
    assert!(
        prompt.starts_with("<|fim_prefix|># app/config.py\n"),
        "{prompt}"
    );
    assert!(
        prompt.contains("\n# def load_settings(path, strict=False):\n"),
        "{prompt}"
    );
    assert!(
        prompt.contains("\n\nfrom app.config import load_settings\n"),
        "{prompt}"
    );
    assert!(
        !prompt.contains("<|file_sep|>") && !prompt.contains("<|repo_name|>"),
        "{prompt}"
    );
    let (before_middle, cursor_line) = prompt
        .split_once("<|fim_middle|>")
        .expect("a FIM middle marker");
    assert!(before_middle.contains("<|fim_suffix|>"), "{prompt}");
    assert!(
        before_middle[..before_middle.find("<|fim_suffix|>").unwrap()]
            .ends_with("load_settings(path)\n    "),
        "{prompt}"
    );
    assert_eq!(cursor_line, "return ", "{prompt}");
    let bodies = server.bodies.lock().unwrap();
    let body = bodies
        .iter()
        .find(|b| b["max_tokens"] != json!(0))
        .expect("a completion");
    assert_eq!(
        body["model"],
        json!("qwen2.5-coder-0.5b-instruct"),
        "{body}"
    );
    assert_eq!(body["token_healing"], json!(true), "{body}");
    client.shutdown();
}

#[test]
fn index_follows_watched_files_and_modes_shape_the_prompt() {
    let dir = TempDir::new("modes");
    dir.write("src/store.rs", "/// A priced line.\npub struct Item {\n    pub price: u32,\n}\n\npub fn total(items: &[Item]) -> u32 {\n    items.iter().map(|i| i.price).sum()\n}\n");
    dir.write(
        "src/util.rs",
        "pub fn clamp(x: u32) -> u32 {\n    x.min(100)\n}\n",
    );
    dir.write("target/debug/build.rs", "fn generated() {}\n");
    dir.write(".gitignore", "ignored/\n");
    dir.write("ignored/skip.rs", "fn skipped() {}\n");
    dir.write("src/binary.rs", "fn a() {}\0\0\0");
    dir.write("web/app.min.js", "function a(){}\n");
    // A Qwen base checkpoint (its id does not say Instruct): the repo-level format.
    let server = RecordingServer::start("qwen2.5-coder");
    let mut client =
        LspClient::start_in_workspace(&dir.0, json!({}), json!({"backendUrl": server.url()}));
    let status = client.wait_index(|_| true);
    assert_eq!(status["files"], json!(2), "{status}");

    // A file created outside the editor arrives through didChangeWatchedFiles.
    let added = dir.write(
        "src/extra.go",
        "package extra\n\nfunc Double(x int) int { return 2 * x }\n",
    );
    client.notify(
        "workspace/didChangeWatchedFiles",
        json!({"changes": [{"uri": format!("file://{}", added.display()), "type": 1}]}),
    );
    client.wait_index(|s| s["files"] == json!(3));
    std::fs::remove_file(&added).unwrap();
    client.notify(
        "workspace/didChangeWatchedFiles",
        json!({"changes": [{"uri": format!("file://{}", added.display()), "type": 3}]}),
    );
    client.wait_index(|s| s["files"] == json!(2));

    let main = "mod store;\nuse store::{total, Item};\n\nfn main() {\n    let items = vec![Item { price: 3 }];\n    let sum = \n}\n";
    let main_uri = dir.uri("src/main.rs");
    dir.write("src/main.rs", main);
    client.open(&main_uri, "rust", main);
    client.wait_index(|s| s["files"] == json!(3));
    for (mode, expect_other_files) in [("full", true), ("currentFile", false), ("jaccard", true)] {
        client.notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"contextMode": mode}}),
        );
        // The suggestion on screen would otherwise be answered again from memory.
        client.request_ok(
            "workspace/executeCommand",
            json!({"command": "ghostline.dismiss", "arguments": [{"uri": main_uri}]}),
        );
        let before = server.prompts().len();
        let response = complete(&mut client, &main_uri, 5, 14);
        assert!(response.get("error").is_none(), "{response}");
        let prompts = server.prompts();
        assert_eq!(prompts.len(), before + 1, "{mode}: one new prompt");
        let prompt = prompts.last().expect("a prompt");
        assert_eq!(
            prompt.contains("src/store.rs"),
            expect_other_files,
            "{mode}: {prompt}"
        );
        if mode == "full" {
            assert!(
                prompt.contains("pub fn total(items: &[Item]) -> u32"),
                "{prompt}"
            );
        }
        if mode == "currentFile" {
            assert!(prompt.starts_with("<|fim_prefix|>mod store;"), "{prompt}");
        }
    }
    client.shutdown();
}
