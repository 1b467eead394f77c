//! The LSP front: the `LanguageServer` implementation, which only routes to `api/`, and
//! the stdio entry point.

pub mod api;
pub mod dispatch;
pub mod framing;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tower_lsp_server::gen_lsp_types::{
    CodeActionParams, CodeActionResponse, CompletionParams, CompletionResponse,
    DidChangeConfigurationParams, DidChangeTextDocumentParams, DidChangeWatchedFilesParams,
    DidCloseTextDocumentParams, DidOpenTextDocumentParams, DidSaveTextDocumentParams,
    ExecuteCommandParams, InitializeParams, InitializeResult, InitializedParams,
    InlineCompletionParams, InlineCompletionResponse, LspAny,
};
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::{Client, LanguageServer, LspService};

use crate::complete::Completer;
use crate::session::Session;
use api::document_text::DocumentTextParams;
use dispatch::Dispatch;

pub struct Server {
    pub session: Arc<Session>,
    /// The completion pipeline's own state (backend client, memory, pacing, ...).
    pub completer: Arc<Completer>,
    pub client: Client,
}

/// Each method's handler in `api/`. Where it runs is its file's `LANE` (see `dispatch`): the
/// notifications here run to their end on arrival, the completion requests on the document
/// as it was when they arrived (`dispatch::arrival`).
impl LanguageServer for Server {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        api::initialize::handle(self, params)
    }

    async fn initialized(&self, _: InitializedParams) {
        api::initialized::handle(self).await;
    }

    async fn shutdown(&self) -> Result<()> {
        api::shutdown::handle(self).await
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        api::did_open::handle(&self.session, params);
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        api::did_change::handle(&self.session, params);
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        api::did_close::handle(&self.session, params);
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        api::did_save::handle(self, params);
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        api::did_change_watched_files::handle(self, params);
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        api::did_change_configuration::handle(self, params);
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<LspAny>> {
        api::execute_command::handle(self, params).await
    }

    async fn inline_completion(
        &self,
        params: InlineCompletionParams,
    ) -> Result<Option<InlineCompletionResponse>> {
        api::inline_completion::handle(self, dispatch::arrival(), params).await
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        api::completion::handle(self, dispatch::arrival(), params).await
    }

    async fn code_action(
        &self,
        params: CodeActionParams,
    ) -> Result<Option<Vec<CodeActionResponse>>> {
        api::code_action::handle(self, dispatch::arrival(), params).await
    }
}

impl Server {
    async fn document_text(&self, params: DocumentTextParams) -> Result<Option<String>> {
        api::document_text::handle(self, params).await
    }

    async fn timings(&self) -> Result<Value> {
        api::timings::handle(self).await
    }
}

/// Answers awaited at once by the transport. Each handler runs as its own task (see
/// `dispatch`), so this bounds only how many unanswered requests the transport tracks
/// before it stops reading; completions waiting on a slow backend must not reach it.
const CONCURRENT_REQUESTS: usize = 256;

/// Serves LSP on stdin/stdout until `exit` or end of input. Returns whether a `shutdown`
/// request came first (LSP: the process then exits with 0, else with 1).
pub async fn run_stdio() -> bool {
    let session = Arc::new(Session::new());
    let completer = Completer::new(&session);
    let (service, socket) = LspService::build(|client| Server {
        session: session.clone(),
        completer: completer.clone(),
        client,
    })
    .custom_method("ghostline/documentText", Server::document_text)
    .custom_method("ghostline/timings", Server::timings)
    .finish();
    let shutdown_received = Arc::new(AtomicBool::new(false));
    let service = Dispatch::new(service, shutdown_received.clone());
    let (transport_in, guard_to_transport) = tokio::io::duplex(1 << 16);
    let (transport_to_guard, transport_out) = tokio::io::duplex(1 << 16);
    let transport = async move {
        tower_lsp_server::Server::new(transport_in, transport_to_guard, socket)
            .concurrency_level(CONCURRENT_REQUESTS)
            .serve(service)
            .await;
        // Dropping the transport's ends here (after `exit`) lets the guard finish.
    };
    let guard = tokio::spawn(framing::guard(
        tokio::io::stdin(),
        tokio::io::stdout(),
        guard_to_transport,
        transport_out,
    ));
    // The transport waits for requests still in flight before it returns; after `exit`
    // nobody wants their answers, so give them only a moment.
    let exit_requested = async {
        session.exit_requested.notified().await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    tokio::select! {
        () = transport => {}
        () = exit_requested => {}
    }
    // The transport ends on `exit` or end of input. Give the guard a moment to write what
    // the transport said last; its reader may stay blocked on an open stdin, so do not wait
    // for it beyond that.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), guard).await;
    shutdown_received.load(Ordering::Relaxed)
}
