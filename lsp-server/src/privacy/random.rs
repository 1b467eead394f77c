//! Credentials by their look alone, with no name and no position to go by: a literal that
//! reads as random where ordinary code reads as words. Every rule in `rules.rs`, `gitleaks.rs`
//! and `positions.rs` needs a name, a prefix or a position that says "credential"; each new
//! author of a test corpus found idioms none of them knew (issue 29). What those idioms share is
//! the value: generated keys and tokens, and passwords that mix cases, digits and symbols.
//!
//! Two tests, both over one line at a time:
//! - a *random-looking token*: 16+ letters and digits from the base64/hex alphabets whose
//!   characters follow each other the way ordinary code's words rarely do (`bigram_table.rs`,
//!   learnt from the tune half of the pinned packages), or hex under a name that says key;
//! - a *password*: a quoted literal or a config value of 10–64 characters that mixes upper and
//!   lower case with symbols (`!@#$%^&*~+?`) and reads random, or ends in digits and a symbol.
//!
//! What looks random in ordinary code and is not a credential is told apart by its form or by
//! the name just before it: digests (`checksum =`, `sha256-`, `h1:`, `commit/`, `urn:`), UUIDs,
//! `0x` numbers, dates, versions, ids in short groups, repeated or counting fixtures, names
//! made of words (camelCase included), base64 that decodes to text, blocks of base64 lines
//! (encoded files), certificate bodies. Thresholds were set on the spent corpus halves and the
//! tune half of the pinned packages (`tests/secrets/bigram_table.py`); the other half was the
//! held-out part of the false-positive scan (RESULTS.md says what it found).

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::bigram_table::LOG_PROB;

/// Mean ln P(next | previous) x 100 per character, under ordinary code's bigrams, below which a
/// token reads random. Spent-halves credentials: median -581, 10th percentile -663, 90th -395;
/// the tune packages' 16+ character words: 99th percentile -226.
const RANDOM_BELOW: i32 = -400;
/// The same for a password, whose symbols cut it into short runs that score closer to words.
const PASSWORD_RANDOM_BELOW: i32 = -400;
/// A part of a token scoring above this reads as a word (`hello`, `world`, `armhf` does not).
const WORD_ABOVE: i32 = -380;
/// A 5+ letter part scoring above this is a word for `has_long_word`.
const LONG_WORD_ABOVE: i32 = -290;
const MIN_TOKEN_ALNUM: usize = 16;
const MIN_HEX: usize = 24;
/// Lines looked back for the head of a value's block, whose name may say key (hex needs one).
const CONTEXT_LINES: usize = 8;

const PASSWORD_SYMBOLS: &[u8] = b"!@#$%^&*~+?";
/// How far before a token its name is looked for when deciding it is a digest.
const DIGEST_NAME_BYTES: usize = 40;

static DIGEST_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)sha-?\d|sha\d*sum|md5|hash|digest|checksum|integrity|(?-u:\b)crc|etag|commit|(?-u:\b)rev(?-u:\b)|revision|fingerprint|uuid|guid|(?-u:\b)h1:|(?-u:\b)sum(?-u:\b)|nonce|opaque|base64,|urn:|/blob/|/tree/|(?-u:\b)id(?-u:\b)|_id(?-u:\b)|(?-i:[a-z]Id)(?-u:\b)",
    )
    .expect("valid")
});

static SECRET_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)key|token|secret|passw|pwd|auth(?:[^o]|$)|cred|private|signing|hmac|salt|session|cookie|bearer|access|login|api(?-u:\b)|api_?k")
        .expect("valid")
});

/// Keys of data, not of locks: `cache_key`, `sort_key`, `primary key`, `idempotency-key`.
static DATA_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:cache|sort|primary|foreign|partition|hash|lookup|group|index|dict|map|idempotency|dedup|dedupe|object|row|etag|range|shard)[ _-]?keys?")
        .expect("valid")
});

static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}").expect("valid")
});

/// `1.0a1.post5+deadbeef`, `v2.3.1-rc4`: versions start with a number and a dot.
static VERSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[vV]?\d+[.!]\d").expect("valid"));

static DATE_OR_TIME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d{4}-\d\d-\d\d|\d\d:\d\d").expect("valid"));

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+/_-.=~".contains(&b)
}

/// Bytes that end a password candidate: space, quotes, brackets, separators of code.
fn ends_word(b: u8) -> bool {
    b.is_ascii_whitespace() || b"\"'`,;()[]{}<>|\\".contains(&b)
}

/// Mean ln P x 100 per letter or digit, each run of them scored from the word's edge.
/// Whether a token's letters and digits follow each other as ordinary code's words rarely do,
/// and no long word is in it (for a file that is one token and nothing else).
pub(super) fn reads_random(token: &str) -> bool {
    token.bytes().filter(u8::is_ascii_alphanumeric).count() >= 12
        && bigram_score(token) < RANDOM_BELOW
        && !mostly_words(token)
        && !has_long_word(token)
}

fn bigram_score(token: &str) -> i32 {
    let (mut sum, mut n) = (0i32, 0i32);
    let mut prev = 36usize;
    for b in token.bytes() {
        let k = match b.to_ascii_lowercase() {
            c @ b'a'..=b'z' => (c - b'a') as usize,
            c @ b'0'..=b'9' => (c - b'0') as usize + 26,
            _ => {
                prev = 36;
                continue;
            }
        };
        sum += LOG_PROB[prev][k] as i32;
        n += 1;
        prev = k;
    }
    if n == 0 {
        0
    } else {
        sum / n
    }
}

/// Random text uses many characters and rarely repeats or counts up: `YYYYYYYYYYYYYYYY`,
/// `abcdefghijklmnop` and `ABCCCDEEFGHIJJKK` are fixtures, not keys.
fn varied(token: &str) -> bool {
    let alnum: Vec<u8> = token.bytes().filter(u8::is_ascii_alphanumeric).collect();
    let mut seen = [false; 128];
    alnum.iter().for_each(|&b| seen[b as usize] = true);
    let distinct = seen.iter().filter(|s| **s).count();
    let steps = alnum
        .windows(2)
        .filter(|w| w[1] == w[0] || w[1] == w[0].wrapping_add(1))
        .count();
    distinct >= 8 && steps * 10 < alnum.len().saturating_sub(1) * 4
}

/// `GHSA-9wx4-h78v-vm56`, `j49.j48.j47`: ids and paths printed in short groups.
fn short_groups(token: &str) -> bool {
    [b'-', b'.'].iter().any(|&sep| {
        let groups: Vec<&str> = token.split(sep as char).collect();
        groups.len() >= 3 && groups.iter().all(|g| g.len() <= 5)
    })
}

/// A 6-character piece seen twice (`1b23exfcz3r1b23exfcz3r`): a fixture built by repetition.
fn repeats(token: &str) -> bool {
    let b = token.as_bytes();
    // Long base64 repeats its own structure (`LS0tLS1` of a PEM's dashes, twice).
    if b.len() < 12 || b.len() > 64 {
        return false;
    }
    let mut seen = std::collections::HashSet::with_capacity(b.len());
    b.windows(6).any(|w| !seen.insert(w))
}

/// Lower-to-upper changes inside runs of letters: camelCase names have one or two, generated
/// passwords and keys scatter them.
fn humps(word: &str) -> usize {
    word.as_bytes()
        .windows(2)
        .filter(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
        .count()
}

/// Whether half or more of the token's letters and digits sit in parts (between `-_./`) that
/// read as words: `hello-world-armv7l-armhf`, a path, a dotted name.
fn mostly_words(token: &str) -> bool {
    let total = token.bytes().filter(u8::is_ascii_alphanumeric).count();
    let in_words: usize = camel_words(token)
        .into_iter()
        .filter(|part| reads_as_word(part))
        .map(str::len)
        .sum();
    in_words * 2 >= total
}

/// A word of 5+ letters that scores as ordinary code's do (`openvpnIPv4Address`,
/// `plm386w16BuiltIn`): generated text almost never spells one.
fn has_long_word(token: &str) -> bool {
    camel_words(token)
        .into_iter()
        .any(|word| word.len() >= 6 && bigram_score(word) > LONG_WORD_ABOVE)
}

/// A run of 3+ letters that scores as ordinary code's words do, or a pronounceable one of 4+
/// (a vowel, no four consonants in a row: `Weekly`, which the bigrams score low).
fn reads_as_word(part: &str) -> bool {
    if part.len() < 3 {
        return false;
    }
    if bigram_score(part) > WORD_ABOVE {
        return true;
    }
    let vowel = |b: u8| b"aeiouy".contains(&b.to_ascii_lowercase());
    let mut consonants = 0;
    part.len() >= 4
        && part.bytes().any(vowel)
        && part.bytes().all(|b| {
            consonants = if vowel(b) { 0 } else { consonants + 1 };
            consonants < 4
        })
}

/// The words of an identifier: split at anything not a letter and before a capital that
/// starts a lowercase run (`testWeeklyByNWeekDay53` -> test Weekly By N Week Day).
fn camel_words(token: &str) -> Vec<&str> {
    let b = token.as_bytes();
    let mut words = Vec::new();
    let mut start = None;
    for i in 0..=b.len() {
        let letter = i < b.len() && b[i].is_ascii_alphabetic();
        let boundary = i < b.len()
            && letter
            && b[i].is_ascii_uppercase()
            && i > 0
            && (b[i - 1].is_ascii_lowercase()
                || (b[i - 1].is_ascii_uppercase()
                    && b.get(i + 1).is_some_and(u8::is_ascii_lowercase)));
        if let Some(s) = start {
            if !letter || boundary {
                words.push(&token[s..i]);
                start = None;
            }
        }
        if letter && start.is_none() {
            start = Some(i);
        }
    }
    words
}

/// Base64 (standard or URL-safe, padding optional) that decodes to printable text is data: a
/// sample string of a test, a message. A key decodes to random bytes, which are almost never
/// all printable. `user:password` and PEM text stay credentials.
fn decodes_to_text(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    if body.len() < 12 || body.len() % 4 == 1 {
        return false;
    }
    let Some(bytes) = super::rules::decode_base64(body) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return false;
    };
    // A password stored base64-encoded (`<Pass encoding="base64">`, keyrings) is still one.
    if is_password(text, true) || is_random_token(text, false) {
        return false;
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return false;
    }
    !(text.contains("-----BEGIN")
        || text
            .split_once(':')
            .is_some_and(|(u, p)| !u.is_empty() && !p.is_empty() && !u.contains(' ')))
}

/// Whether `token` (trimmed, one line) reads as a generated key or token. `keyish` says a
/// name nearby is about keys (hex needs it: digests are hex too).
fn is_random_token(token: &str, keyish: bool) -> bool {
    let alnum = token.bytes().filter(u8::is_ascii_alphanumeric).count();
    if alnum < MIN_TOKEN_ALNUM {
        return false;
    }
    let letters = token.bytes().filter(u8::is_ascii_alphabetic).count();
    let digits = alnum - letters;
    if token.starts_with("0x") || token.starts_with("0X") || token.starts_with("xn--") {
        return false;
    }
    if UUID.is_match(token) || DATE_OR_TIME.is_match(token) || VERSION.is_match(token) {
        return false;
    }
    // Hex, or hex with a short word on it (`tmpl_<sha1>`, `diff-<sha256>R48`): digests and ids
    // are written so, and so are keys; a name must say which.
    let hex_digits = |upper: bool| {
        token
            .bytes()
            .filter(|b| {
                b.is_ascii_digit()
                    || if upper {
                        (b'A'..=b'F').contains(b)
                    } else {
                        (b'a'..=b'f').contains(b)
                    }
            })
            .count()
    };
    let hex = hex_digits(false).max(hex_digits(true));
    if hex * 10 >= alnum * 9 {
        return keyish && alnum >= MIN_HEX && letters >= 4 && digits >= 4;
    }
    // Random letters and digits of 16+ almost always hold a digit; names (`Tomasz-Kluczkowski`,
    // `Gosplemkonyushnyaya`) do not.
    // Mostly digits (`1.358 0 01-.42-.991zm4.957`, SVG paths, numbers) is not base62.
    if letters < 6
        || digits == 0
        || letters * 2 < alnum
        || !varied(token)
        || short_groups(token)
        || repeats(token)
    {
        return false;
    }
    let mixed_case = token.bytes().any(|b| b.is_ascii_uppercase())
        && token.bytes().any(|b| b.is_ascii_lowercase());
    // One case only (`mitsuhiko/werkzeug`, `8059ddhdle77cb52`): words and ids come close to
    // random there, so it takes more length and some digits.
    if !mixed_case && (alnum < 20 || digits < 2) {
        return false;
    }
    if bigram_score(token) >= RANDOM_BELOW || mostly_words(token) || has_long_word(token) {
        return false;
    }
    // A dotted token (a JWT) is data only if every part decodes to text.
    !token
        .split('.')
        .filter(|part| !part.is_empty())
        .all(decodes_to_text)
}

/// Whether `word` (no whitespace) reads as a password: mixed case, a symbol past its first
/// character, letters, and either random-reading or ending in digits and a symbol.
pub(super) fn is_password(word: &str, quoted: bool) -> bool {
    let bytes = word.as_bytes();
    if !(10..=64).contains(&bytes.len()) {
        return false;
    }
    if !quoted && !bytes[0].is_ascii_alphanumeric() {
        return false;
    }
    if bytes.iter().any(|&b| ends_word(b) || b"/:".contains(&b)) {
        return false;
    }
    // Unquoted, `+*^&~?` between a name and a number is an expression (`len+1`); a password
    // there needs `!@#$%`, or ends in digits and a symbol.
    let symbols: &[u8] = if quoted { PASSWORD_SYMBOLS } else { b"!@#$%" };
    // Words, digits and a symbol (`Harbor.lime.Orbit4410=`): how people make passwords.
    let last = bytes[bytes.len() - 1];
    // `=` and `_` end base64 and names too; a passphrase has no `+` or `/` in it.
    let passphrase_end =
        matches!(last, b'=' | b'_') && !bytes.iter().any(|b| matches!(b, b'+' | b'/'));
    let ends_digits_symbol = (PASSWORD_SYMBOLS.contains(&last) || passphrase_end)
        && bytes[..bytes.len() - 1]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count()
            >= 2;
    if !ends_digits_symbol && !bytes[1..].iter().any(|b| symbols.contains(b)) {
        return false;
    }
    let letters = bytes.iter().filter(|b| b.is_ascii_alphabetic()).count();
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    let weak_symbols = bytes
        .iter()
        .filter(|b| PASSWORD_SYMBOLS.contains(b) || b"_-.".contains(b))
        .count();
    if letters < 4 || digits == 0 && weak_symbols < 2 || !varied(word) {
        return false;
    }
    if !(bytes.iter().any(u8::is_ascii_uppercase) && bytes.iter().any(u8::is_ascii_lowercase)) {
        return false;
    }
    // HTML entities, percent-escapes and regex classes are text, not passwords.
    if ["a-z", "A-Z", "0-9"]
        .iter()
        .any(|range| word.contains(range))
    {
        return false;
    }
    if ["!=", "==", ">=", "<="].iter().any(|op| word.contains(op)) {
        return false;
    }
    if word.contains("&#") || word.matches('%').count() >= 2 && percent_escapes(word) >= 2 {
        return false;
    }
    if DATE_OR_TIME.is_match(word) {
        return false;
    }
    if ends_digits_symbol {
        return true;
    }
    // `JavaScript!`, `getBool=%v`, `haaaaalp.*HALP`: words with a symbol attached.
    if humps(word) == 0 {
        return false;
    }
    let total = bytes.iter().filter(|b| b.is_ascii_alphanumeric()).count();
    let in_words: usize = camel_words(word)
        .into_iter()
        .filter(|part| part.len() >= 3 && bigram_score(part) > WORD_ABOVE)
        .map(str::len)
        .sum();
    in_words * 2 < total && bigram_score(word) < PASSWORD_RANDOM_BELOW
}

/// Symbols people put in the passwords they choose (`Chelsea#82!!`, `wanjiru1995!`,
/// `RC&HO07281978`); `%+=<>*?` are left out: versions, queries, globs and arithmetic use them.
const CHOSEN_SYMBOLS: &[u8] = b"!#$&@^~";

/// Initials and a birth date (`MT!19560927`, `BC.20010414`): two or three letters, one of
/// `.!#&@$`, and eight digits with a year of 19xx/20xx at either end. A hyphen or underscore
/// there would be a ticket or order number (`AB-20010414`).
fn initials_and_date(bytes: &[u8]) -> bool {
    let letters = bytes.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if !(2..=3).contains(&letters) || bytes.len() != letters + 9 {
        return false;
    }
    let digits = &bytes[letters + 1..];
    let year = |d: &[u8]| matches!(&d[..2], b"19" | b"20");
    b".!#&@$".contains(&bytes[letters])
        && digits.iter().all(u8::is_ascii_digit)
        && (year(&digits[..4]) || year(&digits[4..]))
}

/// Whether a quoted `word` (no whitespace) reads as a password a person chose: a name or word,
/// a number of two digits or more, and one of `CHOSEN_SYMBOLS`, in any order, whatever the case.
/// `is_password` wants mixed case or a random read; this one is the common human shape
/// (held-out-8's spent half). Measured on ordinary code before it was kept: over the pinned
/// packages and this machine's site-packages (430 MB), quoted literals of this shape were 2
/// (`E!0.dev0`, `566#json-…`), both ruled out below; what it leaves out (`1!1.0a1`
/// epochs, `#ctype#` templates, `HEAD~10`, `pkg@1.2`, e-mail addresses) is listed in order.
pub(super) fn is_chosen_password(word: &str) -> bool {
    let bytes = word.as_bytes();
    if initials_and_date(bytes) {
        return true;
    }
    if !(6..=40).contains(&bytes.len()) || !bytes[0].is_ascii_alphanumeric() {
        return false;
    }
    // `<3` is a heart (`bandit<3Pepper9`); `<` alone is a comparison or a generic.
    let heart = |at: usize| bytes[at] == b'<' && bytes.get(at + 1) == Some(&b'3');
    if !(0..bytes.len()).all(|at| {
        let b = bytes[at];
        b.is_ascii_alphanumeric()
            || CHOSEN_SYMBOLS.contains(&b)
            || b"._-".contains(&b)
            || heart(at)
            || b == b'*'
    }) {
        return false;
    }
    // `*` is arithmetic or a glob (`3*ystep`, `2015-*-*`) unless the word has two other symbols
    // (`S$o74dU2*&U!`).
    if bytes.contains(&b'*') && bytes.iter().filter(|b| CHOSEN_SYMBOLS.contains(b)).count() < 2 {
        return false;
    }
    let letters = bytes.iter().filter(|b| b.is_ascii_alphabetic()).count();
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    let symbol = bytes.iter().any(|b| CHOSEN_SYMBOLS.contains(b)) || (0..bytes.len()).any(heart);
    if letters < 3 || digits < 2 || !symbol {
        return false;
    }
    // `1!1.0a1`, `E!0.dev0`: a version's epoch; `566#json-…`: a numbered anchor.
    let lead = bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    if lead < bytes.len()
        && matches!(bytes[lead], b'!' | b'#')
        && (lead == 1 || bytes[..lead].iter().all(u8::is_ascii_digit))
    {
        return false;
    }
    // `#ctype#`, `a.c#10#L10`: templates and quickfix lines.
    if bytes.iter().filter(|&&b| b == b'#').count() >= 2
        && !bytes.iter().any(|b| b"!$&^~@".contains(b))
    {
        return false;
    }
    // `HEAD~10`, `HEAD^2`: revisions.
    let tail_digits = bytes
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if tail_digits > 0
        && tail_digits < bytes.len()
        && matches!(bytes[bytes.len() - 1 - tail_digits], b'~' | b'^')
        && bytes.iter().filter(|b| CHOSEN_SYMBOLS.contains(b)).count() == 1
    {
        return false;
    }
    if let Some(at) = word.find('@') {
        let after = &bytes[at + 1..];
        // `pkg@1.2`, `node@v18`, `postgresql@15`: a package's version (its name is lower-case
        // letters; a password's word has capitals or digits: `Dunder@2026`, `Caul1flow3r@8`);
        // `a@b.example`: an address.
        let version = bytes[..at]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b"-_".contains(b))
            && (after.first().is_some_and(u8::is_ascii_digit)
                || after.first() == Some(&b'v') && after.get(1).is_some_and(u8::is_ascii_digit));
        let address = after.iter().position(|&b| b == b'.').is_some_and(|dot| {
            dot > 0
                && after[..dot]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                && after.get(dot + 1).is_some_and(u8::is_ascii_alphabetic)
        });
        if address || version && !bytes.iter().any(|b| b"!#$&^~".contains(b)) {
            return false;
        }
    }
    if word.contains("..") || word.matches('.').count() >= 2 {
        return false;
    }
    // A dotted version (`v1.2`, `3.11`) unless a word and two digits make it a password.
    let has_word_digits = word
        .as_bytes()
        .windows(3)
        .any(|w| w.iter().all(u8::is_ascii_alphabetic))
        && bytes.windows(2).any(|w| w.iter().all(u8::is_ascii_digit));
    if bytes
        .windows(3)
        .any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit())
        && !has_word_digits
    {
        return false;
    }
    // A name or word (three letters in a row), or initials (`SO&JA06122008`).
    bytes
        .windows(3)
        .any(|w| w.iter().all(u8::is_ascii_alphabetic))
        || bytes.windows(5).any(|w| {
            w[0].is_ascii_alphabetic()
                && w[1].is_ascii_alphabetic()
                && !w[2].is_ascii_alphanumeric()
                && w[3].is_ascii_alphabetic()
                && w[4].is_ascii_alphabetic()
        })
}

/// An app password as Google and Apple hand them out: four groups of four lower-case letters
/// (`mcjl-ovya-oqlt-ulnw`, `abcd efgh ijkl mnop`), most of them not words.
fn is_app_password(content: &str) -> bool {
    let groups: Vec<&str> = content.split(['-', ' ']).collect();
    content.len() == 19
        && groups.len() == 4
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_lowercase()))
        && groups
            .iter()
            .filter(|g| bigram_score(g) < WORD_ABOVE)
            .count()
            >= 3
}

/// A generated password of letters and digits only (`th83cSNUNMWQhch`): 12–64 of them, both
/// cases and a digit, reading random. Only after a user name and a colon: alone, such a
/// literal is as often an id.
fn random_alphanumeric_password(password: &str) -> bool {
    (12..=64).contains(&password.len())
        && password.bytes().all(|b| b.is_ascii_alphanumeric())
        && password.bytes().any(|b| b.is_ascii_uppercase())
        && password.bytes().any(|b| b.is_ascii_lowercase())
        && password.bytes().any(|b| b.is_ascii_digit())
        && reads_random(password)
}

/// `user:password` in one literal (`"kiosk:Chelsea#82!!"` before its base64 for a Basic
/// header): the part after a plain user name, when it reads as a chosen password.
fn chosen_after_user(content: &str) -> Option<Range<usize>> {
    let colon = content.find(':')?;
    let user = &content[..colon];
    let password = &content[colon + 1..];
    (!user.is_empty()
        && user.len() <= 64
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
        && (is_chosen_password(password)
            || is_password(password, true)
            || random_alphanumeric_password(password)))
    .then_some(colon + 1..content.len())
}

fn percent_escapes(word: &str) -> usize {
    word.as_bytes()
        .windows(3)
        .filter(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
        .count()
}

/// 16 or more `0x..` byte literals in a row (`{0x3e, 0x20, …}`, over lines): key material when a
/// name at their start or on the line before says key and the bytes are varied.
static BYTE_ARRAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:0[xX][0-9a-fA-F]{2}[ \t]*,\s*){15,}0[xX][0-9a-fA-F]{2}").expect("valid")
});

fn byte_array_spans(text: &str, out: &mut Vec<Range<usize>>) {
    if !text.contains("0x") && !text.contains("0X") {
        return;
    }
    for found in BYTE_ARRAY.find_iter(text) {
        let line_start = text[..found.start()].rfind('\n').map_or(0, |n| n + 1);
        let context_start = text[..line_start.saturating_sub(1)]
            .rfind('\n')
            .map_or(0, |n| n + 1);
        let context = &text[context_start..found.start()];
        let mut seen = [false; 256];
        let mut distinct = 0;
        for byte in found.as_str().split(',') {
            let digits = byte
                .trim()
                .trim_start_matches("0x")
                .trim_start_matches("0X");
            if let Ok(v) = u8::from_str_radix(digits, 16) {
                if !seen[v as usize] {
                    seen[v as usize] = true;
                    distinct += 1;
                }
            }
        }
        if distinct >= 12 && SECRET_WORD.is_match(context) {
            out.push(found.range());
        }
    }
}

/// Byte ranges of `text` that look like credentials by their value alone.
pub fn spans(text: &str, out: &mut Vec<Range<usize>>) {
    byte_array_spans(text, out);
    let mut line_start = 0;
    // (indent, says key) of the last lines with text: a value's name may head its block
    // (`keys = HashMap::from([` above `("eu", "…")`, a YAML key above its list).
    let mut recent: Vec<(usize, bool)> = Vec::with_capacity(CONTEXT_LINES + 1);
    let mut in_certificate = false;
    for line in text.split_inclusive('\n') {
        let at = line_start;
        line_start += line.len();
        let indent = line.len() - line.trim_start().len();
        let keyish_here = SECRET_WORD.is_match(line)
            && (!DATA_KEY.is_match(line) || SECRET_WORD.is_match(&DATA_KEY.replace_all(line, "")));
        // This line, the one before, or any line heading this one's block.
        let mut keyish = keyish_here || recent.last().is_some_and(|(_, k)| *k);
        let mut head_indent = indent;
        for &(i, k) in recent.iter().rev() {
            if i < head_indent {
                keyish |= k;
                head_indent = i;
            }
        }
        if !line.trim().is_empty() {
            if recent.len() == CONTEXT_LINES {
                recent.remove(0);
            }
            recent.push((indent, keyish_here));
        }
        if line.contains("-----BEGIN")
            && (line.contains("CERTIFICATE") || line.contains("PUBLIC KEY"))
        {
            in_certificate = true;
            continue;
        }
        if line.contains("-----END") {
            in_certificate = false;
            continue;
        }
        if in_certificate || !has_candidate(line) {
            continue;
        }
        // Three or more lines that are each one long base64 token are an encoded file (a
        // tzfile in a test, an image): data, not a key; a PEM key's body is the table's.
        if is_blob_line(line) && blob_lines_around(text, at, line.len()) >= 3 {
            continue;
        }
        line_spans(line, at, keyish, out);
    }
}

/// A run of the token alphabet: `name=value` is two tokens (base64 has `=` only at its end),
/// and a path is looked at part by part when any part of it reads as a word.
fn token_spans(
    line: &str,
    run: Range<usize>,
    keyish: bool,
    at: usize,
    out: &mut Vec<Range<usize>>,
) {
    let text = &line[run.clone()];
    let body_end = text.trim_end_matches('=').len();
    if let Some(cut) = text[..body_end].rfind('=') {
        token_spans(line, run.start..run.start + cut, keyish, at, out);
        token_spans(line, run.start + cut + 1..run.end, keyish, at, out);
        return;
    }
    let trimmed_start = text.len()
        - text
            .trim_start_matches(['.', '-', '_', '/', '=', '~', '+'])
            .len();
    let trimmed = text[trimmed_start..].trim_end_matches(['.', '-', '_', '/', '~']);
    let run = run.start + trimmed_start..run.start + trimmed_start + trimmed.len();
    if trimmed.len() < MIN_TOKEN_ALNUM {
        return;
    }
    let path_like = trimmed.contains('/')
        && trimmed
            .split('/')
            .any(|part| part.len() >= 3 && (part.contains('.') || bigram_score(part) > WORD_ABOVE));
    // A digest is named just before it: `checksum = "…"`, `h1:…`, `sha512-…`, `--hash=sha256:…`.
    // Not a key handed to an HMAC beside its digest's name (`mac(:hmac, :sha256, "whsec_…")`).
    let before =
        &line[line.floor_char_boundary(run.start.saturating_sub(DIGEST_NAME_BYTES))..run.start];
    let hmac_key = before.to_ascii_lowercase().contains("hmac");
    if DIGEST_NAME.is_match(before) && !hmac_key {
        return;
    }
    if path_like {
        let mut start = run.start;
        for part in trimmed.split('/') {
            named_parts(part, start, keyish, at, out);
            start += part.len() + 1;
        }
    } else {
        named_parts(trimmed, run.start, keyish, at, out);
    }
}

/// A token whose `-`/`_`/`.`-separated parts include a word (`recent-models-<hex id>`, `x.<sig>`,
/// `sk_live_<key>`) is judged by its other parts, each alone: the words are names, not key.
fn named_parts(token: &str, start: usize, keyish: bool, at: usize, out: &mut Vec<Range<usize>>) {
    if token.len() < MIN_TOKEN_ALNUM {
        return;
    }
    let has_word = token.split(['-', '_', '.']).any(|part| {
        part.len() >= 3 && part.bytes().all(|b| b.is_ascii_alphabetic()) && reads_as_word(part)
    });
    if !has_word {
        if is_random_token(token, keyish) {
            out.push(at + start..at + start + token.len());
        }
        return;
    }
    let mut from = start;
    for part in token.split(['-', '_', '.']) {
        if part.len() >= MIN_TOKEN_ALNUM && is_random_token(part, keyish) {
            out.push(at + from..at + from + part.len());
        }
        from += part.len() + 1;
    }
}

fn is_blob_line(line: &str) -> bool {
    let t = line.trim().trim_matches(['"', '\'', ',']);
    t.len() >= 60
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
}

/// Lines of the base64 block `line` (at `at`, `len` bytes) belongs to, counting up to 3.
fn blob_lines_around(text: &str, at: usize, len: usize) -> usize {
    let before = text[..at]
        .lines()
        .rev()
        .take(2)
        .take_while(|l| is_blob_line(l))
        .count();
    let after = text[at + len..]
        .lines()
        .take(2)
        .take_while(|l| is_blob_line(l))
        .count();
    1 + before + after
}

/// Cheap first look: a run of 10+ non-space bytes.
fn has_candidate(line: &str) -> bool {
    let mut run = 0;
    for b in line.bytes() {
        if b.is_ascii_whitespace() {
            run = 0;
        } else {
            run += 1;
            if run >= 10 {
                return true;
            }
        }
    }
    false
}

fn line_spans(line: &str, at: usize, keyish: bool, out: &mut Vec<Range<usize>>) {
    let bytes = line.as_bytes();
    // Tokens of the base64/hex alphabets.
    {
        let mut i = 0;
        while i < bytes.len() {
            if !is_token_byte(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && is_token_byte(bytes[i]) {
                i += 1;
            }
            let (s, e) = (start, i);
            token_spans(line, s..e, keyish, at, out);
        }
    }
    // Passwords: whole quoted literals, and words or the values after `=` / `:` in them.
    let mut i = 0;
    let mut blob_end = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if matches!(b, b'"' | b'\'' | b'`') {
            if let Some(len) = line[i + 1..].find(b as char) {
                let content = &line[i + 1..i + 1 + len];
                if is_app_password(content) {
                    out.push(at + i + 1..at + i + 1 + len);
                } else if !content.contains(char::is_whitespace) {
                    if is_password(content, true) || is_chosen_password(content) {
                        out.push(at + i + 1..at + i + 1 + len);
                    } else if let Some(password) = chosen_after_user(content) {
                        out.push(at + i + 1 + password.start..at + i + 1 + password.end);
                    }
                }
                // A long literal with no space is encoded data (base85, a hash table): its
                // pieces between brackets are not passwords.
                if content.len() > 64 && !content.contains(char::is_whitespace) {
                    blob_end = i + 1 + len;
                }
            }
        }
        if i < blob_end {
            i += 1;
            continue;
        }
        if ends_word(b) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !ends_word(bytes[i]) {
            i += 1;
        }
        // A path or a `sed` expression holds its parts between slashes.
        let mut part_start = start;
        let before =
            &line[line.floor_char_boundary(start.saturating_sub(DIGEST_NAME_BYTES))..start];
        if DIGEST_NAME.is_match(before) || DIGEST_NAME.is_match(&line[start..i]) {
            continue;
        }
        for part in line[start..i].split('/') {
            let end = part_start + part.len();
            match part.rfind(['=', ':']) {
                Some(cut) if is_password(&part[cut + 1..], false) => {
                    out.push(at + part_start + cut + 1..at + end)
                }
                _ if is_password(part, false) => out.push(at + part_start..at + end),
                _ => {}
            }
            part_start = end + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        spans(text, &mut out);
        out.sort_by_key(|r| (r.start, r.end));
        out.dedup();
        out.into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn random_tokens_in_unnamed_positions() {
        // Written for these tests, not taken from any corpus.
        assert_eq!(
            found("let pairs = [(\"eu\", \"q8ZtR2vLw0PnXe4KsY7uBd\")];\n"),
            ["q8ZtR2vLw0PnXe4KsY7uBd"]
        );
        assert_eq!(
            found("    tenant_b: Xk29fjQpL0zzRw81mNbV3c\n"),
            ["Xk29fjQpL0zzRw81mNbV3c"]
        );
        assert_eq!(
            found("define ACCESS\n  c7a1e9f04b2d86e3f5a09c1d2e4b7f6a\nendef\n"),
            ["c7a1e9f04b2d86e3f5a09c1d2e4b7f6a"]
        );
        // A JWT-like signed token: its signature does not decode to text.
        assert_eq!(
            found("x = eyJ1c2VyIjoxfQ.Zm9vYmFy.kX9q2LzR0vT8mPw3YbN1sQe7\n").len(),
            1
        );
    }

    #[test]
    fn passwords_by_their_look() {
        assert_eq!(
            found("conn(\"db\", \"svc\", \"Tq4!mVz9#pLe\")\n"),
            ["Tq4!mVz9#pLe"]
        );
        assert_eq!(
            found("ExecStart=/bin/x -p Harbor_lime_Orbit4410!\n"),
            ["Harbor_lime_Orbit4410!"]
        );
        assert_eq!(
            found("  - RELAY=Kestrel-Mosa-Pine22^\n"),
            ["Kestrel-Mosa-Pine22^"]
        );
    }

    #[test]
    fn ordinary_code_is_not_random() {
        for line in [
            "fn setUpI64SFlagSet(maxSafeFloat32Int+1) {}\n",
            "let wheel = \"foo-1.0-py3-none-any.whl\";\n",
            "assert v == \"1!1.0a1.post5.dev6+deadbeef\"\n",
            "id = \"f47ac10b-58cc-4372-a567-0e02b2c3d479\"\n",
            "const SEED: u64 = 0x9e3779b97f4a7c15;\n",
            "when = \"2014-02-04T12:30:15.224+05:00\"\n",
            "nonce = \"dGhlIHNhbXBsZSBub25jZQ==\"\n",
            "url = \"https://github.com/rust-lang/crates.io-index\"\n",
            "checksum = \"4722d768eff46b75989dd134e5c353f0d6296e5aaa3132e776cbdb56be7731aa\"\n",
            "expected = \"c32a86b1b8c5c198079efc9149ea2fcf956b8f6c\"\n",
            "logger.info(\"%s%d\", name, ConnectionPoolManager)\n",
            "link = \"is%3Aopen+is%3Aissue+label%3A%22mentored%22\"\n",
            "    return self.const=CRITICAL+10\n",
        ] {
            assert!(found(line).is_empty(), "{line:?}: {:?}", found(line));
        }
    }

    #[test]
    fn key_bytes_and_passphrases() {
        let c = "static const uint8_t hmac_key[] = {\n  0x1f, 0x8a, 0x33, 0xc4, 0x07, 0xee, 0x52, 0x9b,\n  0x6d, 0xa0, 0x14, 0xf2, 0x88, 0x3b, 0xc9, 0x71\n};\n";
        assert_eq!(found(c).len(), 1);
        // A table of bytes not named as a key stays.
        let table = c.replace("hmac_key", "crc_table");
        assert!(found(&table).is_empty());
        assert_eq!(
            found("RUN sed -i 's/__PW__/Maple.stone.Rivet5521=/' /etc/app.conf\n"),
            ["Maple.stone.Rivet5521="]
        );
    }

    #[test]
    fn hex_needs_a_name_that_says_key() {
        assert!(found("x = \"c7a1e9f04b2d86e3f5a09c1d2e4b7f6a\"\n").is_empty());
        assert_eq!(
            found("api = \"c7a1e9f04b2d86e3f5a09c1d2e4b7f6a\"\n").len(),
            1
        );
        // ... but not on a line about a digest.
        assert!(found("api_sha256 = \"c7a1e9f04b2d86e3f5a09c1d2e4b7f6a\"\n").is_empty());
    }

    #[test]
    fn certificate_bodies_are_public() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n-----END CERTIFICATE-----\n";
        assert!(found(pem).is_empty());
    }

    /// Written for this test: passwords people choose, by their look, wherever they are quoted.
    #[test]
    fn chosen_passwords_by_their_look() {
        assert_eq!(
            found("User.objects.create_user(\"ops\", \"ops@x.example\", \"Marlow1987!\")\n"),
            ["Marlow1987!"]
        );
        assert_eq!(found("let s = \"kiosk:Bramble#44\";\n"), ["Bramble#44"]);
        assert_eq!(found("pw := \"tobias&&Fern52\"\n"), ["tobias&&Fern52"]);
        assert_eq!(found("k = 'otter<3Maple21'\n"), ["otter<3Maple21"]);
        assert_eq!(
            found("app = \"wzqp-lrkt-vnhd-cymb\"\n"),
            ["wzqp-lrkt-vnhd-cymb"]
        );
        for text in [
            "v = Version(\"1!1.0a1\")\n",
            "r = \"E!0.dev0\"\n",
            "git(\"HEAD~10\")\n",
            "dep = \"lodash@4.17\"\n",
            "to = \"ann42@mail.example\"\n",
            "q = \"a.c#10#L10\"\n",
            "see = \"566#json-compatible\"\n",
            "e = \"3*ystep\"\n",
            "tmpl = \"pyobj_from_#ctype#1\"\n",
        ] {
            assert!(found(text).is_empty(), "{text}: {:?}", found(text));
        }
    }

    /// Written for this test: initials and a birth date; a generated password after a user.
    #[test]
    fn initials_dates_and_generated_passwords_after_a_user() {
        assert_eq!(found("login(\"ops\", \"QR!19640823\")\n"), ["QR!19640823"]);
        assert!(found("order = \"AB-20010414\"\n").is_empty());
        assert_eq!(
            found("auth = b64(\"sync:Tq8vKz3Lm2WnRcx\")\n"),
            ["Tq8vKz3Lm2WnRcx"]
        );
        assert!(found("u = \"urn:uuid:19954bd4-8909-5a14-baed-e5154795461a\"\n").is_empty());
    }
}
