use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

// Every request runs under `catch_unwind` (server::dispatch): with panic = "abort" one bug
// would kill the editor's language server instead of failing one request.
#[cfg(panic = "abort")]
compile_error!("ghostline-lsp isolates panics per request: build it with panic = \"unwind\"");

/// `ghostline-lsp stats [--days N]`: the acceptance stats table (today and the last N days,
/// 7 by default), then exit. Editors start the binary without arguments (or with ones it
/// ignores, such as `--stdio`), which serves LSP on stdio.
fn stats_command(args: &[String]) -> i32 {
    let mut days = 7;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let value = match arg.as_str() {
            "--days" => rest.next().map(String::as_str),
            other => other.strip_prefix("--days="),
        };
        match value
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|d| (1..=366).contains(d))
        {
            Some(n) => days = n,
            None => {
                eprintln!("usage: ghostline-lsp stats [--days N]  (N from 1 to 366)");
                return 2;
            }
        }
    }
    print!("{}", ghostline_lsp::table_for_data_dir(days));
    0
}

/// Logs go to stderr: stdout carries the protocol and nothing else.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "stats") {
        std::process::exit(stats_command(&args[1..]));
    }
    let filter =
        EnvFilter::try_from_env("GHOSTLINE_LSP_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // tower-lsp-server logs every message it reads or writes at trace level (its codec, and
    // the client's queue before `initialized`): documents' whole text, secret files' too. No
    // `GHOSTLINE_LSP_LOG` lets those through; its other events (debug and up) still come.
    let no_message_bodies = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target().starts_with("tower_lsp_server") && *meta.level() == tracing::Level::TRACE)
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_filter(filter.and(no_message_bodies)),
        )
        .init();
    // A panic is caught and answered where it happens (server::dispatch); the hook puts where
    // it happened into the log, which the default hook would print outside it.
    std::panic::set_hook(Box::new(|info| {
        let message = ghostline_lsp::panic_message(info.payload());
        let location = info
            .location()
            .map(|location| location.to_string())
            .unwrap_or_else(|| "an unknown place".to_string());
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            tracing::error!("panic at {location}: {message}\n{backtrace}");
        } else {
            tracing::error!("panic at {location}: {message}");
        }
    }));
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
    let shut_down_first = runtime.block_on(ghostline_lsp::run_stdio());
    tracing::info!("exit");
    // Do not wait for in-flight backend requests once the client said exit.
    runtime.shutdown_background();
    // LSP: 0 when `shutdown` came before the end, 1 otherwise.
    std::process::exit(if shut_down_first { 0 } else { 1 });
}
