//! In-memory rate limiting: requests per minute as GCRA (generic cell rate
//! algorithm: one timestamp per limiter, smooth, burst = the per-minute
//! limit), tokens per minute as a token bucket that is *reserved* with the
//! request's worst-case estimate and settled with the real count.
//!
//! State is per replica; shared limits across replicas belong in Redis
//! (future work, see ARCHITECTURE.md).

use crate::FastMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What a limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Until the bucket is full again (headers) or, when refused, until a
    /// retry can succeed.
    pub reset: Duration,
}

/// Requests per minute, GCRA.
#[derive(Debug)]
struct Gcra {
    /// Theoretical arrival time.
    tat: Instant,
}

/// Tokens per minute, a bucket refilled continuously.
#[derive(Debug)]
struct Bucket {
    level: f64,
    at: Instant,
}

/// All limiters of one replica, keyed by (scope string, model).
#[derive(Debug, Default)]
pub struct Limiters {
    requests: Mutex<FastMap<String, Gcra>>,
    tokens: Mutex<FastMap<String, Bucket>>,
}

impl Limiters {
    /// Take one request from the `rpm` limiter `key`.
    pub fn take_request(&self, key: &str, rpm: u64, now: Instant) -> Decision {
        let rpm = rpm.max(1);
        let interval = Duration::from_secs(60) / u32::try_from(rpm).unwrap_or(u32::MAX);
        let burst = Duration::from_secs(60);
        let mut map = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // `entry` alone would allocate the key on every request.
        let g = match map.get_mut(key) {
            Some(g) => g,
            None => map.entry(key.to_owned()).or_insert(Gcra { tat: now }),
        };
        let tat = g.tat.max(now);
        let new_tat = tat + interval;
        let allow_at = new_tat.checked_sub(burst).unwrap_or(now);
        if allow_at > now {
            let remaining = 0;
            return Decision {
                allowed: false,
                limit: rpm,
                remaining,
                reset: allow_at - now,
            };
        }
        g.tat = new_tat;
        let used = new_tat.saturating_duration_since(now);
        let remaining =
            rpm.saturating_sub(used.as_nanos().div_ceil(interval.as_nanos().max(1)) as u64);
        Decision {
            allowed: true,
            limit: rpm,
            remaining,
            reset: used,
        }
    }

    /// Reserve `tokens` from the `tpm` bucket `key` (refused when the bucket
    /// lacks them; a single request larger than the whole bucket is refused
    /// outright).
    pub fn reserve_tokens(&self, key: &str, tpm: u64, tokens: u64, now: Instant) -> Decision {
        let cap = tpm.max(1) as f64;
        let rate = cap / 60.0;
        let mut map = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let b = match map.get_mut(key) {
            Some(b) => b,
            None => map.entry(key.to_owned()).or_insert(Bucket {
                level: cap,
                at: now,
            }),
        };
        b.level = (b.level + rate * now.saturating_duration_since(b.at).as_secs_f64()).min(cap);
        b.at = now;
        let want = tokens as f64;
        if want > b.level {
            let wait = if want > cap {
                Duration::from_secs(60)
            } else {
                Duration::from_secs_f64((want - b.level) / rate)
            };
            return Decision {
                allowed: false,
                limit: tpm,
                remaining: b.level.max(0.0) as u64,
                reset: wait,
            };
        }
        b.level -= want;
        let reset = Duration::from_secs_f64((cap - b.level) / rate);
        Decision {
            allowed: true,
            limit: tpm,
            remaining: b.level as u64,
            reset,
        }
    }

    /// Give back (positive) or charge extra (negative) tokens once the real
    /// count is known. The level may go negative: later requests then wait.
    pub fn settle_tokens(&self, key: &str, tpm: u64, delta: i64) {
        let cap = tpm.max(1) as f64;
        let mut map = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = map.get_mut(key) {
            b.level = (b.level + delta as f64).min(cap);
        }
    }

    /// Undo a `take_request` (the request was refused by a later check).
    pub fn refund_request(&self, key: &str, rpm: u64) {
        let interval = Duration::from_secs(60) / u32::try_from(rpm.max(1)).unwrap_or(u32::MAX);
        let mut map = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(g) = map.get_mut(key) {
            g.tat = g.tat.checked_sub(interval).unwrap_or(g.tat);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gcra_allows_the_limit_per_minute_then_refuses() {
        let l = Limiters::default();
        let now = Instant::now();
        for i in 0..10 {
            let d = l.take_request("k", 10, now);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 9 - i);
        }
        let d = l.take_request("k", 10, now);
        assert!(!d.allowed);
        assert_eq!(d.reset, Duration::from_secs(6));
        // One interval later, exactly one more.
        let later = now + Duration::from_secs(6);
        assert!(l.take_request("k", 10, later).allowed);
        assert!(!l.take_request("k", 10, later).allowed);
        // Other keys are independent.
        assert!(l.take_request("other", 10, now).allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn token_bucket_reserves_and_settles() {
        let l = Limiters::default();
        let now = Instant::now();
        assert!(l.reserve_tokens("t", 1000, 800, now).allowed);
        let d = l.reserve_tokens("t", 1000, 300, now);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 200);
        // The request used only 100 of its 800: 700 come back.
        l.settle_tokens("t", 1000, 700);
        assert!(l.reserve_tokens("t", 1000, 300, now).allowed);
        // Larger than the whole bucket: never.
        assert!(
            !l.reserve_tokens("t", 1000, 5000, now + Duration::from_secs(3600))
                .allowed
        );
        // Refill: 1000/min.
        let d = l.reserve_tokens("t", 1000, 600, now + Duration::from_secs(60));
        assert!(d.allowed);
    }
}
