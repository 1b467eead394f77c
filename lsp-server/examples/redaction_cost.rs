//! What redaction costs per keystroke: the region a prompt is cut from (the window plus
//! `MARGIN_LINES` either side) and, for comparison, a whole 10,000-line file, through
//! `secret_spans`. Prints a table; asserts nothing.
//!
//!     cargo run --release -p ghostline-lsp --example redaction_cost [FILE...]
//!
//! Without files it uses a synthetic Python file; with files, each of them.

use std::time::Instant;

use ghostline_lsp::bench::privacy::{cursor_in_secret, rule_spans, secret_spans, Region, RULES};
use ropey::Rope;

fn synthetic() -> String {
    let mut text = String::new();
    let mut i = 0;
    while text.lines().count() < 10_000 {
        text.push_str(&format!(
            "def function_{i}(value, scale=2, token=None):\n    \"\"\"Scale value {i}; see https://example.com/a?b={i}.\"\"\"\n    result = value * scale + {i}\n    config = {{\"name\": \"item_{i}\", \"key\": \"k{i}\"}}\n    if result > 100:\n        return result - 100\n    return result\n\n\n"
        ));
        i += 1;
    }
    text
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    let started = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(f());
    }
    started.elapsed().as_secs_f64() * 1e3 / runs as f64
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let texts: Vec<(String, String)> = if files.is_empty() {
        vec![("synthetic.py".into(), synthetic())]
    } else {
        files
            .into_iter()
            .filter_map(|f| std::fs::read_to_string(&f).ok().map(|t| (f, t)))
            .collect()
    };
    println!("{} rules", RULES.len());
    println!("| file | lines | region (~330 lines) ms | cursor check ms | whole file ms |");
    println!("|---|---|---|---|---|");
    for (name, text) in texts {
        let rope = Rope::from_str(&text);
        let lines = rope.len_lines();
        let middle = lines / 2;
        // A 2,048-token window is about 200 lines; the region adds 64 either side.
        let region = time(200, || {
            Region::around(&rope, middle.saturating_sub(180), middle + 20)
        });
        let cursor = rope.line_to_char(middle);
        let check = time(200, || cursor_in_secret(&rope, cursor));
        let whole = time(5, || secret_spans(&text));
        println!("| {name} | {lines} | {region:.3} | {check:.3} | {whole:.2} |");
        if std::env::var_os("GHOSTLINE_RULE_COST").is_some() {
            for rule in RULES.iter() {
                let ms = time(3, || {
                    let mut spans = Vec::new();
                    rule_spans(rule, &text, &mut spans);
                    spans
                });
                println!("    {ms:>8.2} ms  {}", rule.row.name);
            }
        }
    }
}
