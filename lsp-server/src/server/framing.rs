//! The client's frames, read from stdin: finds the next frame after a damaged one.
//!
//! tower-lsp-server's own transport decodes with tokio-util's `FramedRead`, which misparses
//! everything after one bad frame (a body without a newline gets glued to the next header
//! line), so one damaged frame would leave the editor with a server that answers nothing.
//! This reader is the only one (`connection` hands tower-lsp-server's service the messages).
//! Here:
//!
//! - a `Content-Length:` header is found anywhere in a line, so a header glued to the end
//!   of the previous (damaged) body is still found;
//! - a body that is not one JSON value (the caller's decoder parses it, once) is refused,
//!   and the reader looks for the next
//!   header *inside* the bytes it read (a declared length longer than the body swallows the
//!   start of the next frame) or, if there is none, skips lines until it finds one (a declared
//!   length shorter than the body leaves the rest of it in front of the next header);
//! - every damaged frame is answered with exactly one JSON-RPC parse error (id null, the
//!   request's id being unknowable) and one warn log line;
//! - nothing is buffered beyond its limit: a header line is kept to its last
//!   [`MAX_HEADER_LINE_BYTES`] (the part that can hold a glued `Content-Length`), a frame
//!   declaring more than [`MAX_FRAME_BYTES`] is skipped without being read into memory, and a
//!   body's buffer grows as its bytes arrive, never from the declared length alone.

use std::borrow::Cow;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Id, Response};

/// Larger frames are skipped (answered with an error) without being read into memory. The
/// largest legitimate frame is a `didOpen` of a big file; the session has its own, smaller,
/// limit on document size, so a frame this large is never worth buffering.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Header lines are short (`Content-Length: 12345`); of a longer line only its last this
/// many bytes are kept, enough to find a `Content-Length` header glued to its end.
pub const MAX_HEADER_LINE_BYTES: usize = 8 * 1024;

/// Bytes asked of the input per read.
const READ_CHUNK: usize = 64 * 1024;

const CONTENT_LENGTH: &[u8] = b"content-length";

/// Why a frame could not be used. Each one is answered with one parse error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// `Content-Length` is not a non-negative decimal number.
    BadLength(String),
    /// A header block ended without `Content-Length`.
    MissingLength,
    /// The declared length is over [`MAX_FRAME_BYTES`]; the frame was skipped unread.
    TooLarge(String),
    /// Bytes that are no header stood in front of a `Content-Length` header, or a header
    /// block was cut short by the next one: what came before was not a frame.
    NotAFrame,
    /// The body is not one JSON value (cut short, or the declared length was wrong).
    BadBody,
}

impl Damage {
    pub fn message(&self) -> String {
        match self {
            Damage::BadLength(value) => format!("invalid Content-Length {value:?}"),
            Damage::MissingLength => "header without Content-Length".to_string(),
            Damage::TooLarge(value) => {
                format!("Content-Length {value} is over the limit of {MAX_FRAME_BYTES} bytes")
            }
            Damage::NotAFrame => "bytes outside any frame".to_string(),
            Damage::BadBody => "body is not one JSON value".to_string(),
        }
    }

    /// The answer the client gets for this damaged frame.
    pub fn response(&self) -> Response {
        Response::from_error(
            Id::Null,
            Error {
                code: ErrorCode::ParseError,
                message: format!("Parse error: {}", self.message()).into(),
                data: None,
            },
        )
    }
}

/// One frame read from the input.
#[derive(Debug)]
pub enum Frame<T> {
    /// A body, as its decoder made it.
    Body(T),
    End,
}

/// One line of input without its line break: all of it, or its last
/// [`MAX_HEADER_LINE_BYTES`] when `truncated`.
struct Line {
    bytes: Vec<u8>,
    truncated: bool,
    /// Whether the line starts like a header (`Name:`); known even when truncated.
    header_syntax: bool,
}

/// Reads frames from `input`, finding the next frame after a damaged one. Damaged frames
/// are collected in `damages` (drained by the caller after each `read_frame`).
pub struct FrameReader<R> {
    input: R,
    buffer: Vec<u8>,
    /// Start of the unread part of `buffer`.
    start: usize,
    /// After a damaged frame: every line is the damaged frame's leftovers until one holds a
    /// `Content-Length` header.
    hunting: bool,
    pub damages: Vec<Damage>,
}

fn looks_like_header(bytes: &[u8]) -> bool {
    let name_len = bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
        .count();
    name_len > 0 && bytes.get(name_len) == Some(&b':')
}

/// Where the last `Content-Length` header name (any case, optional spaces, then `:`)
/// starts in `line`, and where its value starts.
fn find_content_length(line: &[u8]) -> Option<(usize, usize)> {
    let lower: Vec<u8> = line.to_ascii_lowercase();
    let mut found = None;
    let mut from = 0;
    while let Some(at) = find(&lower[from..], CONTENT_LENGTH) {
        let name_start = from + at;
        let mut after = name_start + CONTENT_LENGTH.len();
        while matches!(lower.get(after), Some(b' ' | b'\t')) {
            after += 1;
        }
        if lower.get(after) == Some(&b':') {
            found = Some((name_start, after + 1));
        }
        from = name_start + 1;
    }
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Where in a body that failed to parse the next frame may start: at a `Content-Length`
/// header inside it (the declared length was too long and swallowed it), at a partial header
/// name at its very end (`Conte`), or nowhere (its end).
fn resync_point(body: &[u8]) -> usize {
    let lower = body.to_ascii_lowercase();
    if let Some(at) = lower.get(1..).and_then(|rest| find(rest, CONTENT_LENGTH)) {
        return at + 1;
    }
    for keep in (1..CONTENT_LENGTH.len()).rev() {
        if lower.len() > keep && lower.ends_with(&CONTENT_LENGTH[..keep]) {
            return lower.len() - keep;
        }
    }
    body.len()
}

/// Replaces `\uXXXX` escapes of unpaired UTF-16 surrogates inside JSON strings by `\uFFFD`
/// (the same length, in place): serde_json refuses them, and an editor holding a lone
/// surrogate in its buffer (JavaScript strings can) would otherwise lose the whole change.
/// Returns how many were replaced.
pub fn repair_lone_surrogates(body: &mut [u8]) -> usize {
    fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
        let digits = bytes.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }
    let high = 0xD800..0xDC00u16;
    let low = 0xDC00..0xE000u16;
    let mut replaced = 0;
    let mut in_string = false;
    let mut i = 0;
    while i < body.len() {
        match (in_string, body[i]) {
            (false, b'"') => {
                in_string = true;
                i += 1;
            }
            (false, _) => i += 1,
            (true, b'"') => {
                in_string = false;
                i += 1;
            }
            (true, b'\\') if body.get(i + 1) == Some(&b'u') => {
                let Some(unit) = hex4(body, i + 2) else {
                    i += 2;
                    continue;
                };
                let paired = high.contains(&unit)
                    && body.get(i + 6..i + 8) == Some(b"\\u")
                    && hex4(body, i + 8).is_some_and(|next| low.contains(&next));
                if paired {
                    i += 12;
                    continue;
                }
                if high.contains(&unit) || low.contains(&unit) {
                    body[i + 2..i + 6].copy_from_slice(b"FFFD");
                    replaced += 1;
                }
                i += 6;
            }
            (true, b'\\') => i += 2,
            (true, _) => i += 1,
        }
    }
    replaced
}

/// How a body that failed to parse as a whole breaks down.
enum BodyShape {
    /// One JSON value and then more than whitespace: the declared length was too long, and
    /// the value ends at this offset.
    ValueThenMore(usize),
    /// Not one JSON value.
    Broken,
}

fn body_shape(body: &[u8]) -> BodyShape {
    let mut values =
        serde_json::Deserializer::from_slice(body).into_iter::<serde::de::IgnoredAny>();
    match values.next() {
        Some(Ok(_)) => BodyShape::ValueThenMore(values.byte_offset()),
        _ => BodyShape::Broken,
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            buffer: Vec::new(),
            start: 0,
            hunting: false,
            damages: Vec::new(),
        }
    }

    fn unread(&self) -> &[u8] {
        &self.buffer[self.start..]
    }

    /// Reads more input; false at its end.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.reserve(READ_CHUNK);
        Ok(self.input.read_buf(&mut self.buffer).await? > 0)
    }

    /// The next line; `None` at the end of input (a last line without a line break is
    /// dropped: it cannot be a complete header).
    async fn read_line(&mut self) -> io::Result<Option<Line>> {
        let mut scanned = 0;
        let mut truncated = false;
        let mut header_syntax = None;
        loop {
            if let Some(at) = self.unread()[scanned..].iter().position(|&b| b == b'\n') {
                let end = self.start + scanned + at;
                let mut bytes = self.buffer[self.start..end].to_vec();
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
                self.start = end + 1;
                let header_syntax = header_syntax.unwrap_or_else(|| looks_like_header(&bytes));
                return Ok(Some(Line {
                    bytes,
                    truncated,
                    header_syntax,
                }));
            }
            scanned = self.unread().len();
            if scanned > MAX_HEADER_LINE_BYTES {
                if header_syntax.is_none() {
                    header_syntax = Some(looks_like_header(self.unread()));
                }
                // Keep only the tail: a glued `Content-Length` header would be there.
                self.start += scanned - MAX_HEADER_LINE_BYTES;
                scanned = MAX_HEADER_LINE_BYTES;
                truncated = true;
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Makes `length` bytes available after `start`; false if the input ends first.
    async fn want(&mut self, length: usize) -> io::Result<bool> {
        while self.unread().len() < length {
            if !self.fill().await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn damaged(&mut self, damage: Damage) {
        self.hunting = true;
        self.damages.push(damage);
    }

    /// The next usable frame, as `decode` makes its body (`None`: the body is not one JSON
    /// value, a damaged frame), or the end of input. Damaged frames met on the way are
    /// pushed to `damages`.
    pub async fn read_frame<T>(
        &mut self,
        decode: impl Fn(&[u8]) -> Option<T>,
    ) -> io::Result<Frame<T>> {
        // The header block being read: whether it has begun, its length header (the raw
        // value), and whether it holds a line that is no header.
        let mut in_block = false;
        let mut length: Option<String> = None;
        let mut junk = false;
        loop {
            let Some(line) = self.read_line().await? else {
                return Ok(Frame::End);
            };
            if let Some((name_start, value_start)) = find_content_length(&line.bytes) {
                let junk_before = line.truncated
                    || line.bytes[..name_start]
                        .iter()
                        .any(|b| !b.is_ascii_whitespace());
                // Not the leftovers of a frame already answered: bytes before this header
                // that were not a frame are a damaged frame of their own.
                if !self.hunting && (junk_before || (in_block && (length.is_some() || junk))) {
                    self.damages.push(Damage::NotAFrame);
                }
                self.hunting = false;
                in_block = true;
                junk = false;
                length = Some(
                    String::from_utf8_lossy(&line.bytes[value_start..])
                        .trim()
                        .to_string(),
                );
                continue;
            }
            if line.bytes.iter().all(|b| b.is_ascii_whitespace()) && !line.truncated {
                if !in_block {
                    continue; // a stray line break between frames, or leftovers ended
                }
                in_block = false;
                if junk {
                    self.damaged(Damage::NotAFrame);
                    length = None;
                    junk = false;
                    continue;
                }
                let Some(value) = length.take() else {
                    self.damaged(Damage::MissingLength);
                    continue;
                };
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    self.damaged(Damage::BadLength(value.chars().take(40).collect()));
                    continue;
                }
                let size = match value.parse::<usize>() {
                    Ok(size) if size <= MAX_FRAME_BYTES => size,
                    _ => {
                        // Skipped by hunting for the next header, not by counting bytes: a
                        // wrong huge length would otherwise swallow everything after it.
                        self.damaged(Damage::TooLarge(value.chars().take(40).collect()));
                        continue;
                    }
                };
                if !self.want(size).await? {
                    return Ok(Frame::End);
                }
                if let Some(frame) = self.take_body(size, &decode) {
                    return Ok(frame);
                }
                continue;
            }
            if self.hunting {
                continue; // leftovers of a damaged frame
            }
            if line.truncated {
                tracing::warn!(
                    "a header line over {MAX_HEADER_LINE_BYTES} bytes was skipped unread"
                );
            }
            in_block = true;
            junk |= !line.header_syntax;
        }
    }

    /// Takes the `size` bytes at `start` as a body, or (when they are not one JSON value)
    /// records the damage and leaves `start` where the next frame may begin.
    fn take_body<T>(
        &mut self,
        size: usize,
        decode: impl Fn(&[u8]) -> Option<T>,
    ) -> Option<Frame<T>> {
        let body_start = self.start;
        let body = &mut self.buffer[body_start..body_start + size];
        let repaired = repair_lone_surrogates(body);
        if repaired > 0 {
            tracing::warn!("{repaired} unpaired UTF-16 surrogate escape(s) read as U+FFFD");
        }
        let body: &[u8] = body;
        let text: Cow<[u8]> = match std::str::from_utf8(body) {
            Ok(_) => Cow::Borrowed(body),
            Err(_) => {
                tracing::warn!("a frame that is not UTF-8: invalid bytes read as U+FFFD");
                Cow::Owned(String::from_utf8_lossy(body).into_owned().into_bytes())
            }
        };
        if let Some(decoded) = decode(&text) {
            self.start = body_start + size;
            return Some(Frame::Body(decoded));
        }
        let next = match body_shape(body) {
            BodyShape::ValueThenMore(end) => end,
            BodyShape::Broken => resync_point(body),
        };
        self.start = body_start + next;
        self.damaged(Damage::BadBody);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The body as text, if it is one JSON value.
    fn as_text(body: &[u8]) -> Option<String> {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
        Some(String::from_utf8(body.to_vec()).unwrap())
    }

    /// Reads `input` to its end: the bodies passed on (as text) and the damages, in order.
    fn read_all(input: &[u8]) -> Vec<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut reader = FrameReader::new(input);
            let mut out = Vec::new();
            loop {
                let frame = reader.read_frame(as_text).await.unwrap();
                for damage in reader.damages.drain(..) {
                    out.push(format!("damage {damage:?}"));
                }
                match frame {
                    Frame::Body(body) => out.push(body),
                    Frame::End => return out,
                }
            }
        })
    }

    fn framed(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    const A: &str = r#"{"jsonrpc":"2.0","id":1,"method":"a"}"#;
    const B: &str = r#"{"jsonrpc":"2.0","id":2,"method":"b"}"#;

    fn after(damaged: &str) -> Vec<String> {
        read_all(format!("{}{damaged}{}", framed(A), framed(B)).as_bytes())
    }

    #[test]
    fn intact_frames_pass() {
        let input = format!("{}\r\n{}", framed(A), framed(B));
        assert_eq!(read_all(input.as_bytes()), vec![A, B]);
        let lower = format!("content-length:{}\n\n{A}", A.len());
        assert_eq!(read_all(lower.as_bytes()), vec![A]);
        let typed = format!(
            "Content-Length: {}\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{A}",
            A.len()
        );
        assert_eq!(read_all(typed.as_bytes()), vec![A]);
    }

    #[test]
    fn bad_lengths_are_one_damage_each_and_the_next_frame_is_read() {
        for value in ["abc", "-5", "", "1e3", "0x10"] {
            let damaged = format!("Content-Length: {value}\r\n\r\n{B}");
            let out = after(&damaged);
            // The damaged frame's body is its leftovers: skipped, not read as a frame.
            assert_eq!(out.len(), 3, "{value}: {out:?}");
            assert_eq!(out[0], A);
            assert!(out[1].starts_with("damage BadLength"), "{value}: {out:?}");
            assert_eq!(out[2], B, "{value}");
        }
        let damaged = format!("Content-Type: x\r\n\r\n{B}");
        assert_eq!(after(&damaged), vec![A, "damage MissingLength", B]);
    }

    #[test]
    fn wrong_body_lengths_are_one_damage_and_the_next_frame_is_read() {
        for delta in [-20i64, -5, -1, 1, 5, 30] {
            let declared = (B.len() as i64 + delta) as usize;
            let damaged = format!("Content-Length: {declared}\r\n\r\n{B}");
            assert_eq!(
                after(&damaged),
                vec![A, "damage BadBody", B],
                "length off by {delta}"
            );
        }
        // A body with a line break of its own, cut short.
        let damaged = "Content-Length: 10\r\n\r\n{\"a\":\r\n  1, \"b\": 2}";
        assert_eq!(after(damaged), vec![A, "damage BadBody", B]);
    }

    #[test]
    fn junk_between_frames_is_one_damage() {
        assert_eq!(after(B), vec![A, "damage NotAFrame", B]);
        assert_eq!(after("garbage\r\n\r\n"), vec![A, "damage NotAFrame", B]);
        // A header block cut short by the next one.
        assert_eq!(
            after("Content-Length: 40\r\n"),
            vec![A, "damage NotAFrame", B]
        );
        assert_eq!(after("\r\n\r\n"), vec![A, B], "blank lines are no damage");
    }

    #[test]
    fn limits_hold_without_buffering() {
        let long = format!("X-Pad: {}\r\n", "a".repeat(100_000));
        let input = format!("{}{long}{}", framed(A), framed(B));
        assert_eq!(
            read_all(input.as_bytes()),
            vec![A, B],
            "a long header is skipped"
        );
        let junk = "z".repeat(100_000);
        assert_eq!(after(&junk), vec![A, "damage NotAFrame", B]);
        for value in ["99999999999", "67108865", "184467440737095516160"] {
            let damaged = format!("Content-Length: {value}\r\n\r\n{B}");
            let out = after(&damaged);
            assert!(out[1].starts_with("damage TooLarge"), "{out:?}");
            assert_eq!(out[2..], [B]);
        }
    }

    #[test]
    fn memory_stays_bounded_by_the_limits_not_by_the_input() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            // A 16 MB header line, then a frame declaring 60 MB that never comes.
            let mut input = vec![b'x'; 16 << 20];
            input.extend_from_slice(b"\r\n");
            input.extend_from_slice(framed(A).as_bytes());
            input.extend_from_slice(b"Content-Length: 99999999999999\r\n\r\n");
            input.extend_from_slice(framed(B).as_bytes());
            input.extend_from_slice(b"Content-Length: 60000000\r\n\r\n{\"a\":");
            let mut reader = FrameReader::new(&input[..]);
            let mut most = 0;
            let mut bodies = 0;
            loop {
                let frame = reader.read_frame(as_text).await.unwrap();
                most = most.max(reader.buffer.capacity());
                match frame {
                    Frame::Body(..) => bodies += 1,
                    Frame::End => break,
                }
            }
            assert_eq!(bodies, 2);
            assert!(most < 1 << 20, "buffered {most} bytes");
        });
    }

    #[test]
    fn not_json_is_one_damage() {
        let damaged = framed("{not json");
        assert_eq!(after(&damaged), vec![A, "damage BadBody", B]);
        let nul = framed("{\"a\":\"x\0y\"}");
        assert_eq!(after(&nul), vec![A, "damage BadBody", B]);
        let empty = "Content-Length: 0\r\n\r\n";
        assert_eq!(after(empty), vec![A, "damage BadBody", B]);
    }

    #[test]
    fn lone_surrogates_and_invalid_utf8_become_replacement_characters() {
        let mut body = br#"{"t":"a\ud800b\udc00c\ud83d\ude00d\\ud800"}"#.to_vec();
        assert_eq!(repair_lone_surrogates(&mut body), 2);
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["t"], "a\u{FFFD}b\u{FFFD}c😀d\\ud800");
        let mut input = b"Content-Length: 11\r\n\r\n{\"t\":\"a\xffb\"}".to_vec();
        input.extend_from_slice(framed(B).as_bytes());
        assert_eq!(read_all(&input), vec!["{\"t\":\"a\u{FFFD}b\"}", B]);
    }
}
