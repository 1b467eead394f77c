//! What the queries find in a tree: definitions and imports of a file (for the index), and
//! the scopes around a cursor (for the multi-line decision and the identifiers to look up).

use ropey::Rope;
use streaming_iterator::StreamingIterator;
use tree_sitter::{Node, QueryCursor, Tree};

use super::queries::LangQueries;

/// A definition as the prompt shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    /// From the capture name: `@definition.function` → `function`.
    pub kind: String,
    /// 0-based lines, inclusive.
    pub start_line: u32,
    pub end_line: u32,
    /// The text before the body (`fn add(a: i32) -> i32`), at most a few lines.
    pub signature: String,
    /// Doc comment lines above it, or a Python docstring; possibly empty.
    pub doc: String,
    /// The whole definition when it is short: then the body says more than the signature.
    pub body: Option<String>,
}

impl Definition {
    /// What a prompt shows for it: the whole text when short, else doc + signature.
    pub fn display(&self) -> String {
        if let Some(body) = &self.body {
            if self.doc.is_empty() || body.contains(self.doc.lines().next().unwrap_or("")) {
                return body.clone();
            }
            return format!("{}\n{body}", self.doc);
        }
        if self.doc.is_empty() {
            self.signature.clone()
        } else {
            format!("{}\n{}", self.doc, self.signature)
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Import {
    /// As written, quotes and angle brackets removed: `crate::a::b`, `./util`, `os.path`.
    pub path: String,
    /// Names imported from it, where the syntax lists them (`from m import a, b`).
    pub names: Vec<String>,
}

const SHORT_BODY_LINES: u32 = 12;
const SHORT_BODY_BYTES: usize = 700;
const MAX_SIGNATURE_LINES: usize = 4;
const MAX_DOC_LINES: usize = 8;

fn text_of<'a>(node: Node<'_>, source: &'a str) -> &'a str {
    source.get(node.byte_range()).unwrap_or("")
}

pub fn definitions(queries: &LangQueries, tree: &Tree, source: &str) -> Vec<Definition> {
    let query = &queries.definitions;
    let names = query.capture_names();
    let name_index = query.capture_index_for_name("name");
    let mut cursor = QueryCursor::new();
    cursor.set_match_limit(256);
    let mut out: Vec<Definition> = Vec::new();
    let mut matches = cursor.matches(query, tree.root_node(), source.as_bytes());
    while let Some(found) = matches.next() {
        let mut name = None;
        let mut definition = None;
        for capture in found.captures {
            if Some(capture.index) == name_index {
                name = Some(capture.node);
            } else if let Some(kind) = names
                .get(capture.index as usize)
                .and_then(|n| n.strip_prefix("definition."))
            {
                definition = Some((capture.node, kind));
            }
        }
        let (Some(name), Some((node, kind))) = (name, definition) else {
            continue;
        };
        let name = text_of(name, source).to_string();
        if name.is_empty() || name.len() > 200 {
            continue;
        }
        let start_line = node.start_position().row as u32;
        // Two patterns may find the same definition (a constant that is also an arrow
        // function); the first wins.
        if out
            .iter()
            .any(|d| d.name == name && d.start_line == start_line)
        {
            continue;
        }
        out.push(describe(node, name, kind, source));
    }
    out
}

fn describe(node: Node<'_>, name: String, kind: &str, source: &str) -> Definition {
    let start_line = node.start_position().row as u32;
    let end_line = node.end_position().row as u32;
    let whole = text_of(node, source);
    let body_node = node.child_by_field_name("body");
    let signature = match body_node {
        Some(body) if body.start_byte() > node.start_byte() => source
            .get(node.start_byte()..body.start_byte())
            .unwrap_or("")
            .trim_end()
            .to_string(),
        _ => whole.lines().next().unwrap_or("").trim_end().to_string(),
    };
    let signature = signature
        .lines()
        .take(MAX_SIGNATURE_LINES)
        .collect::<Vec<_>>()
        .join("\n");
    let body = (end_line - start_line < SHORT_BODY_LINES && whole.len() <= SHORT_BODY_BYTES)
        .then(|| whole.to_string());
    Definition {
        name,
        kind: kind.to_string(),
        start_line,
        end_line,
        signature,
        doc: doc_comment(node, body_node, source),
        body,
    }
}

/// Comments directly above the definition (or above its `export`/decorator wrapper), else
/// a docstring as the first statement of its body.
fn doc_comment(node: Node<'_>, body: Option<Node<'_>>, source: &str) -> String {
    let mut anchor = node;
    if anchor
        .prev_named_sibling()
        .is_none_or(|s| !s.kind().contains("comment"))
    {
        if let Some(parent) = node.parent() {
            if matches!(
                parent.kind(),
                "export_statement" | "decorated_definition" | "template_declaration"
            ) {
                anchor = parent;
            }
        }
    }
    let mut lines: Vec<&str> = Vec::new();
    let mut next_row = anchor.start_position().row;
    let mut sibling = anchor.prev_named_sibling();
    while let Some(comment) = sibling {
        if !comment.kind().contains("comment") || comment.end_position().row + 1 < next_row {
            break;
        }
        let text = text_of(comment, source);
        for line in text.lines().rev() {
            lines.push(line.trim());
        }
        if lines.len() >= MAX_DOC_LINES {
            break;
        }
        next_row = comment.start_position().row;
        sibling = comment.prev_named_sibling();
    }
    if !lines.is_empty() {
        lines.truncate(MAX_DOC_LINES);
        lines.reverse();
        return lines.join("\n");
    }
    // Python: `def f():\n    """Docstring."""`.
    let docstring = body
        .and_then(|b| b.named_child(0))
        .filter(|s| s.kind() == "expression_statement")
        .and_then(|s| s.named_child(0))
        .filter(|s| s.kind() == "string");
    match docstring {
        Some(string) => text_of(string, source)
            .lines()
            .take(MAX_DOC_LINES)
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("\n"),
        None => String::new(),
    }
}

pub fn imports(queries: &LangQueries, tree: &Tree, source: &str) -> Vec<Import> {
    let query = &queries.imports;
    let (Some(path_index), import_index, name_index) = (
        query.capture_index_for_name("path"),
        query.capture_index_for_name("import"),
        query.capture_index_for_name("name"),
    ) else {
        return Vec::new();
    };
    let mut cursor = QueryCursor::new();
    cursor.set_match_limit(256);
    // Keyed by the statement, so `from m import a, b` (one match per name) is one import.
    let mut out: Vec<(usize, Import)> = Vec::new();
    let mut matches = cursor.matches(query, tree.root_node(), source.as_bytes());
    while let Some(found) = matches.next() {
        let mut path = None;
        let mut statement = None;
        let mut name = None;
        for capture in found.captures {
            if capture.index == path_index {
                path = Some(capture.node);
            } else if Some(capture.index) == import_index {
                statement = Some(capture.node);
            } else if Some(capture.index) == name_index {
                name = Some(capture.node);
            }
        }
        let Some(path) = path else { continue };
        let key = statement.unwrap_or(path).start_byte();
        let path_text = text_of(path, source)
            .trim()
            .trim_matches(|c| matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .to_string();
        if path_text.is_empty() {
            continue;
        }
        let position = out
            .iter()
            .position(|(k, i)| *k == key && i.path == path_text);
        let entry = match position {
            Some(at) => &mut out[at].1,
            None => {
                out.push((
                    key,
                    Import {
                        path: path_text,
                        names: Vec::new(),
                    },
                ));
                &mut out.last_mut().expect("just pushed").1
            }
        };
        if let Some(name) = name {
            let name = text_of(name, source).to_string();
            if !entry.names.contains(&name) {
                entry.names.push(name);
            }
        }
    }
    out.into_iter().map(|(_, import)| import).collect()
}

/// What the blocks query says about the position of a cursor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CursorScopes {
    pub in_comment_or_string: bool,
    /// Lines (0-based, inclusive) of the innermost function around the cursor.
    pub function_lines: Option<(usize, usize)>,
}

/// Classifies `cursor_byte` in `tree` (whose text is `rope`).
pub fn cursor_scopes(
    queries: &LangQueries,
    tree: &Tree,
    rope: &Rope,
    cursor_byte: usize,
) -> CursorScopes {
    let query = &queries.blocks;
    let names = query.capture_names();
    let mut cursor = QueryCursor::new();
    cursor.set_match_limit(128);
    // Only nodes touching the char before the cursor (what the user just typed into) matter.
    cursor.set_byte_range(cursor_byte.saturating_sub(1)..cursor_byte + 1);
    let text = |node: Node<'_>| {
        rope.get_byte_slice(node.byte_range())
            .into_iter()
            .flat_map(|slice| slice.chunks())
            .map(str::as_bytes)
    };
    let mut scopes = CursorScopes::default();
    let mut function_size = usize::MAX;
    let mut captures = cursor.captures(query, tree.root_node(), text);
    while let Some((found, index)) = captures.next() {
        let capture = found.captures[*index];
        let node = capture.node;
        let kind = names.get(capture.index as usize).copied().unwrap_or("");
        match kind {
            "comment" | "string" => {
                let is_line_comment = kind == "comment" && {
                    // A line comment runs to the end of its line, cursor included; a block
                    // comment ends at its closer.
                    let end = node.end_byte();
                    let tail = rope
                        .get_byte_slice(end.saturating_sub(2)..end)
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    tail != "*/" && !node.kind().contains("block")
                };
                let inside = node.start_byte() < cursor_byte
                    && (cursor_byte < node.end_byte()
                        || (is_line_comment && cursor_byte == node.end_byte()));
                if inside {
                    scopes.in_comment_or_string = true;
                }
            }
            "function" => {
                let size = node.end_byte() - node.start_byte();
                if node.start_byte() <= cursor_byte
                    && cursor_byte <= node.end_byte()
                    && size < function_size
                {
                    function_size = size;
                    scopes.function_lines =
                        Some((node.start_position().row, node.end_position().row));
                }
            }
            _ => {}
        }
    }
    scopes
}

#[cfg(test)]
mod tests {
    use super::super::{parse_text, queries, Lang};
    use super::*;

    fn defs(lang: Lang, source: &str) -> Vec<Definition> {
        let queries = queries::get(lang).unwrap();
        let tree = parse_text(lang, source).unwrap();
        definitions(&queries, &tree, source)
    }

    fn imps(lang: Lang, source: &str) -> Vec<Import> {
        let queries = queries::get(lang).unwrap();
        let tree = parse_text(lang, source).unwrap();
        imports(&queries, &tree, source)
    }

    fn names(defs: &[Definition]) -> Vec<&str> {
        defs.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn definitions_in_every_language() {
        let rust = defs(
            Lang::Rust,
            "/// Adds.\n/// Really.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\nstruct P { x: i32 }\n",
        );
        assert_eq!(names(&rust), ["add", "P"]);
        assert_eq!(rust[0].doc, "/// Adds.\n/// Really.");
        assert_eq!(rust[0].signature, "pub fn add(a: i32, b: i32) -> i32");
        assert_eq!(rust[0].kind, "function");
        let py = defs(
            Lang::Python,
            "import os\nLIMIT = 3\nclass A:\n    def m(self, x):\n        \"\"\"Doc.\"\"\"\n        return x\n",
        );
        assert_eq!(names(&py), ["LIMIT", "A", "m"]);
        assert_eq!(py[2].doc, "\"\"\"Doc.\"\"\"");
        assert_eq!(py[2].signature, "def m(self, x):");
        assert_eq!(
            names(&defs(Lang::TypeScript, "export function f(a: number): number { return a }\ninterface I { x: number }\nconst g = (x: number) => x;\nclass C { m() {} }\n")),
            ["f", "I", "g", "C", "m"]
        );
        assert_eq!(
            names(&defs(
                Lang::JavaScript,
                "function f() {}\nconst h = () => 1;\nclass K { run() {} }\n"
            )),
            ["f", "h", "K", "run"]
        );
        assert_eq!(
            names(&defs(Lang::Go, "package p\n// Sum adds.\nfunc Sum(a, b int) int { return a + b }\ntype T struct{}\nfunc (t T) M() {}\n")),
            ["Sum", "T", "M"]
        );
        assert_eq!(
            names(&defs(
                Lang::Java,
                "class A {\n  /** x */ int f(int y) { return y; }\n  A() {}\n}\n"
            )),
            ["A", "f", "A"]
        );
        assert_eq!(
            names(&defs(Lang::C, "#define N 3\nstruct s { int x; };\nint add(int a, int b);\nstatic char *name(void) { return 0; }\n")),
            ["N", "s", "add", "name"]
        );
        assert_eq!(
            names(&defs(Lang::Cpp, "class W { void run(); };\nint W::size() const { return 1; }\nint main() { return 0; }\n")),
            ["W", "run", "size", "main"]
        );
    }

    #[test]
    fn imports_in_every_language() {
        let paths = |list: Vec<Import>| list.into_iter().map(|i| i.path).collect::<Vec<_>>();
        assert_eq!(
            paths(imps(
                Lang::Rust,
                "use crate::a::b::C;\nmod util;\nmod inline { }\n"
            )),
            ["crate::a::b::C", "util"]
        );
        let py = imps(
            Lang::Python,
            "import os.path\nfrom .models import User, Team\n",
        );
        assert_eq!(py[0].path, "os.path");
        assert_eq!(py[1].path, ".models");
        assert_eq!(py[1].names, ["User", "Team"]);
        assert_eq!(
            paths(imps(
                Lang::TypeScript,
                "import { a } from './util';\nconst x = require(\"../lib/x\");\n"
            )),
            ["./util", "../lib/x"]
        );
        assert_eq!(
            paths(imps(
                Lang::Go,
                "package p\nimport (\n\t\"fmt\"\n\t\"example.com/m/store\"\n)\n"
            )),
            ["fmt", "example.com/m/store"]
        );
        assert_eq!(
            paths(imps(
                Lang::Java,
                "import com.acme.util.Strings;\nclass A {}\n"
            )),
            ["com.acme.util.Strings"]
        );
        assert_eq!(
            paths(imps(
                Lang::C,
                "#include \"util/list.h\"\n#include <stdio.h>\n"
            )),
            ["util/list.h", "stdio.h"]
        );
    }

    #[test]
    fn cursor_scopes_find_comments_strings_and_functions() {
        let source = "fn a() {\n    let s = \"abc\";\n    // note\n}\n";
        let rope = Rope::from_str(source);
        let queries = queries::get(Lang::Rust).unwrap();
        let tree = parse_text(Lang::Rust, source).unwrap();
        let at = |needle: &str, offset: usize| source.find(needle).unwrap() + offset;
        assert!(cursor_scopes(&queries, &tree, &rope, at("abc", 1)).in_comment_or_string);
        assert!(!cursor_scopes(&queries, &tree, &rope, at("abc\"", 4)).in_comment_or_string);
        assert!(cursor_scopes(&queries, &tree, &rope, at("note", 4)).in_comment_or_string);
        assert_eq!(
            cursor_scopes(&queries, &tree, &rope, at("let", 0)).function_lines,
            Some((0, 3))
        );
    }
}
