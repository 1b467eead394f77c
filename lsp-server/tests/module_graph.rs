//! The layers of `lsp-server/src`: each top-level module imports only the modules that
//! `ALLOWED` names for it, so data flows one way through a request and each layer can be read
//! (and changed) without the ones above it. `ALLOWED` is the one place the layering is written
//! down for the compiler's side of things (ARCHITECTURE.md's code map says why); it must name
//! every module of `src/`, and it must itself be acyclic.
//!
//! The graph is read from the source text, comments and string literals removed. Every path
//! that starts at `crate::`, `super::` (any number of them) or `self::` is resolved against the
//! module it is written in (the file's place under `src/`, and any inline `mod x { }` around
//! it), in `use` declarations (grouped `{a, b::{c, d}}` at any depth) and in expressions
//! (`crate::complete::Ticket::default()`) alike; the top-level module it lands in is a
//! dependency of the file's own. Bare names cannot reach another top-level module in Rust 2018
//! and later without one of those prefixes (or a `use` that has one).

mod source_scan;

use source_scan::{code_only, source_files};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module -> the modules it may import, lowest layer first. The order is the one in
/// `src/lib.rs`'s doc comment.
const ALLOWED: &[(&str, &[&str])] = &[
    ("edit", &[]),
    ("settings", &[]),
    ("tokens", &[]),
    ("syntax", &[]),
    ("privacy", &[]),
    ("backend", &[]),
    ("stats", &["backend"]),
    ("index", &["privacy", "syntax"]),
    (
        "session",
        &["edit", "settings", "syntax", "index", "privacy"],
    ),
    // Not `backend`: the prompt layout (FIM markers, templates) lives here; the HTTP client
    // knows none (issue 31).
    (
        "context",
        &[
            "tokens", "edit", "syntax", "privacy", "index", "settings", "session",
        ],
    ),
    (
        "complete",
        &[
            "edit", "settings", "tokens", "syntax", "privacy", "backend", "stats", "index",
            "session", "context",
        ],
    ),
    (
        "server",
        &[
            "edit", "settings", "tokens", "syntax", "privacy", "backend", "stats", "index",
            "session", "context", "complete",
        ],
    ),
];

/// One dependency found: the module named, and where ("src/x.rs:12").
type Edges = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// The module path of a file: `src/complete/suggest.rs` is `complete::suggest`,
/// `src/complete/mod.rs` and `src/complete.rs` are `complete`; `None` for the crate roots
/// (`lib.rs`, above every module; `main.rs`, a crate of its own).
fn module_path(src: &Path, file: &Path) -> Option<Vec<String>> {
    let relative = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    Some(parts)
}

fn identifier_at(text: &str) -> Option<&str> {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    (end > 0).then(|| &text[..end])
}

/// `text` from its start with whitespace skipped.
fn skip_blank(text: &str) -> (&str, usize) {
    let trimmed = text.trim_start();
    (trimmed, text.len() - trimmed.len())
}

/// The paths that a path expression starting at `text` spells out, each as its segments
/// (`crate::{a::b, c::{d, e}}` is `[crate, a, b]`, `[crate, c, d]`, `[crate, c, e]`), added to
/// `out` after `prefix` (what came before a group); returns the bytes it read.
fn expand_paths(text: &str, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    let mut at = 0;
    loop {
        let (rest, blank) = skip_blank(&text[at..]);
        at += blank;
        if rest.starts_with('{') {
            // A group ends the path: each item continues it.
            at += 1;
            loop {
                let (rest, blank) = skip_blank(&text[at..]);
                at += blank;
                if rest.is_empty() || rest.starts_with('}') {
                    return (at + 1).min(text.len());
                }
                if rest.starts_with(',') {
                    at += 1;
                    continue;
                }
                let used = expand_paths(&text[at..], &path, out);
                // Past `as name` (or anything unexpected) to the next item or the group's end.
                let tail = &text[at + used..];
                at += used + tail.find([',', '}']).unwrap_or(tail.len());
            }
        }
        let segment = if rest.starts_with('*') {
            Some("*")
        } else {
            identifier_at(rest)
        };
        let Some(segment) = segment else {
            break;
        };
        path.push(segment.to_string());
        at += segment.len();
        let (after, blank) = skip_blank(&text[at..]);
        if !after.starts_with("::") {
            break;
        }
        at += blank + 2;
    }
    if path.len() > prefix.len() {
        out.push(path);
    }
    at
}

/// Inline `mod name {` blocks of `code`: (name, byte where its body opens, byte where it ends).
fn inline_modules(code: &str) -> Vec<(String, usize, usize)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("mod ") {
        let start = from + at;
        from = start + 4;
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let (rest, blank) = skip_blank(&code[from..]);
        let Some(name) = identifier_at(rest) else {
            continue;
        };
        let (after, blank2) = skip_blank(&rest[name.len()..]);
        if !after.starts_with('{') {
            continue; // `mod x;`: a file of its own
        }
        let open = from + blank + name.len() + blank2;
        let mut depth = 0;
        let mut end = code.len();
        for (offset, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + offset;
                        break;
                    }
                }
                _ => {}
            }
        }
        found.push((name.to_string(), open, end));
    }
    found
}

/// The top-level modules that the file at `module` (its module path) names, with the line of
/// each; `"crate root *"` for a glob import of the crate root, which hides what it uses.
fn named_modules(module: &[String], text: &str) -> Vec<(String, usize)> {
    let code = code_only(text);
    let inline = inline_modules(&code);
    let line_of = |byte: usize| code[..byte].matches('\n').count() + 1;
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    for keyword in ["crate", "super", "self"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(keyword) {
            let start = from + at;
            from = start + keyword.len();
            let before = start.checked_sub(1).map(|b| bytes[b]);
            // `my_crate::x`, `$crate::x`, `a::super::x` (a path already being read).
            if before
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b':')
            {
                continue;
            }
            let (after, _) = skip_blank(&code[from..]);
            if !after.starts_with("::") {
                continue; // `pub(crate)`, `&self`, `self.x`
            }
            let mut paths = Vec::new();
            expand_paths(&code[start..], &[], &mut paths);
            // The module this text is in: the file's, then the inline `mod`s around it.
            let mut here = module.to_vec();
            for (name, open, end) in &inline {
                if *open < start && start < *end {
                    here.push(name.clone());
                }
            }
            for path in paths {
                if let Some(target) = resolve(&here, &path) {
                    found.push((target, line_of(start)));
                }
            }
        }
    }
    found
}

/// The top-level module that `path` (starting with `crate`, `super` or `self`) lands in,
/// written inside module `here`.
fn resolve(here: &[String], path: &[String]) -> Option<String> {
    let mut base: Vec<String> = Vec::new();
    let mut rest = path;
    match path.first()?.as_str() {
        "crate" => rest = &path[1..],
        "self" | "super" => {
            base = here.to_vec();
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "self" => {}
                    "super" => {
                        base.pop()?;
                    }
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    match (base.first(), rest.first()) {
        (Some(top), _) => Some(top.clone()),
        (None, Some(first)) if first == "*" => Some("crate root *".to_string()),
        (None, Some(first)) => Some(first.clone()),
        (None, None) => None,
    }
}

fn module_edges(src: &Path) -> (BTreeSet<String>, Edges) {
    let mut files = Vec::new();
    source_files(src, &mut files);
    let mut modules = BTreeSet::new();
    let mut edges = Edges::new();
    for file in &files {
        let Some(path) = module_path(src, file) else {
            continue;
        };
        let module = path[0].clone();
        modules.insert(module.clone());
        let text = std::fs::read_to_string(file).unwrap();
        for (named, line) in named_modules(&path, &text) {
            if named == module {
                continue;
            }
            let relative = file.strip_prefix(src).unwrap().display();
            edges
                .entry(module.clone())
                .or_default()
                .entry(named)
                .or_default()
                .push(format!("src/{relative}:{line}"));
        }
    }
    (modules, edges)
}

/// What `edges` has that `ALLOWED` does not allow, one line each.
fn against_the_layers(modules: &BTreeSet<String>, edges: &Edges) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (module, targets) in edges {
        for (target, places) in targets {
            let ok = allowed
                .get(module.as_str())
                .is_some_and(|may| may.contains(&target.as_str()));
            if !ok {
                let what = if modules.contains(target) {
                    "an import the layers do not allow"
                } else {
                    "not a module of src/ (a root item, or a glob of the root)"
                };
                wrong.push(format!(
                    "{module} -> {target} ({what}): {}",
                    places.join(", ")
                ));
            }
        }
    }
    wrong
}

#[test]
fn every_module_imports_only_what_its_layer_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (modules, edges) = module_edges(&src);
    let listed: BTreeSet<String> = ALLOWED.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(
        modules, listed,
        "ALLOWED must name every module of src/, and only those"
    );
    let graph: Vec<String> = edges
        .iter()
        .map(|(from, to)| {
            format!(
                "{from} -> {}",
                to.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    println!("module graph:\n  {}", graph.join("\n  "));
    let wrong = against_the_layers(&modules, &edges);
    assert!(
        wrong.is_empty(),
        "imports against the layering (ALLOWED in tests/module_graph.rs):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_allowed_table_is_layered() {
    // Each module may import only modules listed before it: then no cycle is possible.
    for (at, (module, may)) in ALLOWED.iter().enumerate() {
        let below: Vec<&str> = ALLOWED[..at].iter().map(|(m, _)| *m).collect();
        for target in *may {
            assert!(
                below.contains(target),
                "{module} may import {target}, which is not listed before it"
            );
        }
    }
}

#[test]
fn every_path_form_is_resolved() {
    let here = |m: &str| m.split("::").map(String::from).collect::<Vec<_>>();
    let names = |module: &str, text: &str| -> Vec<String> {
        named_modules(&here(module), text)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    // `crate::`, a group over several lines (nested), an inline path, a comment, a string.
    let text = "use crate::{a::B, c,\n    d::{e, f as g}};\n// crate::commented\n\
                fn x() { crate::g::h(); my_crate::no(); let s = \"crate::in_string\"; }\n\
                /* crate::block /* nested */ crate::still_comment */\n\
                const R: &str = r#\"crate::raw \"quoted\" \"#;\n";
    assert_eq!(names("m", text), ["a", "c", "d", "d", "g"]);
    // `super::` from a file two levels down lands in its own module; two of them leave it.
    assert_eq!(
        names("complete::suggest", "use super::memory::Memory;"),
        ["complete"]
    );
    assert_eq!(
        names("complete::suggest", "use super::super::backend::X;"),
        ["backend"]
    );
    assert_eq!(
        names(
            "complete::suggest",
            "use super::super::{backend::X, session};"
        ),
        ["backend", "session"]
    );
    assert_eq!(
        names("complete", "fn f() { super::backend::go(); }"),
        ["backend"]
    );
    assert_eq!(
        names("complete", "use self::memory::M; use self::super::stats;"),
        ["complete", "stats"]
    );
    // Inside an inline module, `super::` is the file's module.
    let text = "mod tests {\n    use super::super::stats::X;\n    use super::Y;\n}\n";
    assert_eq!(names("complete::suggest", text), ["complete", "complete"]);
    // An inline path without `use`, and paths that are not ours.
    assert_eq!(
        names("server", "let t = crate::complete::Ticket::default(); pub(crate) fn f(&self) { self.x; $crate::y; }"),
        ["complete"]
    );
    // A glob of the crate root hides what is used: reported.
    assert_eq!(names("complete", "use super::*;"), ["crate root *"]);
    // Char literals and lifetimes do not confuse the string skipping.
    assert_eq!(
        names(
            "m",
            "fn f<'a>(x: &'a str) -> char { let _ = '\"'; crate::z::go() }"
        ),
        ["z"]
    );
}

#[test]
fn an_upward_import_is_reported_with_where_it_is() {
    let mut edges = Edges::new();
    edges
        .entry("session".into())
        .or_default()
        .insert("complete".into(), vec!["src/session/mod.rs:3".into()]);
    edges
        .entry("session".into())
        .or_default()
        .insert("index".into(), vec!["src/session/mod.rs:4".into()]);
    let modules = ALLOWED.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(
        against_the_layers(&modules, &edges),
        ["session -> complete (an import the layers do not allow): src/session/mod.rs:3"]
    );
}
