//! The HTTP access log (`[server] access_log`): one line per answered request on
//! standard output, in NCSA common or combined format or as JSON.
//!
//! Serving workers never write to standard output. Each formats its lines into a
//! buffer of its own ([`WorkerLog`]) and hands the whole buffer to one writer thread
//! when it holds 32 KiB, and every 200 ms (and when the worker stops). The hand-off
//! queue is bounded: when it is full (standard output blocked, a slow journal) the
//! buffer is dropped and its lines counted in `cairn_http_access_log_dropped_total`,
//! so logging can never stall serving or grow memory.

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Duration;

use crate::app::config::AccessLog;

/// Buffers waiting for the writer at most.
const QUEUE: usize = 256;
/// A worker hands its buffer over once it holds this much.
const HAND_OVER: usize = 32 * 1024;
/// ... and at least this often.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

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

/// The access log's writer side, shared by the workers.
#[derive(Clone)]
pub struct AccessLogger {
    format: AccessLog,
    buffers: SyncSender<Vec<u8>>,
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
        let (buffers, rx) = sync_channel(QUEUE);
        let writer = std::thread::Builder::new()
            .name("cairn-access-log".into())
            .spawn(move || write_buffers(rx))?;
        Ok(Some((AccessLogger { format, buffers }, writer)))
    }

    /// A worker's own log.
    pub fn for_worker(&self) -> WorkerLog {
        WorkerLog {
            logger: self.clone(),
            buf: RefCell::new(Vec::with_capacity(HAND_OVER * 2)),
            stamp: RefCell::new(Stamp::default()),
        }
    }
}

/// One worker's access log: lines are formatted into its buffer (no lock, no
/// allocation per line) and handed over in bulk.
pub struct WorkerLog {
    logger: AccessLogger,
    buf: RefCell<Vec<u8>>,
    stamp: RefCell<Stamp>,
}

/// The formatted time of the current second (formatted once per second).
#[derive(Default)]
struct Stamp {
    second: i64,
    ncsa: String,
    rfc3339: String,
}

impl Stamp {
    fn refresh(&mut self) {
        let now = time::OffsetDateTime::now_utc();
        let second = now.unix_timestamp();
        if second == self.second && !self.ncsa.is_empty() {
            return;
        }
        self.second = second;
        self.ncsa = now
            .format(time::macros::format_description!(
                "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
            ))
            .unwrap_or_default();
        self.rfc3339 = now
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .unwrap_or_default();
    }
}

impl WorkerLog {
    /// Adds one line; hands the buffer over when it is full enough.
    pub fn log(&self, entry: &Entry<'_>) {
        let full = {
            let mut stamp = self.stamp.borrow_mut();
            stamp.refresh();
            let mut buf = self.buf.borrow_mut();
            match self.logger.format {
                AccessLog::Off => return,
                AccessLog::Common => ncsa(&mut buf, &stamp.ncsa, entry, false),
                AccessLog::Combined => ncsa(&mut buf, &stamp.ncsa, entry, true),
                AccessLog::Json => json(&mut buf, &stamp.rfc3339, entry),
            }
            buf.push(b'\n');
            buf.len() >= HAND_OVER
        };
        if full {
            self.flush();
        }
    }

    /// Hands what is buffered to the writer (dropped and counted if it is behind).
    pub fn flush(&self) {
        let lines = {
            let mut buf = self.buf.borrow_mut();
            if buf.is_empty() {
                return;
            }
            std::mem::replace(&mut *buf, Vec::with_capacity(HAND_OVER * 2))
        };
        if let Err(e) = self.logger.buffers.try_send(lines) {
            let lines = match e {
                std::sync::mpsc::TrySendError::Full(b)
                | std::sync::mpsc::TrySendError::Disconnected(b) => b,
            };
            let count = lines.iter().filter(|&&b| b == b'\n').count();
            crate::app::metrics::metrics()
                .access_log_dropped
                .inc_by(count as u64);
        }
    }
}

fn write_buffers(rx: Receiver<Vec<u8>>) {
    let mut failed = false;
    while let Ok(buf) = rx.recv() {
        if failed {
            continue; // drained, so that workers never find the queue full for good
        }
        // Under the stdout lock only for the write (the server prints there too).
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(&buf).and_then(|()| out.flush()) {
            failed = true;
            tracing::error!("access log: writing to standard output failed, logging stops: {e}");
        }
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

/// Appends `value` for a quoted field of the NCSA formats: quotes, backslashes and
/// control characters escaped, so a hostile request cannot forge a line or a field.
fn escaped(out: &mut Vec<u8>, value: &str) {
    for c in value.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
}

fn ncsa(out: &mut Vec<u8>, stamp: &str, e: &Entry<'_>, combined: bool) {
    let _ = write!(out, "{} - - [{stamp}] \"", e.peer.ip());
    escaped(out, e.method);
    out.push(b' ');
    escaped(out, e.target);
    let _ = write!(out, " {}\" {} {}", version(e.version), e.status, e.bytes);
    if combined {
        for field in [e.referer, e.user_agent] {
            out.extend_from_slice(b" \"");
            escaped(out, field.unwrap_or("-"));
            out.push(b'"');
        }
    }
}

#[derive(serde::Serialize)]
struct JsonLine<'a> {
    time: &'a str,
    remote: std::net::IpAddr,
    method: &'a str,
    target: &'a str,
    protocol: &'static str,
    status: u16,
    bytes: u64,
    duration_ms: f64,
    referer: Option<&'a str>,
    user_agent: Option<&'a str>,
}

fn json(out: &mut Vec<u8>, stamp: &str, e: &Entry<'_>) {
    let line = JsonLine {
        time: stamp,
        remote: e.peer.ip(),
        method: e.method,
        target: e.target,
        protocol: version(e.version),
        status: e.status,
        bytes: e.bytes,
        duration_ms: (e.duration.as_secs_f64() * 1_000_000.0).round() / 1000.0,
        referer: e.referer,
        user_agent: e.user_agent,
    };
    let _ = serde_json::to_writer(out, &line);
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

    fn line(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn common_and_combined_lines_escape_what_could_forge_a_field() {
        let mut stamp = Stamp::default();
        stamp.refresh();
        let text = line(|o| ncsa(o, &stamp.ncsa, &entry("/repos/a/latest/x.rpm", None), false));
        assert!(text.starts_with("127.0.0.1 - - ["), "{text}");
        assert!(text.contains(" +0000] "), "{text}");
        assert!(
            text.ends_with("] \"GET /repos/a/latest/x.rpm HTTP/1.1\" 200 1234"),
            "{text}"
        );
        let text = line(|o| ncsa(o, &stamp.ncsa, &entry("/", Some("evil\" 200 1\nx")), true));
        assert!(text.ends_with(" \"-\" \"evil\\\" 200 1\\x0ax\""), "{text}");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn json_lines_parse_back() {
        let mut stamp = Stamp::default();
        stamp.refresh();
        assert!(stamp.rfc3339.ends_with('Z'), "{}", stamp.rfc3339);
        let line = line(|o| json(o, &stamp.rfc3339, &entry("/a?b=\"c\"", Some("libdnf"))));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["target"], "/a?b=\"c\"");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 1234);
        assert_eq!(v["user_agent"], "libdnf");
        assert_eq!(v["referer"], serde_json::Value::Null);
        assert_eq!(v["duration_ms"], 1.5);
    }
}
