//! The API key file: who each key belongs to and what that owner may use.
//!
//! ```text
//! # A line with one word is a key of its own (the old format): owner "key-1", "key-2", …
//! sk-old-style-key
//! # OWNER KEY [rpm=N] [streams=N] [tpm=N] [group=NAME]
//! alice  sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b  rpm=120 streams=4 tpm=20000
//! bob    bob-plain-key  group=backend-team
//! carol  sha256:…        group=backend-team
//! ```
//!
//! `KEY` is the key itself or `sha256:` and the 64 hex digits of its SHA-256 (`printf %s KEY |
//! sha256sum`), so the file need not hold any key. `rpm`: requests per minute; `streams`:
//! requests in flight at once; `tpm`: generated tokens per minute (a running request holds its
//! `max_tokens` until its answer ends, then counts what it generated, also when its client
//! left early; a request is admitted while the minute has room); an absent limit is no limit. Owners share the prefix cache only when they name
//! the same `group`; otherwise each owner has a partition of its own. An owner may have several
//! keys (lines); its limits and group must then be the same on each; a key on two lines is an
//! error. Owner and group names are
//! `[A-Za-z0-9_.@-]`, at most 64 characters (they appear in `/metrics` and the audit log; keys
//! never do). The file is read again on `SIGHUP` and when it changes; a file that does not parse
//! then keeps the keys in use and logs why, once per change.

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex, RwLock,
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnerLimits {
    pub requests_per_minute: Option<u32>,
    pub streams: Option<u32>,
    pub tokens_per_minute: Option<u64>,
}

#[derive(Debug, Clone)]
enum Secret {
    Plain(Vec<u8>),
    Sha256([u8; 32]),
}

#[derive(Debug, Clone)]
struct KeyEntry {
    secret: Secret,
    owner: Arc<str>,
}

/// One owner as the key file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerSpec {
    pub name: Arc<str>,
    pub limits: OwnerLimits,
    /// The prefix-cache partition: `group:NAME` when the file names a shared group, else
    /// `owner:NAME`.
    pub partition: Arc<str>,
}

/// The parsed key file.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<KeyEntry>,
    owners: HashMap<Arc<str>, OwnerSpec>,
}

impl Secret {
    /// The key's SHA-256, whichever way the file gave it.
    fn digest(&self) -> [u8; 32] {
        match self {
            Secret::Plain(bytes) => Sha256::digest(bytes).into(),
            Secret::Sha256(hash) => *hash,
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
}

fn parse_secret(word: &str, line: usize) -> Result<Secret> {
    if let Some(hex) = word.strip_prefix("sha256:") {
        let mut digest = [0u8; 32];
        if hex.len() != 64 {
            bail!("line {line}: sha256: needs 64 hex digits");
        }
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .with_context(|| format!("line {line}: sha256: needs 64 hex digits"))?;
        }
        Ok(Secret::Sha256(digest))
    } else if word.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(Secret::Plain(word.as_bytes().to_vec()))
    } else {
        bail!("line {line}: a key is printable ASCII without spaces")
    }
}

impl KeyRing {
    pub fn parse(text: &str) -> Result<Self> {
        let mut keys = Vec::new();
        let mut owners: HashMap<Arc<str>, OwnerSpec> = HashMap::new();
        let mut legacy = 0;
        // Each key's SHA-256 → the line and owner that gave it first.
        let mut seen: HashMap<[u8; 32], (usize, Arc<str>)> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = content.split_whitespace().collect();
            let (owner, secret, options): (String, &str, &[&str]) = if words.len() == 1 {
                legacy += 1;
                (format!("key-{legacy}"), words[0], &[])
            } else {
                (words[0].to_string(), words[1], &words[2..])
            };
            if !valid_name(&owner) {
                bail!("line {line}: owner names are [A-Za-z0-9_.@-], at most 64 characters");
            }
            let secret = parse_secret(secret, line)?;
            let mut limits = OwnerLimits::default();
            let mut group = None;
            for option in options {
                let Some((name, value)) = option.split_once('=') else {
                    bail!("line {line}: expected NAME=VALUE, got {option:?}");
                };
                let number = || {
                    value
                        .parse::<u64>()
                        .ok()
                        .filter(|&n| n > 0)
                        .with_context(|| format!("line {line}: {name} needs a positive number"))
                };
                match name {
                    "rpm" => {
                        limits.requests_per_minute = Some(number()?.min(u32::MAX as u64) as u32)
                    }
                    "streams" => limits.streams = Some(number()?.min(u32::MAX as u64) as u32),
                    "tpm" => limits.tokens_per_minute = Some(number()?),
                    "group" if valid_name(value) => group = Some(value.to_string()),
                    "group" => {
                        bail!("line {line}: group names are [A-Za-z0-9_.@-], at most 64 characters")
                    }
                    other => {
                        bail!("line {line}: unknown option {other:?} (rpm, streams, tpm, group)")
                    }
                }
            }
            let name: Arc<str> = Arc::from(owner.as_str());
            let spec = OwnerSpec {
                name: name.clone(),
                limits,
                partition: Arc::from(match &group {
                    Some(group) => format!("group:{group}"),
                    None => format!("owner:{owner}"),
                }),
            };
            if let Some(known) = owners.get(&name) {
                if *known != spec {
                    bail!("line {line}: owner {owner} appears before with other limits or group");
                }
            } else {
                owners.insert(name.clone(), spec);
            }
            let digest = secret.digest();
            if let Some((first_line, first_owner)) = seen.get(&digest) {
                bail!(
                    "line {line}: the same key as line {first_line} (owner {first_owner} there, {owner} here); each key must be on one line only"
                );
            }
            seen.insert(digest, (line, name.clone()));
            keys.push(KeyEntry {
                secret,
                owner: name,
            });
        }
        if keys.is_empty() {
            bail!("holds no key");
        }
        Ok(Self { keys, owners })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read API key file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("API key file {}", path.display()))
    }

    /// The owner of `offered`, if it is a key. Every key is compared, in constant time, so the
    /// time taken says nothing about which key (or how much of one) matched.
    pub fn owner_of(&self, offered: &[u8]) -> Option<&OwnerSpec> {
        let digest: [u8; 32] = Sha256::digest(offered).into();
        let mut found: Option<usize> = None;
        for (i, key) in self.keys.iter().enumerate() {
            let hit = match &key.secret {
                Secret::Plain(bytes) => bytes.as_slice().ct_eq(offered),
                Secret::Sha256(hash) => hash.as_slice().ct_eq(&digest),
            };
            if bool::from(hit) && found.is_none() {
                found = Some(i);
            }
        }
        found.and_then(|i| self.owners.get(&self.keys[i].owner))
    }

    pub fn owners(&self) -> impl Iterator<Item = &OwnerSpec> {
        self.owners.values()
    }
}

/// `--metrics-key`: the one key `/metrics` answers to.
#[derive(Debug, Clone)]
pub struct MetricsKey(Secret);

impl MetricsKey {
    pub fn parse(word: &str) -> Result<Self> {
        let word = word.trim();
        anyhow::ensure!(!word.is_empty(), "--metrics-key is empty");
        parse_secret(word, 0)
            .map(Self)
            .context("--metrics-key: printable ASCII without spaces, or sha256:HEX")
    }

    /// Compared in constant time, like the API keys.
    pub fn matches(&self, offered: &[u8]) -> bool {
        match &self.0 {
            Secret::Plain(bytes) => bytes.as_slice().ct_eq(offered).into(),
            Secret::Sha256(hash) => {
                let digest: [u8; 32] = Sha256::digest(offered).into();
                hash.as_slice().ct_eq(&digest).into()
            }
        }
    }
}

/// The key file in use, reloaded in place.
pub struct KeyStore {
    path: PathBuf,
    ring: RwLock<Arc<KeyRing>>,
    /// The modification time of the file last read, whether it parsed or not: a broken file
    /// is reported once, not at every check while it stays broken.
    loaded_mtime: Mutex<Option<SystemTime>>,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl KeyStore {
    pub fn open(path: &Path) -> Result<Self> {
        let stamp = mtime(path);
        let ring = KeyRing::load(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            ring: RwLock::new(Arc::new(ring)),
            loaded_mtime: Mutex::new(stamp),
        })
    }

    pub fn current(&self) -> Arc<KeyRing> {
        self.ring
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Reads the file again; on an error the keys in use stay. Requests already admitted keep
    /// running: they hold no reference to the key file.
    pub fn reload(&self) {
        let stamp = mtime(&self.path);
        match KeyRing::load(&self.path) {
            Ok(ring) => {
                let owners = ring.owners.len();
                let keys = ring.keys.len();
                match self.ring.write() {
                    Ok(mut slot) => *slot = Arc::new(ring),
                    Err(e) => *e.into_inner() = Arc::new(ring),
                }
                if let Ok(mut slot) = self.loaded_mtime.lock() {
                    *slot = stamp;
                }
                tracing::info!("API key file reloaded: {keys} keys of {owners} owners");
            }
            Err(e) => {
                if let Ok(mut slot) = self.loaded_mtime.lock() {
                    *slot = stamp;
                }
                tracing::error!("API key file not reloaded, the previous keys stay: {e:#}")
            }
        }
    }

    /// Reloads when the file's modification time changed since it was last read.
    pub fn reload_if_changed(&self) {
        let stamp = mtime(&self.path);
        let changed = self
            .loaded_mtime
            .lock()
            .map(|seen| stamp.is_some() && *seen != stamp)
            .unwrap_or(false);
        if changed {
            self.reload();
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    RequestsPerMinute,
    Streams,
    TokensPerMinute,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::RequestsPerMinute => "rpm",
            LimitKind::Streams => "streams",
            LimitKind::TokensPerMinute => "tpm",
        }
    }
}

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Window {
    requests: VecDeque<Instant>,
    tokens: VecDeque<(Instant, u64)>,
    token_sum: u64,
    /// `max_tokens` of the requests running now, each held until its answer ends and is
    /// replaced by what it generated: concurrent requests cannot overdraw the limit.
    reserved: u64,
}

impl Window {
    fn tokens_used(&self) -> u64 {
        self.token_sum + self.reserved
    }

    /// When enough of the window's tokens leave it to go under `tpm` (reserved ones leave
    /// when their requests end, so at least a second from now).
    fn tokens_free_at(&self, tpm: u64, now: Instant) -> Instant {
        let mut used = self.tokens_used();
        for &(t, n) in &self.tokens {
            used -= n;
            if used < tpm {
                return t + WINDOW;
            }
        }
        now + Duration::from_secs(1)
    }
}

impl Window {
    fn push_tokens(&mut self, now: Instant, tokens: u64) {
        if tokens > 0 {
            self.tokens.push_back((now, tokens));
            self.token_sum += tokens;
        }
    }

    fn prune(&mut self, now: Instant) {
        while self
            .requests
            .front()
            .is_some_and(|&t| now.duration_since(t) >= WINDOW)
        {
            self.requests.pop_front();
        }
        while let Some(&(t, n)) = self.tokens.front() {
            if now.duration_since(t) < WINDOW {
                break;
            }
            self.token_sum -= n;
            self.tokens.pop_front();
        }
    }
}

/// What one owner is using now. Kept across key-file reloads, so a reload neither resets the
/// limits' windows nor forgets the streams running.
#[derive(Default)]
pub struct OwnerUsage {
    window: Mutex<Window>,
    streams: AtomicU32,
}

fn whole_seconds(d: Duration) -> u32 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).clamp(1, 60) as u32
}

impl OwnerUsage {
    /// Admits one request within `limits`, or says which limit it hit and in how many seconds
    /// to try again.
    pub fn admit(self: &Arc<Self>, limits: &OwnerLimits) -> Result<StreamSlot, (LimitKind, u32)> {
        let now = Instant::now();
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        window.prune(now);
        if let Some(max) = limits.streams {
            if self.streams.load(Ordering::Relaxed) >= max {
                return Err((LimitKind::Streams, 1));
            }
        }
        if let Some(rpm) = limits.requests_per_minute {
            if window.requests.len() >= rpm as usize {
                // The request that leaves the window first makes room.
                let index = window.requests.len() - rpm as usize;
                let free_at = window.requests[index] + WINDOW;
                return Err((LimitKind::RequestsPerMinute, whole_seconds(free_at - now)));
            }
        }
        if let Some(tpm) = limits.tokens_per_minute {
            if window.tokens_used() >= tpm {
                let free_at = window.tokens_free_at(tpm, now);
                return Err((LimitKind::TokensPerMinute, whole_seconds(free_at - now)));
            }
        }
        window.requests.push_back(now);
        self.streams.fetch_add(1, Ordering::Relaxed);
        Ok(StreamSlot {
            usage: self.clone(),
        })
    }

    /// Holds `max_tokens` of the owner's tokens-per-minute until the answer ends (then what
    /// was generated counts instead). Refused while the window has no room left: whatever
    /// was generated in the last minute plus what running requests may still generate.
    pub fn reserve(
        self: &Arc<Self>,
        max_tokens: u64,
        limits: &OwnerLimits,
    ) -> Result<TokenReservation, (LimitKind, u32)> {
        let now = Instant::now();
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        window.prune(now);
        if let Some(tpm) = limits.tokens_per_minute {
            if window.tokens_used() >= tpm {
                let free_at = window.tokens_free_at(tpm, now);
                return Err((LimitKind::TokensPerMinute, whole_seconds(free_at - now)));
            }
        }
        window.reserved += max_tokens;
        Ok(TokenReservation {
            usage: self.clone(),
            reserved: max_tokens,
        })
    }

    /// Counts generated tokens against the tokens-per-minute limit.
    pub fn record_tokens(&self, tokens: u64) {
        let now = Instant::now();
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        window.prune(now);
        window.push_tokens(now, tokens);
    }

    pub fn streams(&self) -> u32 {
        self.streams.load(Ordering::Relaxed)
    }
}

/// A request in flight for an owner; dropping it (the response's body finished or was
/// abandoned) frees the stream.
pub struct StreamSlot {
    usage: Arc<OwnerUsage>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.usage.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `max_tokens` held for a running request; [`TokenReservation::settle`] (or dropping it
/// unsettled: nothing generated) swaps it for the tokens generated.
pub struct TokenReservation {
    usage: Arc<OwnerUsage>,
    reserved: u64,
}

impl TokenReservation {
    pub fn settle(mut self, generated: u64) {
        self.release(generated);
    }

    fn release(&mut self, generated: u64) {
        let reserved = std::mem::take(&mut self.reserved);
        let now = Instant::now();
        let mut window = self.usage.window.lock().unwrap_or_else(|e| e.into_inner());
        window.reserved = window.reserved.saturating_sub(reserved);
        window.prune(now);
        window.push_tokens(now, generated);
    }
}

impl Drop for TokenReservation {
    fn drop(&mut self) {
        if self.reserved > 0 {
            self.release(0);
        }
    }
}

/// Per-owner usage, by owner name.
#[derive(Default)]
pub struct Tenants {
    owners: Mutex<HashMap<Arc<str>, Arc<OwnerUsage>>>,
}

impl Tenants {
    pub fn usage(&self, owner: &Arc<str>) -> Arc<OwnerUsage> {
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.entry(owner.clone()).or_default().clone()
    }

    pub fn streams_by_owner(&self) -> Vec<(Arc<str>, u32)> {
        let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = owners
            .iter()
            .map(|(k, v)| (k.clone(), v.streams()))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_files_still_parse_one_owner_per_key() {
        let ring = KeyRing::parse("# comment\nalpha\n\n  beta-key  \n").unwrap();
        assert_eq!(&*ring.owner_of(b"alpha").unwrap().name, "key-1");
        assert_eq!(&*ring.owner_of(b"beta-key").unwrap().name, "key-2");
        assert!(ring.owner_of(b"beta").is_none());
        assert!(ring.owner_of(b"beta-key2").is_none());
        assert!(ring.owner_of(b"").is_none());
    }

    #[test]
    fn owners_limits_groups_and_hashed_keys() {
        // sha256("secret-a")
        let hash = format!("{:x}", Sha256::digest(b"secret-a"));
        let text = format!(
            "alice sha256:{hash} rpm=2 streams=1 tpm=100\nbob bob-key group=team\ncarol c-key group=team\nalice other-alice-key rpm=2 streams=1 tpm=100\n"
        );
        let ring = KeyRing::parse(&text).unwrap();
        let alice = ring.owner_of(b"secret-a").unwrap();
        assert_eq!(&*alice.name, "alice");
        assert_eq!(alice.limits.requests_per_minute, Some(2));
        assert_eq!(alice.limits.streams, Some(1));
        assert_eq!(alice.limits.tokens_per_minute, Some(100));
        assert_eq!(&*alice.partition, "owner:alice");
        assert_eq!(&*ring.owner_of(b"other-alice-key").unwrap().name, "alice");
        assert!(
            ring.owner_of(hash.as_bytes()).is_none(),
            "the hash is not the key"
        );
        assert_eq!(
            ring.owner_of(b"bob-key").unwrap().partition,
            ring.owner_of(b"c-key").unwrap().partition
        );
    }

    #[test]
    fn bad_lines_are_refused_with_their_line_number() {
        for bad in [
            "alice key rpm=0",
            "alice key rpm=x",
            "alice key colour=red",
            "ali/ce key",
            "alice sha256:1234",
            "alice key\nalice key2 rpm=3",
            "alice key\nbob key",
            "alice key\nalice key",
            "# only a comment",
        ] {
            assert!(KeyRing::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn running_requests_hold_their_max_tokens_until_settled() {
        let usage = Arc::new(OwnerUsage::default());
        let limits = OwnerLimits {
            tokens_per_minute: Some(40),
            ..OwnerLimits::default()
        };
        let first = usage.reserve(64, &limits).unwrap();
        assert_eq!(
            usage.reserve(64, &limits).err().unwrap().0,
            LimitKind::TokensPerMinute
        );
        first.settle(10);
        let second = usage.reserve(64, &limits).unwrap();
        second.settle(30);
        assert!(usage.reserve(1, &limits).is_err(), "40 of 40 generated");
    }

    #[test]
    fn a_key_on_two_lines_is_refused_naming_both() {
        let hash = format!("{:x}", Sha256::digest(b"shared-key"));
        let text = format!("# team\nalice shared-key\nbob other-key\ncarol sha256:{hash}\n");
        let error = format!("{:#}", KeyRing::parse(&text).unwrap_err());
        assert!(error.contains("line 4"), "{error}");
        assert!(error.contains("line 2"), "{error}");
        assert!(
            error.contains("alice") && error.contains("carol"),
            "{error}"
        );
    }

    #[test]
    fn limits_refuse_with_a_retry_after() {
        let usage = Arc::new(OwnerUsage::default());
        let limits = OwnerLimits {
            requests_per_minute: Some(2),
            streams: Some(1),
            tokens_per_minute: Some(10),
        };
        let first = usage.admit(&limits).unwrap();
        assert_eq!(usage.admit(&limits).err().unwrap().0, LimitKind::Streams);
        drop(first);
        let second = usage.admit(&limits).unwrap();
        drop(second);
        let (kind, after) = usage.admit(&limits).err().unwrap();
        assert_eq!(kind, LimitKind::RequestsPerMinute);
        assert!((1..=60).contains(&after));
        let usage = Arc::new(OwnerUsage::default());
        usage.record_tokens(10);
        assert_eq!(
            usage.admit(&limits).err().unwrap().0,
            LimitKind::TokensPerMinute
        );
    }
}
