//! Giving freed memory back to the OS once an I/O worker goes quiet.
//!
//! A memory allocator keeps pages a thread freed so the next burst can
//! reuse them. mimalloc returns them lazily, from inside later allocator
//! calls on the same thread, so a worker that goes idle after a load peak
//! would keep its peak footprint until its next request (bench/report.md
//! measured several MiB per worker). Each I/O worker therefore runs a small
//! task: after requests, once the worker has served none for
//! [`QUIET`], it calls the allocator's collect hook; then twice more, one
//! and two upstream pool timeouts later, because the pooled upstream
//! connections the burst opened are dropped only then (hyper's pool checks
//! once per timeout) and their buffers are freed without any request to
//! trigger a collect. Then it sleeps until the next request: an idle
//! gateway does not wake for it. A request at any point starts over.
//!
//! The control runtime's thread, which frees the usage records and runs
//! the batch writer, does the same when the usage drain goes quiet
//! (`usage.rs`, [`collect_here`]); it alone also asks for process-wide
//! trimming ([`Reach::Process`]: the C library's malloc arenas, where
//! SQLite allocates), so that is done once per quiet spell, not once per
//! thread.
//!
//! The hook is whatever the binary registers with [`set_hook`] (the binary
//! owns the global allocator; an embedding program without one gets no
//! task). The request path pays one thread-local increment per request.

use std::cell::Cell;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a worker must serve nothing before its memory is collected.
pub const QUIET: Duration = Duration::from_secs(1);

/// What a collect call should cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The calling thread's own allocator state (an I/O worker).
    Thread,
    /// That, and memory shared by the whole process.
    Process,
}

static HOOK: OnceLock<fn(Reach)> = OnceLock::new();

thread_local! {
    /// Requests this worker has started, and whether its trim task is awake.
    static SEEN: Cell<(u64, bool)> = const { Cell::new((0, false)) };
    static WAKE: std::cell::RefCell<Option<Arc<Notify>>> = const { std::cell::RefCell::new(None) };
}

/// Register the allocator's collect function (called on the quiet thread
/// itself, which is what per-thread allocators need). First call wins.
pub fn set_hook(f: fn(Reach)) {
    let _ = HOOK.set(f);
}

/// Call the hook now, on this thread, process-wide (the control thread,
/// which knows itself when it has gone quiet).
pub(crate) fn collect_here() {
    if let Some(hook) = HOOK.get() {
        hook(Reach::Process);
    }
}

/// Note a request on this thread; wakes the trim task after a quiet spell.
#[inline]
pub(crate) fn activity() {
    SEEN.with(|s| {
        let (n, awake) = s.get();
        s.set((n.wrapping_add(1), true));
        if !awake {
            WAKE.with(|w| {
                if let Some(n) = w.borrow().as_ref() {
                    n.notify_one();
                }
            });
        }
    });
}

/// Start this worker's trim task (on the current runtime, which must be
/// the worker's own current-thread runtime); `late` is the upstream pool's
/// idle timeout. No hook: nothing to do.
pub(crate) fn spawn_on_worker(late: Duration) {
    let Some(&hook) = HOOK.get() else {
        return;
    };
    let notify = Arc::new(Notify::new());
    WAKE.with(|w| *w.borrow_mut() = Some(notify.clone()));
    tokio::spawn(async move {
        loop {
            // Asleep until a request comes (`activity` sees `awake == false`).
            if !SEEN.with(|s| s.get().1) {
                notify.notified().await;
            }
            // Awake: wait for a full quiet interval, then collect once.
            let mut last = SEEN.with(|s| s.get().0);
            loop {
                tokio::time::sleep(QUIET).await;
                let now = SEEN.with(|s| s.get().0);
                if now == last {
                    break;
                }
                last = now;
            }
            SEEN.with(|s| s.set((last, false)));
            hook(Reach::Thread);
            for _ in 0..2 {
                tokio::select! {
                    // A request: back to waiting for a quiet interval.
                    () = notify.notified() => break,
                    () = tokio::time::sleep(late) => hook(Reach::Thread),
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        // Per thread: the hook is process-global, and another test's usage
        // drain may call it from its own thread.
        static CALLS: Cell<usize> = const { Cell::new(0) };
    }

    fn count(reach: Reach) {
        assert_eq!(
            reach,
            Reach::Thread,
            "a worker collects its own thread only"
        );
        CALLS.with(|c| c.set(c.get() + 1));
    }

    fn calls() -> usize {
        CALLS.with(Cell::get)
    }

    /// Quiet → no call; a burst → a call after `QUIET` and one per `late`
    /// twice more; then nothing (the task sleeps on the notify, not on a
    /// timer); a request during the late waits starts over.
    #[tokio::test(start_paused = true)]
    async fn collects_after_a_burst_and_after_the_pool_expires() {
        let late = QUIET * 10;
        set_hook(count);
        spawn_on_worker(late);
        tokio::time::sleep(QUIET * 50).await;
        assert_eq!(calls(), 0, "idle from the start");
        for _ in 0..10 {
            activity();
            tokio::time::sleep(QUIET / 4).await;
        }
        assert_eq!(calls(), 0, "busy: not yet");
        tokio::time::sleep(QUIET * 2).await;
        assert_eq!(calls(), 1, "one collect after the burst");
        tokio::time::sleep(late).await;
        assert_eq!(calls(), 2, "one pool timeout later");
        tokio::time::sleep(late).await;
        assert_eq!(calls(), 3, "two pool timeouts later");
        tokio::time::sleep(late * 10).await;
        assert_eq!(calls(), 3, "nothing more while idle");
        activity();
        tokio::time::sleep(QUIET * 2).await;
        assert_eq!(calls(), 4, "the next burst is collected too");
        activity();
        tokio::time::sleep(QUIET / 2).await;
        assert_eq!(
            calls(),
            4,
            "a request during the late wait: no late collect yet"
        );
        tokio::time::sleep(QUIET * 2).await;
        assert_eq!(calls(), 5, "its own quiet interval first");
    }
}
