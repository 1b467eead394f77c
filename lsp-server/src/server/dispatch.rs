//! Where each message runs, and the promise that every request gets exactly one answer.
//!
//! [`Dispatch::call`] is called strictly in the order messages arrive, and the next message
//! is read only when it returns. Each handler file declares its [`Lane`] (`api::lane`), which
//! decides what happens here, on arrival, and what runs afterwards, concurrently:
//!
//! - [`Lane::Arrival`]: the handler (its `LanguageServer` method) runs to completion here.
//! - [`Lane::Snapshot`]: the request is stamped here ([`Arrival`]: its ticket, and its
//!   document as it is now) and its handler then runs concurrently with that stamp
//!   ([`arrival`] reads it), so an edit read after the request never reaches its work.
//! - [`Lane::Concurrent`]: tower-lsp-server's router runs it concurrently.
//!
//! Every future runs as its own tokio task, so a handler busy on the CPU never holds up the
//! loop that reads the next message, and under `catch_unwind`, so a panic answers its
//! request with an internal error (and is logged) while the server lives on. A request with
//! an id that would otherwise get no answer (a notification method sent with an id, an
//! unknown `$/` method, `exit` with an id) is answered with an error. Each message's work
//! runs in a `lsp` tracing span naming its method and id.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{self, BoxFuture, FutureExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::Service;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Id, Request, Response};
use tower_lsp_server::{ExitedError, LanguageServer, LspService};
use tracing::Instrument;

use super::api::{self, document_uri, Arrival, Lane};
use super::Server;
use crate::complete::timings::now_ns;
use crate::complete::Ticket;

/// Test-only fault injection: a comma-separated list of faults, each of which panics while
/// handling a message for a document whose URI contains [`FAULT_URI_MARKER`] (so a test
/// can make one request panic among healthy ones). `panic-in-inline-completion` panics in
/// the handler's future (concurrent side), `panic-in-did-change` in the synchronous apply.
pub const FAULT_ENV: &str = "GHOSTLINE_LSP_FAULT";
pub const FAULT_URI_MARKER: &str = "fault-panic";

tokio::task_local! {
    /// The stamp of the [`Lane::Snapshot`] request whose future is being polled.
    static ARRIVAL: Arrival;
}

/// The stamp the running [`Lane::Snapshot`] request got when it arrived. A handler reached
/// without one (not through [`Dispatch`]) counts as arriving now: a fresh ticket and the
/// document as it is when it runs.
pub fn arrival() -> Arrival {
    ARRIVAL.try_with(Arrival::clone).unwrap_or_default()
}

/// The text of a panic's payload (`panic!` with a literal or with a format).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        message.to_string()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_string()
    }
}

fn internal_error(id: Id, method: &str, message: &str) -> Response {
    Response::from_error(
        id,
        Error {
            code: ErrorCode::InternalError,
            message: format!("internal error in {method}: {message}").into(),
            data: None,
        },
    )
}

/// The answer to a request whose method has none: notifications, and `$/` methods the
/// server does not know (tower-lsp-server drops those silently, as it must for
/// notifications, but a request still wants an answer).
fn unanswered(id: Id, method: &str) -> Response {
    if method.starts_with("$/") {
        let mut error = Error::method_not_found();
        error.data = Some(Value::String(method.to_string()));
        return Response::from_error(id, error);
    }
    Response::from_error(
        id,
        Error {
            code: ErrorCode::InvalidRequest,
            message: format!("{method} is a notification: it must not carry an id").into(),
            data: None,
        },
    )
}

/// `params` as `P`, or `None` (with a warning: a malformed notification is ignored).
fn typed<P: DeserializeOwned>(method: &str, params: Option<Value>) -> Option<P> {
    match params.map(serde_json::from_value) {
        Some(Ok(params)) => Some(params),
        _ => {
            tracing::warn!("ignoring malformed {method}");
            None
        }
    }
}

/// Runs an [`Lane::Arrival`] handler to its end now. Those handlers never await, so one poll
/// finishes them; a handler that did await would break its lane's promise, and says so.
fn to_the_end(method: &str, work: impl Future<Output = ()>) {
    if work.now_or_never().is_none() {
        tracing::error!("{method} awaited on arrival: its work was not finished");
        debug_assert!(false, "{method}: an arrival handler must not await");
    }
}

#[derive(Default)]
struct Faults {
    panic_in_inline_completion: bool,
    panic_in_did_change: bool,
}

impl Faults {
    fn from_env() -> Self {
        let Ok(list) = std::env::var(FAULT_ENV) else {
            return Self::default();
        };
        let faults = Self {
            panic_in_inline_completion: list
                .split(',')
                .any(|f| f.trim() == "panic-in-inline-completion"),
            panic_in_did_change: list.split(',').any(|f| f.trim() == "panic-in-did-change"),
        };
        tracing::warn!("{FAULT_ENV}={list}: injecting faults for URIs with {FAULT_URI_MARKER}");
        faults
    }

    fn targets(params: Option<&Value>) -> bool {
        document_uri(params).is_some_and(|uri| uri.0.as_str().contains(FAULT_URI_MARKER))
    }
}

type Answer = Result<Option<Response>, ExitedError>;

/// A message's fate after its arrival work.
enum Routed {
    /// Done on arrival; this is its answer, if any.
    Answered(Option<Response>),
    /// Its handler, to run concurrently.
    Running(BoxFuture<'static, Answer>),
}

fn injected_panic(method: &str) -> Answer {
    panic!("injected fault: panic in {method}")
}

pub struct Dispatch {
    inner: LspService<Server>,
    faults: Faults,
    /// Set when a `shutdown` request arrives: the process then exits with 0 (LSP: 1 if it
    /// ends without one).
    shutdown_received: Arc<AtomicBool>,
}

impl Dispatch {
    pub fn new(inner: LspService<Server>, shutdown_received: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            faults: Faults::from_env(),
            shutdown_received,
        }
    }

    fn server(&self) -> &Server {
        self.inner.inner()
    }

    /// Runs the [`Lane::Arrival`] handler of `method` to its end (nothing when `params` are
    /// malformed); false when `method` has none.
    fn arrive(&self, method: &str, params: Option<Value>) -> bool {
        let server = self.server();
        match method {
            api::did_open::METHOD => {
                if let Some(params) = typed(method, params) {
                    to_the_end(method, server.did_open(params));
                }
            }
            api::did_change::METHOD => {
                if self.faults.panic_in_did_change && Faults::targets(params.as_ref()) {
                    panic!("injected fault: panic in didChange");
                }
                if let Some(params) = api::did_change::read(&server.session, params) {
                    to_the_end(method, server.did_change(params));
                }
            }
            api::did_close::METHOD => {
                if let Some(params) = typed(method, params) {
                    to_the_end(method, server.did_close(params));
                }
            }
            api::did_save::METHOD => {
                if let Some(params) = typed(method, params) {
                    to_the_end(method, server.did_save(params));
                }
            }
            api::did_change_configuration::METHOD => {
                if let Some(params) = typed(method, params) {
                    to_the_end(method, server.did_change_configuration(params));
                }
            }
            api::did_change_watched_files::METHOD => {
                if let Some(params) = typed(method, params) {
                    to_the_end(method, server.did_change_watched_files(params));
                }
            }
            other => {
                tracing::error!("{other} is in the arrival lane but has no handler here");
                return false;
            }
        }
        true
    }

    /// The stamp of a [`Lane::Snapshot`] request arriving now with `params`.
    fn stamp(&self, params: Option<&Value>, supersedes: bool) -> Arrival {
        let arrived_ns = now_ns();
        let session = &self.server().session;
        let Some(uri) = document_uri(params) else {
            return Arrival::default(); // malformed: the router's deserializer answers it
        };
        let generation = if supersedes {
            session.begin_request(&uri)
        } else {
            0
        };
        Arrival {
            ticket: Ticket {
                generation,
                arrived_ns,
            },
            document: session.snapshot(&uri),
        }
    }

    /// The work of `request` done at arrival, and the future that finishes it.
    fn route(&mut self, request: Request) -> Routed {
        match api::lane(request.method()) {
            Lane::Arrival => {
                let (method, id, params) = request.into_parts();
                // A notification sent with an id is a client bug; it is still applied,
                // because dropping a change would leave the server's copy of the document
                // different from the editor's for good (nothing the user typed may be
                // lost), and the id gets the error the protocol asks for.
                self.arrive(&method, params);
                Routed::Answered(id.map(|id| unanswered(id, &method)))
            }
            Lane::Snapshot { supersedes } => {
                let arrival = self.stamp(request.params(), supersedes);
                let inject_panic = self.faults.panic_in_inline_completion
                    && request.method() == api::inline_completion::METHOD
                    && Faults::targets(request.params());
                let handler = ARRIVAL.scope(arrival, self.inner.call(request));
                if inject_panic {
                    // Panics when polled, as a bug deep in the handler would.
                    return Routed::Running(
                        async move {
                            drop(handler);
                            injected_panic("inlineCompletion")
                        }
                        .boxed(),
                    );
                }
                Routed::Running(handler.boxed())
            }
            Lane::Concurrent => Routed::Running(self.inner.call(request)),
        }
    }
}

impl Service<Request> for Dispatch {
    type Response = Option<Response>;
    type Error = ExitedError;
    type Future = BoxFuture<'static, Answer>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let method = request.method().to_string();
        let id = request.id().cloned();
        let span = match &id {
            Some(id) => tracing::info_span!("lsp", method = %method, id = %id),
            None => tracing::info_span!("lsp", method = %method),
        };
        let _arrival_work = span.enter();
        // `exit` ends the read loop (`connection`), which stops reading there.
        if method == "shutdown" && id.is_some() {
            self.shutdown_received.store(true, Ordering::Relaxed);
        }
        // A change that panics part-way leaves its document unlike the editor's: kept to mark
        // it so (`api::did_change::failed`), as the request itself is gone by then.
        let changed = (method == api::did_change::METHOD)
            .then(|| document_uri(request.params()))
            .flatten();
        let handler = match std::panic::catch_unwind(AssertUnwindSafe(|| self.route(request))) {
            Ok(Routed::Running(handler)) => handler,
            Ok(Routed::Answered(answer)) => return future::ready(Ok(answer)).boxed(),
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                tracing::error!("{method} panicked on arrival: {message}");
                if let Some(uri) = &changed {
                    api::did_change::failed(&self.server().session, uri, "it panicked");
                }
                return future::ready(Ok(id.map(|id| internal_error(id, &method, &message))))
                    .boxed();
            }
        };
        // Its own task: the reading loop polls this only to collect the answer.
        let task = tokio::spawn(
            AssertUnwindSafe(handler)
                .catch_unwind()
                .instrument(span.clone()),
        );
        async move {
            let message = match task.await {
                Ok(Ok(Ok(Some(response)))) => return Ok(Some(response)),
                Ok(Ok(Ok(None))) => return Ok(id.map(|id| unanswered(id, &method))),
                Ok(Ok(Err(exited))) => return Err(exited),
                Ok(Err(panic)) => panic_message(panic.as_ref()),
                Err(join_error) => join_error.to_string(),
            };
            match &id {
                Some(id) => tracing::error!(
                    "{method} (request {id}) panicked: {message}; answered with an internal error"
                ),
                None => {
                    tracing::error!("{method} panicked: {message}; the notification is dropped")
                }
            }
            Ok(id.map(|id| internal_error(id, &method, &message)))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tower_lsp_server::gen_lsp_types::Uri;

    use super::*;
    use crate::complete::Completer;
    use crate::session::Session;

    fn dispatch() -> Dispatch {
        let session = Arc::new(Session::new());
        let completer = Completer::new(&session);
        let (service, _socket) = LspService::build(|client| Server {
            session: session.clone(),
            completer,
            client,
        })
        .custom_method(api::document_text::METHOD, Server::document_text)
        .finish();
        Dispatch::new(service, Arc::new(AtomicBool::new(false)))
    }

    fn request(method: &str, id: Option<i64>, params: Value) -> Request {
        let mut builder = Request::build(method.to_string()).params(params);
        if let Some(id) = id {
            builder = builder.id(id);
        }
        builder.finish()
    }

    /// Every answer `message` gets (none, or exactly one).
    async fn answer(dispatch: &mut Dispatch, message: Request) -> Option<Response> {
        dispatch.call(message).await.expect("not exited")
    }

    fn error_code(response: Option<Response>) -> ErrorCode {
        let (_, body) = response.expect("an answer").into_parts();
        body.expect_err("an error").code
    }

    const URI: &str = "file:///w/a.py";

    fn open(text: &str) -> Request {
        request(
            api::did_open::METHOD,
            None,
            json!({"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": text}}),
        )
    }

    fn change(id: Option<i64>, text: &str) -> Request {
        request(
            api::did_change::METHOD,
            id,
            json!({"textDocument": {"uri": URI, "version": 2}, "contentChanges": [{"text": text}]}),
        )
    }

    fn text(dispatch: &Dispatch) -> Option<String> {
        let document = dispatch.server().session.snapshot(&Uri::from(URI))?;
        Some(document.rope.to_string())
    }

    async fn initialized() -> Dispatch {
        let mut dispatch = dispatch();
        let init = request("initialize", Some(0), json!({"capabilities": {}}));
        let answer = answer(&mut dispatch, init).await.expect("answered");
        assert!(answer.is_ok(), "{answer:?}");
        dispatch
    }

    #[test]
    fn each_method_takes_the_lane_its_file_declares() {
        for method in [
            "textDocument/didOpen",
            "textDocument/didChange",
            "textDocument/didClose",
            "textDocument/didSave",
            "workspace/didChangeConfiguration",
            "workspace/didChangeWatchedFiles",
        ] {
            assert_eq!(api::lane(method), Lane::Arrival, "{method}");
        }
        for method in ["textDocument/inlineCompletion", "textDocument/completion"] {
            assert_eq!(api::lane(method), Lane::Snapshot { supersedes: true });
        }
        assert_eq!(
            api::lane("textDocument/codeAction"),
            Lane::Snapshot { supersedes: false }
        );
        for method in [
            "initialize",
            "initialized",
            "shutdown",
            "exit",
            "workspace/executeCommand",
            "ghostline/documentText",
            "ghostline/timings",
            "$/cancelRequest",
            "no/such",
        ] {
            assert_eq!(api::lane(method), Lane::Concurrent, "{method}");
        }
    }

    #[tokio::test]
    async fn arrival_lane_work_is_done_before_call_returns() {
        let mut dispatch = initialized().await;
        // Not awaited: the change must be applied by `call` itself, in arrival order.
        drop(dispatch.call(open("def alpha")));
        assert_eq!(text(&dispatch).as_deref(), Some("def alpha"));
        drop(dispatch.call(change(None, "def beta")));
        assert_eq!(text(&dispatch).as_deref(), Some("def beta"));
        let close = request(
            api::did_close::METHOD,
            None,
            json!({"textDocument": {"uri": URI}}),
        );
        drop(dispatch.call(close));
        assert_eq!(text(&dispatch), None);
    }

    #[tokio::test]
    async fn every_arrival_lane_method_has_its_handler() {
        let dispatch = initialized().await;
        let params = [
            (
                api::did_open::METHOD,
                json!({"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": "x"}}),
            ),
            (
                api::did_change::METHOD,
                json!({"textDocument": {"uri": URI, "version": 2}, "contentChanges": [{"text": "y"}]}),
            ),
            (api::did_save::METHOD, json!({"textDocument": {"uri": URI}})),
            (
                api::did_change_configuration::METHOD,
                json!({"settings": {}}),
            ),
            (
                api::did_change_watched_files::METHOD,
                json!({"changes": []}),
            ),
            (
                api::did_close::METHOD,
                json!({"textDocument": {"uri": URI}}),
            ),
        ];
        for (method, params) in params {
            assert_eq!(api::lane(method), Lane::Arrival);
            assert!(dispatch.arrive(method, Some(params)), "{method}");
        }
        assert!(!dispatch.arrive("textDocument/hover", Some(json!({}))));
    }

    #[tokio::test]
    async fn a_snapshot_lane_request_keeps_the_document_as_it_arrived() {
        let mut dispatch = initialized().await;
        drop(dispatch.call(open("def alpha")));
        let params = json!({"textDocument": {"uri": URI}, "position": {"line": 0, "character": 9}});
        let first = dispatch.stamp(Some(&params), true);
        drop(dispatch.call(change(None, "def beta")));
        let document = first.document.expect("the document was open");
        assert_eq!(document.rope.to_string(), "def alpha");
        // A newer request for the document takes the next generation; a cursor hint none.
        let second = dispatch.stamp(Some(&params), true);
        assert!(second.ticket.generation > first.ticket.generation);
        assert_eq!(second.document.unwrap().rope.to_string(), "def beta");
        assert_eq!(dispatch.stamp(Some(&params), false).ticket.generation, 0);
        // The handler reads the stamp its future was scoped with, and only there.
        let stamp = dispatch.stamp(Some(&params), true);
        let generation = stamp.ticket.generation;
        let seen = ARRIVAL.scope(stamp, async { arrival() }).await;
        assert_eq!(seen.ticket.generation, generation);
        assert!(arrival().document.is_none());
    }

    #[tokio::test]
    async fn odd_requests_get_exactly_one_answer() {
        let mut dispatch = initialized().await;
        drop(dispatch.call(open("def alpha")));
        // A notification sent with an id: applied, and its id refused.
        let answered = answer(&mut dispatch, change(Some(2), "def beta")).await;
        assert_eq!(error_code(answered), ErrorCode::InvalidRequest);
        assert_eq!(text(&dispatch).as_deref(), Some("def beta"));
        // An unknown `$/` method: an error with an id, nothing without one.
        let unknown = request("$/no.such", Some(3), json!({}));
        let answered = answer(&mut dispatch, unknown).await;
        assert_eq!(error_code(answered), ErrorCode::MethodNotFound);
        let unknown = request("$/no.such", None, json!({}));
        assert!(answer(&mut dispatch, unknown).await.is_none());
        // An unknown method with an id.
        let unknown = request("no/such", Some(4), json!({}));
        let answered = answer(&mut dispatch, unknown).await;
        assert_eq!(error_code(answered), ErrorCode::MethodNotFound);
        // A request answered by its handler: once, with its result.
        let text_request = request(
            "ghostline/documentText",
            Some(5),
            json!({"textDocument": {"uri": URI}}),
        );
        let (id, body) = answer(&mut dispatch, text_request)
            .await
            .expect("answered")
            .into_parts();
        assert_eq!((id, body.unwrap()), (Id::Number(5), json!("def beta")));
        // `exit` with an id: it exits, and the id is refused.
        let exit = request("exit", Some(6), Value::Null);
        let answered = answer(&mut dispatch, exit).await;
        assert_eq!(error_code(answered), ErrorCode::InvalidRequest);
    }

    #[tokio::test]
    async fn a_panic_answers_its_request_and_the_server_lives_on() {
        let mut dispatch = initialized().await;
        dispatch.faults = Faults {
            panic_in_inline_completion: true,
            panic_in_did_change: true,
        };
        let uri = format!("file:///w/{FAULT_URI_MARKER}.py");
        let open = request(
            api::did_open::METHOD,
            None,
            json!({"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": "x"}}),
        );
        drop(dispatch.call(open));
        // In the handler's future, on its own task.
        let inline = request(
            api::inline_completion::METHOD,
            Some(1),
            json!({"textDocument": {"uri": uri}, "position": {"line": 0, "character": 1}, "context": {"triggerKind": 1}}),
        );
        let answered = answer(&mut dispatch, inline).await;
        assert_eq!(error_code(answered), ErrorCode::InternalError);
        // On arrival: the change is answered (it had an id) and its document marked.
        let change = request(
            api::did_change::METHOD,
            Some(2),
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": "y"}]}),
        );
        let answered = answer(&mut dispatch, change).await;
        assert_eq!(error_code(answered), ErrorCode::InternalError);
        let document = dispatch.server().session.snapshot(&Uri::from(uri.as_str()));
        assert!(!document.expect("still open").in_sync);
        // And the next request is served.
        let text_request = request(
            "ghostline/documentText",
            Some(3),
            json!({"textDocument": {"uri": uri}}),
        );
        let (_, body) = answer(&mut dispatch, text_request)
            .await
            .expect("answered")
            .into_parts();
        assert_eq!(body.unwrap(), json!("x"));
    }
}
