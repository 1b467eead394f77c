//! ghostline-lsp: a language server that shows ghostline-serve's completions as inline
//! (ghost-text) suggestions, and as a completion item for editors without ghost text.
//!
//! `server/` speaks LSP (one file per method under `server/api/`), `session/` owns
//! documents and settings, `edit/` owns position encodings, `complete/` turns a cursor into
//! a suggestion, and `backend/` talks to the OpenAI-compatible server.

pub mod backend;
pub mod complete;
pub mod edit;
pub mod server;
pub mod session;

pub use server::run_stdio;
