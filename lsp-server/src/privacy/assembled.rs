//! Credentials put together or disguised rather than written out: pieces joined at run time
//! (`"".join([...])`, `[...].join("")`, `strings.Join(..., "")`, `concat!(...)`, Kotlin's
//! `buildString { append(...) }`), text stored reversed (`[::-1]`, `.split("").reverse()`)
//! or in rot13 (`str_rot13`, `codecs.decode(..., "rot13")`), and values listed under a label
//! in prose (a runbook's `Recovery codes:` list, an `MFA secret:` line), and base64 whose
//! text holds a credential. Each is judged by
//! what it becomes: the joined or decoded text must itself read as a credential.

use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::Regex;

use super::rules;

/// Where pieces are joined: the bracket (or parenthesis) that holds them follows the match.
static JOINERS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?:"[-_.:|]?"|'[-_.:|]?'|``)[ \t]*\.[ \t]*join[ \t]*\(|strings\.Join[ \t]*\(|concat![ \t]*\(|buildString[ \t]*\{|String\.join[ \t]*\([ \t]*"[-_.:|]?"[ \t]*,"#,
    )
    .expect("valid")
});

/// A list joined by a call after it: `[...].join("")`, `[...].join('-')`, Kotlin's
/// `listOf(...).joinToString("-")`.
static JOIN_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"[\])][ \t]*\.[ \t]*join(?:ToString)?[ \t]*\([ \t]*(?:"[-_.:|]?"|'[-_.:|]?'|``)?[ \t]*\)"#).expect("valid")
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
            || super::random::is_chosen_password(text)
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
        .replace("listOf", "")
        .replace("arrayOf", "")
        .chars()
        .all(|c| " \t\r\n,()[]{}+".contains(c))
}

/// The pieces of a join, when together they read as a credential.
fn joined_pieces(
    text: &str,
    open: usize,
    pieces: Vec<Range<usize>>,
    separated: bool,
    out: &mut Vec<Range<usize>>,
) {
    if pieces.len() < 2 || !only_literals(text, open, &pieces) {
        return;
    }
    // Joined with a separator (`"-".join(…)`, `":".join(ciphers)`), the pieces of a key are
    // groups of letters and digits (`WYE050ZA-59A7WGWY`, `RGAPI-9cc0`); a list of names, options or
    // escapes joined so is a table.
    if separated
        && !pieces.iter().all(|p| {
            p.len() >= 4
                && text[p.clone()]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    {
        return;
    }
    let joined: String = pieces.iter().map(|p| &text[p.clone()]).collect();
    if !joined.contains(char::is_whitespace) && reads_as_credential(&joined) {
        out.extend(pieces);
    }
}

/// A list named just before the joiner (`"".join(_KEY_PARTS)`): the `[` (or a tuple's `(`) of
/// the list assigned to it (`_KEY_PARTS = [`, `_KEY_PARTS: list[str] = [`).
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
        if value.trim_start().starts_with(['[', '(']) {
            let at = line.len() - value.trim_start().len();
            return Some(start + at);
        }
    }
    None
}

/// Whether a joiner's separator literal (the first literal in it) is not empty: `"-".join(`,
/// `.joinToString("-")`, `String.join(":", …`.
fn has_separator(joiner: &str) -> bool {
    joiner.find(['"', '\'']).is_some_and(|at| {
        let quote = joiner.as_bytes()[at];
        joiner.as_bytes().get(at + 1) != Some(&quote)
    })
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
        let separated = has_separator(found.as_str());
        let open = named_list(text, open).unwrap_or(open);
        joined_pieces(text, open, literals_in(text, open), separated, out);
    }
    for found in JOIN_AFTER.find_iter(text) {
        if let Some(open) = opening_of(text, found.start()) {
            let separated = has_separator(found.as_str());
            joined_pieces(text, open, literals_in(text, open), separated, out);
        }
    }
}

/// Ruby's word list joined where it stands: `%w[ba0b… 6fa7…].join`.
fn word_list_join_spans(text: &str, out: &mut Vec<Range<usize>>) {
    static WORDS_JOINED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"%[wW][\[(]([^\])\r\n]{4,400})[\])][ \t]*\.[ \t]*join\b"#).expect("valid")
    });
    if !text.contains("%w") && !text.contains("%W") {
        return;
    }
    for captures in WORDS_JOINED.captures_iter(text) {
        let list = captures.get(1).expect("group");
        let mut pieces = Vec::new();
        let mut at = list.start();
        for word in list.as_str().split(' ') {
            if !word.is_empty() {
                pieces.push(at..at + word.len());
            }
            at += word.len() + 1;
        }
        let joined: String = pieces.iter().map(|p| &text[p.clone()]).collect();
        if pieces.len() >= 2 && reads_as_credential(&joined) {
            out.extend(pieces);
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

/// A literal handed to a decoder where it stands: base64 (`b64decode`, `base64_decode`,
/// `FromBase64String`, `atob`, `Base64.decode`, `Buffer.from(…, "base64")`), hex (`fromhex`,
/// `unhexlify`, `hex2bin`, `hex.DecodeString`, `Buffer.from(…, "hex")`) or percent-encoding
/// (`decodeURIComponent`, `unquote`, `urldecode`, `QueryUnescape`). Code decodes a literal
/// where it stands to keep its text out of sight, so the decoded text is judged, not the
/// literal: a credential by the usual tests, or one token of letters and digits (`qwe789?`,
/// `November2016!!`), which is what short test vectors (`Zm9vYmFy` = `foobar`) are not.
/// Decoders' names, as code spells them; the kind of decoding is told by `decoding_at`.
static DECODERS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostLongest)
        .build([
            "b64decode",
            "b85decode",
            "a85decode",
            "base64_decode",
            "base64decode",
            "Base64Decode",
            "FromBase64String",
            "atob",
            "decode64",
            "DecodeString",
            ".decode",
            "::decode",
            "unhexlify",
            "fromhex",
            "hex2bin",
            "decodeURIComponent",
            "decodeURI",
            "unquote",
            "unquote_plus",
            "urldecode",
            "QueryUnescape",
            "PathUnescape",
            "decode_www_form_component",
            "Buffer.from",
        ])
        .expect("valid")
});

#[derive(Clone, Copy, PartialEq)]
enum Decoding {
    Base64,
    Hex,
    Percent,
    /// `Buffer.from(…, enc)`: told by its second argument.
    Named,
    /// base85 (`b85decode`, `a85decode`): binary by design, so 16+ characters of it are
    /// key material whatever they decode to.
    Base85,
}

/// What the decoder named at `name` (a match of `DECODERS`) decodes, if it is one.
fn decoding_at(text: &str, name: std::ops::Range<usize>) -> Option<Decoding> {
    let called = &text[name.clone()];
    let line_start = text[..name.start].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[text
        .floor_char_boundary(name.start.saturating_sub(40))
        .max(line_start)..name.start];
    let ident_before = text[..name.start]
        .bytes()
        .next_back()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    Some(match called {
        "Buffer.from" => Decoding::Named,
        "b85decode" | "a85decode" => Decoding::Base85,
        "unhexlify" | "fromhex" | "hex2bin" => Decoding::Hex,
        "decodeURIComponent"
        | "decodeURI"
        | "unquote"
        | "urldecode"
        | "QueryUnescape"
        | "PathUnescape"
        | "decode_www_form_component"
        | "unquote_plus" => Decoding::Percent,
        "DecodeString" if before.ends_with("hex.") => Decoding::Hex,
        ".decode" | "::decode" => {
            let lower = before.to_ascii_lowercase();
            if lower.contains("base64")
                || lower.contains("decoder()")
                || before.contains("STANDARD")
                || before.contains("URL_SAFE")
            {
                Decoding::Base64
            } else if lower.ends_with("hex") {
                Decoding::Hex
            } else if before.ends_with("URLDecoder") {
                Decoding::Percent
            } else {
                return None;
            }
        }
        "atob" if ident_before => return None,
        _ => Decoding::Base64,
    })
}

/// The literal that opens the argument list right after `at` (`(` then a quote), and the
/// second argument's literal when there is one (`Buffer.from("…", "hex")`).
fn first_literal_after(text: &str, at: usize) -> Option<(Range<usize>, Option<&str>)> {
    let rest = &text[at..];
    let rest_trimmed = rest.trim_start_matches([' ', '\t']);
    let open = at + rest.len() - rest_trimmed.len();
    let after_paren = text[open..].strip_prefix('(')?;
    let trimmed = after_paren.trim_start_matches([' ', '\t']);
    let trimmed = trimmed
        .strip_prefix(['b', 'r'])
        .filter(|t| t.starts_with(['"', '\'', '`']))
        .unwrap_or(trimmed);
    let quote = trimmed
        .chars()
        .next()
        .filter(|c| matches!(c, '"' | '\'' | '`'))?;
    let start = text.len() - trimmed.len() + 1;
    let len = text[start..].find(|c: char| c == quote || c.is_whitespace() || c == '\\')?;
    if !text[start + len..].starts_with(quote) || !(4..=512).contains(&len) {
        return None;
    }
    let after = text[start + len + 1..].trim_start_matches([' ', '\t']);
    let encoding = after.strip_prefix(',').and_then(|a| {
        let a = a.trim_start_matches([' ', '\t']);
        let q = a.chars().next().filter(|c| matches!(c, '"' | '\''))?;
        let end = a[1..].find(q)?;
        Some(&a[1..1 + end])
    });
    Some((start..start + len, encoding))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn decode_percent(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut escapes = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(text.get(i + 1..i + 3)?, 16).ok()?);
            escapes += 1;
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    (escapes > 0).then_some(out)
}

/// Whether decoded text is a credential: by the usual tests, or one printable token of 6–64
/// characters with letters and digits.
fn decoded_is_credential(decoded: &str) -> bool {
    if !decoded
        .chars()
        .all(|c| c.is_ascii_graphic() || c.is_ascii_whitespace())
    {
        return false;
    }
    let token = !decoded.contains(char::is_whitespace)
        && (6..=64).contains(&decoded.len())
        && decoded.bytes().any(|b| b.is_ascii_alphabetic())
        && decoded.bytes().any(|b| b.is_ascii_digit());
    token || reads_as_credential(decoded)
}

fn decoder_spans(text: &str, out: &mut Vec<Range<usize>>) {
    for found in DECODERS.find_iter(text) {
        let Some(decoding) = decoding_at(text, found.range()) else {
            continue;
        };
        let Some((literal, encoding)) = first_literal_after(text, found.end()) else {
            continue;
        };
        let value = &text[literal.clone()];
        let decoding = match (decoding, encoding.map(str::to_ascii_lowercase)) {
            (Decoding::Named, Some(enc)) if enc == "hex" => Decoding::Hex,
            (Decoding::Named, Some(enc)) if enc.starts_with("base64") => Decoding::Base64,
            (Decoding::Named, _) => continue,
            (decoding, _) => decoding,
        };
        let bytes = match decoding {
            Decoding::Base85 if value.len() >= 16 => {
                out.push(literal);
                continue;
            }
            Decoding::Base85 => continue,
            Decoding::Hex => decode_hex(value),
            Decoding::Percent => decode_percent(value),
            _ => rules::decode_base64(value.trim_end_matches('=')),
        };
        let Some(bytes) = bytes else { continue };
        if std::str::from_utf8(&bytes).is_ok_and(decoded_is_credential) {
            out.push(literal);
        }
    }
}

/// Text spelled as character codes where it stands (`String.fromCharCode(74, 88, 66, …)`,
/// `''.join(map(chr, [74, 88, …]))`): judged by the text, as a decoded literal is.
static CHAR_CODES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:fromCharCode|map\(chr,)[ \t]*\(?[ \t]*\[?(?P<codes>[0-9]{2,3}(?:[ \t]*,[ \t]*[0-9]{2,3}){5,})")
        .expect("valid")
});

fn char_code_spans(text: &str, out: &mut Vec<Range<usize>>) {
    if !text.contains("fromCharCode") && !text.contains("map(chr") {
        return;
    }
    for found in CHAR_CODES.captures_iter(text) {
        let codes = found.name("codes").expect("group");
        let decoded: Option<String> = codes
            .as_str()
            .split(',')
            .map(|c| {
                c.trim()
                    .parse::<u8>()
                    .ok()
                    .filter(u8::is_ascii)
                    .map(char::from)
            })
            .collect();
        if decoded.is_some_and(|d| decoded_is_credential(&d)) {
            out.push(codes.range());
        }
    }
}

/// String literals put together where they stand (`"XrIX/oKt" "mMGCYpu"` over lines in C or
/// Python, `std::string("…") + "…"`, Java's `"…"\n    + "…"`) are judged as the text they
/// make: each piece alone may be too short to read as anything.
fn concatenation_spans(text: &str, out: &mut Vec<Range<usize>>) {
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let Some(quote_at) = text[at..].find(['"', '\'']).map(|i| i + at) else {
            break;
        };
        let mut pieces: Vec<Range<usize>> = Vec::new();
        let mut next = quote_at;
        loop {
            let quote = bytes[next];
            let start = next + 1;
            let Some(len) = text[start..].find([quote as char, '\n']) else {
                break;
            };
            let end = start + len;
            let piece = &text[start..end];
            if bytes[end] != quote
                || !(4..=128).contains(&len)
                || !piece.bytes().all(concatenable)
                || path_piece(piece)
            {
                break;
            }

            pieces.push(start..end);
            // What may stand between two pieces: blanks, newlines, one `+` or `.` (PHP), `)`
            // closing the wrapper of the first (`std::string("…") +`).
            let mut k = end + 1;
            let (mut ops, mut closes) = (0, 0);
            while k < bytes.len() {
                match bytes[k] {
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    b'+' | b'.' if ops == 0 => ops += 1,
                    // Elixir's and Haskell's `<>`.
                    b'<' if ops == 0 && bytes.get(k + 1) == Some(&b'>') => {
                        ops += 1;
                        k += 1;
                    }
                    b')' if ops == 0 && closes == 0 && pieces.len() == 1 => closes += 1,
                    _ => break,
                }
                k += 1;
            }
            // A wrapper closed (`std::string("…")`) must be followed by `+`: `f('…'))` then a
            // literal on the next line is a call's result shown below it (a doctest).
            let joined_here = k > end + 1 && (closes == 0 || ops == 1);
            // Without an operator, the first piece must start an expression (`= "…"`,
            // `("…"`, `return "…"`): a column of literals (Go's imports, a CSV's rows) is not
            // one value.
            let adjacent_ok = ops == 1 || starts_expression(&text[..pieces[0].start - 1]);
            if k < bytes.len() && matches!(bytes[k], b'"' | b'\'') && joined_here && adjacent_ok {
                next = k;
            } else {
                break;
            }
        }
        at = pieces.last().map_or(quote_at + 1, |p| p.end + 1);
        if pieces.len() < 2 {
            continue;
        }
        let joined: String = pieces.iter().map(|p| &text[p.clone()]).collect();
        // Stricter than `reads_as_credential`: names and words run together read as a long
        // name; alphabets (`"ABC…xyz" + "0123456789-._~"`) are tables.
        let table = ["abcdef", "ABCDEF", "012345"]
            .iter()
            .any(|run| joined.contains(run));
        if joined.len() >= 12
            && !table
            && (rules::looks_random(&joined)
                || super::random::is_chosen_password(&joined)
                || !super::secret_spans(&joined).is_empty())
        {
            out.extend(pieces);
        }
    }
}

/// Characters of a piece of a value: a token's, not code's or markup's (`;`, `{}`, `&#…;`).
fn concatenable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+/=_.-!@#$&^~*%".contains(&b)
}

/// A piece that is a path (`"../../include"`, `"/opt/local"`), not part of a key.
fn path_piece(piece: &str) -> bool {
    piece.starts_with(['/', '.']) || piece.contains("../") || piece.contains("//")
}

/// Whether what stands before a literal on its line makes it the start of an expression.
fn starts_expression(before: &str) -> bool {
    let line = before.rsplit('\n').next().unwrap_or(before).trim_end();
    line.ends_with(['=', '(']) || line.ends_with("return")
}

/// A password named in prose and quoted after it, in a runbook, a README or a comment:
/// ``password `letmeinpriya23` ``, `the passphrase is "Meera.1978"`, `PIN: '9031'`. A few words
/// may stand between (`password for the guest Wi-Fi is`); the value is one token with a digit
/// (words in quotes after "password" are more often a field's name than its value) and not a
/// version (`pin "numpy==1.26"` is a dependency pinned).
static PROSE_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?-u:\b)(?P<label>password|passphrase|passcode|passwd|pwd|pin|pin code|door code|alarm code|gate code)(?-u:\b)(?:[ \t]+[A-Za-z-]{1,12}){0,5}[ \t]*(?:is|was|=|:|-)?[ \t]*(?:"(?P<a>[^"\s]{4,64})"|`(?P<b>[^`\s]{4,64})`|'(?P<c>[^'\s]{4,64})'|\*\*(?P<d>[^*\s]{4,64})\*\*)"#,
    )
    .expect("valid")
});

/// The same unquoted (`Your temporary password: Oasis2021!`), where only a value that reads as
/// a password by its look is taken: prose goes on after the label.
static PROSE_PASSWORD_BARE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?-u:\b)(?:password|passphrase|passcode|passwd|pwd|pw)(?-u:\b)(?:[ \t]+(?:for|of|to)(?:[ \t]+[A-Za-z0-9-]{1,16}){1,3})?(?:[ \t]+(?:is|was)[ \t]+|[ \t]*(?P<sep>[:=])[ \t]*)(?P<v>[^\s"'`<>()\[\]{},;]{6,64})"#,
    )
    .expect("valid")
});

/// A code named in prose and given bare (`alarm code changed to 743270`, `gate code: 0396`,
/// `PIN is 9031`): digits only, four to twelve of them.
static PROSE_CODE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?-u:\b)(?:(?:alarm|gate|door|keypad|safe|lockbox|garage|building|entry|pin)[ -]?code|passcode|pin)(?-u:\b)(?:[ \t]+(?:for|of|at|to)(?:[ \t]+[A-Za-z0-9-]{1,16}){1,4})?(?:[ \t]+(?:is|was|now|changed to|set to|reset to)[ \t]+|[ \t]*[:=][ \t]*)(?P<v>[0-9]{4,12})(?-u:\b)",
    )
    .expect("valid")
});

fn prose_password_spans(text: &str, out: &mut Vec<Range<usize>>) {
    for captures in PROSE_CODE.captures_iter(text) {
        out.push(captures.name("v").expect("group").range());
    }
    for captures in PROSE_PASSWORD_BARE.captures_iter(text) {
        let value = captures.name("v").expect("group");
        // A sentence's full stop is not the password's, unless the whole reads as one.
        let whole = super::random::is_chosen_password(value.as_str());
        let v = if whole {
            value.as_str()
        } else {
            value.as_str().trim_end_matches(['.', ':', '!', '?'])
        };
        // In prose (`pw for the vpn is banjo69`, `Password: x`), not code's `password = f2`.
        let assigned = captures.name("sep").is_some_and(|sep| sep.as_str() == "=");
        let letters_and_digits = !assigned
            && v.len() >= 6
            && v.bytes().any(|b| b.is_ascii_alphabetic())
            && v.bytes().any(|b| b.is_ascii_digit())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&*@^~_-+=?".contains(&b));
        if whole
            || super::random::is_chosen_password(v)
            || super::random::is_password(v, true)
            || rules::looks_random(v)
            || letters_and_digits && !rules::is_key_name(v)
        {
            out.push(value.start()..value.start() + v.len());
        }
    }
    for captures in PROSE_PASSWORD.captures_iter(text) {
        let Some(value) = ["a", "b", "c", "d"].iter().find_map(|g| captures.name(g)) else {
            continue;
        };
        let v = value.as_str();
        let label = captures["label"].to_ascii_lowercase();
        let digits = v.bytes().filter(u8::is_ascii_digit).count();
        let numeric = digits == v.len();
        let version = v.bytes().any(|b| b"=<>/()[]{}$%".contains(&b))
            || v.as_bytes()
                .windows(3)
                .any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit())
                && !super::random::is_chosen_password(v);
        let keep = if label.contains("pin") || label.contains("code") {
            numeric && (4..=12).contains(&v.len())
        } else {
            digits > 0 && !version && !rules::is_key_name(v)
        };
        if keep {
            out.push(value.range());
        }
    }
}

/// How a table's header says its column holds secrets: by a secret's name, or as a code
/// (`Alarm code`, `Master code`, `code`), whose cells count only as digits: four or more
/// under a qualified code, six or more under a bare `Code` (error codes are shorter).
#[derive(Clone, Copy, PartialEq)]
enum Column {
    Plain,
    Secret,
    Code { min_digits: usize },
}

fn column_of(header: &str) -> Column {
    let name = header.trim();
    if name.len() > 40 {
        return Column::Plain;
    }
    let words = rules::name_words(name);
    let last = words.last().map(String::as_str).unwrap_or("");
    if matches!(last, "code" | "codes") {
        return Column::Code {
            min_digits: if words.len() > 1 { 4 } else { 6 },
        };
    }
    if rules::name_says(name) != rules::NameSays::No {
        Column::Secret
    } else {
        Column::Plain
    }
}

/// Whether a cell under `column` is a value to redact.
fn cell_is_secret(column: Column, value: &str) -> bool {
    match column {
        Column::Plain => false,
        Column::Code { min_digits } => {
            (min_digits..=12).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit())
        }
        Column::Secret => {
            value.len() >= 4
                && !value.contains(char::is_whitespace)
                && value
                    .bytes()
                    .any(|b| b.is_ascii_digit() || b.is_ascii_punctuation())
                && !rules::is_key_name(value)
                && !value.eq_ignore_ascii_case("n/a")
        }
    }
}

/// A Markdown table of accounts: the cells under a column whose header says secret
/// (`| System | User | Password |`, `PIN`, `Token`), when the cell is one token with a digit
/// or a symbol (`-`, `n/a`, `in the vault` are placeholders, not values). DokuWiki's tables
/// too, whose header row is marked by `^` instead of a rule under it (`^ Site ^ Code ^`).
fn table_column_spans(text: &str, out: &mut Vec<Range<usize>>) {
    let dokuwiki = text.starts_with("^ ") || text.contains("\n^ ");
    if !dokuwiki && !text.contains("|---") && !text.contains("| ---") && !text.contains("|:--") {
        return;
    }
    let mut secret_columns: Vec<(usize, Column)> = Vec::new();
    let mut header: Option<Vec<Column>> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if dokuwiki && trimmed.starts_with('^') {
            let says: Vec<Column> = trimmed
                .trim_matches('^')
                .split('^')
                .map(column_of)
                .collect();
            secret_columns = (0..says.len())
                .filter(|&i| says[i] != Column::Plain)
                .map(|i| (i, says[i]))
                .collect();
            header = None;
            continue;
        }
        if !trimmed.starts_with('|') {
            header = None;
            secret_columns.clear();
            continue;
        }
        let cells: Vec<(usize, &str)> = {
            let inner_start = start + line.find('|').unwrap_or(0) + 1;
            let mut at = inner_start;
            let body = &text[inner_start..start + line.trim_end().len()];
            body.split('|')
                .map(|cell| {
                    let here = at;
                    at += cell.len() + 1;
                    (here, cell)
                })
                .collect()
        };
        let is_rule = cells
            .iter()
            .all(|(_, c)| c.trim().chars().all(|ch| matches!(ch, '-' | ':' | ' ')));
        if is_rule {
            if let Some(says) = header.take() {
                secret_columns = (0..says.len())
                    .filter(|&i| says[i] != Column::Plain)
                    .map(|i| (i, says[i]))
                    .collect();
            }
            continue;
        }
        if secret_columns.is_empty() {
            header = Some(cells.iter().map(|(_, c)| column_of(c)).collect());
            continue;
        }
        for &(column, kind) in &secret_columns {
            let Some(&(at, cell)) = cells.get(column) else {
                continue;
            };
            let value = cell.trim().trim_matches('`');
            let value_at = at + cell.find(value).unwrap_or(0);
            if cell_is_secret(kind, value) {
                out.push(value_at..value_at + value.len());
            }
        }
    }
}

/// A CSV or TSV export of accounts: the cells under a header that says secret (`password`,
/// `temp_password`, `pin`), in rows with as many cells as the header. The header is the first
/// line, made of names only.
fn csv_column_spans(text: &str, out: &mut Vec<Range<usize>>) {
    let Some(first_end) = text.find('\n') else {
        return;
    };
    let header = text[..first_end].trim_end_matches('\r');
    let separator = if header.matches('\t').count() >= 1 {
        '\t'
    } else if header.matches(',').count() >= 2 {
        ','
    } else {
        return;
    };
    let names: Vec<&str> = header
        .split(separator)
        .map(|n| n.trim().trim_matches('"'))
        .collect();
    if !names.iter().all(|n| {
        !n.is_empty()
            && n.len() <= 40
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" _-.".contains(&b))
    }) {
        return;
    }
    let columns: Vec<Column> = names
        .iter()
        .map(|n| match column_of(n) {
            // A CSV header says less than a document's table: `token` or `key` alone is data.
            Column::Secret if rules::name_says(n) != rules::NameSays::Secret => Column::Plain,
            column => column,
        })
        .collect();
    if columns.iter().all(|c| *c == Column::Plain) {
        return;
    }
    let mut offset = first_end + 1;
    for line in text[first_end + 1..].split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let row = line.trim_end_matches(['\r', '\n']);
        let cells: Vec<&str> = row.split(separator).collect();
        if cells.len() != names.len() {
            continue;
        }
        let mut at = start;
        for (i, cell) in cells.iter().enumerate() {
            let value = cell.trim().trim_matches('"');
            let keep = match columns[i] {
                Column::Secret => value.len() >= 4 && !rules::is_key_name(value),
                column => cell_is_secret(column, value),
            };
            if keep {
                let value_at = at + cell.find(value).unwrap_or(0);
                out.push(value_at..value_at + value.len());
            }
            at += cell.len() + 1;
        }
    }
}

/// A one-time-password seed as authenticator apps show it (eight groups of four base32
/// characters: `r5cz rjpc py64 rmqh almt 7nil 6e2m lrde`) and recovery codes in four groups of
/// four letters and digits (`XUAU-YCG9-OK0G-AB2J`): shapes ordinary text does not take.
static GROUPED_SEED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)(?:[a-z2-7]{4}(?: [a-z2-7]{4}){7}|[A-Z2-7]{4}(?: [A-Z2-7]{4}){7}|[A-Z0-9]{4}(?:-[A-Z0-9]{4}){3})(?-u:\b)")
        .expect("valid")
});

fn grouped_seed_spans(text: &str, out: &mut Vec<Range<usize>>) {
    for found in GROUPED_SEED.find_iter(text) {
        let v = found.as_str();
        let digits = v.bytes().filter(u8::is_ascii_digit).count();
        let letters = v.bytes().filter(u8::is_ascii_alphabetic).count();
        let hex = v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if digits >= 2 && letters >= 2 && !hex {
            out.push(found.range());
        }
    }
}

pub fn spans(text: &str, out: &mut Vec<Range<usize>>) {
    encoded_spans(text, out);
    table_column_spans(text, out);
    csv_column_spans(text, out);
    grouped_seed_spans(text, out);
    prose_password_spans(text, out);
    decoder_spans(text, out);
    char_code_spans(text, out);
    concatenation_spans(text, out);
    join_spans(text, out);
    word_list_join_spans(text, out);
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

    /// Written for this test: literals decoded where they stand, concatenated, joined with a
    /// separator, and passwords named in prose.
    #[test]
    fn decoded_concatenated_and_prose_credentials() {
        // "Marlow1987!" in base64, hex and percent-encoding.
        assert_eq!(
            found("pw = base64.b64decode(\"TWFybG93MTk4NyE=\")\n"),
            ["TWFybG93MTk4NyE="]
        );
        assert_eq!(
            found("const p = Buffer.from(\"4d61726c6f773139383721\", \"hex\").toString();\n"),
            ["4d61726c6f773139383721"]
        );
        assert_eq!(
            found("const p = decodeURIComponent(\"Marlow1987%21\");\n"),
            ["Marlow1987%21"]
        );
        assert_eq!(
            found("static const char k[] = \"Qv7RtZ2mXw9L\"\n    \"pK3sNd8fYh4J\";\n"),
            ["Qv7RtZ2mXw9L", "pK3sNd8fYh4J"]
        );
        assert_eq!(
            found("auto s = std::string(\"Qv7RtZ2mXw9L\") + \"pK3sNd8fYh4J\";\n"),
            ["Qv7RtZ2mXw9L", "pK3sNd8fYh4J"]
        );
        assert_eq!(
            found("K = \"-\".join((\"QX4T9ZRB\", \"M2K8W7PD\", \"Z7WQ3KTN\"))\n"),
            ["QX4T9ZRB", "M2K8W7PD", "Z7WQ3KTN"]
        );
        assert_eq!(
            found("PW = %w[c9e1f2a7b3d4 8f0e6a5b2c1d].join\n"),
            ["c9e1f2a7b3d4", "8f0e6a5b2c1d"]
        );
        assert_eq!(
            found("2. Guest Wi-Fi: password `marlow1987`\n"),
            ["marlow1987"]
        );
        assert_eq!(
            found("Your temporary password: Marlow1987! Change it.\n"),
            ["Marlow1987!"]
        );
        assert_eq!(found("The door code is \"480913\".\n"), ["480913"]);
    }

    #[test]
    fn ordinary_decodes_concatenations_and_prose_are_left() {
        for text in [
            "assert b64decode(\"Zm9vYmFy\") == b\"foobar\"\n",
            "import (\n\t\"fmtx\"\n\t\"strconv\"\n)\n",
            ">>> str(_encode_auth('username%3Apassword'))\n'dXNlcm5hbWU6cGFzc3dvcmQ='\n",
            "DEFAULT = \":\".join([\"ECDHE+AESGCM\", \"DHE+CHACHA20\", \"!aNULL\"])\n",
            "pattern = '|'.join(['\\r\\n', '\\r', '\\n'])\n",
            "paths = (\"../../include\" \"/opt/local/include\")\n",
            "Pin `numpy==1.26` in the lock file.\n",
            "Set the password `field` in the form.\n",
            "password: str or None\n",
        ] {
            assert!(found(text).is_empty(), "{text}: {:?}", found(text));
        }
    }

    /// Written for this test: character codes, base85 and Elixir's `<>`.
    #[test]
    fn char_codes_base85_and_binary_concatenation() {
        // "Marlow1987!" as character codes.
        assert_eq!(
            found(
                "const pw = String.fromCharCode(77, 97, 114, 108, 111, 119, 49, 57, 56, 55, 33);\n"
            ),
            ["77, 97, 114, 108, 111, 119, 49, 57, 56, 55, 33"]
        );
        assert!(found("const s = String.fromCharCode(72, 101, 108, 108, 111, 33);\n").is_empty());
        assert_eq!(
            found("KEY = base64.b85decode(\"c$Tk9Wo~0aZ*FVgX>MfY\")\n"),
            ["c$Tk9Wo~0aZ*FVgX>MfY"]
        );
        assert_eq!(
            found("key = \"Qv7RtZ2mXw9L\" <> \"pK3sNd8fYh4J\"\n"),
            ["Qv7RtZ2mXw9L", "pK3sNd8fYh4J"]
        );
    }

    /// Written for this test: a table of accounts, seeds as apps show them, prose passwords.
    #[test]
    fn account_tables_grouped_seeds_and_prose() {
        let table = "| System | User | Password |\n|---|---|---|\n| Wiki | admin | `Fq2#wLp9` |\n| Alarm | - | 480913 |\n| Printer | - | in the vault |\n";
        assert_eq!(found(table), ["Fq2#wLp9", "480913"]);
        let ordinary =
            "| Option | Default | Meaning |\n|---|---|---|\n| `timeout` | 30 | seconds |\n";
        assert!(found(ordinary).is_empty());
        assert_eq!(
            found("TOTP: q4zm 7kfa 2xtr w5bn 5hpe mcv3 d6ys k6uj\n"),
            ["q4zm 7kfa 2xtr w5bn 5hpe mcv3 d6ys k6uj"]
        );
        assert_eq!(found("- QX4T-9ZRB-M2K8-W7PD\n"), ["QX4T-9ZRB-M2K8-W7PD"]);
        assert!(found("id = \"ABCD-EF12-3456-7890\"\n").is_empty());
        assert_eq!(
            found("pw for the office wifi is orchard2024 ok\n"),
            ["orchard2024"]
        );
        assert!(found("password = hash_v2(raw)\n").is_empty());
    }

    /// Written for this test: CSV exports of accounts, codes and bold passwords in prose.
    #[test]
    fn csv_accounts_codes_and_bold_prose() {
        let csv =
            "system,username,temp_password,notes\nPortal,ana,Orchard2024,first login\nWiki,bo,x,\n";
        assert_eq!(found(csv), ["Orchard2024"]);
        assert!(found("name,version,license\nserde,1.0.200,MIT\n").is_empty());
        assert_eq!(found("alarm code changed to 743210, ok\n"), ["743210"]);
        assert!(found("const LED_PIN = 13;\n").is_empty());
        assert_eq!(
            found("The Wi-Fi is `Floor`, password **Orchard_2024**.\n"),
            ["Orchard_2024"]
        );
    }

    /// Written for this test: code columns want digits; a bare `Code` wants six or more.
    #[test]
    fn code_columns_and_codes_named_in_a_sentence() {
        let table = "| Site | Master code | Notes |\n|---|---|---|\n| North | 480913 | ok |\n";
        assert_eq!(found(table), ["480913"]);
        let errors = "| Code | Meaning |\n|---|---|\n| 4004 | not found |\n";
        assert!(found(errors).is_empty());
        assert_eq!(
            found("site,panel,alarm_code\nNorth,DSC,48091377\n"),
            ["48091377"]
        );
        assert_eq!(
            found("new door code for the back entrance is 751920 from today\n"),
            ["751920"]
        );
    }
}
