//! The HTTP access log (`[server] access_log`): one line per answered request on
//! standard output, in NCSA common or combined format or as JSON.
//!
//! Serving workers never write: each hands its line to one writer thread through a
//! bounded queue and goes on. When the queue is full (standard output blocked, a slow
//! journal) the line is dropped and counted in `cairn_http_access_log_dropped_total`,
//! so logging can never stall serving. The writer flushes whenever the queue runs dry.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use crate::app::config::AccessLog;

/// Lines waiting for the writer at most.
const QUEUE: usize = 16 * 1024;

/// One answered request, as the log records it.
pub struct Entry<'a> {
    pub peer: SocketAddr,
    pub method: &'a str,
    /// The request target as sent (path and query).
    pub target: &'a str,
    pub version: hyper::Version,
    pub status: u16,
    /// Body bytes of the answer (its length; 0 for HEAD).
    pub bytes: u64,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub duration: Duration,
}

/// A worker's handle on the access log.
#[derive(Clone)]
pub struct AccessLogger {
    format: AccessLog,
    lines: SyncSender<String>,
}

impl AccessLogger {
    /// Starts the writer thread (None when the log is off). The thread ends, after
    /// writing everything queued, once every logger is dropped.
    pub fn start(
        format: AccessLog,
    ) -> std::io::Result<Option<(AccessLogger, std::thread::JoinHandle<()>)>> {
        if format == AccessLog::Off {
            return Ok(None);
        }
        let (lines, rx) = sync_channel(QUEUE);
        let writer = std::thread::Builder::new()
            .name("cairn-access-log".into())
            .spawn(move || write_lines(rx))?;
        Ok(Some((AccessLogger { format, lines }, writer)))
    }

    /// Queues one line (dropped and counted when the writer is behind).
    pub fn log(&self, entry: &Entry<'_>) {
        let line = match self.format {
            AccessLog::Off => return,
            AccessLog::Common => ncsa(entry, false),
            AccessLog::Combined => ncsa(entry, true),
            AccessLog::Json => json(entry),
        };
        match self.lines.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                crate::app::metrics::metrics().access_log_dropped.inc();
            }
        }
    }
}

fn write_lines(rx: Receiver<String>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut failed = false;
    while let Ok(line) = rx.recv() {
        // Everything queued goes out in one write, under the stdout lock only for
        // that write (the server prints on stdout too).
        let mut next = Some(line);
        while let Some(line) = next {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            next = if buf.len() < 64 * 1024 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !failed {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(&buf).and_then(|()| out.flush()) {
                failed = true;
                tracing::error!(
                    "access log: writing to standard output failed, logging stops: {e}"
                );
            }
        }
        buf.clear();
    }
}

fn version(v: hyper::Version) -> &'static str {
    match v {
        hyper::Version::HTTP_09 => "HTTP/0.9",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_2 => "HTTP/2.0",
        hyper::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// A quoted field of the NCSA formats: quotes, backslashes and control characters
/// escaped, so a hostile request cannot forge a line or a field.
fn quoted(out: &mut String, value: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn ncsa(e: &Entry<'_>, combined: bool) -> String {
    use std::fmt::Write as _;
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .unwrap_or_default();
    let mut line = String::with_capacity(160);
    let _ = write!(line, "{} - - [{stamp}] ", e.peer.ip());
    quoted(
        &mut line,
        &format!("{} {} {}", e.method, e.target, version(e.version)),
    );
    let _ = write!(line, " {} {}", e.status, e.bytes);
    if combined {
        line.push(' ');
        quoted(&mut line, e.referer.unwrap_or("-"));
        line.push(' ');
        quoted(&mut line, e.user_agent.unwrap_or("-"));
    }
    line
}

fn json(e: &Entry<'_>) -> String {
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    serde_json::json!({
        "time": time,
        "remote": e.peer.ip().to_string(),
        "method": e.method,
        "target": e.target,
        "protocol": version(e.version),
        "status": e.status,
        "bytes": e.bytes,
        "duration_ms": (e.duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        "referer": e.referer,
        "user_agent": e.user_agent,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(target: &'a str, agent: Option<&'a str>) -> Entry<'a> {
        Entry {
            peer: "127.0.0.1:5555".parse().unwrap(),
            method: "GET",
            target,
            version: hyper::Version::HTTP_11,
            status: 200,
            bytes: 1234,
            referer: None,
            user_agent: agent,
            duration: Duration::from_micros(1500),
        }
    }

    #[test]
    fn common_and_combined_lines_escape_what_could_forge_a_field() {
        let line = ncsa(&entry("/repos/a/latest/x.rpm", None), false);
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(
            line.ends_with("] \"GET /repos/a/latest/x.rpm HTTP/1.1\" 200 1234"),
            "{line}"
        );
        let line = ncsa(&entry("/", Some("evil\" 200 1\nx")), true);
        assert!(line.ends_with(" \"-\" \"evil\\\" 200 1\\x0ax\""), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn json_lines_parse_back() {
        let line = json(&entry("/a?b=\"c\"", Some("libdnf")));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["target"], "/a?b=\"c\"");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 1234);
        assert_eq!(v["user_agent"], "libdnf");
        assert_eq!(v["referer"], serde_json::Value::Null);
        assert_eq!(v["duration_ms"], 1.5);
    }
}
