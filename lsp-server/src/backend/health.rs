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
    /// A refusal met by a background request (a warm-up), which has nobody to tell: the next
    /// suggestion request reports it (`take_unreported`).
    unreported: Mutex<Option<BackendError>>,
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
        self.record_backoff(error);
        if self.warned.swap(true, Ordering::Relaxed) {
            HealthChange::None
        } else {
            HealthChange::WentBad
        }
    }

    /// A background request was refused: hold off as the backend asked, and keep the refusal
    /// for the next suggestion request to report (once).
    pub fn record_background_failure(&self, error: &BackendError) {
        if matches!(
            error,
            BackendError::Busy { .. } | BackendError::RateLimited { .. }
        ) {
            self.record_backoff(error);
            if let Ok(mut slot) = self.unreported.lock() {
                *slot = Some(error.clone());
            }
        }
    }

    pub fn take_unreported(&self) -> Option<BackendError> {
        self.unreported.lock().ok().and_then(|mut slot| slot.take())
    }

    fn record_backoff(&self, error: &BackendError) {
        if let BackendError::Busy { retry_after } | BackendError::RateLimited { retry_after } =
            error
        {
            // A rate limit's Retry-After is honoured in full (up to 10 minutes): asking again
            // earlier would only be refused again and count against the key.
            let cap = if matches!(error, BackendError::RateLimited { .. }) {
                Duration::from_secs(600)
            } else {
                Duration::from_secs(30)
            };
            let wait = retry_after.unwrap_or(Duration::from_millis(500)).min(cap);
            if let Ok(mut busy_until) = self.busy_until.lock() {
                *busy_until = Some(Instant::now() + wait);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_holds_off_for_its_whole_retry_after_and_warns_once() {
        let health = Health::default();
        let limited = BackendError::RateLimited {
            retry_after: Some(Duration::from_secs(45)),
        };
        assert_eq!(health.record_failure(&limited), HealthChange::WentBad);
        assert_eq!(health.record_failure(&limited), HealthChange::None);
        let until = health.busy_until.lock().unwrap().unwrap();
        assert!(
            until > Instant::now() + Duration::from_secs(40),
            "capped below Retry-After"
        );
        assert!(health.is_backing_off());
    }

    #[test]
    fn a_refused_warm_up_backs_off_and_leaves_its_notice_for_the_next_request() {
        let health = Health::default();
        health.record_background_failure(&BackendError::Timeout);
        assert!(!health.is_backing_off());
        assert!(health.take_unreported().is_none());
        health.record_background_failure(&BackendError::RateLimited { retry_after: None });
        assert!(health.is_backing_off());
        assert!(matches!(
            health.take_unreported(),
            Some(BackendError::RateLimited { .. })
        ));
        assert!(health.take_unreported().is_none(), "reported once");
    }
}
