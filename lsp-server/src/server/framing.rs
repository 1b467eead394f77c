//! A guard between stdio and tower-lsp-server's transport.
//!
//! tower-lsp-server decodes with tokio-util's `FramedRead`, which ends the stream after the
//! first undecodable message: one malformed frame from a client would silently end the
//! server. This guard reads frames itself, passes on only messages the transport can decode,
//! and answers the rest with a JSON-RPC error (parse error, or invalid request) itself. It
//! also owns stdout, so its error frames and the transport's frames never interleave.

use std::io;

use serde::Deserialize;
use serde_json::Value;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::sync::mpsc;
use tower_lsp_server::jsonrpc::{Error, Id, Request, Response};

/// Larger frames are refused (and skipped) rather than buffered.
const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

/// One frame read from the client.
enum Frame {
    Body(Vec<u8>),
    /// A frame that cannot be passed on; already consumed from the input.
    Unusable,
    End,
}

async fn read_frame(input: &mut (impl AsyncBufRead + Unpin)) -> io::Result<Frame> {
    let mut length: Option<usize> = None;
    let mut saw_header = false;
    loop {
        let mut line = Vec::new();
        if input.read_until(b'\n', &mut line).await? == 0 {
            return Ok(Frame::End);
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if saw_header {
                break;
            }
            continue; // stray blank line between frames
        }
        saw_header = true;
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok();
            }
        }
    }
    let Some(length) = length else {
        return Ok(Frame::Unusable);
    };
    if length > MAX_FRAME_BYTES {
        tokio::io::copy(&mut input.take(length as u64), &mut tokio::io::sink()).await?;
        return Ok(Frame::Unusable);
    }
    let mut body = vec![0; length];
    input.read_exact(&mut body).await?;
    Ok(Frame::Body(body))
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The error to answer instead of passing the body on, if the transport could not decode it.
fn refusal(body: &[u8]) -> Option<Response> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => return Some(Response::from_error(Id::Null, Error::parse_error())),
    };
    if Request::deserialize(&value).is_ok() || Response::deserialize(&value).is_ok() {
        return None;
    }
    let id = match value.get("id") {
        Some(Value::Number(n)) => n.as_i64().map_or(Id::Null, Id::Number),
        Some(Value::String(s)) => Id::String(s.clone()),
        _ => Id::Null,
    };
    // A notification-shaped message (no id) that still fails would get an answer with id
    // null, which the specification allows for invalid requests.
    Some(Response::from_error(id, Error::invalid_request()))
}

/// Runs the guard: `client_in`/`client_out` are the real stdio, `transport_in` feeds the
/// transport, `transport_out` is what the transport writes. Returns when the client's input
/// ends and the transport has written its last frame.
pub async fn guard(
    client_in: impl AsyncRead + Unpin,
    mut client_out: impl AsyncWrite + Unpin,
    mut transport_in: impl AsyncWrite + Unpin,
    transport_out: impl AsyncRead + Unpin,
) {
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let error_tx = out_tx.clone();

    let writer = async move {
        while let Some(bytes) = out_rx.recv().await {
            if client_out.write_all(&bytes).await.is_err() || client_out.flush().await.is_err() {
                return;
            }
        }
    };

    let from_transport = async move {
        let mut transport_out = BufReader::new(transport_out);
        loop {
            match read_frame(&mut transport_out).await {
                Ok(Frame::Body(body)) => {
                    if out_tx.send(frame(&body)).is_err() {
                        return;
                    }
                }
                Ok(Frame::Unusable) => continue,
                Ok(Frame::End) | Err(_) => return,
            }
        }
    };

    let from_client = async move {
        let mut client_in = BufReader::new(client_in);
        loop {
            match read_frame(&mut client_in).await {
                Ok(Frame::Body(body)) => match refusal(&body) {
                    None => {
                        if transport_in.write_all(&frame(&body)).await.is_err()
                            || transport_in.flush().await.is_err()
                        {
                            break;
                        }
                    }
                    Some(response) => {
                        tracing::warn!(
                            "answering an undecodable message from the client with an error"
                        );
                        if let Ok(bytes) = serde_json::to_vec(&response) {
                            let _ = error_tx.send(frame(&bytes));
                        }
                    }
                },
                Ok(Frame::Unusable) => {
                    tracing::warn!("skipping a frame without a usable Content-Length")
                }
                Ok(Frame::End) | Err(_) => break,
            }
        }
        drop(error_tx);
        // Closing the transport's input ends it as a real end of input would.
        let _ = transport_in.shutdown().await;
    };

    tokio::join!(writer, from_transport, from_client);
}
