use tower_lsp_server::gen_lsp_types::{
    CodeActionProvider, CompletionOptions, ExecuteCommandOptions, InitializeParams,
    InitializeResult, InlineCompletionProvider, RootPath, Save, ServerCapabilities, ServerInfo,
    TextDocumentSync, TextDocumentSyncKind, TextDocumentSyncOptions, WorkspaceFolders,
};
use tower_lsp_server::jsonrpc::Result;

use super::Lane;
use crate::edit::PositionEncoding;
use crate::index::uri_to_path;
use crate::server::api::execute_command::{
    ACCEPT_COMMAND, DISMISS_COMMAND, INDEX_STATUS_COMMAND, STATS_COMMAND,
};
use crate::server::Server;

pub const METHOD: &str = "initialize";
/// Concurrent, like every request; the read loop waits for its answer before it reads on
/// (nothing may be served before it), as tower-lsp-server's own transport did.
pub const LANE: Lane = Lane::Concurrent;
use crate::tokens;

pub fn handle(server: &Server, params: InitializeParams) -> Result<InitializeResult> {
    let encoding = PositionEncoding::negotiate(
        params
            .capabilities
            .general
            .as_ref()
            .and_then(|general| general.position_encodings.as_deref()),
    );
    server.session.set_encoding(encoding);
    // Settings first: they may name the queries folder.
    server.session.update_settings(
        params
            .initialization_options
            .as_ref()
            .unwrap_or(&serde_json::Value::Null),
    );
    server.session.set_roots(workspace_roots(&params));
    let can_watch = params
        .capabilities
        .workspace
        .as_ref()
        .and_then(|w| w.did_change_watched_files.as_ref())
        .and_then(|w| w.dynamic_registration)
        .unwrap_or(false);
    server
        .session
        .can_watch_files
        .store(can_watch, std::sync::atomic::Ordering::Relaxed);
    crate::syntax::queries::warm_up();
    tokens::warm_up();
    crate::privacy::warm_up();
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
                save: Some(Save::Bool(true)),
                ..Default::default()
            })),
            inline_completion_provider: Some(InlineCompletionProvider::Bool(true)),
            // No actions: the requests tell where the cursor is (see `code_action`).
            code_action_provider: Some(CodeActionProvider::Bool(true)),
            completion_provider: Some(CompletionOptions {
                resolve_provider: Some(false),
                ..Default::default()
            }),
            execute_command_provider: Some(ExecuteCommandOptions {
                commands: vec![
                    ACCEPT_COMMAND.to_string(),
                    DISMISS_COMMAND.to_string(),
                    INDEX_STATUS_COMMAND.to_string(),
                    STATS_COMMAND.to_string(),
                ],
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

/// Workspace folders, else the (deprecated) rootUri, else rootPath. Only local folders.
fn workspace_roots(params: &InitializeParams) -> Vec<std::path::PathBuf> {
    let mut roots: Vec<std::path::PathBuf> =
        match &params.workspace_folders_initialize_params.workspace_folders {
            Some(WorkspaceFolders::WorkspaceFolderList(folders)) => folders
                .iter()
                .filter_map(|folder| uri_to_path(&folder.uri))
                .collect(),
            _ => Vec::new(),
        };
    #[allow(deprecated)]
    if roots.is_empty() {
        if let Some(root) = params.root_uri.as_ref().and_then(uri_to_path) {
            roots.push(root);
        } else if let Some(RootPath::String(root)) = params.root_path.as_ref() {
            roots.push(std::path::PathBuf::from(root));
        }
    }
    roots.retain(|root| root.is_dir());
    roots
}
