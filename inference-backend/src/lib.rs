//! ghostline-serve: an OpenAI-compatible completion server for decoder-only code models on
//! ONNX Runtime. See ARCHITECTURE.md for how the modules fit together.

pub mod cli;
pub mod engine;
pub mod fault;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod queue;
pub mod scheduler;
pub mod validation;
