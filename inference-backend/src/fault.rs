//! Fault injection for tests only: `GHOSTLINE_FAULT` names faults (comma-separated) that the
//! server then provokes once each, so that tests can check it fails loudly and recovers where
//! it should. Never set it in production.
//!
//! - `engine-panic`: the engine thread panics when it takes its next request (outside every
//!   per-request guard), as an engine bug would: `/ready` turns 503 and the process exits
//!   non-zero.
//! - `finish-panic`: finishing the next request that finishes panics before its end is sent:
//!   that request gets an error, the engine goes on.
//! - `cache-insert-panic`: the next prefix-cache insert panics: the engine goes on.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    OnceLock,
};

const NAMES: [&str; 3] = ["engine-panic", "finish-panic", "cache-insert-panic"];

fn armed() -> &'static [AtomicBool; 3] {
    static ARMED: OnceLock<[AtomicBool; 3]> = OnceLock::new();
    ARMED.get_or_init(|| {
        let set = std::env::var("GHOSTLINE_FAULT").unwrap_or_default();
        let wanted: Vec<&str> = set.split(',').map(str::trim).collect();
        for name in &wanted {
            if !name.is_empty() && !NAMES.contains(name) {
                tracing::warn!("GHOSTLINE_FAULT: unknown fault {name:?} ignored");
            }
        }
        NAMES.map(|name| AtomicBool::new(wanted.contains(&name)))
    })
}

/// Reads `GHOSTLINE_FAULT` and says loudly that faults are armed.
pub fn init() {
    for (name, flag) in NAMES.iter().zip(armed()) {
        if flag.load(Ordering::Relaxed) {
            tracing::warn!("test fault {name:?} armed (GHOSTLINE_FAULT): not for production");
        }
    }
}

/// Panics once if the fault `name` is armed.
pub fn trip(name: &str) {
    if let Some(i) = NAMES.iter().position(|&n| n == name) {
        if armed()[i].swap(false, Ordering::Relaxed) {
            panic!("injected fault: {name}");
        }
    }
}
