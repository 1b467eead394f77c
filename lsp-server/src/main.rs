use tracing_subscriber::EnvFilter;

/// Logs go to stderr: stdout carries the protocol and nothing else.
fn main() {
    let filter =
        EnvFilter::try_from_env("GHOSTLINE_LSP_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    };
    runtime.block_on(ghostline_lsp::run_stdio());
    tracing::info!("exit");
    // Do not wait for in-flight backend requests once the client said exit.
    runtime.shutdown_background();
}
