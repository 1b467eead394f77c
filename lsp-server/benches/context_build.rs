//! Context building on a generated 2,000-file workspace: how fast the index is built, how
//! big it is, and how long one request's context takes (target: p99 < 10 ms).
//!
//! `cargo bench -p ghostline-lsp --bench context_build` prints a table. Runs only under
//! `cargo bench` (a plain `cargo test --all-targets` passes `--test`-less args; see main).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ghostline_lsp::bench::privacy::Excludes;
use ghostline_lsp::bench::{
    build, parse_rope, render, Budget, ContextMode, CurrentFile, FimMarkers, Format, IndexConfig,
    Lang, OpenDocument, Parts, Workspace, WorkspaceIndex,
};
use ropey::Rope;

const FILES: usize = 2_000;
const OPEN: usize = 20;
const REQUESTS: usize = 400;

fn rust_file(module: usize, file: usize) -> String {
    let mut out = String::new();
    let other = (module * 7 + file * 3) % 40;
    out.push_str(&format!(
        "use crate::m{other}::f{file}::{{Record{other}_{file}, load_{other}_{file}}};\nuse std::collections::HashMap;\n\n"
    ));
    out.push_str(&format!(
        "/// Records of module {module}, file {file}.\npub struct Record{module}_{file} {{\n    pub id: u64,\n    pub name: String,\n    pub score: f64,\n}}\n\n"
    ));
    for function in 0..8 {
        out.push_str(&format!(
            "/// Computes step {function} over the records.\npub fn step_{module}_{file}_{function}(records: &[Record{module}_{file}], limit: usize) -> HashMap<u64, f64> {{\n    let mut totals = HashMap::new();\n    for record in records.iter().take(limit) {{\n        let base = load_{other}_{file}(record.id);\n        let entry = totals.entry(record.id).or_insert(0.0);\n        *entry += record.score * {function}.0 + base as f64;\n        if record.name.is_empty() {{\n            continue;\n        }}\n    }}\n    totals\n}}\n\n"
        ));
    }
    out.push_str(&format!(
        "pub fn load_{module}_{file}(id: u64) -> u64 {{\n    id * {module} + {file}\n}}\n"
    ));
    out
}

fn python_file(module: usize, file: usize) -> String {
    let other = (module * 5 + file) % 40;
    let mut out = format!("from pkg.m{other}.f{file} import Loader{other}, parse_{other}\nimport json\n\n\nclass Loader{module}:\n    \"\"\"Loads records for module {module}.\"\"\"\n\n    def __init__(self, path):\n        self.path = path\n\n");
    for function in 0..8 {
        out.push_str(&format!("    def step_{function}(self, rows, limit=10):\n        \"\"\"Step {function}.\"\"\"\n        totals = {{}}\n        for row in rows[:limit]:\n            value = parse_{other}(row)\n            totals[row['id']] = totals.get(row['id'], 0) + value * {function}\n        return totals\n\n"));
    }
    out.push_str(&format!(
        "\ndef parse_{module}(row):\n    return json.loads(row['payload'])['value']\n"
    ));
    out
}

fn typescript_file(module: usize, file: usize) -> String {
    let other = (module * 3 + file) % 40;
    let mut out = format!("import {{ Store{other}, fetchRows{other} }} from '../m{other}/f{file}';\n\nexport interface Row{module} {{\n  id: number;\n  name: string;\n  score: number;\n}}\n\n");
    for function in 0..8 {
        out.push_str(&format!("/** Step {function}. */\nexport function step{module}_{function}(rows: Row{module}[], limit: number): Map<number, number> {{\n  const totals = new Map<number, number>();\n  for (const row of rows.slice(0, limit)) {{\n    const base = fetchRows{other}(row.id);\n    totals.set(row.id, (totals.get(row.id) ?? 0) + row.score * {function} + base);\n  }}\n  return totals;\n}}\n\n"));
    }
    out.push_str(&format!("export class Store{module} {{\n  rows: Row{module}[] = [];\n  add(row: Row{module}) {{ this.rows.push(row); }}\n}}\n\nexport function fetchRows{module}(id: number): number {{\n  return id * {module};\n}}\n"));
    out
}

fn generate(root: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for i in 0..FILES {
        let (module, file) = (i / 50, i % 50);
        let (relative, text) = match i % 10 {
            0..=6 => (format!("src/m{module}/f{file}.rs"), rust_file(module, file)),
            7 | 8 => (
                format!("pkg/m{module}/f{file}.py"),
                python_file(module, file),
            ),
            _ => (
                format!("web/m{module}/f{file}.ts"),
                typescript_file(module, file),
            ),
        };
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    paths
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    // `cargo test --all-targets` runs benches with `--test`-style args: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let root = std::env::temp_dir().join(format!("ghostline-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let paths = generate(&root);
    ghostline_lsp::bench::tokens::ensure_ready();

    let rss_before = rss_bytes();
    let index = Arc::new(WorkspaceIndex::new());
    let started = Instant::now();
    index.start(vec![root.clone()], IndexConfig::default());
    while !index.status().ready {
        std::thread::sleep(Duration::from_millis(5));
    }
    let index_time = started.elapsed();
    let status = index.status();
    let rss_after = rss_bytes();

    // 20 open documents, each with its parse tree, spread over the three languages.
    let open_paths: Vec<PathBuf> = (0..OPEN).map(|i| paths[i * 97 % FILES].clone()).collect();
    let open: HashMap<PathBuf, OpenDocument> = open_paths
        .iter()
        .map(|p| {
            let rope = Rope::from_str(&std::fs::read_to_string(p).unwrap());
            (
                p.clone(),
                OpenDocument {
                    rope,
                    recent_edits: vec![10, 40],
                },
            )
        })
        .collect();
    let recently_edited: Vec<PathBuf> = open_paths.iter().take(4).cloned().collect();
    let excludes = Excludes::default();
    let workspace = Workspace {
        index: &index,
        open: &open,
        recently_edited: &recently_edited,
        excludes: &excludes,
        memo: None,
        cancel: None,
    };
    let trees: HashMap<PathBuf, Option<tree_sitter::Tree>> = open_paths
        .iter()
        .map(|p| {
            (
                p.clone(),
                parse_rope(Lang::from_path(p).unwrap(), &open[p].rope, None),
            )
        })
        .collect();

    let mut rows = Vec::new();
    for mode in [
        ContextMode::Full,
        ContextMode::Jaccard,
        ContextMode::CurrentFile,
    ] {
        let mut times = Vec::with_capacity(REQUESTS);
        let mut snippets = 0usize;
        let mut prompt_bytes = 0usize;
        for request in 0..REQUESTS {
            let path = &open_paths[request % OPEN];
            let rope = &open[path].rope;
            // Somewhere inside a function body, moving a few lines per request.
            let line = (20 + request * 7) % rope.len_lines().saturating_sub(5).max(1);
            let cursor =
                rope.line_to_char(line) + 8.min(rope.line(line).len_chars().saturating_sub(1));
            let relative = index.relative(path);
            let started = Instant::now();
            let current = CurrentFile {
                path: Some(path),
                relative: &relative,
                rope,
                cursor_char: cursor,
                lang: Lang::from_path(path),
                tree: trees[path].as_ref(),
            };
            let built = build(
                mode,
                &current,
                &workspace,
                Budget::new(2048, Some(32768), 128, 0.4),
            );
            let rendered = render(
                &Format::Qwen(FimMarkers::default()),
                &Parts {
                    repo_name: "bench",
                    current_path: &relative,
                    snippets: &built.snippets,
                    prefix: &built.cursor.prefix,
                    suffix: &built.cursor.suffix,
                    comment: "//",
                },
            );
            times.push(started.elapsed());
            snippets += built.snippets.len();
            prompt_bytes += rendered.prompt.len();
        }
        times.sort();
        rows.push((
            mode,
            times,
            snippets as f64 / REQUESTS as f64,
            prompt_bytes / REQUESTS,
        ));
    }

    println!("context_build: {FILES} generated files (70% Rust, 20% Python, 10% TypeScript), {OPEN} open, {REQUESTS} requests per mode");
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| files indexed | {} |", status.files);
    println!("| definitions | {} |", status.definitions);
    println!(
        "| index build (1 thread) | {:.2} s |",
        index_time.as_secs_f64()
    );
    println!(
        "| indexing rate | {:.0} files/s |",
        status.files as f64 / index_time.as_secs_f64()
    );
    println!(
        "| index size (approx. structures) | {:.1} MiB |",
        index.approx_bytes() as f64 / (1 << 20) as f64
    );
    println!(
        "| RSS growth while indexing | {:.1} MiB |",
        rss_after.saturating_sub(rss_before) as f64 / (1 << 20) as f64
    );
    println!();
    println!("| contextMode | p50 | p99 | max | snippets/request | prompt bytes |");
    println!("|---|---|---|---|---|---|");
    for (mode, times, snippets, bytes) in rows {
        println!(
            "| {mode:?} | {:.2} ms | {:.2} ms | {:.2} ms | {snippets:.1} | {bytes} |",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            times.last().unwrap().as_secs_f64() * 1e3,
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}
