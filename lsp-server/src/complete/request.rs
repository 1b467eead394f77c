//! One request as the stages see it: what the editor asked (`Request`, the document as it was
//! when the request arrived), what every stage reaches (`Env`: the completer's state, the
//! session, the settings) and the request's own context (`RequestContext`: its ticket and the
//! cancellation a newer request for the document, a `$/cancelRequest` or the answer fires).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};
use tower_lsp_server::gen_lsp_types::{Position, Uri};
use tower_lsp_server::Client;

use super::timings::{now_ns, RequestTiming};
use super::{Completer, Ticket};
use crate::session::{Document, Session};
use crate::settings::Settings;

/// A completion request as it arrived: where, which one (the ticket), and the document as it
/// was then. The pipeline completes that snapshot, never the document as it is by the time a
/// stage runs: an edit arriving after the request is the next request's.
pub struct Request {
    pub uri: Uri,
    pub position: Position,
    pub ticket: Ticket,
    /// `None` when the document was not open.
    pub document: Option<Document>,
}

/// What a request's stages and its warm-ups share: the completer's state, the session (other
/// documents, the index, where a reparsed tree is stored back) and the settings as the request
/// found them.
#[derive(Clone)]
pub(super) struct Env {
    pub completer: Arc<Completer>,
    pub session: Arc<Session>,
    pub settings: Arc<Settings>,
}

/// One request on its way through the stages.
pub(super) struct RequestContext<'a> {
    pub env: Env,
    pub client: &'a Client,
    pub uri: Uri,
    /// The ticket, its arrival filled in for a request that came unstamped.
    pub ticket: Ticket,
    /// Fires when a newer request for the document arrives (or it closes), or when this
    /// context is dropped: the request answered, or its future was dropped
    /// (`$/cancelRequest`). Work on the blocking pool checks it.
    pub cancel: CancellationToken,
    _cancel_when_done: DropGuard,
}

impl<'a> RequestContext<'a> {
    pub fn new(env: Env, client: &'a Client, uri: Uri, ticket: Ticket) -> Self {
        let ticket = Ticket {
            arrived_ns: match ticket.arrived_ns {
                0 => now_ns(),
                arrived_ns => arrived_ns,
            },
            ..ticket
        };
        let cancel = CancellationToken::new();
        let requests = env.session.watch_requests(&uri);
        let watcher = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = until_superseded(requests, ticket.generation) => watcher.cancel(),
                () = watcher.cancelled() => {}
            }
        });
        Self {
            env,
            client,
            uri,
            ticket,
            _cancel_when_done: cancel.clone().drop_guard(),
            cancel,
        }
    }

    /// Records the server's own time for this request (`ghostline/timings`): where the answer
    /// came from, and the parts before and after the backend.
    pub fn record(&self, source: &'static str, before_backend_ns: u64, after_last_token_ns: u64) {
        self.env.completer.timings.record(RequestTiming {
            source,
            before_backend_ns,
            after_last_token_ns,
            total_ns: now_ns().saturating_sub(self.ticket.arrived_ns),
        });
    }

    /// When the wait for the suggestion to start ends: `timeoutMs` after arrival.
    pub fn deadline(&self) -> Instant {
        let now = now_ns();
        let arrived =
            Instant::now() - Duration::from_nanos(now.saturating_sub(self.ticket.arrived_ns));
        arrived + Duration::from_millis(self.env.settings.timeout_ms)
    }
}

/// Resolves once a newer request for the same document has arrived (or it was closed).
pub(super) async fn until_superseded(requests: Option<watch::Receiver<u64>>, generation: u64) {
    let Some(mut requests) = requests else {
        return std::future::pending().await;
    };
    loop {
        if *requests.borrow_and_update() != generation {
            return;
        }
        if requests.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_newer_request_for_the_document_supersedes_an_older_one() {
        let session = Session::new();
        let uri = Uri::from("file:///w/a.rs");
        session.open_document(
            uri.clone(),
            Document::new("fn main() {}\n", 1, "rust".into()),
        );
        let first = session.begin_request(&uri);
        let mut superseded = Box::pin(until_superseded(session.watch_requests(&uri), first));
        // Polled once: still the latest request, it waits.
        tokio::select! {
            biased;
            () = &mut superseded => panic!("superseded with no newer request"),
            () = std::future::ready(()) => {}
        }
        session.begin_request(&uri);
        superseded.await;
        // A request for a document that was not open has nothing to supersede it.
        let closed = Uri::from("file:///w/b.rs");
        let lone = session.begin_request(&closed);
        let mut never = Box::pin(until_superseded(session.watch_requests(&closed), lone));
        session.begin_request(&closed);
        tokio::select! {
            biased;
            () = &mut never => panic!("superseded without a watch"),
            () = std::future::ready(()) => {}
        }
        // Closing the document ends the request too.
        let latest = session.begin_request(&uri);
        let closing = until_superseded(session.watch_requests(&uri), latest);
        session.close_document(&uri);
        closing.await;
    }
}
