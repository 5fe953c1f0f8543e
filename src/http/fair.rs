//! Sharing the CPU fairly: a worker that has answered requests back to back for a
//! while gives its CPU to whatever else is runnable there.
//!
//! A worker under sustained load never parks, so the kernel only takes its CPU back at
//! the next scheduler tick (4 ms at `HZ=250`). Any other thread waiting for that CPU
//! (another worker, the machine's own network work, a co-located client) waits that
//! long, and so do the requests it would have handled: the latency tail at saturation
//! was a spike at one and two ticks. Yielding after every [`BUSY_SLICE`] of continuous
//! work bounds that wait. `sched_yield` returns at once when nothing else is runnable.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Continuous work after which a worker yields.
pub const BUSY_SLICE: Duration = Duration::from_micros(500);
/// A gap this long between two requests means the worker was idle (or already lost its
/// CPU): a new busy run starts.
const IDLE_GAP: Duration = Duration::from_micros(100);

/// One worker's current busy run.
#[derive(Debug)]
pub struct BusyRun {
    started: Cell<Instant>,
    last: Cell<Instant>,
    slice: Duration,
}

impl Default for BusyRun {
    fn default() -> Self {
        BusyRun::new(BUSY_SLICE)
    }
}

impl BusyRun {
    pub fn new(slice: Duration) -> BusyRun {
        let now = Instant::now();
        BusyRun {
            started: Cell::new(now),
            last: Cell::new(now),
            slice,
        }
    }

    /// Called as a request starts, with the current time; yields the CPU when this
    /// worker has been busy for a whole slice. Returns whether it yielded.
    pub fn request(&self, now: Instant) -> bool {
        let last = self.last.replace(now);
        if now.saturating_duration_since(last) > IDLE_GAP {
            self.started.set(now);
            return false;
        }
        if now.saturating_duration_since(self.started.get()) < self.slice {
            return false;
        }
        // SAFETY: sched_yield has no arguments and no memory effects.
        unsafe {
            libc::sched_yield();
        }
        self.started.set(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const US: Duration = Duration::from_micros(1);

    #[test]
    fn back_to_back_requests_yield_once_per_slice() {
        let t0 = Instant::now();
        let run = BusyRun::new(MS);
        // Requests 10 µs apart for 4.5 ms: one yield per millisecond of work.
        let yields = (1..=450)
            .filter(|i| run.request(t0 + US * (10 * i)))
            .count();
        assert_eq!(yields, 4, "the run yields after 1, 2, 3 and 4 ms");
    }

    #[test]
    fn an_idle_gap_starts_a_new_run() {
        let t0 = Instant::now();
        let run = BusyRun::new(MS);
        let mut t = t0;
        // 900 µs busy, then a 200 µs gap, then 900 µs busy: never a whole slice.
        for _ in 0..90 {
            t += US * 10;
            assert!(!run.request(t));
        }
        t += US * 200;
        for _ in 0..90 {
            t += US * 10;
            assert!(!run.request(t));
        }
        // Continuing without a gap completes the second run's slice.
        let yielded = (0..20).any(|_| {
            t += US * 10;
            run.request(t)
        });
        assert!(yielded);
    }
}
