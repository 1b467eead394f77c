//! A fast, offline approximation of `tests/secrets_corpus.rs` for working on the rules: each
//! file of a half through `privacy::redact_keep_lines` as a whole, each plant searched for 6-character
//! pieces in the result, and each credential file checked by content. Prints the leaking
//! plants; asserts nothing. The test over the real binary is what scores a half.
//!
//!     cargo run -p ghostline-lsp --example secrets_offline -- held-out-3

use ghostline_lsp::bench::privacy::{is_credential_file, redact_keep_lines as redact};
use serde_json::Value;

fn main() {
    let half = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "held-out-3".into());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/secrets/corpus.json");
    let corpus: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let files: Vec<&Value> = corpus["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["half"] == half.as_str())
        .collect();
    let mut missed_files = 0;
    for file in &files {
        let by_content = is_credential_file(file["text"].as_str().unwrap());
        if file["credential_file"] == true && !by_content {
            missed_files += 1;
            println!("credential file not excluded: {}", file["path"]);
        } else if file["credential_file"] == false && by_content {
            // Not a leak, but the file gets no completion at all.
            println!("ordinary file excluded by content: {}", file["path"]);
        }
    }
    let (mut plants, mut whole, mut part, mut chars, mut sent) = (0, 0, 0, 0, 0);
    for plant in corpus["plants"].as_array().unwrap() {
        if plant["half"] != half.as_str() {
            continue;
        }
        let file = files.iter().find(|f| f["path"] == plant["file"]).unwrap();
        if file["credential_file"] == true {
            continue;
        }
        plants += 1;
        let value = plant["value"].as_str().unwrap();
        let public = plant["public"].as_u64().unwrap() as usize;
        let redacted = redact(file["text"].as_str().unwrap());
        let private = &value.as_bytes()[public..];
        let mut hit = vec![false; private.len()];
        for at in 0..private.len().saturating_sub(5) {
            if redacted
                .as_bytes()
                .windows(6)
                .any(|w| w == &private[at..at + 6])
            {
                hit[at..at + 6].iter_mut().for_each(|h| *h = true);
            }
        }
        let n = hit.iter().filter(|h| **h).count();
        chars += private.len();
        sent += n;
        if n == private.len() {
            whole += 1;
        } else if n > 0 {
            part += 1;
        }
        if n > 0 {
            println!(
                "{} / {} / {:?} ({n} of {})",
                plant["shape"],
                plant["file"],
                value,
                private.len()
            );
        }
    }
    println!(
        "{half}: {plants} plants, {whole} whole, {part} in part, {:.2} % of characters; {missed_files} credential files missed",
        100.0 * sent as f64 / chars.max(1) as f64
    );
}
