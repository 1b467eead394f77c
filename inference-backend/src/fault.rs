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
//! - `audit-stall`: the audit log's writer thread writes nothing until the server closes the
//!   log at its exit, as a disk that stalls would: every line is still queued then.
//! - `engine-wedge`: the engine thread stops for good before the next prefill chunk's forward
//!   pass, as a forward pass that never returns would (no panic, no error): `/ready` turns 503
//!   once the engine's heartbeat is older than `--engine-stall-limit`, `/health` stays 200.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    OnceLock,
};

const NAMES: [&str; 5] = [
    "engine-panic",
    "finish-panic",
    "cache-insert-panic",
    "engine-wedge",
    "audit-stall",
];

fn armed() -> &'static [AtomicBool; 5] {
    static ARMED: OnceLock<[AtomicBool; 5]> = OnceLock::new();
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

/// Whether the fault `name` is armed, disarming it: the caller provokes it.
pub fn take(name: &str) -> bool {
    NAMES
        .iter()
        .position(|&n| n == name)
        .is_some_and(|i| armed()[i].swap(false, Ordering::Relaxed))
}

/// Provokes the fault `name` once if it is armed: `engine-wedge` never returns, the others
/// panic.
pub fn trip(name: &str) {
    if take(name) {
        if name == "engine-wedge" {
            tracing::warn!("injected fault: {name}; this thread stops here");
            loop {
                std::thread::park();
            }
        }
        panic!("injected fault: {name}");
    }
}
