//! Work done at arrival, in arrival order.
//!
//! tower-lsp-server runs handlers concurrently (`buffer_unordered`), so two `didChange`
//! notifications may run in either order. The transport does call `Service::call` strictly
//! in the order messages arrive, so this layer applies document changes right there,
//! synchronously (a rope edit takes microseconds), and stamps completion requests with their
//! arrival time and generation before handing them on. A newer completion request for a
//! document therefore supersedes the older one the moment it is read, not when its handler
//! happens to be polled.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{self, BoxFuture, FutureExt};
use serde_json::Value;
use tower::Service;
use tower_lsp_server::gen_lsp_types::Uri;
use tower_lsp_server::jsonrpc::{Request, Response};

use super::api;
use crate::complete::timings::now_ns;
use crate::complete::Ticket;
use crate::session::Session;

/// Renamed completion methods: the stamped params carry a ticket the standard params type
/// would drop, so they are routed to custom handlers with their own params type. The
/// request id is kept, so `$/cancelRequest` still finds them.
pub const STAMPED_INLINE_COMPLETION: &str = "ghostline/stampedInlineCompletion";
pub const STAMPED_COMPLETION: &str = "ghostline/stampedCompletion";
pub const TICKET_FIELD: &str = "ghostlineTicket";

pub struct ArrivalOrder<S> {
    inner: S,
    session: Arc<Session>,
}

impl<S> ArrivalOrder<S> {
    pub fn new(inner: S, session: Arc<Session>) -> Self {
        Self { inner, session }
    }
}

fn document_uri(params: Option<&Value>) -> Option<Uri> {
    let uri = params?.get("textDocument")?.get("uri")?.as_str()?;
    Some(Uri::from(uri))
}

impl<S> Service<Request> for ArrivalOrder<S>
where
    S: Service<Request, Response = Option<Response>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Option<Response>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Option<Response>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let session = &self.session;
        match request.method() {
            "textDocument/didOpen" => {
                api::did_open::apply(session, request.params());
                future::ready(Ok(None)).boxed()
            }
            "textDocument/didChange" => {
                api::did_change::apply(session, request.params());
                future::ready(Ok(None)).boxed()
            }
            "textDocument/didClose" => {
                api::did_close::apply(session, request.params());
                future::ready(Ok(None)).boxed()
            }
            method @ ("textDocument/inlineCompletion" | "textDocument/completion") => {
                let arrived_ns = now_ns();
                let renamed = if method == "textDocument/completion" {
                    STAMPED_COMPLETION
                } else {
                    STAMPED_INLINE_COMPLETION
                };
                let (_, id, params) = request.into_parts();
                let generation = match document_uri(params.as_ref()) {
                    Some(uri) => session.begin_request(&uri),
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
                self.inner.call(builder.finish()).boxed()
            }
            "exit" => {
                session.exit_requested.notify_one();
                self.inner.call(request).boxed()
            }
            _ => self.inner.call(request).boxed(),
        }
    }
}
