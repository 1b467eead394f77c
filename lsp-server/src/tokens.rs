//! Token counting for prompt budgets: tiktoken's cl100k, which is close enough to the backend's
//! own tokenizer for budgeting and costs nothing to ship.
//!
//! A leaf module (nothing else of the crate is imported), with three bounded parts:
//! - the BPE tables, loaded once by the background worker (`warm_up`) or synchronously by
//!   `ensure_ready`; until then counts are `len / 3` estimates, so no request waits for them
//!   (unit tests always count exactly: every counting function loads them first there);
//! - a cache of whole-line counts, evicted gradually (`quick_cache`'s S3-FIFO) when it holds
//!   `LINE_CACHE_ENTRIES` lines, instead of being cleared at once as it used to be;
//! - one worker thread with a bounded queue that counts the lines of newly opened documents
//!   (`warm_lines`); when the queue is full the warm-up is dropped, it is only an optimisation.
//!
//! Long text is counted in pieces of at most `MAX_PIECE_BYTES` (see there), so a megabyte of
//! minified code on one line costs linear time and cannot make tiktoken panic.

use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{LazyLock, OnceLock};

use ropey::{Rope, RopeSlice};

static READY: AtomicBool = AtomicBool::new(false);

/// Lines whose counts are kept: every line of a large workspace's open files and of the
/// snippets the prompts quote from other files. quick_cache takes ~70 bytes an entry (measured:
/// 34 MB at 500,000, where the DashMap this replaced took 18 MB), so this many take ~17 MB; as
/// it evicts the lines least used rather than everything at once, half the old size keeps the
/// lines that matter.
pub const LINE_CACHE_ENTRIES: usize = 250_000;

/// Text is counted in pieces of at most this many bytes, cut where tiktoken's regex would split
/// anyway when the piece has a line break or a space (see `pieces`). On one long regex piece
/// tiktoken-rs is super-linear and can panic. `examples/token_cost.rs`, release build, on a
/// loaded 2-core machine (whole text → in pieces, ms):
///
/// | text                | 10 kB     | 100 kB  | 1 MB         | 4 MB          |
/// |---------------------|-----------|---------|--------------|---------------|
/// | one word (`abab…`)  | 0.8 → 0.5 | 46 → 5  | 582 → 122    | 2256 → 412    |
/// | a run of `=`        | 1.2 → 0.9 | 31 → 21 | 866 → 193    | 5530 → 960    |
/// | spaces, then a word | 5.4 → 1.1 | 93 → 27 | panic → 241  | panic → 1421  |
///
/// ("panic": its regex engine's backtracking stack overflows, and `encode_ordinary` unwraps
/// that.) Ordinary code costs 100–150 ms per MB either way. A cut inside a word may count a
/// token more than tiktoken would on the whole text: nothing for a budget.
pub const MAX_PIECE_BYTES: usize = 2 * 1024;

/// Documents waiting for the worker to count their lines. Each entry is a rope handle (cheap:
/// shares the document's nodes); a burst of opened files beyond this is not warmed up.
const WARM_QUEUE: usize = 32;

/// Documents larger than this are not counted ahead: at ~70 ms of one core per MB (release),
/// a huge file would hold a core for seconds and flush the cache of every other file's lines,
/// while a request reads only the few thousand lines around its cursor (counted on demand).
const MAX_WARM_BYTES: usize = 4 << 20;

static LINE_TOKENS: LazyLock<quick_cache::sync::Cache<u64, u32>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(LINE_CACHE_ENTRIES));

enum Job {
    LoadTables,
    CountLines(Rope),
    /// Answered once every job queued before it is done (tests).
    #[cfg(test)]
    Barrier(mpsc::Sender<()>),
}

/// The worker's queue; `None` when the thread could not be started (then nothing is warmed up
/// in the background and counts are estimates until `ensure_ready` is called).
static WORKER: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();

fn worker() -> Option<&'static SyncSender<Job>> {
    WORKER
        .get_or_init(|| {
            let (sender, receiver) = mpsc::sync_channel::<Job>(WARM_QUEUE);
            let spawned = std::thread::Builder::new()
                .name("ghostline-tokens".into())
                .spawn(move || {
                    for job in receiver {
                        ensure_ready();
                        match job {
                            Job::LoadTables => {}
                            Job::CountLines(rope) => {
                                for line in rope.lines() {
                                    line_tokens(line);
                                }
                            }
                            #[cfg(test)]
                            Job::Barrier(done) => {
                                let _ = done.send(());
                            }
                        }
                    }
                });
            match spawned {
                Ok(_) => Some(sender),
                Err(error) => {
                    tracing::error!(
                        "cannot start the token-counting thread ({error}); counts stay estimates"
                    );
                    None
                }
            }
        })
        .as_ref()
}

fn submit(job: Job, what: &str) {
    let Some(sender) = worker() else { return };
    match sender.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            tracing::debug!("token worker busy: {what} dropped (only an optimisation)")
        }
        Err(TrySendError::Disconnected(_)) => {
            tracing::debug!("token worker gone: {what} dropped")
        }
    }
}

/// Loads the BPE tables on the worker thread (they take a moment to build), so the first
/// completion does not pay for them. Until they are ready, counts are estimated.
pub fn warm_up() {
    if !is_ready() {
        submit(Job::LoadTables, "loading the tables");
    }
}

/// Loads the BPE tables now, on this thread (at once if they already are): for tests,
/// benchmarks and tools that want exact counts from the first call.
pub fn ensure_ready() {
    if !READY.load(Ordering::Acquire) {
        let _ = tiktoken_rs::cl100k_base_singleton();
        READY.store(true, Ordering::Release);
    }
}

/// Whether token counts are exact yet (see `warm_up`).
pub fn is_ready() -> bool {
    // The lib's unit tests count exactly, whatever order they run in.
    if cfg!(test) {
        ensure_ready();
    }
    READY.load(Ordering::Acquire)
}

fn estimate(bytes: usize) -> usize {
    bytes.div_ceil(3)
}

/// Tokens of `text`: exact once the tables are loaded, an estimate before.
pub fn count(text: &str) -> usize {
    if !is_ready() {
        return estimate(text.len());
    }
    let bpe = tiktoken_rs::cl100k_base_singleton();
    pieces(text).map(|piece| count_piece(bpe, piece)).sum()
}

/// One piece's tokens. tiktoken-rs unwraps its regex engine's errors (a backtracking limit);
/// no piece of `MAX_PIECE_BYTES` was seen to reach one (3,000 random 2 KiB and 8 KiB pieces of
/// whitespace, punctuation and letter runs), but should one, the piece is estimated instead of
/// taking the server down.
fn count_piece(bpe: &tiktoken_rs::CoreBPE, piece: &str) -> usize {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        bpe.encode_ordinary(piece).len()
    }))
    .unwrap_or_else(|_| {
        tracing::warn!(
            "tiktoken failed on a {}-byte piece; estimating its tokens",
            piece.len()
        );
        estimate(piece.len())
    })
}

/// `text` cut into pieces of at most `MAX_PIECE_BYTES` (see there): after the last line break in
/// the piece's range, else before the last space, else at the last character boundary.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if rest.len() <= MAX_PIECE_BYTES {
            return Some(std::mem::take(&mut rest));
        }
        let mut limit = MAX_PIECE_BYTES;
        while !rest.is_char_boundary(limit) {
            limit -= 1;
        }
        let window = &rest[..limit];
        // Where tiktoken's regex splits anyway: after a line break (it ends the whitespace
        // before it) or before a space (it starts the next word); an empty piece would make
        // no progress.
        let cut = window
            .rfind('\n')
            .map(|at| at + 1)
            .or_else(|| window.rfind(' '))
            .filter(|&at| at > 0)
            .unwrap_or(limit);
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

fn hash_bytes<'a>(parts: impl Iterator<Item = &'a [u8]>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for part in parts {
        hasher.write(part);
    }
    hasher.finish()
}

fn cached(key: u64, text: impl FnOnce() -> usize) -> usize {
    if let Some(count) = LINE_TOKENS.get(&key) {
        return count as usize;
    }
    let count = text();
    LINE_TOKENS.insert(key, u32::try_from(count).unwrap_or(u32::MAX));
    count
}

/// Tokens of one line, through the line cache. BPE costs microseconds per line, which on every
/// keystroke would be the largest part of a request; lines barely change between keystrokes,
/// and a newly opened file is counted in the background (`warm_lines`), so almost every count
/// is a lookup. The cache is sharded, so the background counting never holds up a request.
pub fn line_tokens(line: RopeSlice<'_>) -> usize {
    if !is_ready() {
        return estimate(line.len_bytes()); // an estimate; not worth remembering
    }
    let key = hash_bytes(line.chunks().map(str::as_bytes));
    cached(key, || count(&std::borrow::Cow::<str>::from(line)))
}

/// Tokens of any text, counted line by line through the same cache (snippets of other files
/// repeat between keystrokes just as the current file's lines do).
pub fn count_cached(text: &str) -> usize {
    if !is_ready() {
        return estimate(text.len());
    }
    text.split_inclusive('\n')
        .map(|line| cached(hash_bytes(std::iter::once(line.as_bytes())), || count(line)))
        .sum()
}

/// Counts every line of a newly opened document on the worker thread, so that the first
/// suggestions in it need no BPE work (a few hundred milliseconds of one core for a
/// 10,000-line file, once). Dropped, with a debug line, when the worker's queue is full or the
/// document is over `MAX_WARM_BYTES`.
pub fn warm_lines(rope: Rope) {
    if rope.len_bytes() > MAX_WARM_BYTES {
        tracing::debug!(
            "not counting the lines of a {}-byte document ahead (over {MAX_WARM_BYTES})",
            rope.len_bytes()
        );
        return;
    }
    submit(Job::CountLines(rope), "a document's line counts");
}

/// Lines the cache holds now (for tests and diagnostics).
#[cfg(test)]
fn cached_lines() -> usize {
    LINE_TOKENS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_tests_count_exactly() {
        assert!(is_ready());
        // cl100k: "hello" and " world" are one token each; an estimate would say 4.
        assert_eq!(count("hello world"), 2);
        assert_eq!(count_cached("hello world\nhello world\n"), 6);
    }

    #[test]
    fn a_line_counts_the_same_from_a_rope_and_from_text() {
        let text = "    let total = items.iter().map(|item| item.price).sum::<u64>();\n";
        let rope = Rope::from_str(text);
        assert_eq!(line_tokens(rope.line(0)), count(text));
        assert_eq!(count_cached(text), count(text));
    }

    #[test]
    fn pieces_cover_the_text_and_respect_the_limit() {
        let long_word = "é".repeat(3 * MAX_PIECE_BYTES); // 2-byte characters
        let spaced = "word ".repeat(MAX_PIECE_BYTES);
        let lines = "a line\n".repeat(MAX_PIECE_BYTES);
        for text in [long_word.as_str(), spaced.as_str(), lines.as_str(), "", "x"] {
            let parts: Vec<&str> = pieces(text).collect();
            assert_eq!(parts.concat(), text);
            assert!(parts
                .iter()
                .all(|p| p.len() <= MAX_PIECE_BYTES && !p.is_empty()));
        }
        // Cut before a space or after a line break, not inside a word.
        assert!(pieces(&spaced).skip(1).all(|p| p.starts_with(' ')));
        assert!(pieces(&lines).all(|p| p.ends_with('\n')));
    }

    #[test]
    fn a_long_line_is_counted_in_pieces_close_to_the_whole() {
        // A minified line of short words: cutting at spaces changes nothing.
        let spaced = "let x=1; ".repeat(10_000);
        let whole = tiktoken_rs::cl100k_base_singleton()
            .encode_ordinary(&spaced)
            .len();
        assert_eq!(count(&spaced), whole);
        // One long word: each cut may add a token.
        let word = "ab".repeat(50_000);
        let whole = tiktoken_rs::cl100k_base_singleton()
            .encode_ordinary(&word)
            .len();
        let cuts = word.len() / MAX_PIECE_BYTES + 1;
        let counted = count(&word);
        assert!(
            counted >= whole && counted <= whole + cuts,
            "{counted} vs {whole}"
        );
        let rope = Rope::from_str(&word);
        assert_eq!(line_tokens(rope.line(0)), counted);
    }

    #[test]
    fn a_megabyte_of_spaces_is_counted_without_a_panic() {
        // tiktoken-rs alone panics on this (see MAX_PIECE_BYTES).
        let spaces = " ".repeat(1 << 20) + "x";
        let counted = count(&spaces);
        // Counted, not estimated (the fallback's `len / 3`): runs of spaces merge into
        // multi-space tokens.
        assert!(counted > 0 && counted < spaces.len() / 16, "{counted}");
        assert_eq!(line_tokens(Rope::from_str(&spaces).line(0)), counted);
    }

    #[test]
    fn the_line_cache_evicts_gradually_at_its_size() {
        // Keys no real line hashes to (in practice); other tests' lines may be evicted, which
        // only costs them a count.
        let base = 0x5eed_0000_0000_0000u64;
        let mut smallest_after_full = usize::MAX;
        for i in 0..2 * LINE_CACHE_ENTRIES as u64 {
            cached(base + i, || 1);
            if i >= LINE_CACHE_ENTRIES as u64 && i % 1000 == 0 {
                smallest_after_full = smallest_after_full.min(cached_lines());
            }
        }
        assert!(
            cached_lines() <= LINE_CACHE_ENTRIES + LINE_CACHE_ENTRIES / 10,
            "{} lines cached",
            cached_lines()
        );
        assert!(
            smallest_after_full >= LINE_CACHE_ENTRIES / 2,
            "the cache was emptied at once: {smallest_after_full} lines left"
        );
    }

    #[test]
    fn the_worker_counts_an_opened_documents_lines_into_the_cache() {
        let marker = format!(
            "unique_line_{}_{:?}",
            std::process::id(),
            std::time::Instant::now()
        );
        let text = format!("{marker} = 1\n{marker} = 2\n");
        let rope = Rope::from_str(&text);
        let key = hash_bytes(rope.line(0).chunks().map(str::as_bytes));
        assert!(LINE_TOKENS.get(&key).is_none());
        warm_lines(rope.clone());
        // Everything queued before the barrier is done when it is answered.
        let (done, finished) = mpsc::channel();
        worker()
            .expect("the worker runs")
            .send(Job::Barrier(done))
            .unwrap();
        finished.recv().unwrap();
        assert_eq!(
            LINE_TOKENS.get(&key).map(|c| c as usize),
            Some(count(&format!("{marker} = 1\n")))
        );
    }
}
