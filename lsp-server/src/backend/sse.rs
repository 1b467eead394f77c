//! The `/v1/completions` SSE stream: events parsed by `sse-stream` (which scans each byte once,
//! takes `data:` with or without the space, LF, CRLF or CR line ends, `:` comments, and decodes
//! text only per complete line, so a character split between two chunks is whole again), the
//! bytes it may hold bounded here, and each event's JSON read into text deltas and usage.
//!
//! Decisions: text that is not UTF-8 in a `data:` line ends the stream with a protocol error
//! (not lossy text: a backend that sends it is broken, and replacement characters in code would
//! be worse than no suggestion); more than `MAX_UNPARSED_BYTES` received without a complete event
//! (an endless line, or an event that never ends) ends it the same way; an event the stream
//! breaks off in is dropped, as the SSE specification says, while the events before it count;
//! a line the specification says to ignore (an unknown field, a line without a colon) is refused
//! by `sse-stream`, which an OpenAI-compatible server never sends.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use ghostline_protocol as wire;
use sse_stream::{Sse, SseStream};

use super::{root_cause, BackendError, Usage};

/// Bytes the stream may deliver without completing an event (1 MiB): a completion's events are
/// a few hundred bytes, so only a broken or hostile backend comes near it. What the parser holds
/// is bounded by this plus one network chunk.
pub const MAX_UNPARSED_BYTES: usize = 1 << 20;

type Events = Pin<Box<dyn Stream<Item = Result<Sse, sse_stream::Error>> + Send>>;

/// Text deltas from an SSE `/v1/completions` stream.
pub struct CompletionStream {
    events: Events,
    /// Bytes handed to the parser since it last produced an event; the byte stream refuses to
    /// go past `MAX_UNPARSED_BYTES`.
    unparsed: Arc<AtomicUsize>,
    finished: bool,
    usage: Option<Usage>,
    /// The request's `X-Request-ID`; its answer's end is logged when the stream is dropped.
    request_id: String,
}

/// Why the byte stream under the parser ended early.
#[derive(Debug)]
enum BodyFailure {
    /// The connection broke (reqwest's error, down to its root cause).
    Transport(String),
    TooLong,
}

impl std::fmt::Display for BodyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transport(why) => f.write_str(why),
            Self::TooLong => write!(
                f,
                "more than {} KiB without a complete event",
                MAX_UNPARSED_BYTES / 1024
            ),
        }
    }
}

impl std::error::Error for BodyFailure {}

/// The LSP's summary of what a request cost: OpenAI's `usage` and ghostline-serve's `timings`.
pub(super) fn usage_of(
    usage: Option<wire::Usage>,
    timings: Option<wire::Timings>,
) -> Option<Usage> {
    let usage = usage?;
    Some(Usage {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        cached_tokens: usage.cached_tokens(),
        prefill_ms: timings.as_ref().and_then(|t| t.prefill_ms),
        decode_ms: timings.as_ref().and_then(|t| t.decode_ms),
    })
}

impl CompletionStream {
    pub(super) fn new(response: reqwest::Response, request_id: String) -> Self {
        let chunks = futures::stream::unfold(Some(response), |response| async move {
            let mut response = response?;
            match response.chunk().await {
                Ok(Some(bytes)) => Some((Ok(bytes), Some(response))),
                Ok(None) => None,
                // The parser reports the error; nothing is read after it.
                Err(error) => Some((Err(BodyFailure::Transport(root_cause(&error))), None)),
            }
        });
        Self::from_chunks(chunks, request_id)
    }

    /// The stream over any source of byte chunks (the response's body; tests feed chunks cut
    /// where they choose).
    fn from_chunks<S, D>(chunks: S, request_id: String) -> Self
    where
        S: Stream<Item = Result<D, BodyFailure>> + Send + 'static,
        D: bytes::Buf + Send + 'static,
    {
        let unparsed = Arc::new(AtomicUsize::new(0));
        let counter = unparsed.clone();
        let limited = chunks.map(move |chunk| {
            let chunk = chunk?;
            let total = counter.fetch_add(chunk.remaining(), Ordering::Relaxed) + chunk.remaining();
            if total > MAX_UNPARSED_BYTES {
                return Err(BodyFailure::TooLong);
            }
            Ok(chunk)
        });
        Self {
            events: Box::pin(SseStream::from_bytes_stream(limited)),
            unparsed,
            finished: false,
            usage: None,
            request_id,
        }
    }

    /// What the backend reported the request cost, once its last chunk was read.
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// The next non-empty text delta, or `None` at the end of the stream.
    pub async fn next_text(&mut self) -> Result<Option<String>, BackendError> {
        while !self.finished {
            let event = match self.events.next().await {
                Some(Ok(event)) => event,
                Some(Err(error)) => {
                    self.finished = true;
                    return Err(stream_error(error));
                }
                // A stream that ends without `[DONE]` still ends cleanly as far as HTTP is
                // concerned; whatever text arrived is usable.
                None => {
                    self.finished = true;
                    return Ok(None);
                }
            };
            self.unparsed.store(0, Ordering::Relaxed);
            if let Some(text) = self.parse_event(event)? {
                return Ok(Some(text));
            }
        }
        Ok(None)
    }

    fn parse_event(&mut self, event: Sse) -> Result<Option<String>, BackendError> {
        let Some(data) = event.data else {
            return Ok(None); // `event:`, `id:` or `retry:` alone
        };
        if data.trim() == wire::DONE {
            self.finished = true;
            return Ok(None);
        }
        let event: wire::StreamEvent = serde_json::from_str(&data).map_err(|e| {
            self.finished = true;
            BackendError::Protocol(e.to_string())
        })?;
        if let Some(error) = event.error {
            self.finished = true;
            return Err(BackendError::Protocol(match error.kind.as_str() {
                "" => error.message,
                kind => format!("{kind}: {}", error.message),
            }));
        }
        let text = event.chunk.text();
        if let Some(usage) = usage_of(event.chunk.usage, event.chunk.timings) {
            self.usage = Some(usage);
        }
        Ok((!text.is_empty()).then_some(text))
    }
}

impl Drop for CompletionStream {
    fn drop(&mut self) {
        // Not finished: the stream was left early (a suggestion superseded, or stopped by the
        // stop rules), which closes the connection and ends the generation at the backend.
        let outcome = if self.finished {
            "stream read to its end"
        } else {
            "stream left early"
        };
        super::request_id::ended(&self.request_id, &outcome);
    }
}

fn stream_error(error: sse_stream::Error) -> BackendError {
    match error {
        sse_stream::Error::Body(inner) => match inner.downcast::<BodyFailure>() {
            Ok(failure) => match *failure {
                BodyFailure::Transport(why) => BackendError::Died(why),
                BodyFailure::TooLong => BackendError::Protocol(BodyFailure::TooLong.to_string()),
            },
            Err(other) => BackendError::Died(other.to_string()),
        },
        sse_stream::Error::Utf8Parse(why) => {
            BackendError::Protocol(format!("stream is not UTF-8 ({why})"))
        }
        other => BackendError::Protocol(format!("not a server-sent event stream ({other})")),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    fn event(text: &str) -> String {
        format!(
            "data: {}\n\n",
            serde_json::json!({"choices": [{"text": text}]})
        )
    }

    /// The stream over `chunks`, cut exactly there.
    fn from_parts(chunks: Vec<Vec<u8>>) -> CompletionStream {
        CompletionStream::from_chunks(
            futures::stream::iter(
                chunks
                    .into_iter()
                    .map(|chunk| Ok::<_, BodyFailure>(bytes::Bytes::from(chunk))),
            ),
            "test".into(),
        )
    }

    /// Every delta up to the end, or the error that ended the stream.
    async fn texts(stream: &mut CompletionStream) -> Result<Vec<String>, BackendError> {
        let mut out = Vec::new();
        while let Some(text) = stream.next_text().await? {
            out.push(text);
        }
        Ok(out)
    }

    /// `body` cut after every one of its bytes.
    fn byte_by_byte(body: &str) -> Vec<Vec<u8>> {
        body.bytes().map(|b| vec![b]).collect()
    }

    #[tokio::test]
    async fn characters_split_between_chunks_arrive_whole() {
        let body = event("é中😀 done") + "data: [DONE]\n\n";
        let mut stream = from_parts(byte_by_byte(&body));
        assert_eq!(texts(&mut stream).await.unwrap().concat(), "é中😀 done");
    }

    #[tokio::test]
    async fn line_ends_data_prefixes_comments_and_events_as_the_specification_has_them() {
        let json = |text: &str| serde_json::json!({"choices": [{"text": text}]}).to_string();
        let body = format!(
            ": keep-alive comment\r\ndata:{}\r\n\r\nevent: message\rdata: {}\r\rid: 7\ndata:  {}\n\n{}data: [DONE]\r\n\r\n",
            json("a"),
            json("b"),
            json("c"),
            format_args!(
                "data: {}\n\n",
                serde_json::json!({"choices": [{"text": ""}], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
            )
        );
        for parts in [vec![body.clone().into_bytes()], byte_by_byte(&body)] {
            let mut stream = from_parts(parts);
            assert_eq!(texts(&mut stream).await.unwrap(), ["a", "b", "c"]);
            assert_eq!(stream.usage().map(|u| u.prompt_tokens), Some(5));
        }
    }

    #[tokio::test]
    async fn text_that_is_not_utf8_is_a_protocol_error() {
        let bad = b"data: {\"choices\": [{\"text\": \"\xff\xfe\"}]}\n\n".to_vec();
        // (sse-stream parses a chunk whole: a bad line fails the events before it in the
        // same chunk too; here it comes in the next one.)
        let mut stream = from_parts(vec![event("fine").into_bytes(), bad]);
        assert_eq!(stream.next_text().await.unwrap().as_deref(), Some("fine"));
        match stream.next_text().await {
            Err(BackendError::Protocol(why)) => assert!(why.contains("UTF-8"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(stream.next_text().await, Ok(None), "ended");
    }

    #[tokio::test]
    async fn an_endless_line_ends_the_stream_after_a_bounded_read() {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        // 64 KiB of one line without end, for ever.
        let endless = futures::stream::repeat_with(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok::<_, BodyFailure>(bytes::Bytes::from(vec![b'x'; 64 << 10]))
        });
        let prefix = futures::stream::iter([Ok(bytes::Bytes::from(event("ok") + "data: "))]);
        let mut stream = CompletionStream::from_chunks(prefix.chain(endless), "test".into());
        assert_eq!(stream.next_text().await.unwrap().as_deref(), Some("ok"));
        match stream.next_text().await {
            Err(BackendError::Protocol(why)) => {
                assert!(why.contains("without a complete event"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let read = pulled.load(Ordering::Relaxed) * (64 << 10);
        assert!(read <= MAX_UNPARSED_BYTES + (64 << 10), "read {read} bytes");
    }

    #[tokio::test]
    async fn many_complete_events_are_not_limited() {
        // 3 MiB in all, 4 KiB at a time: the limit is on bytes without an event, not in all.
        let body: String = (0..90_000).map(|i| event(&format!("t{i} "))).collect();
        assert!(body.len() > 3 * MAX_UNPARSED_BYTES);
        let parts = body.as_bytes().chunks(4096).map(<[u8]>::to_vec).collect();
        let got = texts(&mut from_parts(parts)).await.unwrap();
        assert_eq!(got.len(), 90_000);
        assert_eq!(got[89_999], "t89999 ");
    }

    #[tokio::test]
    async fn a_stream_cut_inside_an_event_keeps_the_events_before_it() {
        let body = event("kept") + "data: {\"choices\": [{\"text\": \"lo";
        assert_eq!(
            texts(&mut from_parts(vec![body.into_bytes()]))
                .await
                .unwrap(),
            ["kept"]
        );
        // Also a complete line whose event never got its blank line.
        let body = event("kept") + event("dropped").trim_end();
        assert_eq!(
            texts(&mut from_parts(vec![body.into_bytes()]))
                .await
                .unwrap(),
            ["kept"]
        );
    }

    #[tokio::test]
    async fn an_error_event_or_bad_json_is_a_protocol_error() {
        let body = "data: {\"error\": {\"message\": \"model exploded\"}}\n\n";
        match texts(&mut from_parts(vec![body.into()])).await {
            Err(BackendError::Protocol(why)) => assert!(why.contains("model exploded")),
            other => panic!("{other:?}"),
        }
        let body = "data: {not json\n\n";
        assert!(matches!(
            texts(&mut from_parts(vec![body.into()])).await,
            Err(BackendError::Protocol(_))
        ));
    }

    /// A deliberately broken HTTP server on 127.0.0.1: answers the first connection with
    /// `head`, then writes `parts` one at a time (flushed, a moment apart, so they tend to
    /// arrive as separate chunks), then `forever` until the client goes away, then closes.
    fn broken_server(head: &'static str, parts: Vec<Vec<u8>>, forever: Option<Vec<u8>>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let Ok((mut socket, _)) = listener.accept() else {
                return;
            };
            let _ = socket.set_nodelay(true);
            // Read the request head (it is small) before answering.
            let mut request = [0u8; 4096];
            let _ = std::io::Read::read(&mut socket, &mut request);
            let _ = socket.write_all(head.as_bytes());
            for part in parts {
                if socket
                    .write_all(&part)
                    .and_then(|_| socket.flush())
                    .is_err()
                {
                    return;
                }
                std::thread::sleep(Duration::from_millis(15));
            }
            if let Some(chunk) = forever {
                while socket.write_all(&chunk).is_ok() {}
            }
        });
        format!("http://{address}/v1/completions")
    }

    const SSE_HEAD: &str =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

    async fn stream_from(url: String) -> CompletionStream {
        let response = reqwest::Client::new().get(url).send().await.unwrap();
        CompletionStream::new(response, "test".into())
    }

    #[tokio::test]
    async fn over_tcp_split_characters_and_crlf_arrive_whole() {
        let body = event("naïve 😀").replace('\n', "\r\n") + "data: [DONE]\r\n\r\n";
        let bytes = body.as_bytes();
        let emoji = body.find('😀').unwrap();
        // Cut inside the emoji and between a CR and its LF.
        let cr = body.find("\r\n").unwrap();
        let cuts = [emoji + 2, cr + 1];
        let (first, rest) = bytes.split_at(cuts[0].min(cuts[1]));
        let (second, third) = rest.split_at(cuts[0].max(cuts[1]) - first.len());
        let url = broken_server(
            SSE_HEAD,
            vec![first.to_vec(), second.to_vec(), third.to_vec()],
            None,
        );
        let mut stream = stream_from(url).await;
        assert_eq!(texts(&mut stream).await.unwrap().concat(), "naïve 😀");
    }

    #[tokio::test]
    async fn over_tcp_an_endless_line_is_a_protocol_error_not_a_growing_buffer() {
        let url = broken_server(
            SSE_HEAD,
            vec![event("first").into_bytes(), b"data: ".to_vec()],
            Some(vec![b'y'; 16 << 10]),
        );
        let mut stream = stream_from(url).await;
        assert_eq!(stream.next_text().await.unwrap().as_deref(), Some("first"));
        match stream.next_text().await {
            Err(BackendError::Protocol(why)) => {
                assert!(why.contains("without a complete event"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn over_tcp_invalid_utf8_is_a_protocol_error() {
        let url = broken_server(
            SSE_HEAD,
            vec![b"data: {\"choices\": [{\"text\": \"\xc3\x28\"}]}\n\n".to_vec()],
            None,
        );
        match stream_from(url).await.next_text().await {
            Err(BackendError::Protocol(why)) => assert!(why.contains("UTF-8"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn over_tcp_a_chunked_body_cut_mid_event_is_the_backend_dying() {
        let first = event("before the cut");
        let chunked = format!(
            "{:x}\r\n{first}\r\n{:x}\r\ndata: {{\"choi\r\n",
            first.len(),
            "data: {\"choi".len()
        );
        let url = broken_server(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            vec![chunked.into_bytes()],
            None,
        );
        let mut stream = stream_from(url).await;
        assert_eq!(
            stream.next_text().await.unwrap().as_deref(),
            Some("before the cut")
        );
        assert!(
            matches!(stream.next_text().await, Err(BackendError::Died(_))),
            "a connection closed inside a chunked body is not a clean end"
        );
    }

    #[tokio::test]
    async fn an_endless_error_body_is_read_only_as_far_as_it_is_shown() {
        // 300 two-byte characters (byte 200 falls inside one), then more for ever.
        let url = broken_server(
            "HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\n\r\n",
            vec!["é".repeat(300).into_bytes()],
            Some(vec![b'z'; 16 << 10]),
        );
        let response = reqwest::Client::new().get(url).send().await.unwrap();
        match crate::backend::check_status(response).await {
            Err(BackendError::Status(500, body)) => {
                assert_eq!(body, "é".repeat(100), "cut at a character boundary")
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    #[tokio::test]
    async fn a_json_answer_past_the_limit_is_refused_unread() {
        #[derive(Debug, serde::Deserialize)]
        struct Anything {}
        let url = broken_server(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
            vec![b"{\"data\": [\"".to_vec()],
            Some(vec![b'w'; 16 << 10]),
        );
        let response = reqwest::Client::new().get(url).send().await.unwrap();
        match crate::backend::json_body::<Anything>(response).await {
            Err(BackendError::Protocol(why)) => assert!(why.contains("larger than"), "{why}"),
            other => panic!("{other:?}"),
        }
        // A declared length past the limit is refused before reading anything.
        let url = broken_server(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 900000000\r\n\r\n",
            vec![b"{}".to_vec()],
            None,
        );
        let response = reqwest::Client::new().get(url).send().await.unwrap();
        assert!(matches!(
            crate::backend::json_body::<Anything>(response).await,
            Err(BackendError::Protocol(_))
        ));
    }
}
