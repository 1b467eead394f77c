//! Where the LSP may touch the disk, and what may run on the arrival lane, checked on the
//! source text (comments, string literals and `#[cfg(test)]` modules left out).
//!
//! 1. Only the files in `DISK` use the file system. Everything else gets what is on disk from
//!    one of them, so a new read (a `stat` per keystroke, a file opened on an async thread) is
//!    a change to this table, reviewed as one.
//! 2. The arrival lane (`ARRIVAL_LANE`: the handlers applied synchronously, in arrival order,
//!    on the thread that reads stdin, and what they call in `session/` and `edit/`) never
//!    waits on the disk, runs a regex or counts BPE tokens: every edit waits for it. A file of
//!    the lane may not use those APIs, nor call the functions of other modules that do
//!    (`REACHES_DISK_REGEX_OR_BPE`, each checked to still exist).

mod source_scan;

use source_scan::source_files;
use std::path::{Path, PathBuf};

/// The files that may use the file system, and why.
const DISK: &[(&str, &str)] = &[
    (
        "index/worker.rs",
        "the index's own thread walks the workspace and reads files (`read_source`, also for \
         the context sources on the pool)",
    ),
    (
        "stats/store.rs",
        "the stats thread appends stats.jsonl; `ghostline-lsp stats` and `ghostline.stats` \
         read it (CLI, blocking pool)",
    ),
    (
        "backend/tls.rs",
        "reads `caFile` once when the HTTP client is built",
    ),
    (
        "backend/affinity.rs",
        "reads or creates the installation's secret once, on a thread of its own",
    ),
    (
        "privacy/excludes.rs",
        "`resolve_links`: where a symlink leads (the index thread; a request once per opened \
         document)",
    ),
    (
        "syntax/queries.rs",
        "the `grammarsDir` override's query files, loaded once per language",
    ),
    (
        "server/api/initialize.rs",
        "drops workspace folders that are not directories, once, at initialize",
    ),
];

/// The arrival lane: the handlers that `server/dispatch.rs` applies in arrival order, and the
/// parts of `session/` and `edit/` they run. `session/exclusion.rs` is not among them: it
/// serves requests (`complete/`), and the lane may not call it (`is_excluded(`, below).
const ARRIVAL_LANE: &[&str] = &[
    "server/dispatch.rs",
    "server/api/did_open.rs",
    "server/api/did_change.rs",
    "server/api/did_close.rs",
    "server/api/did_save.rs",
    "server/api/did_change_configuration.rs",
    "server/api/did_change_watched_files.rs",
    "session/mod.rs",
    "session/document.rs",
    "edit/mod.rs",
    "edit/text_change.rs",
];

/// File system APIs (std and tokio), as written in code.
const DISK_APIS: &[&str] = &[
    "std::fs",
    "tokio::fs",
    "fs::read",
    "fs::write",
    "fs::File",
    "File::open",
    "File::create",
    "OpenOptions",
    "canonicalize",
    "read_dir",
    "metadata(",
    "read_link",
    ".exists()",
    "try_exists",
    ".is_file()",
    ".is_dir()",
    "WalkBuilder",
];

/// Regex and BPE APIs.
const REGEX_AND_BPE_APIS: &[&str] = &["regex::", "Regex", "tiktoken", "CoreBPE", "cl100k"];

/// Functions of other modules that read the disk, run regexes over text or count tokens:
/// (how a call is written, the function's definition that must still exist, what it does).
const REACHES_DISK_REGEX_OR_BPE: &[(&str, &str, &str)] = &[
    (
        "is_excluded(",
        "fn is_excluded(",
        "follows symlinks on disk",
    ),
    (
        "resolve_links(",
        "fn resolve_links(",
        "follows symlinks on disk",
    ),
    ("read_source(", "fn read_source(", "reads a file"),
    ("queries::get(", "fn get(lang: Lang)", "loads query files"),
    (
        "table_for_data_dir(",
        "fn table_for_data_dir(",
        "reads stats.jsonl",
    ),
    ("secret_spans(", "fn secret_spans(", "the secret regexes"),
    (
        "cursor_in_secret(",
        "fn cursor_in_secret(",
        "the secret regexes",
    ),
    ("Region::around(", "fn around(", "the secret regexes"),
    (
        "redact_keep_lines(",
        "fn redact_keep_lines(",
        "the secret regexes",
    ),
    ("redact_lines(", "fn redact_lines<", "the secret regexes"),
    ("rule_spans(", "fn rule_spans(", "the secret regexes"),
    (
        "rope_is_credential_file(",
        "fn rope_is_credential_file(",
        "the credential-file regexes",
    ),
    (
        "credential_format(",
        "fn credential_format(",
        "the credential-file regexes",
    ),
    ("tokens::count(", "fn count(text: &str)", "BPE"),
    ("count_cached(", "fn count_cached(", "BPE"),
    ("line_tokens(", "fn line_tokens(", "BPE"),
    (
        "ensure_ready(",
        "fn ensure_ready(",
        "waits for the BPE tables",
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `text` with comments, string and char literals blanked (newlines kept, so lines keep
/// their numbers), and every `#[cfg(test)]` item (a test module, a test helper) blanked too.
fn code_only(text: &str) -> String {
    let mut code = source_scan::code_only(text);
    // `#[cfg(test)]` items: up to the end of the item's braces, or its `;`.
    while let Some(at) = code.find("#[cfg(test)]") {
        let mut depth = 0;
        let mut end = code.len();
        for (offset, c) in code[at..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = at + offset + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = at + offset + 1;
                    break;
                }
                _ => {}
            }
        }
        let blanked: String = code[at..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        code.replace_range(at..end, &blanked);
    }
    code
}

/// Each line of `code` that holds one of `needles`: "file:line: needle".
fn lines_with(file: &str, code: &str, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (number, line) in code.lines().enumerate() {
        for needle in needles {
            if line.contains(needle) {
                found.push(format!("src/{file}:{}: {needle}", number + 1));
            }
        }
    }
    found
}

/// Every source file of src/, relative ("index/worker.rs"), with its code.
fn sources() -> Vec<(String, String)> {
    let src = src();
    let mut files = Vec::new();
    source_files(&src, &mut files);
    files
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (
                relative,
                code_only(&std::fs::read_to_string(&path).unwrap()),
            )
        })
        .collect()
}

#[test]
fn only_the_files_allowed_to_touch_the_disk_do() {
    let sources = sources();
    for (allowed, why) in DISK {
        let code = sources
            .iter()
            .find(|(file, _)| file == allowed)
            .map(|(_, code)| code)
            .unwrap_or_else(|| panic!("src/{allowed} ({why}) is in DISK but does not exist"));
        assert!(
            !lines_with(allowed, code, DISK_APIS).is_empty(),
            "src/{allowed} is in DISK but touches no disk any more: take it out"
        );
    }
    let mut wrong = Vec::new();
    for (file, code) in sources {
        if DISK.iter().any(|(allowed, _)| *allowed == file) {
            continue;
        }
        wrong.extend(lines_with(&file, &code, DISK_APIS));
    }
    assert!(
        wrong.is_empty(),
        "file system access outside the files allowed to touch the disk (DISK in tests/tidy.rs):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_arrival_lane_never_touches_the_disk_nor_runs_regexes_or_bpe() {
    let sources = sources();
    let all_code: String = sources.iter().map(|(_, code)| code.as_str()).collect();
    for (_, definition, what) in REACHES_DISK_REGEX_OR_BPE {
        assert!(
            all_code.contains(definition),
            "`{definition}` ({what}) is gone from src/: update REACHES_DISK_REGEX_OR_BPE"
        );
    }
    let calls: Vec<&str> = REACHES_DISK_REGEX_OR_BPE
        .iter()
        .map(|(call, _, _)| *call)
        .collect();
    let mut wrong = Vec::new();
    for lane_file in ARRIVAL_LANE {
        let Some((_, code)) = sources.iter().find(|(file, _)| file == lane_file) else {
            panic!("src/{lane_file} is in ARRIVAL_LANE but does not exist: update the table");
        };
        wrong.extend(lines_with(lane_file, code, DISK_APIS));
        wrong.extend(lines_with(lane_file, code, REGEX_AND_BPE_APIS));
        wrong.extend(lines_with(lane_file, code, &calls));
    }
    assert!(
        wrong.is_empty(),
        "disk, regex or BPE work on the arrival lane (ARRIVAL_LANE in tests/tidy.rs):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scanner_sees_code_and_only_code() {
    let text = "use std::fs; // std::fs::read in a comment\n\
                let s = \"std::fs in a string\"; let r = r#\"File::open\"#;\n\
                #[cfg(test)]\nmod tests {\n    fn t() { std::fs::write(\"x\", \"y\").unwrap(); }\n}\n\
                fn after() { path.exists(); }\n";
    let code = code_only(text);
    assert_eq!(
        lines_with("x.rs", &code, DISK_APIS),
        ["src/x.rs:1: std::fs", "src/x.rs:7: .exists()"]
    );
    // A `#[cfg(test)]` function is left out too, up to its end.
    let code =
        code_only("#[cfg(test)]\nfn helper() -> bool { a.is_dir() }\nfn f() { b.is_file() }\n");
    assert_eq!(
        lines_with("x.rs", &code, DISK_APIS),
        ["src/x.rs:3: .is_file()"]
    );
}

/// The lane table above follows the handlers: every `server/api/` file that declares
/// `LANE: Lane = Lane::Arrival` is in `ARRIVAL_LANE`, and every handler file listed there
/// declares it. A handler moved to the arrival lane without being listed fails here.
#[test]
fn the_arrival_lane_table_follows_the_handlers_declarations() {
    let mut declared = Vec::new();
    for (file, code) in sources() {
        if file.starts_with("server/api/") && code.contains("pub const LANE: Lane = Lane::Arrival;")
        {
            declared.push(file);
        }
    }
    declared.sort();
    assert!(!declared.is_empty(), "no handler declares the arrival lane");
    let mut listed: Vec<String> = ARRIVAL_LANE
        .iter()
        .filter(|file| file.starts_with("server/api/"))
        .map(|file| file.to_string())
        .collect();
    listed.sort();
    assert_eq!(
        declared, listed,
        "server/api/ files declaring Lane::Arrival against ARRIVAL_LANE"
    );
}
