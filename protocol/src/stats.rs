//! `POST /v1/ghostline/suggestion-stats`: a team's acceptance counters, sent by ghostline-lsp
//! when its user turned `shareStats` on. Counts per language only: no text, no path, no model;
//! the server refuses any other field (and checks the counts' bounds itself).

use serde::{Deserialize, Serialize};

pub const PATH: &str = "/v1/ghostline/suggestion-stats";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestionStats {
    pub counts: Vec<LanguageCounts>,
}

/// Counters of one language since the last send.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageCounts {
    pub language: String,
    pub shown: u64,
    pub accepted: u64,
    pub partial: u64,
    pub latency_ms_sum: u64,
    pub latency_count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counts_are_all_there_is() {
        let stats = SuggestionStats {
            counts: vec![LanguageCounts {
                language: "rust".into(),
                shown: 3,
                accepted: 1,
                partial: 1,
                latency_ms_sum: 420,
                latency_count: 3,
            }],
        };
        let text = serde_json::to_string(&stats).unwrap();
        assert_eq!(
            text,
            r#"{"counts":[{"language":"rust","shown":3,"accepted":1,"partial":1,"latency_ms_sum":420,"latency_count":3}]}"#
        );
        assert_eq!(
            serde_json::from_str::<SuggestionStats>(&text).unwrap(),
            stats
        );
        let with_text = text.replace(r#""latency_count":3"#, r#""latency_count":3,"text":"x""#);
        assert!(serde_json::from_str::<SuggestionStats>(&with_text).is_err());
        assert!(
            serde_json::from_str::<SuggestionStats>(r#"{"counts":[{"language":"rust"}]}"#).is_err()
        );
    }
}
