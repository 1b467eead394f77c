use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::Result;

use super::Lane;
use crate::server::Server;

pub const METHOD: &str = "ghostline/timings";
/// Concurrent: a read of the completer's timings.
pub const LANE: Lane = Lane::Concurrent;

/// `ghostline/timings`: the server's own time for each completion request since the last
/// call (and forgets them), for the benchmark.
pub async fn handle(server: &Server) -> Result<Value> {
    Ok(json!({ "requests": server.completer.take_timings() }))
}
