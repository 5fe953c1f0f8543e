//! Prometheus metrics: the process's one registry and every metric it exports.
//!
//! Two kinds live here. Process-local metrics (HTTP serving, syncs and publishes this
//! process ran, the process itself) are prometheus-crate counters, gauges and
//! histograms; the serving ones are resolved per (route class, status class) up front,
//! so a request costs a few atomic adds. Catalog state (sync history, snapshots,
//! package counts, pool and catalog size, GC and verify results) is the same whichever
//! process changed it, so `cairn serve` renders it from the catalog on a timer
//! ([`crate::serve::stats`]) and [`Metrics::encode`] appends that block.
//!
//! Naming follows Prometheus conventions: `cairn_` prefix, base units (seconds,
//! bytes), `_total` for counters; labels are route and status classes, repository and
//! view ids, and error kinds, never paths, package names or clients.

use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
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

    /// Classifies a decoded request path.
    pub fn of_path(path: &str) -> RouteClass {
        if path == "/metrics" || path == "/healthz" {
            return RouteClass::Api;
        }
        if path.ends_with('/') {
            return RouteClass::Page;
        }
        // /repos/OWNER/TREE/FILE...: a file; shorter paths are pages or redirects.
        let mut segs = path.trim_start_matches('/').splitn(4, '/');
        let (_, _, _, rest) = (segs.next(), segs.next(), segs.next(), segs.next());
        match rest {
            Some(r) if r.starts_with("repodata/") => RouteClass::Metadata,
            Some(_) => RouteClass::Package,
            None => RouteClass::Page,
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

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    requests: Vec<IntCounter>,
    response_bytes: Vec<IntCounter>,
    durations: Vec<Histogram>,
    /// Open client connections.
    pub open_connections: IntGauge,
    /// Connections refused because `max_connections` were open.
    pub rejected_connections: IntCounter,
    /// Requests answered with 206 Partial Content.
    pub range_requests: IntCounter,
    /// Requests answered with 304 Not Modified.
    pub not_modified: IntCounter,
    /// Upstream errors of syncs this process ran, by repository and kind.
    pub upstream_errors: IntCounterVec,
    /// How late the last scheduled sync of a repository started, in seconds.
    pub schedule_lag: IntGaugeVec,
    /// Metadata renders (publications made, not reused) of this process.
    pub publish_duration: Histogram,
    catalog_text: Mutex<String>,
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
        let requests = must(IntCounterVec::new(
            Opts::new(
                "cairn_http_requests_total",
                "HTTP requests answered, by route class and status class.",
            ),
            &["class", "code"],
        ));
        let bytes = must(IntCounterVec::new(
            Opts::new(
                "cairn_http_response_bytes_total",
                "Response body bytes sent, by route class.",
            ),
            &["class"],
        ));
        let durations = must(HistogramVec::new(
            HistogramOpts::new(
                "cairn_http_request_duration_seconds",
                "Time from a request's arrival to its response headers, by route class.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            &["class"],
        ));
        let open_connections = must(IntGauge::new(
            "cairn_http_open_connections",
            "Client connections currently open.",
        ));
        let rejected_connections = must(IntCounter::new(
            "cairn_http_rejected_connections_total",
            "Connections answered 503 and closed because max_connections were open.",
        ));
        let range_requests = must(IntCounter::new(
            "cairn_http_range_requests_total",
            "Requests answered with a byte range (206).",
        ));
        let not_modified = must(IntCounter::new(
            "cairn_http_not_modified_total",
            "Conditional requests answered with 304 Not Modified.",
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
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(bytes.clone()),
            Box::new(durations.clone()),
            Box::new(open_connections.clone()),
            Box::new(rejected_connections.clone()),
            Box::new(range_requests.clone()),
            Box::new(not_modified.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(schedule_lag.clone()),
            Box::new(publish_duration.clone()),
            Box::new(build),
            Box::new(prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                "cairn",
            )),
        ] {
            must(registry.register(c));
        }
        // Every series exists from the start (at zero), so ratios and rates are defined
        // before the first error.
        let mut req = Vec::new();
        let mut by = Vec::new();
        let mut dur = Vec::new();
        for class in RouteClass::ALL {
            for code in CODES {
                req.push(requests.with_label_values(&[class.name(), code]));
            }
            by.push(bytes.with_label_values(&[class.name()]));
            dur.push(durations.with_label_values(&[class.name()]));
        }
        Metrics {
            registry,
            requests: req,
            response_bytes: by,
            durations: dur,
            open_connections,
            rejected_connections,
            range_requests,
            not_modified,
            upstream_errors,
            schedule_lag,
            publish_duration,
            catalog_text: Mutex::new(String::new()),
        }
    }

    /// Counts one answered request.
    pub fn request(&self, class: RouteClass, status: u16, seconds: f64) {
        let c = class as usize;
        self.requests[c * CODES.len() + code_index(status)].inc();
        self.durations[c].observe(seconds);
        match status {
            206 => self.range_requests.inc(),
            304 => self.not_modified.inc(),
            _ => {}
        }
    }

    /// Counts response body bytes sent.
    pub fn sent(&self, class: RouteClass, bytes: u64) {
        self.response_bytes[class as usize].inc_by(bytes);
    }

    /// Counts an upstream error of a sync.
    pub fn upstream_error(&self, repo: &str, kind: &str) {
        self.upstream_errors.with_label_values(&[repo, kind]).inc();
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
    fn route_classes_follow_the_url_shape() {
        assert_eq!(RouteClass::of_path("/metrics"), RouteClass::Api);
        assert_eq!(RouteClass::of_path("/"), RouteClass::Page);
        assert_eq!(RouteClass::of_path("/repos/a/latest/"), RouteClass::Page);
        assert_eq!(RouteClass::of_path("/repos/a/latest"), RouteClass::Page);
        assert_eq!(
            RouteClass::of_path("/repos/a/s1/repodata/repomd.xml"),
            RouteClass::Metadata
        );
        assert_eq!(
            RouteClass::of_path("/views/v/s1/Packages/a/a-1-1.noarch.rpm"),
            RouteClass::Package
        );
    }

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
    fn requests_are_counted_by_class_and_code() {
        let m = metrics();
        m.request(RouteClass::Metadata, 304, 0.001);
        m.request(RouteClass::Package, 206, 0.002);
        let text = m.encode();
        assert!(text.contains("cairn_http_requests_total{class=\"metadata\",code=\"3xx\"}"));
        assert!(text.contains("cairn_http_requests_total{class=\"other\",code=\"5xx\"} 0"));
        assert!(m.not_modified.get() >= 1 && m.range_requests.get() >= 1);
        assert!(text.contains("cairn_process_resident_memory_bytes"));
        assert!(text.contains("cairn_build_info{"));
    }
}
