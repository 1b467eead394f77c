//! Prefix KV cache: the KV state of recent sequences, so that a prompt sharing a long token
//! prefix with an earlier one (the next keystroke in the same file) prefills only what is new.
//!
//! Bounded by bytes; the least recently used sequence goes first. A sequence whose tokens are a
//! prefix of a newer one is dropped when the newer one is stored, since the newer one serves
//! every request the older one could.
//!
//! Entries are partitioned (by the API key's owner, or a shared group from the key file): a
//! request only ever sees, reuses or evicts-as-prefix the entries of its own partition, so one
//! tenant can neither reuse another's KV nor learn from its time to first token which prompts
//! another tenant sent. The byte budget and LRU order are shared.

use std::sync::{atomic::Ordering, Arc};

use crate::metrics::Metrics;

use super::KvState;

struct Entry {
    partition: Arc<str>,
    tokens: Vec<u32>,
    kv: KvState,
    bytes: usize,
    last_used: u64,
}

pub struct PrefixCache {
    entries: Vec<Entry>,
    budget_bytes: usize,
    used_bytes: usize,
    clock: u64,
    metrics: Arc<Metrics>,
}

impl PrefixCache {
    pub fn new(budget_bytes: usize, metrics: Arc<Metrics>) -> Self {
        metrics
            .prefix_cache_capacity_bytes
            .store(budget_bytes as u64, Ordering::Relaxed);
        Self {
            entries: Vec::new(),
            budget_bytes,
            used_bytes: 0,
            clock: 0,
            metrics,
        }
    }

    /// The KV state for the longest cached prefix of `prompt`, if any: the entry itself when all
    /// of it applies (moved out, to be extended in place), else a copy of its first positions.
    /// At least one prompt token is always left to run, because its logits are needed.
    pub fn lookup(&mut self, partition: &str, prompt: &[u32]) -> Option<KvState> {
        self.clock += 1;
        let usable = prompt.len().saturating_sub(1);
        let best = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| &*e.partition == partition)
            .map(|(i, e)| (i, common_prefix(&e.tokens, &prompt[..usable])))
            .max_by_key(|&(_, n)| n);
        let Some((index, len)) = best.filter(|&(_, n)| n > 0) else {
            self.metrics
                .prefix_cache_misses
                .fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let kv = if len == self.entries[index].tokens.len() {
            let entry = self.entries.swap_remove(index);
            self.used_bytes -= entry.bytes;
            self.publish_usage();
            entry.kv
        } else {
            let entry = &mut self.entries[index];
            entry.last_used = self.clock;
            match entry.kv.truncated_copy(len) {
                Ok(kv) => kv,
                Err(e) => {
                    tracing::warn!("prefix cache copy failed, prefilling in full: {e:#}");
                    self.metrics
                        .prefix_cache_misses
                        .fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        };
        self.metrics
            .prefix_cache_hits
            .fetch_add(1, Ordering::Relaxed);
        self.metrics
            .prefix_cache_reused_tokens
            .fetch_add(len as u64, Ordering::Relaxed);
        Some(kv)
    }

    /// Stores the KV state of a finished sequence whose positions hold `tokens`.
    pub fn insert(&mut self, partition: Arc<str>, tokens: Vec<u32>, kv: KvState) {
        let bytes = kv.bytes();
        if bytes > self.budget_bytes || tokens.is_empty() || tokens.len() != kv.len() {
            return;
        }
        self.clock += 1;
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].partition == partition && tokens.starts_with(&self.entries[i].tokens)
            {
                let old = self.entries.swap_remove(i);
                self.used_bytes -= old.bytes;
            } else {
                i += 1;
            }
        }
        while self.used_bytes + bytes > self.budget_bytes {
            let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
            else {
                break;
            };
            let old = self.entries.swap_remove(oldest);
            self.used_bytes -= old.bytes;
        }
        self.used_bytes += bytes;
        self.entries.push(Entry {
            partition,
            tokens,
            kv,
            bytes,
            last_used: self.clock,
        });
        self.publish_usage();
    }

    fn publish_usage(&self) {
        self.metrics
            .prefix_cache_bytes
            .store(self.used_bytes as u64, Ordering::Relaxed);
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
