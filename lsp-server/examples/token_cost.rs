//! What token counting costs: tiktoken-rs on one long regex piece (a long word, a run of `=`, a
//! run of spaces before a word) against `tokens::count`, which counts in `MAX_PIECE_BYTES` pieces; and a
//! line-cache lookup (`tokens::line_tokens` on a counted line), and quick_cache's lookup against
//! the DashMap it replaced.
//! Prints a table; asserts nothing.
//!
//!     cargo run --release -p ghostline-lsp --example token_cost

use std::time::Instant;

use ghostline_lsp::bench::tokens;
use ropey::Rope;

fn millis<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let started = Instant::now();
    let value = std::hint::black_box(f());
    (started.elapsed().as_secs_f64() * 1e3, value)
}

fn main() {
    tokens::ensure_ready();
    // The panics below are expected (and caught); their messages would only clutter the table.
    std::panic::set_hook(Box::new(|_| {}));
    let bpe = tiktoken_rs::cl100k_base_singleton();
    println!(
        "{:<22} {:>9} {:>16} {:>16}",
        "text", "bytes", "tiktoken ms", "tokens::count ms"
    );
    for (name, unit) in [
        ("one word (abab…)", "ab"),
        ("run of '='", "="),
        ("spaces, then a word", " "),
    ] {
        for bytes in [10_000usize, 100_000, 1_000_000, 4_000_000] {
            let mut text = unit.repeat(bytes / unit.len());
            if unit == " " {
                // A word after the run makes the regex's `\s+(?!\S)` backtrack.
                text.push('x');
            }
            // tiktoken-rs unwraps its regex engine's errors: a long run of spaces before a word panics.
            let whole =
                millis(|| std::panic::catch_unwind(|| bpe.encode_ordinary(&text).len()).ok());
            let pieces = millis(|| tokens::count(&text));
            let whole = match whole.1 {
                Some(_) => format!("{:.2}", whole.0),
                None => "panicked".into(),
            };
            println!("{name:<22} {bytes:>9} {whole:>16} {:>16.2}", pieces.0);
        }
    }
    let code = "    let total = items.iter().map(|item| item.price).sum::<u64>();\n".repeat(15_000);
    let (ms, _) = millis(|| tokens::count(&code));
    println!(
        "{:<22} {:>9} {:>16} {ms:>16.2}",
        "ordinary code",
        code.len(),
        ""
    );

    // Lookups: 10,000 distinct lines counted once, then looked up 100 times each.
    let text: String = (0..10_000)
        .map(|i| format!("    let value_{i} = compute({i}, \"some text\");\n"))
        .collect();
    let rope = Rope::from_str(&text);
    for line in rope.lines() {
        tokens::line_tokens(line);
    }
    let lookups = 100 * rope.len_lines();
    let (ms, _) = millis(|| {
        (0..100)
            .flat_map(|_| rope.lines())
            .map(tokens::line_tokens)
            .sum::<usize>()
    });
    println!(
        "line_tokens on a cached line (hash + quick_cache lookup): {:.0} ns",
        ms * 1e6 / lookups as f64
    );
    let entries = tokens::LINE_CACHE_ENTRIES as u64;
    let map: dashmap::DashMap<u64, u32> = (0..entries).map(|k| (k, k as u32)).collect();
    let cache = quick_cache::sync::Cache::<u64, u32>::new(entries as usize);
    for k in 0..entries {
        cache.insert(k, k as u32);
    }
    let (dash, _) = millis(|| {
        (0..5_000_000u64)
            .map(|k| map.get(&(k % entries)).map_or(0, |v| *v as u64))
            .sum::<u64>()
    });
    let (quick, _) = millis(|| {
        (0..5_000_000u64)
            .map(|k| cache.get(&(k % entries)).unwrap_or(0) as u64)
            .sum::<u64>()
    });
    println!(
        "lookup of a u64 key among {entries}: DashMap {:.0} ns, quick_cache {:.0} ns",
        dash * 1e6 / 5e6,
        quick * 1e6 / 5e6
    );
}
