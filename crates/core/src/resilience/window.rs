//! A lock-free sliding-window counter: a ring of [`BUCKETS`] time buckets,
//! each holding `C` counters ("channels"), rotated lazily by time slot.
//!
//! Every counter is one `AtomicU64` packing the bucket's *generation* (the
//! low 32 bits of its time-slot number) in the high half and the count in the
//! low half. An increment that finds a stale generation restarts the count at
//! 1 in the same compare-and-swap, so rotation needs no lock and never loses
//! an increment made in the current slot. A read sums the counters whose
//! generation is one of the last [`BUCKETS`] slots.
//!
//! The window therefore covers between `(BUCKETS-1)/BUCKETS` and all of the
//! configured duration (the current bucket is partial).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Number of time buckets in the ring.
pub(crate) const BUCKETS: usize = 10;

const COUNT_MASK: u64 = 0xFFFF_FFFF;

pub(crate) struct Ring<const C: usize> {
    origin: Instant,
    slot_nanos: u64,
    buckets: [[AtomicU64; C]; BUCKETS],
}

impl<const C: usize> Ring<C> {
    /// A ring covering `window` (at least 1 ns per bucket).
    pub(crate) fn new(window: Duration) -> Self {
        let per = window.as_nanos() / BUCKETS as u128;
        Ring {
            origin: Instant::now(),
            slot_nanos: u64::try_from(per).unwrap_or(u64::MAX).max(1),
            buckets: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    /// The time slot `now` falls in.
    pub(crate) fn slot(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(since).unwrap_or(u64::MAX) / self.slot_nanos
    }

    fn cell(&self, slot: u64, channel: usize) -> Option<&AtomicU64> {
        self.buckets
            .get((slot % BUCKETS as u64) as usize)?
            .get(channel)
    }

    /// Add one to `channel` in `slot`'s bucket.
    pub(crate) fn incr(&self, slot: u64, channel: usize) {
        let Some(cell) = self.cell(slot, channel) else {
            return;
        };
        let gen = slot & COUNT_MASK;
        let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            Some(if v >> 32 == gen {
                // Saturate rather than carry into the generation bits.
                if v & COUNT_MASK == COUNT_MASK {
                    v
                } else {
                    v + 1
                }
            } else {
                (gen << 32) | 1
            })
        });
    }

    /// Take back one increment made in `slot` (no-op if the bucket has
    /// rotated since: the increment has already left the window).
    pub(crate) fn decr(&self, slot: u64, channel: usize) {
        let Some(cell) = self.cell(slot, channel) else {
            return;
        };
        let gen = slot & COUNT_MASK;
        let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            (v >> 32 == gen && v & COUNT_MASK > 0).then(|| v - 1)
        });
    }

    /// Per-channel sums over the buckets of the last [`BUCKETS`] slots
    /// ending at `slot`.
    pub(crate) fn sums(&self, slot: u64) -> [u64; C] {
        let cur = slot & COUNT_MASK;
        let mut out = [0u64; C];
        for bucket in &self.buckets {
            for (sum, cell) in out.iter_mut().zip(bucket) {
                let v = cell.load(Ordering::Acquire);
                let age = cur.wrapping_sub(v >> 32) & COUNT_MASK;
                if age < BUCKETS as u64 {
                    *sum += v & COUNT_MASK;
                }
            }
        }
        out
    }

    /// Forget everything counted so far (as seen from `slot`): every cell is
    /// stamped with a generation that is already out of the window.
    pub(crate) fn clear(&self, slot: u64) {
        let dead = (slot.wrapping_sub(BUCKETS as u64) & COUNT_MASK) << 32;
        for bucket in &self.buckets {
            for cell in bucket {
                cell.store(dead, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_rotate_out_of_the_window() {
        let r: Ring<2> = Ring::new(Duration::from_secs(10));
        let s0 = r.slot(Instant::now());
        r.incr(s0, 0);
        r.incr(s0, 0);
        r.incr(s0, 1);
        assert_eq!(r.sums(s0), [2, 1]);
        tokio::time::advance(Duration::from_secs(5)).await;
        let s5 = r.slot(Instant::now());
        assert_eq!(s5, s0 + 5);
        r.incr(s5, 0);
        assert_eq!(r.sums(s5), [3, 1]);
        r.decr(s5, 0);
        r.decr(s0, 1); // an old slot's bucket that has not rotated: still taken back
        assert_eq!(r.sums(s5), [2, 0]);
        tokio::time::advance(Duration::from_secs(5)).await;
        let s10 = r.slot(Instant::now());
        assert_eq!(r.sums(s10), [0, 0], "slot 0 is out of the window");
        r.incr(s10, 1); // reuses slot 0's bucket
        assert_eq!(r.sums(s10), [0, 1]);
        r.clear(s10);
        assert_eq!(r.sums(s10), [0, 0]);
        r.incr(s10, 1);
        assert_eq!(r.sums(s10), [0, 1]);
    }
}
