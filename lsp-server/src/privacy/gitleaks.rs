//! The gitleaks rule set (MIT; vendored under `lsp-server/rules/gitleaks/`, refreshed by its
//! `update.py`): a few hundred providers' token formats, maintained upstream, embedded at build
//! time. Applied as gitleaks applies them: a rule runs only when one of its keywords occurs in
//! the text (one Aho-Corasick pass, case-insensitive, answers that for every rule at once); a
//! match's secret is its `secretGroup`, else its first non-empty group, else the whole match;
//! it counts when its Shannon entropy is above the rule's `entropy`, when a `generic` rule's
//! secret has a digit, and when no allowlist (the rule's, or the global one) lets it go.
//!
//! Go RE2 patterns compile with the `regex` crate almost unchanged; `\w`, `\d`, `\s` and `\b`
//! are made ASCII as they are in Go (Unicode classes would also be slower). A rule that still
//! does not compile is skipped and logged once (the tests count them: `skipped`).

use std::ops::Range;
use std::sync::{LazyLock, OnceLock};

use aho_corasick::AhoCorasick;
use regex::Regex;
use serde::Deserialize;

const RULES_JSON: &str = include_str!("../../rules/gitleaks/rules.json");

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    allowlist: Allowlist,
    rules: Vec<RuleSpec>,
}

#[derive(Deserialize, Default)]
struct Allowlist {
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    #[serde(default, rename = "regexTarget")]
    regex_target: Option<String>,
    #[serde(default)]
    condition: Option<String>,
}

#[derive(Deserialize)]
struct RuleSpec {
    id: String,
    regex: String,
    #[serde(default, rename = "secretGroup")]
    secret_group: usize,
    #[serde(default)]
    entropy: f64,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    allowlists: Vec<Allowlist>,
}

struct Allow {
    regexes: Vec<Regex>,
    stopwords: Vec<String>,
    target: Target,
    and: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Secret,
    Match,
    Line,
}

pub struct Rule {
    pub id: String,
    pattern: String,
    secret_group: usize,
    entropy: f64,
    generic: bool,
    allow: Vec<Allow>,
    /// Compiled on first use (most rules never run in a session); `None` when it does not compile.
    compiled: OnceLock<Option<Regex>>,
}

pub struct RuleSet {
    pub rules: Vec<Rule>,
    keywords: AhoCorasick,
    /// For each keyword of `keywords`, the rules it wakes.
    keyword_rules: Vec<Vec<usize>>,
    /// Rules without keywords: always run.
    always: Vec<usize>,
    global: Allow,
}

/// Go's ASCII classes and word boundary, written so the `regex` crate reads them the same.
pub fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        if c == '\\' {
            let Some(next) = chars.next() else {
                out.push(c);
                break;
            };
            let replacement = match (in_class, next) {
                (false, 'w') => Some("[[:word:]]"),
                (false, 'd') => Some("[[:digit:]]"),
                (false, 's') => Some(r"[\t\n\f\r ]"),
                (false, 'b') => Some(r"(?-u:\b)"),
                (false, 'B') => Some(r"(?-u:\B)"),
                (true, 'w') => Some("[:word:]"),
                (true, 'd') => Some("[:digit:]"),
                (true, 's') => Some(r"\t\n\f\r "),
                _ => None,
            };
            match replacement {
                Some(r) => out.push_str(r),
                None => {
                    out.push('\\');
                    out.push(next);
                }
            }
            class_start = false;
            continue;
        }
        if in_class {
            if c == ']' && !class_start {
                in_class = false;
            }
            class_start = class_start && c == '^';
            if c == '[' && chars.peek() == Some(&':') {
                // A POSIX class inside a class: copy it through to its `:]`.
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
                continue;
            }
        } else if c == '[' {
            in_class = true;
            class_start = true;
        }
        out.push(c);
    }
    out
}

fn compile(pattern: &str) -> Option<Regex> {
    regex::RegexBuilder::new(&translate(pattern))
        .size_limit(32 << 20)
        .dfa_size_limit(8 << 20)
        .build()
        .ok()
}

fn allow(spec: &Allowlist) -> Allow {
    Allow {
        regexes: spec.regexes.iter().filter_map(|r| compile(r)).collect(),
        stopwords: spec
            .stopwords
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        target: match spec.regex_target.as_deref() {
            Some("match") => Target::Match,
            Some("line") => Target::Line,
            _ => Target::Secret,
        },
        and: spec.condition.as_deref() == Some("AND"),
    }
}

impl Allow {
    /// Whether this allowlist lets the finding go.
    fn allows(&self, secret: &str, matched: &str, line: &str) -> bool {
        let target = match self.target {
            Target::Secret => secret,
            Target::Match => matched,
            Target::Line => line,
        };
        let by_regex =
            (!self.regexes.is_empty()).then(|| self.regexes.iter().any(|r| r.is_match(target)));
        let lower = secret.to_ascii_lowercase();
        let by_stopword = (!self.stopwords.is_empty())
            .then(|| self.stopwords.iter().any(|s| lower.contains(s.as_str())));
        let checks: Vec<bool> = [by_regex, by_stopword].into_iter().flatten().collect();
        if checks.is_empty() {
            return false;
        }
        if self.and {
            checks.iter().all(|c| *c)
        } else {
            checks.iter().any(|c| *c)
        }
    }
}

pub static RULES: LazyLock<RuleSet> = LazyLock::new(|| {
    let file: File = serde_json::from_str(RULES_JSON).expect("rules/gitleaks/rules.json");
    let mut keyword_index: Vec<String> = Vec::new();
    let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
    let mut always = Vec::new();
    let mut rules = Vec::new();
    for (at, spec) in file.rules.into_iter().enumerate() {
        if spec.keywords.is_empty() {
            always.push(at);
        }
        for keyword in &spec.keywords {
            let keyword = keyword.to_ascii_lowercase();
            match keyword_index.iter().position(|k| *k == keyword) {
                Some(i) => keyword_rules[i].push(at),
                None => {
                    keyword_index.push(keyword);
                    keyword_rules.push(vec![at]);
                }
            }
        }
        rules.push(Rule {
            generic: spec.id.starts_with("generic"),
            id: spec.id,
            pattern: spec.regex,
            secret_group: spec.secret_group,
            entropy: spec.entropy,
            allow: spec.allowlists.iter().map(allow).collect(),
            compiled: OnceLock::new(),
        });
    }
    let keywords = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(&keyword_index)
        .expect("keywords");
    RuleSet {
        rules,
        keywords,
        keyword_rules,
        always,
        global: allow(&file.allowlist),
    }
});

impl Rule {
    pub fn regex(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| {
                let compiled = compile(&self.pattern);
                if compiled.is_none() {
                    // Once per rule (the result is kept): the rule is skipped from now on.
                    tracing::warn!("gitleaks rule {} does not compile: skipped", self.id);
                }
                compiled
            })
            .as_ref()
    }
}

impl RuleSet {
    /// How many rules do not compile with the `regex` crate (and are skipped).
    #[cfg(test)]
    fn skipped(&self) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|r| r.regex().is_none())
            .map(|r| r.id.as_str())
            .collect()
    }

    /// The rules whose keywords occur in `text`.
    fn woken(&self, text: &str) -> Vec<usize> {
        let mut woken = vec![false; self.rules.len()];
        for &at in &self.always {
            woken[at] = true;
        }
        for found in self.keywords.find_overlapping_iter(text) {
            for &at in &self.keyword_rules[found.pattern().as_usize()] {
                woken[at] = true;
            }
        }
        woken
            .iter()
            .enumerate()
            .filter(|(_, w)| **w)
            .map(|(at, _)| at)
            .collect()
    }

    /// Byte ranges of the secrets gitleaks finds in `text` (not merged).
    pub fn spans(&self, text: &str, out: &mut Vec<Range<usize>>) {
        for at in self.woken(text) {
            let rule = &self.rules[at];
            let Some(regex) = rule.regex() else {
                continue;
            };
            for captures in regex.captures_iter(text) {
                let Some(whole) = captures.get(0) else {
                    continue;
                };
                let secret = if rule.secret_group > 0 {
                    captures.get(rule.secret_group)
                } else {
                    (1..captures.len())
                        .filter_map(|g| captures.get(g))
                        .find(|m| !m.as_str().is_empty())
                }
                .unwrap_or(whole);
                let value = secret.as_str();
                if value.is_empty() {
                    continue;
                }
                if rule.entropy > 0.0 && super::rules::entropy(value) <= rule.entropy {
                    continue;
                }
                if rule.generic && !value.bytes().any(|b| b.is_ascii_digit()) {
                    continue;
                }
                let line_start = text[..whole.start()].rfind('\n').map_or(0, |i| i + 1);
                let line_end = text[whole.end()..]
                    .find('\n')
                    .map_or(text.len(), |i| whole.end() + i);
                let line = &text[line_start..line_end];
                if self.global.allows(value, whole.as_str(), line)
                    || rule
                        .allow
                        .iter()
                        .any(|a| a.allows(value, whole.as_str(), line))
                {
                    continue;
                }
                if rule.generic && !generic_value_is_credential(value) {
                    continue;
                }
                out.push(secret.range());
            }
        }
    }
}

/// gitleaks' generic rule matches any `name = value` whose name mentions key, token, auth, ...;
/// in code most such values are identifiers and paths, which its entropy test alone lets
/// through (`tokenizer_config.json`, `self.access_token_url`). A value is kept only when it
/// looks random too (`rules::looks_random`): names like `password` get their own rows, with
/// value checks of their own.
fn generic_value_is_credential(value: &str) -> bool {
    super::rules::looks_random(value.trim_end_matches(['=', '.']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_classes_become_ascii() {
        assert_eq!(
            translate(r"\b[\w.-]{3}\s"),
            r"(?-u:\b)[[:word:].-]{3}[\t\n\f\r ]"
        );
        assert_eq!(translate(r"[^\d]\d"), r"[^[:digit:]][[:digit:]]");
        assert_eq!(translate(r"[]a]\w"), r"[]a][[:word:]]");
        assert_eq!(translate(r"[[:alpha:]]\w"), r"[[:alpha:]][[:word:]]");
    }

    #[test]
    fn almost_every_rule_compiles() {
        let skipped = RULES.skipped();
        eprintln!(
            "gitleaks: {} rules, {} skipped: {skipped:?}",
            RULES.rules.len(),
            skipped.len()
        );
        assert!(RULES.rules.len() > 200);
        assert!(skipped.len() <= 5, "{skipped:?}");
    }

    #[test]
    fn provider_tokens_are_found() {
        let mut spans = Vec::new();
        let text = "const warehouse = \"dapi0123456789abcdef0123456789abcdef\";\n";
        RULES.spans(text, &mut spans);
        assert!(
            spans
                .iter()
                .any(|s| &text[s.clone()] == "dapi0123456789abcdef0123456789abcdef"),
            "{spans:?}"
        );
        let mut none = Vec::new();
        RULES.spans("let token = next_token(&mut lexer);\n", &mut none);
        assert!(none.is_empty(), "{none:?}");
    }
}
