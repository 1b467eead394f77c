//! Credentials put together or disguised rather than written out: pieces joined at run time
//! (`"".join([...])`, `[...].join("")`, `strings.Join(..., "")`, `concat!(...)`, Kotlin's
//! `buildString { append(...) }`), text stored reversed (`[::-1]`, `.split("").reverse()`)
//! or in rot13 (`str_rot13`, `codecs.decode(..., "rot13")`), and values listed under a label
//! in prose (a runbook's `Recovery codes:` list, an `MFA secret:` line), and base64 whose
//! text holds a credential. Each is judged by
//! what it becomes: the joined or decoded text must itself read as a credential.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::rules;

/// Where pieces are joined: the bracket (or parenthesis) that holds them follows the match.
static JOINERS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?:""|''|``)[ \t]*\.[ \t]*join[ \t]*\(|strings\.Join[ \t]*\(|concat![ \t]*\(|buildString[ \t]*\{|String\.join[ \t]*\([ \t]*""[ \t]*,"#,
    )
    .expect("valid")
});

/// A list joined by a call after it: `[...].join("")`, `[...].join('')`.
static JOIN_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"\][ \t]*\.[ \t]*join[ \t]*\([ \t]*(?:""|''|``)?[ \t]*\)"#).expect("valid")
});

/// A literal reversed where it stands: `"…"[::-1]`, `"…".split("").reverse().join("")`,
/// `"…".reversed()`, `strrev("…")`.
static REVERSED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?:"(?P<a>[^"\r\n]{8,})"|'(?P<b>[^'\r\n]{8,})')(?:\[::-1\]|\.split\((?:""|'')\)\.reverse\(\)\.join\((?:""|'')\)|\.reversed\(\))|strrev\([ \t]*(?:"(?P<c>[^"\r\n]{8,})"|'(?P<d>[^'\r\n]{8,})')"#,
    )
    .expect("valid")
});

/// A literal in rot13: `str_rot13("…")`, `codecs.decode("…", "rot13")`, or a constant whose
/// name or comment says so (`FTP_PASS_ROT13 = '…'`).
static ROT13: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?:str_rot13|rot13|codecs\.decode)[ \t]*\([ \t]*(?:"(?P<a>[^"\r\n]{6,})"|'(?P<b>[^'\r\n]{6,})')|[A-Za-z0-9_]*rot_?13[A-Za-z0-9_]*[ \t]*=[ \t]*(?:"(?P<c>[^"\r\n]{6,})"|'(?P<d>[^'\r\n]{6,})')|(?:"(?P<e>[^"\r\n]{6,})"|'(?P<f>[^'\r\n]{6,})')[^\r\n]{0,40}rot_?13"#,
    )
    .expect("valid")
});

/// Whether `text`, once assembled or decoded, is a credential.
fn reads_as_credential(text: &str) -> bool {
    text.len() >= 8
        && (rules::credential_like(text)
            || rules::looks_random(text)
            || !super::secret_spans(text).is_empty())
}

/// The non-empty string literals of the bracket that opens at `open` (`positions.rs` reads
/// a call's arguments the same way).
fn literals_in(text: &str, open: usize) -> Vec<Range<usize>> {
    super::positions::literal_args(text, open)
        .into_iter()
        .map(|(literal, _)| literal)
        .filter(|literal| !literal.is_empty())
        .collect()
}

/// The bracket that closes at `close`, looking back at most 2,000 bytes.
fn opening_of(text: &str, close: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let floor = close.saturating_sub(2000);
    let mut at = close + 1;
    while at > floor {
        at -= 1;
        match bytes[at] {
            b']' | b')' | b'}' => depth += 1,
            b'[' | b'(' | b'{' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at);
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether the bracket opening at `open` holds nothing but the literals `pieces` (and
/// `append(…)` calls, Go's `[]string`): pieces of one value, not code building a text.
fn only_literals(text: &str, open: usize, pieces: &[Range<usize>]) -> bool {
    let Some(last) = pieces.last() else {
        return false;
    };
    let mut rest = String::new();
    let mut at = open + 1;
    for piece in pieces {
        rest.push_str(&text[at..piece.start - 1]);
        at = piece.end + 1;
    }
    let tail = &text[last.end + 1..];
    let close = tail.find([')', ']', '}']).unwrap_or(0);
    rest.push_str(&tail[..close]);
    rest.replace("[]string", "")
        .replace("append", "")
        .replace("\"\"", "")
        .replace("''", "")
        .chars()
        .all(|c| " \t\r\n,()[]{}+".contains(c))
}

/// The pieces of a join, when together they read as a credential.
fn joined_pieces(text: &str, open: usize, pieces: Vec<Range<usize>>, out: &mut Vec<Range<usize>>) {
    if pieces.len() < 2 || !only_literals(text, open, &pieces) {
        return;
    }
    let joined: String = pieces.iter().map(|p| &text[p.clone()]).collect();
    if !joined.contains(char::is_whitespace) && reads_as_credential(&joined) {
        out.extend(pieces);
    }
}

/// A list named just before the joiner (`"".join(_KEY_PARTS)`): the `[` of the list assigned
/// to it (`_KEY_PARTS = [`, `_KEY_PARTS: list[str] = [`).
fn named_list(text: &str, open: usize) -> Option<usize> {
    let after = &text[open + 1..];
    let name_len = after
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    if name_len == 0 || !after[name_len..].trim_start().starts_with(')') {
        return None;
    }
    let name = &after[..name_len];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix(name) else {
            continue;
        };
        // The name whole, then an optional annotation, `=` and the list.
        if rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let Some((_, value)) = rest.split_once('=') else {
            continue;
        };
        if value.trim_start().starts_with('[') {
            let at = line.len() - value.trim_start().len();
            return Some(start + at);
        }
    }
    None
}

fn join_spans(text: &str, out: &mut Vec<Range<usize>>) {
    // Most text joins nothing: a substring test before any regex.
    let joins = ["join", "Join", "concat!", "buildString"];
    if !joins.iter().any(|j| text.contains(j)) {
        return;
    }
    for found in JOINERS.find_iter(text) {
        let open = found.end() - 1;
        let open = if text.as_bytes()[open] == b',' {
            // `String.join("", "a", "b")`: the arguments after the separator.
            found.start() + found.as_str().find('(').unwrap_or(0)
        } else {
            open
        };
        let open = named_list(text, open).unwrap_or(open);
        joined_pieces(text, open, literals_in(text, open), out);
    }
    for found in JOIN_AFTER.find_iter(text) {
        if let Some(open) = opening_of(text, found.start()) {
            joined_pieces(text, open, literals_in(text, open), out);
        }
    }
}

fn rot13(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='z' => (((c as u8 - b'a') + 13) % 26 + b'a') as char,
            'A'..='Z' => (((c as u8 - b'A') + 13) % 26 + b'A') as char,
            _ => c,
        })
        .collect()
}

fn disguised_spans(text: &str, out: &mut Vec<Range<usize>>) {
    if text.contains("[::-1]")
        || text.contains(".reverse()")
        || text.contains(".reversed()")
        || text.contains("strrev")
    {
        reversed_spans(text, out);
    }
    if text.contains("rot13") || text.contains("ROT13") || text.contains("rot_13") {
        rot13_spans(text, out);
    }
}

fn reversed_spans(text: &str, out: &mut Vec<Range<usize>>) {
    for captures in REVERSED.captures_iter(text) {
        if let Some(m) = ["a", "b", "c", "d"].iter().find_map(|g| captures.name(g)) {
            let plain: String = m.as_str().chars().rev().collect();
            if reads_as_credential(&plain) {
                out.push(m.range());
            }
        }
    }
}

fn rot13_spans(text: &str, out: &mut Vec<Range<usize>>) {
    for captures in ROT13.captures_iter(text) {
        if let Some(m) = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .find_map(|g| captures.name(g))
        {
            if reads_as_credential(&rot13(m.as_str())) || reads_as_credential(m.as_str()) {
                out.push(m.range());
            }
        }
    }
}

/// A line of prose that introduces secrets below it: `Recovery codes (…):`, `MFA secret:`,
/// `Backup codes`, `Wi-Fi password:`.
static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:recovery|backup|one-time|emergency|scratch)[ -]codes?|(?:mfa|2fa|totp|otp|authenticator)[ -](?:secret|seed|key)|(?-u:\b)(?:password|passphrase|pin|passcode|secret key|recovery key)s?(?-u:\b)",
    )
    .expect("valid")
});

/// A value line under such a label: the line is one value or a few short groups (`1068-3299`,
/// `vdol t6gb h6pj 5vyi`), with a digit, not a sentence.
fn value_line(line: &str) -> Option<(usize, usize)> {
    let body = line.trim_end();
    let stripped = body.trim_start();
    let mut start = body.len() - stripped.len();
    let mut value = stripped;
    for marker in ["- ", "* ", "+ "] {
        if let Some(rest) = value.strip_prefix(marker) {
            start += marker.len();
            value = rest.trim_start();
            start += rest.len() - value.len();
        }
    }
    // `1. ` numbered items.
    if let Some(dot) = value.find(". ") {
        if dot <= 2 && value[..dot].bytes().all(|b| b.is_ascii_digit()) {
            start += dot + 2;
            value = &value[dot + 2..];
        }
    }
    if let Some(inner) = value.strip_prefix('`').and_then(|v| v.strip_suffix('`')) {
        start += 1;
        value = inner;
    }
    let groups: Vec<&str> = value.split(' ').collect();
    let ok = (4..=80).contains(&value.len())
        && groups.len() <= 10
        && groups.iter().all(|g| {
            !g.is_empty()
                && g.len() <= 40
                && g.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=+/".contains(&b))
        })
        && value.bytes().any(|b| b.is_ascii_digit())
        && (groups.len() == 1 || groups.iter().all(|g| g.len() <= 8));
    ok.then_some((start, start + value.len()))
}

fn labelled_spans(text: &str, out: &mut Vec<Range<usize>>) {
    if LABEL.find(text).is_none() {
        return;
    }
    let mut offset = 0;
    let mut under: Option<(usize, usize)> = None; // (lines left, values found)
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if let Some((left, found)) = under {
            if trimmed.starts_with('#') || left == 0 || trimmed.is_empty() && found > 0 {
                under = None;
            } else if trimmed.is_empty() || trimmed.starts_with("```") {
                under = Some((left - 1, found));
                continue;
            } else if let Some((s, e)) = value_line(line) {
                out.push(start + s..start + e);
                under = Some((left - 1, found + 1));
                continue;
            } else {
                under = None;
            }
        }
        // A label line: short, ending with `:` (or a heading), naming what follows.
        let label = trimmed.trim_start_matches('#').trim();
        if label.len() <= 120
            && (trimmed.ends_with(':') || trimmed.ends_with("):") || trimmed.starts_with('#'))
            && LABEL.is_match(label)
        {
            under = Some((24, 0));
        }
    }
}

/// A base64 literal whose text holds a credential (`echo '<base64 of export TOKEN=…>' |
/// base64 -d`, a config shipped encoded).
fn encoded_spans(text: &str, out: &mut Vec<Range<usize>>) {
    static ENCODED: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"["'`]([A-Za-z0-9+/]{16,512}={0,2})["'`]"#).expect("valid"));
    for captures in ENCODED.captures_iter(text) {
        let Some(m) = captures.get(1) else { continue };
        let Some(bytes) = rules::decode_base64(m.as_str()) else {
            continue;
        };
        let Ok(decoded) = std::str::from_utf8(&bytes) else {
            continue;
        };
        if decoded
            .chars()
            .all(|c| c.is_ascii_graphic() || c.is_ascii_whitespace())
            && decoded.contains(['=', ':', ' '])
            && !super::secret_spans(decoded).is_empty()
        {
            out.push(m.range());
        }
    }
}

pub fn spans(text: &str, out: &mut Vec<Range<usize>>) {
    encoded_spans(text, out);
    join_spans(text, out);
    disguised_spans(text, out);
    labelled_spans(text, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        spans(text, &mut out);
        out.iter().map(|s| &text[s.clone()]).collect()
    }

    /// Written for this test (not the corpus's).
    #[test]
    fn assembled_and_disguised_credentials() {
        assert_eq!(
            found("PARTS = [\n    \"Tq8vKz3Lm2Wn\",\n    \"9Rc4Yd7Bf1Gj\",\n]\nKEY = \"\".join(PARTS)\n"),
            ["Tq8vKz3Lm2Wn", "9Rc4Yd7Bf1Gj"]
        );
        assert_eq!(
            found("const TOKEN: &str = concat!(\"glpat-Tq8vKz3L\", \"m2Wn9Rc4Yd\");"),
            ["glpat-Tq8vKz3L", "m2Wn9Rc4Yd"]
        );
        assert_eq!(
            found("var t = strings.Join([]string{\"dckr_pat_\", \"Tq8vKz3Lm2Wn\", \"9Rc4Yd7\"}, \"\")"),
            ["dckr_pat_", "Tq8vKz3Lm2Wn", "9Rc4Yd7"]
        );
        assert_eq!(
            found("const k = [\"Tq8vKz3L\", \"m2Wn9Rc4Yd\"].join(\"\");"),
            ["Tq8vKz3L", "m2Wn9Rc4Yd"]
        );
        assert_eq!(found("PW = \"!3202nomeL\"[::-1]\n"), ["!3202nomeL"]);
        assert_eq!(found("$p = str_rot13('Yrzba2023!');"), ["Yrzba2023!"]);
        assert_eq!(
            found("MFA secret:\n\n    vdol t6gb h6pj 5vyi 6pbl\n\nRecovery codes:\n\n- `1068-3299`\n- `1578-4925`\n\nDone.\n"),
            ["vdol t6gb h6pj 5vyi 6pbl", "1068-3299", "1578-4925"]
        );
    }

    #[test]
    fn ordinary_joins_and_lists_are_left() {
        for text in [
            "path = \"/\".join([\"usr\", \"local\", \"bin\"])\n",
            "msg = \"\".join([\"Hello, \", name, \"!\"])\n",
            "const cls = [\"btn\", \"btn-primary\"].join(\"\");\n",
            "name = \"olleh\"[::-1]\n",
            "## Password rules\n\nA password must have:\n\n- at least 12 characters\n- a digit\n",
            "Steps:\n\n1. run make\n2. run tests\n",
            "s = strings.Join([]string{\"a\", \"b\"}, \"\")\n",
        ] {
            assert!(found(text).is_empty(), "{text}: {:?}", found(text));
        }
    }
}
