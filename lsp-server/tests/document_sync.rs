//! Thousands of random incremental edits, sent back to back (so the server's concurrent
//! dispatch would reorder them if it could), with multi-byte text and every kind of line
//! break, checked against a full-text oracle that implements the LSP rules independently.

mod common;

use common::LspClient;
use serde_json::json;

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Utf16,
    Utf8,
}

/// The oracle: a `String`, lines split at "\r\n", "\n" or "\r" as LSP says.
struct Oracle {
    text: String,
}

impl Oracle {
    /// Byte ranges of each line's content (without its break).
    fn lines(&self) -> Vec<(usize, usize)> {
        let bytes = self.text.as_bytes();
        let mut lines = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    lines.push((start, i));
                    i += 2;
                    start = i;
                }
                b'\r' | b'\n' => {
                    lines.push((start, i));
                    i += 1;
                    start = i;
                }
                _ => i += 1,
            }
        }
        lines.push((start, bytes.len()));
        lines
    }

    fn units(s: &str, unit: Unit) -> usize {
        match unit {
            Unit::Utf16 => s.encode_utf16().count(),
            Unit::Utf8 => s.len(),
        }
    }

    /// Byte offset of a position, with the server's clamping rules.
    fn offset(&self, line: usize, column: usize, unit: Unit) -> usize {
        let lines = self.lines();
        let Some(&(start, end)) = lines.get(line) else {
            return self.text.len();
        };
        let mut units = 0;
        for (i, c) in self.text[start..end].char_indices() {
            let width = match unit {
                Unit::Utf16 => c.len_utf16(),
                Unit::Utf8 => c.len_utf8(),
            };
            if units + width > column {
                return start + i;
            }
            units += width;
        }
        end
    }

    /// A position for a byte offset that is a char boundary not inside a "\r\n".
    fn position(&self, offset: usize, unit: Unit) -> (usize, usize) {
        for (index, (start, end)) in self.lines().into_iter().enumerate() {
            if offset >= start && offset <= end {
                return (index, Self::units(&self.text[start..offset], unit));
            }
        }
        unreachable!("offset inside a line break")
    }
}

const PIECES: &[&str] = &[
    "a",
    "xyz",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "é",
    "😀",
    "中文",
    "👩‍💻",
    "𝄞x",
    "fn f() {",
    "}",
    "\r\n\r\n",
    "ß",
    "",
];

fn random_boundary(oracle: &Oracle, rng: &mut Rng) -> usize {
    // A random position inside some line's content (never between \r and \n).
    let lines = oracle.lines();
    let (start, end) = lines[rng.below(lines.len())];
    let boundaries: Vec<usize> = oracle.text[start..end]
        .char_indices()
        .map(|(i, _)| start + i)
        .chain(std::iter::once(end))
        .collect();
    boundaries[rng.below(boundaries.len())]
}

fn run_random_edits(unit: Unit, seed: u64, edits: usize) {
    let capabilities = match unit {
        Unit::Utf8 => json!({"general": {"positionEncodings": ["utf-8"]}}),
        Unit::Utf16 => json!({}),
    };
    let (mut client, result) = LspClient::start(capabilities, json!({}));
    let expected_encoding = if unit == Unit::Utf8 {
        "utf-8"
    } else {
        "utf-16"
    };
    assert_eq!(
        result["capabilities"]["positionEncoding"],
        expected_encoding
    );
    let uri = "file:///random.txt";
    let mut oracle = Oracle {
        text: "héllo 😀\r\nwörld\n中文\rend".to_string(),
    };
    client.open(uri, "plaintext", &oracle.text);
    let mut rng = Rng(seed);
    let mut version = 1;
    for round in 0..edits {
        let changes_in_batch = 1 + rng.below(3);
        let mut changes = Vec::new();
        for _ in 0..changes_in_batch {
            let mut text = String::new();
            for _ in 0..rng.below(4) {
                text.push_str(PIECES[rng.below(PIECES.len())]);
            }
            let kind = rng.below(20);
            if kind == 0 {
                // Occasionally a whole-document replacement.
                oracle.text = text.clone();
                changes.push(json!({"text": text}));
                continue;
            }
            let (start_line, start_col, end_line, end_col) = if kind == 1 {
                // Out of range: a line far past the end and a column far past its line.
                let line = rng.below(oracle.lines().len() + 3);
                (line, 1000 + rng.below(10), line + rng.below(50), 5000)
            } else {
                let a = random_boundary(&oracle, &mut rng);
                let b = if rng.below(3) == 0 {
                    a
                } else {
                    random_boundary(&oracle, &mut rng)
                };
                let (a, b) = (a.min(b), a.max(b));
                let (sl, sc) = oracle.position(a, unit);
                let (el, ec) = oracle.position(b, unit);
                (sl, sc, el, ec)
            };
            let start = oracle.offset(start_line, start_col, unit);
            let end = oracle.offset(end_line, end_col, unit);
            let (start, end) = (start.min(end), start.max(end));
            oracle.text.replace_range(start..end, &text);
            changes.push(json!({
                "range": {"start": {"line": start_line, "character": start_col}, "end": {"line": end_line, "character": end_col}},
                "text": text
            }));
        }
        version += 1;
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": changes}),
        );
        // Check now and then (and at the end); in between, edits pile up unread.
        if round % 500 == 499 || round + 1 == edits {
            assert_eq!(
                client.document_text(uri),
                json!(oracle.text),
                "after edit {round} (seed {seed})"
            );
        }
    }
    client.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": uri}}),
    );
    assert_eq!(
        client.document_text(uri),
        serde_json::Value::Null,
        "closing frees the document"
    );
    assert!(client.shutdown().success());
}

#[test]
fn random_edits_utf16_match_the_oracle() {
    run_random_edits(Unit::Utf16, 0x9E37_79B9_7F4A_7C15, 3000);
}

#[test]
fn random_edits_utf8_match_the_oracle() {
    run_random_edits(Unit::Utf8, 0xD1B5_4A32_D192_ED03, 2000);
}

#[test]
fn positions_inside_surrogate_pairs_and_past_the_end_never_crash() {
    let (mut client, _) = LspClient::start(json!({}), json!({}));
    let uri = "file:///e.txt";
    client.open(uri, "plaintext", "a😀b\r\nc");
    // Column 2 is inside the emoji's surrogate pair: rounds down to before the emoji.
    client.notify("textDocument/didChange", json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
        {"range": {"start": {"line": 0, "character": 2}, "end": {"line": 0, "character": 2}}, "text": "X"},
        {"range": {"start": {"line": 9, "character": 0}, "end": {"line": 99, "character": 99}}, "text": "!"},
        {"range": {"start": {"line": 1, "character": 0}, "end": {"line": 0, "character": 99}}, "text": "|"},
        {"range": {"start": {"line": 4294967295u32, "character": 4294967295u32}, "end": {"line": 0, "character": 0}}, "text": ""}
    ]}));
    // Reversed range (line 1 → line 0) replaces the CRLF between them; the huge one
    // deletes everything.
    assert_eq!(client.document_text(uri), json!(""));
    client.notify("textDocument/didChange", json!({"textDocument": {"uri": uri, "version": 3}, "contentChanges": [
        {"text": "x😀y"},
        {"range": {"start": {"line": 0, "character": 2}, "end": {"line": 0, "character": 3}}, "text": "Z"}
    ]}));
    // Start column 2 rounds down to before the emoji, end column 3 is after it.
    assert_eq!(
        client.document_text(uri),
        json!("xZy"),
        "a column inside a pair rounds down"
    );
    let response = client.request(
        "textDocument/inlineCompletion",
        LspClient::inline_completion_params(uri, 7, 99),
    );
    assert!(response.get("error").is_none());
    assert!(client.shutdown().success());
}
