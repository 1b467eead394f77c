//! ghostline-lsp: a language server that shows ghostline-serve's completions as inline
//! (ghost-text) suggestions, and as a completion item for editors without ghost text.
//!
//! `server/` speaks LSP (one file per method under `server/api/`), `session/` owns
//! documents and settings, `edit/` owns position encodings, `complete/` turns a cursor into
//! a suggestion, `context/` decides what the model sees, `index/` knows the workspace,
//! `syntax/` owns tree-sitter, `privacy` keeps secrets out of prompts, and `backend/`
//! talks to the OpenAI-compatible server.

pub mod backend;
pub mod complete;
pub mod context;
pub mod edit;
pub mod index;
pub mod privacy;
pub mod server;
pub mod session;
pub mod syntax;
pub mod tokens;

pub use server::run_stdio;
