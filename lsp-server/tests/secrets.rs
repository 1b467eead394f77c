//! Secrets stay home, probed as an attacker would: credentials of many kinds planted in a
//! workspace, completions asked through the real binary with the cursor before, inside and
//! after each of them (and with the window's edge cutting a key), every prompt recorded at a
//! test backend. Not one character of a planted secret beyond its public prefix (`ghp_`,
//! `AKIA`, ...) may arrive there, nor appear in the server's log; with the cursor inside a
//! secret nothing is asked at all; secret files (also behind a symlink or an encoded URI) are
//! never completed in nor retrieved.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{items, LspClient, RecordingServer, TempDir};
use serde_json::{json, Value};

/// One planted credential: the file it is in, the text it is, and how much of its start is
/// public (a provider's prefix, the same for everyone).
struct Planted {
    file: &'static str,
    secret: String,
    public: usize,
    shape: &'static str,
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `len` characters of deterministic, random-looking base62 for the secret `seed` (so no two
/// secrets share content, and none looks like a word).
fn noise(seed: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state: u64 = 0xcbf29ce484222325;
    for b in seed.bytes() {
        state = (state ^ b as u64).wrapping_mul(0x100000001b3);
    }
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % 62) as usize] as char
        })
        .collect()
}

/// The workspace: files of code and configuration with the secrets in them, in the shapes
/// credentials really take. Returns the files and the plants.
fn workspace() -> (Vec<(&'static str, &'static str, String)>, Vec<Planted>) {
    let n = noise;
    let mut plants: Vec<Planted> = Vec::new();
    let mut plant = |file: &'static str, shape: &'static str, public: &str, secret: String| {
        let secret = format!("{public}{secret}");
        plants.push(Planted {
            file,
            secret: secret.clone(),
            public: public.len(),
            shape,
        });
        secret
    };
    let pem_body: Vec<String> = (0..6).map(|i| n(&format!("pem{i}"), 64)).collect();
    let pem = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----",
        pem_body.join("\n")
    );

    let settings = format!(
        r#""""Settings of the service."""
import os

AWS_ACCESS_KEY_ID = "{aws_id}"
aws_secret_access_key = "{aws_secret}"
DB_PASS = "{db_pass}"
GITHUB_TOKEN = "{ghp}"
SLACK_WEBHOOK = "{slack_hook}"
DATABASE_URL = "postgresql://app:{url_pw}@db.internal:5432/app"
STRIPE_KEY = "{stripe}"
OPENAI_API_KEY = "{openai}"
ANTHROPIC_API_KEY = "{anthropic}"
SESSION_JWT = "{jwt}"
GOOGLE_MAPS = "{google}"
HF_TOKEN = "{hf}"
PYPI_TOKEN = "{pypi}"
AZURE_STORAGE = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={azure};EndpointSuffix=core.windows.net"
DISCORD_HOOK = "https://discord.com/api/webhooks/{discord}"
OAUTH_CLIENT = "{gocspx}"
SIGNING_KEY = """{pem}"""


def load_settings(path, strict=False):
    """Reads the settings file at path."""
    with open(path) as handle:
        return parse_settings(handle.read(), strict)


def connect(settings):
    client = make_client(api_key="{kwarg}", region="eu-west-1")
    headers = {{"Authorization": "Bearer {bearer}", "Accept": "application/json"}}
    db = open_db(host="db", user="app", password="{kwarg_pw}")
    return client, headers, db


def parse_settings(text, strict):
    return dict(line.split('=', 1) for line in text.splitlines() if line)
"#,
        aws_id = plant(
            "app/settings.py",
            "AWS access key id",
            "AKIA",
            n("awsid", 16).to_uppercase()
        ),
        aws_secret = plant(
            "app/settings.py",
            "AWS secret key",
            "",
            format!("{}/{}+{}", n("awss1", 13), n("awss2", 13), n("awss3", 12))
        ),
        db_pass = plant(
            "app/settings.py",
            "assignment",
            "",
            format!("Db-{}!", n("dbpass", 10))
        ),
        ghp = plant("app/settings.py", "GitHub token", "ghp_", n("ghp", 36)),
        slack_hook = plant(
            "app/settings.py",
            "Slack webhook",
            "https://hooks.slack.com/services/",
            format!(
                "T0{}/B0{}/{}",
                n("sl1", 7).to_uppercase(),
                n("sl2", 7).to_uppercase(),
                n("sl3", 24)
            )
        ),
        url_pw = plant(
            "app/settings.py",
            "URL with credentials",
            "",
            format!("Url-{}", n("urlpw", 10))
        ),
        stripe = plant("app/settings.py", "Stripe key", "sk_live_", n("stripe", 24)),
        openai = plant("app/settings.py", "OpenAI key", "sk-proj-", n("openai", 40)),
        anthropic = plant(
            "app/settings.py",
            "Anthropic key",
            "sk-ant-api03-",
            n("anthropic", 80)
        ),
        jwt = plant(
            "app/settings.py",
            "JWT",
            "eyJhbGciOiJIUzI1NiJ9.eyJ",
            format!("{}.{}", n("jwtp", 24), n("jwts", 32))
        ),
        google = plant("app/settings.py", "Google API key", "AIza", n("google", 35)),
        hf = plant("app/settings.py", "Hugging Face token", "hf_", n("hf", 34)),
        pypi = plant(
            "app/settings.py",
            "PyPI token",
            "pypi-AgEIcHlwaS5vcmc",
            n("pypi", 60)
        ),
        azure = plant(
            "app/settings.py",
            "connection string",
            "",
            format!("{}==", n("azure", 86))
        ),
        discord = plant(
            "app/settings.py",
            "Discord webhook",
            "123456789012345678/",
            n("discord", 68)
        ),
        gocspx = plant(
            "app/settings.py",
            "Google OAuth client secret",
            "GOCSPX-",
            n("gocspx", 28)
        ),
        pem = pem,
        kwarg = plant(
            "app/settings.py",
            "keyword argument",
            "",
            format!("kw-{}", n("kwarg", 16))
        ),
        bearer = plant(
            "app/settings.py",
            "Authorization header",
            "",
            n("bearer", 32)
        ),
        kwarg_pw = plant(
            "app/settings.py",
            "keyword argument",
            "",
            format!("hunter2-{}", n("kwpw", 8))
        ),
    );

    let client_js = format!(
        r#"// The web client.
const npmToken = "{npm}";
const slackBot = "{xoxb}";
const config = {{ password: "{js_pw}", apiToken: "{js_tok}", retries: 3 }};
const GITLAB = "{glpat}";
const githubPat = "{gh_pat}";

export async function loadSettings(url, password) {{
  if (password === "{cmp}") {{
    return null;
  }}
  const response = await fetch(url, {{ headers: {{ "X-API-Key": "{xapi}" }} }});
  return response.json();
}}
"#,
        npm = plant("web/client.js", "npm token", "npm_", n("npm", 36)),
        xoxb = plant(
            "web/client.js",
            "Slack token",
            "xoxb-1234567890-0987654321-",
            n("xoxb", 24)
        ),
        js_pw = plant(
            "web/client.js",
            "dict/object/struct entry",
            "",
            format!("js-{}", n("jspw", 10))
        ),
        js_tok = plant(
            "web/client.js",
            "dict/object/struct entry",
            "",
            format!("tok-{}", n("jstok", 12))
        ),
        glpat = plant("web/client.js", "GitLab token", "glpat-", n("glpat", 20)),
        gh_pat = plant(
            "web/client.js",
            "GitHub fine-grained token",
            "github_pat_",
            format!("11{}_{}", n("ghpat1", 20), n("ghpat2", 59))
        ),
        cmp = plant(
            "web/client.js",
            "comparison",
            "",
            format!("cmp-{}", n("cmp", 10))
        ),
        xapi = plant(
            "web/client.js",
            "API key header",
            "",
            format!("xk-{}", n("xapi", 18))
        ),
    );

    let yaml = format!(
        "service:\n  name: billing\n  password: {yaml_pw}\n  api_token: {ytok}\n  db_password: \"{yaml_q}\"\n  slack_url: https://hooks.slack.com/services/{yaml_hook}\n  replicas: 3\n",
        yaml_pw = plant("deploy/config.yaml", "YAML entry", "", format!("yaml{}7", n("yamlpw", 6))),
        ytok = plant("deploy/config.yaml", "short unquoted value", "", "ytok_9".to_string()),
        yaml_q = plant("deploy/config.yaml", "YAML entry", "", format!("yq-{}", n("yamlq", 12))),
        yaml_hook = plant("deploy/config.yaml", "Slack webhook", "", format!("T0{}/B0{}/{}", n("yh1", 7).to_uppercase(), n("yh2", 7).to_uppercase(), n("yh3", 24))),
    );

    let ini = format!(
        "[db]\nhost = db.internal\nuser = app\npassword = {ini_pw}\n\n[app]\nsecret_key = {ini_key}\ndebug = false\n",
        ini_pw = plant("deploy/app.ini", "INI entry", "", "iniPw_42".to_string()),
        ini_key = plant("deploy/app.ini", "INI entry", "", format!("ini-{}9", n("inikey", 13))),
    );

    let toml = format!(
        "[upload]\nurl = \"https://upload.example.com\"\ntoken = \"{toml_tok}\"\nclient_secret = \"{toml_cs}\"\n",
        toml_tok = plant("deploy/service.toml", "TOML entry", "", format!("tt-{}9", n("tomltok", 23))),
        toml_cs = plant("deploy/service.toml", "TOML entry", "", n("tomlcs", 20)),
    );

    let php = format!(
        "<?php\ndefine('DB_NAME', 'wordpress');\ndefine('DB_PASSWORD', '{wp_pw}');\ndefine('AUTH_KEY', '{wp_auth}');\n$db_pass = '{php_var}';\n",
        wp_pw = plant("web/wp-config.php", "PHP define", "", format!("wp-{}", n("wppw", 12))),
        wp_auth = plant("web/wp-config.php", "PHP define", "", format!("wpk-{}", n("wpauth", 30))),
        php_var = plant("web/wp-config.php", "assignment", "", format!("php-{}", n("phpvar", 12))),
    );

    let shell = format!(
        "#!/bin/sh\nset -e\nexport DB_PASSWORD={sh_pw}\nexport AWS_SECRET_ACCESS_KEY={sh_aws}\ncurl -u deploy:{curl_pw} https://api.example.com/deploy\ncurl -H \"Authorization: token {sh_ghp}\" https://api.github.com/user\n",
        sh_pw = plant("scripts/deploy.sh", "environment export", "", format!("sh-{}", n("shpw", 12))),
        sh_aws = plant("scripts/deploy.sh", "environment export", "", n("shaws", 40)),
        curl_pw = plant("scripts/deploy.sh", "curl -u user:password", "", format!("Curl{}77", n("curl", 8))),
        sh_ghp = plant("scripts/deploy.sh", "GitHub token", "ghs_", n("shghs", 36)),
    );

    let registry = format!(
        "{{\n  \"auths\": {{\n    \"registry.example.com\": {{\n      \"auth\": \"{auth}\"\n    }}\n  }}\n}}\n",
        auth = plant(
            "deploy/registry.json",
            "docker config auth",
            "",
            base64(format!("deploy:Reg-{}", n("registry", 12)).as_bytes())
        ),
    );

    let xml = format!(
        "<configuration>\n  <connectionStrings>\n    <add name=\"Db\" connectionString=\"Server=db;Database=app;User Id=app;Password={xml_conn};\" />\n  </connectionStrings>\n  <smtp>\n    <smtpPassword>{smtp}</smtpPassword>\n  </smtp>\n</configuration>\n",
        xml_conn = plant("web/App.config", "connection string", "", format!("Xml-{}", n("xmlconn", 12))),
        smtp = plant("web/App.config", "XML element", "", format!("smtp{}88", n("smtp", 8))),
    );

    let rust = format!(
        "const API_KEY: &str = \"{rust_key}\";\n\nfn main() {{\n    let telegram = \"{telegram}\";\n    let sendgrid = \"{sendgrid}\";\n    println!(\"{{}} {{}} {{}}\", API_KEY.len(), telegram.len(), sendgrid.len());\n}}\n",
        rust_key = plant("src/main.rs", "assignment", "", format!("rk-{}", n("rustkey", 16))),
        telegram = plant("src/main.rs", "Telegram bot token", "123456789:AA", n("telegram", 33)),
        sendgrid = plant("src/main.rs", "SendGrid key", "SG.", format!("{}.{}", n("sg1", 22), n("sg2", 43))),
    );

    let go = format!(
        "package app\n\nfunc Config() Settings {{\n\treturn Settings{{\n\t\tUser:     \"app\",\n\t\tPassword: \"{go_pw}\",\n\t}}\n}}\n",
        go_pw = plant("app/service.go", "dict/object/struct entry", "", format!("go-{}", n("gopw", 12))),
    );

    let properties = format!(
        "spring.datasource.url=jdbc:postgresql://db/app\nspring.datasource.password={props}\n",
        props = plant(
            "config/application.properties",
            "properties entry",
            "",
            format!("props{}9", n("props", 8))
        ),
    );

    for (i, line) in pem_body.iter().enumerate() {
        plants.push(Planted {
            file: "app/settings.py",
            secret: line.clone(),
            public: 0,
            shape: if i == 0 {
                "private key (PEM)"
            } else {
                "private key (PEM) line"
            },
        });
    }
    let files = vec![
        ("app/settings.py", "python", settings),
        ("web/client.js", "javascript", client_js),
        ("deploy/config.yaml", "yaml", yaml),
        ("deploy/app.ini", "ini", ini),
        ("deploy/service.toml", "toml", toml),
        ("web/wp-config.php", "php", php),
        ("scripts/deploy.sh", "shellscript", shell),
        ("deploy/registry.json", "json", registry),
        ("web/App.config", "xml", xml),
        ("src/main.rs", "rust", rust),
        ("app/service.go", "go", go),
        ("config/application.properties", "properties", properties),
    ];
    (files, plants)
}

/// Secret files: never completed in, never retrieved, whatever they hold.
const SECRET_FILES: &[(&str, &str)] = &[
    (
        ".env",
        "DB_PASS=envfilePl4ntedQz\nGITHUB_TOKEN=envfileTokenPl4ntedQz\n",
    ),
    (".env.local", "LOCAL_ONLY=envlocalPl4ntedQz\n"),
    ("id_rsa", "idrsaPl4ntedBodyQz\n"),
    (
        ".npmrc",
        "//registry.npmjs.org/:_authToken=npmrcPl4ntedQz\n",
    ),
    (
        ".docker/config.json",
        "{\"auths\": {\"x\": {\"auth\": \"dockercfgPl4ntedQz\"}}}\n",
    ),
    (
        ".kube/config",
        "users:\n- name: admin\n  user:\n    token: kubecfgPl4ntedQz\n",
    ),
    (".pypirc", "[pypi]\npassword = pypircPl4ntedQz\n"),
    (
        ".git-credentials",
        "https://user:gitcredPl4ntedQz@github.com\n",
    ),
    (
        ".netrc",
        "machine api.example.com login me password netrcPl4ntedQz\n",
    ),
    (
        ".aws/credentials",
        "[default]\naws_secret_access_key = awscredPl4ntedQz\n",
    ),
    (
        ".config/gcloud/application_default_credentials.json",
        "{\"refresh_token\": \"gcloudPl4ntedQz\"}\n",
    ),
    (
        "infra/terraform.tfvars",
        "db_password = \"tfvarsPl4ntedQz\"\n",
    ),
    ("config/secrets.yaml", "stripe: secretsyamlPl4ntedQz\n"),
    ("certs/server.key", "serverkeyPl4ntedQz\n"),
];

/// The index's file count once it has stayed the same for a while (the index takes opened
/// documents after a short debounce, several at a time).
fn settled(client: &mut LspClient) -> u64 {
    let mut last = None;
    let mut same = 0;
    loop {
        let files = client.wait_index(|_| true)["files"].as_u64().unwrap();
        if Some(files) == last {
            same += 1;
            if same >= 10 {
                return files;
            }
        } else {
            same = 0;
        }
        last = Some(files);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn position(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let column = offset - before.rfind('\n').map_or(0, |i| i + 1);
    (line as u32, column as u32)
}

fn complete(client: &mut LspClient, uri: &str, (line, character): (u32, u32)) -> Value {
    client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(uri, line, character),
    )
}

/// Characters of `secret` past its public prefix that `text` shows: every position covered by
/// a 4-character piece of it that `text` contains and the workspace's other text does not.
fn leaked_chars(text: &str, plant: &Planted, public_text: &str) -> usize {
    leaked_pieces(text, plant, public_text, 4)
}

/// The same with pieces of `n` characters (a log has English in it: 4 is too short there).
fn leaked_pieces(text: &str, plant: &Planted, public_text: &str, n: usize) -> usize {
    let private = &plant.secret.as_bytes()[plant.public..];
    let mut covered = vec![false; private.len()];
    let n = n.min(private.len());
    for start in 0..=private.len() - n {
        let piece = std::str::from_utf8(&private[start..start + n]).unwrap();
        if text.contains(piece) && !public_text.contains(piece) {
            covered[start..start + n].iter_mut().for_each(|c| *c = true);
        }
    }
    covered.iter().filter(|c| **c).count()
}

#[test]
fn no_planted_secret_reaches_the_backend_wherever_the_cursor_is() {
    let dir = TempDir::new("secrets-home");
    let (files, plants) = workspace();
    let shapes: std::collections::BTreeSet<&str> = plants
        .iter()
        .map(|p| p.shape.trim_end_matches(" line"))
        .collect();
    // A key block's lines are checked one by one but count as one credential.
    let credentials = plants
        .iter()
        .filter(|p| !p.shape.ends_with(" line"))
        .count();
    assert!(
        credentials >= 40 && shapes.len() >= 15,
        "{credentials} credentials, {} shapes",
        shapes.len()
    );
    for (path, _, text) in &files {
        dir.write(path, text);
    }
    for (path, text) in SECRET_FILES {
        dir.write(path, text);
    }
    // A harmless-looking name for the .env file.
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.0.join(".env"), dir.0.join("app_settings.txt")).unwrap();
    // What is not secret: every file with its secrets taken out.
    let mut public_text: String = files
        .iter()
        .map(|(_, _, t)| t.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for plant in &plants {
        public_text = public_text.replace(&plant.secret, "");
    }
    // And what the template adds: markers, the folder's name, paths.
    public_text.push_str(
        "<redacted><|repo_name|><|file_sep|><|fim_prefix|><|fim_suffix|><|fim_middle|>\n",
    );
    public_text.push_str(&dir.0.display().to_string());
    for (path, _, _) in &files {
        public_text.push_str(&format!("\n{path}"));
    }

    let log_path = dir.0.join("lsp.log");
    let server = RecordingServer::start("qwen2.5-coder");
    let client = LspClient::spawn_with_stderr(
        &[("GHOSTLINE_LSP_LOG", "debug")],
        Stdio::from(std::fs::File::create(&log_path).unwrap()),
    );
    let mut client = LspClient::start_in_workspace_with(
        client,
        &dir.0,
        json!({}),
        json!({"backendUrl": server.url(), "contextMode": "full", "contextTokens": 4096}),
    );
    client.wait_index(|s| s["files"].as_u64() >= Some(1));
    for (path, language, text) in &files {
        client.open(&dir.uri(path), language, text);
    }
    let indexed = settled(&mut client);
    // Secret files opened in the editor: the symlink and an encoded URI among them.
    let mut secret_uris: Vec<String> = SECRET_FILES.iter().map(|(p, _)| dir.uri(p)).collect();
    secret_uris.push(dir.uri("app_settings.txt"));
    secret_uris.push(format!("file://{}/%2Eenv", dir.0.display()));
    secret_uris.push(format!("file://{}/.ENV.local", dir.0.display()));
    for uri in &secret_uris {
        let name = uri.rsplit('/').next().unwrap();
        let text = SECRET_FILES
            .iter()
            .find(|(p, _)| p.rsplit('/').next().unwrap().eq_ignore_ascii_case(name))
            .map_or(SECRET_FILES[0].1, |(_, t)| t);
        client.open(uri, "plaintext", text);
    }
    // Then an ordinary file: once the count settles with it, the secret files would be in.
    client.open(
        &dir.uri("app/marker.py"),
        "python",
        "def marker():\n    return 1\n",
    );
    client.wait_index(|s| s["files"].as_u64() > Some(indexed));
    let now = settled(&mut client);
    assert_eq!(
        now,
        indexed + 1,
        "a secret file was indexed: {}",
        client.index_status()
    );

    let mut asked = 0;
    let mut inside_asked = 0;
    for plant in &plants {
        let (_, _, text) = files.iter().find(|(p, _, _)| *p == plant.file).unwrap();
        let uri = dir.uri(plant.file);
        let start = text.find(&plant.secret).unwrap();
        let end = start + plant.secret.len();
        let inside = [
            start + plant.secret.len() / 2,
            start + plant.public + 2,
            end - 1,
        ];
        for offset in [start, end] {
            let response = complete(&mut client, &uri, position(text, offset));
            assert!(response.get("error").is_none(), "{response}");
            asked += 1;
        }
        for offset in inside {
            if offset <= start || offset >= end {
                continue;
            }
            let before = server.prompts().len();
            let response = complete(&mut client, &uri, position(text, offset));
            asked += 1;
            inside_asked += 1;
            assert!(
                items(&response).is_empty() && server.prompts().len() == before,
                "with the cursor inside {:?} ({}) something was asked or answered: {response}\n{:?}",
                plant.secret,
                plant.shape,
                server.prompts().last()
            );
        }
    }
    // Secret files: nothing is asked in them.
    let before = server.prompts().len();
    for uri in &secret_uris {
        let response = complete(&mut client, uri, (0, 3));
        assert!(items(&response).is_empty(), "{uri}: {response}");
        asked += 1;
    }
    assert_eq!(
        server.prompts().len(),
        before,
        "a prompt was built in a secret file"
    );

    let prompts = server.prompts();
    assert!(
        prompts.len() >= files.len(),
        "only {} prompts",
        prompts.len()
    );
    // Retrieval did run: other files' text is in the prompts.
    let with_snippets = prompts
        .iter()
        .filter(|p| p.matches("<|file_sep|>").count() >= 2)
        .count();
    assert!(with_snippets > 0, "no prompt had other files' context");
    let mut leaks = Vec::new();
    let mut leaked_total = 0;
    for plant in &plants {
        let worst = prompts
            .iter()
            .map(|p| leaked_chars(p, plant, &public_text))
            .max()
            .unwrap_or(0);
        if worst > 0 {
            let example = prompts
                .iter()
                .max_by_key(|p| leaked_chars(p, plant, &public_text))
                .unwrap();
            leaks.push(format!(
                "{} ({}, {worst} chars):\n{example}\n",
                plant.secret, plant.shape
            ));
        }
        leaked_total += worst;
    }
    // The secret files' values, as plants of their own.
    let file_values: Vec<Planted> = SECRET_FILES
        .iter()
        .flat_map(|(path, text)| {
            text.split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|word| word.contains("Pl4ntedQz"))
                .map(|word| Planted {
                    file: path,
                    secret: word.to_string(),
                    public: 0,
                    shape: "secret file",
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(file_values.len() >= SECRET_FILES.len());
    for plant in &file_values {
        for prompt in &prompts {
            assert_eq!(
                leaked_chars(prompt, plant, &public_text),
                0,
                "{} ({}) reached the backend:\n{prompt}",
                plant.secret,
                plant.file
            );
        }
    }
    client.shutdown();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let in_log: Vec<&str> = plants
        .iter()
        .filter(|p| leaked_pieces(&log, p, &public_text, 8) > 0)
        .map(|p| p.secret.as_str())
        .collect();
    eprintln!(
        "secrets: {credentials} credentials ({} strings checked) in {} shapes across {} files (+{} secret files); {asked} completions asked ({inside_asked} with the cursor inside); {} prompts recorded ({with_snippets} with other files' context); {leaked_total} characters leaked; log {} bytes",
        plants.len(),
        shapes.len(),
        files.len(),
        secret_uris.len(),
        prompts.len(),
        log.len()
    );
    assert!(
        leaks.is_empty(),
        "secrets reached the backend:\n{}",
        leaks.join("\n")
    );
    if !in_log.is_empty() {
        std::fs::copy(&log_path, "/tmp/ghostline-secrets-lsp.log").ok();
    }
    assert!(in_log.is_empty(), "secrets in the server's log: {in_log:?}");
    assert!(
        !log.contains("Pl4ntedQz"),
        "a secret file's text is in the log"
    );
}

/// A key block cut by the window's first line, wherever that falls: a small budget and the
/// cursor on every line below the key, so the window's top edge moves through it.
#[test]
fn a_key_cut_by_the_window_edge_stays_redacted() {
    let dir = TempDir::new("secrets-edge");
    let body: Vec<String> = (0..25).map(|i| noise(&format!("edge{i}"), 64)).collect();
    let mut text = String::from("def sign(data):\n    key = \"\"\"-----BEGIN PRIVATE KEY-----\n");
    for line in &body {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str("-----END PRIVATE KEY-----\"\"\"\n    return hmac(key, data)\n\n");
    for i in 0..60 {
        text.push_str(&format!(
            "def helper_{i}(value):\n    return value * {i}\n\n"
        ));
    }
    let path = "app/sign.py";
    dir.write(path, &text);
    let server = RecordingServer::start("qwen2.5-coder");
    let mut client = LspClient::start_in_workspace(
        &dir.0,
        json!({}),
        json!({"backendUrl": server.url(), "contextMode": "currentFile", "contextTokens": 256}),
    );
    client.wait_index(|s| s["files"].as_u64() >= Some(1));
    let uri = dir.uri(path);
    client.open(&uri, "python", &text);
    let first = text.lines().position(|l| l.contains("BEGIN")).unwrap() as u32;
    for line in first..first + 80 {
        let response = complete(&mut client, &uri, (line, 0));
        assert!(response.get("error").is_none(), "{response}");
    }
    let prompts = server.prompts();
    assert!(prompts.len() > 20, "{} prompts", prompts.len());
    let plants: Vec<Planted> = body
        .iter()
        .map(|secret| Planted {
            file: path,
            secret: secret.clone(),
            public: 0,
            shape: "PEM line",
        })
        .collect();
    let mut public_text = text.clone();
    for plant in &plants {
        public_text = public_text.replace(&plant.secret, "");
    }
    for prompt in &prompts {
        for plant in &plants {
            assert_eq!(
                leaked_chars(prompt, plant, &public_text),
                0,
                "key line leaked:\n{prompt}"
            );
        }
    }
    // The window did cut the key: some prompt starts inside it, shown as `<redacted>`.
    assert!(
        prompts
            .iter()
            .any(|p| p.starts_with("<|fim_prefix|><redacted>")),
        "no window started inside the key: {:?}",
        prompts
            .iter()
            .map(|p| p.chars().take(40).collect::<String>())
            .collect::<Vec<_>>()
    );
    client.shutdown();
    let _ = Path::new(path);
}
