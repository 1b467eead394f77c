//! Redaction on ordinary code: every text file of the pinned evaluation packages
//! (`tests/eval/packages.toml`, fetched by `tests/eval/packages.py` into
//! `${GHOSTLINE_CACHE:-~/.cache/ghostline}/eval/src`) is redacted as the index redacts it, and
//! every line that changes is listed. Ordinary identifiers and strings must come through;
//! the lines that do change are the ones in `EXPECTED`, each a credential-like value (test
//! fixtures of HTTP auth, mostly), with the reason.
//!
//! Files whose content is a credential file (`privacy::content`) are listed too; none of the
//! packages' files is one, but for those in `EXPECTED_EXCLUDED` (each with the reason).
//!
//! `cargo test -p ghostline-lsp --test redaction_false_positives -- --nocapture` prints the
//! list. Skips (loudly) when the packages are not there.

use std::path::{Path, PathBuf};

use ghostline_lsp::bench::privacy::{credential_format, redact_keep_lines, Excludes};

/// (path under eval/src, 1-based line, why redacting it is right).
const EXPECTED: &[(&str, usize, &str)] = &[
    (
        "attrs-24.2.0/attrs-24.2.0/docs/examples.md",
        280,
        "a password value under a 'password' key (documentation example)",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/docs/concepts.rst",
        46,
        "a value exported as SECRET_KEY (documentation example)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_requests.py",
        2045,
        "Basic credential header: base64 of test:test (expected value of a test)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_requests.py",
        2128,
        "Basic credential header: base64 of user:pass",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_requests.py",
        2133,
        "Basic credential header: base64 of user: (empty password)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_utils.py",
        411,
        "a password literal assigned to PASSWORD",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_utils.py",
        425,
        "password in a URL's userinfo (placeholder in a test of URL auth)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_utils.py",
        434,
        "password in a URL's userinfo (placeholder in a test of URL auth)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_utils.py",
        513,
        "password in a URL's userinfo (placeholder in a test of URL auth)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_utils.py",
        514,
        "password in a URL's userinfo (placeholder in a test of URL auth)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_utils.py",
        518,
        "password in a URL's userinfo (placeholder in a test of URL auth)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_utils.py",
        519,
        "password in a URL's userinfo (placeholder in a test of URL auth)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_utils.py",
        522,
        "password in a URL's userinfo (placeholder in a test of URL auth)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_utils.py",
        523,
        "password in a URL's userinfo (placeholder in a test of URL auth)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_utils.py",
        524,
        "password in a URL's userinfo (placeholder in a test of URL auth)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_utils.py",
        525,
        "password in a URL's userinfo (placeholder in a test of URL auth)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_utils.py",
        700,
        "password in a URL's userinfo (placeholder in a test of URL auth)",
    ),
    (
        "packaging-24.1/packaging-24.1/tests/test_requirements.py",
        78,
        "password in a URL's userinfo (placeholder in a test of URL parsing)",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/docs/concepts.rst",
        123,
        "values of a list named SECRET_KEYS (documentation example of signing keys)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_requests.py",
        564,
        "the password of an auth tuple (a test's non-ASCII password)",
    ),
    (
        "cli-1.22.9/cli-1.22.9/context_test.go",
        310,
        "a password literal set as APP_PASSWORD (a test's environment)",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/PKG-INFO",
        44,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/README.md",
        25,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/docs/concepts.rst",
        77,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/docs/concepts.rst",
        81,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/docs/serializer.rst",
        18,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/docs/serializer.rst",
        25,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/docs/signer.rst",
        14,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/docs/signer.rst",
        21,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/docs/signer.rst",
        33,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/docs/url_safe.rst",
        15,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/docs/url_safe.rst",
        16,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/tests/test_itsdangerous/test_serializer.py",
        195,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/tests/test_itsdangerous/test_serializer.py",
        196,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "itsdangerous-2.2.0/itsdangerous-2.2.0/tests/test_itsdangerous/test_timed.py",
        70,
        "a signed token (itsdangerous output: a signature made with the docs' key, which authenticates its bearer), redacted by its look",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_requests.py",
        568,
        "Basic credential header: base64 of a non-ASCII user:password (expected value of a test), redacted by its look",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_requests.py",
        2049,
        "Basic credential header: base64 of a Cyrillic user:password, redacted by its look",
    ),
    // Added at stop 42: the literal after a user's name in a call or tuple that takes a login.
    (
        "requests-2.32.3/requests-2.32.3/tests/test_requests.py",
        673,
        "the password of an auth tuple (`wrong_auth = (\"wronguser\", \"wrongpass\")`, a test's wrong password)",
    ),
    (
        "requests-2.32.3/requests-2.32.3/tests/test_requests.py",
        754,
        "the password of `HTTPDigestAuth(\"user\", \"wrongpass\")` (a test's wrong password)",
    ),
];

/// Files excluded by content (path under eval/src, why that costs nothing).
const EXPECTED_EXCLUDED: &[(&str, &str)] = &[(
    "h11-0.14.0/h11-0.14.0/h11/tests/data/test-file",
    "one line of 64 hex digits and nothing else: a key's length (a Zabbix PSK, a `master.key` \
     has the same look); a digest here, in which no one completes and from which no snippet helps",
)];

fn eval_src() -> PathBuf {
    let cache = std::env::var_os("GHOSTLINE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ghostline")
        });
    cache.join("eval/src")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

/// `GHOSTLINE_REDACTION_DIR=/some/tree cargo test … -- --nocapture` lists the lines redaction
/// changes under any folder instead (nothing asserted): a wider false-positive check.
#[test]
fn ordinary_code_of_the_pinned_packages_is_not_redacted() {
    let other = std::env::var_os("GHOSTLINE_REDACTION_DIR").map(PathBuf::from);
    let root = other.clone().unwrap_or_else(eval_src);
    if !root.is_dir() {
        // ./test.sh fetches them first; in CI a missing package fails the test.
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true but no evaluation packages at {}",
            root.display()
        );
        eprintln!(
            "\n*** SKIPPED: no evaluation packages at {} (python3 tests/eval/packages.py fetches them) ***\n",
            root.display()
        );
        return;
    }
    let excludes = Excludes::default();
    let mut all = Vec::new();
    files(&root, &mut all);
    let (mut texts, mut lines, mut excluded) = (0, 0, Vec::new());
    let mut by_content: Vec<String> = Vec::new();
    let mut changed: Vec<(String, usize, String, String)> = Vec::new();
    for path in &all {
        let relative = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if relative.ends_with(".ghostline-eval-sha256") {
            continue;
        }
        if excludes.is_excluded(path, Some(Path::new(&relative))) {
            excluded.push(relative);
            continue;
        }
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        if bytes.len() > 1 << 20 || bytes.contains(&0) {
            continue;
        }
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        if let Some(format) = credential_format(&text) {
            // The index leaves such a file out whatever its name (`privacy::content`).
            by_content.push(format!("{relative} ({format})"));
            continue;
        }
        texts += 1;
        lines += text.lines().count();
        let redacted = redact_keep_lines(&text);
        if redacted == text {
            continue;
        }
        assert_eq!(redacted.lines().count(), text.lines().count(), "{relative}");
        for (at, (before, after)) in text.lines().zip(redacted.lines()).enumerate() {
            if before != after {
                changed.push((
                    relative.clone(),
                    at + 1,
                    before.to_string(),
                    after.to_string(),
                ));
            }
        }
    }
    eprintln!(
        "redaction over the pinned packages: {texts} text files, {lines} lines, {} lines changed; {} files excluded as secret files",
        changed.len(),
        excluded.len()
    );
    for file in &excluded {
        eprintln!("  excluded: {file}");
    }
    for file in &by_content {
        eprintln!("  excluded by content: {file}");
    }
    for (path, line, before, after) in &changed {
        eprintln!(
            "  changed {path}:{line}\n    - {}\n    + {}",
            before.trim(),
            after.trim()
        );
    }
    if other.is_some() {
        return;
    }
    let unexpected: Vec<String> = changed
        .iter()
        .filter(|(path, line, _, _)| !EXPECTED.iter().any(|(p, l, _)| p == path && l == line))
        .map(|(path, line, before, _)| format!("{path}:{line}: {}", before.trim()))
        .collect();
    let missing: Vec<String> = EXPECTED
        .iter()
        .filter(|(p, l, _)| {
            !changed
                .iter()
                .any(|(path, line, _, _)| p == path && l == line)
        })
        .map(|(p, l, why)| format!("{p}:{l} ({why})"))
        .collect();
    // No ordinary file of the packages is a credential file, but for those listed.
    let excluded: Vec<&String> = by_content
        .iter()
        .filter(|file| !EXPECTED_EXCLUDED.iter().any(|(p, _)| file.starts_with(p)))
        .collect();
    assert!(excluded.is_empty(), "excluded by content: {excluded:?}");
    assert!(
        unexpected.is_empty() && missing.is_empty(),
        "ordinary code redacted:\n{}\nexpected but not redacted:\n{}",
        unexpected.join("\n"),
        missing.join("\n")
    );
}
