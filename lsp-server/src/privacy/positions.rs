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
    while pos < bytes.len() && (bytes[pos] == b' ' || bytes[pos] == b'\t') {
        pos += 1;
    }
    // `auth = (…)` / `auth: (…)`: a tuple assigned to the name.
    if pos < bytes.len() && (bytes[pos] == b'=' || bytes[pos] == b':') && call_end == end {
        let mut p = pos + 1;
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
    (pos < bytes.len() && bytes[pos] == b'(').then_some((start..call_end, last_start, pos))
}

/// String literals of the argument list opening at `open`, each with its top-level argument
/// index: `(content range, index)`.
fn literal_args(text: &str, open: usize) -> Vec<(Range<usize>, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut arg = 0;
    let mut at = open;
    let limit = (open + 2000).min(bytes.len());
    while at < limit {
        let b = bytes[at];
        match b {
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
                out.push((start..end, arg));
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
        let words = if matches!(
            last_part,
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
        let first_arg = if (names_value || api_key) && !reader {
            Some(0)
        } else if reader && (names_value || api_key) {
            // `get_token("scope")`, `read_password("prompt")`: names and prompts, not values.
            None
        } else if words.iter().any(|w| {
            POSITION_WORDS.contains(&w.as_str())
                || w.starts_with("connect")
                || w.ends_with("auth")
                || w.ends_with("credential")
                || w.ends_with("credentials")
        }) {
            Some(1)
        } else {
            None
        };
        if first_arg.is_none() && !key_material {
            continue;
        }
        for (literal, arg) in literal_args(text, open) {
            let value = &text[literal.clone()];
            let by_position =
                first_arg.is_some_and(|first| arg >= first) && rules::credential_like(value);
            if by_position || (key_material && !reader && rules::looks_random(value)) {
                out.push(literal);
            }
        }
    }
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
    }
    spans.extend(added);
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

/// The secrets found by position in `text` (not merged).
pub fn spans(text: &str, out: &mut Vec<Range<usize>>) {
    call_spans(text, out);
    kubernetes_secret_spans(text, out);
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
}
