//! Languages, their tree-sitter grammars and queries, and what we read out of a tree.
//!
//! The grammars are compiled in; the queries (`grammars/<language>/*.scm` at the repo root)
//! are data: embedded as defaults and overridable at run time (`queries`). A language whose
//! queries do not load is handled as plain text, never a panic.

pub mod extract;
pub mod queries;

use std::cell::RefCell;
use std::path::Path;

use ropey::Rope;
use tree_sitter::{Language, Parser, Tree};

/// Languages with a grammar. TSX shares TypeScript's queries (same node names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    Rust,
    Python,
    TypeScript,
    Tsx,
    JavaScript,
    Go,
    Java,
    C,
    Cpp,
}

impl Lang {
    pub const ALL: [Lang; 9] = [
        Lang::Rust,
        Lang::Python,
        Lang::TypeScript,
        Lang::Tsx,
        Lang::JavaScript,
        Lang::Go,
        Lang::Java,
        Lang::C,
        Lang::Cpp,
    ];

    /// From an LSP `languageId` (the ids VS Code and Neovim send).
    pub fn from_language_id(id: &str) -> Option<Lang> {
        Some(match id {
            "rust" => Lang::Rust,
            "python" => Lang::Python,
            "typescript" => Lang::TypeScript,
            "typescriptreact" | "tsx" => Lang::Tsx,
            "javascript" | "javascriptreact" | "jsx" => Lang::JavaScript,
            "go" => Lang::Go,
            "java" => Lang::Java,
            "c" => Lang::C,
            "cpp" | "c++" | "cuda-cpp" | "objective-cpp" => Lang::Cpp,
            _ => return None,
        })
    }

    pub fn from_path(path: &Path) -> Option<Lang> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match extension.as_str() {
            "rs" => Lang::Rust,
            "py" | "pyi" => Lang::Python,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
            "go" => Lang::Go,
            "java" => Lang::Java,
            "c" | "h" => Lang::C,
            "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" | "ipp" | "cu" => Lang::Cpp,
            _ => return None,
        })
    }

    /// The folder of `grammars/` holding this language's queries.
    pub fn grammar_dir(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::TypeScript | Lang::Tsx => "typescript",
            Lang::JavaScript => "javascript",
            Lang::Go => "go",
            Lang::Java => "java",
            Lang::C => "c",
            Lang::Cpp => "cpp",
        }
    }

    pub fn grammar(self) -> Language {
        match self {
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::Java => tree_sitter_java::LANGUAGE.into(),
            Lang::C => tree_sitter_c::LANGUAGE.into(),
            Lang::Cpp => tree_sitter_cpp::LANGUAGE.into(),
        }
    }
}

/// Files that are worth indexing as text (similar-code windows) although we have no grammar.
pub fn is_plain_source(path: &Path) -> bool {
    let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
        return false;
    };
    matches!(
        extension.to_ascii_lowercase().as_str(),
        "rb" | "php"
            | "cs"
            | "kt"
            | "kts"
            | "swift"
            | "scala"
            | "sh"
            | "bash"
            | "zsh"
            | "lua"
            | "m"
            | "mm"
            | "r"
            | "jl"
            | "dart"
            | "ex"
            | "exs"
            | "erl"
            | "hs"
            | "ml"
            | "mli"
            | "clj"
            | "sql"
            | "vue"
            | "svelte"
            | "zig"
            | "nim"
            | "toml"
            | "yaml"
            | "yml"
    )
}

/// The line-comment marker of a language id (for snippets of other files written into a
/// prompt as comments).
pub fn line_comment(language_id: &str) -> &'static str {
    match language_id {
        "python" | "ruby" | "shellscript" | "sh" | "bash" | "perl" | "r" | "yaml" | "toml"
        | "julia" | "elixir" | "nim" | "coffeescript" | "makefile" | "dockerfile" => "#",
        "lua" | "sql" | "haskell" => "--",
        "lisp" | "clojure" | "scheme" => ";;",
        _ => "//",
    }
}

/// Documents larger than this are not parsed on the request path; the classification then
/// parses a window around the cursor instead.
pub const MAX_PARSE_BYTES: usize = 4 << 20;

thread_local! {
    static PARSER: RefCell<Parser> = RefCell::new(Parser::new());
}

/// Parses `rope`, reusing `old` (already `edit`ed to match) so that only the changed part is
/// re-read. `None` when the grammar cannot be set or the document is too large.
pub fn parse_rope(lang: Lang, rope: &Rope, old: Option<&Tree>) -> Option<Tree> {
    if rope.len_bytes() > MAX_PARSE_BYTES {
        return None;
    }
    PARSER.with(|parser| {
        let mut parser = parser.borrow_mut();
        parser.set_language(&lang.grammar()).ok()?;
        let len = rope.len_bytes();
        let mut read = |byte: usize, _| -> &[u8] {
            if byte >= len {
                return &[];
            }
            let (chunk, chunk_start, _, _) = rope.chunk_at_byte(byte);
            &chunk.as_bytes()[byte - chunk_start..]
        };
        parser.parse_with_options(&mut read, old, None)
    })
}

/// Parses a whole text (files from disk, in the indexer).
pub fn parse_text(lang: Lang, text: &str) -> Option<Tree> {
    if text.len() > MAX_PARSE_BYTES {
        return None;
    }
    PARSER.with(|parser| {
        let mut parser = parser.borrow_mut();
        parser.set_language(&lang.grammar()).ok()?;
        parser.parse(text, None)
    })
}
