//! Token counting: tiktoken's cl100k, close enough to the backend's own tokenizer for
//! budgeting and free to ship. A leaf: everything that sizes a prompt counts here.

use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;

use dashmap::DashMap;

use ropey::{Rope, RopeSlice};

static TOKENIZER_READY: AtomicBool = AtomicBool::new(false);

/// Loads the BPE tables off the request path (they take a moment to build), so the first
/// completion does not pay for them. Until they are ready, counts are estimated.
pub fn warm_up_tokenizer() {
    if TOKENIZER_READY.load(Ordering::Relaxed) {
        return;
    }
    std::thread::spawn(|| {
        let _ = tiktoken_rs::cl100k_base_singleton();
        TOKENIZER_READY.store(true, Ordering::Relaxed);
    });
}

/// Whether token counts are exact yet (see `warm_up_tokenizer`).
pub fn tokenizer_ready() -> bool {
    TOKENIZER_READY.load(Ordering::Relaxed)
}

pub fn count_tokens(text: &str) -> usize {
    if TOKENIZER_READY.load(Ordering::Relaxed) {
        tiktoken_rs::cl100k_base_singleton()
            .encode_ordinary(text)
            .len()
    } else {
        text.len().div_ceil(3)
    }
}

/// Token counts of whole lines, by content hash. BPE costs microseconds per line, which on
/// every keystroke would be the largest part of a request; lines barely change between
/// keystrokes, and a newly opened file is counted in the background (`warm_line_counts`), so
/// almost every count is a lookup. Sharded (DashMap), so the background counting never holds
/// up a request.
static LINE_TOKENS: LazyLock<DashMap<u64, u32>> = LazyLock::new(DashMap::new);

const LINE_CACHE_ENTRIES: usize = 500_000;

fn line_key(line: RopeSlice<'_>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for chunk in line.chunks() {
        hasher.write(chunk.as_bytes());
    }
    hasher.finish()
}

pub fn line_tokens(line: RopeSlice<'_>) -> usize {
    if !TOKENIZER_READY.load(Ordering::Relaxed) {
        return line.len_bytes().div_ceil(3); // an estimate; not worth remembering
    }
    let key = line_key(line);
    if let Some(count) = LINE_TOKENS.get(&key) {
        return *count as usize;
    }
    let count = count_tokens(&line.to_string());
    if LINE_TOKENS.len() >= LINE_CACHE_ENTRIES {
        LINE_TOKENS.clear();
    }
    LINE_TOKENS.insert(key, u32::try_from(count).unwrap_or(u32::MAX));
    count
}

/// Tokens of any text, counted line by line through the same cache (snippets of other
/// files repeat between keystrokes just as the current file's lines do).
pub fn count_tokens_cached(text: &str) -> usize {
    if !TOKENIZER_READY.load(Ordering::Relaxed) {
        return text.len().div_ceil(3);
    }
    let mut total = 0;
    for line in text.split_inclusive('\n') {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        hasher.write(line.as_bytes());
        let key = hasher.finish();
        if let Some(count) = LINE_TOKENS.get(&key) {
            total += *count as usize;
            continue;
        }
        let count = count_tokens(line);
        if LINE_TOKENS.len() >= LINE_CACHE_ENTRIES {
            LINE_TOKENS.clear();
        }
        LINE_TOKENS.insert(key, u32::try_from(count).unwrap_or(u32::MAX));
        total += count;
    }
    total
}

/// Counts every line of a newly opened document off the request path, so that the first
/// suggestions in it need no BPE work. Runs on its own thread; costs a few hundred
/// milliseconds of one core for a 10,000-line file, once.
pub fn warm_line_counts(rope: Rope) {
    std::thread::spawn(move || {
        let _ = tiktoken_rs::cl100k_base_singleton();
        TOKENIZER_READY.store(true, Ordering::Relaxed);
        for line in rope.lines() {
            line_tokens(line);
        }
    });
}
