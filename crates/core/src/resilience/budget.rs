//! A retry budget: caps retries at a share of recent traffic so that retries
//! cannot multiply load on a struggling upstream (retry storms).

use super::window::Ring;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

const REQUESTS: usize = 0;
const RETRIES: usize = 1;

/// A retry budget (like Finagle/tower's TpsBudget): each request deposits,
/// each retry withdraws; retries are allowed while
/// `retries <= min_per_sec * ttl + ratio * requests` over the sliding window
/// `ttl`.
///
/// Lock-free: a ring of 10 time buckets of atomic counters, rotated lazily by
/// time slot (so the window is between 0.9 × `ttl` and `ttl` long). A
/// withdrawal counts itself first, then checks the balance and takes itself
/// back if over: concurrent withdrawals can therefore be refused spuriously
/// right at the limit, but the budget is never exceeded.
pub struct RetryBudget {
    ring: Ring<2>,
    /// `min_per_sec * ttl`: retries always allowed per window.
    reserve: f64,
    ratio: f64,
}

impl RetryBudget {
    /// `ttl`: the window (at least 1 ms is sensible; zero is treated as 1 ns
    /// buckets). `min_per_sec`: retries per second always allowed, even with
    /// no traffic. `ratio`: retries as a share of requests, e.g. 0.2 = 20%
    /// extra load (negative or NaN is treated as 0).
    pub fn new(ttl: Duration, min_per_sec: u32, ratio: f32) -> Self {
        let ratio = f64::from(ratio);
        RetryBudget {
            ring: Ring::new(ttl),
            reserve: f64::from(min_per_sec) * ttl.as_secs_f64(),
            ratio: if ratio.is_nan() { 0.0 } else { ratio.max(0.0) },
        }
    }

    /// Call once per original request.
    pub fn deposit(&self) {
        let slot = self.ring.slot(Instant::now());
        self.ring.incr(slot, REQUESTS);
    }

    /// Call before each retry; false = budget exhausted, do not retry.
    pub fn withdraw(&self) -> bool {
        let slot = self.ring.slot(Instant::now());
        self.ring.incr(slot, RETRIES);
        let [requests, retries] = self.ring.sums(slot);
        if retries as f64 <= self.reserve + self.ratio * requests as f64 {
            true
        } else {
            self.ring.decr(slot, RETRIES);
            false
        }
    }

    /// Retries still allowed in the current window (rounded down).
    pub fn remaining(&self) -> u64 {
        let [requests, retries] = self.ring.sums(self.ring.slot(Instant::now()));
        let allowed = (self.reserve + self.ratio * requests as f64).floor();
        (allowed as u64).saturating_sub(retries)
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [requests, retries] = self.ring.sums(self.ring.slot(Instant::now()));
        f.debug_struct("RetryBudget")
            .field("reserve", &self.reserve)
            .field("ratio", &self.ratio)
            .field("requests", &requests)
            .field("retries", &retries)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::time::advance;

    #[tokio::test(start_paused = true)]
    async fn full_outage_caps_retries_and_refills_after_ttl() {
        // 10s window, 1 retry/s reserve (10 per window), 20% of requests.
        let b = RetryBudget::new(Duration::from_secs(10), 1, 0.2);
        let mut allowed = 0;
        // 1000 requests over 5s, every one of them retried (total outage).
        for _ in 0..1000 {
            b.deposit();
            if b.withdraw() {
                allowed += 1;
            }
            advance(Duration::from_millis(5)).await;
        }
        // ratio × requests + reserve = 200 + 10.
        assert!((205..=210).contains(&allowed), "allowed {allowed}");
        assert!(!b.withdraw(), "exhausted");
        assert_eq!(b.remaining(), 0);

        // After a whole ttl without traffic, only the reserve is left.
        advance(Duration::from_secs(10)).await;
        assert_eq!(b.remaining(), 10);
        let refilled = (0..100).filter(|_| b.withdraw()).count();
        assert_eq!(refilled, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn steady_outage_stays_near_ratio() {
        // Zero reserve: retries are exactly 20% of requests, window after window.
        let b = RetryBudget::new(Duration::from_secs(1), 0, 0.2);
        let mut allowed = 0u32;
        for _ in 0..10_000 {
            b.deposit();
            if b.withdraw() {
                allowed += 1;
            }
            advance(Duration::from_millis(1)).await; // 10s of traffic
        }
        // Each retry is charged to the window it happened in and rotates out
        // with it, so the long-run share is the ratio.
        let share = f64::from(allowed) / 10_000.0;
        assert!((0.19..=0.21).contains(&share), "share {share}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_traffic_means_reserve_only_and_zero_means_never() {
        let b = RetryBudget::new(Duration::from_secs(10), 0, 0.5);
        assert!(!b.withdraw());
        b.deposit();
        assert!(!b.withdraw(), "0.5 of one request is not a whole retry");
        b.deposit();
        assert!(b.withdraw());
        assert!(!b.withdraw());
        let never = RetryBudget::new(Duration::from_secs(10), 0, f32::NAN);
        never.deposit();
        assert!(!never.withdraw());
        let _ = format!("{b:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_use_loses_nothing() {
        // Ratio 1: exactly as many retries as requests.
        let b = Arc::new(RetryBudget::new(Duration::from_secs(600), 0, 1.0));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move {
                    for _ in 0..100 {
                        b.deposit();
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(b.remaining(), 6400);
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move {
                    let mut n = 0u32;
                    for _ in 0..200 {
                        if b.withdraw() {
                            n += 1;
                        }
                        tokio::task::yield_now().await;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        // Never over budget; spurious refusals only happen at the very edge.
        assert!(total <= 6400, "total {total}");
        assert!(total >= 6400 - 64, "total {total}");
        assert_eq!(b.remaining(), u64::from(6400 - total));
    }
}
