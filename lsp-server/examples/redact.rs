//! What the LSP would send of a file: its text with every credential it finds replaced by
//! `<redacted>`, line for line, or one line saying the whole file is excluded by content.
//! For checking a file of your own before a teammate's backend sees it.
//!
//!     cargo run --release -p ghostline-lsp --example redact -- path/to/file   (or - for stdin)

use std::io::Read;

use ghostline_lsp::bench::privacy::{credential_format, redact_keep_lines};

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "-".into());
    let mut text = String::new();
    let read = if path == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(&path).map(|t| text = t)
    };
    if let Err(error) = read {
        eprintln!("cannot read {path}: {error}");
        std::process::exit(2);
    }
    match credential_format(&text) {
        Some(format) => println!("excluded by content: {format}"),
        None => print!("{}", redact_keep_lines(&text)),
    }
}
