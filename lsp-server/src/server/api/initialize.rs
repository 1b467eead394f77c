use tower_lsp_server::gen_lsp_types::{
    CompletionOptions, ExecuteCommandOptions, InitializeParams, InitializeResult,
    InlineCompletionProvider, ServerCapabilities, ServerInfo, TextDocumentSync,
    TextDocumentSyncKind, TextDocumentSyncOptions,
};
use tower_lsp_server::jsonrpc::Result;

use crate::complete::context::warm_up_tokenizer;
use crate::edit::PositionEncoding;
use crate::server::api::execute_command::{ACCEPT_COMMAND, DISMISS_COMMAND};
use crate::server::Server;

pub fn handle(server: &Server, params: InitializeParams) -> Result<InitializeResult> {
    let encoding = PositionEncoding::negotiate(
        params
            .capabilities
            .general
            .as_ref()
            .and_then(|general| general.position_encodings.as_deref()),
    );
    server.session.set_encoding(encoding);
    if let Some(options) = &params.initialization_options {
        server.session.update_settings(options);
    }
    warm_up_tokenizer();
    tracing::info!(
        "initialize: position encoding {encoding:?}, settings {:?}",
        server.session.settings()
    );

    Ok(InitializeResult {
        capabilities: ServerCapabilities {
            position_encoding: Some(encoding.kind()),
            text_document_sync: Some(TextDocumentSync::Options(TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::Incremental),
                ..Default::default()
            })),
            inline_completion_provider: Some(InlineCompletionProvider::Bool(true)),
            completion_provider: Some(CompletionOptions {
                resolve_provider: Some(false),
                ..Default::default()
            }),
            execute_command_provider: Some(ExecuteCommandOptions {
                commands: vec![ACCEPT_COMMAND.to_string(), DISMISS_COMMAND.to_string()],
                ..Default::default()
            }),
            ..Default::default()
        },
        server_info: Some(ServerInfo {
            name: "ghostline-lsp".to_string(),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        }),
    })
}
