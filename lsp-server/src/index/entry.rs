//! One indexed file: its definitions, imports and similarity windows, built from its text.

use std::path::{Path, PathBuf};

use crate::privacy::redact_keep_lines;
use crate::syntax::extract::{self, Definition, Import};
use crate::syntax::{parse_text, queries, Lang};

/// Lines per similarity window and the step between windows (RepoCoder's 20/10).
pub const WINDOW_LINES: usize = 20;
pub const WINDOW_STEP: usize = 10;
/// MinHash signature length: enough to rank windows by estimated Jaccard before the exact
/// comparison of the best few.
pub const MINHASH: usize = 16;

#[derive(Clone, Debug)]
pub struct Window {
    /// 0-based, end exclusive.
    pub start_line: u32,
    pub end_line: u32,
    pub minhash: [u32; MINHASH],
    /// Distinct identifier-token hashes, sorted.
    pub tokens: Box<[u32]>,
}

#[derive(Debug)]
pub struct FileEntry {
    pub path: PathBuf,
    /// Relative to its workspace root, `/`-separated: how prompts name the file.
    pub relative: String,
    pub lang: Option<Lang>,
    pub definitions: Vec<Definition>,
    pub imports: Vec<Import>,
    pub windows: Vec<Window>,
}

impl FileEntry {
    /// The order that breaks ties between files wherever candidates are ranked: the path's
    /// bytes. Index order depends on what was indexed first, and `Path`'s component-wise order
    /// is slow on the many ties of a large workspace.
    pub fn path_order(&self, other: &FileEntry) -> std::cmp::Ordering {
        self.path.as_os_str().cmp(other.path.as_os_str())
    }

    pub fn build(path: PathBuf, relative: String, text: &str) -> FileEntry {
        // Stored redacted: definitions go into prompts as they are. The whole text is
        // redacted before anything is cut from it (a definition's signature, doc or body
        // could cut a secret in two), keeping its lines where they were.
        let redacted = redact_keep_lines(text);
        let text: &str = &redacted;
        let lang = Lang::from_path(&path);
        let (definitions, imports) =
            match lang.and_then(|lang| Some((queries::get(lang)?, parse_text(lang, text)?))) {
                Some((queries, tree)) => (
                    extract::definitions(&queries, &tree, text),
                    extract::imports(&queries, &tree, text),
                ),
                None => (Vec::new(), Vec::new()),
            };
        let lines: Vec<&str> = text.lines().collect();
        FileEntry {
            windows: windows(&lines),
            path,
            relative,
            lang,
            definitions,
            imports,
        }
    }

    /// Approximate heap bytes, for the status and the benchmark.
    pub fn approx_bytes(&self) -> usize {
        let definitions: usize = self
            .definitions
            .iter()
            .map(|d| {
                std::mem::size_of::<Definition>()
                    + d.name.len()
                    + d.kind.len()
                    + d.signature.len()
                    + d.doc.len()
                    + d.body.as_ref().map_or(0, String::len)
            })
            .sum();
        let imports: usize = self
            .imports
            .iter()
            .map(|i| {
                std::mem::size_of::<Import>()
                    + i.path.len()
                    + i.names.iter().map(|n| n.len() + 24).sum::<usize>()
            })
            .sum();
        let windows: usize = self
            .windows
            .iter()
            .map(|w| std::mem::size_of::<Window>() + w.tokens.len() * 4)
            .sum();
        std::mem::size_of::<FileEntry>()
            + self.path.as_os_str().len()
            + self.relative.len()
            + definitions
            + imports
            + windows
    }

    pub fn stem(&self) -> Option<&str> {
        self.path.file_stem().and_then(|s| s.to_str())
    }
}

/// Identifier-like tokens of a line (`[A-Za-z_][A-Za-z0-9_]*`), as in the similarity
/// retrievers of RepoCoder and friends.
pub fn identifiers(line: &str) -> impl Iterator<Item = &str> {
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| {
            t.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        })
}

/// FNV-1a: stable across runs and cheap.
pub fn token_hash(token: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in token.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

fn mix(mut h: u32) -> u32 {
    // murmur3's finaliser: a different permutation per seed is enough for MinHash.
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

const SEEDS: [u32; MINHASH] = [
    0x9e37_79b9,
    0x7f4a_7c15,
    0xf39c_c060,
    0x5ced_c834,
    0x2f1b_3c8a,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
    0xcbbb_9d5d,
    0x629a_292a,
    0x9159_015a,
    0x152f_ecd8,
    0x6733_2667,
    0x8eb4_4a87,
];

pub fn minhash(tokens: &[u32]) -> [u32; MINHASH] {
    let mut signature = [u32::MAX; MINHASH];
    for &token in tokens {
        for (slot, seed) in signature.iter_mut().zip(SEEDS) {
            *slot = (*slot).min(mix(token ^ seed));
        }
    }
    signature
}

/// Sorted distinct token hashes of some lines.
pub fn token_set<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<u32> {
    let mut tokens: Vec<u32> = lines
        .into_iter()
        .flat_map(identifiers)
        .map(token_hash)
        .collect();
    tokens.sort_unstable();
    tokens.dedup();
    tokens
}

pub fn jaccard(a: &[u32], b: &[u32]) -> f32 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut shared) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    shared as f32 / (a.len() + b.len() - shared) as f32
}

fn windows(lines: &[&str]) -> Vec<Window> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        let end = (start + WINDOW_LINES).min(lines.len());
        let tokens = token_set(lines[start..end].iter().copied());
        if tokens.len() >= 3 {
            out.push(Window {
                start_line: start as u32,
                end_line: end as u32,
                minhash: minhash(&tokens),
                tokens: tokens.into_boxed_slice(),
            });
        }
        if end == lines.len() {
            break;
        }
        start += WINDOW_STEP;
    }
    out
}

/// Normalised import targets: the path segments an import names, for matching file paths.
/// `crate::store::Item` → [store, Item]; `..models` → [models]; `./util/x` → [util, x].
pub fn import_segments(import: &Import, lang: Option<Lang>) -> Vec<String> {
    let path = import.path.as_str();
    let separators: &[char] = match lang {
        Some(Lang::Rust) => &[':'],
        Some(Lang::Python) | Some(Lang::Java) => &['.'],
        _ => &['/'],
    };
    let path = match lang {
        // `use a::{b, c}`: the common part.
        Some(Lang::Rust) => path.split('{').next().unwrap_or(path),
        _ => path,
    };
    let path = path.trim_end_matches(['.', '/', ':']);
    let path = match lang {
        Some(Lang::C | Lang::Cpp) => path.rsplit_once('.').map_or(path, |(stem, _)| stem),
        Some(Lang::TypeScript | Lang::Tsx | Lang::JavaScript) => {
            let stripped = path.trim_end_matches(".js").trim_end_matches(".ts");
            stripped
        }
        _ => path,
    };
    path.split(separators)
        .filter(|s| {
            !s.is_empty()
                && !matches!(
                    *s,
                    "." | ".." | "crate" | "self" | "super" | "*" | "~" | "@"
                )
        })
        .map(|s| s.trim().to_string())
        .collect()
}

/// Whether `path` (without extension) ends with `segments` (or is their directory: Rust's
/// `mod.rs`, Python's `__init__.py`, JS's `index.*`).
pub fn path_matches(path: &Path, segments: &[String]) -> bool {
    if segments.is_empty() {
        return false;
    }
    let mut parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
    if let Some(last) = parts.last_mut() {
        *last = last.split('.').next().unwrap_or(last);
        if matches!(*last, "mod" | "__init__" | "index") {
            parts.pop();
        }
    }
    parts.len() >= segments.len()
        && parts[parts.len() - segments.len()..]
            .iter()
            .zip(segments)
            .all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaccard_and_minhash_agree_on_identical_sets() {
        let a = token_set(["let total = price * quantity;", "return total"]);
        let b = token_set(["return total", "let total = price * quantity;"]);
        assert_eq!(jaccard(&a, &b), 1.0);
        assert_eq!(minhash(&a), minhash(&b));
        let c = token_set(["fn other_thing() {}"]);
        assert!(jaccard(&a, &c) < 0.2);
    }

    #[test]
    fn import_paths_match_files() {
        let rust = Import {
            path: "crate::store::Item".into(),
            names: vec![],
        };
        let segments = import_segments(&rust, Some(Lang::Rust));
        assert_eq!(segments, ["store", "Item"]);
        assert!(path_matches(Path::new("/w/src/store.rs"), &segments[..1]));
        assert!(path_matches(
            Path::new("/w/src/store/mod.rs"),
            &segments[..1]
        ));
        let ts = Import {
            path: "../lib/util".into(),
            names: vec![],
        };
        assert!(path_matches(
            Path::new("/w/lib/util.ts"),
            &import_segments(&ts, Some(Lang::TypeScript))
        ));
        let c = Import {
            path: "net/socket.h".into(),
            names: vec![],
        };
        assert!(path_matches(
            Path::new("/w/include/net/socket.h"),
            &import_segments(&c, Some(Lang::C))
        ));
    }
}
