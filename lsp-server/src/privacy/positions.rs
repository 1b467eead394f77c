//! Credentials found by where they stand rather than by what they are called: string
//! arguments of calls whose callee says auth, login, credential, connect, basic, bearer,
//! client, token, ... (`Client(sid, "…")`, `SetBasicAuth("ci", "…")`, `.bearer_auth("…")`,
//! `session.auth = ("u", "…")`); values of Kubernetes `Secret` `data:`/`stringData:` blocks; and
//! the rest of a string concatenation whose first piece was a secret (`"ghp_…" + "…"`).
//! Command-line flags, SQL password clauses and Dockerfile/compose forms are rows of the rule
//! table (`rules.rs`), which has the pattern machinery for them.
//!
//! A value in such a position must still look like a credential (`rules::credential_like`):
//! a user name, a URL or a word beside it is left alone.

use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

use super::rules;

/// Parts of a callee's name that make its string arguments credentials. Matched as
/// (case-insensitive) substrings, then judged on the callee's words.
const CALLEE_HINTS: &[&str] = &[
    "auth",
    "login",
    "logon",
    "credential",
    "connect",
    "basic",
    "bearer",
    "client",
    "token",
    "secret",
    "passw",
    "session",
    "jwt",
    "sign",
    "hmac",
    "crypt",
    "cipher",
    "apikey",
    "api_key",
    "fernet",
    "key",
    "aes",
    // Key material decoded from a literal (`bytes.fromhex("…")`, `hex.DecodeString("…")`).
    "decode",
    "fromhex",
    "unhexlify",
    "hex2bin",
    "atob",
    // LDAP binds (`simple_bind_s(dn, "…")`, `bind(dn, "…")`).
    "bind",
    // A network joined with its password (`WiFi.begin(ssid, pw)`, `wlan.connect(ssid, pw)`) and
    // mail or file servers logged into by position (`FtpClient(host, user, pw)`).
    "wifi",
    "wlan",
    "ftp",
    "smtp",
    "imap",
    // A wallet restored from its words (`Wallet.fromPhrase("…")`, `mnemonicToSeed("…")`).
    "phrase",
    "mnemonic",
];

static HINTS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(CALLEE_HINTS)
        .expect("hints")
});

/// Words of a callee whose every argument is the credential (`bearer_auth(v)`, `setPassword(v)`).
const VALUE_WORDS: &[&str] = &[
    "bearer",
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "apikey",
    "passphrase",
];
/// Words whose second and later arguments are (`Client(sid, token)`, `login(user, pw)`).
const POSITION_WORDS: &[&str] = &[
    "auth",
    "authenticate",
    "authorization",
    "login",
    "logon",
    "signin",
    "credential",
    "credentials",
    "creds",
    "connect",
    "connection",
    "basic",
    "client",
    "session",
    "jwt",
    "sign",
    "hmac",
    "cipher",
    "encrypt",
    "decrypt",
    "crypt",
    "bearer",
    "token",
    "password",
    "secret",
];
/// Words of a callee that takes key material (`Fernet(key)`, `Keys.hmacShaKeyFor(secret)`,
/// `AES.new(key)`): its random-looking literal arguments, in any position, are keys.
const KEY_WORDS: &[&str] = &[
    "fernet",
    "hmac",
    "cipher",
    "aes",
    "key",
    "keys",
    "secret",
    "signing",
    "sign",
    "signed",
    "crypt",
    "encrypt",
    "decrypt",
    "jwt",
    "nacl",
    "secretbox",
];

/// Callees that are an authentication verb alone (`red:auth(pw)`, `client.login(token)`): a
/// call with one argument hands over the credential itself.
const AUTH_VERBS: &[&str] = &["auth", "authenticate", "login", "logon", "signin"];

/// First words of a callee that reads or names a credential rather than taking one.
const READER_WORDS: &[&str] = &[
    "get", "read", "load", "fetch", "find", "lookup", "parse", "is", "has", "validate", "check",
    "verify", "next", "peek", "expect", "assert", "mock", "print", "log", "format", "describe",
    "test", "should", "it",
];

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The callee containing the hint at `at`: its whole path (`requests.auth.HTTPBasicAuth`), the
/// start of its last part, and where its `(` is; `None` when no call or parenthesised tuple
/// follows (`auth = (`, `new Client(`, `Client::new(`).
fn callee_at(text: &str, at: usize) -> Option<(Range<usize>, usize, usize)> {
    let bytes = text.as_bytes();
    let mut start = at;
    while start > 0 && is_ident(bytes[start - 1]) {
        start -= 1;
    }
    let mut end = at;
    while end < bytes.len() && is_ident(bytes[end]) {
        end += 1;
    }
    // `Credentials::new(`, `requests.auth.HTTPBasicAuth(`: the path's last part too.
    let mut call_end = end;
    let mut last_start = start;
    loop {
        let rest = &text[call_end..];
        let sep = if rest.starts_with("::") {
            2
        } else if rest.starts_with('.') {
            1
        } else {
            break;
        };
        let mut e = call_end + sep;
        while e < bytes.len() && is_ident(bytes[e]) {
            e += 1;
        }
        if e == call_end + sep || e - call_end > 64 {
            break;
        }
        last_start = call_end + sep;
        call_end = e;
    }
    let mut pos = call_end;
    // A quoted key (`'auth' => [`, `"auth": (`).
    // A quoted key (`'auth' => [`, `"auth": (`) that says it holds a login, not a lexer's or a
    // decoder's name in a table (`'BashSessionLexer': (`, `"vae_decoder": [`).
    let quoted_key = start > 0
        && call_end == end
        && matches!(bytes[start - 1], b'"' | b'\'')
        && bytes.get(end) == Some(&bytes[start - 1]);
    if quoted_key {
        let words = rules::name_words(&text[start..end]);
        if !words.iter().any(|w| {
            matches!(
                w.as_str(),
                "auth" | "credentials" | "creds" | "login" | "basic"
            )
        }) {
            return None;
        }
        pos += 1;
    }
    while pos < bytes.len() && (bytes[pos] == b' ' || bytes[pos] == b'\t') {
        pos += 1;
    }
    // `auth = (…)` / `auth: (…)` / `'auth' => […]`: a tuple assigned to the name.
    if pos < bytes.len() && (bytes[pos] == b'=' || bytes[pos] == b':') && call_end == end {
        let mut p = pos + 1;
        if bytes.get(p) == Some(&b'>') {
            p += 1;
        }
        while p < bytes.len() && (bytes[p] == b' ' || bytes[p] == b'\t') {
            p += 1;
        }
        if p < bytes.len() && (bytes[p] == b'(' || bytes[p] == b'[') {
            return Some((start..end, start, p));
        }
        return None;
    }
    // Generic arguments: `Client::<T>(`, `make<Auth>(`.
    if pos < bytes.len() && bytes[pos] == b'<' {
        let close = text[pos..].find('>').filter(|&i| i < 80)?;
        pos += close + 1;
    }
    if pos < bytes.len() && bytes[pos] == b'(' {
        return Some((start..call_end, last_start, pos));
    }
    // A call without parentheses (Ruby, Perl, shell functions: `req.basic_auth "u", "…"`):
    // string arguments after a blank, when the callee has a receiver or opens its line (so
    // that a word in prose followed by a quotation is not taken for a call).
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let opens_line = text[line_start..start].trim().is_empty();
    let has_receiver = last_start != start || text[..start].ends_with(['.', ':']);
    (pos > call_end
        && pos < bytes.len()
        && matches!(bytes[pos], b'"' | b'\'')
        && (has_receiver || opens_line))
        .then_some((start..call_end, last_start, call_end))
}

/// String literals of the argument list opening at `open`, each with its top-level argument
/// index: `(content range, index)`.
pub(super) fn literal_args(text: &str, open: usize) -> Vec<(Range<usize>, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    // Without parentheses (`callee_at`) the arguments run to the end of the line.
    let bracketed = bytes
        .get(open)
        .is_some_and(|b| matches!(b, b'(' | b'[' | b'{'));
    let mut depth = usize::from(!bracketed);
    let mut arg = 0;
    let mut at = open;
    let limit = (open + 2000).min(bytes.len());
    while at < limit {
        let b = bytes[at];
        match b {
            b'\n' if !bracketed && depth == 1 => break,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => arg += 1,
            b'"' | b'\'' | b'`' => {
                let quote = b;
                let start = at + 1;
                let mut end = start;
                while end < limit && bytes[end] != quote && bytes[end] != b'\n' {
                    if bytes[end] == b'\\' {
                        end += 1;
                    }
                    end += 1;
                }
                if end >= limit || bytes[end] != quote {
                    break;
                }
                // An argument or a tuple in one (`auth=("u", "…")`), not the literals of a
                // callback's body (`.bind("ev", function() { $("#box") })`).
                if depth <= 2 {
                    out.push((start..end, arg));
                }
                at = end;
            }
            b';' if depth <= 1 => break,
            _ => {}
        }
        at += 1;
    }
    out
}

/// Secrets passed to calls whose callee says it takes credentials.
fn call_spans(text: &str, out: &mut Vec<Range<usize>>) {
    let mut done = 0;
    for hint in HINTS.find_iter(text) {
        if hint.start() < done {
            continue;
        }
        let Some((callee, last_start, open)) = callee_at(text, hint.start()) else {
            continue;
        };
        done = callee.end;
        // The last part names the call; the receiver only for constructors and the like
        // (`Credentials::new`, `jwt.encode`), not for methods of a client (`self.client.get`).
        let last_part = &text[last_start..callee.end];
        let mut words = if matches!(
            last_part.to_ascii_lowercase().as_str(),
            "new"
                | "create"
                | "from"
                | "with"
                | "build"
                | "of"
                | "init"
                | "encode"
                | "sign"
                | "open"
        ) {
            rules::name_words(&text[callee.clone()])
        } else {
            rules::name_words(last_part)
        };
        // A version or variant number is not a word of its own: `OAuth1` says auth,
        // `Hmac256Signer` says hmac.
        for word in words.iter_mut() {
            while word.len() > 1 && word.ends_with(|c: char| c.is_ascii_digit()) {
                word.pop();
            }
        }
        let reader = words
            .first()
            .is_some_and(|w| READER_WORDS.contains(&w.as_str()));
        let last = words.last().map(String::as_str).unwrap_or("");
        let api_key =
            words.len() >= 2 && words[words.len() - 2] == "api" && matches!(last, "key" | "token");
        let names_value = words
            .iter()
            .any(|w| w != "token" && VALUE_WORDS.contains(&w.as_str()))
            || last == "token";
        let key_material = words.iter().any(|w| KEY_WORDS.contains(&w.as_str()));
        let decodes = is_decoder(last_part);
        let first_arg = if (names_value || api_key) && !reader {
            Some(0)
        } else if reader && (names_value || api_key) {
            // `get_token("scope")`, `read_password("prompt")`: names and prompts, not values.
            None
        } else if ldap_bind(&words)
            || words.iter().any(|w| {
                POSITION_WORDS.contains(&w.as_str())
                    || w.starts_with("connect")
                    || w.ends_with("auth")
                    || w.ends_with("credential")
                    || w.ends_with("credentials")
            })
        {
            Some(1)
        } else {
            None
        };
        // `SecretString::from("…")`, `SecretStr("…")`, `SecureString("…")`: a type that
        // holds a secret, wrapped around a literal.
        let wrapper = !reader
            && words.first().is_some_and(|w| {
                matches!(
                    w.as_str(),
                    "secret" | "sensitive" | "secure" | "masked" | "redacted"
                )
            });
        // `WiFi.begin("ssid", "pw")`, `WiFiMulti.addAP`, MicroPython's `wlan.connect`.
        let joins_network = {
            let callee_lower = text[callee.clone()].to_ascii_lowercase();
            (callee_lower.contains("wifi") || callee_lower.contains("wlan"))
                && matches!(
                    last_part.to_ascii_lowercase().as_str(),
                    "begin" | "connect" | "addap" | "softap"
                )
        };
        let first_arg = if joins_network { Some(1) } else { first_arg };
        // Callees that take a user and then the user's password: the literal right after a
        // user's name is the password whatever it looks like (`NetworkCredential("u",
        // "PurpleRain")`, `smtp.PlainAuth("", "u@h", "CR7GOAT", "h")`); a protocol's client
        // (`FtpClient`, `SmtpClient`) only after a host named before the user.
        let takes_user_then_password = !reader
            && (joins_network
                || matches!(
                    last,
                    "credential"
                        | "credentials"
                        | "creds"
                        | "login"
                        | "logon"
                        | "signin"
                        | "password"
                        | "passwd"
                )
                || last.ends_with("auth"));
        let protocol_client = !reader
            && words.iter().any(|w| {
                matches!(
                    w.as_str(),
                    "ftp" | "sftp" | "ftps" | "smtp" | "imap" | "pop" | "pop3"
                )
            });
        let takes_words = !reader
            && words
                .iter()
                .any(|w| matches!(w.as_str(), "phrase" | "mnemonic"));
        if first_arg.is_none()
            && !key_material
            && !decodes
            && !wrapper
            && !takes_user_then_password
            && !protocol_client
            && !takes_words
        {
            continue;
        }
        // `auth("…")` with nothing else: its one argument is the credential.
        let sole = !reader
            && first_arg.is_some()
            && words.len() == 1
            && AUTH_VERBS.contains(&last)
            && single_argument(text, open);
        // `setPassword("…")`, `.password("…")`, `with_api_key("…")`: a setter, whose value is
        // judged as if assigned to the name (`password = "…"`).
        let setter = wrapper
            || !reader
                && first_arg == Some(0)
                && (VALUE_WORDS.contains(&last) || api_key)
                && last != "bearer"
                && (words.len() == 1
                    || api_key && words.len() == 2
                    || matches!(words[0].as_str(), "set" | "with" | "use"));
        let literals = literal_args(text, open);
        // Arguments or a pair (`("user", "pw")`), not a list of names (`"_login": ["login",
        // "logout", …]`).
        // Not a function's definition, whose comments' code spans are no arguments
        // (`fn auth(\n // the `HeaderMap` extractor`).
        let line_start = text[..callee.start].rfind('\n').map_or(0, |i| i + 1);
        let defines = text[line_start..callee.start]
            .split_whitespace()
            .last()
            .is_some_and(|w| matches!(w, "fn" | "def" | "function" | "func" | "sub" | "proc"));
        let argument_list = text.as_bytes()[open] == b'(' && literals.len() <= 5 && !defines;
        let mut host_seen = false;
        for (k, (literal, arg)) in literals.iter().cloned().enumerate() {
            let value = &text[literal.clone()];
            let previous = (k > 0).then(|| &text[literals[k - 1].0.clone()]);
            host_seen |= previous.is_some_and(is_host);
            let after_user = previous.is_some_and(is_user_name) && literals[k - 1].1 + 1 == arg;
            if after_user
                && argument_list
                && (takes_user_then_password || protocol_client && host_seen)
                && chosen_password(value)
            {
                out.push(literal);
                continue;
            }
            // Redis's `auth("…")`: its one argument is the password, whatever its look.
            if sole
                && last == "auth"
                && !(is_scope_name(value) && value.contains([':', '.']))
                && chosen_password(value)
                && !matches!(
                    value.to_ascii_lowercase().as_str(),
                    "basic" | "bearer" | "digest" | "oauth" | "token" | "none" | "ntlm"
                )
            {
                out.push(literal);
                continue;
            }
            if takes_words && is_mnemonic(value) {
                out.push(literal);
                continue;
            }
            let as_assigned = setter
                && arg == 0
                && text[open + 1..literal.start.saturating_sub(1)]
                    .trim()
                    .is_empty()
                && value.len() >= 6
                && !value.contains(char::is_whitespace)
                && !value.contains("://")
                && rules::value_is_secret_for(
                    rules::NameSays::Secret,
                    rules::Written::Quoted,
                    value,
                    last_part,
                );
            let by_position = (first_arg.is_some_and(|first| arg >= first)
                || wrapper && arg == 0
                || (sole && !is_scope_name(value)))
                && (rules::credential_like(value) || as_assigned);
            // A login or connect call's one random-looking argument is the token
            // (`bot.login("…")`), wherever it stands.
            let random_anywhere = if key_material {
                rules::looks_random(value)
            } else {
                first_arg.is_some() && random_token(value)
            };
            if by_position || (random_anywhere && !reader) || (decodes && decoded_key_like(value)) {
                out.push(literal);
            }
        }
    }
}

/// The base64 of a private key's DER without its armour, by the bytes every such key opens
/// with: PKCS#12 (`MII…IBAzCC`: version 3), PKCS#8 (`MII…IBADAN`), PKCS#1 RSA (`MII…IBAAKC`),
/// SEC1 EC (`MHcCAQEE`, `MIGkAgEBB`), Ed25519 PKCS#8 (`MC4CAQAwBQYDK2Vw`). A certificate
/// (`MII…CCA`) is public and opens otherwise.
static DER_PRIVATE_KEY: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"MII[A-Za-z0-9+/]{3}IBA(?:zCC|DAN|AKC)|MHcCAQEE|MIGkAgEBB|MC4CAQAwBQYDK2Vw")
        .expect("valid")
});

/// The whole base64 run from a DER private key's start: over the lines that continue it (a
/// YAML block scalar, a wrapped `.env` value), each of base64 characters only.
fn der_private_key_spans(text: &str, out: &mut Vec<Range<usize>>) {
    if !text.contains("MI") && !text.contains("MC4C") {
        return;
    }
    let is_b64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
    let bytes = text.as_bytes();
    for found in DER_PRIVATE_KEY.find_iter(text) {
        if found.start() > 0 && is_b64(bytes[found.start() - 1]) {
            continue;
        }
        let mut end = found.end();
        loop {
            while end < bytes.len() && is_b64(bytes[end]) {
                end += 1;
            }
            // The next line continues the run when it is base64 alone (after its indent).
            let rest = &text[end..];
            let Some(line) = rest
                .strip_prefix('\n')
                .or_else(|| rest.strip_prefix("\r\n"))
            else {
                break;
            };
            let newline = rest.len() - line.len();
            let body = line.trim_start_matches([' ', '\t']);
            let run = body.bytes().take_while(|&b| is_b64(b)).count();
            let line_end = body[run..].starts_with(['\n', '\r']) || run == body.len();
            if run < 16 || !line_end {
                break;
            }
            end += newline + (line.len() - body.len()) + run;
        }
        out.push(found.start()..end);
    }
}

/// The BIP-39 English word list (`rules/bip39/`).
static BIP39: LazyLock<std::collections::HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../rules/bip39/english.txt")
        .split_whitespace()
        .collect()
});

/// A wallet's recovery phrase wherever it stands (a runbook's quote, a comment, a fixture):
/// twelve or more BIP-39 words in a row, nine of them different. Prose is never only these
/// words (the list has no `the`, `a`, `of`, `to`, `is`); `long long long …` repeats one.
fn bip39_phrase_spans(text: &str, out: &mut Vec<Range<usize>>) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start_of_line = offset;
        offset += line.len();
        if line.bytes().filter(|&b| b == b' ').count() < 11 {
            continue;
        }
        // Runs of lower-case words of 3 to 8 letters, by byte range.
        let mut run: Vec<Range<usize>> = Vec::new();
        let mut flush = |run: &mut Vec<Range<usize>>| {
            if run.len() >= 12 {
                let words: Vec<&str> = run.iter().map(|r| &line[r.clone()]).collect();
                let mut at = 0;
                while at < words.len() {
                    let mut end = at;
                    while end < words.len() && BIP39.contains(words[end]) {
                        end += 1;
                    }
                    let distinct: std::collections::HashSet<&&str> =
                        words[at..end].iter().collect();
                    if end - at >= 12 && distinct.len() >= 9 {
                        out.push(start_of_line + run[at].start..start_of_line + run[end - 1].end);
                    }
                    at = end + 1;
                }
            }
            run.clear();
        };
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_lowercase() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
                let mut j = i;
                while j < bytes.len() && bytes[j].is_ascii_lowercase() {
                    j += 1;
                }
                let word_ends = j == bytes.len() || !bytes[j].is_ascii_alphanumeric();
                let joined = run
                    .last()
                    .is_none_or(|last| line[last.end..i].bytes().all(|b| b == b' ' || b == b'\t'));
                if word_ends && (3..=8).contains(&(j - i)) {
                    if !joined {
                        flush(&mut run);
                    }
                    run.push(i..j);
                } else {
                    flush(&mut run);
                }
                i = j;
            } else {
                if !(bytes[i] == b' ' || bytes[i] == b'\t') {
                    flush(&mut run);
                }
                i += 1;
            }
        }
        flush(&mut run);
    }
}

/// A wallet's words: 12 to 24 lower-case words of letters.
fn is_mnemonic(value: &str) -> bool {
    let words: Vec<&str> = value.split_whitespace().collect();
    (12..=24).contains(&words.len())
        && words
            .iter()
            .all(|w| w.len() >= 3 && w.bytes().all(|b| b.is_ascii_lowercase()))
}

const FIELD_TYPING: &[&str] = &[
    ".typeText(",
    ".type(",
    ".fill(",
    ".send_keys(",
    ".sendKeys(",
    ".setValue(",
    ".enterText(",
    ".typeInto(",
];

static TYPING: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .build(FIELD_TYPING)
        .expect("typing calls")
});

/// Text typed into a password field by a UI test (`secureTextFields["Password"].typeText("…")`,
/// `cy.get("#password").type("…")`, `page.fill("#password", "…")`,
/// `driver.find_element(By.ID, "pwd").send_keys("…")`): the field is named on the line before
/// the call; the typed literal is the password whatever its look.
fn password_field_spans(text: &str, out: &mut Vec<Range<usize>>) {
    for call in TYPING.find_iter(text) {
        let line_start = text[..call.start()].rfind('\n').map_or(0, |i| i + 1);
        let open = call.end() - 1;
        let close = text[open..]
            .find(['\n', ';'])
            .map_or(text.len(), |i| open + i);
        let field = text[line_start..close].to_ascii_lowercase();
        if ![
            "password",
            "passwd",
            "pwd",
            "passcode",
            "securetext",
            "secure_text",
        ]
        .iter()
        .any(|w| field.contains(w))
        {
            continue;
        }
        for (literal, _) in literal_args(text, open) {
            let value = &text[literal.clone()];
            let lower = value.to_ascii_lowercase();
            let names_field = lower.contains("pass")
                || lower.contains("pwd")
                || value.starts_with(['#', '.', '[', '/'])
                || value.contains('=');
            if !names_field && chosen_password(value) {
                out.push(literal);
            }
        }
    }
}

/// A user's name as a call takes it: a login (`pacs-upload`, `svc_backup`), an e-mail address,
/// a network's name (`QSL-Floor`); not a host, a URL, a path or a sentence. Empty counts (an
/// identity left out: `PlainAuth("", user, pw, host)` has its user after it).
fn is_user_name(value: &str) -> bool {
    value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '\\' | '+'))
        && (value.contains('@') || !is_host(value))
}

/// `smtp.example.com`, `10.0.0.5`, `localhost`: a host's name or address.
fn is_host(value: &str) -> bool {
    value.eq_ignore_ascii_case("localhost")
        || value.contains('.')
            && !value.contains('@')
            && value.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
}

/// A password a person chose, in the place a password goes: anything but a reference, a
/// field's name, a host, a URL, a path, an e-mail address or a sentence, four characters or
/// more (`PurpleRain`, `rhfcfdbwf`, `el gato negro duerme 4`).
fn chosen_password(value: &str) -> bool {
    let words = value.split_whitespace().count();
    (4..=128).contains(&value.len())
        && words <= 8
        && !rules::is_reference_or_flag(value)
        && !rules::is_key_name(value)
        && !is_host(value)
        && !value.contains("://")
        && !(value.contains('/')
            && value.split('/').all(|part| {
                part.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c))
            }))
        && !value.contains('%')
        && !(value.contains('@')
            && value.rsplit('@').next().is_some_and(|d| d.contains('.'))
            && words == 1)
        && !(words > 1 && rules::is_prose(value))
}

/// Whether the argument list opening at `open` holds one argument (no top-level comma).
fn single_argument(text: &str, open: usize) -> bool {
    let bytes = text.as_bytes();
    if bytes.get(open) != Some(&b'(') {
        return false;
    }
    let mut depth = 0usize;
    let mut quote = None;
    for &b in &bytes[open..(open + 2000).min(bytes.len())] {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' | b'`' => quote = Some(b),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return true;
                    }
                }
                b',' if depth == 1 => return false,
                _ => {}
            },
        }
    }
    false
}

/// `read:users`, `admin.write`: a scope or role name, not a password.
fn is_scope_name(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphabetic() || matches!(b, b':' | b'.' | b'_' | b'-'))
}

/// An LDAP bind (`bind(dn, "…")`, `simple_bind_s(dn, "…")`), not `bind_input(name, …)`.
fn ldap_bind(words: &[String]) -> bool {
    words.iter().any(|w| w == "bind")
        && words
            .iter()
            .all(|w| matches!(w.as_str(), "bind" | "simple" | "sasl" | "ldap" | "s"))
}

/// A callee that decodes text into bytes: `fromhex`, `unhexlify`, `DecodeString`,
/// `b64decode`, `hex::decode`, `atob`, `hex2bin`.
fn is_decoder(last_part: &str) -> bool {
    let lower = last_part.to_ascii_lowercase().replace('_', "");
    lower.contains("decode")
        || lower.contains("fromhex")
        || lower.contains("unhexlify")
        || lower == "hex2bin"
        || lower == "atob"
}

/// A literal decoded into bytes is key material when it is random and at least 16 bytes
/// (32 hex digits, 22 base64 characters): shorter ones are test data and magic numbers.
fn decoded_key_like(value: &str) -> bool {
    let hex = value.bytes().all(|b| b.is_ascii_hexdigit());
    rules::looks_random(value) && value.len() >= if hex { 32 } else { 22 }
}

/// `"…".toCharArray()`: Java APIs take passwords as `char[]` (`KeyStore.load`,
/// `PBEKeySpec`, `createCredential`), so a literal turned into one is a password.
fn char_array_spans(text: &str, out: &mut Vec<Range<usize>>) {
    const CALL: &str = ".toCharArray()";
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(found) = text[from..].find(CALL) {
        let at = from + found;
        from = at + CALL.len();
        if at == 0 || !matches!(bytes[at - 1], b'"' | b'\'') {
            continue;
        }
        let quote = bytes[at - 1] as char;
        let line_start = text[..at - 1].rfind('\n').map_or(0, |i| i + 1);
        let Some(open) = text[line_start..at - 1].rfind(quote) else {
            continue;
        };
        let literal = line_start + open + 1..at - 1;
        if rules::credential_like(&text[literal.clone()]) {
            out.push(literal);
        }
    }
}

/// Markers of a connection string (`mysql:host=…;dbname=…`, `Data Source=…`, `jdbc:…`, a
/// database URL) in a call's arguments: the credential-looking literals after it are the
/// user's password (`new PDO(dsn, "user", "…")`, `DriverManager.getConnection(url, u, "…")`).
const DSN_MARKERS: &[&str] = &[
    "host=",
    "dbname=",
    "data source=",
    "server=",
    "jdbc:",
    "mysql:",
    "pgsql:",
    "sqlsrv:",
    "oci:",
    "odbc:",
    "postgres://",
    "postgresql://",
    "mongodb://",
    "mongodb+srv://",
    "redis://",
    "amqp://",
    "amqps://",
    "ldap://",
    "ldaps://",
    "ftp://",
    "sftp://",
];

static DSNS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(DSN_MARKERS)
        .expect("dsn markers")
});

/// The unclosed `(` before `at`, within a few lines.
fn open_paren_before(bytes: &[u8], at: usize) -> Option<usize> {
    let floor = at.saturating_sub(400);
    let mut depth = 0usize;
    let mut pos = at;
    while pos > floor {
        pos -= 1;
        match bytes[pos] {
            b')' | b']' | b'}' => depth += 1,
            b'(' | b'[' | b'{' if depth > 0 => depth -= 1,
            b'(' => return Some(pos),
            b'[' | b'{' | b';' => return None,
            _ => {}
        }
    }
    None
}

fn connection_call_spans(text: &str, out: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    let mut done = Vec::new();
    for marker in DSNS.find_iter(text) {
        let Some(open) = open_paren_before(bytes, marker.start()) else {
            continue;
        };
        if done.contains(&open) {
            continue;
        }
        done.push(open);
        let literals = literal_args(text, open);
        let Some(dsn_arg) = literals
            .iter()
            .find(|(l, _)| l.start <= marker.start() && marker.end() <= l.end)
            .map(|(_, arg)| *arg)
        else {
            continue;
        };
        for (literal, arg) in literals {
            if arg > dsn_arg && rules::credential_like(&text[literal.clone()]) {
                out.push(literal);
            }
        }
    }
}

/// A token in a URL's path or query (`https://api.example/bot123:AAx…/send`,
/// `/hooks/T0/B0/xYz…`): a part of 20+ token characters that looks random and is not hex
/// alone (commit hashes and digests in links are not secrets). The whole segment goes, but a
/// leading word before digits (`bot`).
fn url_path_spans(text: &str, out: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let scheme_end = from + found;
        let mut end = scheme_end + 3;
        while end < bytes.len()
            && !bytes[end].is_ascii_whitespace()
            && !matches!(bytes[end], b'"' | b'\'' | b'`' | b'<' | b'>' | b')' | b'\\')
        {
            end += 1;
        }
        from = end.max(scheme_end + 3);
        // A token as the whole user part (`https://<key>@o1.ingest.example/2`, `https://<pat>@host`).
        let authority_end = text[scheme_end + 3..end]
            .find('/')
            .map_or(end, |i| scheme_end + 3 + i);
        if let Some(at) = text[scheme_end + 3..authority_end].rfind('@') {
            let user = &text[scheme_end + 3..scheme_end + 3 + at];
            let hex = user.bytes().all(|b| b.is_ascii_hexdigit());
            let web = text[..scheme_end].ends_with("http") || text[..scheme_end].ends_with("https");
            if web
                && !user.contains(':')
                && (random_token(user) || (rules::looks_random(user) && (!hex || user.len() >= 32)))
            {
                out.push(scheme_end + 3..scheme_end + 3 + at);
            }
        }
        let Some(path) = text[scheme_end + 3..end].find('/') else {
            continue;
        };
        let path_start = scheme_end + 3 + path + 1;
        let mut seg_start = path_start;
        let mut previous = "";
        for at in path_start..=end {
            if at < end && !matches!(bytes[at], b'/' | b'?' | b'&' | b'#' | b'=' | b',' | b';') {
                continue;
            }
            let segment = &text[seg_start..at];
            // A segment after one that says token (`conda.anaconda.org/t/<token>/`,
            // `/token/<token>`): 16+ characters with letters and digits.
            let named = matches!(
                previous.to_ascii_lowercase().as_str(),
                "t" | "token" | "tokens" | "apikey" | "api_key" | "api-key" | "access_token" | "secret"
            ) && segment.len() >= 16
                && segment.bytes().any(|b| b.is_ascii_digit())
                && segment.bytes().any(|b| b.is_ascii_alphabetic())
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                // Not a slug (`/t/cpython-3-12-greenlet-and-tracing/33144`: a forum topic).
                && segment
                    .split(['-', '_', '.'])
                    .filter(|part| part.len() >= 3 && part.bytes().all(|b| b.is_ascii_alphabetic()))
                    .count()
                    < 2;
            previous = segment;
            let random = named || random_token(segment);
            if random {
                let word = segment.bytes().take_while(u8::is_ascii_lowercase).count();
                let skip = if !named && segment.as_bytes().get(word).is_some_and(u8::is_ascii_digit)
                {
                    word
                } else {
                    0
                };
                out.push(seg_start + skip..at);
            }
            seg_start = at + 1;
        }
    }
}

/// A generated token rather than a slug, a digest or a version: 20+ characters that
/// `rules::looks_random`, with upper and lower case and digits, and letters beyond hex (a
/// commit hash with a suffix, `diff-4fc6…R48`, is not one) switching class often (words
/// with a digit, `Tutorial-1---Writing-Extensions`, do not).
fn random_token(part: &str) -> bool {
    // Words joined by separators (`Meta-Llama-3-8B-Instruct`, `Win32_Thread_Block`,
    // `LF+AI+Day`) are names: one piece between separators must be random by itself.
    part.len() >= 20
        && part
            .split(['-', '_', '+', '~', '.', '/', ':'])
            .any(|piece| piece.len() >= 16 && random_piece(piece))
}

fn random_piece(part: &str) -> bool {
    let count = |f: fn(&u8) -> bool| part.bytes().filter(f).count();
    let (upper, lower, digits) = (
        count(u8::is_ascii_uppercase),
        count(u8::is_ascii_lowercase),
        count(u8::is_ascii_digit),
    );
    let beyond_hex = count(|b| b.is_ascii_alphabetic() && !b.is_ascii_hexdigit());
    let class = |b: u8| {
        (
            b.is_ascii_uppercase(),
            b.is_ascii_lowercase(),
            b.is_ascii_digit(),
        )
    };
    let switches = part
        .as_bytes()
        .windows(2)
        .filter(|w| class(w[0]) != class(w[1]))
        .count();
    upper >= 2
        && lower >= 2
        && digits >= 2
        && beyond_hex * 4 >= part.len()
        && switches * 3 >= part.len()
        && rules::looks_random(part)
}

static BYTE_ARRAY: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"(?i)(?P<name>[A-Za-z0-9_]*(?:key|secret|salt|pass|token)[A-Za-z0-9_]*)[^=\r\n]{0,60}=[ \t]*[^\r\n]{0,20}?(?P<bytes>(?:\\x[0-9a-f]{2}){16,}|(?:0x[0-9a-f]{2}[ \t]*,[ \t]*){15,}0x[0-9a-f]{2})",
    )
    .expect("valid")
});

/// 16 or more small integers in brackets: key bytes written in decimal (`[u8; 32] = [199, 176,
/// …]`, PowerShell's `-Key (43,29,…)`, an OTP export's `"secret":[94,39,-21,…]`).
static DECIMAL_BYTES: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"[\[({][ \t\r\n]*(?P<bytes>-?[0-9]{1,3}(?:[ \t]*,[ \t\r\n]*-?[0-9]{1,3}){15,})",
    )
    .expect("valid")
});

/// Key bytes in decimal under a name on the line before the bracket that says or may say
/// secret; the bytes must be bytes (−128..255) and varied (not a table counting up).
fn decimal_bytes_spans(text: &str, out: &mut Vec<Range<usize>>) {
    for found in DECIMAL_BYTES.captures_iter(text) {
        let whole = found.get(0).expect("match");
        let bytes = found.name("bytes").expect("group");
        let values: Vec<i32> = bytes
            .as_str()
            .split(',')
            .filter_map(|v| v.trim().parse().ok())
            .collect();
        if values.iter().any(|v| !(-128..=255).contains(v)) {
            continue;
        }
        let mut distinct = values.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let steps: Vec<i32> = values.windows(2).map(|w| w[1] - w[0]).collect();
        let counting = steps.windows(2).filter(|w| w[0] == w[1]).count() * 2 > steps.len();
        if distinct.len() * 2 < values.len() || counting {
            continue;
        }
        let line_start = text[..whole.start()].rfind('\n').map_or(0, |i| i + 1);
        let before = &text[text
            .floor_char_boundary(whole.start().saturating_sub(80))
            .max(line_start)..whole.start()];
        let named = before
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .filter(|word| !word.is_empty())
            .any(|word| {
                let word = word.trim_start_matches('-');
                rules::name_says(word) != rules::NameSays::No
                    && !word.to_ascii_lowercase().contains("public")
            });
        if named {
            out.push(bytes.range());
        }
    }
}

/// Key material written as 16+ bytes (`KEY = b"\x9f\x8e…"`, `const KEY: [u8; 32] = [0x9f, …]`)
/// under a name that says or may say secret (`KEY`, `hmac_secret`; not `PUBLIC_KEY`).
fn byte_array_spans(text: &str, out: &mut Vec<Range<usize>>) {
    if !text.contains("\\x") && !text.contains("0x") {
        return;
    }
    for found in BYTE_ARRAY.captures_iter(text) {
        if rules::name_says(&found["name"]) != rules::NameSays::No {
            if let Some(bytes) = found.name("bytes") {
                out.push(bytes.range());
            }
        }
    }
}

static INSERT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"(?i)(?-u:\b)INSERT\s+INTO\s+[^\s(]+\s*\((?P<columns>[^)]{1,2000})\)\s*VALUES\s*",
    )
    .expect("valid")
});

/// SQL `INSERT INTO t (…, password, …) VALUES (…, '…', …)`: the literal in a column whose name
/// says secret, in every row of the `VALUES` list.
fn insert_spans(text: &str, out: &mut Vec<Range<usize>>) {
    if !text.contains("INSERT") && !text.contains("insert") {
        return;
    }
    for found in INSERT.captures_iter(text) {
        let columns: Vec<rules::NameSays> = found["columns"]
            .split(',')
            .map(|c| rules::name_says(c.trim().trim_matches(['"', '`', '[', ']'])))
            .collect();
        if !columns.contains(&rules::NameSays::Secret) {
            continue;
        }
        let mut at = found.get(0).map_or(text.len(), |m| m.end());
        let bytes = text.as_bytes();
        while at < bytes.len() && bytes[at] == b'(' {
            for (literal, arg) in literal_args(text, at) {
                let value = &text[literal.clone()];
                if columns.get(arg) == Some(&rules::NameSays::Secret)
                    && rules::value_is_secret(
                        rules::NameSays::Secret,
                        rules::Written::Quoted,
                        value,
                    )
                {
                    out.push(literal);
                }
            }
            // The next row: `), (`.
            let Some(close) = text[at..].find(')') else {
                break;
            };
            let rest = &text[at + close + 1..];
            let trimmed = rest.trim_start();
            let Some(next) = trimmed.strip_prefix(',') else {
                break;
            };
            at = text.len() - next.trim_start().len();
        }
    }
}

/// Last words of a name that holds several credentials (`integration_keys = { … }`,
/// `secrets:`): the values inside are credentials by position.
const COLLECTION_WORDS: &[&str] = &[
    "keys",
    "secrets",
    "tokens",
    "passwords",
    "credentials",
    "creds",
    "apikeys",
    // Only after `recovery`, `backup` (`holds_credentials`).
    "codes",
];

static COLLECTIONS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(COLLECTION_WORDS)
        .expect("collection words")
});

/// Each line of `text`: where it starts, its text without indentation or line break, and its
/// indentation.
fn indented_lines(text: &str) -> impl Iterator<Item = (usize, &str, usize)> {
    text.split_inclusive('\n').scan(0, |offset, line| {
        let start = *offset;
        *offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        Some((start, trimmed, body.len() - trimmed.len()))
    })
}

/// Values of a block opened under a name that says it holds credentials: an HCL/JSON/TOML
/// object (`api_keys = {`, `"secrets": {`), a YAML mapping (`credentials:` and deeper lines)
/// or an INI/TOML section (`[secrets]`). Each child value that looks like a credential
/// (`rules::credential_like`).
fn collection_spans(text: &str, out: &mut Vec<Range<usize>>) {
    if COLLECTIONS.find(text).is_none() {
        return;
    }
    list_spans(text, out);
    // (opener's indent, section, a bare `keys`/`tokens`: only generated values count)
    let mut block: Option<(usize, bool, bool)> = None;
    for (start, trimmed, indent) in indented_lines(text) {
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("//") {
            continue;
        }
        if let Some((open_indent, section, bare)) = block {
            let ends = if section {
                trimmed.starts_with('[')
            } else {
                indent <= open_indent
            };
            if !ends {
                if let Some(value) = child_value(trimmed) {
                    let at = start + indent + value.start;
                    let range = at..start + indent + value.end;
                    let value = &text[range.clone()];
                    let counts = if bare {
                        rules::looks_random(value) || rules::is_uuid(value)
                    } else {
                        rules::credential_like(value) || is_code(value)
                    };
                    if counts {
                        out.push(range);
                    }
                }
                continue;
            }
            block = None;
        }
        let section = trimmed.starts_with('[');
        if let Some(name) = block_opener(trimmed).filter(|_| !section || indent == 0) {
            let bare = matches!(name.to_ascii_lowercase().as_str(), "keys" | "tokens");
            if holds_credentials(name) || bare {
                block = Some((indent, section, bare));
            }
        }
    }
}

/// The `value` or `default` of a block named for a secret: an ARM parameters file's
/// `"adminPassword": { "value": "…" }`, CloudFormation's `DbPassword:` with `Default: …`,
/// Heroku's `app.json` env, Terraform's `variable "db_password" { default = "…" }`.
fn named_default_spans(text: &str, out: &mut Vec<Range<usize>>) {
    static CHILD: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#"(?i)["']?(?:value|default|defaultvalue)["']?[ \t]*[:=]"#)
            .expect("valid")
    });
    static VARIABLE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r#"^(?:variable|param|parameter|input)[ \t]+"([A-Za-z0-9_.-]+)"[ \t]*\{$"#,
        )
        .expect("valid")
    });
    if !CHILD.is_match(text) {
        return;
    }
    let mut open: Option<(usize, usize)> = None; // (opener's indent, lines left)
    for (start, trimmed, indent) in indented_lines(text) {
        if trimmed.is_empty() {
            continue;
        }
        if let Some((open_indent, left)) = open {
            if indent > open_indent && left > 0 {
                open = Some((open_indent, left - 1));
                let key = trimmed
                    .split([':', '='])
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches(['"', '\''])
                    .to_ascii_lowercase();
                if matches!(key.as_str(), "value" | "default" | "defaultvalue") {
                    if let Some(value) = child_value(trimmed) {
                        let range = start + indent + value.start..start + indent + value.end;
                        if rules::value_is_secret(
                            rules::NameSays::Secret,
                            rules::Written::Quoted,
                            &text[range.clone()],
                        ) {
                            out.push(range);
                        }
                    }
                }
                continue;
            }
            open = None;
        }
        let name = block_opener(trimmed).or_else(|| {
            VARIABLE
                .captures(trimmed.trim_end())
                .and_then(|c| c.get(1))
                .map(|m| m.as_str())
        });
        if name.is_some_and(|n| rules::name_says(n) == rules::NameSays::Secret) {
            open = Some((indent, 8));
        }
    }
}

/// The literals of a list assigned to a name that holds credentials (`recovery_codes = [`,
/// `"api_keys": [`, `tokens := []string{`): a credential each, or a code of digits.
fn list_spans(text: &str, out: &mut Vec<Range<usize>>) {
    static LIST: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r#"([A-Za-z_][A-Za-z0-9_]*)["']?[ \t]*(?::=|=|:)[ \t]*(?:\[\][A-Za-z]+|new [A-Za-z]+\[\]|Array|List\.of|listOf|arrayOf|vec!|%w)?[ \t]*[\[{(]"#,
        )
        .expect("list regex")
    });
    for found in LIST.captures_iter(text) {
        let (Some(name), Some(whole)) = (found.get(1), found.get(0)) else {
            continue;
        };
        if !holds_credentials(name.as_str()) {
            continue;
        }
        for (literal, _) in literal_args(text, whole.end() - 1) {
            // An element of the list, not a value of a map inside it (`[{'id': '…'}]`).
            let before = text[..literal.start - 1].trim_end();
            if !before.ends_with(['[', '(', '{', ',']) {
                continue;
            }
            let value = &text[literal.clone()];
            // Not a template (`layers.{bid}.embed`) or an identifier (`compiler_f77`).
            let identifier = value.contains('_')
                && value
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !identifier && !value.contains(['{', '}']) && rules::credential_like(value)
                || is_code(value)
            {
                out.push(literal);
            }
        }
    }
}

/// A name whose last word is a plural of credentials. `keys` and `tokens` alone are a
/// dictionary's keys and a lexer's tokens: they need a first word that makes the singular a
/// credential or may (`api_keys`, `integration_keys`; not `special_tokens`).
fn holds_credentials(name: &str) -> bool {
    let words = rules::name_words(name);
    let Some(last) = words.last().map(String::as_str) else {
        return false;
    };
    // One-time recovery and backup codes (`recovery_codes = [...]`).
    if words.len() >= 2
        && last == "codes"
        && matches!(
            words[words.len() - 2].as_str(),
            "recovery" | "backup" | "otp" | "mfa"
        )
    {
        return true;
    }
    if !COLLECTION_WORDS.contains(&last) || last == "codes" {
        return false;
    }
    if matches!(last, "keys" | "tokens") {
        let singular = name.trim_end_matches(['s', 'S']);
        return words.len() >= 2 && rules::name_says(singular) != rules::NameSays::No;
    }
    true
}

/// The name of a line that opens a block: `name = {`, `"name": {`, `name:` (YAML), `[name]`.
fn block_opener(line: &str) -> Option<&str> {
    let line = line.trim_end();
    if let Some(section) = line.strip_prefix('[') {
        // `[secrets]`, `[[api_keys]]`; not a list (`["a", *x.keys()]`).
        let name = section.strip_suffix(']')?.trim_matches(['[', ']', ' ']);
        return (!name.is_empty()
            && name
                .bytes()
                .all(|b| is_ident(b) || matches!(b, b'-' | b'.')))
        .then_some(name);
    }
    // `name = {`, `name: {`, HCL's `name {` (lower case: `ParKeys {` is a struct literal),
    // YAML's `name:`.
    let rest = line
        .strip_suffix('{')
        .map(str::trim_end)
        .and_then(|l| {
            l.strip_suffix(['=', ':']).or_else(|| {
                l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    .then_some(l)
            })
        })
        .or_else(|| line.strip_suffix(':'))?;
    let name = rest.trim().trim_matches(['"', '\'']);
    (!name.is_empty()
        && name
            .bytes()
            .all(|b| is_ident(b) || matches!(b, b'-' | b'.')))
    .then_some(name)
}

/// A one-time code of digits (`81726354`, `4821-0937`), in a collection of credentials.
fn is_code(value: &str) -> bool {
    value.len() >= 6 && value.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

/// The value of a `key = "v"`, `key: v`, `"key": "v",` or YAML `- v` line, as a range of
/// the line.
fn child_value(line: &str) -> Option<Range<usize>> {
    if let Some(item) = line.strip_prefix("- ") {
        let value = item.trim().trim_end_matches(',');
        let (skip, value) = match value.as_bytes().first() {
            Some(&q) if matches!(q, b'"' | b'\'') => (1, value[1..].split(q as char).next()?),
            _ => (0, value),
        };
        if value.is_empty() || value.contains([' ', ':', '=', '{', '[']) {
            return None;
        }
        let start = line.len() - item.len() + (item.len() - item.trim_start().len()) + skip;
        return Some(start..start + value.len());
    }
    let sep = line.find(['=', ':'])?;
    let key = line[..sep].trim().trim_matches(['"', '\'']);
    if key.is_empty() || !key.bytes().all(|b| is_ident(b) || matches!(b, b'-' | b'.')) {
        return None;
    }
    let rest = &line[sep + 1..];
    let value = rest.trim_start();
    let mut start = sep + 1 + (rest.len() - value.len());
    let value = value.trim_end().trim_end_matches(',').trim_end();
    let inner = match value.as_bytes().first() {
        Some(&q) if matches!(q, b'"' | b'\'') => {
            start += 1;
            value[1..].split(q as char).next().unwrap_or("")
        }
        // Unquoted: a literal of YAML or INI, not an expression (`f(x)`, `Set[str]`).
        _ if value.contains(['(', '[', '{', ' ']) => return None,
        _ => value,
    };
    (!inner.is_empty()).then(|| start..start + inner.len())
}

/// The values of a Kubernetes `Secret`'s `data:` and `stringData:` blocks (base64 or plain,
/// all of them secret by declaration).
fn kubernetes_secret_spans(text: &str, out: &mut Vec<Range<usize>>) {
    if !text.contains("kind:") || !text.contains("Secret") {
        return;
    }
    let mut in_block: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        let indent = body.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(block) = in_block {
            if indent > block {
                if let Some(colon) = trimmed.find(':') {
                    let value = trimmed[colon + 1..].trim();
                    let value = value.trim_matches(|c| c == '"' || c == '\'');
                    if !value.is_empty() && !matches!(value, "|" | ">" | "|-" | ">-") {
                        let at = start + indent + colon + 1;
                        if let Some(pos) = text[at..start + body.len()].find(value) {
                            out.push(at + pos..at + pos + value.len());
                        }
                    }
                } else if !trimmed.starts_with('-') {
                    // A block scalar's line.
                    out.push(start + indent..start + body.len());
                }
                continue;
            }
            in_block = None;
        }
        if matches!(trimmed, "data:" | "stringData:") {
            in_block = Some(indent);
        }
    }
}

/// A literal concatenated to a secret (`"ghp_…" + "…"`, PHP `.`, SQL `||`) is the rest of it.
pub fn extend_over_concatenation(text: &str, spans: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    let mut added = Vec::new();
    for span in spans.iter() {
        let mut end = span.end;
        for _ in 0..4 {
            let mut at = end;
            // The secret's closing quote.
            if at < bytes.len() && matches!(bytes[at], b'"' | b'\'' | b'`') {
                at += 1;
            } else {
                break;
            }
            while at < bytes.len() && (bytes[at] == b' ' || bytes[at] == b'\t') {
                at += 1;
            }
            let op = if text[at..].starts_with("||") || text[at..].starts_with("..") {
                2
            } else if at < bytes.len() && matches!(bytes[at], b'+' | b'.') {
                1
            } else {
                break;
            };
            at += op;
            while at < bytes.len() && matches!(bytes[at], b' ' | b'\t' | b'\n' | b'\r') {
                at += 1;
            }
            if at >= bytes.len() || !matches!(bytes[at], b'"' | b'\'' | b'`') {
                break;
            }
            let quote = bytes[at];
            let start = at + 1;
            let Some(close) = text[start..].find(quote as char) else {
                break;
            };
            if close == 0 || text[start..start + close].contains('\n') {
                break;
            }
            added.push(start..start + close);
            end = start + close;
        }
        // And the pieces before it (`"xoxb-" + "1234" + "<the random part>"`).
        let mut start = span.start;
        for _ in 0..4 {
            let Some(piece) = piece_before(text, start) else {
                break;
            };
            added.push(piece.clone());
            start = piece.start;
        }
    }
    spans.extend(added);
}

/// The literal concatenated just before the literal that holds `start` (a secret may begin
/// inside its literal: `"-" + "…"` redacted from the token's first letter).
fn piece_before(text: &str, start: usize) -> Option<Range<usize>> {
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let open = text[line_start..start].rfind(['"', '\'', '`'])? + line_start;
    if start - open > 64 || text[open + 1..start].contains(char::is_whitespace) {
        return None;
    }
    let before = text[..open].trim_end_matches([' ', '\t', '\n', '\r']);
    let before = before
        .strip_suffix("||")
        .or_else(|| before.strip_suffix(".."))
        .or_else(|| before.strip_suffix(['+', '.']))?
        .trim_end_matches([' ', '\t']);
    let quote = *before.as_bytes().last()?;
    if !matches!(quote, b'"' | b'\'' | b'`') {
        return None;
    }
    let close = before.len() - 1;
    let line_start = text[..close].rfind('\n').map_or(0, |i| i + 1);
    let opening = text[line_start..close].rfind(quote as char)? + line_start;
    (opening + 1 < close).then_some(opening + 1..close)
}

/// An opaque token beside a secret in the same call is its other half (an access key id
/// next to its secret, a Twilio SID next to its token): 16+ letters and digits, two digits at
/// least, or random-looking (`rules::looks_random`). Hosts, names and words are left.
fn sibling_is_secret(value: &str) -> bool {
    rules::looks_random(value)
        || (value.len() >= 16
            && value.bytes().all(|b| b.is_ascii_alphanumeric())
            && value.bytes().filter(u8::is_ascii_digit).count() >= 2
            && value.bytes().any(|b| b.is_ascii_alphabetic()))
}

/// For each span that is a string argument of a call, the call's other opaque-token
/// arguments (`sibling_is_secret`).
pub fn extend_to_sibling_arguments(text: &str, spans: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    let mut added = Vec::new();
    let mut done_calls = Vec::new();
    for span in spans.iter() {
        // The unclosed `(` before the span, on its line or the few before it.
        let floor = span.start.saturating_sub(400);
        let mut depth = 0usize;
        let mut at = span.start;
        let mut open = None;
        while at > floor {
            at -= 1;
            match bytes[at] {
                b')' | b']' | b'}' => depth += 1,
                b'(' | b'[' | b'{' if depth > 0 => depth -= 1,
                b'(' => {
                    open = Some(at);
                    break;
                }
                b'[' | b'{' | b';' => break,
                _ => {}
            }
        }
        let Some(open) = open else {
            continue;
        };
        if done_calls.contains(&open) {
            continue;
        }
        done_calls.push(open);
        let literals = literal_args(text, open);
        if !literals
            .iter()
            .any(|(l, _)| l.start <= span.start && span.end <= l.end)
        {
            continue;
        }
        for (literal, _) in literals {
            if sibling_is_secret(&text[literal.clone()]) {
                added.push(literal);
            }
        }
    }
    spans.extend(added);
}

/// Whether a literal under a name that `says` so is a credential: a credential-looking value
/// for a name that says secret, a random-looking one for a name that may.
fn secret_for(says: rules::NameSays, value: &str) -> bool {
    match says {
        rules::NameSays::Secret => rules::credential_like(value),
        rules::NameSays::Maybe => rules::looks_random(value),
        rules::NameSays::No => false,
    }
}

/// The literals that arms of the block opening at `open` (`{`) return: after `=>`, `->` or
/// `return`, at the block's own depth.
fn arm_literals(text: &str, open: usize) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut at = open;
    let limit = (open + 4000).min(bytes.len());
    while at < limit {
        match bytes[at] {
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b')' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            quote @ (b'"' | b'\'' | b'`') => {
                let start = at + 1;
                let Some(len) = text[start..limit].find(quote as char) else {
                    break;
                };
                let before = text[..at].trim_end();
                if depth == 1
                    && (before.ends_with("=>")
                        || before.ends_with("->")
                        || before.ends_with("return"))
                    && !text[start..start + len].contains('\n')
                {
                    out.push(start..start + len);
                }
                at = start + len;
            }
            _ => {}
        }
        at += 1;
    }
    out
}

/// The name a `match`/`when`/`switch` at `at` hands its value to: `NAME = match …`,
/// `let NAME: T = when …`, or the function whose body it opens (`fn NAME(…) -> T { match …`).
fn match_target(text: &str, at: usize) -> Option<&str> {
    let before = text[..at].trim_end();
    let last_ident = |s: &str| -> Option<Range<usize>> {
        let end = s.trim_end().len();
        let start = s[..end]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        (start < end).then_some(start..end)
    };
    if let Some(lhs) = before.strip_suffix('=') {
        if lhs.ends_with(['=', '!', '<', '>']) {
            return None;
        }
        let line_start = lhs.rfind('\n').map_or(0, |i| i + 1);
        let line = &lhs[line_start..];
        // `let api_key: &str`: the name before the type.
        let name_part = match line.find(':') {
            Some(colon) if !line[colon..].starts_with("::") => &line[..colon],
            _ => line,
        };
        let name = last_ident(name_part)?;
        return Some(&text[line_start + name.start..line_start + name.end]);
    }
    let body = before.strip_suffix('{')?;
    let line_start = body.rfind('\n').map_or(0, |i| i + 1);
    let line = &body[line_start..];
    let fn_at = line.find("fn ")?;
    let rest = &line[fn_at + 3..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let start = line_start + fn_at + 3;
    (end > 0).then(|| &text[start..start + end])
}

/// A `match`/`when`/`switch` whose value goes to a name that says secret (`let api_key = match
/// env { Prod => "…", … }`, `fn signing_key(env) -> &str { match env { … } }`): the literals
/// its arms return are that secret, one per case. Found by the keyword, then the name before
/// it (no regex: a pattern with the name's counted context cost a pass over every region).
fn match_arm_spans(text: &str, out: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    for keyword in ["match", "when", "switch"] {
        let mut from = 0;
        while let Some(found) = text[from..].find(keyword) {
            let at = from + found;
            from = at + keyword.len();
            let word = (at == 0 || !is_ident(bytes[at - 1]))
                && bytes.get(from).is_none_or(|b| !is_ident(*b));
            if !word {
                continue;
            }
            // Its block opens on the same line: `match env {`, `when (env) {`.
            let line_end = text[from..].find('\n').map_or(text.len(), |i| from + i);
            let Some(open) = text[from..line_end].find('{').map(|i| from + i) else {
                continue;
            };
            if open - from > 120 || text[from..open].contains(';') {
                continue;
            }
            let Some(name) = match_target(text, at) else {
                continue;
            };
            let says = rules::name_says(name);
            if says == rules::NameSays::No {
                continue;
            }
            for literal in arm_literals(text, open) {
                if secret_for(says, &text[literal.clone()]) {
                    out.push(literal);
                }
            }
        }
    }
}

static ENUM_OPENER: LazyLock<regex::Regex> = LazyLock::new(|| {
    // `enum Name {`, `enum Name implements X {` (on its line).
    regex::Regex::new(r"(?-u:\b)enum[ \t]+(?P<name>[A-Za-z_][A-Za-z0-9_]*)[^{;\r\n]*\{")
        .expect("valid")
});

/// The names of the parameters declared by `Name(params)` in `body` (an enum's constructor:
/// `Mailjet(String apiKey, String secretKey) {`), in order; empty when there is none.
fn constructor_parameters(body: &str, name: &str) -> Vec<String> {
    let mut from = 0;
    while let Some(found) = body[from..].find(name) {
        let at = from + found;
        from = at + name.len();
        let starts_word = at == 0 || !is_ident(body.as_bytes()[at - 1]);
        let rest = body[from..].trim_start();
        if !starts_word || !rest.starts_with('(') {
            continue;
        }
        let Some(close) = rest.find(')') else {
            continue;
        };
        // A declaration: a block follows the parameters.
        if !rest[close + 1..].trim_start().starts_with('{') {
            continue;
        }
        return rest[1..close]
            .split(',')
            .map(|param| {
                // `String apiKey`, `api_key: &str`, `final String key = "…"`: the name.
                let param = param.split('=').next().unwrap_or("");
                let param = param.split(':').next().unwrap_or("");
                param
                    .split(|c: char| !is_ident(c as u8) || !c.is_ascii())
                    .rfind(|w| !w.is_empty())
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
    }
    Vec::new()
}

/// An enum's constants built from literals (`PROD("…", "…"),`): each literal is judged by the
/// name of the constructor parameter it goes to (`secretKey`), or, without a constructor in
/// sight, by the enum's name (`enum ApiKeys`: random-looking literals).
fn enum_constant_spans(text: &str, out: &mut Vec<Range<usize>>) {
    if !text.contains("enum") {
        return;
    }
    for found in ENUM_OPENER.captures_iter(text) {
        let name = &found["name"];
        let open = found.get(0).map_or(0, |m| m.end() - 1);
        let body_end = (open + 8000).min(text.len());
        let mut body_end = body_end;
        while !text.is_char_boundary(body_end) {
            body_end -= 1;
        }
        let body = &text[open..body_end];
        let params: Vec<rules::NameSays> = constructor_parameters(body, name)
            .iter()
            .map(|p| rules::name_says(p))
            .collect();
        // `ApiKeys`, `Secrets`: the enum is named for one of its constants.
        let enum_says = match rules::name_says(name.strip_suffix('s').unwrap_or(name)) {
            rules::NameSays::No => rules::NameSays::No,
            _ => rules::NameSays::Maybe,
        };
        if enum_says == rules::NameSays::No && !params.iter().any(|p| *p != rules::NameSays::No) {
            continue;
        }
        // The constants: `NAME(` at the body's own depth, up to the first `;`.
        let bytes = text.as_bytes();
        let mut depth = 0usize;
        let mut at = open;
        while at < body_end {
            match bytes[at] {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                b';' if depth == 1 => break,
                b'(' if depth == 1 => {
                    for (literal, arg) in literal_args(text, at) {
                        let says = params.get(arg).copied().unwrap_or(enum_says);
                        if secret_for(says, &text[literal.clone()]) {
                            out.push(literal);
                        }
                    }
                    // Past the arguments.
                    let mut inner = 0usize;
                    while at < body_end {
                        match bytes[at] {
                            b'(' => inner += 1,
                            b')' => {
                                inner -= 1;
                                if inner == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        at += 1;
                    }
                }
                _ => {}
            }
            at += 1;
        }
    }
}

/// PuTTY's key file: the `Private-Lines: N` lines that follow the header are the key.
fn key_file_line_spans(text: &str, out: &mut Vec<Range<usize>>) {
    const HEADER: &str = "Private-Lines:";
    let mut from = 0;
    while let Some(found) = text[from..].find(HEADER) {
        let at = from + found;
        from = at + HEADER.len();
        let Some(line_end) = text[from..].find('\n').map(|i| from + i) else {
            break;
        };
        let Ok(count) = text[from..line_end].trim().parse::<usize>() else {
            continue;
        };
        let start = line_end + 1;
        let mut end = start;
        for _ in 0..count.min(64) {
            if end >= text.len() {
                break;
            }
            end = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
        }
        let body = text[start..end].trim_end();
        if body.len() >= 16
            && body.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n' | b'\r')
            })
        {
            out.push(start..start + body.len());
        }
    }
}

/// For each span that is a whole word of a command line (`mc alias set s3 URL <access>
/// <secret>`), the line's other opaque-token words (`sibling_is_secret`): the other half of a
/// key pair given positionally.
pub fn extend_to_sibling_words(text: &str, spans: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    let word_edge = |b: u8| b.is_ascii_whitespace() || matches!(b, b'"' | b'\'');
    let mut added = Vec::new();
    let mut done_lines = Vec::new();
    for span in spans.iter() {
        let whole_word = (span.start == 0 || word_edge(bytes[span.start - 1]))
            && (span.end >= bytes.len() || word_edge(bytes[span.end]));
        if !whole_word {
            continue;
        }
        let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[span.end..]
            .find('\n')
            .map_or(text.len(), |i| span.end + i);
        if done_lines.contains(&line_start) {
            continue;
        }
        done_lines.push(line_start);
        let line = &text[line_start..line_end];
        let words: Vec<(usize, &str)> = line
            .split([' ', '\t'])
            .scan(0usize, |at, word| {
                let start = *at;
                *at += word.len() + 1;
                Some((start, word))
            })
            .filter(|(_, w)| !w.is_empty())
            .collect();
        // A command: a bare word first, blanks between arguments, not code.
        if words.len() > 24
            || !words.first().is_some_and(|(_, w)| {
                w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            })
        {
            continue;
        }
        for (at, word) in words {
            let inner = word.trim_matches(['"', '\'']);
            if inner.is_empty() || inner.starts_with('-') || !sibling_is_secret(inner) {
                continue;
            }
            let start = line_start + at + word.find(inner).unwrap_or(0);
            added.push(start..start + inner.len());
        }
    }
    spans.extend(added);
}

/// The secrets found by position in `text` (not merged).
/// A function named for a secret that hands back a literal: `def bot_token(): yield "…"`
/// (a pytest fixture), `fn api_key() -> &'static str { "…" }`, `func (c) Password() string
/// { return "…" }`, `get apiKey() { return '…' }`. The name says what the literal is, as an
/// assignment's would.
static SECRET_FUNCTION: LazyLock<regex::Regex> = LazyLock::new(|| {
    // Matched right after the keyword (found by `FUNCTION_KEYWORDS`): a run of the regex
    // from every line's start cost 10 % of redaction per prompt region.
    regex::Regex::new(
        r#"^[ \t]+(?:\([^)\r\n]*\)[ \t]*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)[ \t]*\([^)\r\n]*\)[^\r\n{:=]*(?:[{:=])[ \t]*(?:\r?\n[ \t]*(?:#|//)[^\r\n]*)*(?:\r?\n[ \t]*)?(?:(?:return|yield)[ \t]+)?(?:String::from\(|r?)(?:"(?P<a>[^"\r\n\\]{6,})"|'(?P<b>[^'\r\n\\]{6,})'|`(?P<c>[^`\r\n\\$]{6,})`)"#,
    )
    .expect("valid")
});

static FUNCTION_KEYWORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::new(["def ", "fn ", "func ", "function ", "fun ", "get ", "sub "]).expect("valid")
});

fn secret_function_spans(text: &str, out: &mut Vec<Range<usize>>) {
    for keyword in FUNCTION_KEYWORDS.find_iter(text) {
        // The keyword starts a word (after a blank, a line's start or a modifier).
        let before = text[..keyword.start()].bytes().next_back();
        if before.is_some_and(|b| !matches!(b, b' ' | b'\t' | b'\n')) {
            continue;
        }
        let from = keyword.end() - 1;
        let to = text.floor_char_boundary((from + 600).min(text.len()));
        let Some(captures) = SECRET_FUNCTION.captures(&text[from..to]) else {
            continue;
        };
        let Some(value) = ["a", "b", "c"].iter().find_map(|g| captures.name(g)) else {
            continue;
        };
        let says = rules::name_says(&captures["name"]);
        if secret_for(says, value.as_str())
            || says == rules::NameSays::Secret && rules::looks_random(value.as_str())
        {
            out.push(from + value.start()..from + value.end());
        }
    }
}

pub fn spans(text: &str, out: &mut Vec<Range<usize>>) {
    match_arm_spans(text, out);
    secret_function_spans(text, out);
    enum_constant_spans(text, out);
    if text.contains("Private-Lines:") {
        key_file_line_spans(text, out);
    }
    call_spans(text, out);
    password_field_spans(text, out);
    bip39_phrase_spans(text, out);
    der_private_key_spans(text, out);
    kubernetes_secret_spans(text, out);
    char_array_spans(text, out);
    connection_call_spans(text, out);
    url_path_spans(text, out);
    collection_spans(text, out);
    named_default_spans(text, out);
    insert_spans(text, out);
    byte_array_spans(text, out);
    if text.contains(',') {
        decimal_bytes_spans(text, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        spans(text, &mut out);
        out.iter().map(|s| &text[s.clone()]).collect()
    }

    #[test]
    fn arguments_of_credential_calls() {
        assert_eq!(
            found(r#"c = Client("ACabc", "5f2b9c1e7d3a4b6c8e0f1a2b3c4d5e6f")"#),
            ["5f2b9c1e7d3a4b6c8e0f1a2b3c4d5e6f"]
        );
        assert_eq!(
            found(r#"req.SetBasicAuth("ci-bot", "Xk9-pL2#qR7z")"#),
            ["Xk9-pL2#qR7z"]
        );
        assert_eq!(
            found(r#"let r = c.get(u).bearer_auth("Zr8fK2mQ9xLp4Wv7Tn3s");"#),
            ["Zr8fK2mQ9xLp4Wv7Tn3s"]
        );
        assert_eq!(
            found(r#"session.auth = ("svc", "Pq7-Lm2!Rt9x")"#),
            ["Pq7-Lm2!Rt9x"]
        );
        // User names, hosts and words in those positions stay.
        for code in [
            r#"auth = ('user', 'pass')"#,
            r#"client.get("https://example.com/a", "application/json")"#,
            r#"login(username, "Password: ")"#,
            r#"connect("db.internal", "orders")"#,
            r#"token = get_token("api", "default-scope")"#,
            r#"value = cache.get_key("user_profile_v2_cache")"#,
        ] {
            assert!(found(code).is_empty(), "{code}: {:?}", found(code));
        }
    }

    #[test]
    fn key_material_in_any_position() {
        assert_eq!(
            found(r#"f = Fernet(b"q3Zr8fK2mQ9xLp4Wv7Tn3sB5yH1cJ6dE0gA9uI2oP4w=")"#),
            ["q3Zr8fK2mQ9xLp4Wv7Tn3sB5yH1cJ6dE0gA9uI2oP4w="]
        );
        assert_eq!(
            found(r#"Key k = Keys.hmacShaKeyFor("Zr8fK2mQ9xLp4Wv7Tn3sB5yH".getBytes(UTF_8));"#),
            ["Zr8fK2mQ9xLp4Wv7Tn3sB5yH"]
        );
    }

    /// The credential positions added after held-out-3, in examples written for this test.
    #[test]
    fn credential_positions_of_any_syntax() {
        let cases: &[(&str, &str)] = &[
            // Key material decoded from a literal.
            (
                r#"aes_key = binascii.unhexlify("5be1c07a93d24f6e8a1b0c3d7e9f2a4b")"#,
                "5be1c07a93d24f6e8a1b0c3d7e9f2a4b",
            ),
            (
                r#"let k = general_purpose::STANDARD.decode("p2Vx8KqL0mZr4TnB7wYc1H5sJ9dE3gA6").unwrap();"#,
                "p2Vx8KqL0mZr4TnB7wYc1H5sJ9dE3gA6",
            ),
            // A call without parentheses.
            (
                r#"  conn.authenticate "svc", "Tq5!zW8-pL3x""#,
                "Tq5!zW8-pL3x",
            ),
            // A login call's one random argument.
            (
                r#"await gateway.login("Rz7Kq2Lm9Xv4Tn8Bw3Yc6Hd1")"#,
                "Rz7Kq2Lm9Xv4Tn8Bw3Yc6Hd1",
            ),
            // A literal turned into a char array.
            (
                r#"PBEKeySpec spec = new PBEKeySpec("Wn4#kd9-Qp2".toCharArray());"#,
                "Wn4#kd9-Qp2",
            ),
            // After a connection string.
            (
                r#"db = pymssql.connect("Server=sql.internal;Database=ledger", "svc", "Lm7!vQ2-nR8")"#,
                "Lm7!vQ2-nR8",
            ),
            (
                r#"$h = new Conn("pgsql:host=db;dbname=x", "app", "Zx9.kedro-Vamp3!");"#,
                "Zx9.kedro-Vamp3!",
            ),
            // A token in a URL's path.
            (
                r#"fetch("https://hooks.example.net/v1/ingest/Qm7ZtR2kP9xWb4LcN8vY/events")"#,
                "Qm7ZtR2kP9xWb4LcN8vY",
            ),
            // Values under a name that holds several credentials.
            (
                "webhook_secrets = {\n  github = \"Pk8vR3-mW2qZ\"\n  stripe = \"whk.Tr4nD9\"\n}\n",
                "Pk8vR3-mW2qZ",
            ),
            (
                "credentials:\n  prod: \"Ks8!pQ2-vLx\"\nport: 80\n",
                "Ks8!pQ2-vLx",
            ),
            ("[secrets]\nsmtp = Vb6-qTz8#Lm\n", "Vb6-qTz8#Lm"),
            // Rows of an INSERT whose column says secret.
            (
                "INSERT INTO accounts (login, api_token) VALUES\n  ('ops', 'Tk5-vQ8zLm2'),\n  ('ci', 'Rw3!pX7nKd');",
                "Rw3!pX7nKd",
            ),
            // A token as a URL's whole user part.
            (
                r#"DSN = "https://4f2a9c8e1b7d6053a2e9f1c4b8d7e6a5@o4417.ingest.example.io/42""#,
                "4f2a9c8e1b7d6053a2e9f1c4b8d7e6a5",
            ),
            // Key material as bytes.
            (
                "const HMAC_KEY: [u8; 16] = [0x3c, 0x91, 0x0e, 0xa7, 0x5d, 0xf2, 0x48, 0xb6, 0x19, 0xc4, 0x7a, 0xe3, 0x02, 0x8f, 0xd5, 0x6b];",
                "0x3c, 0x91, 0x0e, 0xa7, 0x5d, 0xf2, 0x48, 0xb6, 0x19, 0xc4, 0x7a, 0xe3, 0x02, 0x8f, 0xd5, 0x6b",
            ),
            // An LDAP bind.
            (r#"conn.simple_bind_s("cn=reader,dc=corp", "Lq4#vB9-xTz")"#, "Lq4#vB9-xTz"),
        ];
        for (text, secret) in cases {
            assert!(found(text).contains(secret), "{text}: {:?}", found(text));
        }
        for code in [
            r#"magic = bytes.fromhex("deadbeef")"#,
            r#"data = base64.b64decode(payload)"#,
            r#"chunk = bytes.fromhex("00000000000000000000000000000000")"#,
            r#"Use the client "foo" here"#,
            r#"login("Password: ")"#,
            r#"char[] cs = "abcdefgh".toCharArray();"#,
            r#"r = requests.get("https://x.example/a", "application/json")"#,
            r#"psycopg2.connect("host=db dbname=x", "reporting_user")"#,
            "see https://github.com/o/r/commit/88aa1c897dfe2ee4aa987e4a56f2ba1344a17238#diff-4fc63db1f2fcb7c6e464ee9a77c3c74e90dd191d1c9ffc3bdd1234d3a6663dc0R48",
            "[docs]: https://example.org/wiki/Tutorial-1---Writing-Extensions-for-Python-Markdown",
            "![b](http://img.shields.io/badge/godoc-reference-5272B4.svg?style=flat)",
            "keys = {\n  up = \"ArrowUp\"\n  down = \"ArrowDown\"\n}\n",
            // Seen in the Python packages of this machine (GHOSTLINE_REDACTION_DIR).
            r#">>> client = InferenceClient("meta-llama/Meta-Llama-3-8B-Instruct")"#,
            "* https://en.wikipedia.org/wiki/Win32_Thread_Information_Block",
            "<https://wiki.example.org/pages/14091402/LF+AI+Day+-ONNX+Community+Virtual+Meetup+2020>",
            "NAMES = set(\n    [\"root\", *RULES.keys()]\n)\n\nLITERALS = set(\"|.()[]{}*+?\")\n",
            "    tokens = {\n        'strings-single': innerstring_rules(String.Single),\n    }\n",
            "INSERT INTO users (login, password_hash) VALUES ('ops', 'x');",
            "git clone https://git@example.org/r.git",
            "e.g. `\"ssh://687fb701029421ae5549d998@ssh.jobs.example\"`",
            "PUBLIC_KEY = [0x3c, 0x91, 0x0e, 0xa7, 0x5d, 0xf2, 0x48, 0xb6, 0x19, 0xc4, 0x7a, 0xe3, 0x02, 0x8f, 0xd5, 0x6b]",
            r#"sock.bind(("0.0.0.0", 8080))"#,
            r#"io.bind_input(f"past_{i}", dev, 0, types[f"past_{i}"])"#,
            "$(document).bind('close.box', function() {\n    $('#box-9').fadeOut(function() {\n",
        ] {
            assert!(found(code).is_empty(), "{code}: {:?}", found(code));
        }
    }

    #[test]
    fn kubernetes_secret_data() {
        let text = "apiVersion: v1\nkind: Secret\ndata:\n  DATABASE_URL: cG9zdGdyZXM6Ly9h\n  other: \"eHl6\"\nmetadata:\n  name: x\n";
        assert_eq!(found(text), ["cG9zdGdyZXM6Ly9h", "eHl6"]);
    }

    #[test]
    fn the_other_half_of_a_key_pair() {
        let text = r#"s = Store("store.internal:9000", "K7Q2M9X4B8N3P6R1T5V0", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKY")"#;
        let start = text.find("wJal").unwrap();
        let mut spans = Vec::new();
        spans.push(start..start + 40);
        extend_to_sibling_arguments(text, &mut spans);
        let found: Vec<&str> = spans.iter().map(|s| &text[s.clone()]).collect();
        assert!(found.contains(&"K7Q2M9X4B8N3P6R1T5V0"), "{found:?}");
        assert!(!found.contains(&"store.internal:9000"), "{found:?}");
    }

    #[test]
    fn concatenated_pieces() {
        let text = r#"T = "ghp_abcdefghijklmnopqrst" + "uvwxyz0123456789ABCD""#;
        let start = text.find("ghp_").unwrap();
        let mut spans = Vec::new();
        spans.push(start..start + 24);
        extend_over_concatenation(text, &mut spans);
        assert_eq!(&text[spans[1].clone()], "uvwxyz0123456789ABCD");
    }

    /// Written for this test: a function named for a secret hands back a literal.
    #[test]
    fn literals_returned_by_functions_named_for_secrets() {
        assert_eq!(
            found("@pytest.fixture\ndef api_token():\n    yield \"Zq8LmR2vXw9KpT4nBd6c\"\n"),
            ["Zq8LmR2vXw9KpT4nBd6c"]
        );
        assert_eq!(
            found("fn password() -> &'static str { \"Marlow-1987-Fern\" }\n"),
            ["Marlow-1987-Fern"]
        );
        assert!(found("def token_type():\n    return \"bearer\"\n").is_empty());
        assert!(found("def password_hint():\n    return \"your pet's name\"\n").is_empty());
        // A token after `/t/` in a URL, not a forum topic's slug.
        assert_eq!(
            found("channels:\n  - https://conda.example/t/qk-5d51c730-9521-44fd-a692/main\n"),
            ["qk-5d51c730-9521-44fd-a692"]
        );
        assert!(
            found("# https://discuss.example/t/cpython-3-12-greenlet-and-tracing/33144/2\n")
                .is_empty()
        );
    }

    /// Written for this test: key bytes in decimal under a key's name; tables left alone.
    #[test]
    fn key_bytes_in_decimal() {
        let rust = "const SIGNING_KEY: [u8; 16] = [201, 17, 88, 240, 3, 119, 64, 150, 33, 9, 222, 71, 180, 45, 12, 99];\n";
        assert_eq!(
            found(rust),
            ["201, 17, 88, 240, 3, 119, 64, 150, 33, 9, 222, 71, 180, 45, 12, 99"]
        );
        let ps = "$s = ConvertTo-SecureString $enc -Key (43,29,185,157,172,247,186,24,218,155,56,182,113,242,237,57)\n";
        assert_eq!(found(ps).len(), 1);
        for text in [
            "const TABLE: [u8; 16] = [201, 17, 88, 240, 3, 119, 64, 150, 33, 9, 222, 71, 180, 45, 12, 99];\n",
            "const KEY_CODES: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];\n",
            "PUBLIC_KEY = [201, 17, 88, 240, 3, 119, 64, 150, 33, 9, 222, 71, 180, 45, 12, 99]\n",
        ] {
            assert!(found(text).is_empty(), "{text}: {:?}", found(text));
        }
    }

    /// Written for this test: a comment between a secret-named function and its literal.
    #[test]
    fn secret_function_with_a_comment_first() {
        assert_eq!(
            found("def totp_secret():\n    # scanned from the QR code\n    return \"Q4ZMKFA2XTRW5BNH\"\n"),
            ["Q4ZMKFA2XTRW5BNH"]
        );
    }
}
