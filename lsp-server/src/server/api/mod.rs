//! One file per LSP request or notification.

pub mod code_action;
pub mod completion;
pub mod did_change;
pub mod did_change_configuration;
pub mod did_change_watched_files;
pub mod did_close;
pub mod did_open;
pub mod did_save;
pub mod document_text;
pub mod execute_command;
pub mod initialize;
pub mod initialized;
pub mod inline_completion;
pub mod shutdown;
pub mod timings;

/// A completion request as stamped at arrival by `server::dispatch`: the LSP params plus the
/// ticket that orders it against newer requests for the same document.
#[derive(serde::Deserialize)]
pub struct Stamped<P> {
    #[serde(flatten)]
    pub params: P,
    #[serde(rename = "ghostlineTicket", default)]
    pub ticket: crate::complete::Ticket,
}

impl<P> Stamped<P> {
    /// A request that bypassed the dispatch layer: ordered as if it arrived now.
    pub fn unstamped(params: P) -> Self {
        Self {
            params,
            ticket: crate::complete::Ticket::default(),
        }
    }
}
