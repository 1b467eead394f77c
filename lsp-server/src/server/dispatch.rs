//! Where each message runs, and the promise that every request gets exactly one answer.
//!
//! tower-lsp-server calls `Service::call` strictly in the order messages arrive, and then
//! runs the returned futures concurrently. [`lane`] is the one table that decides, per
//! method, which side of that line a message's work falls on (as ruff_server's `api.rs` does
//! with its sync and background handlers):
//!
//! - **arrival**: applied synchronously inside `call`, before the next message is read —
//!   everything that changes what later requests see (document sync, settings, file events).
//!   These must be cheap (a rope edit, a settings merge, a message to the index's thread)
//!   and must not touch the disk.
//! - **stamped**: completion requests, stamped at arrival with their arrival time and
//!   per-document generation (so a newer request supersedes an older one the moment it is
//!   read), then run concurrently on a snapshot.
//! - **concurrent**: everything else, through tower-lsp-server's router (lifecycle,
//!   code actions, commands, custom requests).
//!
//! Every future runs as its own tokio task, so a handler busy on the CPU never holds up the
//! loop that reads the next message, and under `catch_unwind`, so a panic answers its
//! request with an internal error (and is logged) while the server lives on. A request with
//! an id that would otherwise get no answer (a notification method sent with an id, an
//! unknown `$/` method, `exit` with an id) is answered with an error.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{self, BoxFuture, FutureExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tower::Service;
use tower_lsp_server::gen_lsp_types::{
    DidChangeConfigurationParams, DidChangeWatchedFilesParams, DidSaveTextDocumentParams, Range,
    Uri,
};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Id, Request, Response};
use tower_lsp_server::{ExitedError, LspService};

use super::{api, Server};
use crate::complete::timings::now_ns;
use crate::complete::Ticket;

/// Renamed completion methods: the stamped params carry a ticket the standard params type
/// would drop, so they are routed to custom handlers with their own params type. The
/// request id is kept, so `$/cancelRequest` still finds them.
pub const STAMPED_INLINE_COMPLETION: &str = "ghostline/stampedInlineCompletion";
pub const STAMPED_COMPLETION: &str = "ghostline/stampedCompletion";
pub const TICKET_FIELD: &str = "ghostlineTicket";

/// Test-only fault injection: a comma-separated list of faults, each of which panics while
/// handling a message for a document whose URI contains [`FAULT_URI_MARKER`] (so a test
/// can make one request panic among healthy ones). `panic-in-inline-completion` panics in
/// the handler's future (concurrent side), `panic-in-did-change` in the synchronous apply.
pub const FAULT_ENV: &str = "GHOSTLINE_LSP_FAULT";
pub const FAULT_URI_MARKER: &str = "fault-panic";

/// What a method's work is, and where it runs. See the module comment.
enum Lane {
    /// Applied in `call`, in arrival order, before the next message is read.
    Arrival(fn(&Server, Option<&Value>)),
    /// Stamped at arrival, then run concurrently under this (custom) method name.
    Stamped(&'static str),
    /// Run concurrently by tower-lsp-server's router.
    Concurrent,
}

/// The one table of where each method runs.
fn lane(method: &str) -> Lane {
    match method {
        "textDocument/didOpen" => Lane::Arrival(|server, params| {
            api::did_open::apply(&server.session, params);
        }),
        "textDocument/didChange" => Lane::Arrival(|server, params| {
            if ranges_are_well_formed(params) {
                api::did_change::apply(&server.session, params);
            } else if let Some(uri) = document_uri(params) {
                api::did_change::failed(&server.session, &uri, "a range could not be read");
            }
        }),
        "textDocument/didClose" => Lane::Arrival(|server, params| {
            api::did_close::apply(&server.session, params);
        }),
        // Reads the document as it is at the save, so it belongs with the changes.
        "textDocument/didSave" => Lane::Arrival(|server, params| {
            if let Some(params) = parsed::<DidSaveTextDocumentParams>(method_name::SAVE, params) {
                api::did_save::handle(server, params);
            }
        }),
        // A settings merge and, if the index's inputs changed, a message to its thread.
        "workspace/didChangeConfiguration" => Lane::Arrival(|server, params| {
            if let Some(params) =
                parsed::<DidChangeConfigurationParams>(method_name::CONFIGURATION, params)
            {
                api::did_change_configuration::handle(server, params);
            }
        }),
        // Only messages to the index's thread, which reads the files itself.
        "workspace/didChangeWatchedFiles" => Lane::Arrival(|server, params| {
            if let Some(params) =
                parsed::<DidChangeWatchedFilesParams>(method_name::WATCHED_FILES, params)
            {
                api::did_change_watched_files::handle(server, params);
            }
        }),
        "textDocument/inlineCompletion" => Lane::Stamped(STAMPED_INLINE_COMPLETION),
        "textDocument/completion" => Lane::Stamped(STAMPED_COMPLETION),
        _ => Lane::Concurrent,
    }
}

mod method_name {
    pub const SAVE: &str = "textDocument/didSave";
    pub const CONFIGURATION: &str = "workspace/didChangeConfiguration";
    pub const WATCHED_FILES: &str = "workspace/didChangeWatchedFiles";
}

/// Whether every content change that has a `range` has a well-formed one. The LSP type
/// is an untagged enum, so a change whose range does not parse (a negative line, a string)
/// would silently deserialize as the other variant: a replacement of the whole document by
/// the change's text. Such a message is ignored instead, like any other malformed change.
fn ranges_are_well_formed(params: Option<&Value>) -> bool {
    let Some(changes) = params
        .and_then(|params| params.get("contentChanges"))
        .and_then(Value::as_array)
    else {
        return true; // malformed in a way the change's own deserializer refuses
    };
    let well_formed = changes.iter().all(|change| match change.get("range") {
        None | Some(Value::Null) => true,
        Some(range) => Range::deserialize(range).is_ok(),
    });
    if !well_formed {
        tracing::warn!("ignoring textDocument/didChange with a malformed range");
    }
    well_formed
}

fn parsed<P: DeserializeOwned>(method: &str, params: Option<&Value>) -> Option<P> {
    match params.map(P::deserialize) {
        Some(Ok(params)) => Some(params),
        _ => {
            tracing::warn!("ignoring malformed {method}");
            None
        }
    }
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

fn document_uri(params: Option<&Value>) -> Option<Uri> {
    let uri = params?.get("textDocument")?.get("uri")?.as_str()?;
    Some(Uri::from(uri))
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
        params
            .and_then(|params| params.get("textDocument")?.get("uri")?.as_str())
            .is_some_and(|uri| uri.contains(FAULT_URI_MARKER))
    }
}

type Answer = Result<Option<Response>, ExitedError>;

fn injected_panic(method: &str) -> Answer {
    panic!("injected fault: panic in {method}")
}

pub struct ArrivalOrder {
    inner: LspService<Server>,
    faults: Faults,
    /// Set when a `shutdown` request arrives: the process then exits with 0 (LSP: 1 if it
    /// ends without one).
    shutdown_received: Arc<AtomicBool>,
}

impl ArrivalOrder {
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

    /// The work of `request` done at arrival, and the future that finishes it.
    fn route(&mut self, request: Request) -> BoxFuture<'static, Answer> {
        match lane(request.method()) {
            Lane::Arrival(apply) => {
                let (method, id, params) = request.into_parts();
                if self.faults.panic_in_did_change
                    && method == "textDocument/didChange"
                    && Faults::targets(params.as_ref())
                {
                    panic!("injected fault: panic in didChange");
                }
                // A notification sent with an id is a client bug; it is still applied,
                // because dropping a change would leave the server's copy of the document
                // different from the editor's for good (nothing the user typed may be
                // lost), and the id gets the error the protocol asks for.
                apply(self.server(), params.as_ref());
                future::ready(Ok(id.map(|id| unanswered(id, &method)))).boxed()
            }
            Lane::Stamped(renamed) => {
                let arrived_ns = now_ns();
                let inject_panic = self.faults.panic_in_inline_completion
                    && request.method() == "textDocument/inlineCompletion"
                    && Faults::targets(request.params());
                let (_, id, params) = request.into_parts();
                let generation = match document_uri(params.as_ref()) {
                    Some(uri) => self.server().session.begin_request(&uri),
                    None => 0,
                };
                let params = match params {
                    Some(Value::Object(mut object)) => {
                        let ticket = Ticket {
                            generation,
                            arrived_ns,
                        };
                        object.insert(
                            TICKET_FIELD.into(),
                            serde_json::to_value(ticket).unwrap_or(Value::Null),
                        );
                        Some(Value::Object(object))
                    }
                    other => other, // malformed: let the handler's deserializer answer it
                };
                let mut builder = Request::build(renamed);
                if let Some(id) = id {
                    builder = builder.id(id);
                }
                if let Some(params) = params {
                    builder = builder.params(params);
                }
                let handler = self.inner.call(builder.finish());
                if inject_panic {
                    // Panics when polled, as a bug deep in the handler would.
                    return async move {
                        drop(handler);
                        injected_panic("inlineCompletion")
                    }
                    .boxed();
                }
                handler
            }
            Lane::Concurrent => self.inner.call(request),
        }
    }
}

impl Service<Request> for ArrivalOrder {
    type Response = Option<Response>;
    type Error = ExitedError;
    type Future = BoxFuture<'static, Answer>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let method = request.method().to_string();
        let id = request.id().cloned();
        match method.as_str() {
            "shutdown" if id.is_some() => self.shutdown_received.store(true, Ordering::Relaxed),
            "exit" => self.server().session.exit_requested.notify_one(),
            _ => {}
        }
        // A change that panics part-way leaves its document unlike the editor's: kept to mark
        // it so (`api::did_change::failed`), as the request itself is gone by then.
        let changed = (method == "textDocument/didChange")
            .then(|| document_uri(request.params()))
            .flatten();
        let handler = match std::panic::catch_unwind(AssertUnwindSafe(|| self.route(request))) {
            Ok(handler) => handler,
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
        let task = tokio::spawn(AssertUnwindSafe(handler).catch_unwind());
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
