//! The server's own time per request, for the benchmark (`ghostline/timings`).

use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::Instant;

use serde::Serialize;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process started; small enough to travel in JSON.
pub fn now_ns() -> u64 {
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestTiming {
    /// "backend", "typing" (typed-through), "recent" (LRU), "none" (nothing to do).
    pub source: &'static str,
    /// Request arrival (JSON-RPC decoded) until the HTTP request is sent.
    pub before_backend_ns: u64,
    /// Last token used until the response is handed back for writing.
    pub after_last_token_ns: u64,
    /// Arrival until response.
    pub total_ns: u64,
}

const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct Timings(Mutex<Vec<RequestTiming>>);

impl Timings {
    pub fn record(&self, timing: RequestTiming) {
        if let Ok(mut all) = self.0.lock() {
            if all.len() < CAPACITY {
                all.push(timing);
            }
        }
    }

    pub fn take(&self) -> Vec<RequestTiming> {
        self.0
            .lock()
            .map(|mut all| std::mem::take(&mut *all))
            .unwrap_or_default()
    }
}
