//! The `.scm` queries of each language: embedded at build time from `grammars/`, or read at
//! run time from an override folder (setting `grammarsDir`, else `GHOSTLINE_GRAMMARS_DIR`).
//!
//! Compiled once per language and folder, on first use. A query that fails to read or
//! compile is logged once with the file and tree-sitter's message, and the language then
//! has no queries (plain text) until the folder changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, RwLock};

use tree_sitter::Query;

use super::Lang;

pub const DEFINITIONS: &str = "definitions.scm";
pub const IMPORTS: &str = "imports.scm";
pub const BLOCKS: &str = "blocks.scm";

pub const GRAMMARS_DIR_ENV: &str = "GHOSTLINE_GRAMMARS_DIR";

macro_rules! embedded {
    ($dir:literal) => {
        [
            include_str!(concat!("../../../grammars/", $dir, "/definitions.scm")),
            include_str!(concat!("../../../grammars/", $dir, "/imports.scm")),
            include_str!(concat!("../../../grammars/", $dir, "/blocks.scm")),
        ]
    };
}

/// The built-in query sources: [definitions, imports, blocks].
pub fn embedded(lang: Lang) -> [&'static str; 3] {
    match lang {
        Lang::Rust => embedded!("rust"),
        Lang::Python => embedded!("python"),
        Lang::TypeScript | Lang::Tsx => embedded!("typescript"),
        Lang::JavaScript => embedded!("javascript"),
        Lang::Go => embedded!("go"),
        Lang::Java => embedded!("java"),
        Lang::C => embedded!("c"),
        Lang::Cpp => embedded!("cpp"),
    }
}

pub struct LangQueries {
    pub definitions: Query,
    pub imports: Query,
    pub blocks: Query,
}

#[derive(Default)]
struct Registry {
    dir: Option<PathBuf>,
    loaded: HashMap<Lang, Option<Arc<LangQueries>>>,
}

static REGISTRY: LazyLock<RwLock<Registry>> = LazyLock::new(|| {
    RwLock::new(Registry {
        dir: std::env::var_os(GRAMMARS_DIR_ENV)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from),
        loaded: HashMap::new(),
    })
});

/// Sets the override folder (`None`: the environment variable, else the embedded queries).
/// Queries are recompiled lazily when it changes.
pub fn set_override_dir(setting: Option<&str>) {
    let dir = setting
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os(GRAMMARS_DIR_ENV)
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from)
        });
    let mut registry = REGISTRY.write().unwrap_or_else(|p| p.into_inner());
    if registry.dir != dir {
        if let Some(dir) = &dir {
            tracing::info!("tree-sitter queries from {}", dir.display());
        }
        registry.dir = dir;
        registry.loaded.clear();
    }
}

/// The compiled queries of `lang`, or `None` when they do not load (plain text).
pub fn get(lang: Lang) -> Option<Arc<LangQueries>> {
    {
        let registry = REGISTRY.read().unwrap_or_else(|p| p.into_inner());
        if let Some(loaded) = registry.loaded.get(&lang) {
            return loaded.clone();
        }
    }
    let dir = REGISTRY
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .dir
        .clone();
    let loaded = load(lang, dir.as_deref()).map(Arc::new);
    let mut registry = REGISTRY.write().unwrap_or_else(|p| p.into_inner());
    if registry.dir == dir {
        registry.loaded.insert(lang, loaded.clone());
    }
    loaded
}

fn load(lang: Lang, dir: Option<&Path>) -> Option<LangQueries> {
    let grammar = lang.grammar();
    let [definitions, imports, blocks] = embedded(lang);
    let compile = |file: &str, default: &'static str| -> Option<Query> {
        let (source, origin) = match dir.map(|d| d.join(lang.grammar_dir()).join(file)) {
            Some(path) if path.exists() => match std::fs::read_to_string(&path) {
                Ok(source) => (source, path.display().to_string()),
                Err(error) => {
                    tracing::error!(
                        "cannot read {}: {error}; {lang:?} is handled as plain text",
                        path.display()
                    );
                    return None;
                }
            },
            _ => (
                default.to_string(),
                format!("grammars/{}/{file} (built in)", lang.grammar_dir()),
            ),
        };
        match Query::new(&grammar, &source) {
            Ok(query) => Some(query),
            Err(error) => {
                tracing::error!(
                    "bad tree-sitter query {origin} (line {}, column {}): {:?} {}; {lang:?} is handled as plain text",
                    error.row + 1,
                    error.column + 1,
                    error.kind,
                    error.message
                );
                None
            }
        }
    };
    Some(LangQueries {
        definitions: compile(DEFINITIONS, definitions)?,
        imports: compile(IMPORTS, imports)?,
        blocks: compile(BLOCKS, blocks)?,
    })
}

/// Compiles every language's queries off the request path (they take milliseconds each), on
/// one short-lived thread, once per process however often it is called (`initialize` calls it;
/// a second `initialize` must not start a second thread).
pub fn warm_up() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("ghostline-queries".into())
            .spawn(|| {
                for lang in Lang::ALL {
                    let _ = get(lang);
                }
            });
        if let Err(error) = spawned {
            tracing::debug!("no query warm-up thread ({error}); queries compile on first use");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_query_compiles() {
        for lang in Lang::ALL {
            assert!(
                load(lang, None).is_some(),
                "{lang:?} queries do not compile"
            );
        }
    }

    #[test]
    fn a_broken_override_falls_back_to_plain_text() {
        let dir = std::env::temp_dir().join(format!("ghostline-q-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("go")).unwrap();
        std::fs::write(dir.join("go").join(BLOCKS), "(no_such_node) @comment").unwrap();
        assert!(load(Lang::Go, Some(&dir)).is_none());
        // Files the folder lacks come from the built-in set.
        assert!(load(Lang::Rust, Some(&dir)).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
