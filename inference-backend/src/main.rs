use std::{
    net::SocketAddr,
    process::ExitCode,
    sync::{atomic::AtomicBool, atomic::Ordering, Arc, OnceLock},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::Parser;
use ghostline_serve::{
    cli::Args,
    engine::{Engine, EngineOptions},
    http::{self, AppState, LoadedModel},
    lifecycle::{self, Lifecycle, Phase},
    metrics::Metrics,
    model::{self, ModelFiles},
    queue::{JobQueue, QueueBounds},
    scheduler,
    validation::Limits,
};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Logs go to stderr; nothing about request contents is logged above debug level.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("GHOSTLINE_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,ort=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve(args));
    // A tokenisation still running on the blocking pool must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<()> {
    // Before anything else: SIGHUP's default action ends the process.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| tracing::warn!("cannot handle SIGHUP: {e}"))
        .ok();
    let model_dir = args.model.clone().unwrap_or_else(model::default_model_dir);
    let files = ModelFiles::resolve(&model_dir)?;
    let ort_library = args.ort_library().context(
        "no ONNX Runtime library found: set ORT_DYLIB_PATH (or --ort-lib) to libonnxruntime.so, or run ./run.sh once to install it",
    )?;
    let keys = args
        .api_key_file
        .as_deref()
        .map(http::KeyStore::open)
        .transpose()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(http::serve::load_tls(cert, key)?),
        _ => None,
    };
    let audit = args
        .audit_log
        .as_deref()
        .map(http::audit::AuditLog::open)
        .transpose()?;
    let limits = Limits {
        max_tokens_cap: args.max_tokens_cap.max(1),
        context_length: args
            .context_length
            .unwrap_or(files.config.context_length)
            .max(2),
    };
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .context("--host/--port do not form an address")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        "listening on {}://{local} (model {} loading)",
        if tls.is_some() { "https" } else { "http" },
        files.dir.display()
    );

    ghostline_serve::fault::init();
    let lifecycle = Arc::new(Lifecycle::new(Duration::from_secs_f64(
        args.engine_stall_limit.clamp(0.1, 86_400.0),
    )));
    let metrics = Arc::new(Metrics::default());
    let state = Arc::new(AppState {
        lifecycle: lifecycle.clone(),
        model: OnceLock::new(),
        metrics: metrics.clone(),
        keys,
        tenants: Default::default(),
        owner_metrics: Default::default(),
        audit,
        max_body_bytes: args.max_body_bytes,
        request_timeout: Duration::from_secs_f64(args.request_timeout.max(0.001)),
        body_timeout: Duration::from_secs_f64(args.body_timeout.clamp(0.1, 86_400.0)),
        metrics_key: args
            .metrics_key
            .as_deref()
            .map(http::keys::MetricsKey::parse)
            .transpose()?,
    });

    let scheduler_options = scheduler::SchedulerOptions {
        prefix_cache_bytes: args.prefix_cache_mb * 1024 * 1024,
        max_active: args.max_active.max(1),
        max_active_tokens: args.max_active_tokens(limits.context_length),
        prefill_chunk: args.prefill_chunk.max(1),
        batching: args.batching == ghostline_serve::cli::OnOff::On,
        prompt_lookup: args.prompt_lookup == ghostline_serve::cli::OnOff::On,
        stop: Arc::new(AtomicBool::new(false)),
    };
    let stop_engine = scheduler_options.stop.clone();
    let options = EngineOptions {
        ort_library,
        device: args.device,
        threads: args.threads(),
        cuda_graph: args.cuda_graph,
        fixed_batch: (args.max_active.max(1), limits.context_length),
        prefill_graph: args.prefill_graph == ghostline_serve::cli::OnOff::On,
        weights_in_memory: !args.map_weights,
    };
    let queue_bounds = QueueBounds {
        requests: args.queue_size.max(1),
        tokens: args.queue_tokens(limits.context_length),
    };
    tracing::info!(
        "admission: up to {} requests and {} tokens in flight, {} requests and {} tokens waiting",
        scheduler_options.max_active,
        scheduler_options.max_active_tokens,
        queue_bounds.requests,
        queue_bounds.tokens
    );
    let (queue, jobs) = JobQueue::new(queue_bounds, metrics.clone());
    let engine_state = state.clone();
    let engine_thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            let started = Instant::now();
            let mut engine = match Engine::load(&files, &options) {
                Ok(engine) => engine,
                Err(e) => {
                    tracing::error!("cannot load model: {e:#}");
                    std::process::exit(1);
                }
            };
            if let Err(e) = warm_up(&mut engine, &metrics) {
                tracing::error!("model failed its warm-up run: {e:#}");
                std::process::exit(1);
            }
            tracing::info!(
            "ready: model {} ({:?} layout{}) on {:?} with {} threads, loaded and warmed in {:.1}s",
            engine.config.name,
            engine.layout,
            if engine.has_prefill_graph() { ", prefill graph" } else { "" },
            engine.device,
            options.threads,
            started.elapsed().as_secs_f64()
        );
            let loaded = LoadedModel {
                config: engine.config.clone(),
                tokenizer: engine.tokenizer.clone(),
                queue,
                device: engine.device,
                layout: engine.layout,
                limits,
            };
            // Loading and warming took long; the loop beats from its first round on.
            metrics.engine_heartbeat.beat();
            let _ = engine_state.model.set(loaded);
            // The loop only returns when the queue closes, which never happens while the
            // server runs; returning or panicking, the engine is gone: /ready turns 503 and the
            // process exits non-zero for its supervisor to restart it.
            let stop = scheduler_options.stop.clone();
            let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                scheduler::run_engine_loop(engine, jobs, metrics, scheduler_options)
            }));
            if ended.is_ok() && stop.load(Ordering::SeqCst) {
                // Asked to stop by `main`; the engine was dropped on this thread.
                tracing::info!("engine stopped");
                return;
            }
            tracing::error!(
                "the engine thread stopped ({}); exiting",
                if ended.is_err() {
                    "panic"
                } else {
                    "queue closed"
                }
            );
            engine_state.lifecycle.engine_stopped();
        })?;

    tokio::spawn(on_hangup(state.clone(), hangup));
    let grace = Duration::from_secs_f64(args.shutdown_grace.clamp(0.0, 86_400.0));
    let max_connections = http::serve::connection_limit(args.max_connections.max(1));
    let serve_options = http::serve::ServeOptions {
        header_timeout: Duration::from_secs_f64(args.header_timeout.max(0.1)),
        max_connections,
        max_connections_per_address: http::serve::per_address_limit(
            args.max_connections_per_address,
            max_connections,
        ),
        tls,
    };
    let app = state.clone();
    let server = http::serve::serve(
        listener,
        http::router(state),
        serve_options,
        stop_signal(lifecycle.clone(), grace),
    );
    // Connections that outlive the end of the streams (a client that never finishes its
    // request) do not hold the exit.
    let hard_stop = {
        let lifecycle = lifecycle.clone();
        async move {
            lifecycle::ending(&mut lifecycle.subscribe()).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    };
    tokio::select! {
        result = server => result?,
        () = hard_stop => tracing::warn!("connections still open 5 s after the end; closing them"),
    }
    // Every answer has ended: its audit line is queued. Written before the exit, not lost.
    if let Some(audit) = &app.audit {
        tokio::task::block_in_place(|| audit.close());
    }
    let engine_failed = lifecycle.engine_down();
    stop_engine.store(true, Ordering::SeqCst);
    join_engine(engine_thread).await;
    if engine_failed {
        anyhow::bail!("the engine thread stopped");
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long the exit waits for the engine thread: one prefill chunk or decode step, or the
/// rest of a model load.
const ENGINE_JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits for the engine thread to end (it notices the stop flag between steps). Returning from
/// `main` runs ONNX Runtime's static destructors, so a thread still inside a forward pass then
/// would crash the process: past the timeout the process leaves without running them.
async fn join_engine(thread: std::thread::JoinHandle<()>) {
    let deadline = Instant::now() + ENGINE_JOIN_TIMEOUT;
    while !thread.is_finished() {
        if Instant::now() > deadline {
            tracing::error!(
                "the engine thread did not stop within {} s; leaving without it",
                ENGINE_JOIN_TIMEOUT.as_secs()
            );
            // SAFETY: _exit ends the process at once, running no destructor that could race
            // the engine thread.
            unsafe { libc::_exit(1) };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = thread.join();
}

/// Resolves when the server must stop taking connections: after SIGTERM or Ctrl-C, once no
/// completion is in flight or `grace` has passed (meanwhile connections are still taken, and
/// `/ready` and new completions answer 503, so a load balancer sees the drain rather than
/// refused connections), or when the engine thread is gone (after a second in which `/ready`
/// says 503). Open streams then end at once.
async fn stop_signal(lifecycle: Arc<Lifecycle>, grace: Duration) {
    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("draining: {:.1} s for running requests", grace.as_secs_f64());
            lifecycle.enter(Phase::Draining);
            tokio::select! {
                () = tokio::time::sleep(grace) => {}
                () = lifecycle.idle() => {}
                () = lifecycle.engine_gone() => {}
            }
            lifecycle.enter(Phase::Ending);
        }
        () = lifecycle.engine_gone() => {
            lifecycle.enter(Phase::Ending);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// SIGHUP (logrotate's `postrotate`, an operator's reload) never ends the server: it reads the
/// API key file again and reopens the audit log by its name. The key file is also read again
/// when its modification time changes (checked every 2 s). Requests already admitted are not
/// affected.
async fn on_hangup(state: Arc<AppState>, mut hangup: Option<tokio::signal::unix::Signal>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        let signalled = async {
            match hangup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = signalled => {
                tracing::info!("SIGHUP: reloading the API key file and reopening the audit log");
                if let Some(keys) = &state.keys {
                    keys.reload();
                }
                if let Some(audit) = &state.audit {
                    audit.reopen();
                }
            }
            _ = tick.tick() => {
                if let Some(keys) = &state.keys {
                    keys.reload_if_changed();
                }
            }
        }
    }
}

/// One short prefill and a few decode steps (and one pass long enough for the prefill graph),
/// so the first user request does not pay for ONNX Runtime's lazy initialisation; then a timed
/// 128-token prompt and 8 decode steps, the first measure of this machine's speed that
/// `/v1/models` reports (requests refine it).
fn warm_up(engine: &mut Engine, metrics: &Metrics) -> Result<()> {
    use ghostline_serve::engine::sampling::argmax;
    let fim = &engine.config.fim;
    let prompt = fim
        .template
        .replace("{prefix}", "fn main() {\n    ")
        .replace("{suffix}", "\n}\n");
    let ids = engine.tokenizer.encode(&prompt)?;
    let mut seq = engine.new_sequence(ids.len() + 4)?;
    let mut token = ghostline_serve::engine::sampling::argmax(engine.forward(&mut seq, &ids)?);
    for _ in 0..3 {
        token = ghostline_serve::engine::sampling::argmax(engine.forward(&mut seq, &[token])?);
    }
    if engine.has_prefill_graph() {
        let long: Vec<u32> = ids
            .iter()
            .copied()
            .cycle()
            .take(ghostline_serve::engine::PREFILL_GRAPH_MIN_TOKENS)
            .collect();
        let mut seq = engine.new_sequence(long.len())?;
        engine.forward(&mut seq, &long)?;
    }
    let long: Vec<u32> = ids.iter().copied().cycle().take(128).collect();
    let mut seq = engine.new_sequence(long.len() + 8)?;
    let started = Instant::now();
    let mut token = argmax(engine.forward(&mut seq, &long)?);
    metrics.observe_prefill(long.len(), started.elapsed().as_secs_f64());
    let started = Instant::now();
    for _ in 0..8 {
        token = argmax(engine.forward(&mut seq, &[token])?);
    }
    metrics.observe_decode(8, started.elapsed().as_secs_f64());
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}
