//! Next-token choice: greedy at temperature 0, otherwise temperature + nucleus (top-p) sampling
//! from a seeded generator so that a request with a seed is reproducible.

use rand::{rngs::StdRng, Rng, SeedableRng};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_p: f32,
    pub seed: Option<u64>,
}

pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    /// Reused between steps: (probability, token id) of the candidates.
    candidates: Vec<(f32, u32)>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = match params.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            params,
            rng,
            candidates: Vec::new(),
        }
    }

    /// Greedy: the token is a function of the logits alone (so a drafted token can be checked
    /// by comparing it with the argmax).
    pub fn is_greedy(&self) -> bool {
        self.params.temperature <= 0.0
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.is_greedy() {
            return argmax(logits);
        }
        let inv_t = 1.0 / self.params.temperature;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // Tokens more than ~30 nats below the best carry < 1e-13 of the mass: skipping them keeps
        // the sort short without changing what can be drawn in practice.
        let floor = max - 30.0 * self.params.temperature;
        self.candidates.clear();
        let mut total = 0.0f32;
        for (id, &l) in logits.iter().enumerate() {
            if l >= floor {
                let p = ((l - max) * inv_t).exp();
                total += p;
                self.candidates.push((p, id as u32));
            }
        }
        self.candidates.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let nucleus_mass = self.params.top_p.clamp(f32::MIN_POSITIVE, 1.0) * total;
        let mut kept = 0;
        let mut kept_mass = 0.0;
        for &(p, _) in &self.candidates {
            kept += 1;
            kept_mass += p;
            if kept_mass >= nucleus_mass {
                break;
            }
        }
        let mut draw = self.rng.random::<f32>() * kept_mass;
        for &(p, id) in &self.candidates[..kept] {
            if draw < p {
                return id;
            }
            draw -= p;
        }
        self.candidates[kept - 1].1
    }
}

/// Token healing's other half (the first is `ModelTokenizer::heal_tail`): the generation must
/// start with the text taken off the prompt's end, so the first tokens are chosen among those
/// that continue it — `retu` taken off lets the model pick ` return` whole — and that text,
/// which the client already has, is not sent back.
#[derive(Debug, Default)]
pub struct Healing {
    /// Text still to be produced.
    rest: String,
    /// Bytes of generated text still to be held back.
    hold: usize,
}

impl Healing {
    pub fn new(text: String) -> Self {
        Self {
            hold: text.len(),
            rest: text,
        }
    }

    pub fn active(&self) -> bool {
        !self.rest.is_empty()
    }

    /// Rules out every token that neither starts with the rest nor is a start of it.
    pub fn mask(&self, logits: &mut [f32], texts: &[String]) {
        for (id, logit) in logits.iter_mut().enumerate() {
            let fits = texts.get(id).is_some_and(|t| {
                !t.is_empty() && (t.starts_with(&self.rest) || self.rest.starts_with(t.as_str()))
            });
            if !fits {
                *logit = f32::NEG_INFINITY;
            }
        }
    }

    /// The token whose text is `text` was chosen.
    pub fn advance(&mut self, text: &str) {
        if text.starts_with(&self.rest) {
            self.rest.clear();
        } else {
            self.rest.drain(..text.len().min(self.rest.len()));
        }
    }

    /// A generated text piece without what the prompt already had.
    pub fn strip(&mut self, delta: String) -> String {
        if self.hold == 0 {
            return delta;
        }
        let mut cut = self.hold.min(delta.len());
        while !delta.is_char_boundary(cut) {
            cut += 1;
        }
        self.hold -= cut.min(self.hold);
        delta[cut..].to_string()
    }
}

pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_max() {
        let mut s = Sampler::new(SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            seed: None,
        });
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.9]), 1);
    }

    #[test]
    fn seeded_sampling_repeats_and_top_p_restricts() {
        let logits: Vec<f32> = (0..1000).map(|i| (i % 17) as f32 * 0.3).collect();
        let params = SamplingParams {
            temperature: 0.8,
            top_p: 0.9,
            seed: Some(7),
        };
        let draw = |p| {
            let mut s = Sampler::new(p);
            (0..50).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(params), draw(params));
        assert_ne!(
            draw(params),
            draw(SamplingParams {
                seed: Some(8),
                ..params
            })
        );
        // A tiny nucleus keeps only the best tokens (value 16 * 0.3).
        let mut s = Sampler::new(SamplingParams {
            temperature: 1.0,
            top_p: 1e-6,
            seed: Some(1),
        });
        for _ in 0..20 {
            assert_eq!(s.sample(&logits) % 17, 16);
        }
    }

    #[test]
    fn healing_allows_only_tokens_that_continue_the_taken_text_and_holds_it_back() {
        let texts: Vec<String> = ["", " ret", " return", "urn", "rn", " re", "x", " r"]
            .iter()
            .map(|t| t.to_string())
            .collect();
        let mut healing = Healing::new(" retu".into());
        let mut logits = vec![1.0; texts.len()];
        healing.mask(&mut logits, &texts);
        let allowed: Vec<&str> = (0..texts.len())
            .filter(|&i| logits[i].is_finite())
            .map(|i| texts[i].as_str())
            .collect();
        assert_eq!(allowed, [" ret", " return", " re", " r"]);
        // ` ret` leaves `u` to produce.
        healing.advance(" ret");
        assert!(healing.active());
        let mut logits = vec![1.0; texts.len()];
        healing.mask(&mut logits, &texts);
        assert!(
            logits[3].is_finite() && !logits[4].is_finite(),
            "{logits:?}"
        );
        healing.advance("urn");
        assert!(!healing.active());
        // What the client sees: the generated text less the five bytes it already has.
        assert_eq!(healing.strip(" ret".into()), "");
        assert_eq!(healing.strip("urn a".into()), "rn a");
        assert_eq!(healing.strip(" + b".into()), " + b");
    }
}
