//! Prometheus metrics (`GET /metrics`), through the `prometheus-client`
//! crate. Labels are bounded: route patterns (never raw paths), methods,
//! statuses, APIs, isolation modes and error kinds. Recording costs an
//! atomic add or two on the hot path; gauges of the pool, the sessions and
//! the process are read only when scraped.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Buckets of request and execution durations, in seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExecutionLabels {
    api: &'static str,
    isolation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IsolationLabel {
    isolation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    tenant: String,
    function: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabel {
    tenant: String,
    function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

/// What is read at scrape time.
pub struct Live {
    /// Isolate threads, busy threads, queued executions.
    pub pool: Box<dyn Fn() -> (u64, u64, u64) + Send + Sync>,
    /// Isolates made so far.
    pub isolates_created: Arc<AtomicU64>,
    /// Calls run on their connection's thread so far.
    pub served_on_lanes: Arc<AtomicU64>,
    /// Sessions alive.
    pub sessions: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (threads, busy, queued) = (self.pool)();
        let gauges = [
            (
                "isoexec_pool_threads",
                "Isolate threads in the pool",
                threads,
            ),
            (
                "isoexec_pool_busy",
                "Executions running, on isolate threads or on their connection's thread",
                busy,
            ),
            (
                "isoexec_queue_depth",
                "Executions waiting for an isolate thread",
                queued,
            ),
            (
                "isoexec_sessions_active",
                "Sessions alive",
                (self.sessions)(),
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value as i64);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let created = ConstCounter::new(
            self.isolates_created
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        created.encode(encoder.encode_descriptor(
            "isoexec_isolates_created",
            "V8 isolates made (fresh, warm, notebook)",
            None,
            created.metric_type(),
        )?)?;
        let lanes = ConstCounter::new(
            self.served_on_lanes
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        lanes.encode(encoder.encode_descriptor(
            "isoexec_calls_on_connection_thread",
            "\"none\" and \"frozen\" calls run on the thread that read their request",
            None,
            lanes.metric_type(),
        )?)?;
        let process = ProcessFigures::read();
        let rss = ConstGauge::new(process.rss_bytes as i64);
        rss.encode(encoder.encode_descriptor(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            None,
            rss.metric_type(),
        )?)?;
        let cpu = ConstCounter::new(process.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let fds = ConstGauge::new(process.open_fds as i64);
        fds.encode(encoder.encode_descriptor(
            "process_open_fds",
            "Number of open file descriptors",
            None,
            fds.metric_type(),
        )?)?;
        Ok(())
    }
}

/// This process's figures from `/proc/self`.
struct ProcessFigures {
    rss_bytes: u64,
    cpu_seconds: f64,
    open_fds: u64,
}

impl ProcessFigures {
    fn read() -> ProcessFigures {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        // SAFETY: as above.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let rss_bytes = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|t| t.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * page);
        let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| {
                let rest = t.rsplit_once(')')?.1.to_string();
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
            })
            .map_or(0.0, |t| t / ticks);
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        ProcessFigures {
            rss_bytes,
            cpu_seconds,
            open_fds,
        }
    }
}

/// The series a thread recorded into lately, by their labels (and the
/// [`Metrics`] they belong to). A family's own lookup hashes the labels
/// (SipHash) and takes its lock on every request; the handles it returns
/// share the series, so a thread keeps them, and finds them again along a
/// short list.
#[derive(Default)]
struct Recent {
    http: Handles<(u64, Label, Label, u16)>,
    executions: Handles<(u64, Label, Label, Label)>,
}

/// A label's text in a key of [`Recent`], compared by where it lies: the
/// labels are constants, so the same label is the same text each time,
/// and two copies of one text at different places only make two entries
/// for the same series.
#[derive(Clone, Copy)]
struct Label(&'static str);

impl PartialEq for Label {
    fn eq(&self, other: &Label) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

thread_local! {
    static RECENT: RefCell<Recent> = RefCell::default();
}

/// At most this many label sets per kind are kept per thread (the sets are
/// few; the bound only keeps an odd thread from growing a long list).
const RECENT_MAX: usize = 32;

struct Handles<K>(Vec<(K, Counter, Histogram)>);

impl<K> Default for Handles<K> {
    fn default() -> Self {
        Handles(Vec::new())
    }
}

impl<K: PartialEq> Handles<K> {
    /// The handles of `key`'s series, made by `make` the first time.
    fn get(
        &mut self,
        key: K,
        make: impl FnOnce() -> (Counter, Histogram),
    ) -> (&Counter, &Histogram) {
        let at = match self.0.iter().position(|(k, _, _)| *k == key) {
            Some(at) => at,
            None => {
                if self.0.len() >= RECENT_MAX {
                    self.0.clear();
                }
                let (count, duration) = make();
                self.0.push((key, count, duration));
                self.0.len() - 1
            }
        };
        let (_, count, duration) = &self.0[at];
        (count, duration)
    }
}

/// Every series the server exports.
pub struct Metrics {
    /// Tells this instance's series apart in [`RECENT`].
    id: u64,
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabel, Histogram>,
    executions: Family<ExecutionLabels, Counter>,
    execution_duration: Family<IsolationLabel, Histogram>,
    queue_wait: Histogram,
    jobs: Family<StatusLabel, Counter>,
    /// Per tenant and function, when `TENANT_METRICS` asks for them.
    functions: Option<FunctionSeries>,
}

struct FunctionSeries {
    calls: Family<FunctionLabels, Counter>,
    cpu: Family<FunctionLabel, Counter<f64, AtomicU64>>,
    duration: Family<FunctionLabel, Counter<f64, AtomicU64>>,
}

fn durations() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl Metrics {
    /// The series; `per_tenant` adds those per tenant and function.
    pub fn new(live: Live, per_tenant: bool) -> Metrics {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "isoexec_http_requests",
            "HTTP requests answered, by route pattern, method and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<RouteLabel, Histogram>::new_with_constructor(durations as fn() -> Histogram);
        registry.register(
            "isoexec_http_request_duration_seconds",
            "Time to answer an HTTP request, by route pattern",
            http_duration.clone(),
        );
        let executions = Family::<ExecutionLabels, Counter>::default();
        registry.register(
            "isoexec_executions",
            "Executions finished, by API, isolation and outcome (ok or the error kind)",
            executions.clone(),
        );
        let execution_duration = Family::<IsolationLabel, Histogram>::new_with_constructor(
            durations as fn() -> Histogram,
        );
        registry.register(
            "isoexec_execution_duration_seconds",
            "Time from the start of an execution on an isolate thread to its report",
            execution_duration.clone(),
        );
        let queue_wait = durations();
        registry.register(
            "isoexec_queue_wait_seconds",
            "Time an execution waited in the queue for an isolate thread",
            queue_wait.clone(),
        );
        let jobs = Family::<StatusLabel, Counter>::default();
        registry.register(
            "isoexec_jobs",
            "Code jobs finished, by status",
            jobs.clone(),
        );
        let functions = per_tenant.then(|| {
            let series = FunctionSeries {
                calls: Family::default(),
                cpu: Family::default(),
                duration: Family::default(),
            };
            registry.register(
                "isoexec_function_invocations",
                "Calls of deployed functions, by tenant, function and outcome (ok or the error kind)",
                series.calls.clone(),
            );
            registry.register(
                "isoexec_function_cpu_seconds",
                "CPU time of deployed functions' calls, by tenant and function",
                series.cpu.clone(),
            );
            registry.register(
                "isoexec_function_duration_seconds",
                "Wall time of deployed functions' calls, by tenant and function",
                series.duration.clone(),
            );
            series
        });
        registry.register_collector(Box::new(live));
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Metrics {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            functions,
            registry,
            http_requests,
            http_duration,
            executions,
            execution_duration,
            queue_wait,
            jobs,
        }
    }

    /// One answered request.
    pub fn request(&self, route: &'static str, method: &'static str, status: u16, took: Duration) {
        let key = (self.id, Label(route), Label(method), status);
        RECENT.with_borrow_mut(|recent| {
            let (count, duration) = recent.http.get(key, || {
                (
                    self.http_requests
                        .get_or_create(&HttpLabels {
                            route,
                            method,
                            status,
                        })
                        .clone(),
                    self.http_duration
                        .get_or_create(&RouteLabel { route })
                        .clone(),
                )
            });
            count.inc();
            duration.observe(took.as_secs_f64());
        });
    }

    /// One finished execution: `outcome` is `ok` or the error kind.
    pub fn execution(
        &self,
        api: &'static str,
        isolation: &'static str,
        outcome: &'static str,
        ran: Duration,
        queued: Duration,
    ) {
        let key = (self.id, Label(api), Label(isolation), Label(outcome));
        RECENT.with_borrow_mut(|recent| {
            let (count, duration) = recent.executions.get(key, || {
                (
                    self.executions
                        .get_or_create(&ExecutionLabels {
                            api,
                            isolation,
                            outcome,
                        })
                        .clone(),
                    self.execution_duration
                        .get_or_create(&IsolationLabel { isolation })
                        .clone(),
                )
            });
            count.inc();
            duration.observe(ran.as_secs_f64());
        });
        self.queue_wait.observe(queued.as_secs_f64());
    }

    /// One finished call of a deployed function (counted only with
    /// `TENANT_METRICS`).
    pub fn function_call(
        &self,
        tenant: &str,
        function: &str,
        outcome: &str,
        cpu: Duration,
        wall: Duration,
    ) {
        let Some(series) = &self.functions else {
            return;
        };
        series
            .calls
            .get_or_create(&FunctionLabels {
                tenant: tenant.to_string(),
                function: function.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        let label = FunctionLabel {
            tenant: tenant.to_string(),
            function: function.to_string(),
        };
        series.cpu.get_or_create(&label).inc_by(cpu.as_secs_f64());
        series
            .duration
            .get_or_create(&label)
            .inc_by(wall.as_secs_f64());
    }

    /// One finished code job.
    pub fn job(&self, status: &'static str) {
        self.jobs.get_or_create(&StatusLabel { status }).inc();
    }

    /// The OpenMetrics exposition, as the crate writes it.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(cause = %e, "metrics could not be encoded");
        }
        out
    }

    /// The Prometheus text format (0.0.4): what `promtool check metrics`
    /// and any Prometheus scrape accept.
    pub fn encode_prometheus(&self) -> String {
        to_prometheus_text(&self.encode_openmetrics())
    }
}

/// OpenMetrics text as the Prometheus text format: the two differ only in
/// that OpenMetrics names a counter's family without its `_total` suffix
/// and ends with `# EOF`.
fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(r) => out.push_str(&r),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_names_in_the_prometheus_format() {
        let om = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total{x=\"1\"} 2\n\
                  # HELP b Gauge.\n# TYPE b gauge\nb 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\n\
             a_requests_total{x=\"1\"} 2\n# HELP b Gauge.\n# TYPE b gauge\nb 1\n"
        );
    }
}
