//! The gate: whether a spot may get a suggestion (or a warm-up) at all. Requests and warm-ups
//! go through the same two checks: the document (`admit_document`: cheap, on the async
//! threads) and the cursor (`admit_cursor`: the secret check's regexes, on blocking threads so
//! an edit never waits behind them).

use ropey::Rope;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::gen_lsp_types::Uri;

use crate::session::{Document, Session};
use crate::settings::Settings;

/// `document` (the request's snapshot of `uri`) when it may get suggestions: not a secret file
/// (`.env`, a key, ...: nothing of it may go into a prompt), open, within the document limits,
/// in an enabled language.
pub(super) fn admit_document(
    session: &Session,
    settings: &Settings,
    uri: &Uri,
    document: Option<Document>,
) -> Option<Document> {
    if session.is_excluded(uri) {
        tracing::debug!("no suggestions in {uri}: excluded");
        return None;
    }
    let document = document?;
    if !document.gets_suggestions() {
        tracing::debug!("no suggestions in {uri}: over the document limits");
        return None;
    }
    if !settings.language_enabled(&document.language_id) {
        return None;
    }
    Some(document)
}

/// Why nothing may be suggested at `cursor`, if so: the document is a credential file under
/// an ordinary name (netrc, kubeconfig, `kind: Secret`, ...), or the cursor is inside a key or
/// password (whatever a prompt held, a suggestion would guess at it). Blocking: regexes over
/// the file's head and the cursor's region.
pub(super) fn secret_at(rope: &Rope, cursor: usize) -> Option<&'static str> {
    if crate::privacy::rope_is_credential_file(rope) {
        return Some("its content is a credential file");
    }
    if crate::privacy::cursor_in_secret(rope, cursor) {
        return Some("the cursor is inside a secret");
    }
    None
}

/// `secret_at` off the async threads: `Some(())` when the cursor may get a suggestion; `None`
/// when it may not, when `cancel` fired first, or when the check failed. It runs on tokio's
/// blocking threads, not on the work pool: typing through a suggestion and warm-ups only need
/// this bounded scan (`privacy` caps it in bytes), and must not queue behind prompts being
/// built there.
pub(super) async fn admit_cursor(
    cancel: &CancellationToken,
    uri: &Uri,
    rope: &Rope,
    cursor: usize,
) -> Option<()> {
    let rope = rope.clone();
    let check = tokio::task::spawn_blocking(move || secret_at(&rope, cursor));
    let secret = tokio::select! {
        biased;
        () = cancel.cancelled() => return None,
        checked = check => checked.ok()?,
    };
    match secret {
        Some(why) => {
            tracing::debug!("no suggestions in {uri}: {why}");
            None
        }
        None => Some(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(session: &Session, uri: &Uri, text: &str, language_id: &str) -> Option<Document> {
        session.open_document(uri.clone(), Document::new(text, 1, language_id.into()));
        session.snapshot(uri)
    }

    #[test]
    fn a_document_is_admitted_unless_excluded_closed_too_large_or_its_language_is_off() {
        let session = Session::new();
        let settings = Settings::default();
        let code = Uri::from("file:///w/app.py");
        let document = open(&session, &code, "def f():\n    pass\n", "python");
        assert!(admit_document(&session, &settings, &code, document.clone()).is_some());
        // Not open when the request arrived.
        assert!(admit_document(&session, &settings, &code, None).is_none());
        // A secret file, whatever it holds.
        let env = Uri::from("file:///w/.env");
        let secret_file = open(&session, &env, "DEBUG=1\n", "dotenv");
        assert!(admit_document(&session, &settings, &env, secret_file).is_none());
        // Kept in sync but not served (over the limits, out of sync).
        let mut out_of_sync = document.clone().unwrap();
        out_of_sync.in_sync = false;
        assert!(admit_document(&session, &settings, &code, Some(out_of_sync)).is_none());
        // A language the settings leave out.
        let rust_only = Settings {
            enabled_languages: vec!["rust".into()],
            ..Settings::default()
        };
        assert!(admit_document(&session, &rust_only, &code, document).is_none());
    }

    #[test]
    fn a_cursor_inside_a_secret_or_in_a_credential_file_is_refused() {
        let code = Rope::from_str(
            "import os\nkey = \"ghp_0123456789abcdefghijklmnopqrstuvwxyzAB\"\nx = 1\n",
        );
        let inside = code.line_to_char(1) + 10;
        let after = code.line_to_char(2) + 4;
        assert_eq!(
            secret_at(&code, inside),
            Some("the cursor is inside a secret")
        );
        assert_eq!(secret_at(&code, after), None);
        let netrc = Rope::from_str("machine example.com\n  login me\n  password hunter22\n");
        assert_eq!(
            secret_at(&netrc, 0),
            Some("its content is a credential file")
        );
    }

    #[tokio::test]
    async fn the_cursor_gate_answers_while_the_work_pool_is_busy_and_yields_to_cancellation() {
        use super::super::blocking::BlockingPool;
        let pool = std::sync::Arc::new(BlockingPool::new(1));
        let uri = Uri::from("file:///w/app.py");
        // Code holding a key (a file of nothing but the key would be a credential file).
        let code = Rope::from_str(
            "import os\nkey = \"ghp_0123456789abcdefghijklmnopqrstuvwxyzAB\"\nx = 1\n",
        );
        let inside = code.line_to_char(1) + 10;
        let clear = code.line_to_char(2) + 4;
        let live = CancellationToken::new();
        // The pool's one thread held by the test, as a prompt being built holds it: the check
        // must not wait for it.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = tokio::sync::oneshot::channel::<()>();
        let blocker = tokio::spawn({
            let (pool, live) = (pool.clone(), live.clone());
            async move {
                let hold = move || {
                    let _ = started.send(());
                    wait.recv().ok()
                };
                pool.run(&live, hold).await
            }
        });
        has_started.await.unwrap();
        assert_eq!(
            admit_cursor(&live, &uri, &code, inside).await,
            None,
            "inside the key"
        );
        assert_eq!(admit_cursor(&live, &uri, &code, clear).await, Some(()));
        release.send(()).unwrap();
        assert!(blocker.await.unwrap().is_some());
        let cancelled = CancellationToken::new();
        cancelled.cancel();
        assert_eq!(admit_cursor(&cancelled, &uri, &code, clear).await, None);
    }
}
