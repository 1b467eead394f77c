//! The completion pipeline's shape (issue 31): every function in `src/complete/` is at most
//! `MAX_LINES` lines long and takes at most `MAX_ARGUMENTS` arguments (a receiver counts), and
//! no allowance of clippy's lint for long argument lists is left anywhere in the workspace
//! (an `allow` in the code, a raised threshold in a `clippy.toml` or a `[lints]` table). A request that
//! passes through one long function over a bag of arguments is what the stages replaced; this
//! keeps a new step from growing one back.
//!
//! The files are parsed with `syn` (full syntax), so braces in strings, comments and macros
//! cannot throw the count off; a function's lines run from its `fn` keyword (attributes and doc
//! comments excluded) to its closing brace. Functions in `#[cfg(test)]` modules count too.

use std::path::{Path, PathBuf};

use syn::visit::Visit;

const MAX_LINES: usize = 80;
const MAX_ARGUMENTS: usize = 6;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            // Build output and dependencies are not the workspace's code.
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// A function too long or taking too many arguments: "file:line name: why".
struct Shapes<'a> {
    file: &'a str,
    problems: Vec<String>,
    functions: usize,
}

impl Shapes<'_> {
    fn check(&mut self, signature: &syn::Signature, body: &syn::Block) {
        self.functions += 1;
        let first = signature.fn_token.span.start().line;
        let last = body.brace_token.span.close().end().line;
        let lines = last + 1 - first;
        let name = &signature.ident;
        if lines > MAX_LINES {
            self.problems.push(format!(
                "{}:{first} {name}: {lines} lines (at most {MAX_LINES})",
                self.file
            ));
        }
        let arguments = signature.inputs.len();
        if arguments > MAX_ARGUMENTS {
            self.problems.push(format!(
                "{}:{first} {name}: {arguments} arguments (at most {MAX_ARGUMENTS})",
                self.file
            ));
        }
    }
}

impl<'ast> Visit<'ast> for Shapes<'_> {
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.check(&item.sig, &item.block);
        syn::visit::visit_item_fn(self, item);
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        self.check(&item.sig, &item.block);
        syn::visit::visit_impl_item_fn(self, item);
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        if let Some(body) = &item.default {
            self.check(&item.sig, body);
        }
        syn::visit::visit_trait_item_fn(self, item);
    }
}

/// The shape problems of one file's source.
fn shape_problems(file: &str, source: &str) -> (Vec<String>, usize) {
    let parsed = syn::parse_file(source).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut shapes = Shapes {
        file,
        problems: Vec::new(),
        functions: 0,
    };
    shapes.visit_file(&parsed);
    (shapes.problems, shapes.functions)
}

#[test]
fn every_function_of_the_completion_pipeline_is_short_and_takes_few_arguments() {
    let complete = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/complete");
    let mut files = Vec::new();
    rust_files(&complete, &mut files);
    assert!(
        files.len() > 5,
        "no pipeline files under {}",
        complete.display()
    );
    let mut problems = Vec::new();
    let mut functions = 0;
    for path in &files {
        let source = std::fs::read_to_string(path).unwrap();
        let name = path.strip_prefix(&complete).unwrap().display().to_string();
        let (found, counted) = shape_problems(&name, &source);
        problems.extend(found);
        functions += counted;
    }
    assert!(
        functions > 50,
        "only {functions} functions read: is the parse right?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_allowance_for_long_argument_lists_is_left_in_the_workspace() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    rust_files(workspace, &mut files);
    let mut configs = Vec::new();
    for config in [
        "clippy.toml",
        ".clippy.toml",
        "Cargo.toml",
        "lsp-server/Cargo.toml",
    ] {
        configs.push(workspace.join(config));
    }
    configs.push(workspace.join("inference-backend/Cargo.toml"));
    // The lint's name in code (snake case) and in configuration (kebab case, with
    // `-threshold`), spelled in parts so that this file does not find itself.
    let names = [
        ["too_many", "_arguments"].concat(),
        ["too-many", "-arguments"].concat(),
    ];
    let found: Vec<String> = files
        .iter()
        .chain(&configs)
        .filter_map(|path| {
            let source = std::fs::read_to_string(path).ok()?;
            let lines: Vec<String> = source
                .lines()
                .enumerate()
                .filter(|(_, line)| names.iter().any(|name| line.contains(name.as_str())))
                .map(|(index, _)| format!("{}:{}", path.display(), index + 1))
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect();
    assert!(files.len() > 50, "only {} files read", files.len());
    assert!(found.is_empty(), "allowances left:\n{}", found.join("\n"));
}

/// The checker itself: it finds a long function and one with too many arguments, wherever
/// they are (a method, a nested function), and is not fooled by braces in strings.
#[test]
fn the_checker_finds_long_functions_and_long_argument_lists() {
    let long_body = "    let _ = \"}\";\n".repeat(MAX_LINES);
    let source = format!(
        "struct S;\nimpl S {{\n    fn long(&self) {{\n{long_body}    }}\n}}\n\
         fn wide(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8, g: u8) {{\n    fn inner() {{}}\n}}\n\
         fn fine(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8) {{}}\n"
    );
    let (problems, functions) = shape_problems("planted.rs", &source);
    assert_eq!(functions, 4, "{problems:?}");
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("planted.rs:3 long: 82 lines"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("planted.rs:") && problems[1].contains("wide: 7 arguments"),
        "{problems:?}"
    );
}
