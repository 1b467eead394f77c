//! Fitting snippets into the retrieved share of the budget, and their order in the prompt.

use super::{Snippet, SourceKind};
use crate::tokens;

/// Tokens a snippet costs in the prompt: its text plus the file header around it.
pub fn cost(snippet: &Snippet) -> usize {
    tokens::count_cached(&snippet.text) + snippet.path.len().div_ceil(4) + 4
}

/// Overlapping verbatim windows of one file become one; a definition inside a verbatim window
/// of its file is dropped (the window shows it). Scores are kept as the maximum.
pub fn merge(mut snippets: Vec<Snippet>) -> Vec<Snippet> {
    // A total order (kind and text break ties): the sources find candidates in index order,
    // which differs between processes, and which of two equal-range snippets survives must not.
    snippets.sort_by(|a, b| {
        (a.path.as_str(), a.start_line, a.end_line, a.kind)
            .cmp(&(b.path.as_str(), b.start_line, b.end_line, b.kind))
            .then_with(|| b.score.total_cmp(&a.score))
            .then_with(|| a.text.cmp(&b.text))
    });
    let mut out: Vec<Snippet> = Vec::with_capacity(snippets.len());
    for snippet in snippets {
        if let Some(last) = out.last_mut() {
            if last.path == snippet.path
                && last.verbatim
                && snippet.verbatim
                && snippet.start_line <= last.end_line
            {
                if snippet.end_line > last.end_line {
                    let skip = last.end_line - snippet.start_line;
                    let tail: Vec<&str> = snippet.text.lines().skip(skip).collect();
                    if !last.text.ends_with('\n') {
                        last.text.push('\n');
                    }
                    last.text.push_str(&tail.join("\n"));
                    last.end_line = snippet.end_line;
                }
                last.score = last.score.max(snippet.score);
                last.kind = last.kind.max(snippet.kind);
                continue;
            }
        }
        out.push(snippet);
    }
    // A definition inside a verbatim window of its file is shown by the window, which then
    // ranks and sits as the definition would.
    let mut keep = vec![true; out.len()];
    for i in 0..out.len() {
        if out[i].verbatim {
            continue;
        }
        let holder = (0..out.len()).find(|&j| {
            out[j].verbatim
                && out[j].path == out[i].path
                && out[j].start_line <= out[i].start_line
                && out[i].end_line <= out[j].end_line
        });
        if let Some(j) = holder {
            keep[i] = false;
            let (kind, score) = (out[i].kind, out[i].score);
            out[j].kind = out[j].kind.max(kind);
            out[j].score = out[j].score.max(score);
        }
    }
    let mut flags = keep.into_iter();
    out.retain(|_| flags.next().unwrap_or(true));
    // Identical texts (the same definition found twice).
    let mut seen = std::collections::HashSet::new();
    out.retain(|s| seen.insert((s.path.clone(), s.text.clone())));
    out
}

/// The least score a snippet needs in `full` mode: another file's lines earn their tokens only
/// where they are likely to help — a definition of an identifier used near the cursor (in an
/// imported file: within about 15 lines of it; elsewhere in the folder: within about 8), a
/// window whose identifiers overlap the cursor's by Jaccard 0.39 or more, an edit made nearby
/// just now. Below it they were noise for the default model: on the evaluation's dev half
/// (tests/eval/RESULTS.md) keeping everything that fitted 40% of a 1,024-token budget scored
/// 25.6% exact match (cross-file 30.0%) against 28.9% (40.0%) with this floor, which also took
/// out the signature skeletons of imported files (score 0.3) that every prompt used to carry.
pub const MIN_SCORE: f32 = 0.35;

/// The best-scoring snippets of at least `min_score` that fit in `budget` tokens: lowest scores
/// are dropped first, and a snippet too large for what is left is skipped for smaller ones.
/// Then, where `fill_similar` (`settings::SimilarWindows::Fill`, an ablation), windows of
/// similar code below the floor fill what is left, most similar first: the naive recipe of
/// llama.vim and of the evaluation's `naive-full` (windows by Jaccard rank until the budget is
/// spent). On the dev half it lost to the floor alone (30 cross-file holes at 2,048 tokens:
/// 36.7% exact against 50.0%): windows below the floor are noise to the default model.
pub fn choose(
    candidates: Vec<Snippet>,
    budget: usize,
    min_score: f32,
    fill_similar: bool,
) -> Vec<Snippet> {
    let mut candidates = merge(candidates);
    // Ties broken by a fixed key, so equal scores never swap between keystrokes.
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| (a.path.as_str(), a.start_line).cmp(&(b.path.as_str(), b.start_line)))
    });
    let mut left = budget;
    let mut chosen = Vec::new();
    let mut rest = Vec::new();
    for snippet in candidates {
        if snippet.score <= 0.0 {
            continue;
        }
        if snippet.score < min_score {
            if fill_similar && snippet.kind == SourceKind::Similar {
                rest.push(snippet);
            }
            continue;
        }
        let cost = cost(&snippet);
        if cost <= left {
            left -= cost;
            chosen.push(snippet);
        }
    }
    for snippet in rest {
        let cost = cost(&snippet);
        if cost <= left {
            left -= cost;
            chosen.push(snippet);
        }
    }
    chosen
}

/// Prompt order: by kind (the most useful kind nearest the cursor); similar windows least
/// similar first, so the most similar sits nearest the current file (as in llama.vim's ring
/// and the `naive-full` recipe); the other kinds by path and line. A region's snippets are
/// chosen once (`SnippetMemo`), so scores that jitter between keystrokes cannot reorder it.
pub fn order(mut chosen: Vec<Snippet>, similar_by_score: bool) -> Vec<Snippet> {
    chosen.sort_by(|a, b| {
        a.kind
            .cmp(&b.kind)
            .then_with(|| {
                if similar_by_score && a.kind == SourceKind::Similar {
                    a.score.total_cmp(&b.score)
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .then_with(|| (a.path.as_str(), a.start_line).cmp(&(b.path.as_str(), b.start_line)))
    });
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(path: &str, start: usize, lines: &[&str], score: f32) -> Snippet {
        Snippet {
            path: path.into(),
            start_line: start,
            end_line: start + lines.len(),
            text: lines.join("\n"),
            score,
            kind: SourceKind::Similar,
            verbatim: true,
        }
    }

    #[test]
    fn overlapping_windows_merge_and_budget_drops_lowest() {
        let merged = merge(vec![
            window("a.rs", 0, &["l0", "l1", "l2"], 0.5),
            window("a.rs", 2, &["l2", "l3"], 0.9),
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].text, "l0\nl1\nl2\nl3");
        assert_eq!(merged[0].score, 0.9);
        let big = window("b.rs", 0, &["x"; 200], 0.1);
        let small = window("c.rs", 0, &["y"], 0.8);
        let chosen = choose(vec![big, small], 50, f32::MIN_POSITIVE, false);
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].path, "c.rs");
    }
}
