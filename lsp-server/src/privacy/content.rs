//! Files whose *content* is a credential file, whatever their name: netrc and pgpass formats,
//! kubeconfigs with users, Kubernetes `kind: Secret` manifests, AWS credentials INI files and
//! Docker `auths` configs; and, by class rather than by format, a private key that is most of
//! the text, `user:hash` lines, URL credential stores and small settings files mostly about
//! credentials (`.npmrc`, MySQL option files, `.pypirc`, Maven `settings.xml`, ...). Such a file
//! is treated like an excluded one (`excludes.rs`): never indexed, retrieved or completed in.
//!
//! Only the start of a text is read (`HEAD_BYTES`; credential files are small), and one
//! Aho-Corasick pass over it decides whether any format's marker is there at all, so the check
//! costs microseconds on ordinary code.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::Regex;

/// How much of a text is looked at.
pub const HEAD_BYTES: usize = 64 << 10;

static MARKERS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build([
            "machine",
            "kind:",
            "users:",
            "aws_secret_access_key",
            "aws_session_token",
            "\"auths\"",
            ":",
            "PRIVATE KEY-----",
            "-----BEGIN ",
            "Static key V",
            "Private-Lines:",
            "LoginModule",
        ])
        .expect("markers")
});

static NETRC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^[ \t]*(?:machine[ \t]+\S+|default)(?:[ \t]|$)").expect("valid")
});
static NETRC_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)(?:^|[ \t])password[ \t]+\S+").expect("valid"));
static K8S_SECRET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?m)^kind:[ \t]*["']?Secret["']?[ \t]*$"#).expect("valid"));
static K8S_DATA: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^(?:data|stringData):[ \t]*$").expect("valid"));
static KUBECONFIG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?m)^kind:[ \t]*["']?Config["']?[ \t]*$|^clusters:[ \t]*$"#).expect("valid")
});
static KUBECONFIG_USER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)^[ \t]+(?:client-key-data|client-key|token|password|auth-provider|exec|id-token|refresh-token):",
    )
    .expect("valid")
});
static AWS_INI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?mi)^[ \t]*(?:aws_secret_access_key|aws_session_token)[ \t]*=").expect("valid")
});
static INI_SECTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^[ \t]*\[[^\]\n]+\][ \t]*$").expect("valid"));
static DOCKER_AUTHS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""auths"\s*:\s*\{\s*"[^"]+"\s*:\s*\{[^}]*"(?:auth|identitytoken|password)"\s*:"#)
        .expect("valid")
});
/// `hostname:port:database:username:password`, `*` allowed in the first four.
static PGPASS_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[^:\s]+|\*):(?:[0-9]+|\*):(?:[^:\s]+|\*):(?:[^:\s]+|\*):\S+$").expect("valid")
});

/// The start of `text`, cut at a character boundary.
fn head(text: &str) -> &str {
    if text.len() <= HEAD_BYTES {
        return text;
    }
    let mut end = HEAD_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What credential format `text` is in, if any (`"netrc"`, `"pgpass"`, `"kubeconfig"`,
/// `"kubernetes secret"`, `"aws credentials"`, `"docker auths"`).
pub fn credential_format(text: &str) -> Option<&'static str> {
    let text = head(text);
    let mut seen = [false; 12];
    for found in MARKERS.find_overlapping_iter(text) {
        seen[found.pattern().as_usize()] = true;
        if seen.iter().all(|s| *s) {
            break;
        }
    }
    let [machine, kind, users, aws_secret, aws_session, auths, colon, private_key, armour, static_key, private_lines, login_module] =
        seen;
    if (machine || text.contains("default"))
        && NETRC.is_match(text)
        && NETRC_PASSWORD.is_match(text)
        && mostly_netrc(text)
    {
        return Some("netrc");
    }
    if kind && K8S_SECRET.is_match(text) && K8S_DATA.is_match(text) {
        return Some("kubernetes secret");
    }
    if users && KUBECONFIG.is_match(text) && KUBECONFIG_USER.is_match(text) {
        return Some("kubeconfig");
    }
    if (aws_secret || aws_session) && AWS_INI.is_match(text) && INI_SECTION.is_match(text) {
        return Some("aws credentials");
    }
    if auths && DOCKER_AUTHS.is_match(text) {
        return Some("docker auths");
    }
    if colon && is_pgpass(text) {
        return Some("pgpass");
    }
    if (private_key || armour || static_key)
        && (mostly_private_key(text) || key_in_inline_block(text))
    {
        return Some("private key");
    }
    if private_lines && KEY_FILE_LINES.is_match(text) {
        return Some("private key");
    }
    if login_module && is_jaas(text) {
        return Some("jaas");
    }
    if colon && every_entry(text, |line| PASSWORD_HASH_LINE.is_match(line)) {
        return Some("password hashes");
    }
    if colon && every_entry(text, is_url_with_password) {
        return Some("credential store");
    }
    if mostly_credential_settings(text) {
        return Some("credential settings");
    }
    // Before the short-settings class: a two-line CSV with a password column is a table.
    if table_of_passwords(text) {
        return Some("table of passwords");
    }
    if settings_holding_a_credential(text) {
        return Some("settings holding a credential");
    }
    if key_bytes(text) {
        return Some("key bytes");
    }
    if every_entry(text, |line| {
        line.starts_with("otpauth://") && line.contains("secret=")
    }) {
        return Some("otp export");
    }
    if colon && every_entry(text, is_host_user_password) {
        return Some("credential store");
    }
    if every_entry(text, |line| SYMMETRIC_KEY_LINE.is_match(line)) {
        return Some("symmetric keys");
    }
    if ARMOURED_FORMATS.is_match(text) {
        return Some("saved login");
    }
    if recovery_codes(text) {
        return Some("recovery codes");
    }
    if mnemonic(text) {
        return Some("mnemonic");
    }
    if lone_values(text) {
        return Some("a credential alone");
    }
    if key_export(text) {
        return Some("key export");
    }
    if data_holding_credentials(text) {
        return Some("data holding credentials");
    }
    None
}

/// `host:user:password` (Exim's `passwd.client`, many tools' password files): a host or
/// pattern, a user, and a password.
fn is_host_user_password(line: &str) -> bool {
    let fields: Vec<&str> = line.splitn(3, ':').collect();
    fields.len() == 3
        && (fields[0].contains('.') || fields[0].starts_with('*'))
        && fields[0]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.*_".contains(&b))
        && !fields[1].is_empty()
        && !fields[1].contains(char::is_whitespace)
        && fields[2].len() >= 6
        && !fields[2].contains(char::is_whitespace)
        && !fields[2].starts_with("//")
}

/// A line of an NTP or chrony key file: `<id> <type> <key>`.
static SYMMETRIC_KEY_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9]{1,5}[ \t]+(?:MD5|M|SHA|SHA1|SHA256|SHA384|SHA512|AES128CMAC|AES256CMAC|AES-128-CMAC|RMD160)[ \t]+\S{6,}(?:[ \t]+\S+)?$")
        .expect("valid")
});

/// Saved logins of tools whose format says so: an RDP file's `password 51:b:`, a Windows
/// Wi-Fi profile's `<keyMaterial>`, a BitLocker recovery key, an unattended install's
/// `<AdministratorPassword>`.
static ARMOURED_FORMATS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?mi)^password 51:b:[0-9A-F]{16,}|<keyMaterial>[^<\s]{8,}</keyMaterial>|^BitLocker Drive Encryption recovery key|<(?:AdministratorPassword|Password)>\s*<Value>[^<]+</Value>")
        .expect("valid")
});

/// A keypair saved as its bytes: a JSON array of 32 or 64 numbers 0–255 and nothing else
/// (Solana's `id.json`, any tool that dumps a secret key as bytes).
fn key_bytes(text: &str) -> bool {
    let Some(inner) = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
    else {
        return false;
    };
    let numbers: Option<Vec<u16>> = inner.split(',').map(|n| n.trim().parse().ok()).collect();
    numbers.is_some_and(|n| {
        matches!(n.len(), 32 | 64) && n.iter().all(|&b| b <= 255) && {
            let mut distinct = n.clone();
            distinct.sort_unstable();
            distinct.dedup();
            distinct.len() >= n.len() / 2
        }
    })
}

/// A table (CSV, TSV) whose header names a password, secret, token or PIN column: a password
/// manager's or a browser's export.
fn table_of_passwords(text: &str) -> bool {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let (Some(header), Some(_row)) = (lines.next(), lines.next()) else {
        return false;
    };
    let separator = if header.contains('\t') { '\t' } else { ',' };
    let columns: Vec<&str> = header
        .split(separator)
        .map(|c| c.trim().trim_matches('"'))
        .collect();
    columns.len() >= 2
        && columns.iter().all(|c| {
            !c.is_empty()
                && c.len() <= 40
                && c.split(' ').count() <= 3
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b" _.-".contains(&b))
        })
        && columns.iter().any(|c| {
            let c = c.to_ascii_lowercase();
            super::rules::name_says(&c) == super::rules::NameSays::Secret
                || matches!(
                    c.as_str(),
                    "login_password" | "pin" | "otp" | "totp" | "2fa"
                )
        })
}

/// One-time recovery codes saved alone: four lines or more, each one code of the same
/// shape (`a8f2-k3m9`, `12345678`), letters and digits, a digit in each.
fn recovery_codes(text: &str) -> bool {
    let shape = |c: &str| -> String {
        c.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    'x'
                } else {
                    b as char
                }
            })
            .collect()
    };
    // Line by line, stopping at the first line that is not a code (most files: the first).
    let mut first: Option<String> = None;
    let mut count = 0;
    for code in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        count += 1;
        let is_code = count <= 64
            && (6..=16).contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b' ')
            && code.bytes().any(|b| b.is_ascii_digit());
        if !is_code || *first.get_or_insert_with(|| shape(code)) != shape(code) {
            return false;
        }
    }
    count >= 4
}

/// A wallet's recovery words saved alone: 12 to 24 lower-case words, nothing else.
fn mnemonic(text: &str) -> bool {
    if text.len() > 400 {
        return false;
    }
    let words: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .map(|w| w.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.'))
        .filter(|w| !w.is_empty())
        .collect();
    matches!(words.len(), 12 | 15 | 18 | 21 | 24)
        && words
            .iter()
            .all(|w| (3..=8).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase()))
}

/// A line of a program rather than of settings or directives: a statement keyword first
/// (`import os`, `return x`, `def f():`), or a call or statement end at its end.
fn is_code_line(line: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "import",
        "from",
        "return",
        "def",
        "fn",
        "func",
        "function",
        "let",
        "const",
        "var",
        "package",
        "use",
        "class",
        "if",
        "for",
        "while",
        "echo",
        "print",
        "printf",
        "local",
        "require",
        "include",
        "module",
        "namespace",
        "using",
        "public",
        "private",
        "static",
        "async",
        "await",
        "raise",
        "throw",
        "try",
        "catch",
        "else",
        "elif",
        "struct",
        "impl",
        "type",
        "interface",
        "enum",
        "pub",
        "val",
        "fun",
        "object",
        "case",
        "switch",
        "do",
        "done",
        "fi",
        "then",
        "begin",
        "end",
        "sub",
        "my",
    ];
    let first = line
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("");
    // A keyword that is a setting's key (`type: x`, `include = y`) is not a statement.
    let statement =
        KEYWORDS.contains(&first) && !line[first.len()..].trim_start().starts_with([':', '=']);
    // Braces alone close JSON and HCL too; a block opened after a call's parentheses is code.
    // `password = "…";` alone is a setting (a game server's or libconfig's `.cfg`), not code.
    let literal_setting = line.strip_suffix(';').is_some_and(|pair| {
        pair.split_once('=').is_some_and(|(key, value)| {
            let key = key.trim();
            let value = value.trim();
            !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.".contains(&b))
                && (value.len() >= 2
                    && (value.starts_with('"') && value.ends_with('"')
                        || value.starts_with('\'') && value.ends_with('\''))
                    || value.parse::<f64>().is_ok()
                    || matches!(value, "true" | "false"))
        })
    });
    statement
        || line.ends_with([';', ')', '(']) && !literal_setting
        || line.ends_with('{') && line.contains('(')
}

/// A file of one to three values, one a line, one of them a password or key (a Docker
/// secret, `login.txt` with a user and a password): the value is what the file is for.
fn lone_values(text: &str) -> bool {
    if text.len() > 512 {
        return false;
    }
    let values: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (1..=3).contains(&values.len())
        && values.iter().all(|v| !v.contains(char::is_whitespace))
        && (values
            .iter()
            .any(|v| lone_password(v) || !super::secret_spans(v).is_empty())
            || values.len() == 1 && lone_token(values[0]))
}

/// A file that is one token and nothing else (an Erlang cookie, a controller's secret, a
/// vault password file, Rails' `master.key`, a Zabbix PSK): 16–256 characters that read
/// random or as a password, not a name with dots or slashes (a host, a version, a path), not
/// a commit or SHA-1 digest (hex of 40) or a number. Hex of a key's length (32, 64, 128) is
/// a key or a digest; a file of one alone gets no completion either way. (Without the look,
/// fuzzers' one-line inputs and `top_level.txt` files matched.)
fn lone_token(v: &str) -> bool {
    let hex = v.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && matches!(v.len(), 32 | 64 | 128) {
        return v.bytes().any(|b| b.is_ascii_digit()) && v.bytes().any(|b| b.is_ascii_alphabetic());
    }
    let hex_digest = hex && v.len() == 40;
    (16..=256).contains(&v.len())
        && !v.contains(['/', '\\', '.', ':', '<', '>', '"', '\''])
        && v.bytes().all(|b| b.is_ascii_graphic())
        && !hex_digest
        && !v.bytes().all(|b| b.is_ascii_digit())
        && !super::rules::is_key_name(v)
        && (super::rules::looks_random(v)
            || super::random::reads_random(v)
            || super::random::is_password(v, true)
            || super::random::is_chosen_password(v))
}

/// A password as people make them, alone on its line: 10 to 64 characters of letters in both
/// cases, digits and a few symbols, not hex (a digest or a serial number) and no operators,
/// quotes or escapes (a requirement, a fuzzer's input).
fn lone_password(v: &str) -> bool {
    (10..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!@#$%^&*+=~?".contains(&b))
        && v.bytes().any(|b| b.is_ascii_uppercase())
        && v.bytes().any(|b| b.is_ascii_lowercase())
        && (v.bytes().filter(u8::is_ascii_digit).count() >= 2
            || v.bytes().any(|b| b"!@#$%^&*+=~?".contains(&b)))
        && !v.bytes().all(|b| b.is_ascii_hexdigit())
        && !v.contains("==")
        && super::rules::credential_like(v)
}

/// A key exported as text: a first line that names a key, then lines of base64 making most
/// of the file (`BORG_KEY <id>` and its blob, a `paperkey`-style export).
fn key_export(text: &str) -> bool {
    if text.len() > 8192 {
        return false;
    }
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(first) = lines.next() else {
        return false;
    };
    let names_key = super::rules::name_words(first.split([' ', ':', '=']).next().unwrap_or(""))
        .iter()
        .any(|w| {
            matches!(
                w.as_str(),
                "key" | "secret" | "seed" | "recovery" | "backup"
            )
        });
    let (mut blob, mut other) = (0, 0);
    for line in lines {
        if line.len() >= 40
            && line
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        {
            blob += line.len();
        } else {
            other += line.len();
        }
    }
    names_key && blob >= 120 && blob >= 4 * (other + first.len())
}

/// A data file (JSON) that holds two credentials or more: an export of a password manager or
/// an authenticator, a Terraform state, a saved login. One credential in a project's JSON is
/// redacted and the file keeps its completions.
fn data_holding_credentials(text: &str) -> bool {
    let trimmed = text.trim();
    if text.len() > 16 << 10
        || !(trimmed.starts_with('{') && trimmed.ends_with('}')
            || trimmed.starts_with('[') && trimmed.ends_with(']'))
    {
        return false;
    }
    super::secret_spans(text).len() >= 2
}

/// A short file of settings (pairs, sections, brackets; at most a few other lines) in which
/// redaction finds a credential, of any format and whatever its keys say: a tool's login or
/// connection file (a CLI's `config.yml`, an INI of one connection, a relay map line). Formats
/// nobody listed are the rule for such files, so the test is their shape and a credential in
/// them, not their names. A project's longer configuration keeps its completions, with its
/// credentials redacted.
fn settings_holding_a_credential(text: &str) -> bool {
    const MAX_LINES: usize = 25;
    /// At most this many lines, a credential is what a file of settings is for, whatever else
    /// it sets (a tool's login file); a longer one (a compose file, an app's settings) keeps
    /// its completions unless its keys are mostly about the connection.
    const SHORT_LINES: usize = 12;
    /// Words of keys that say what a connection or a login needs: who, where, and the secret.
    const CONNECTION: &[&str] = &[
        "user",
        "username",
        "login",
        "email",
        "account",
        "auth",
        "id",
        "host",
        "hostname",
        "server",
        "endpoint",
        "url",
        "uri",
        "port",
        "db",
        "dbname",
        "database",
        "schema",
        "tenant",
        "region",
        "realm",
        "domain",
        "org",
        "project",
        "warehouse",
        "key",
        "cert",
        "identity",
        "profile",
        "token",
        "pass",
        "secret",
        "credentials",
        "remote",
        "smtp",
        "ssid",
        "psk",
        "machine",
    ];
    if text.len() > 4096 {
        return false;
    }
    let (mut lines, mut settings, mut other, mut pairs, mut connection) = (0, 0, 0, 0, 0);
    // Lines of code (`import os`, `return x`, `f(x);`): a script, not settings.
    let mut code_lines = 0;
    for line in text.lines() {
        let line = line.trim();
        // `#define SECRET_PASS "…"` (an Arduino `secrets.h`): a setting, not a comment.
        let line = line.strip_prefix("#define ").map_or(line, str::trim_start);
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with(';')
            || line.starts_with("//")
            || line.starts_with("<!--")
        {
            continue;
        }
        lines += 1;
        if lines > MAX_LINES {
            return false;
        }
        if is_code_line(line) {
            code_lines += 1;
        }
        // `host smtp.example.org`, `user "x" there with password "y"`: a word and its value,
        // the form of msmtp, fetchmail, ssh_config and many more.
        let setting = match setting(line) {
            Setting::Other => match line.split_once([' ', '\t']) {
                Some((key, value))
                    if !value.trim().is_empty()
                        && key
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) =>
                {
                    Setting::Pair(key, value)
                }
                _ => Setting::Other,
            },
            other => other,
        };
        match setting {
            Setting::Pair(key, _) => {
                settings += 1;
                pairs += 1;
                let words = super::rules::name_words(key);
                if super::rules::name_says(key) != super::rules::NameSays::No
                    || words.iter().any(|w| CONNECTION.contains(&w.as_str()))
                {
                    connection += 1;
                }
            }
            Setting::Structure => settings += 1,
            Setting::Other => other += 1,
        }
    }
    // More than half the pairs are about the connection, or the credential is all there is.
    let about_access = connection * 2 > pairs
        || lines <= SHORT_LINES && code_lines == 0
        || lines <= 2 && text.len() <= 512;
    lines > 0
        && other <= 2.max(lines / 5)
        && (settings > 0 || lines <= 2)
        && about_access
        && !super::secret_spans(text).is_empty()
}

/// A key file whose header counts the lines of the private key that follow (PuTTY's
/// `Private-Lines: N`, any version).
static KEY_FILE_LINES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^Private-Lines:[ \t]*[0-9]+[ \t]*\r?\n[A-Za-z0-9+/=]{16,}").expect("valid")
});

/// A private key block inside a configuration's inline element (OpenVPN's `<key>`,
/// `<tls-auth>`, `<tls-crypt>`, `<secret>`): the configuration carries the key, however long
/// its certificates are.
fn key_in_inline_block(text: &str) -> bool {
    super::pem_spans(text).iter().any(|span| {
        let before = text[..span.start].trim_end();
        let line = before.rsplit('\n').next().unwrap_or("").trim();
        line.len() > 2
            && line.starts_with('<')
            && line.ends_with('>')
            && !line.starts_with("</")
            && line[1..line.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    })
}

/// A JAAS login configuration (`Name { module flag key="v" …; };`, Kafka's and ZooKeeper's
/// client logins): every line is one of its parts, and a `password` holds a literal.
fn is_jaas(text: &str) -> bool {
    static LINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"^(?:[A-Za-z_][A-Za-z0-9_.-]*[ \t]*\{|\}[ \t]*;?|[A-Za-z_][A-Za-z0-9_.$]*[ \t]+(?:required|requisite|sufficient|optional)(?:[ \t].*)?|[A-Za-z_][A-Za-z0-9_.-]*[ \t]*=[ \t]*(?:"[^"]*"|[^\s;"]+)[ \t]*;?|//.*|/?\*.*)$"#,
        )
        .expect("valid")
    });
    static PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?m)(?:^|\s)[A-Za-z_.]*password[ \t]*=[ \t]*"(?P<value>[^"\r\n]+)""#)
            .expect("valid")
    });
    every_entry(text, |line| LINE.is_match(line))
        && PASSWORD
            .captures_iter(text)
            .any(|c| !super::rules::is_reference_or_flag(&c["value"]))
}

/// Generated, not typed: random-looking as a whole or in one of its pieces
/// (`rubygems_<48 hex>`, `ixP7Q~…`).
fn random_looking(value: &str) -> bool {
    super::rules::looks_random(value)
        || value
            .split(['_', '-', '.', ':', '~'])
            .any(super::rules::looks_random)
}

/// A private key block is most of the text (a key saved as `.txt`, a service-account JSON
/// whose `private_key` is most of its bytes, an `.env` holding one key).
fn mostly_private_key(text: &str) -> bool {
    let key: usize = super::pem_spans(text).iter().map(|s| s.len()).sum();
    let content = text.bytes().filter(|b| !b.is_ascii_whitespace()).count();
    key * 2 >= content
}

/// `user:hash` (htpasswd, shadow, userlists): a crypt hash (`$apr1$…`, `$2y$…`, `$6$…`,
/// `$argon2id$…`) or an LDAP-style `{SHA}…`, or any Dovecot scheme (`{PLAIN}pw`,
/// `{BLF-CRYPT}…`), optionally followed by more `:` fields.
static PASSWORD_HASH_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^[A-Za-z0-9._@-]{1,64}:(?:\$[0-9a-z]{1,10}\$\S{8,}|\{S?(?:SHA|MD5|SSHA)[0-9]*\}[A-Za-z0-9+/=]{8,}|\{[A-Z][A-Z0-9.-]{1,20}\}[^\s:]{6,}|[A-Za-z0-9./]{13})(?::\S*)?$",
    )
    .expect("valid")
});

/// `scheme://user:password@host…` with a literal password (git's credential store).
fn is_url_with_password(line: &str) -> bool {
    static URL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[a-z][a-z0-9+.-]*://[^\s:/@]+:(?P<password>[^\s/@]+)@\S+$").expect("valid")
    });
    URL.captures(line)
        .is_some_and(|c| !super::rules::is_url_placeholder(&c["password"]))
}

/// Every line that is not blank or a comment passes `entry`, and there is one.
fn every_entry(text: &str, entry: impl Fn(&str) -> bool) -> bool {
    let mut entries = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !entry(line) {
            return false;
        }
        entries += 1;
    }
    entries > 0
}

/// What one line of a settings file is.
enum Setting<'a> {
    /// `key = value`, `key: value`, `"key": "value",`, `<key>value</key>`.
    Pair(&'a str, &'a str),
    /// A section, a parent key, a bracket, an XML tag: structure without a value.
    Structure,
    /// Anything else: code, prose.
    Other,
}

fn setting(line: &str) -> Setting<'_> {
    static PAIR: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"^(?:-[ \t]+)?["']?(?P<key>[A-Za-z0-9_./:@$-]+)["']?[ \t]*(?:=|:[ \t]|:$)[ \t]*(?P<value>.*?)[ \t]*,?$"#,
        )
        .expect("valid")
    });
    static ELEMENT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^<(?P<key>[A-Za-z_][A-Za-z0-9_.:-]*)>(?P<value>[^<]*)</[A-Za-z_][A-Za-z0-9_.:-]*>$",
        )
        .expect("valid")
    });
    static TAG: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"^(?:<[?!/]?[A-Za-z_][^<>]*>|\[[^\]]+\]|[\[\]{}(),]+)$"#).expect("valid")
    });
    if let Some(c) = ELEMENT.captures(line) {
        let (key, value) = (c.name("key"), c.name("value"));
        if let (Some(key), Some(value)) = (key, value) {
            return Setting::Pair(key.as_str(), value.as_str());
        }
    }
    // A YAML document's start and end.
    if TAG.is_match(line) || line == "---" || line == "..." {
        return Setting::Structure;
    }
    if let Some(c) = PAIR.captures(line) {
        let (key, value) = (c.name("key"), c.name("value"));
        if let (Some(key), Some(value)) = (key, value) {
            let value = value.as_str().trim_matches(['"', '\'']);
            if value.is_empty() || value == "{" || value == "[" {
                return Setting::Structure;
            }
            return Setting::Pair(key.as_str(), value);
        }
    }
    Setting::Other
}

/// A small settings file (INI, `.npmrc`, MySQL option file, `.pypirc`, Maven `settings.xml`,
/// YAML/TOML/JSON of plain pairs, `key = value` formats such as WireGuard's, s3cmd's or
/// rclone's) in which at least one key that says secret holds a literal (or one that may say
/// secret, `key`, `token`, a random-looking one) and most keys are about credentials: a
/// secret's name, an identity (`user`, `login`, `account`, `clientId`, `tenantId`), where it
/// is used (`host`, `endpoint`), key material (`PublicKey`). Such a file is a credential file
/// whatever its format; a project's configuration with a password among many settings is not
/// (its values are redacted instead). One pair is enough when its value is random-looking
/// (`{"credentials": {"host": {"token": "…"}}}`).
fn mostly_credential_settings(text: &str) -> bool {
    const MAX_PAIRS: usize = 40;
    const IDENTITY: &[&str] = &["user", "username", "login", "email", "account", "auth"];
    /// Words of keys that say who or where a credential is for (`clientId`, `host_base`).
    const ACCESS: &[&str] = &["id", "host", "endpoint", "tenant"];
    let (mut pairs, mut credential_keys, mut secrets, mut random, mut other) = (0, 0, 0, 0, 0);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with(';')
            || line.starts_with("//") && !line.contains(":_")
            || line.starts_with("<!--")
        {
            continue;
        }
        match setting(line) {
            Setting::Pair(key, value) => {
                pairs += 1;
                if pairs > MAX_PAIRS {
                    return false;
                }
                let says = super::rules::name_says(key);
                let words = super::rules::name_words(key);
                if says != super::rules::NameSays::No
                    || words.iter().any(|w| IDENTITY.contains(&w.as_str()))
                    || words.iter().any(|w| ACCESS.contains(&w.as_str()))
                    // Key material, public or not (`PublicKey` beside `PrivateKey`).
                    || words.last().is_some_and(|w| w == "key")
                {
                    credential_keys += 1;
                }
                let literal = !value.contains('(');
                if literal
                    && says == super::rules::NameSays::Secret
                    && super::rules::value_is_secret(says, super::rules::Written::Literal, value)
                {
                    secrets += 1;
                }
                if literal
                    && says != super::rules::NameSays::No
                    && !super::rules::is_reference_or_flag(value)
                    && random_looking(value)
                {
                    random += 1;
                }
            }
            Setting::Structure => {}
            Setting::Other => {
                other += 1;
                if other > 2 {
                    return false;
                }
            }
        }
    }
    (secrets > 0 && pairs >= 2 || random > 0) && credential_keys * 2 >= pairs && other * 10 <= pairs
}

/// Most lines (not blank, not comments) start with a netrc token: prose or code that mentions
/// `machine … password …` is not a netrc file.
fn mostly_netrc(text: &str) -> bool {
    let (mut lines, mut netrc) = (0, 0);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        lines += 1;
        let first = line.split_whitespace().next().unwrap_or("");
        if matches!(
            first,
            "machine" | "default" | "login" | "password" | "account" | "macdef"
        ) {
            netrc += 1;
        }
    }
    lines > 0 && netrc * 5 >= lines * 4
}

/// Every line that is not blank or a comment is a pgpass entry, and there is one.
fn is_pgpass(text: &str) -> bool {
    let mut entries = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !PGPASS_LINE.is_match(line) {
            return false;
        }
        entries += 1;
    }
    entries > 0
}

pub fn is_credential_file(text: &str) -> bool {
    credential_format(text).is_some()
}

/// The same for a document's rope, reading only its start.
pub fn rope_is_credential_file(rope: &ropey::Rope) -> bool {
    let end = rope.len_bytes().min(HEAD_BYTES);
    let end_char = rope.byte_to_char(end);
    let slice = rope.slice(..end_char);
    match slice.as_str() {
        Some(text) => is_credential_file(text),
        None => is_credential_file(&slice.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_formats_are_recognised_by_content() {
        for (text, format) in [
            ("machine api.example.com\n  login me\n  password x9Y8z7\n", "netrc"),
            ("db:5432:app:app:s3cret\n*:*:*:replica:other\n", "pgpass"),
            ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ndata:\n  k: dGVzdA==\n", "kubernetes secret"),
            ("apiVersion: v1\nkind: Config\nclusters: []\nusers:\n- name: a\n  user:\n    token: abc\n", "kubeconfig"),
            ("[default]\naws_access_key_id = AKIA\naws_secret_access_key = x\n", "aws credentials"),
            ("{\"auths\": {\"ghcr.io\": {\"auth\": \"dXNlcjpwdw==\"}}}", "docker auths"),
            // Added after held-out-3 (examples written for this test).
            ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz\n-----END OPENSSH PRIVATE KEY-----\n", "private key"),
            ("{\n  \"kind\": \"signer\",\n  \"key\": \"-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oFQ8s2RCGp8woAoGCCqGSM49\\nAwEHoUQDQgAE7CXRWxkAC1Ym7jyz0wVLWdSHCHLrWD8h3dLyyP5T4a5ho9I9\\n-----END EC PRIVATE KEY-----\\n\"\n}\n", "private key"),
            ("alice:$6$rounds=5000$Qx1sAlt$K9pVw2mLq8rT3nB7xY4cH1dJ6sE0gA5uI:19000:0:99999:7:::\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "password hashes"),
            ("https://deploy:Zq8-vL2m@git.example.org\nhttps://x-token:Ab3dEf6H@forge.internal\n", "credential store"),
            ("[distutils]\nindex-servers = pypi\n\n[pypi]\nusername = __token__\npassword = Tk7-Qv2m-Lp9x\n", "credential settings"),
            ("; registry login\n//npm.example.org/:_authToken=Hm4vQ8zL2pX7\nemail=ci@example.org\n", "credential settings"),
            ("<servers>\n  <server>\n    <id>internal</id>\n    <username>ci</username>\n    <password>Rw5!kP8-zQ</password>\n  </server>\n</servers>\n", "credential settings"),
            // Added after held-out-4 (examples written for this test).
            ("[Interface]\nPrivateKey = Qm7ZtR2kP9xWb4LcN8vYk3Hq9TzL2vR7tWp4Kx8nB5c=\nListenPort = 51820\n\n[Peer]\nPublicKey = Zr8fK2mQ9xLp4Wv7Tn3sB5yH1cJ6dE0gA9uI2oP4wQ=\nAllowedIPs = 10.9.0.2/32\n", "credential settings"),
            ("{\n  \"credentials\": {\n    \"registry.example.net\": {\n      \"token\": \"Qm7ZtR2kP9xWb4LcN8vY.v1.Hq3vZ7kL9mT2Wv3qZ8kT\"\n    }\n  }\n}\n", "credential settings"),
            ("{\n  \"appId\": \"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\",\n  \"displayName\": \"ci-deployer\",\n  \"password\": \"Zx8~kQ2.vLm-9Tr4Wn7Bc3Yd6Hf1Jk5Gs0Pa\",\n  \"tenant\": \"9e8d7c6b-5a49-3827-1605-f4e3d2c1b0a9\"\n}\n", "credential settings"),
            ("---\n:api_key: 5be1c07a93d24f6e8a1b0c3d7e9f2a4b5be1c07a\n", "credential settings"),
            ("[s3]\naccess_key = K7Q2M9X4B8N3P6R1T5V0\nsecret_key = Zr8fK2mQ9xLp4Wv7Tn3sB5yH1cJ6dE0gA9uI2oP\nhost_base = objects.example.net\nhost_bucket = %(bucket)s.objects.example.net\nuse_https = True\n", "credential settings"),
            ("Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  username=\"zk\"\n  password=\"Tq4-vL9!mZ\";\n};\n", "jaas"),
            ("client\nremote vpn.example.net 1194\n<ca>\n-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\nRTESMBAGA1UEChMJQmFsdGltb3JlMRMwEQYDVQQLEwpDeWJlclRydXN0MSIwIAYD\nVQQDExlCYWx0aW1vcmUgQ3liZXJUcnVzdCBSb290MB4XDTAwMDUxMjE4NDYwMFoX\nDTI1MDUxMjIzNTkwMFowWjELMAkGA1UEBhMCSUUxEjAQBgNVBAoTCUJhbHRpbW9y\n-----END CERTIFICATE-----\n</ca>\n<key>\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n</key>\n", "private key"),
            ("PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nComment: ci\nPublic-Lines: 1\nAAAAB3NzaC1yc2EAAAADAQABAAAAgQ\nPrivate-Lines: 1\nAAAAgQCx7Qm2vLp9Zr4Kt8Wn3Bc6Yd1H\nPrivate-MAC: 0a1b2c3d\n", "private key"),
        ] {
            assert_eq!(credential_format(text), Some(format), "{text}");
        }
    }

    #[test]
    fn ordinary_files_are_not_credential_files() {
        for text in [
            "def connect(machine, password):\n    return login(machine, password)\n",
            "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: 2\n",
            "# users: see docs\nkind: ConfigMap\ndata:\n  a: b\n",
            "a:b\nc:d\n",
            "http://localhost:8080/path\n",
            "key:value:with:many:colons and spaces\n",
            "auth = {\"auths\": {}}",
            "",
            // A password among many settings: its value is redacted, the file stays.
            "[app]\nname = shop\nport = 8080\nworkers = 4\ndebug = false\nlog = info\nopt1 = a\nopt2 = b\nopt3 = c\nopt4 = d\nopt5 = e\nopt6 = f\nopt7 = g\nopt8 = h\nopt9 = i\nopt10 = j\nopt11 = k\nopt12 = l\nopt13 = m\nthreads = 8\n\
             cache = redis\ntimeout = 30\nretries = 3\nregion = eu\nmode = prod\n[db]\nhost = db\n\
             user = shop\npassword = Kq7-vB2x\n",
            // A short script holding a key is code: its key is redacted, the file stays.
            "import os\nkey = \"ghp_0123456789abcdefghijklmnopqrstuvwxyzAB\"\nx = 1\n",
            // A C file with a password define and code: the value is redacted, the file stays.
            "#include <wifi.h>\n#define WIFI_PASS \"Rq7vLm2Xz9Tn\"\nvoid setup(void) {\n  wifi_begin(WIFI_PASS);\n}\n",
            // A private key inside code that is mostly code.
            "import paramiko\n\nKEY = '''-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----'''\n\n\ndef connect(host, user):\n    client = paramiko.SSHClient()\n    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())\n    pkey = paramiko.RSAKey.from_private_key(io.StringIO(KEY))\n    client.connect(hostname=host, username=user, pkey=pkey, timeout=10)\n    return client\n",
            "alice:x:1000:1000::/home/alice:/bin/bash\n",
            "https://example.org/docs\nhttps://user@example.org/repo\n",
            "user: alice\nname: Alice\nemail: a@example.org\n",
            // Near misses of the classes added after held-out-4.
            "KafkaClient {\n  org.apache.kafka.common.security.plain.PlainLoginModule required\n  username=\"orders\"\n  password=\"${KAFKA_PASSWORD}\";\n};\n",
            // (Longer than twelve lines: shorter, a credential makes any settings file one.)
            "[app]\nport = 8080\nworkers = 4\nlog = info\nopt1 = a\nopt2 = b\nopt3 = c\nopt4 = d\nopt5 = e\nopt6 = f\nopt7 = g\nopt8 = h\nopt9 = i\nopt10 = j\nopt11 = k\nopt12 = l\nopt13 = m\nthreads = 8\ncache = redis\nretries = 3\nregion = eu\nmode = prod\ntheme = dark\nlocale = en\nzone = b\ncache_key = 5be1c07a93d24f6e8a1b0c3d7e9f2a4b\n",
            "[server]\nport = 8080\nworkers = 4\nlog_level = info\ntimeout = 30\nopt1 = a\nopt2 = b\nopt3 = c\nopt4 = d\nopt5 = e\nopt6 = f\nopt7 = g\nopt8 = h\nopt9 = i\nopt10 = j\nopt11 = k\nopt12 = l\nopt13 = m\nthreads = 8\ncache = redis\nretries = 3\nregion = eu\nmode = prod\ntheme = dark\nlocale = en\nzone = b\nsigning_key = Kq7vT2mLx9Rz4Wn8Bc3Yd6Hf\n",
            "client\nremote vpn.example.net 1194\n<ca>\n-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n-----END CERTIFICATE-----\n</ca>\nkey client.key\n",
            "Private-Lines: the number of lines of the private key\n",
            "{\n  \"id\": 12,\n  \"host\": \"db.internal\",\n  \"token\": \"next\"\n}\n",
        ] {
            assert_eq!(credential_format(text), None, "{text}");
        }
    }

    #[test]
    fn short_settings_holding_a_credential_are_credential_files() {
        // Written for this test: formats no rule names.
        for text in [
            "[relay.example.net]:2525 mailer:Xq7vB2kLp9Rz4TmWc8Nd\n",
            "[conn]\nhost = db.example.internal\nuser = loader\npassword = \"Kq9!vTz2pL8wRe\"\nport = 5432\n",
            "endpoint: https://api.example.org\naccount: ci\napi-token: Zr8Kq2LmW9xTb4NvCp7Hd3Fs\noutput: json\n",
        ] {
            assert!(credential_format(text).is_some(), "{text}");
        }
    }

    /// Stop 40, written for this test: credential files by what they hold, not their keys.
    #[test]
    fn files_that_are_their_credentials_are_credential_files() {
        let blob =
            "Qm7ZtR2kP9xWb4LcN8vYk3Hq9TzL2vR7tWp4Kx8nB5cZr8fK2mQ9xLp4Wv7Tn3sB5yH1cJ6dE0gA9uI2oP4\n";
        for (text, format) in [
            ("-----BEGIN ACME SERVICE TOKEN-----\neyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjaSJ9.Xk9pL2qR7zT4vW8n\n------END ACME SERVICE TOKEN------\n", "private key"),
            ("deploy-bot\nvpn.example.org\nRiver-Stone-8841!\n", "a credential alone"),
            ("acme\nops\nTq8vKz3Lm2Wn9Rc4Yd7Bf1GjHs5\n", "a credential alone"),
            (&format!("BACKUP_KEY 7d1c0e5a9b3f\n{blob}{blob}{blob}"), "key export"),
            (&format!(
                "{{\n  \"version\": 3,\n  \"entries\": [\n{}{}{}{}  ]\n}}\n",
                "    {\n      \"issuer\": \"git\",\n      \"digits\": 6,\n      \"period\": 30,\n      \"algo\": \"SHA1\",\n      \"note\": \"\"\n    },\n",
                "    {\n      \"issuer\": \"wiki\",\n      \"digits\": 6,\n      \"period\": 30,\n      \"algo\": \"SHA1\",\n      \"note\": \"\"\n    },\n",
                "    {\n      \"issuer\": \"mail\",\n      \"digits\": 6,\n      \"period\": 30,\n      \"algo\": \"SHA1\",\n      \"secret\": \"KRSXG5CTMVRXEZLUKN2XAZLS\"\n    },\n",
                "    {\n      \"issuer\": \"vpn\",\n      \"digits\": 6,\n      \"period\": 30,\n      \"algo\": \"SHA1\",\n      \"secret\": \"MFRGGZDFMZTWQ2LKNNWG23TP\"\n    }\n",
            ), "data holding credentials"),
            ("ana@example.org:{PLAIN}lantern-Fog-71:1000:1000::/home/ana::\n", "password hashes"),
            (&format!("[{}]\n", (0..64).map(|i| ((i * 37 + 11) % 256).to_string()).collect::<Vec<_>>().join(",")), "key bytes"),
            ("name,url,username,password\nmail,https://mail.example.org,ana,lantern-Fog-71\n", "table of passwords"),
            ("Title\tLogin\tPassword\nVPN\tana\tR1ver-stone\n", "table of passwords"),
            ("otpauth://totp/Example:ana?secret=KRSXG5CTMVRXEZLU&issuer=Example\notpauth://totp/Mail:ana?secret=MFRGGZDFMZTWQ2LK\notpauth://totp/VPN:ana?secret=NBSWY3DPEB3W64TM\n", "otp export"),
            ("# keep these safe\n4f7k-2m9q\nx8p1-r4t6\nb5n8-w2c3\nh6j2-q9z4\nm3v7-k1d8\n", "recovery codes"),
            ("orbit gravel lunar pepper quiet shadow\nmaple rocket velvet anchor tiger honey\n", "mnemonic"),
            ("set imap_user = \"ana@example.org\"\nset imap_pass = \"lantern-Fog-71\"\nset folder = \"imaps://imap.example.org/\"\nset realname = \"Ana\"\n", "settings holding a credential"),
            ("poll imap.example.org protocol IMAP\n  user \"ana\" there with password \"lantern-Fog-71\" is \"ana\" here\n  ssl\n", "settings holding a credential"),
            // Written for this test: an Arduino `secrets.h` and a game server's `.cfg`.
            ("#define SECRET_SSID \"Floor\"\n#define SECRET_PASS \"Rq7vLm2Xz9Tn\"\n", "settings holding a credential"),
            ("hostname = \"Friday Ops\";\npassword = \"Rq7vLm2Xz9Tn!\";\nmaxPlayers = 32;\n", "settings holding a credential"),
        ] {
            assert_eq!(credential_format(text), Some(format), "{text}");
        }
        for text in [
            "4F36C3A7E075BA6452D10EEB81E7F189FF489B74\n",
            "Sphinx>=1.7.3,!=1.8.0\nsphinx_rtd_theme>=0.3.0\n",
            "v18.17.0\n",
            "import os\nimport sys\n\nTOKEN = \"lantern-Fog-71\"\nprint(TOKEN)\n",
            "[1, 2, 3, 4]\n",
            &format!("[{}]\n", vec!["0"; 64].join(", ")),
            "name,version,license\nserde,1.0.200,MIT\n",
            "# test vectors\n1.2.3\n1.2.4\n1.3.0\n2.0.0\n",
            "the quick brown fox jumps over the lazy dog\n",
            "id,password_min_length,password_max_length\n1,8,64\n",
            "_BW_6Hg_Gl\n",
            "{\"name\": \"shop\", \"version\": \"1.0.0\", \"private\": true}\n",
            "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n-----END CERTIFICATE-----\n",
        ] {
            assert_eq!(credential_format(text), None, "{text}");
        }
    }

    #[test]
    fn project_settings_with_a_credential_keep_their_completions() {
        // Mostly about the build, not the connection, and longer than a login's settings:
        // redacted, not excluded.
        let build = "name: shop\nversion: 1.4.2\nimage: shop/web\nreplicas: 3\nmemory: 512Mi\n\
                     cpu: 250m\nlog_level: info\nfeature_flags: on\ntimeout: 30\nretries: 3\n\
                     workers: 4\ncache: redis\nmode: prod\nopt1: a\nopt2: b\nopt3: c\nopt4: d\n\
                     opt5: e\nopt6: f\nopt7: g\nopt8: h\nopt9: i\nopt10: j\nopt11: k\nopt12: l\n\
                     db_password: Kq9!vTz2pL8wRe\n";
        assert_eq!(credential_format(build), None);
        // Twelve lines or fewer: the credential is what such a file is for, whatever else
        // it sets (a tool's client file: `sasl.password=` among its broker settings).
        let short = "name: shop\nversion: 1.4.2\nimage: shop/web\nreplicas: 3\nmemory: 512Mi\n\
                     cpu: 250m\nlog_level: info\nfeature_flags: on\ndb_password: Kq9!vTz2pL8wRe\n";
        assert_eq!(
            credential_format(short),
            Some("settings holding a credential")
        );
        // A one-line image, large: its path data is not a credential file.
        let svg = format!(
            "<svg viewBox=\"0 0 9 9\"><path d=\"{}\"/></svg>",
            "M1.5 2.25h3.75v4.5zm".repeat(40)
        );
        assert_eq!(credential_format(&svg), None);
        // No credential found: settings only.
        assert_eq!(
            credential_format("[conn]\nhost = db\nuser = loader\nport = 5432\n"),
            None
        );
    }
}
