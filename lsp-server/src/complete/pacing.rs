//! How large a prompt the backend can answer within the latency target.
//!
//! The same settings serve a GPU, which prefills 2,000 tokens in milliseconds, and a laptop CPU,
//! which needs 7–15 s for them. So the prompt's budget is chosen per request from a ladder of
//! tiers (256, 512, 1,024, … up to `contextTokens`): the largest tier whose estimated time — the
//! prompt tokens the backend does not hold in its prefix cache, at its measured prefill speed,
//! plus the expected completion at its decode speed — fits `latencyTargetMs`. What the backend
//! holds is estimated from what was sent lately: a region of a file (the same tier, the cursor
//! a few lines from where it was) whose prompt was computed before costs only what was typed on
//! the cursor's line (which the prompt puts last), or, on another line of the region, that line
//! and the suffix. After a suggestion, the next tier's stable part (the whole prompt but the
//! cursor's line) is prefilled in the background (`max_tokens: 0`), so the prompt grows as the
//! cache warms — or straight the whole budget's, when its prompt as built (a file shorter than
//! the budget) is held by the time an ask after a rest comes (`fits_rest`); a keystroke cancels
//! that warm-up, and the backend keeps what it computed.
//!
//! Speeds come from the backend: ghostline-serve reports them in `/v1/models` and every answer
//! carries `usage` and `timings`. A backend that reports neither is taken to be fast (the
//! largest tier), until its timings say otherwise.

use std::sync::Mutex;
use std::time::Instant;

use crate::backend::Usage;
use crate::context::window::{suffix_budget, ANCHOR_LINES};
use crate::context::TOKENIZER_MARGIN;

/// The smallest prompt budget: what a cold 2-core CPU prefills in about 0.8 s. Measured with
/// the typing benchmark (48 pauses, exact = the real rest of the line): 128 → p50 259 ms, 21%
/// exact; 192 → 295 ms, 27%; 256 → 572 ms, 29%. Short is not tiny: 128 lost a quarter of the
/// exact suggestions for 40 ms of median.
pub const MIN_TIER: usize = 192;

/// Completion tokens expected when estimating the decode time.
const SINGLE_LINE_TOKENS: f64 = 12.0;
const MULTI_LINE_TOKENS: f64 = 40.0;
/// Tokens of the cursor's line before the cursor, when not measured yet.
const CURSOR_LINE_TOKENS: usize = 16;
/// The FIM markers after the prefix, and the tokens a change at the line's end re-tokenizes.
const MARKER_TOKENS: usize = 6;
/// Regions remembered.
const REGIONS: usize = 16;
/// Weight of a new measurement in the speed averages.
const RATE_WEIGHT: f64 = 0.3;

/// The budgets tried, largest first: `MIN_TIER` and its double, then 1,024 and its doubles
/// below `max`, and `max`. 1,024 is where the other files' context gets its whole share
/// (`context::Budget`): a tier between 384 and it would cost a rest's warm-up nearly as much
/// and carry half the cross-file context.
pub fn tiers(max: usize) -> Vec<usize> {
    let mut tiers = vec![max];
    for tier in [MIN_TIER, 2 * MIN_TIER] {
        if tier < max {
            tiers.push(tier);
        }
    }
    let mut tier = FULL_CONTEXT_TIER;
    while tier < max {
        tiers.push(tier);
        tier *= 2;
    }
    tiers.sort_unstable_by(|a, b| b.cmp(a));
    tiers.dedup();
    tiers
}

/// The first tier whose prompt carries the whole share of other files' context.
const FULL_CONTEXT_TIER: usize = 1024;

/// How long a person's rest is taken to be, for choosing what to warm while it lasts: after a
/// suggestion shows, reading it (or deciding what to type) takes a few seconds. The warm-up
/// after an answer aims for the largest tier the backend prefills in that time plus what an ask
/// after the rest may still compute (`REST_PATIENCE`), so that ask gets it; a shorter rest
/// leaves it part-done, and the backend keeps that part.
const IDLE_PAUSE_MS: f64 = 3000.0;

/// An ask at the spot of the suggestion on screen, with nothing typed since, may take this many
/// times the latency target when that buys a larger prompt: the person is resting and already
/// has a suggestion to read meanwhile (`complete::suggest`). Four (3.2 s at the default target,
/// under the default 5 s timeout): on a 2-core CPU (about 300 prompt tokens/s) the rest and
/// this much of the ask cover a whole 2,048-token prompt, where twice the target left the
/// largest half of them out.
pub const REST_PATIENCE: u64 = 4;

/// How far past its patience the ask after a rest still takes a tier whose warm-up was planned
/// to be held by then (`fits_rest`): that plan counts the rest from the answer, the ask comes a
/// few milliseconds early, and the speed it was planned at moves. Without it the largest warm-ups,
/// planned near the edge, were missed by a hair and the rest got the first answer again.
const REST_SLACK_MS: f64 = 500.0;

/// A prompt sent for a region of a file, and how much of its stable part the backend is
/// believed to hold.
#[derive(Clone, Debug)]
struct Region {
    uri: String,
    tier: usize,
    cursor_line: usize,
    window_start: usize,
    stable_tokens: usize,
    /// What each keystroke recomputes: the cursor line (and markers) and the suffix, whose
    /// length the block's end set (`false`) or the tier's cap (`true`).
    line_tokens: usize,
    suffix_tokens: usize,
    suffix_capped: bool,
    /// Whether the prompt put the typed line last (see `Sent::line_last`).
    line_last: bool,
    /// Of `stable_tokens`, held by the backend once the request that carries it is answered
    /// (or, when it was cancelled, as far as it got).
    held_tokens: f64,
    /// While the request is in flight: when it was sent and what was held before it.
    in_flight: Option<(Instant, f64)>,
}

impl Region {
    /// Its prompt is being computed, or (nearly all of) its stable part is held: warming it
    /// again would only repeat the work.
    fn held_or_warming(&self) -> bool {
        self.in_flight.is_some() || self.held_tokens >= self.stable_tokens as f64 * 0.95
    }
}

#[derive(Debug)]
struct State {
    /// Prompt tokens per second the backend computes; 0 until known.
    prefill: f64,
    /// Tokens per second it generates; 0 until known.
    decode: f64,
    regions: Vec<Region>,
}

/// What one request was sent for (see `Pacing::sent`).
#[derive(Clone, Debug)]
pub struct Sent {
    pub uri: String,
    pub tier: usize,
    pub cursor_line: usize,
    pub window_start: usize,
    /// Tokens (cl100k) of the prompt's stable part: all of it but the typed line, which comes
    /// last; 0 where the line stays in the prefix.
    pub stable_tokens: usize,
    /// Tokens of the cursor's line before the cursor, and of the suffix (see `Region`).
    pub line_tokens: usize,
    pub suffix_tokens: usize,
    pub suffix_capped: bool,
    /// The typed line came last (after the middle marker); else it was at the end of the
    /// prefix, and a keystroke recomputes the line and the suffix after it.
    pub line_last: bool,
}

pub struct Pacing {
    state: Mutex<State>,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                prefill: 0.0,
                decode: 0.0,
                regions: Vec::new(),
            }),
        }
    }
}

fn blend(old: f64, sample: f64) -> f64 {
    if old > 0.0 {
        old + RATE_WEIGHT * (sample - old)
    } else {
        sample
    }
}

/// A prompt asked for: where (a line of a document), at most how large (`max` tokens), whether
/// multi-line (its decoding leaves less time for the prompt), and within what latency.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    pub uri: &'a str,
    pub cursor_line: usize,
    pub max: usize,
    pub multiline: bool,
    pub target_ms: u64,
}

impl Pacing {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Speeds the backend reported about itself (`/v1/models`), used until its answers say more.
    pub fn reported(&self, prefill: Option<f64>, decode: Option<f64>) {
        let mut state = self.state();
        if state.prefill <= 0.0 {
            state.prefill = prefill.filter(|r| r.is_finite() && *r > 0.0).unwrap_or(0.0);
        }
        if state.decode <= 0.0 {
            state.decode = decode.filter(|r| r.is_finite() && *r > 0.0).unwrap_or(0.0);
        }
    }

    /// The budget for `ask`: at most `ask.max` tokens.
    pub fn choose(&self, ask: Ask<'_>) -> usize {
        let Ask {
            uri,
            cursor_line,
            max,
            multiline,
            target_ms,
        } = ask;
        let tiers = tiers(max);
        let Some((state, allowed)) = self.with_known_speed(multiline, target_ms) else {
            return tiers[0];
        };
        let smallest = *tiers.last().unwrap_or(&max);
        tiers
            .into_iter()
            .find(|&tier| {
                1e3 * state.uncached_tokens(uri, cursor_line, tier) / state.prefill <= allowed
            })
            .unwrap_or(smallest)
    }

    /// The state and the prompt's allowance in ms, once the backend's speed is known.
    fn with_known_speed(
        &self,
        multiline: bool,
        target_ms: u64,
    ) -> Option<(std::sync::MutexGuard<'_, State>, f64)> {
        let state = self.state();
        let allowed = state.prefill_allowance_ms(multiline, target_ms);
        (state.prefill > 0.0).then_some((state, allowed))
    }

    /// For an ask where a suggestion from a prompt of `tier` is on screen and nothing was typed
    /// since (a person resting there): a larger tier whose prompt the backend holds, or is
    /// warming, here, and can finish within `target_ms` (`REST_PATIENCE` times the latency
    /// target, and `REST_SLACK_MS`). Only warmed tiers: a cold larger prompt would cost the
    /// backend what the warm-up is computing, and an editor asking again at once would cancel
    /// the warm-up for it.
    pub fn rest_tier(&self, ask: Ask<'_>, tier: usize) -> Option<usize> {
        let Ask {
            uri,
            cursor_line,
            max,
            multiline,
            target_ms,
        } = ask;
        let (state, allowed) = self.with_known_speed(multiline, target_ms)?;
        tiers(max).into_iter().filter(|&t| t > tier).find(|&t| {
            state.region(uri, cursor_line, t).is_some()
                && 1e3 * state.uncached_tokens(uri, cursor_line, t) / state.prefill
                    <= allowed + REST_SLACK_MS
        })
    }

    /// The tier above `tier` (at most `ask.max`) worth a background warm-up: once its stable part is
    /// held, a keystroke on this line would be answered within the target, and it is not held
    /// yet. Of those, the largest the backend computes within a rest (`IDLE_PAUSE_MS`, and the
    /// patience of the ask after it), or else the next one up: an idle person's seconds buy the
    /// biggest prompt they can, and warm-ups chain (`warm::spawn_warm_up`), so a longer rest
    /// climbs on to `max`. `None` when there is none: then warming would only keep the backend
    /// busy (and the next keystroke waiting for the chunk it is computing).
    pub fn warm_up_tier(&self, ask: Ask<'_>, tier: usize) -> Option<usize> {
        let Ask {
            uri,
            cursor_line,
            max,
            multiline,
            target_ms,
        } = ask;
        let (state, allowed) = self.with_known_speed(multiline, target_ms)?;
        let worth: Vec<usize> = tiers(max)
            .into_iter()
            .rev()
            .filter(|&t| t > tier)
            .filter(|&t| {
                let fits_when_warm = 1e3 * state.changing_tokens(uri, cursor_line, t, true)
                    / state.prefill
                    <= allowed;
                let held = state
                    .region(uri, cursor_line, t)
                    .is_some_and(Region::held_or_warming);
                fits_when_warm && !held
            })
            .collect();
        let horizon = state.rest_horizon_ms(multiline, target_ms);
        worth
            .iter()
            .rev()
            .find(|&&t| 1e3 * state.uncached_tokens(uri, cursor_line, t) / state.prefill <= horizon)
            .or(worth.first())
            .copied()
    }

    /// Whether a warm-up of `tier`'s prompt, measured at `stable_tokens` (its stable part, as
    /// built), is held by the time an ask after a rest comes (`IDLE_PAUSE_MS`, and that ask's
    /// patience) — while `warm_up_tier` judges an unsent tier by its cap. A file shorter than
    /// the budget makes a prompt well below it: then the warm-up goes straight to that tier
    /// instead of climbing through a smaller one first, whose prompt shares none of its start.
    /// `false` when the speed is unknown, or the tier is held or warming here already.
    pub fn fits_rest(&self, ask: Ask<'_>, tier: usize, stable_tokens: usize) -> bool {
        let Some((state, _)) = self.with_known_speed(ask.multiline, ask.target_ms) else {
            return false;
        };
        if state
            .region(ask.uri, ask.cursor_line, tier)
            .is_some_and(Region::held_or_warming)
        {
            return false;
        }
        let changing = state.changing_tokens(ask.uri, ask.cursor_line, tier, true);
        1e3 * (stable_tokens as f64 + changing) / state.prefill
            <= state.rest_horizon_ms(ask.multiline, ask.target_ms)
    }

    /// The tier worth prefilling at `cursor_line` before anything is typed there (the user
    /// just moved the cursor): the one a keystroke would get, when the backend's speed is known,
    /// it does not hold that line's prompt yet, and computing it cold would not fit the target
    /// anyway (on a GPU the first keystroke is fast without it).
    pub fn warm_here_tier(
        &self,
        uri: &str,
        cursor_line: usize,
        max: usize,
        target_ms: u64,
    ) -> Option<usize> {
        let tier = self.choose(Ask {
            uri,
            cursor_line,
            max,
            multiline: false,
            target_ms,
        });
        let state = self.state();
        if state.prefill <= 0.0 {
            return None;
        }
        let allowed = state.prefill_allowance_ms(false, target_ms);
        if 1e3 * state.uncached_tokens(uri, cursor_line, tier) / state.prefill <= allowed {
            return None;
        }
        let held = state.regions.iter().any(|r| {
            r.uri == uri && r.tier == tier && r.cursor_line == cursor_line && r.held_or_warming()
        });
        (!held).then_some(tier)
    }

    /// A request carrying `sent`'s prompt went to the backend now.
    pub fn sent(&self, sent: Sent) {
        let mut state = self.state();
        let held = state
            .region(&sent.uri, sent.cursor_line, sent.tier)
            .filter(|r| r.window_start == sent.window_start)
            .map_or(0.0, |r| r.held_tokens.min(sent.stable_tokens as f64));
        state
            .regions
            .retain(|r| !(r.uri == sent.uri && r.tier == sent.tier));
        state.regions.insert(
            0,
            Region {
                uri: sent.uri,
                tier: sent.tier,
                cursor_line: sent.cursor_line,
                window_start: sent.window_start,
                stable_tokens: sent.stable_tokens,
                line_tokens: sent.line_tokens,
                suffix_tokens: sent.suffix_tokens,
                suffix_capped: sent.suffix_capped,
                line_last: sent.line_last,
                held_tokens: held,
                in_flight: Some((Instant::now(), held)),
            },
        );
        state.regions.truncate(REGIONS);
    }

    /// The request for `uri` at `tier` ended: answered (`usage` when the backend reported it),
    /// or abandoned (superseded, timed out, failed: `answered` false).
    pub fn ended(&self, uri: &str, tier: usize, answered: bool, usage: Option<&Usage>) {
        let mut state = self.state();
        if let Some(usage) = usage {
            let uncached = usage.prompt_tokens.saturating_sub(usage.cached_tokens);
            if let Some(ms) = usage.prefill_ms.filter(|ms| *ms > 0.0) {
                if uncached >= 32 {
                    state.prefill = blend(state.prefill, uncached as f64 * 1e3 / ms);
                }
            }
            if let Some(ms) = usage.decode_ms.filter(|ms| *ms > 0.0) {
                if usage.completion_tokens >= 2 {
                    state.decode = blend(state.decode, usage.completion_tokens as f64 * 1e3 / ms);
                }
            }
        }
        let prefill = state.prefill;
        if let Some(region) = state
            .regions
            .iter_mut()
            .find(|r| r.uri == uri && r.tier == tier)
        {
            if let Some((sent_at, held_before)) = region.in_flight.take() {
                region.held_tokens = if answered {
                    region.stable_tokens as f64
                } else {
                    // Cancelled: the backend kept what it had computed by now.
                    (held_before + sent_at.elapsed().as_secs_f64() * prefill)
                        .min(region.stable_tokens as f64)
                };
            }
        }
    }
}

impl Pacing {
    /// Every request for `uri` still in flight was abandoned (superseded, timed out, failed).
    pub fn abandoned(&self, uri: &str) {
        let tiers: Vec<usize> = self
            .state()
            .regions
            .iter()
            .filter(|r| r.uri == uri && r.in_flight.is_some())
            .map(|r| r.tier)
            .collect();
        for tier in tiers {
            self.ended(uri, tier, false, None);
        }
    }
}

impl State {
    /// A remembered region of `uri` at `tier` that a prompt at `cursor_line` likely shares.
    fn region(&self, uri: &str, cursor_line: usize, tier: usize) -> Option<&Region> {
        self.regions.iter().find(|r| {
            r.uri == uri
                && r.tier == tier
                && r.window_start <= cursor_line
                && cursor_line.abs_diff(r.cursor_line) < ANCHOR_LINES
        })
    }

    /// Milliseconds of prompt computation a request may take: the target less the expected
    /// decoding, but at least half the target (a multi-line suggestion on a slow CPU takes
    /// longer than the target to decode whatever its prompt; it still gets a prompt).
    fn prefill_allowance_ms(&self, multiline: bool, target_ms: u64) -> f64 {
        let decode_ms = match self.decode {
            d if d > 0.0 => {
                1e3 * if multiline {
                    MULTI_LINE_TOKENS
                } else {
                    SINGLE_LINE_TOKENS
                } / d
            }
            _ => 0.0,
        };
        (target_ms as f64 - decode_ms).max(target_ms as f64 / 2.0)
    }

    /// How long a warm-up after an answer may take and still be held for the ask after a rest:
    /// the rest, and what that ask may compute within its patience.
    fn rest_horizon_ms(&self, multiline: bool, target_ms: u64) -> f64 {
        IDLE_PAUSE_MS + self.prefill_allowance_ms(multiline, REST_PATIENCE * target_ms)
    }

    /// Tokens a prompt at `cursor_line` computes beyond what a warm region holds. On the
    /// region's own line that is the line typed so far (it comes after the middle marker, see
    /// `build_prompt`); on another line of the region the suffix changes too — as measured
    /// for that line at any tier (the same at every tier when the block's end set it, else the
    /// tier's cap), or the cap and a typical line.
    fn changing_tokens(&self, uri: &str, cursor_line: usize, tier: usize, same_line: bool) -> f64 {
        let measured = self
            .regions
            .iter()
            .find(|r| r.uri == uri && r.cursor_line == cursor_line);
        let line = measured.map_or(CURSOR_LINE_TOKENS, |r| r.line_tokens);
        let suffix = match measured {
            _ if same_line => 0,
            Some(r) if !r.suffix_capped => r.suffix_tokens.min(suffix_budget(tier)),
            _ => suffix_budget(tier),
        };
        (line + suffix + MARKER_TOKENS) as f64
    }

    /// Estimated prompt tokens the backend has to compute for `tier` at `cursor_line`.
    fn uncached_tokens(&self, uri: &str, cursor_line: usize, tier: usize) -> f64 {
        let whole = tier as f64 * TOKENIZER_MARGIN as f64;
        let Some(region) = self.region(uri, cursor_line, tier) else {
            return whole;
        };
        let held = match region.in_flight {
            // Still computing: count what it will have done by the time this one runs.
            Some((sent_at, before)) => (before + sent_at.elapsed().as_secs_f64() * self.prefill)
                .min(region.stable_tokens as f64),
            None => region.held_tokens,
        };
        let same_line = region.line_last && region.cursor_line == cursor_line;
        let changing = self.changing_tokens(uri, cursor_line, tier, same_line);
        (changing + (region.stable_tokens as f64 - held).max(0.0)).min(whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(uri: &str, cursor_line: usize, max: usize, multiline: bool, target_ms: u64) -> Ask<'_> {
        Ask {
            uri,
            cursor_line,
            max,
            multiline,
            target_ms,
        }
    }

    fn usage(
        prompt: usize,
        cached: usize,
        prefill_ms: f64,
        completion: usize,
        decode_ms: f64,
    ) -> Usage {
        Usage {
            prompt_tokens: prompt,
            cached_tokens: cached,
            completion_tokens: completion,
            prefill_ms: Some(prefill_ms),
            decode_ms: Some(decode_ms),
        }
    }

    #[test]
    fn ladder_runs_from_the_setting_down() {
        assert_eq!(tiers(2048), [2048, 1024, 384, 192]);
        assert_eq!(tiers(4096), [4096, 2048, 1024, 384, 192]);
        assert_eq!(tiers(1500), [1500, 1024, 384, 192]);
        assert_eq!(tiers(384), [384, 192]);
        assert_eq!(tiers(100), [100]);
    }

    #[test]
    fn unknown_speed_takes_the_whole_budget() {
        let pacing = Pacing::default();
        assert_eq!(pacing.choose(ask("a", 10, 2048, false, 800)), 2048);
    }

    #[test]
    fn a_fast_backend_gets_everything_a_slow_one_grows_as_it_warms() {
        let gpu = Pacing::default();
        gpu.reported(Some(20_000.0), Some(300.0));
        assert_eq!(gpu.choose(ask("a", 10, 2048, false, 800)), 2048);

        let cpu = Pacing::default();
        cpu.reported(Some(250.0), Some(40.0));
        // Cold: nothing fits 800 ms; the smallest tier.
        assert_eq!(cpu.choose(ask("a", 100, 2048, false, 800)), 192);
        cpu.sent(Sent {
            uri: "a".into(),
            tier: 192,
            cursor_line: 100,
            window_start: 80,
            stable_tokens: 200,
            line_tokens: 10,
            suffix_tokens: 32,
            suffix_capped: true,
            line_last: true,
        });
        cpu.ended("a", 192, true, Some(&usage(260, 0, 1040.0, 10, 250.0)));
        // Warm at 192 now; 384 not yet. A rest is worth warming the largest tier the backend
        // prefills within it and the ask after it: 1,024 (921 tokens at 250/s, 3.7 s), not
        // 2,048 (7.4 s against 3 s + 2.9 s).
        assert_eq!(cpu.choose(ask("a", 100, 2048, false, 800)), 192);
        assert_eq!(
            cpu.warm_up_tier(ask("a", 100, 2048, false, 800), 192),
            Some(1024)
        );
        cpu.sent(Sent {
            uri: "a".into(),
            tier: 384,
            cursor_line: 100,
            window_start: 64,
            stable_tokens: 470,
            line_tokens: 10,
            suffix_tokens: 128,
            suffix_capped: true,
            line_last: true,
        });
        // While the warm-up runs, 384 does not fit yet.
        assert_eq!(cpu.choose(ask("a", 100, 2048, false, 800)), 192);
        cpu.ended("a", 384, true, Some(&usage(470, 0, 1880.0, 0, 0.0)));
        // Typing on the line costs only what was typed: 384 now, and 1,024 worth warming.
        assert_eq!(cpu.choose(ask("a", 100, 2048, false, 800)), 384);
        assert_eq!(
            cpu.warm_up_tier(ask("a", 100, 2048, false, 800), 384),
            Some(1024)
        );
        cpu.sent(Sent {
            uri: "a".into(),
            tier: 1024,
            cursor_line: 100,
            window_start: 40,
            stable_tokens: 900,
            line_tokens: 10,
            suffix_tokens: 200,
            suffix_capped: true,
            line_last: true,
        });
        // In flight: not warmed twice.
        assert_eq!(
            cpu.warm_up_tier(ask("a", 100, 2048, false, 800), 384),
            Some(2048)
        );
        cpu.ended("a", 1024, true, Some(&usage(900, 0, 3600.0, 0, 0.0)));
        // Held: a rest's next ask gets 1,024; the chain climbs on to 2,048, beyond one rest.
        assert_eq!(cpu.choose(ask("a", 100, 2048, false, 800)), 1024);
        assert_eq!(
            cpu.warm_up_tier(ask("a", 100, 2048, false, 800), 1024),
            Some(2048)
        );
        // The next line of the region recomputes its suffix too: 384 still fits.
        assert_eq!(cpu.choose(ask("a", 101, 2048, false, 800)), 384);
        // Another file, or far away in this one: cold again.
        assert_eq!(cpu.choose(ask("b", 100, 2048, false, 800)), 192);
        assert_eq!(cpu.choose(ask("a", 400, 2048, false, 800)), 192);
    }

    #[test]
    fn a_rest_earns_only_a_tier_the_backend_holds_or_nearly_holds() {
        let cpu = Pacing::default();
        cpu.reported(Some(300.0), Some(40.0));
        let sent = |tier: usize, stable_tokens: usize| Sent {
            uri: "a".into(),
            tier,
            cursor_line: 100,
            window_start: 64,
            stable_tokens,
            line_tokens: 10,
            suffix_tokens: 100,
            suffix_capped: true,
            line_last: true,
        };
        cpu.sent(sent(192, 170));
        cpu.ended("a", 192, true, None);
        // 384 cold (345 tokens, 1.15 s) would fit twice the target, but nothing warmed it: the
        // suggestion on screen stands.
        assert_eq!(cpu.rest_tier(ask("a", 100, 2048, false, 1600), 192), None);
        // A warm-up of 1,024 just started: far from done.
        cpu.sent(sent(1024, 900));
        assert_eq!(cpu.rest_tier(ask("a", 100, 2048, false, 1600), 192), None);
        // Done: the resting ask gets it; at 1,024 itself, nothing larger is held.
        cpu.ended("a", 1024, true, None);
        assert_eq!(
            cpu.rest_tier(ask("a", 100, 2048, false, 1600), 192),
            Some(1024)
        );
        assert_eq!(cpu.rest_tier(ask("a", 100, 2048, false, 1600), 1024), None);
        // Elsewhere in the file the warm-up is no help.
        assert_eq!(cpu.rest_tier(ask("a", 300, 2048, false, 1600), 192), None);
        // A warm-up left with 616 tokens to go (2.05 s) is taken by an ask allowed 1.7 s: a
        // near miss of the plan, within the slack; one with a second more to go is not.
        cpu.sent(sent(2048, 600));
        cpu.ended("a", 2048, false, None);
        assert_eq!(
            cpu.rest_tier(ask("a", 100, 2048, false, 2000), 1024),
            Some(2048)
        );
        cpu.sent(sent(2048, 900));
        cpu.ended("a", 2048, false, None);
        assert_eq!(cpu.rest_tier(ask("a", 100, 2048, false, 2000), 1024), None);
    }

    #[test]
    fn a_whole_budget_prompt_short_enough_for_a_rest_is_warmed_straight_away() {
        let cpu = Pacing::default();
        cpu.reported(Some(300.0), Some(40.0));
        let at = ask("a", 100, 2048, false, 800);
        // By its cap (1,843 tokens, 6.2 s) 2,048 is beyond a rest (3 s + 2.9 s of patience):
        // pacing climbs through 1,024 first.
        assert_eq!(cpu.warm_up_tier(at, 192), Some(1024));
        // Built, a short file's prompt is 1,200 tokens (4.1 s with the typed line): within it.
        assert!(cpu.fits_rest(at, 2048, 1200));
        // So is one of 1,700 (5.7 s); a long file's, at the cap, is not, nor is a prompt on a
        // backend half as fast.
        assert!(cpu.fits_rest(at, 2048, 1700));
        assert!(!cpu.fits_rest(at, 2048, 1843));
        let slow = Pacing::default();
        slow.reported(Some(150.0), Some(40.0));
        assert!(!slow.fits_rest(at, 2048, 1200));
        // Once it is warming, it is not warmed again.
        cpu.sent(Sent {
            uri: "a".into(),
            tier: 2048,
            cursor_line: 100,
            window_start: 0,
            stable_tokens: 1200,
            line_tokens: 10,
            suffix_tokens: 100,
            suffix_capped: false,
            line_last: true,
        });
        assert!(!cpu.fits_rest(at, 2048, 1200));
        // Unknown speed: nothing to judge by.
        assert!(!Pacing::default().fits_rest(at, 2048, 100));
    }

    #[test]
    fn on_a_slow_backend_another_line_of_a_large_region_does_not_fit() {
        let cpu = Pacing::default();
        cpu.reported(Some(150.0), Some(40.0));
        cpu.sent(Sent {
            uri: "a".into(),
            tier: 1024,
            cursor_line: 100,
            window_start: 64,
            stable_tokens: 1000,
            line_tokens: 10,
            suffix_tokens: 256,
            suffix_capped: true,
            line_last: true,
        });
        cpu.ended("a", 1024, true, None);
        assert_eq!(cpu.choose(ask("a", 100, 1024, false, 800)), 1024);
        // 10 + 256 + 6 tokens at 150/s: 1.8 s.
        assert_eq!(cpu.choose(ask("a", 101, 1024, false, 800)), 192);
    }

    #[test]
    fn a_cancelled_warm_up_counts_what_it_got_through() {
        let cpu = Pacing::default();
        cpu.reported(Some(1e6), Some(40.0));
        cpu.sent(Sent {
            uri: "a".into(),
            tier: 1024,
            cursor_line: 10,
            window_start: 0,
            stable_tokens: 900,
            line_tokens: 10,
            suffix_tokens: 5,
            suffix_capped: false,
            line_last: true,
        });
        std::thread::sleep(std::time::Duration::from_millis(5));
        cpu.ended("a", 1024, false, None);
        // At a million tokens a second, 5 ms was enough for all of it.
        assert_eq!(cpu.warm_up_tier(ask("a", 10, 1024, false, 800), 768), None);
    }

    #[test]
    fn with_the_line_in_the_prefix_a_keystroke_recomputes_the_suffix() {
        let cpu = Pacing::default();
        cpu.reported(Some(150.0), Some(40.0));
        cpu.sent(Sent {
            uri: "a".into(),
            tier: 768,
            cursor_line: 100,
            window_start: 64,
            stable_tokens: 0,
            line_tokens: 10,
            suffix_tokens: 192,
            suffix_capped: true,
            line_last: false,
        });
        cpu.ended("a", 768, true, None);
        // 10 + 192 + 6 tokens at 150/s: 1.4 s, on the same line too.
        assert_eq!(cpu.choose(ask("a", 100, 768, false, 800)), 192);
    }
}
