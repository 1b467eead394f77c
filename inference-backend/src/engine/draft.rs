//! Prompt-lookup drafting: guesses the next few tokens of a sequence by finding where its last
//! tokens occurred before (in the prompt or in what it generated) and copying what followed
//! there. Code repeats itself (names, call shapes, whole lines), so the guess is often right;
//! the model then checks all guessed tokens in one forward pass (see `scheduler.rs`), and every
//! right one is a decode step saved. Greedy output is unchanged: a guess is kept only where it
//! equals the model's own choice.
//!
//! How long a guess is depends on how long a match backs it: a 4-token match guesses 4 tokens,
//! a 3-token match 2, a 2-token match 1. Verifying k tokens costs more than one decode step
//! (on 2 CPU cores, for the default model: 1 → 22 ms, 2 → 29, 3 → 37, 5 → 52), so short,
//! weakly backed guesses must be cheap; replaying greedy completions of the benchmark prompts
//! with this rule gave ~1.37x the decode rate, and with a fixed length of 2 ~1.29x.

/// The longest match looked for, and the draft length each match length earns.
const MAX_MATCH: usize = 4;
const MIN_MATCH: usize = 2;

fn draft_len(matched: usize) -> usize {
    match matched {
        4.. => 4,
        3 => 2,
        _ => 1,
    }
}

/// Tokens that followed the most recent earlier occurrence of the longest suffix (4 down to 2
/// tokens) of `context`, at most `limit` of them; empty when there is no such occurrence.
pub fn prompt_lookup(context: &[u32], limit: usize) -> &[u32] {
    if limit == 0 {
        return &[];
    }
    for n in (MIN_MATCH..=MAX_MATCH).rev() {
        if context.len() <= n {
            continue;
        }
        let suffix = &context[context.len() - n..];
        // Latest start first: the most recent occurrence is the likeliest to continue the same
        // way. `start + n < len` keeps at least one token after the match and excludes the
        // suffix itself.
        for start in (0..context.len() - n).rev() {
            if &context[start..start + n] == suffix {
                let from = start + n;
                let to = (from + draft_len(n).min(limit)).min(context.len());
                return &context[from..to];
            }
        }
    }
    &[]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_what_followed_the_latest_longest_match() {
        // "a b c d X Y Z W ... a b c d" -> 4-token match, 4 tokens guessed.
        let ctx = [1, 2, 3, 4, 10, 11, 12, 13, 14, 9, 1, 2, 3, 4];
        assert_eq!(prompt_lookup(&ctx, 8), &[10, 11, 12, 13]);
        assert_eq!(prompt_lookup(&ctx, 2), &[10, 11], "limit caps the draft");
        assert_eq!(prompt_lookup(&ctx, 0), &[] as &[u32]);
        // Two occurrences: the later one wins.
        let ctx = [7, 8, 1, 7, 8, 2, 5, 7, 8];
        assert_eq!(
            prompt_lookup(&ctx, 8),
            &[2],
            "2-token match guesses 1 token"
        );
    }

    #[test]
    fn shorter_matches_earn_shorter_drafts() {
        let ctx = [5, 6, 7, 20, 21, 22, 9, 5, 6, 7];
        assert_eq!(prompt_lookup(&ctx, 8), &[20, 21]);
        // No repeated pair: no draft, and a single repeated token is not enough.
        assert_eq!(prompt_lookup(&[1, 2, 3, 1], 8), &[] as &[u32]);
        assert_eq!(prompt_lookup(&[], 8), &[] as &[u32]);
        assert_eq!(prompt_lookup(&[3, 3], 8), &[] as &[u32]);
    }

    #[test]
    fn a_draft_may_run_into_the_suffix_but_not_past_the_end() {
        // Repeating token: the match at start 0 is followed by the rest of the context.
        assert_eq!(prompt_lookup(&[4, 4, 4, 4, 4], 8), &[4]);
        assert_eq!(prompt_lookup(&[1, 2, 1, 2, 1, 2], 8), &[1, 2]);
    }
}
