use tower_lsp_server::gen_lsp_types::DidChangeConfigurationParams;

use crate::server::Server;

pub fn handle(server: &Server, params: DidChangeConfigurationParams) {
    server.session.update_settings(&params.settings);
    tracing::info!("settings now {:?}", server.session.settings());
}
