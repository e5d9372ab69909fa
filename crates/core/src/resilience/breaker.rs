//! A circuit breaker: stops sending traffic to an endpoint that keeps
//! failing, then lets a few probe requests through after a cooldown to find
//! out whether it has recovered.
//!
//! ```text
//! Closed --(N consecutive failures, or failure rate over window)--> Open
//! Open --(cooldown elapsed; lazily, on the next try_acquire)--> HalfOpen
//! HalfOpen --(successes_to_close probe successes)--> Closed
//! HalfOpen --(any probe failure)--> Open (cooldown restarts)
//! ```
//!
//! ## Concurrency
//! The hot path is lock-free: `is_available`, `state`, and acquiring and
//! resolving a permit while Closed are atomic loads and increments (the
//! failure-rate window is the lock-free ring of [`super::window`]). A
//! `std::sync::Mutex` serializes *transitions* and the half-open probe
//! bookkeeping. That is fine on the async hot path because it is only taken
//! when a transition is possible (a trip, the end of a cooldown) or while
//! half-open (one or a few probes), its critical sections are a handful of
//! atomic stores with no I/O, allocation or logging (transitions are logged
//! after the lock is released), and no `.await` can happen while it is held
//! (all methods are synchronous).
//!
//! Every transition bumps a generation number. A permit remembers the
//! generation it was issued in, and its outcome is ignored once the breaker
//! has moved on: a slow request sent before the breaker opened cannot close
//! or reopen it later, and a stale probe cannot free a slot of a newer
//! half-open period.

use super::window::Ring;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

const LOG_TARGET: &str = "switchyard::breaker";

/// When a [`Breaker`] opens and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Open after this many consecutive failures (default 5; 0 disables
    /// this trigger).
    pub consecutive_failures: u32,
    /// Or when failures/total over `window` exceeds this (default 0.5;
    /// 1.0 or more disables this trigger)...
    pub failure_rate: f32,
    /// ...with at least this many requests in the window (default 20).
    pub min_requests: u32,
    /// The failure-rate window (default 30s).
    pub window: Duration,
    /// Open → half-open after this (default 30s).
    pub cooldown: Duration,
    /// Concurrent probe requests allowed while half-open (default 1; 0 is
    /// treated as 1).
    pub half_open_probes: u32,
    /// Probe successes needed to close (default 1; 0 is treated as 1).
    pub successes_to_close: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            failure_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(30),
            cooldown: Duration::from_secs(30),
            half_open_probes: 1,
            successes_to_close: 1,
        }
    }
}

/// Where a [`Breaker`] is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Traffic flows; failures are counted.
    Closed,
    /// Traffic is refused until the cooldown has elapsed.
    Open,
    /// A limited number of probe requests decide between Closed and Open.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open` (for logs, metrics and health output).
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            OPEN => BreakerState::Open,
            HALF_OPEN => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

const SUCCESSES: usize = 0;
const FAILURES: usize = 1;

/// A circuit breaker for one endpoint. Cheap to clone (clones share state);
/// `Send + Sync`.
#[derive(Clone)]
pub struct Breaker {
    shared: Arc<Shared>,
}

struct Shared {
    cfg: BreakerConfig,
    name: Option<Arc<str>>,
    origin: Instant,
    /// `CLOSED`, `OPEN` or `HALF_OPEN`; written only under `lock`.
    state: AtomicU8,
    /// Bumped on every transition; written only under `lock`.
    generation: AtomicU64,
    /// While Open: nanos since `origin` at which the cooldown ends.
    reopen_at: AtomicU64,
    /// While HalfOpen: probes handed out and not yet resolved; written only
    /// under `lock`, read lock-free by `is_available`.
    probes_in_flight: AtomicU32,
    /// While Closed: failures since the last success.
    consecutive: AtomicU32,
    /// While Closed: successes and failures over `cfg.window`.
    window: Ring<2>,
    /// Serializes transitions; holds the half-open probe successes.
    lock: Mutex<u32>,
}

/// A transition to log once the lock is released.
enum Transition {
    Opened { reason: String },
    HalfOpened,
    Closed,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Self::build(None, cfg)
    }

    /// A breaker whose transitions are logged with `breaker = name`
    /// (e.g. the deployment id).
    pub fn named(name: impl Into<Arc<str>>, cfg: BreakerConfig) -> Self {
        Self::build(Some(name.into()), cfg)
    }

    fn build(name: Option<Arc<str>>, mut cfg: BreakerConfig) -> Self {
        cfg.half_open_probes = cfg.half_open_probes.max(1);
        cfg.successes_to_close = cfg.successes_to_close.max(1);
        Breaker {
            shared: Arc::new(Shared {
                cfg,
                name,
                origin: Instant::now(),
                state: AtomicU8::new(CLOSED),
                generation: AtomicU64::new(0),
                reopen_at: AtomicU64::new(0),
                probes_in_flight: AtomicU32::new(0),
                consecutive: AtomicU32::new(0),
                window: Ring::new(cfg.window),
                lock: Mutex::new(0),
            }),
        }
    }

    /// The configuration in effect (probe counts normalized to at least 1).
    pub fn config(&self) -> &BreakerConfig {
        &self.shared.cfg
    }

    /// Zero-cost check used by routing to skip open breakers (no side
    /// effects): true when Closed, or HalfOpen with a free probe slot, or
    /// Open whose cooldown has elapsed.
    pub fn is_available(&self) -> bool {
        let s = &self.shared;
        match s.state.load(Ordering::Acquire) {
            CLOSED => true,
            OPEN => s.now_nanos() >= s.reopen_at.load(Ordering::Acquire),
            _ => s.probes_in_flight.load(Ordering::Acquire) < s.cfg.half_open_probes,
        }
    }

    /// Take permission to send one request. `None` = rejected (open, or
    /// half-open with all probe slots taken). When Open and the cooldown has
    /// elapsed, transitions to HalfOpen and hands out a probe.
    pub fn try_acquire(&self) -> Option<BreakerPermit> {
        let s = &self.shared;
        match s.state.load(Ordering::Acquire) {
            CLOSED => Some(self.permit(s.generation.load(Ordering::Acquire), false)),
            OPEN if s.now_nanos() < s.reopen_at.load(Ordering::Acquire) => None,
            HALF_OPEN if s.probes_in_flight.load(Ordering::Acquire) >= s.cfg.half_open_probes => {
                None
            }
            _ => {
                let mut transition = None;
                let permit = {
                    let mut g = s.lock();
                    if s.state.load(Ordering::Acquire) == OPEN
                        && s.now_nanos() >= s.reopen_at.load(Ordering::Acquire)
                    {
                        transition = Some(s.to_half_open(&mut g));
                    }
                    match s.state.load(Ordering::Acquire) {
                        HALF_OPEN => {
                            let n = s.probes_in_flight.load(Ordering::Acquire);
                            (n < s.cfg.half_open_probes).then(|| {
                                s.probes_in_flight.store(n + 1, Ordering::Release);
                                self.permit(s.generation.load(Ordering::Acquire), true)
                            })
                        }
                        // Closed by another probe meanwhile.
                        CLOSED => Some(self.permit(s.generation.load(Ordering::Acquire), false)),
                        _ => None,
                    }
                };
                s.log(transition);
                permit
            }
        }
    }

    /// The current state. The Open → HalfOpen transition is lazy: a breaker
    /// whose cooldown has elapsed reports Open until the next `try_acquire`
    /// (`is_available` already reports true).
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.shared.state.load(Ordering::Acquire))
    }

    /// Force a failure without a permit (for active health checks). Closed:
    /// counts like a failed request. HalfOpen: reopens. Open: restarts the
    /// cooldown (the endpoint is still down).
    pub fn record_failure(&self) {
        let s = &self.shared;
        match s.state.load(Ordering::Acquire) {
            CLOSED => s.closed_failure(s.generation.load(Ordering::Acquire)),
            _ => {
                let transition = {
                    let mut g = s.lock();
                    match s.state.load(Ordering::Acquire) {
                        HALF_OPEN => {
                            Some(s.to_open(&mut g, "health check failed while half-open".into()))
                        }
                        OPEN => {
                            s.reopen_at.store(s.cooldown_end(), Ordering::Release);
                            None
                        }
                        _ => None,
                    }
                };
                s.log(transition);
            }
        }
    }

    /// Force a success without a permit (for active health checks). Closed:
    /// counts like a successful request. HalfOpen: counts as a probe
    /// success (may close). Open: ends the cooldown early (→ HalfOpen, where
    /// real probes decide).
    pub fn record_success(&self) {
        let s = &self.shared;
        match s.state.load(Ordering::Acquire) {
            CLOSED => s.closed_success(s.generation.load(Ordering::Acquire)),
            _ => {
                let transition = {
                    let mut g = s.lock();
                    match s.state.load(Ordering::Acquire) {
                        HALF_OPEN => s.half_open_success(&mut g),
                        OPEN => Some(s.to_half_open(&mut g)),
                        _ => None,
                    }
                };
                s.log(transition);
            }
        }
    }

    fn permit(&self, generation: u64, probe: bool) -> BreakerPermit {
        BreakerPermit {
            shared: self.shared.clone(),
            generation,
            probe,
            resolved: false,
        }
    }
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.shared.name)
            .field("state", &self.state())
            .field(
                "consecutive_failures",
                &self.shared.consecutive.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, u32> {
        // Nothing panics while the lock is held; tolerate poison anyway.
        self.lock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_nanos(&self) -> u64 {
        let d = Instant::now().saturating_duration_since(self.origin);
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    fn cooldown_end(&self) -> u64 {
        let cd = u64::try_from(self.cfg.cooldown.as_nanos()).unwrap_or(u64::MAX);
        self.now_nanos().saturating_add(cd)
    }

    fn is_current(&self, generation: u64, state: u8) -> bool {
        self.state.load(Ordering::Acquire) == state
            && self.generation.load(Ordering::Acquire) == generation
    }

    // Transitions: call with `lock` held.

    fn to_open(&self, successes: &mut u32, reason: String) -> Transition {
        *successes = 0;
        self.reopen_at.store(self.cooldown_end(), Ordering::Release);
        self.probes_in_flight.store(0, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.state.store(OPEN, Ordering::Release);
        Transition::Opened { reason }
    }

    fn to_half_open(&self, successes: &mut u32) -> Transition {
        *successes = 0;
        self.probes_in_flight.store(0, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.state.store(HALF_OPEN, Ordering::Release);
        Transition::HalfOpened
    }

    fn to_closed(&self, successes: &mut u32) -> Transition {
        *successes = 0;
        self.consecutive.store(0, Ordering::Release);
        self.window.clear(self.window.slot(Instant::now()));
        self.probes_in_flight.store(0, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.state.store(CLOSED, Ordering::Release);
        Transition::Closed
    }

    /// A probe (or forced) success while HalfOpen, `successes` = the guard.
    fn half_open_success(&self, successes: &mut u32) -> Option<Transition> {
        *successes = successes.saturating_add(1);
        if *successes >= self.cfg.successes_to_close {
            Some(self.to_closed(successes))
        } else {
            None
        }
    }

    // Outcomes.

    fn closed_success(&self, generation: u64) {
        if self.is_current(generation, CLOSED) {
            self.consecutive.store(0, Ordering::Release);
            let slot = self.window.slot(Instant::now());
            self.window.incr(slot, SUCCESSES);
        }
    }

    fn closed_failure(&self, generation: u64) {
        if !self.is_current(generation, CLOSED) {
            return;
        }
        let consecutive = self
            .consecutive
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let slot = self.window.slot(Instant::now());
        self.window.incr(slot, FAILURES);
        let n = self.cfg.consecutive_failures;
        let reason = if n > 0 && consecutive >= n {
            format!("{consecutive} consecutive failures")
        } else {
            let [ok, failed] = self.window.sums(slot);
            let total = ok + failed;
            let rate = failed as f64 / total.max(1) as f64;
            if total >= u64::from(self.cfg.min_requests) && rate > f64::from(self.cfg.failure_rate)
            {
                format!(
                    "failure rate {:.0}% over {total} requests in {:?}",
                    rate * 100.0,
                    self.cfg.window
                )
            } else {
                return;
            }
        };
        let transition = {
            let mut g = self.lock();
            self.is_current(generation, CLOSED)
                .then(|| self.to_open(&mut g, reason))
        };
        self.log(transition);
    }

    fn probe_done(&self, generation: u64, outcome: Option<bool>) {
        let transition = {
            let mut g = self.lock();
            if !self.is_current(generation, HALF_OPEN) {
                return;
            }
            let n = self.probes_in_flight.load(Ordering::Acquire);
            self.probes_in_flight
                .store(n.saturating_sub(1), Ordering::Release);
            match outcome {
                Some(true) => self.half_open_success(&mut g),
                Some(false) => Some(self.to_open(&mut g, "probe failed".into())),
                None => None,
            }
        };
        self.log(transition);
    }

    fn log(&self, transition: Option<Transition>) {
        let name = self.name.as_deref().unwrap_or("");
        match transition {
            None => {}
            Some(Transition::Opened { reason }) => tracing::warn!(
                target: LOG_TARGET,
                breaker = name,
                cooldown = ?self.cfg.cooldown,
                "circuit breaker opened: {reason}"
            ),
            Some(Transition::HalfOpened) => tracing::info!(
                target: LOG_TARGET,
                breaker = name,
                probes = self.cfg.half_open_probes,
                "circuit breaker half-open: probing"
            ),
            Some(Transition::Closed) => {
                tracing::info!(target: LOG_TARGET, breaker = name, "circuit breaker closed")
            }
        }
    }
}

/// Permission to send one request through a [`Breaker`]. Must be resolved
/// exactly once: [`success`](Self::success), [`failure`](Self::failure), or
/// dropped (= neither: releases a half-open probe slot without counting,
/// e.g. the client cancelled, or a non-upstream error like a 400).
///
/// Owns a reference to the breaker, so it can travel with a streamed
/// response and be resolved when the stream ends.
#[must_use = "resolve the permit with success() or failure(); dropping it counts neither"]
pub struct BreakerPermit {
    shared: Arc<Shared>,
    generation: u64,
    probe: bool,
    resolved: bool,
}

impl BreakerPermit {
    /// The request succeeded (the upstream is healthy).
    pub fn success(mut self) {
        self.resolved = true;
        if self.probe {
            self.shared.probe_done(self.generation, Some(true));
        } else {
            self.shared.closed_success(self.generation);
        }
    }

    /// The request failed because of the upstream (5xx, timeout, connection
    /// error, 429 …).
    pub fn failure(mut self) {
        self.resolved = true;
        if self.probe {
            self.shared.probe_done(self.generation, Some(false));
        } else {
            self.shared.closed_failure(self.generation);
        }
    }

    /// True for a half-open probe (its outcome decides the breaker's state).
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if !self.resolved && self.probe {
            self.shared.probe_done(self.generation, None);
        }
    }
}

impl fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("probe", &self.probe)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            failure_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(30),
            half_open_probes: 1,
            successes_to_close: 1,
        }
    }

    fn fail(b: &Breaker) {
        b.try_acquire().unwrap().failure();
    }

    fn succeed(b: &Breaker) {
        b.try_acquire().unwrap().success();
    }

    #[test]
    fn defaults() {
        let c = BreakerConfig::default();
        assert_eq!(c.consecutive_failures, 5);
        assert_eq!(c.failure_rate, 0.5);
        assert_eq!(c.min_requests, 20);
        assert_eq!(c.window, Duration::from_secs(30));
        assert_eq!(c.cooldown, Duration::from_secs(30));
        assert_eq!((c.half_open_probes, c.successes_to_close), (1, 1));
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Breaker>();
        send_sync::<BreakerPermit>();
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_rejects() {
        let b = Breaker::named("test#0", cfg());
        fail(&b);
        fail(&b);
        succeed(&b); // resets the streak
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.is_available());
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.is_available());
        assert!(b.try_acquire().is_none());
        advance(Duration::from_secs(29)).await;
        assert!(!b.is_available());
        assert!(b.try_acquire().is_none());
        assert_eq!(b.state(), BreakerState::Open);
        assert!(format!("{b:?}").contains("Open"));
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_hands_out_exactly_the_probe_slots() {
        let b = Breaker::new(BreakerConfig {
            half_open_probes: 3,
            successes_to_close: 2,
            ..cfg()
        });
        for _ in 0..3 {
            fail(&b);
        }
        advance(Duration::from_secs(30)).await;
        assert!(b.is_available(), "cooldown elapsed");
        assert_eq!(b.state(), BreakerState::Open, "lazy until acquired");
        let p1 = b.try_acquire().unwrap();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(p1.is_probe());
        let p2 = b.try_acquire().unwrap();
        let p3 = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_none(), "only 3 probes");
        assert!(!b.is_available());
        p1.success();
        assert_eq!(b.state(), BreakerState::HalfOpen, "needs 2 successes");
        assert!(b.is_available(), "a slot is free again");
        p2.success();
        assert_eq!(b.state(), BreakerState::Closed);
        // The last probe belongs to a finished half-open period: ignored.
        p3.failure();
        assert_eq!(b.state(), BreakerState::Closed);
        let p = b.try_acquire().unwrap();
        assert!(!p.is_probe());
        p.success();
    }

    #[tokio::test(start_paused = true)]
    async fn probe_failure_reopens_and_restarts_cooldown() {
        let b = Breaker::new(cfg());
        for _ in 0..3 {
            fail(&b);
        }
        advance(Duration::from_secs(30)).await;
        let probe = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_none());
        advance(Duration::from_secs(5)).await;
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.is_available());
        advance(Duration::from_secs(29)).await;
        assert!(
            b.try_acquire().is_none(),
            "cooldown restarted at the probe failure"
        );
        advance(Duration::from_secs(1)).await;
        assert!(b.is_available());
        b.try_acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
        // Closing forgets the old failures: it takes a fresh streak to reopen.
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_probe_releases_the_slot_without_state_change() {
        let b = Breaker::new(cfg());
        for _ in 0..3 {
            fail(&b);
        }
        advance(Duration::from_secs(30)).await;
        let probe = b.try_acquire().unwrap();
        assert!(!b.is_available());
        drop(probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.is_available());
        let probe = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_none());
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        // A dropped closed-state permit counts nothing either.
        for _ in 0..10 {
            drop(b.try_acquire().unwrap());
        }
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_closed_permit_is_ignored() {
        let b = Breaker::new(cfg());
        let slow = b.try_acquire().unwrap();
        for _ in 0..3 {
            fail(&b);
        }
        assert_eq!(b.state(), BreakerState::Open);
        slow.success(); // sent before the breaker opened: must not close it
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.is_available());
    }

    #[tokio::test(start_paused = true)]
    async fn rate_based_opening_needs_min_requests() {
        let b = Breaker::new(BreakerConfig {
            consecutive_failures: 0, // rate only
            ..cfg()
        });
        // 6 failures out of 9: rate 67% but under min_requests (10).
        for _ in 0..3 {
            succeed(&b);
            fail(&b);
            fail(&b);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b); // 10 requests, 7 failed
        assert_eq!(b.state(), BreakerState::Open);

        // At exactly the threshold (50%) it stays closed; old results age out.
        let b = Breaker::new(BreakerConfig {
            consecutive_failures: 0,
            ..cfg()
        });
        for _ in 0..10 {
            succeed(&b);
            fail(&b);
        }
        assert_eq!(b.state(), BreakerState::Closed, "50% does not exceed 0.5");
        advance(Duration::from_secs(11)).await; // the window has moved on
        for _ in 0..9 {
            fail(&b);
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "9 < min_requests in the new window"
        );
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn forced_results_for_health_checks() {
        let b = Breaker::new(cfg());
        for _ in 0..3 {
            b.record_failure();
        }
        assert_eq!(b.state(), BreakerState::Open);
        advance(Duration::from_secs(20)).await;
        b.record_failure(); // still down: cooldown restarts
        advance(Duration::from_secs(20)).await;
        assert!(!b.is_available());
        b.record_success(); // recovered: probe now
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        b.record_success();
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        b.record_failure();
        b.record_failure();
        b.record_success();
        b.record_failure();
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Closed, "success reset the streak");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_tasks_lose_no_counts() {
        // Opens on exactly the 640th consecutive failure.
        let b = Breaker::new(BreakerConfig {
            consecutive_failures: 640,
            failure_rate: 2.0,
            ..cfg()
        });
        let run = |n: usize| {
            let tasks: Vec<_> = (0..64)
                .map(|t| {
                    let b = b.clone();
                    tokio::spawn(async move {
                        for _ in 0..n - usize::from(t == 0) {
                            let p = b.try_acquire().unwrap();
                            tokio::task::yield_now().await;
                            p.failure();
                        }
                    })
                })
                .collect::<Vec<_>>();
            async move {
                for t in tasks {
                    t.await.unwrap();
                }
            }
        };
        run(10).await; // 639 failures
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);

        // Half-open under contention: exactly `half_open_probes` winners.
        let b = Breaker::new(BreakerConfig {
            consecutive_failures: 1,
            half_open_probes: 4,
            cooldown: Duration::ZERO,
            ..cfg()
        });
        fail(&b);
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (b, barrier) = (b.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let p = b.try_acquire();
                    let got = p.is_some();
                    barrier.wait().await; // hold permits until all have tried
                    got
                })
            })
            .collect();
        let mut granted = 0;
        for t in tasks {
            granted += usize::from(t.await.unwrap());
        }
        assert_eq!(granted, 4);
        // All permits were dropped unresolved: slots free, still half-open.
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.is_available());
    }
}
