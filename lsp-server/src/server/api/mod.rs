//! One file per LSP request or notification. Each file says, in its `LANE`, where its work
//! runs (see [`Lane`]); `server::dispatch` reads only that.

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

use tower_lsp_server::gen_lsp_types::{TextDocumentPositionParams, Uri};

use crate::complete::{Request, Ticket};
use crate::session::Document;

/// Where a handler's work runs, as ruff_server's sync and background handlers say it. The
/// line is the loop that reads messages: it reads the next one only when the arrival work
/// of this one is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Run to completion on arrival, before the next message is read: whatever changes what
    /// later requests see (document sync, settings, file events). Such a handler never
    /// awaits; it is cheap (a rope edit, a settings merge, a message to the index's thread)
    /// and never touches the disk.
    Arrival,
    /// A request about one document: on arrival it is stamped ([`Arrival`]: its ticket and a
    /// snapshot of the document as it is then), then it runs concurrently on that snapshot,
    /// whatever edits are read meanwhile. `supersedes`: it ends the document's older
    /// request still running (its ticket takes the document's next generation).
    Snapshot { supersedes: bool },
    /// Run concurrently, as its own task: lifecycle, commands, custom requests.
    Concurrent,
}

/// Where the work of `method` runs: the `LANE` its handler file declares; methods without a
/// handler here (unknown ones, `$/cancelRequest`, `exit`) are left to tower-lsp-server, which
/// answers them at once.
pub fn lane(method: &str) -> Lane {
    match method {
        initialize::METHOD => initialize::LANE,
        initialized::METHOD => initialized::LANE,
        shutdown::METHOD => shutdown::LANE,
        execute_command::METHOD => execute_command::LANE,
        document_text::METHOD => document_text::LANE,
        timings::METHOD => timings::LANE,
        did_open::METHOD => did_open::LANE,
        did_change::METHOD => did_change::LANE,
        did_close::METHOD => did_close::LANE,
        did_save::METHOD => did_save::LANE,
        did_change_configuration::METHOD => did_change_configuration::LANE,
        did_change_watched_files::METHOD => did_change_watched_files::LANE,
        inline_completion::METHOD => inline_completion::LANE,
        completion::METHOD => completion::LANE,
        code_action::METHOD => code_action::LANE,
        _ => Lane::Concurrent,
    }
}

/// What a [`Lane::Snapshot`] request was given when it arrived: its ticket (which orders it
/// against newer requests for the same document) and its document as it was then (`None`
/// when that is not open). Handed to the handler with its future (`dispatch::Stamp`).
#[derive(Clone, Debug, Default)]
pub struct Arrival {
    pub ticket: Ticket,
    pub document: Option<Document>,
}

impl Arrival {
    /// The completion request it stands for, at `at` (a completion's or an inline
    /// completion's position params).
    pub fn request(self, at: &TextDocumentPositionParams) -> Request {
        Request {
            uri: at.text_document.uri.clone(),
            position: at.position,
            ticket: self.ticket,
            document: self.document,
        }
    }
}

/// The `textDocument.uri` of a request's params, read without deserializing the rest.
pub fn document_uri(params: Option<&serde_json::Value>) -> Option<Uri> {
    let uri = params?.get("textDocument")?.get("uri")?.as_str()?;
    Some(Uri::from(uri))
}
