//! Command-line flags.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::engine::DeviceChoice;

#[derive(Debug, Parser)]
#[command(
    name = "ghostline-serve",
    version,
    about = "OpenAI-compatible code completion server over ONNX Runtime"
)]
pub struct Args {
    /// Model directory (ghostline.json, tokenizer.json, ONNX decoder). Default: the default model
    /// in $GHOSTLINE_CACHE/models (~/.cache/ghostline/models).
    #[arg(long, env = "GHOSTLINE_MODEL")]
    pub model: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (the log says which).
    #[arg(long, default_value_t = 8123)]
    pub port: u16,
    /// auto: CUDA when its execution provider loads, else the CPU (the log says which).
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Intra-op threads for ONNX Runtime. Default: the cores this process may use. More threads
    /// than free cores make decoding slower, not faster.
    #[arg(long)]
    pub threads: Option<usize>,
    /// API key file: one key per line, or `OWNER KEY [rpm=N] [streams=N] [tpm=N] [group=NAME]`
    /// lines, KEY plain or `sha256:HEX` (see README). Reloaded on SIGHUP and when it changes.
    /// Without it the API is open (bind to loopback).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// One JSON line per API request (time, owner, status, token counts, timings; never text)
    /// appended to this file, or `-` for stderr.
    #[arg(long)]
    pub audit_log: Option<String>,
    /// Seconds a connection has for its TLS handshake and each request's headers (also the
    /// idle time allowed between keep-alive requests; ghostline-lsp drops idle connections
    /// after 25 s, before this closes them under it).
    #[arg(long, default_value_t = 30.0)]
    pub header_timeout: f64,
    /// Open connections at most (also kept below the open-file limit); more wait to be accepted.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Open connections at most from one client address (an IPv6 client's /64); more are
    /// closed at once. Default: a quarter of --max-connections. Behind a reverse proxy all
    /// clients share its address: raise this, and bound clients in the proxy instead.
    #[arg(long)]
    pub max_connections_per_address: Option<usize>,
    /// Seconds a request's body has to arrive once its headers have (a client sending one byte
    /// now and then is answered 408 and its connection closed).
    #[arg(long, default_value_t = 30.0)]
    pub body_timeout: f64,
    /// Protects /metrics (per-owner request and token counts): it then answers only requests
    /// with `Authorization: Bearer KEY` (KEY plain, or `sha256:HEX` of it here). Prefer the
    /// environment variable to the flag, which other users can read in the process list.
    #[arg(long, env = "GHOSTLINE_METRICS_KEY", hide_env_values = true)]
    pub metrics_key: Option<String>,
    /// Seconds the engine thread may go without progress (it shows progress every prefill chunk
    /// and decode step, and every 50 ms when idle) before /ready says 503 while /health stays
    /// 200: a stuck forward pass takes the replica out of rotation. Keep it above the longest
    /// single forward pass, one --prefill-chunk of the model on this machine (the default is
    /// far above the default model's, about 1 s on 2 CPU cores, and above one of a several times
    /// larger model's).
    #[arg(long, default_value_t = 30.0)]
    pub engine_stall_limit: f64,
    /// libonnxruntime.so to load. Default: the one in Ghostline's Python environment.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Requests that may wait for the engine; more are refused with 503 and Retry-After.
    #[arg(long, default_value_t = 16)]
    pub queue_size: usize,
    /// Tokens that waiting requests may hold together, each its prompt + max_tokens; a request
    /// past it is refused with 503 and Retry-After, unless the queue is empty. Default:
    /// --queue-size × the context length (never binding before --queue-size is).
    #[arg(long)]
    pub queue_tokens: Option<usize>,
    /// Upper bound on max_tokens; larger requests are clamped to it.
    #[arg(long, default_value_t = 512)]
    pub max_tokens_cap: usize,
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Seconds a request may take from arrival to its last token.
    #[arg(long, default_value_t = 60.0)]
    pub request_timeout: f64,
    /// Requests in flight at once (prefilling or decoding; each holds the KV state of its prompt
    /// and completion); further requests wait in the queue.
    #[arg(long, default_value_t = 8)]
    pub max_active: usize,
    /// Tokens the requests in flight may hold together, each its prompt + max_tokens (the KV
    /// positions it may grow to); a request that would pass it waits in the queue until enough
    /// have ended, and one larger than it runs alone. Default: --max-active × the context length
    /// (the KV the engine is sized for; never binding before --max-active is).
    #[arg(long)]
    pub max_active_tokens: Option<usize>,
    /// on: decode steps of all requests past their prompt run as one batched forward pass
    /// (GroupQueryAttention models; Optimum exports always interleave). off: one decode step per
    /// request in turn (batch size 1).
    #[arg(long, value_enum, default_value = "on")]
    pub batching: OnOff,
    /// on: a greedy request decoding alone also feeds the tokens that followed the last few
    /// tokens' earlier occurrence (in its prompt or completion) and keeps those the model agrees
    /// with: several tokens per forward pass when code repeats, the same tokens as off up to ONNX
    /// Runtime's rounding (several positions at once take another kernel path than one). Needs a
    /// model with a logits_to_keep input (the default model has one) and --batching on.
    #[arg(long, value_enum, default_value = "on")]
    pub prompt_lookup: OnOff,
    /// CPU only: run prompts of 64 tokens or more on the model's prefill graph (ghostline.json
    /// `prefill_onnx`: the same weights computing in f32, faster for long prompts on CPUs
    /// without int8 dot-product instructions) and everything else on the main graph. off: one
    /// graph, and the prefill graph's memory saved. No effect on models without one.
    #[arg(long, value_enum, default_value = "on")]
    pub prefill_graph: OnOff,
    /// CUDA only: let the CUDA execution provider capture the decode step once and replay it.
    /// Needs fixed shapes, so the decode batch becomes --max-active slots of context-length
    /// positions allocated up front (lower --context-length to bound that memory); the prefix
    /// cache then keeps prompts only.
    #[arg(long)]
    pub cuda_graph: bool,
    /// Prompt tokens prefilled between two decode steps while requests are decoding (long
    /// prompts then do not stall their streams): batched, in all (oldest request first);
    /// interleaved, per request per turn. A prompt alone in the engine goes in chunks too, so
    /// a request whose client left or whose deadline passed stops within one chunk.
    #[arg(long, default_value_t = 128)]
    pub prefill_chunk: usize,
    /// Memory for the KV state of recent prompts, reused when a new prompt shares their start
    /// (the next keystroke in the same file). 0 turns the prefix cache off.
    #[arg(long, default_value_t = 512)]
    pub prefix_cache_mb: usize,
    /// Let ONNX Runtime map the weights files instead of reading them into memory: replicas
    /// on one machine then share one copy in the page cache, but a weights file truncated or
    /// rewritten in place while the server runs kills it (SIGBUS). Model preparation never
    /// rewrites a served directory (it renames a new one into place).
    #[arg(long)]
    pub map_weights: bool,
    /// Override the model's context length (prompt + completion tokens).
    #[arg(long)]
    pub context_length: Option<usize>,
    /// Seconds that running requests may go on after SIGTERM (or Ctrl-C): no new connections
    /// are taken and /ready says 503 meanwhile; streams still running then end with an error
    /// event and `[DONE]`, and the process exits 0.
    #[arg(long, default_value_t = 10.0)]
    pub shutdown_grace: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl Args {
    /// `--max-active-tokens`, or its default for a context of `context_length` tokens.
    pub fn max_active_tokens(&self, context_length: usize) -> usize {
        self.max_active_tokens
            .unwrap_or(self.max_active.max(1).saturating_mul(context_length))
            .max(1)
    }

    /// `--queue-tokens`, or its default for a context of `context_length` tokens.
    pub fn queue_tokens(&self, context_length: usize) -> usize {
        self.queue_tokens
            .unwrap_or(self.queue_size.max(1).saturating_mul(context_length))
            .max(1)
    }

    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            })
            .max(1)
    }

    pub fn ort_library(&self) -> Option<PathBuf> {
        self.ort_lib
            .clone()
            .or_else(|| find_ort_in_venv(&crate::model::cache_root().join("venv")))
    }
}

/// `venv/lib/python3.X/site-packages/onnxruntime/capi/libonnxruntime.so.<version>`.
fn find_ort_in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    for python in std::fs::read_dir(lib).ok()?.flatten() {
        let capi = python.path().join("site-packages/onnxruntime/capi");
        let Ok(entries) = std::fs::read_dir(&capi) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so"))
            })
            .collect();
        found.sort();
        if let Some(path) = found.pop() {
            return Some(path);
        }
    }
    None
}
