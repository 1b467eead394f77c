//! ghostline-lsp: a language server that shows ghostline-serve's completions as inline
//! (ghost-text) suggestions, and as a completion item for editors without ghost text.
//!
//! Layers, lowest first; a module imports only modules before it in this list, and of those
//! only the ones `ALLOWED` in `tests/module_graph.rs` names for it (the test fails on any
//! other import, in any path form):
//! `edit` (position encodings), `settings` (what the user configures), `tokens` (token
//! counts), `syntax` (tree-sitter), `privacy` (secrets), `backend` (the OpenAI-compatible
//! client; its own small config), `stats` (acceptance counts, local and shared), `index`
//! (the workspace), `session` (documents, settings,
//! request generations), `context` (what the model sees: the cursor window, the other
//! sources, the prompt template), `complete` (the pipeline from a request to a suggestion,
//! and its state: `Completer`), `server` (LSP, one file per method under `server/api/`).
//! Which files may read the disk, and that the arrival lane reads none and runs no regex or
//! BPE, is held by `tests/tidy.rs`.

// Every module is the crate's own: `pub(crate)`, so that the compiler reports what nothing
// uses. What the binary, the benches, the examples and the tests outside `src/` call is
// re-exported below, deliberately and nothing more.
pub(crate) mod backend;
pub(crate) mod complete;
pub(crate) mod context;
pub(crate) mod edit;
pub(crate) mod index;
pub(crate) mod privacy;
pub(crate) mod server;
pub(crate) mod session;
pub(crate) mod settings;
pub(crate) mod stats;
pub(crate) mod syntax;
pub(crate) mod tokens;

/// What `main.rs` runs: the server on stdio, the panic hook's message, `ghostline-lsp stats`.
pub use server::dispatch::panic_message;
pub use server::run_stdio;
pub use stats::table_for_data_dir;

/// The parts that are measured or checked without the binary: context building
/// (`benches/context_build.rs`), token counting (`examples/token_cost.rs`) and the secret scan
/// (`examples/redaction_*.rs`, `tests/redaction_false_positives.rs`).
pub mod bench {
    pub use crate::context::template::{render, FimMarkers, Format, Parts};
    pub use crate::context::{build, Budget, CurrentFile, OpenDocument, Workspace};
    pub use crate::index::{IndexConfig, WorkspaceIndex};
    pub use crate::settings::ContextMode;
    pub use crate::syntax::{parse_rope, Lang};

    pub mod tokens {
        pub use crate::tokens::{count, ensure_ready, line_tokens, LINE_CACHE_ENTRIES};
    }

    pub mod privacy {
        pub use crate::privacy::content::{credential_format, is_credential_file};
        pub use crate::privacy::{
            cursor_in_secret, redact_keep_lines, rule_spans, secret_spans, Excludes, Region,
            MARGIN_LINES, RULES,
        };
    }
}
