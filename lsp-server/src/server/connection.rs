//! The connection to the editor: frames from stdin (`framing`), each body parsed once into a
//! message (`message`), requests handed to `Dispatch` in arrival order, answers and our own
//! requests to the editor written to stdout, one frame at a time, by one writer.
//!
//! tower-lsp-server's `LspService` (its router, lifecycle and `$/cancelRequest`) and `Client`
//! stay; its stdio transport is not used: it would frame and parse every message again.

use std::sync::Arc;

use futures::{FutureExt, SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};
use tower::Service;
use tower_lsp_server::ClientSocket;

use super::dispatch::Dispatch;
use super::framing::{Frame, FrameReader};
use super::message::{self, Incoming};

/// Requests answered concurrently before the next message waits to be read. Each handler
/// runs as its own task (see `dispatch`), so this bounds only how many unanswered requests
/// are tracked; completions waiting on a slow backend must not reach it.
const CONCURRENT_REQUESTS: usize = 256;

/// How long, after `exit`, answers still in flight get to be written: nobody wants them.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Frames for the writer.
type Outbox = mpsc::UnboundedSender<Vec<u8>>;

/// `message` framed (`Content-Length` header and body), sent to the writer.
fn post(outbox: &Outbox, message: &impl Serialize) {
    match serde_json::to_vec(message) {
        Ok(body) => {
            let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
            frame.extend_from_slice(&body);
            let _ = outbox.send(frame);
        }
        Err(error) => tracing::error!("an answer could not be written as JSON: {error}"),
    }
}

/// Writes frames to `output` in the order they come, flushing when none are waiting.
async fn write_frames(
    mut output: impl AsyncWrite + Unpin,
    mut frames: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(frame) = frames.recv().await {
        if output.write_all(&frame).await.is_err() {
            return;
        }
        while let Ok(frame) = frames.try_recv() {
            if output.write_all(&frame).await.is_err() {
                return;
            }
        }
        if output.flush().await.is_err() {
            return;
        }
    }
}

/// Serves the editor on `input`/`output` until `exit` or the end of input; at the end of
/// input, answers still in flight are written first.
pub async fn serve(
    input: impl AsyncRead + Unpin,
    output: impl AsyncWrite + Unpin + Send + 'static,
    mut dispatch: Dispatch,
    socket: ClientSocket,
) {
    let (outbox, frames) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_frames(output, frames));
    let (mut to_client, mut client_answers) = socket.split();
    let our_requests = tokio::spawn({
        let outbox = outbox.clone();
        async move {
            while let Some(request) = to_client.next().await {
                post(&outbox, &request);
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(CONCURRENT_REQUESTS));
    let mut reader = FrameReader::new(input);
    let mut exited = false;
    loop {
        let read = reader.read_frame(message::decode).await;
        for damage in reader.damages.drain(..) {
            tracing::warn!("damaged frame from the client: {}", damage.message());
            post(&outbox, &damage.response());
        }
        let request = match read {
            Ok(Frame::Body(Incoming::Request(request))) => request,
            Ok(Frame::Body(Incoming::Response(response))) => {
                let _ = client_answers.send(response).await;
                continue;
            }
            Ok(Frame::Body(Incoming::Invalid(answer))) => {
                tracing::warn!("a message from the client that is no JSON-RPC message");
                post(&outbox, &answer);
                continue;
            }
            Ok(Frame::End) => break,
            Err(error) => {
                tracing::warn!("reading the client's input failed: {error}");
                break;
            }
        };
        // Not ready only once the service has exited.
        if futures::future::poll_fn(|cx| dispatch.poll_ready(cx))
            .await
            .is_err()
        {
            break;
        }
        let method = request.method().to_string();
        let mut answer = dispatch.call(request);
        if let Some(answered) = (&mut answer).now_or_never() {
            // Done on arrival (a notification, an arrival-lane handler, a refusal).
            if let Ok(Some(response)) = answered {
                post(&outbox, &response);
            }
            if method == "exit" {
                exited = true;
                break;
            }
            continue;
        }
        if method == "initialize" {
            // Nothing else is read until the server is initialized (tower-lsp-server holds
            // every other message back until then too).
            if let Ok(Some(response)) = answer.await {
                post(&outbox, &response);
            }
            continue;
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let outbox = outbox.clone();
        tokio::spawn(async move {
            if let Ok(Some(response)) = answer.await {
                post(&outbox, &response);
            }
            drop(permit);
        });
        if method == "exit" {
            exited = true;
            break;
        }
    }
    // Every permit back: every answer in flight written (after `exit`, for a moment only).
    let all_answered = in_flight.acquire_many(CONCURRENT_REQUESTS as u32);
    if exited {
        let _ = tokio::time::timeout(EXIT_GRACE, all_answered).await;
    } else {
        let _ = all_answered.await;
    }
    our_requests.abort();
    drop(outbox);
    let _ = our_requests.await;
    // The writer ends once every frame posted is written; after `exit`, answers still in
    // flight keep it open, so it gets a moment only.
    if exited {
        let _ = tokio::time::timeout(EXIT_GRACE * 2, writer).await;
    } else {
        let _ = writer.await;
    }
}
