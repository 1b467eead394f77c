use tower_lsp_server::jsonrpc::Result;

use crate::server::Server;

pub fn handle(server: &Server) -> Result<()> {
    tracing::info!(
        "shutdown ({} documents open)",
        server.session.open_document_count()
    );
    Ok(())
}
