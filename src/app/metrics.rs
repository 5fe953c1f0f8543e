//! Prometheus metrics: the process's one registry and every metric it exports.
//!
//! Two kinds live here. Process-local metrics (HTTP serving, syncs and publishes this
//! process ran, the process itself) are prometheus-crate counters, gauges and
//! histograms, except the per-request ones: each serving worker counts into its own
//! [`Serving`] block (relaxed atomics on cache lines no other core writes), and
//! [`Metrics::encode`] sums the workers' blocks when scraped, so a request costs a few
//! uncontended adds. Catalog state (sync history, snapshots,
//! package counts, pool and catalog size, GC and verify results) is the same whichever
//! process changed it, so `cairn serve` renders it from the catalog on a timer
//! (the HTTP layer's `stats` module) and [`Metrics::encode`] appends that block.
//!
//! Naming follows Prometheus conventions: `cairn_` prefix, base units (seconds,
//! bytes), `_total` for counters; labels are route and status classes, repository and
//! view ids, and error kinds, never paths, package names or clients.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// What a request asked for, by URL shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// A package (or any other file of a tree outside `repodata/`).
    Package,
    /// A file under `repodata/`.
    Metadata,
    /// A page: a listing of repositories, snapshots or a tree's directories.
    Page,
    /// `/metrics`, `/healthz`.
    Api,
    /// Refused before routing (bad method, unsafe path).
    Other,
}

impl RouteClass {
    pub const ALL: [RouteClass; 5] = [
        RouteClass::Package,
        RouteClass::Metadata,
        RouteClass::Page,
        RouteClass::Api,
        RouteClass::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RouteClass::Package => "package",
            RouteClass::Metadata => "metadata",
            RouteClass::Page => "page",
            RouteClass::Api => "api",
            RouteClass::Other => "other",
        }
    }
}

const CODES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

fn code_index(status: u16) -> usize {
    match status {
        0..=299 => 0,
        300..=399 => 1,
        400..=499 => 2,
        _ => 3,
    }
}

/// Upper bounds of the request-duration histogram buckets, in seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const CLASSES: usize = 5;

/// One serving worker's request counters (written by that worker only).
#[derive(Default)]
pub struct Serving {
    requests: [AtomicU64; CLASSES * 4],
    bytes: [AtomicU64; CLASSES],
    /// Per class, how many requests fell in each bucket (not cumulative).
    buckets: [[AtomicU64; DURATION_BUCKETS.len()]; CLASSES],
    sum_nanos: [AtomicU64; CLASSES],
    count: [AtomicU64; CLASSES],
    ranges: AtomicU64,
    not_modified: AtomicU64,
}

impl Serving {
    /// Counts one answered request.
    pub fn request(&self, class: RouteClass, status: u16, elapsed: std::time::Duration) {
        let c = class as usize;
        self.requests[c * CODES.len() + code_index(status)].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(b) = DURATION_BUCKETS.iter().position(|le| secs <= *le) {
            self.buckets[c][b].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos[c].fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        self.count[c].fetch_add(1, Ordering::Relaxed);
        match status {
            206 => self.ranges.fetch_add(1, Ordering::Relaxed),
            304 => self.not_modified.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    /// Counts response body bytes handed to the connection.
    pub fn sent(&self, class: RouteClass, bytes: u64) {
        self.bytes[class as usize].fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    workers: Mutex<Vec<Arc<Serving>>>,
    /// Open client connections.
    pub open_connections: IntGauge,
    /// Connections refused because `max_connections` were open.
    pub rejected_connections: IntCounter,
    /// Access log lines dropped because the writer was behind.
    pub access_log_dropped: IntCounter,
    /// Upstream errors of syncs this process ran, by repository and kind.
    pub upstream_errors: IntCounterVec,
    /// How late the last scheduled sync of a repository started, in seconds.
    pub schedule_lag: IntGaugeVec,
    /// Metadata renders (publications made, not reused) of this process.
    pub publish_duration: Histogram,
    /// Audit rows this process could not write.
    pub audit_write_failures: IntCounter,
    /// API requests refused for their token, by reason.
    pub api_auth_failures: IntCounterVec,
    /// Times the server loaded its index anew (something was published).
    pub index_loads: IntCounter,
    /// Requests for guarded trees whose token a worker remembered accepting.
    pub guard_remembered: IntCounter,
    /// ... and those whose token was checked in the catalog.
    pub guard_checked: IntCounter,
    /// Packages fetched when a client asked (on_demand, streamed), by outcome.
    pub ondemand_fetches: IntCounterVec,
    /// Webhook delivery attempts of this process, by outcome.
    pub webhook_deliveries: IntCounterVec,
    /// Jobs this process ran to their end, by kind and how they ended.
    pub jobs: IntCounterVec,
    catalog_text: Mutex<String>,
    /// The last catalog read's failure (`None`: the catalog answered), for `/healthz`.
    catalog_error: Mutex<Option<String>>,
}

/// The process's metrics (registered on first use).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Registration fails only for invalid or duplicate names: a programming error
    // caught by the metrics tests, never by input.
    r.unwrap_or_else(|e| panic!("metric registration: {e}"))
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let open_connections = must(IntGauge::new(
            "cairn_http_open_connections",
            "Client connections currently open.",
        ));
        let rejected_connections = must(IntCounter::new(
            "cairn_http_rejected_connections_total",
            "Connections answered 503 and closed because max_connections were open.",
        ));
        let access_log_dropped = must(IntCounter::new(
            "cairn_http_access_log_dropped_total",
            "Access log lines dropped because standard output could not keep up.",
        ));
        let upstream_errors = must(IntCounterVec::new(
            Opts::new(
                "cairn_sync_upstream_errors_total",
                "Upstream errors met by syncs this process ran, by repository and kind.",
            ),
            &["repo", "kind"],
        ));
        let schedule_lag = must(IntGaugeVec::new(
            Opts::new(
                "cairn_sync_schedule_lag_seconds",
                "How late the last scheduled sync of a repository started.",
            ),
            &["repo"],
        ));
        let publish_duration = must(Histogram::with_opts(
            HistogramOpts::new(
                "cairn_publish_duration_seconds",
                "Time to render and store a repository's metadata, for publications this \
                 process rendered.",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        ));
        let audit_write_failures = must(IntCounter::new(
            "cairn_audit_write_failures_total",
            "Changes this process made whose audit row could not be written (logged).",
        ));
        let api_auth_failures = must(IntCounterVec::new(
            Opts::new(
                "cairn_api_auth_failures_total",
                "API requests refused for their token (malformed, unknown, revoked, expired).",
            ),
            &["reason"],
        ));
        for reason in ["malformed", "unknown", "revoked", "expired"] {
            api_auth_failures.with_label_values(&[reason]);
        }
        let index_loads = must(IntCounter::new(
            "cairn_http_index_loads_total",
            "Times the server loaded what it serves anew from the catalog after a change \
             was published (the first load at start not counted).",
        ));
        let guard_checks = must(IntCounterVec::new(
            Opts::new(
                "cairn_http_token_checks_total",
                "Requests for guarded trees (access = \"token\") by how their token was \
                 checked: in the catalog (checked) or by a worker that accepted it within \
                 [server] token_cache (remembered).",
            ),
            &["how"],
        ));
        let guard_remembered = guard_checks.with_label_values(&["remembered"]);
        let guard_checked = guard_checks.with_label_values(&["checked"]);
        let ondemand_fetches = must(IntCounterVec::new(
            Opts::new(
                "cairn_ondemand_fetches_total",
                "Packages of on_demand and streamed repositories fetched from upstream when a \
                 client asked: fetched (verified and kept), streamed (verified, not kept), \
                 shared (a request joined a running fetch), failed (broke off or did not \
                 verify: the client's transfer was cut), unavailable (upstream gave \
                 nothing: answered 502).",
            ),
            &["outcome"],
        ));
        for outcome in ["fetched", "streamed", "shared", "failed", "unavailable"] {
            ondemand_fetches.with_label_values(&[outcome]);
        }
        let webhook_deliveries = must(IntCounterVec::new(
            Opts::new(
                "cairn_webhook_deliveries_total",
                "Webhook delivery attempts: delivered, retried (to be tried again), failed \
                 (given up), lost (could not be queued).",
            ),
            &["outcome"],
        ));
        for outcome in ["delivered", "retried", "failed", "lost"] {
            webhook_deliveries.with_label_values(&[outcome]);
        }
        let jobs = must(IntCounterVec::new(
            Opts::new(
                "cairn_jobs_total",
                "Jobs (API syncs, gc, verify, fetch) this process ran to their end, by kind and state \
                 (succeeded, failed, cancelled).",
            ),
            &["kind", "state"],
        ));
        for kind in ["sync", "gc", "verify", "fetch"] {
            for state in ["succeeded", "failed", "cancelled"] {
                jobs.with_label_values(&[kind, state]);
            }
        }
        let build = must(IntGaugeVec::new(
            Opts::new(
                "cairn_build_info",
                "Version and git commit of the running binary (always 1).",
            ),
            &["version", "commit"],
        ));
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("CAIRN_GIT_COMMIT")])
            .set(1);
        for c in [
            Box::new(open_connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rejected_connections.clone()),
            Box::new(access_log_dropped.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(schedule_lag.clone()),
            Box::new(publish_duration.clone()),
            Box::new(audit_write_failures.clone()),
            Box::new(api_auth_failures.clone()),
            Box::new(guard_checks),
            Box::new(index_loads.clone()),
            Box::new(webhook_deliveries.clone()),
            Box::new(ondemand_fetches.clone()),
            Box::new(jobs.clone()),
            Box::new(build),
            Box::new(prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                "cairn",
            )),
        ] {
            must(registry.register(c));
        }
        Metrics {
            registry,
            workers: Mutex::new(Vec::new()),
            open_connections,
            rejected_connections,
            access_log_dropped,
            upstream_errors,
            schedule_lag,
            publish_duration,
            audit_write_failures,
            api_auth_failures,
            index_loads,
            guard_remembered,
            guard_checked,
            ondemand_fetches,
            webhook_deliveries,
            jobs,
            catalog_text: Mutex::new(String::new()),
            catalog_error: Mutex::new(None),
        }
    }

    /// A new serving worker's counters (included in every scrape from now on).
    pub fn worker(&self) -> Arc<Serving> {
        let w = Arc::new(Serving::default());
        if let Ok(mut all) = self.workers.lock() {
            all.push(w.clone());
        }
        w
    }

    /// The workers' request counters, summed, in the text format. Every series exists
    /// from the start (at zero), so ratios and rates are defined before the first error.
    fn serving_text(&self) -> String {
        let all = match self.workers.lock() {
            Ok(w) => w.clone(),
            Err(_) => Vec::new(),
        };
        let total = |f: &dyn Fn(&Serving) -> u64| -> u64 { all.iter().map(|w| f(w)).sum() };
        let mut e = Exposition::default();
        let mut samples = Vec::new();
        for class in RouteClass::ALL {
            for (i, code) in CODES.iter().enumerate() {
                let idx = class as usize * CODES.len() + i;
                let n = total(&|w| w.requests[idx].load(Ordering::Relaxed));
                samples.push((vec![("class", class.name()), ("code", *code)], n as f64));
            }
        }
        e.family(
            "cairn_http_requests_total",
            "counter",
            "HTTP requests answered, by route class and status class.",
            &samples,
        );
        let bytes: Vec<Sample<'static>> = RouteClass::ALL
            .iter()
            .map(|c| {
                let i = *c as usize;
                let n = total(&|w| w.bytes[i].load(Ordering::Relaxed));
                (vec![("class", c.name())], n as f64)
            })
            .collect();
        e.family(
            "cairn_http_response_bytes_total",
            "counter",
            "Response body bytes handed to connections, by route class.",
            &bytes,
        );
        let series: Vec<_> = RouteClass::ALL
            .iter()
            .map(|c| {
                let i = *c as usize;
                let buckets: Vec<u64> = (0..DURATION_BUCKETS.len())
                    .map(|b| total(&|w| w.buckets[i][b].load(Ordering::Relaxed)))
                    .collect();
                let count = total(&|w| w.count[i].load(Ordering::Relaxed));
                let nanos = total(&|w| w.sum_nanos[i].load(Ordering::Relaxed));
                (("class", c.name()), buckets, count, nanos as f64 / 1e9)
            })
            .collect();
        e.histogram(
            "cairn_http_request_duration_seconds",
            "Time from a request's arrival to its response headers, by route class.",
            &DURATION_BUCKETS,
            &series,
        );
        e.family(
            "cairn_http_range_requests_total",
            "counter",
            "Requests answered with a byte range (206).",
            &[(vec![], total(&|w| w.ranges.load(Ordering::Relaxed)) as f64)],
        );
        e.family(
            "cairn_http_not_modified_total",
            "counter",
            "Conditional requests answered with 304 Not Modified.",
            &[(
                vec![],
                total(&|w| w.not_modified.load(Ordering::Relaxed)) as f64,
            )],
        );
        e.finish()
    }

    /// Counts an upstream error of a sync.
    pub fn upstream_error(&self, repo: &str, kind: &str) {
        self.upstream_errors.with_label_values(&[repo, kind]).inc();
    }

    /// Records whether the last catalog read succeeded (`None`) or why it failed.
    pub fn set_catalog_error(&self, error: Option<String>) {
        if let Ok(mut e) = self.catalog_error.lock() {
            *e = error;
        }
    }

    /// Why the last catalog read failed, if it did.
    pub fn catalog_error(&self) -> Option<String> {
        self.catalog_error.lock().ok().and_then(|e| e.clone())
    }

    /// Replaces the catalog-derived block (text exposition format).
    pub fn set_catalog_text(&self, text: String) {
        if let Ok(mut t) = self.catalog_text.lock() {
            *t = text;
        }
    }

    /// The whole exposition: registry metrics, then the catalog-derived block.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!("encoding metrics: {e}");
        }
        let mut out = String::from_utf8_lossy(&buf).into_owned();
        out.push_str(&self.serving_text());
        if let Ok(t) = self.catalog_text.lock() {
            out.push_str(&t);
        }
        out
    }
}

/// Writes metric families in the text exposition format.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

/// One labelled histogram: (label, non-cumulative bucket counts, count, sum).
pub type HistogramSeries<'a> = ((&'a str, &'a str), Vec<u64>, u64, f64);

/// One sample: label pairs and value.
pub type Sample<'a> = (Vec<(&'a str, &'a str)>, f64);

impl Exposition {
    /// Adds a family (`kind`: "counter" or "gauge") with its samples.
    pub fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[Sample<'_>]) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.text.push_str(name);
            if !labels.is_empty() {
                self.text.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.text.push(',');
                    }
                    let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
                }
                self.text.push('}');
            }
            let _ = writeln!(self.text, " {}", format_value(*value));
        }
    }

    /// Adds a histogram family: per label, the non-cumulative bucket counts, the total
    /// count and the sum.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        bounds: &[f64],
        series: &[HistogramSeries<'_>],
    ) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} histogram");
        for ((k, v), buckets, count, sum) in series {
            let v = escape_label(v);
            let mut cumulative = 0;
            for (le, n) in bounds.iter().zip(buckets) {
                cumulative += n;
                let _ = writeln!(
                    self.text,
                    "{name}_bucket{{{k}=\"{v}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                self.text,
                "{name}_bucket{{{k}=\"{v}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                self.text,
                "{name}_sum{{{k}=\"{v}\"}} {}",
                format_value(*sum)
            );
            let _ = writeln!(self.text, "{name}_count{{{k}=\"{v}\"}} {count}");
        }
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_escapes_labels_and_formats_values() {
        let mut e = Exposition::default();
        e.family(
            "cairn_x",
            "gauge",
            "X.",
            &[(vec![("repo", "a\"b")], 3.0), (vec![], 0.5)],
        );
        assert_eq!(
            e.finish(),
            "# HELP cairn_x X.\n# TYPE cairn_x gauge\ncairn_x{repo=\"a\\\"b\"} 3\ncairn_x 0.5\n"
        );
    }

    #[test]
    fn workers_are_summed_into_one_exposition() {
        let m = metrics();
        let (a, b) = (m.worker(), m.worker());
        a.request(
            RouteClass::Metadata,
            304,
            std::time::Duration::from_micros(700),
        );
        b.request(
            RouteClass::Metadata,
            200,
            std::time::Duration::from_millis(3),
        );
        b.request(
            RouteClass::Package,
            206,
            std::time::Duration::from_millis(2),
        );
        a.sent(RouteClass::Package, 100);
        b.sent(RouteClass::Package, 20);
        let text = m.encode();
        let value = |series: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{series} in\n{text}"))
        };
        assert!(value("cairn_http_requests_total{class=\"metadata\",code=\"3xx\"}") >= 1.0);
        assert!(value("cairn_http_requests_total{class=\"metadata\",code=\"2xx\"}") >= 1.0);
        assert_eq!(
            value("cairn_http_requests_total{class=\"other\",code=\"5xx\"}"),
            0.0
        );
        assert!(value("cairn_http_response_bytes_total{class=\"package\"}") >= 120.0);
        // Cumulative buckets: 0.7 ms is within 1 ms; 3 ms only from 5 ms on.
        let bucket = |le: &str| {
            value(&format!(
                "cairn_http_request_duration_seconds_bucket{{class=\"metadata\",le=\"{le}\"}}"
            ))
        };
        assert!(bucket("0.001") >= 1.0);
        assert!(bucket("0.005") >= bucket("0.001") + 1.0);
        assert!(bucket("+Inf") >= bucket("0.005"));
        assert!(value("cairn_http_not_modified_total") >= 1.0);
        assert!(value("cairn_http_range_requests_total") >= 1.0);
        assert!(text.contains("cairn_process_resident_memory_bytes"));
        assert!(text.contains("cairn_build_info{"));
    }
}
