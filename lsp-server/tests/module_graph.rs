//! The dependency direction of `lsp-server/src`: the top-level modules (`session`, `context`,
//! `complete`, `backend`, ...) must form no cycle, so that data flows one way through a
//! request and each layer can be read (and changed) without the ones above it.
//!
//! The graph is built from the source text: every `crate::X` path, in `use` declarations
//! (grouped `crate::{a, b::c}` too) and in expressions, makes the module of that file depend on
//! `X`. Comments are skipped. A cycle fails the test with the cycle and where each of its edges
//! comes from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// module -> (module it names -> where: "file:line")
type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// `src/complete/pipeline.rs` and `src/complete.rs` both belong to `complete`; `lib.rs` and
/// `main.rs` are the crate root, above every module.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// The line without its `//` comment (a `//` inside a string literal is rare enough in this
/// crate's `crate::` lines to ignore).
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

fn identifier_at(text: &str) -> Option<&str> {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    (end > 0).then(|| &text[..end])
}

/// The modules named by `crate::` paths in `text` (one file, comments removed, lines joined
/// so that a grouped `use` over several lines is seen whole), with the line of each.
fn named_modules(text: &str) -> Vec<(String, usize)> {
    let mut code = String::new();
    let mut line_of_byte = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = code_of(line);
        code.push_str(line);
        code.push('\n');
        line_of_byte.extend(std::iter::repeat_n(index + 1, line.len() + 1));
    }
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        // `ghostline_crate::x` or `$crate::` are not ours.
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let line = line_of_byte[start];
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::b, c, d::{e, f}}`: the first identifier of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            for (offset, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start && depth == 0 => {
                        item_start = false;
                        if let Some(name) = identifier_at(&group[offset..]) {
                            found.push((name.to_string(), line));
                        }
                    }
                    _ => {}
                }
            }
        } else if let Some(name) = identifier_at(rest) {
            found.push((name.to_string(), line));
        }
    }
    found
}

fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    source_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(src, f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let Some(module) = top_module(src, file) else {
            continue;
        };
        graph.entry(module.clone()).or_default();
        let text = std::fs::read_to_string(file).unwrap();
        for (named, line) in named_modules(&text) {
            // `crate::run_stdio` and other items of the root are not modules.
            if named == module || !modules.contains(&named) {
                continue;
            }
            let relative = file.strip_prefix(src).unwrap().display();
            graph
                .entry(module.clone())
                .or_default()
                .entry(named)
                .or_default()
                .push(format!("src/{relative}:{line}"));
        }
    }
    graph
}

/// Strongly connected components of more than one module (Tarjan), each sorted.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flat_map(|e| e.keys()) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !tarjan.index.contains_key(v.as_str()) {
            tarjan.visit(v);
        }
    }
    tarjan.found
}

/// One cycle through `start` inside `component` (breadth-first, so the shortest).
fn cycle_through(graph: &Graph, component: &[String], start: &str) -> Vec<String> {
    let inside: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph[v].keys().map(String::as_str) {
            if !inside.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![v.to_string()];
                let mut at = v;
                while at != start {
                    at = came_from[at];
                    path.push(at.to_string());
                }
                path.reverse();
                path.push(start.to_string());
                return path;
            }
            if !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![start.to_string()]
}

#[test]
fn top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    assert!(
        graph.len() >= 5,
        "found only {} modules under {}: {graph:?}",
        graph.len(),
        src.display()
    );
    let mut report = String::new();
    for component in cycles(&graph) {
        let cycle = cycle_through(&graph, &component, &component[0]);
        report.push_str(&format!(
            "cycle: {} (all of {{{}}} reach each other)\n",
            cycle.join(" -> "),
            component.join(", ")
        ));
        for pair in cycle.windows(2) {
            let places = &graph[&pair[0]][&pair[1]];
            report.push_str(&format!(
                "  {} -> {}: {}\n",
                pair[0],
                pair[1],
                places.join(", ")
            ));
        }
    }
    let edges: Vec<String> = graph
        .iter()
        .map(|(from, to)| {
            format!(
                "{from} -> {}",
                to.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    println!("module graph:\n  {}", edges.join("\n  "));
    assert!(
        report.is_empty(),
        "the module graph of lsp-server/src has cycles:\n{report}\ngraph:\n  {}",
        edges.join("\n  ")
    );
}

/// The direction the architecture names (ARCHITECTURE.md): what each lower layer may not
/// import. Acyclic alone would allow e.g. `session` to start importing `complete` if nothing
/// imported `session` back; these keep the layers where they are.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("edit", &["*"]),
    ("settings", &["*"]),
    ("tokens", &["*"]),
    ("backend", &["*"]),
    ("session", &["backend", "context", "complete", "server"]),
    ("context", &["complete", "server"]),
    ("complete", &["server"]),
];

#[test]
fn lower_layers_do_not_reach_up() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    let mut wrong = Vec::new();
    for (module, forbidden) in FORBIDDEN {
        let Some(edges) = graph.get(*module) else {
            continue;
        };
        for (target, places) in edges {
            if forbidden.contains(&"*") || forbidden.contains(&target.as_str()) {
                wrong.push(format!("{module} -> {target}: {}", places.join(", ")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn grouped_and_inline_paths_are_seen() {
    let text = "use crate::{a::B, c,\n    d::{e, f}};\n// crate::commented\nfn x() { crate::g::h(); my_crate::no(); }\n";
    let names: Vec<String> = named_modules(text).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a", "c", "d", "g"]);
    // A graph with a cycle is reported as one.
    let mut graph = Graph::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph
            .entry(from.into())
            .or_default()
            .insert(to.into(), vec![]);
        graph.entry(to.into()).or_default();
    }
    let found = cycles(&graph);
    assert_eq!(found, [vec!["a", "b", "c"]]);
    assert_eq!(cycle_through(&graph, &found[0], "a"), ["a", "b", "c", "a"]);
}
