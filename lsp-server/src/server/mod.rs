//! The LSP front: the `LanguageServer` implementation, which only routes to `api/`, and
//! the stdio entry point.

pub mod api;
pub mod connection;
pub mod dispatch;
pub mod framing;
pub mod message;

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
    .custom_method(api::document_text::METHOD, Server::document_text)
    .custom_method(api::timings::METHOD, Server::timings)
    .finish();
    let shutdown_received = Arc::new(AtomicBool::new(false));
    let dispatch = Dispatch::new(service, shutdown_received.clone());
    connection::serve(tokio::io::stdin(), tokio::io::stdout(), dispatch, socket).await;
    shutdown_received.load(Ordering::Relaxed)
}
