//! Stop strings matched across token boundaries.
//!
//! A stop string such as `"\n\n"` or `"}\n"` may arrive split over several tokens, so text that
//! could still be the start of a stop string is held back until the next token decides it.

#[derive(Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// Text that can safely be sent now (may be empty).
    Continue(String),
    /// A stop string was found: send this text (everything before the stop string) and end.
    Stopped(String),
}

pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: String::new(),
        }
    }

    pub fn push(&mut self, delta: &str) -> StopOutcome {
        self.pending.push_str(delta);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            let before = self.pending[..at].to_string();
            self.pending.clear();
            return StopOutcome::Stopped(before);
        }
        let held = self.longest_partial_match();
        let emit_to = self.pending.len() - held;
        let ready = self.pending[..emit_to].to_string();
        self.pending.drain(..emit_to);
        StopOutcome::Continue(ready)
    }

    /// Whatever is still held back, once generation ended for another reason.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Length in bytes of the longest tail of `pending` that is a proper prefix of a stop string.
    fn longest_partial_match(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            for (k, _) in stop.char_indices().skip(1) {
                if k > best && self.pending.ends_with(&stop[..k]) {
                    best = k;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], deltas: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for d in deltas {
            match m.push(d) {
                StopOutcome::Continue(t) => out.push_str(&t),
                StopOutcome::Stopped(t) => {
                    out.push_str(&t);
                    return (out, true);
                }
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn stop_split_across_tokens() {
        assert_eq!(
            run(&["\n\n"], &["a + b", "\n", "\n}", "x"]),
            ("a + b".into(), true)
        );
        assert_eq!(run(&["END"], &["fooE", "N", "Dbar"]), ("foo".into(), true));
    }

    #[test]
    fn partial_match_that_does_not_complete_is_released() {
        assert_eq!(run(&["END"], &["fooE", "N", "x"]), ("fooENx".into(), false));
        assert_eq!(run(&["END"], &["fooEN"]), ("fooEN".into(), false));
    }

    #[test]
    fn earliest_stop_wins_and_multibyte_is_safe() {
        assert_eq!(run(&["b", "ab"], &["xxab"]), ("xx".into(), true));
        assert_eq!(
            run(&["é!"], &["caf", "é", "?", "é", "!"]),
            ("café?".into(), true)
        );
    }
}
