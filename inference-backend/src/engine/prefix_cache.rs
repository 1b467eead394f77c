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

use anyhow::Result;

use crate::metrics::Metrics;

use super::KvState;

/// What the cache needs of a sequence's KV state: `KvState` in the server; in the unit tests a
/// stand-in of known length and size, since the cache's bookkeeping never looks inside.
pub trait CachedKv: Sized {
    /// Positions held.
    fn positions(&self) -> usize;
    /// Memory held, counted against the cache's budget.
    fn bytes(&self) -> usize;
    /// A copy of the first `len` positions.
    fn truncated_copy(&self, len: usize) -> Result<Self>;
}

impl CachedKv for KvState {
    fn positions(&self) -> usize {
        KvState::len(self)
    }

    fn bytes(&self) -> usize {
        KvState::bytes(self)
    }

    fn truncated_copy(&self, len: usize) -> Result<Self> {
        KvState::truncated_copy(self, len)
    }
}

struct Entry<K> {
    partition: Arc<str>,
    tokens: Vec<u32>,
    kv: K,
    bytes: usize,
    last_used: u64,
}

pub struct PrefixCache<K = KvState> {
    entries: Vec<Entry<K>>,
    budget_bytes: usize,
    used_bytes: usize,
    clock: u64,
    metrics: Arc<Metrics>,
}

impl<K: CachedKv> PrefixCache<K> {
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
    pub fn lookup(&mut self, partition: &str, prompt: &[u32]) -> Option<K> {
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
    pub fn insert(&mut self, partition: Arc<str>, tokens: Vec<u32>, kv: K) {
        let bytes = kv.bytes();
        if bytes > self.budget_bytes || tokens.is_empty() || tokens.len() != kv.positions() {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// KV of `len` positions, 10 bytes each, that remembers which sequence it came from.
    #[derive(Debug, Clone, PartialEq)]
    struct Kv {
        from: &'static str,
        len: usize,
    }

    impl CachedKv for Kv {
        fn positions(&self) -> usize {
            self.len
        }

        fn bytes(&self) -> usize {
            self.len * 10
        }

        fn truncated_copy(&self, len: usize) -> Result<Self> {
            anyhow::ensure!(len <= self.len, "cannot keep {len} of {}", self.len);
            Ok(Kv {
                from: self.from,
                len,
            })
        }
    }

    fn cache(budget_bytes: usize) -> PrefixCache<Kv> {
        PrefixCache::new(budget_bytes, Arc::new(Metrics::default()))
    }

    fn insert(cache: &mut PrefixCache<Kv>, partition: &str, from: &'static str, tokens: &[u32]) {
        let kv = Kv {
            from,
            len: tokens.len(),
        };
        cache.insert(partition.into(), tokens.to_vec(), kv);
    }

    /// The sequences held, by where they came from, and the bytes counted.
    fn held(cache: &PrefixCache<Kv>) -> (Vec<&'static str>, usize) {
        let mut from: Vec<_> = cache.entries.iter().map(|e| e.kv.from).collect();
        from.sort_unstable();
        (from, cache.used_bytes)
    }

    #[test]
    fn lookup_finds_the_longest_common_token_prefix() {
        let mut cache = cache(10_000);
        assert_eq!(cache.lookup("", &[1, 2, 3]), None, "empty cache");
        insert(&mut cache, "", "short", &[1, 2, 8]);
        insert(&mut cache, "", "long", &[1, 2, 3, 4, 7, 7]);
        insert(&mut cache, "", "other", &[5, 6, 7]);
        // "long" shares 4 tokens, "short" 2: a copy of long's first 4 positions; it stays.
        let hit = cache.lookup("", &[1, 2, 3, 4, 5]);
        assert_eq!(
            hit,
            Some(Kv {
                from: "long",
                len: 4
            })
        );
        assert_eq!(held(&cache).0, ["long", "other", "short"]);
        // No common first token: a miss.
        assert_eq!(cache.lookup("", &[9, 1, 2, 3]), None);
    }

    #[test]
    fn a_whole_entry_is_handed_out_and_leaves_the_cache() {
        let mut cache = cache(10_000);
        insert(&mut cache, "", "typed", &[1, 2, 3]);
        // The next keystroke: all of the entry applies, so it is moved out to be extended.
        let hit = cache.lookup("", &[1, 2, 3, 4]);
        assert_eq!(
            hit,
            Some(Kv {
                from: "typed",
                len: 3
            })
        );
        assert_eq!(held(&cache), (vec![], 0));
        assert_eq!(cache.lookup("", &[1, 2, 3, 4]), None);
    }

    #[test]
    fn the_last_prompt_token_is_always_left_to_run() {
        let mut cache = cache(10_000);
        insert(&mut cache, "", "same", &[1, 2, 3]);
        // The same prompt again: its last token's logits are needed, so 2 positions, copied.
        let hit = cache.lookup("", &[1, 2, 3]);
        assert_eq!(
            hit,
            Some(Kv {
                from: "same",
                len: 2
            })
        );
        assert_eq!(held(&cache), (vec!["same"], 30));
        assert_eq!(cache.lookup("", &[1]), None, "one token: nothing to reuse");
    }

    #[test]
    fn partitions_neither_see_nor_replace_each_other() {
        let mut cache = cache(10_000);
        insert(&mut cache, "alice", "alice", &[1, 2, 3]);
        assert_eq!(cache.lookup("bob", &[1, 2, 3, 4]), None);
        // Bob's longer sequence does not replace Alice's prefix of it.
        insert(&mut cache, "bob", "bob", &[1, 2, 3, 4, 5]);
        assert_eq!(held(&cache).0, ["alice", "bob"]);
        assert_eq!(
            cache.lookup("alice", &[1, 2, 3, 4, 5, 6]),
            Some(Kv {
                from: "alice",
                len: 3
            })
        );
        assert_eq!(
            cache.lookup("bob", &[1, 2, 3, 4, 5, 6]),
            Some(Kv {
                from: "bob",
                len: 5
            })
        );
    }

    #[test]
    fn insert_drops_the_entries_that_are_a_prefix_of_the_new_one() {
        let mut cache = cache(10_000);
        insert(&mut cache, "", "first", &[1, 2]);
        insert(&mut cache, "", "diverged", &[1, 3]);
        insert(&mut cache, "", "extended", &[1, 2, 3, 4]);
        assert_eq!(held(&cache), (vec!["diverged", "extended"], 60));
    }

    #[test]
    fn insert_evicts_the_least_recently_used_within_the_byte_budget() {
        // Room for 12 positions (10 bytes each).
        let mut cache = cache(120);
        insert(&mut cache, "", "a", &[1, 1, 1, 1]);
        insert(&mut cache, "", "b", &[2, 2, 2, 2]);
        insert(&mut cache, "", "c", &[3, 3, 3, 3]);
        assert_eq!(held(&cache), (vec!["a", "b", "c"], 120));
        // A partial hit on "a" makes it the most recently used: "b" goes first.
        assert!(cache.lookup("", &[1, 1, 9]).is_some());
        insert(&mut cache, "", "d", &[4, 4, 4, 4]);
        assert_eq!(held(&cache), (vec!["a", "c", "d"], 120));
        // A sequence of 8 positions needs two of them gone: "c" then "a".
        insert(&mut cache, "", "e", &[5; 8]);
        assert_eq!(held(&cache), (vec!["d", "e"], 120));
    }

    #[test]
    fn what_cannot_be_held_is_not_stored() {
        let mut cache = cache(50);
        insert(&mut cache, "", "kept", &[1, 2]);
        // Larger than the whole budget: not stored, and nothing evicted for it.
        insert(&mut cache, "", "huge", &[9; 6]);
        // Empty, or positions that do not match the tokens.
        insert(&mut cache, "", "empty", &[]);
        cache.insert(
            "".into(),
            vec![7, 7],
            Kv {
                from: "odd",
                len: 3,
            },
        );
        assert_eq!(held(&cache), (vec!["kept"], 20));
    }
}
