//! Live counters of long work (import, sync, verify) that the command line turns into a
//! progress bar on a terminal or periodic log lines otherwise, and the words both show.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration};

/// A request to stop long work early (Ctrl-C, SIGTERM): the work ends at its next
/// safe point, keeping what is finished.
#[derive(Debug, Default)]
pub struct Stop {
    requested: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Stop {
    /// Asks the work to stop.
    pub fn request(&self) {
        self.requested
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Completes once a stop is requested.
    pub async fn requested(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_requested() {
                return;
            }
            notified.await;
        }
    }
}

/// Counters updated by the worker and read by whoever displays them.
#[derive(Debug, Default)]
pub struct Progress {
    /// Set to end the work early, keeping what is finished.
    pub stop: Stop,
    /// Items (files, packages) to process; 0 until known.
    pub total: AtomicUsize,
    /// Items processed, successfully or not.
    pub done: AtomicUsize,
    /// Bytes read or transferred (for a resumed download, what an earlier run fetched
    /// counts too).
    pub bytes: AtomicU64,
    /// Bytes the work will read or transfer in all; 0 when not known.
    pub bytes_total: AtomicU64,
    /// What the work is doing before it counts items (a sync fetching metadata) or
    /// once they are done (a sync writing catalog rows, publishing).
    stage: std::sync::Mutex<Option<Stage>>,
}

/// A [`Progress`]'s stage: what, since when, and whether it is shown instead of the
/// counted items (set once they are done).
#[derive(Debug)]
struct Stage {
    what: String,
    since: Instant,
    over_items: bool,
}

impl Progress {
    /// Says what the work is doing until it counts items ("fetching URL").
    pub fn set_stage(&self, what: impl Into<String>) {
        self.put_stage(what.into(), false);
    }

    /// Says what the work is doing once its counted items are done ("writing the
    /// catalog rows", "publishing"): shown instead of the counts from now on.
    pub fn set_closing_stage(&self, what: impl Into<String>) {
        self.put_stage(what.into(), true);
    }

    fn put_stage(&self, what: String, over_items: bool) {
        if let Ok(mut stage) = self.stage.lock() {
            *stage = Some(Stage {
                what,
                since: Instant::now(),
                over_items,
            });
        }
    }

    /// The stage to show at `now` while `total` items are counted.
    fn stage(&self, now: Instant, total: usize) -> Option<(String, Duration)> {
        let stage = self.stage.lock().ok()?;
        stage
            .as_ref()
            .filter(|s| total == 0 || s.over_items)
            .map(|s| (s.what.clone(), now.saturating_duration_since(s.since)))
    }
}

/// A moment's reading of a [`Progress`], with the byte rate measured by a [`Rate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub done: usize,
    pub total: usize,
    pub bytes: u64,
    pub bytes_total: u64,
    /// Bytes per second lately.
    pub rate: u64,
    /// What the work does before it counts items or once they are done, and for how
    /// long it has.
    pub stage: Option<(String, Duration)>,
}

impl Reading {
    /// The line to show: the stage ("fetching https://…/repomd.xml, for 12 seconds")
    /// if there is one, else "VERB 3/10 files, …".
    pub fn line(&self, verb: &str) -> String {
        match &self.stage {
            Some((what, since)) => {
                format!("{what}, for {}", HumanDuration(*since))
            }
            _ => format!("{verb} {}", self.describe()),
        }
    }

    /// "3/10 files, 12.00 MiB of 40.00 MiB, 2.00 MiB/s, 14 seconds left": the time left
    /// only when the total bytes and a rate are known.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "{}/{} files, {}",
            self.done,
            self.total,
            HumanBytes(self.bytes)
        );
        if self.bytes_total > 0 {
            out.push_str(&format!(" of {}", HumanBytes(self.bytes_total)));
        }
        out.push_str(&format!(", {}/s", HumanBytes(self.rate)));
        if self.bytes_total > 0 && self.rate > 0 {
            let left = self.bytes_total.saturating_sub(self.bytes) / self.rate;
            out.push_str(&format!(
                ", {} left",
                HumanDuration(Duration::from_secs(left))
            ));
        }
        out
    }

    /// The bar's position and length: bytes when their total is known, else files.
    pub fn bar(&self) -> (u64, u64) {
        if self.bytes_total > 0 {
            (self.bytes.min(self.bytes_total), self.bytes_total)
        } else {
            (self.done as u64, self.total as u64)
        }
    }
}

/// Measures the byte rate of a [`Progress`] over windows of a given length.
#[derive(Debug)]
pub struct Rate {
    window: Duration,
    since: Instant,
    bytes_then: u64,
    rate: u64,
}

impl Rate {
    pub fn new(window: Duration) -> Rate {
        Rate {
            window,
            since: Instant::now(),
            bytes_then: 0,
            rate: 0,
        }
    }

    /// Reads `p` at `now`; the second value is true when a window just closed (the
    /// rate was measured again: time for a log line).
    pub fn read(&mut self, p: &Progress, now: Instant) -> (Reading, bool) {
        let bytes = p.bytes.load(Relaxed);
        let elapsed = now.saturating_duration_since(self.since);
        let closed = elapsed >= self.window;
        if closed {
            self.rate =
                (bytes.saturating_sub(self.bytes_then) as f64 / elapsed.as_secs_f64()) as u64;
            (self.since, self.bytes_then) = (now, bytes);
        }
        let total = p.total.load(Relaxed);
        let reading = Reading {
            done: p.done.load(Relaxed),
            total,
            bytes,
            bytes_total: p.bytes_total.load(Relaxed),
            rate: self.rate,
            stage: p.stage(now, total),
        };
        (reading, closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_names_files_bytes_rate_and_time_left() {
        let r = Reading {
            done: 3,
            total: 10,
            bytes: 12 << 20,
            bytes_total: 40 << 20,
            rate: 2 << 20,
            stage: None,
        };
        assert_eq!(
            r.describe(),
            "3/10 files, 12.00 MiB of 40.00 MiB, 2.00 MiB/s, 14 seconds left"
        );
        assert_eq!(r.bar(), (12 << 20, 40 << 20));
        // Without a byte total (an import), the bar counts files and no time is guessed.
        let r = Reading {
            bytes_total: 0,
            done: 10,
            ..r
        };
        assert_eq!(r.describe(), "10/10 files, 12.00 MiB, 2.00 MiB/s");
        assert_eq!(
            r.line("importing"),
            "importing 10/10 files, 12.00 MiB, 2.00 MiB/s"
        );
        assert_eq!(r.bar(), (10, 10));
    }

    #[test]
    fn before_items_are_counted_the_stage_is_shown_not_zero_files() {
        let p = Progress::default();
        let start = Instant::now();
        let mut rate = Rate::new(Duration::from_secs(1));
        let (r, _) = rate.read(&p, start);
        assert_eq!(r.line("downloading"), "downloading 0/0 files, 0 B, 0 B/s");
        p.set_stage("fetching http://up/repodata/repomd.xml");
        let (r, _) = rate.read(&p, Instant::now() + Duration::from_secs(20));
        assert_eq!(
            r.line("downloading"),
            "fetching http://up/repodata/repomd.xml, for 20 seconds"
        );
        p.total.store(3, Relaxed);
        let (r, _) = rate.read(&p, Instant::now());
        assert!(r.line("downloading").starts_with("downloading 0/3 files"));
    }

    #[test]
    fn once_the_items_are_done_a_closing_stage_is_shown_instead_of_the_counts() {
        let p = Progress::default();
        let mut rate = Rate::new(Duration::from_secs(1));
        p.set_stage("checking which packages the pool holds");
        p.total.store(3, Relaxed);
        p.done.store(3, Relaxed);
        let (r, _) = rate.read(&p, Instant::now());
        assert!(r.line("downloading").starts_with("downloading 3/3 files"));
        p.set_closing_stage("m: writing the catalog rows of 3 new packages");
        let (r, _) = rate.read(&p, Instant::now() + Duration::from_secs(7));
        assert_eq!(
            r.line("downloading"),
            "m: writing the catalog rows of 3 new packages, for 7 seconds"
        );
    }

    #[test]
    fn the_rate_is_measured_per_window() {
        let p = Progress::default();
        let start = Instant::now();
        let mut rate = Rate::new(Duration::from_secs(1));
        rate.since = start;
        p.bytes.store(1000, Relaxed);
        let (r, closed) = rate.read(&p, start + Duration::from_millis(500));
        assert!(!closed);
        assert_eq!(r.rate, 0, "no window has closed yet");
        p.bytes.store(4000, Relaxed);
        let (r, closed) = rate.read(&p, start + Duration::from_secs(2));
        assert!(closed);
        assert_eq!(r.rate, 2000);
        p.bytes.store(5000, Relaxed);
        let (r, closed) = rate.read(&p, start + Duration::from_millis(2500));
        assert!(!closed);
        assert_eq!(
            (r.rate, r.bytes),
            (2000, 5000),
            "the rate holds until the next window"
        );
    }
}
