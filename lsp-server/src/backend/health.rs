use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::BackendError;

/// Backend health as the user sees it: one warning when it goes bad, one note when it
/// recovers, never one per keystroke. Also remembers a 503's Retry-After so that requests
/// in that window answer empty at once instead of queueing on a full server.
#[derive(Default)]
pub struct Health {
    warned: AtomicBool,
    busy_until: Mutex<Option<Instant>>,
}

/// What the caller should tell the user after a request.
#[derive(Debug, PartialEq, Eq)]
pub enum HealthChange {
    None,
    /// First failure since the backend was last fine: warn once.
    WentBad,
    /// First success after a warning.
    Recovered,
}

impl Health {
    pub fn record_success(&self) -> HealthChange {
        if self.warned.swap(false, Ordering::Relaxed) {
            HealthChange::Recovered
        } else {
            HealthChange::None
        }
    }

    pub fn record_failure(&self, error: &BackendError) -> HealthChange {
        if let BackendError::Busy { retry_after } = error {
            let wait = retry_after
                .unwrap_or(Duration::from_millis(500))
                .min(Duration::from_secs(30));
            if let Ok(mut busy_until) = self.busy_until.lock() {
                *busy_until = Some(Instant::now() + wait);
            }
        }
        if self.warned.swap(true, Ordering::Relaxed) {
            HealthChange::None
        } else {
            HealthChange::WentBad
        }
    }

    /// Whether the backend asked us to hold off right now.
    pub fn is_backing_off(&self) -> bool {
        self.busy_until
            .lock()
            .map(|until| until.is_some_and(|until| Instant::now() < until))
            .unwrap_or(false)
    }
}
