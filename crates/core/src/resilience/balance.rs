//! Load balancing: live per-endpoint statistics and the order in which a
//! request tries the candidate endpoints under each [`Strategy`].

use rand::Rng;
use std::cmp::Ordering as CmpOrdering;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How to order the deployments behind one model alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Weighted random order (the default).
    #[default]
    WeightedRandom,
    /// Rotate through the candidates, one step per request.
    RoundRobin,
    /// Fewest requests in flight first.
    LeastOutstanding,
    /// Fastest (EWMA latency) first, power of two choices.
    LowestLatency,
    /// Cheapest first.
    LowestCost,
    /// Lowest `priority` value first; weighted random within a priority.
    Priority,
}

impl Strategy {
    /// Every strategy, in documentation order.
    pub const ALL: [Strategy; 6] = [
        Strategy::WeightedRandom,
        Strategy::RoundRobin,
        Strategy::LeastOutstanding,
        Strategy::LowestLatency,
        Strategy::LowestCost,
        Strategy::Priority,
    ];

    /// `weighted`, `round_robin`, `least_outstanding`, `lowest_latency`,
    /// `lowest_cost`, `priority` (also accepted: `weighted_random`, any
    /// ASCII case, `-` for `_`).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Some(match s.as_str() {
            "weighted" | "weighted_random" => Strategy::WeightedRandom,
            "round_robin" => Strategy::RoundRobin,
            "least_outstanding" => Strategy::LeastOutstanding,
            "lowest_latency" => Strategy::LowestLatency,
            "lowest_cost" => Strategy::LowestCost,
            "priority" => Strategy::Priority,
            _ => return None,
        })
    }

    /// The canonical name, as accepted by [`Strategy::parse`].
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::WeightedRandom => "weighted",
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastOutstanding => "least_outstanding",
            Strategy::LowestLatency => "lowest_latency",
            Strategy::LowestCost => "lowest_cost",
            Strategy::Priority => "priority",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Weight of the newest sample in the latency EWMA.
const EWMA_ALPHA: f64 = 0.3;
/// Bit pattern meaning "no sample yet" (a NaN; never stored otherwise).
const UNMEASURED: u64 = u64::MAX;

/// Live per-endpoint statistics shared by all requests: requests in flight
/// and an EWMA of successful request latency. Lock-free (atomics only).
///
/// The latency average is a per-sample EWMA with `alpha = 0.3`: each new
/// sample moves the average 30% of the way towards it, so a slowdown shows
/// within a few requests and one outlier does not dominate. It is not
/// time-decayed: an endpoint that receives no traffic keeps its last
/// average (the power-of-two-choices pick in [`order`] still sends it some
/// traffic whenever it is sampled against a slower one).
pub struct EndpointStats {
    outstanding: AtomicU32,
    /// `f64` nanoseconds as bits, or [`UNMEASURED`].
    latency: AtomicU64,
}

impl EndpointStats {
    pub fn new() -> Self {
        EndpointStats {
            outstanding: AtomicU32::new(0),
            latency: AtomicU64::new(UNMEASURED),
        }
    }

    /// Mark a request in flight; the owned guard decrements on drop (so it
    /// can live in a spawned task or travel with a streamed response).
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        InFlight {
            stats: self.clone(),
        }
    }

    /// Requests currently in flight.
    pub fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Record a successful request latency (EWMA, alpha 0.3; the first
    /// sample sets the average).
    pub fn observe_latency(&self, d: Duration) {
        let sample = d.as_nanos() as f64;
        let _ = self
            .latency
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                let next = if bits == UNMEASURED {
                    sample
                } else {
                    let old = f64::from_bits(bits);
                    old + EWMA_ALPHA * (sample - old)
                };
                Some(next.to_bits())
            });
    }

    /// Current EWMA latency; unmeasured endpoints return `None`.
    pub fn latency(&self) -> Option<Duration> {
        let bits = self.latency.load(Ordering::Acquire);
        if bits == UNMEASURED {
            return None;
        }
        Some(Duration::from_nanos(f64::from_bits(bits).round() as u64))
    }
}

impl Default for EndpointStats {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EndpointStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointStats")
            .field("outstanding", &self.outstanding())
            .field("latency", &self.latency())
            .finish()
    }
}

/// One request in flight at an endpoint (see [`EndpointStats::start`]).
pub struct InFlight {
    stats: Arc<EndpointStats>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let _ = self
            .stats
            .outstanding
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight").finish_non_exhaustive()
    }
}

/// What the balancer knows about one candidate.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Relative share for weighted choices (0 = only after all others).
    pub weight: u32,
    /// Lower = preferred (the `Priority` strategy).
    pub priority: u32,
    /// Price per 1M tokens, e.g. input + output (the `LowestCost` strategy).
    pub cost: Option<f64>,
    pub stats: &'a EndpointStats,
}

/// The order in which to try candidates (indexes into `cands`), best first;
/// every index appears exactly once.
///
/// - `WeightedRandom`: weighted random order without replacement
///   (Efraimidis–Spirakis: each candidate draws `Exp(1) / weight`, ascending;
///   the first pick has probability `weight / total`). Weight-0 candidates
///   come last, in random order.
/// - `RoundRobin`: rotate by `rr.fetch_add(1)`.
/// - `LeastOutstanding`: ascending outstanding, ties weighted random.
/// - `LowestLatency`: power of two choices on EWMA latency for the first
///   pick (two weighted-random candidates, the faster wins; unmeasured
///   endpoints are preferred so they get measured), the rest by latency
///   (unmeasured first, ties weighted random).
/// - `LowestCost`: ascending cost (`None`/NaN last), ties by weight
///   (heavier first), then random.
/// - `Priority`: ascending priority, ties weighted random.
pub fn order(strategy: Strategy, cands: &[Candidate<'_>], rr: &AtomicUsize) -> Vec<usize> {
    let n = cands.len();
    if n <= 1 {
        return (0..n).collect();
    }
    if strategy == Strategy::RoundRobin {
        let start = rr.fetch_add(1, Ordering::Relaxed) % n;
        return (start..n).chain(0..start).collect();
    }
    let mut out = weighted_order(cands);
    match strategy {
        Strategy::WeightedRandom | Strategy::RoundRobin => {}
        Strategy::LeastOutstanding => out.sort_by_key(|&i| cands[i].stats.outstanding()),
        Strategy::Priority => out.sort_by_key(|&i| cands[i].priority),
        Strategy::LowestCost => out.sort_by(|&a, &b| {
            cmp_cost(cands[a].cost, cands[b].cost).then(cands[b].weight.cmp(&cands[a].weight))
        }),
        Strategy::LowestLatency => {
            // `None < Some(_)`: unmeasured first.
            let lat = |i: usize| cands[i].stats.latency();
            if lat(out[1]) < lat(out[0]) {
                out.swap(0, 1);
            }
            out[1..].sort_by_key(|&i| lat(i));
        }
    }
    out
}

/// Weighted random order without replacement (Efraimidis–Spirakis with
/// exponential keys); weight 0 sorts after every positive weight.
fn weighted_order(cands: &[Candidate<'_>]) -> Vec<usize> {
    let mut rng = rand::thread_rng();
    let mut keyed: Vec<(bool, f64, usize)> = cands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // u in (0, 1] so ln(u) is finite.
            let u: f64 = 1.0 - rng.gen::<f64>();
            let e = -u.ln();
            if c.weight == 0 {
                (true, e, i)
            } else {
                (false, e / f64::from(c.weight), i)
            }
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    keyed.into_iter().map(|(_, _, i)| i).collect()
}

fn cmp_cost(a: Option<f64>, b: Option<f64>) -> CmpOrdering {
    let a = a.filter(|x| !x.is_nan());
    let b = b.filter(|x| !x.is_nan());
    match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        (Some(_), None) => CmpOrdering::Less,
        (None, Some(_)) => CmpOrdering::Greater,
        (None, None) => CmpOrdering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(n: usize) -> Vec<Arc<EndpointStats>> {
        (0..n).map(|_| Arc::new(EndpointStats::new())).collect()
    }

    fn cands<'a>(s: &'a [Arc<EndpointStats>], weights: &[u32]) -> Vec<Candidate<'a>> {
        s.iter()
            .zip(weights)
            .map(|(st, &w)| Candidate {
                weight: w,
                priority: 0,
                cost: None,
                stats: st,
            })
            .collect()
    }

    fn is_permutation(v: &[usize], n: usize) -> bool {
        let mut s = v.to_vec();
        s.sort_unstable();
        s == (0..n).collect::<Vec<_>>()
    }

    #[test]
    fn strategy_names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(Strategy::parse("Round-Robin"), Some(Strategy::RoundRobin));
        assert_eq!(
            Strategy::parse("weighted_random"),
            Some(Strategy::WeightedRandom)
        );
        assert_eq!(Strategy::parse("fastest"), None);
        assert_eq!(Strategy::default(), Strategy::WeightedRandom);
    }

    #[test]
    fn every_strategy_returns_a_permutation() {
        let s = stats(7);
        s[2].observe_latency(Duration::from_millis(5));
        s[4].observe_latency(Duration::from_millis(1));
        let _busy = s[3].start();
        let mut c = cands(&s, &[1, 0, 3, 5, 1, 0, 2]);
        for (i, x) in c.iter_mut().enumerate() {
            x.priority = (i % 3) as u32;
            x.cost = (i % 2 == 0).then_some(i as f64);
        }
        c[5].cost = Some(f64::NAN);
        let rr = AtomicUsize::new(0);
        for s in Strategy::ALL {
            for n in 0..=c.len() {
                for _ in 0..50 {
                    let o = order(s, &c[..n], &rr);
                    assert!(is_permutation(&o, n), "{s:?} n={n}: {o:?}");
                }
            }
        }
    }

    #[test]
    fn weighted_distribution_within_tolerance() {
        let s = stats(4);
        let c = cands(&s, &[1, 2, 7, 0]);
        let rr = AtomicUsize::new(0);
        let mut first = [0u32; 4];
        let mut second_given_2 = [0u32; 4];
        for _ in 0..10_000 {
            let o = order(Strategy::WeightedRandom, &c, &rr);
            first[o[0]] += 1;
            if o[0] == 2 {
                second_given_2[o[1]] += 1;
            }
            assert_eq!(o[3], 3, "weight 0 last");
        }
        // Expected 1000 / 2000 / 7000; 4+ standard deviations of slack.
        assert!((880..=1120).contains(&first[0]), "{first:?}");
        assert!((1840..=2160).contains(&first[1]), "{first:?}");
        assert!((6800..=7200).contains(&first[2]), "{first:?}");
        // Without replacement: after 2, it is 1:2 between 0 and 1.
        let share = f64::from(second_given_2[1]) / f64::from(first[2]);
        assert!((0.62..0.72).contains(&share), "{share}");
    }

    #[test]
    fn round_robin_rotates() {
        let s = stats(3);
        let c = cands(&s, &[1, 1, 1]);
        let rr = AtomicUsize::new(0);
        let firsts: Vec<Vec<usize>> = (0..4)
            .map(|_| order(Strategy::RoundRobin, &c, &rr))
            .collect();
        assert_eq!(
            firsts,
            [vec![0, 1, 2], vec![1, 2, 0], vec![2, 0, 1], vec![0, 1, 2]]
        );
    }

    #[test]
    fn least_outstanding_prefers_idle() {
        let s = stats(3);
        let c = cands(&s, &[1, 1, 1]);
        let rr = AtomicUsize::new(0);
        let g0 = [s[0].start(), s[0].start()];
        let g2 = s[2].start();
        assert_eq!(s[0].outstanding(), 2);
        for _ in 0..100 {
            assert_eq!(order(Strategy::LeastOutstanding, &c, &rr), [1, 2, 0]);
        }
        drop(g0);
        assert_eq!(s[0].outstanding(), 0);
        let mut firsts = [0; 3];
        for _ in 0..1000 {
            let o = order(Strategy::LeastOutstanding, &c, &rr);
            assert_eq!(o[2], 2);
            firsts[o[0]] += 1;
        }
        assert!(
            firsts[0] > 350 && firsts[1] > 350,
            "ties random: {firsts:?}"
        );
        drop(g2);
        assert_eq!(s[2].outstanding(), 0);
    }

    #[test]
    fn lowest_latency_prefers_faster_and_measures_new() {
        let s = stats(3);
        let c = cands(&s, &[1, 1, 1]);
        let rr = AtomicUsize::new(0);
        assert_eq!(s[0].latency(), None);
        s[0].observe_latency(Duration::from_millis(100));
        s[1].observe_latency(Duration::from_millis(10));
        // s[2] unmeasured: it goes first whenever sampled, and second otherwise.
        let mut first = [0; 3];
        for _ in 0..1000 {
            let o = order(Strategy::LowestLatency, &c, &rr);
            first[o[0]] += 1;
            assert_eq!(&o[1..], if o[0] == 2 { &[1, 0] } else { &[2, 0] }, "{o:?}");
        }
        assert_eq!(first[0], 0, "the slowest never wins a pair");
        assert!(first[2] > 550, "{first:?}"); // sampled in 2 of 3 pairs
        s[2].observe_latency(Duration::from_millis(50));
        for _ in 0..100 {
            let o = order(Strategy::LowestLatency, &c, &rr);
            assert_ne!(o[0], 0);
            assert_eq!(o[2], 0);
        }
        // EWMA: 50 → 50 + 0.3 × (150 − 50) = 80.
        s[2].observe_latency(Duration::from_millis(150));
        assert_eq!(s[2].latency(), Some(Duration::from_millis(80)));
        let two = cands(&s[..2], &[1, 1]);
        for _ in 0..100 {
            assert_eq!(order(Strategy::LowestLatency, &two, &rr), [1, 0]);
        }
    }

    #[test]
    fn lowest_cost_order() {
        let s = stats(5);
        let mut c = cands(&s, &[1, 5, 1, 2, 1]);
        c[0].cost = Some(3.0);
        c[1].cost = None;
        c[2].cost = Some(1.5);
        c[3].cost = Some(3.0);
        c[4].cost = Some(0.5);
        let rr = AtomicUsize::new(0);
        for _ in 0..100 {
            assert_eq!(order(Strategy::LowestCost, &c, &rr), [4, 2, 3, 0, 1]);
        }
    }

    #[test]
    fn priority_order() {
        let s = stats(4);
        let mut c = cands(&s, &[1, 1, 3, 1]);
        for (x, p) in c.iter_mut().zip([2, 0, 0, 1]) {
            x.priority = p;
        }
        let rr = AtomicUsize::new(0);
        let mut first = [0; 4];
        for _ in 0..4000 {
            let o = order(Strategy::Priority, &c, &rr);
            assert_eq!(&o[2..], [3, 0]);
            first[o[0]] += 1;
        }
        // Within priority 0, weight 3 vs 1.
        assert!((2800..=3200).contains(&first[2]), "{first:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn in_flight_counts_across_tasks() {
        let st = Arc::new(EndpointStats::new());
        let barrier = Arc::new(tokio::sync::Barrier::new(65));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (st, barrier) = (st.clone(), barrier.clone());
                tokio::spawn(async move {
                    let _g = st.start();
                    st.observe_latency(Duration::from_millis(10));
                    barrier.wait().await;
                    barrier.wait().await;
                })
            })
            .collect();
        barrier.wait().await;
        assert_eq!(st.outstanding(), 64);
        assert_eq!(st.latency(), Some(Duration::from_millis(10)));
        barrier.wait().await;
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(st.outstanding(), 0);
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<EndpointStats>();
        send_sync::<InFlight>();
    }
}
