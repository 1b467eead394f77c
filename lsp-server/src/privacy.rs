//! Secrets never leave the machine: files that hold them are excluded from the index, from
//! retrieval and from completion altogether, and anything that looks like a key, token or
//! password in text that does go into a prompt is replaced by `<redacted>`.
//!
//! Redaction is pattern-based, so it errs on the side of known formats (private key blocks,
//! AWS/GitHub/Slack/OpenAI tokens, JWTs) plus assignments whose name says secret
//! (`api_key = "…"`, `password: "…"`). It runs on every piece of text a prompt is built from,
//! the current file's prefix and suffix included.

use std::borrow::Cow;
use std::path::Path;
use std::sync::LazyLock;

use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::{Regex, RegexSet};

pub const REDACTED: &str = "<redacted>";

/// Files never read into the index or a prompt (matched against the file name and the path).
pub const DEFAULT_EXCLUDES: &[&str] = &[
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.keystore",
    "*.jks",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".npmrc",
    ".netrc",
    ".pypirc",
    ".git-credentials",
    ".dockercfg",
    "credentials",
    "credentials.*",
    "*credentials*.json",
    "secrets.*",
    "*.tfvars",
    "*.tfstate",
];

/// The exclusion list in force: the defaults plus the user's `excludeGlobs`.
#[derive(Clone, Debug)]
pub struct Excludes {
    set: GlobSet,
}

impl Default for Excludes {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl Excludes {
    pub fn new(extra: &[String]) -> Self {
        let mut builder = GlobSetBuilder::new();
        for pattern in DEFAULT_EXCLUDES
            .iter()
            .map(|p| p.to_string())
            .chain(extra.iter().cloned())
        {
            match Glob::new(&pattern) {
                Ok(glob) => {
                    builder.add(glob);
                }
                Err(error) => tracing::warn!("ignoring exclude glob {pattern:?}: {error}"),
            }
        }
        let set = builder.build().unwrap_or_else(|error| {
            tracing::warn!("exclude globs: {error}; using the defaults");
            let mut builder = GlobSetBuilder::new();
            for pattern in DEFAULT_EXCLUDES {
                if let Ok(glob) = Glob::new(pattern) {
                    builder.add(glob);
                }
            }
            builder.build().unwrap_or_else(|_| GlobSet::empty())
        });
        Self { set }
    }

    /// `path` is absolute or relative to a workspace root; both it and its file name are
    /// matched, so `*.pem` and `config/*.yaml` both work.
    pub fn is_excluded(&self, path: &Path, relative: Option<&Path>) -> bool {
        let name_matches = path
            .file_name()
            .is_some_and(|name| self.set.is_match(Path::new(name)));
        name_matches
            || self.set.is_match(path)
            || relative.is_some_and(|relative| self.set.is_match(relative))
    }
}

struct Rule {
    regex: Regex,
    /// Capture group replaced by `<redacted>`; 0 = the whole match.
    group: usize,
}

/// All rule patterns in one automaton: almost all text matches none of them, and one pass
/// over it answers that for every rule at once.
static ANY_RULE: LazyLock<RegexSet> =
    LazyLock::new(|| RegexSet::new(RULES.iter().map(|rule| rule.regex.as_str())).expect("valid"));

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rule = |pattern: &str, group: usize| Rule {
        regex: Regex::new(pattern).expect("redaction patterns are valid"),
        group,
    };
    vec![
        // Provider tokens with a recognisable shape.
        rule(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b", 0),
        rule(r"\bgh[pousr]_[A-Za-z0-9]{20,}", 0),
        rule(r"\bgithub_pat_[A-Za-z0-9_]{20,}", 0),
        rule(r"\bxox[abposr]-[A-Za-z0-9-]{8,}", 0),
        rule(r"\bsk-(?:proj-|live-|test-|ant-)?[A-Za-z0-9_-]{16,}", 0),
        rule(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}", 0),
        rule(r"\bAIza[0-9A-Za-z_-]{30,}", 0),
        rule(r"\bglpat-[A-Za-z0-9_-]{16,}", 0),
        rule(
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
            0,
        ),
        // Credentials inside URLs: scheme://user:password@host.
        rule(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:([^\s/@]{3,})@", 1),
        // A quoted value assigned to a name that says secret (any quote, closed or not yet).
        rule(
            r#"(?i)\b[A-Za-z0-9_.-]*(?:api[_-]?key|apikey|secret|token|passw(?:or)?d|passwd|pwd|credential|private[_-]?key|access[_-]?key|auth[_-]?key|client[_-]?secret)[A-Za-z0-9_.-]*["']?\s*(?::=|=>|[:=])\s*[bru]?["'`]([^"'`\r\n]{3,})"#,
            1,
        ),
        // An unquoted value of such an assignment (.env / YAML / INI style) when it looks
        // like a secret rather than code: no brackets or spaces, long, mixed.
        rule(
            r"(?im)^\s*(?:export\s+)?[A-Za-z0-9_.-]*(?:api[_-]?key|apikey|secret|token|passw(?:or)?d|passwd|pwd|credential|access[_-]?key)[A-Za-z0-9_.-]*\s*[:=]\s*([A-Za-z0-9+/_.=-]{12,})\s*$",
            1,
        ),
    ]
});

static PRIVATE_KEY_BEGIN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----").expect("valid"));
static PRIVATE_KEY_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"-----END[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----").expect("valid"));

/// `text` with secrets replaced. Borrowed when there was nothing to replace (the common case).
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out: Cow<'_, str> = Cow::Borrowed(text);
    if text.contains("PRIVATE KEY") {
        out = Cow::Owned(redact_private_keys(&out));
    }
    let matching = ANY_RULE.matches(&out);
    if !matching.matched_any() {
        return out;
    }
    for (at, rule) in RULES.iter().enumerate() {
        if !matching.matched(at) {
            continue;
        }
        let mut replaced = String::with_capacity(out.len());
        let mut last = 0;
        for captures in rule.regex.captures_iter(&out) {
            let Some(m) = captures.get(rule.group) else {
                continue;
            };
            if m.as_str() == REDACTED || m.as_str().starts_with(REDACTED) {
                continue;
            }
            replaced.push_str(&out[last..m.start()]);
            replaced.push_str(REDACTED);
            last = m.end();
        }
        replaced.push_str(&out[last..]);
        out = Cow::Owned(replaced);
    }
    out
}

/// Whole private key blocks, including one cut by the prompt window: an END without its
/// BEGIN redacts from the start of the text, a BEGIN without its END to the end.
fn redact_private_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let begin = PRIVATE_KEY_BEGIN.find(rest);
        let end = PRIVATE_KEY_END.find(rest);
        match (begin, end) {
            (Some(b), Some(e)) if b.start() < e.start() => {
                out.push_str(&rest[..b.start()]);
                out.push_str(REDACTED);
                rest = &rest[e.end()..];
            }
            (_, Some(e)) => {
                // The block started before this text did.
                out.push_str(REDACTED);
                rest = &rest[e.end()..];
            }
            (Some(b), None) => {
                out.push_str(&rest[..b.start()]);
                out.push_str(REDACTED);
                rest = "";
            }
            (None, None) => break,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_token_shapes_are_redacted() {
        let secrets = [
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz",
            "xoxb-1234567890-abcdefghij",
            "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ];
        for secret in secrets {
            let text = format!("let x = call({secret});\n");
            let redacted = redact(&text);
            assert!(!redacted.contains(secret), "{secret} survived: {redacted}");
            assert!(redacted.contains(REDACTED));
        }
    }

    #[test]
    fn secret_assignments_keep_the_name_and_lose_the_value() {
        assert_eq!(
            redact(r#"API_KEY = "abc123def456""#),
            format!(r#"API_KEY = "{REDACTED}""#)
        );
        assert_eq!(
            redact("db_password: 'hunter22'\n"),
            format!("db_password: '{REDACTED}'\n")
        );
        assert_eq!(
            redact("SECRET_TOKEN=Zm9vYmFyYmF6cXV4MTIz\n"),
            format!("SECRET_TOKEN={REDACTED}\n")
        );
        assert_eq!(
            redact("postgres://admin:s3cretpw@db:5432/x"),
            format!("postgres://admin:{REDACTED}@db:5432/x")
        );
        // Code that merely mentions tokens is left alone.
        for code in [
            "let token = next_token(&mut lexer);",
            "password = get_password()",
            "if token == Token::Eof {",
        ] {
            assert_eq!(redact(code), code);
        }
    }

    #[test]
    fn private_key_blocks_even_when_cut() {
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabcdef\n-----END RSA PRIVATE KEY-----";
        let text = format!("const K = `{key}`;\nnext();\n");
        let redacted = redact(&text);
        assert!(!redacted.contains("MIIEpAIBAAKCAQEA"));
        assert!(redacted.contains("next();"));
        assert!(!redact("abcdef\n-----END PRIVATE KEY-----\nrest").contains("abcdef"));
        assert!(!redact("x\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg").contains("MIIEvQ"));
    }

    #[test]
    fn secret_files_are_excluded() {
        let excludes = Excludes::new(&["generated/**".to_string()]);
        for path in [
            ".env",
            "config/.env.production",
            "certs/server.pem",
            "home/.ssh/id_rsa",
            "id_ed25519.pub",
            ".npmrc",
            "aws/credentials",
            "x/y.key",
        ] {
            assert!(excludes.is_excluded(Path::new(path), None), "{path}");
        }
        assert!(excludes.is_excluded(
            Path::new("/w/generated/a.rs"),
            Some(Path::new("generated/a.rs"))
        ));
        assert!(!excludes.is_excluded(Path::new("src/env.rs"), None));
        assert!(!excludes.is_excluded(Path::new("src/keys.rs"), None));
    }
}
