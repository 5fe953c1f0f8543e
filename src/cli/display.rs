//! What the command line shows while work runs (a progress bar on a terminal, log
//! lines otherwise) and how it prints times.

use std::io::IsTerminal;

/// Shows long work's progress on stderr: on a terminal a bar with files, bytes, the
/// byte rate and the time left (drawn once the work is counted); otherwise a log line
/// with the same facts every 5 s.
pub(super) fn show_progress(
    p: std::sync::Arc<crate::app::progress::Progress>,
    verb: &'static str,
) -> Display {
    use std::time::{Duration, Instant};
    let terminal = std::io::stderr().is_terminal();
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let mut bar: Option<indicatif::ProgressBar> = None;
        let mut rate =
            crate::app::progress::Rate::new(Duration::from_secs(if terminal { 1 } else { 5 }));
        loop {
            let (reading, closed) = rate.read(&p, Instant::now());
            if terminal && (reading.total > 0 || reading.stage.is_some()) {
                let bar = bar.get_or_insert_with(|| {
                    let bar = indicatif::ProgressBar::new(0);
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(&format!(
                            "{{spinner}} {verb} [{{bar:30}}] {{msg}}"
                        ))
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    if let Ok(mut on_screen) = BAR.lock() {
                        *on_screen = Some(bar.clone());
                    }
                    bar
                });
                let (position, length) = reading.bar();
                bar.set_length(length);
                bar.set_position(position);
                if reading.total > 0 && reading.stage.is_none() {
                    bar.set_message(reading.describe());
                } else {
                    bar.set_message(reading.line(verb));
                }
            } else if !terminal && closed {
                tracing::info!("{}", reading.line(verb));
            }
            // Counted items being done does not end the display: the work may go on
            // in a closing stage (writing rows, publishing) until `finish`.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stopped.notified() => break,
            }
        }
        // Cleared, so that what the command prints next starts on a clean line.
        if let Some(bar) = &bar {
            if let Ok(mut on_screen) = BAR.lock() {
                *on_screen = None;
            }
            bar.finish_and_clear();
        }
    });
    Display { stop, task }
}

/// A running [`show_progress`].
pub(super) struct Display {
    stop: std::sync::Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Display {
    /// Stops the display and clears its bar.
    pub(super) async fn finish(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

pub(super) fn fmt_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// The progress bar on screen, if any (see [`show_progress`]).
pub(super) static BAR: std::sync::Mutex<Option<indicatif::ProgressBar>> =
    std::sync::Mutex::new(None);

/// Standard error for log lines: while a progress bar is on screen, each line is
/// written with the bar taken off and drawn again below it, so the two never share a
/// line.
pub(super) struct AroundTheBar;

impl std::io::Write for AroundTheBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = BAR.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Prints one line per snapshot: its name, when it was made and its package count.
pub(super) fn print_snapshots<'a>(snapshots: impl IntoIterator<Item = (&'a str, i64, i64)>) {
    for (name, created_at, packages) in snapshots {
        out!("  {name} ({}, {packages} packages)", fmt_time(created_at));
    }
}
