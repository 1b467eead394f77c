//! ghostline-lsp: a language server that shows ghostline-serve's completions as inline
//! (ghost-text) suggestions, and as a completion item for editors without ghost text.
//!
//! Layers, lowest first; a module imports only modules above it in this list
//! (`tests/module_graph.rs` fails on any cycle):
//! `edit` (position encodings), `settings` (what the user configures), `tokens` (token
//! counts), `syntax` (tree-sitter), `privacy` (secrets), `backend` (the OpenAI-compatible
//! client; its own small config), `stats` (acceptance counts, local and shared), `index`
//! (the workspace), `session` (documents, settings,
//! request generations), `context` (what the model sees: the cursor window, the other
//! sources, the prompt template), `complete` (the pipeline from a request to a suggestion,
//! and its state: `Completer`), `server` (LSP, one file per method under `server/api/`).

pub mod backend;
pub mod complete;
pub mod context;
pub mod edit;
pub mod index;
pub mod privacy;
pub mod server;
pub mod session;
pub mod settings;
pub mod stats;
pub mod syntax;
pub mod tokens;

pub use server::run_stdio;
