use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::Result;

use crate::server::Server;

/// `ghostline/timings`: the server's own time for each completion request since the last
/// call (and forgets them), for the benchmark.
pub async fn handle(server: &Server) -> Result<Value> {
    Ok(json!({ "requests": server.completer.take_timings() }))
}
