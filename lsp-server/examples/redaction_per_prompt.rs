//! What redaction costs per prompt, as a distribution: the region a prompt is cut from (200
//! lines of window and `MARGIN_LINES` either side) at seeded cursor positions in every text file
//! under a folder, each region through `secret_spans` once after a warm-up pass. Prints p50,
//! p90, p99 and the mean in microseconds; asserts nothing.
//!
//!     cargo run --release -p ghostline-lsp --example redaction_per_prompt -- DIR [POSITIONS]
//!
//! Uses only `secret_spans` and `MARGIN_LINES` (`ghostline_lsp::privacy::` before issue 31,
//! `ghostline_lsp::bench::privacy::` since), so it builds against an older tree with that one
//! path changed, for a before/after comparison on the same inputs (ARCHITECTURE.md, issue 29).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ghostline_lsp::bench::privacy::{secret_spans, MARGIN_LINES};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("a folder"));
    let positions: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let mut all = Vec::new();
    files(&dir, &mut all);
    let texts: Vec<Vec<String>> = all
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|b| b.len() < 1 << 20 && !b.contains(&0))
        .filter_map(|b| String::from_utf8(b).ok())
        .filter(|t| t.lines().count() >= 20)
        .map(|t| t.lines().map(str::to_string).collect())
        .collect();
    // Seeded positions: file and line from a xorshift stream.
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let regions: Vec<String> = (0..positions)
        .map(|_| {
            let lines = &texts[next() as usize % texts.len()];
            let cursor = next() as usize % lines.len();
            let first = cursor.saturating_sub(180 + MARGIN_LINES);
            let end = (cursor + 20 + MARGIN_LINES).min(lines.len());
            lines[first..end].join("\n")
        })
        .collect();
    for region in &regions {
        std::hint::black_box(secret_spans(region));
    }
    let mut micros: Vec<f64> = regions
        .iter()
        .map(|region| {
            let started = Instant::now();
            std::hint::black_box(secret_spans(region));
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    micros.sort_by(|a, b| a.total_cmp(b));
    let mean = micros.iter().sum::<f64>() / micros.len().max(1) as f64;
    let bytes = regions.iter().map(String::len).sum::<usize>() / regions.len().max(1);
    println!(
        "{}: {} texts, {} regions (mean {bytes} bytes): p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, mean {mean:.0} µs",
        dir.display(),
        texts.len(),
        regions.len(),
        percentile(&micros, 0.5),
        percentile(&micros, 0.9),
        percentile(&micros, 0.99),
    );
}
