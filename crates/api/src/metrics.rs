//! Prometheus metrics: what is counted, and the text exposition of `/metrics`.
//!
//! The text format (version 0.0.4) is written here by hand rather than with the
//! `prometheus` crate: the set of metrics is small and fixed, every label value
//! comes from a closed set (normalised methods, route templates, status codes,
//! fixed outcome and pool names), and the format for counters, gauges and one
//! histogram is a few lines of `# HELP`/`# TYPE` and samples. That saves a
//! dependency (and a global registry) for about a hundred lines that the tests
//! below and the black-box tests pin down. Label values are escaped anyway.
//!
//! Nothing here ever holds a secret, a secret's name, a username or a token:
//! routes are counted by their template (`/secrets/{name}`), never by their path.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::HttpMessage as _;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;
use safebox_domain::ports::{AuditLog, AuditRefused};
use safebox_domain::{AuditAction, AuditEvent, AuditOutcome, AuditQuery, AuditRecord};
use safebox_domain::{RepoError, Timestamp};
use safebox_infra::RedisConnections;
use safebox_infra::db::PoolConnections;
use safebox_infra::read_cache::ReadCacheEntries;

use crate::hashing::HashingStats;
use crate::request_id::RouteLabel;

/// The route label of a request that matched no route.
pub(crate) const UNMATCHED: &str = "unmatched";

/// Upper bounds of the request duration histogram's buckets, in seconds
/// (Prometheus' defaults: they cover a cached read and a bcrypt login alike).
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The outcomes a login is counted by, in exposition order.
const LOGIN_OUTCOMES: [AuditOutcome; 3] = [
    AuditOutcome::Success,
    AuditOutcome::Failure,
    AuditOutcome::Locked,
];

/// Everything counted while serving; shared by the middleware, the audit log
/// decorator and the `/metrics` handler.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per (method, route template), in [`SHARDS`] parts that a scrape adds up:
    /// see [`shard`].
    http: [Mutex<HttpSeries>; SHARDS],
    /// Logins by outcome, in the order of [`LOGIN_OUTCOMES`].
    logins: [AtomicU64; 3],
    lockouts: AtomicU64,
    /// Secret reads answered from memory, and from storage.
    reads_from_memory: AtomicU64,
    reads_from_storage: AtomicU64,
}

/// The request series of one shard, by (method, route template).
type HttpSeries = HashMap<(&'static str, &'static str), RouteSeries>;

/// How many parts the request series are kept in.
const SHARDS: usize = 16;

/// The part of the request series the calling thread counts in. Threads take
/// the parts in turn as they first count, so up to [`SHARDS`] request workers
/// never share one: a request takes no lock that another worker takes. (With
/// one table for all, a worker that the OS preempted while it held the lock
/// stalled every other worker's requests for its time slice.)
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|shard| *shard)
}

/// The requests of one method on one route.
#[derive(Debug, Default)]
struct RouteSeries {
    /// Requests by status code.
    statuses: BTreeMap<u16, u64>,
    /// Requests that took at most `BUCKETS[i]` seconds (not cumulative here).
    buckets: [u64; BUCKETS.len()],
    /// Seconds spent, in total.
    sum: f64,
    /// Requests.
    count: u64,
}

/// The audit log's queue, sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AuditQueue {
    /// Events waiting for the writer.
    pub depth: usize,
    /// Events lost: dropped because it was full, or refused for good by storage.
    pub dropped: u64,
    /// Secret reads refused (503) because it was nearly full.
    pub refused: u64,
}

/// What is sampled when `/metrics` is scraped rather than counted as it happens.
pub(crate) struct Snapshot {
    /// The hashing pool's counters.
    pub hashing: HashingStats,
    /// The database pools' connections.
    pub connections: PoolConnections,
    /// The Redis pool's connections, when Redis is configured.
    pub redis: Option<RedisConnections>,
    /// The read cache's entries, when it is on.
    pub read_cache: Option<ReadCacheEntries>,
    /// The audit log's queue.
    pub audit: AuditQueue,
}

impl Metrics {
    /// Counts one finished request.
    pub(crate) fn observe_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        took: Duration,
    ) {
        let seconds = took.as_secs_f64();
        let mut http = self.http[shard()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let series = http.entry((method, route)).or_default();
        *series.statuses.entry(status).or_default() += 1;
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            series.buckets[bucket] += 1;
        }
        series.sum += seconds;
        series.count += 1;
    }

    /// Counts one login attempt.
    fn login(&self, outcome: AuditOutcome) {
        if let Some(index) = LOGIN_OUTCOMES.iter().position(|o| *o == outcome) {
            self.logins[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one account lockout.
    fn lockout(&self) {
        self.lockouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one secret read (of a value), answered from memory or from storage.
    pub(crate) fn secret_read(&self, from_memory: bool) {
        let counter = if from_memory {
            &self.reads_from_memory
        } else {
            &self.reads_from_storage
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition of every metric.
    pub(crate) fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::with_capacity(4096);
        self.render_http(&mut out);

        family(
            &mut out,
            "safebox_logins_total",
            "Login attempts, by outcome (success, failure, locked).",
            "counter",
        );
        for (outcome, count) in LOGIN_OUTCOMES.iter().zip(&self.logins) {
            sample(
                &mut out,
                "safebox_logins_total",
                &[("outcome", outcome.as_str())],
                count.load(Ordering::Relaxed),
            );
        }
        family(
            &mut out,
            "safebox_lockouts_total",
            "Accounts locked after repeated failed logins.",
            "counter",
        );
        sample(
            &mut out,
            "safebox_lockouts_total",
            &[],
            self.lockouts.load(Ordering::Relaxed),
        );

        family(
            &mut out,
            "safebox_hashing_queue_depth",
            "Password hashing jobs waiting for a hashing thread.",
            "gauge",
        );
        sample(
            &mut out,
            "safebox_hashing_queue_depth",
            &[],
            snapshot.hashing.queue_depth(),
        );
        family(
            &mut out,
            "safebox_hashing_rejections_total",
            "Password hashing jobs refused (503) because the hashing pool was saturated.",
            "counter",
        );
        sample(
            &mut out,
            "safebox_hashing_rejections_total",
            &[],
            snapshot.hashing.rejections(),
        );
        family(
            &mut out,
            "safebox_hashing_job_seconds",
            "Recent wall time of one password hashing job (a moving average); the queue \
             admits only jobs it would start within a second at this pace.",
            "gauge",
        );
        sample(
            &mut out,
            "safebox_hashing_job_seconds",
            &[],
            snapshot.hashing.job_time().as_secs_f64(),
        );

        family(
            &mut out,
            "safebox_db_pool_connections",
            "Database connections by pool (reads, writes) and state (idle, in_use).",
            "gauge",
        );
        for (pool, counts) in [
            ("reads", snapshot.connections.reads),
            ("writes", snapshot.connections.writes),
        ] {
            for (state, value) in [("idle", counts.idle), ("in_use", counts.in_use)] {
                sample(
                    &mut out,
                    "safebox_db_pool_connections",
                    &[("pool", pool), ("state", state)],
                    value,
                );
            }
        }
        family(
            &mut out,
            "safebox_audit_queue_depth",
            "Audit events waiting to be written.",
            "gauge",
        );
        sample(
            &mut out,
            "safebox_audit_queue_depth",
            &[],
            snapshot.audit.depth,
        );
        family(
            &mut out,
            "safebox_audit_events_dropped_total",
            "Audit events lost: the queue was full, or storage refused them for good.",
            "counter",
        );
        sample(
            &mut out,
            "safebox_audit_events_dropped_total",
            &[],
            snapshot.audit.dropped,
        );
        family(
            &mut out,
            "safebox_audit_refusals_total",
            "Secret reads answered 503 because the audit queue was nearly full: no value \
             leaves unrecorded.",
            "counter",
        );
        sample(
            &mut out,
            "safebox_audit_refusals_total",
            &[],
            snapshot.audit.refused,
        );
        family(
            &mut out,
            "safebox_secret_reads_total",
            "Reads of a secret's value, by where they were answered: from memory (the read \
             cache, on the request's worker) or from storage (a blocking thread).",
            "counter",
        );
        for (from, counter) in [
            ("memory", &self.reads_from_memory),
            ("storage", &self.reads_from_storage),
        ] {
            sample(
                &mut out,
                "safebox_secret_reads_total",
                &[("from", from)],
                counter.load(Ordering::Relaxed),
            );
        }
        if let Some(entries) = snapshot.read_cache {
            family(
                &mut out,
                "safebox_read_cache_entries",
                "Entries of the read cache, by part (sessions, accounts, secrets).",
                "gauge",
            );
            for (part, value) in [
                ("sessions", entries.sessions),
                ("accounts", entries.accounts),
                ("secrets", entries.secrets),
            ] {
                sample(
                    &mut out,
                    "safebox_read_cache_entries",
                    &[("part", part)],
                    value,
                );
            }
        }
        if let Some(redis) = snapshot.redis {
            family(
                &mut out,
                "safebox_redis_pool_connections",
                "Redis connections by state (idle, in_use).",
                "gauge",
            );
            for (state, value) in [("idle", redis.idle), ("in_use", redis.in_use)] {
                sample(
                    &mut out,
                    "safebox_redis_pool_connections",
                    &[("state", state)],
                    value,
                );
            }
        }
        out
    }

    fn render_http(&self, out: &mut String) {
        // The shards added up, each lock held only for its own copy, not while
        // formatting.
        let mut total = HttpSeries::new();
        for shard in &self.http {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for (key, s) in shard.iter() {
                let sum = total.entry(*key).or_default();
                for (status, count) in &s.statuses {
                    *sum.statuses.entry(*status).or_default() += count;
                }
                for (bucket, count) in sum.buckets.iter_mut().zip(s.buckets) {
                    *bucket += count;
                }
                sum.sum += s.sum;
                sum.count += s.count;
            }
        }
        let mut series: Vec<((&'static str, &'static str), RouteSeries)> =
            total.into_iter().collect();
        series.sort_by(|a, b| (&a.0.1, a.0.0).cmp(&(&b.0.1, b.0.0)));

        family(
            out,
            "safebox_http_requests_total",
            "HTTP requests answered, by method, route template and status code.",
            "counter",
        );
        for ((method, route), s) in &series {
            for (status, count) in &s.statuses {
                sample(
                    out,
                    "safebox_http_requests_total",
                    &[
                        ("method", method),
                        ("route", route),
                        ("status", &status.to_string()),
                    ],
                    count,
                );
            }
        }

        family(
            out,
            "safebox_http_request_duration_seconds",
            "Time from receiving a request to having its response, by method and route template.",
            "histogram",
        );
        for ((method, route), s) in &series {
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(s.buckets) {
                cumulative += count;
                sample(
                    out,
                    "safebox_http_request_duration_seconds_bucket",
                    &[
                        ("method", method),
                        ("route", route),
                        ("le", &bound.to_string()),
                    ],
                    cumulative,
                );
            }
            let labels = [("method", *method), ("route", *route)];
            sample(
                out,
                "safebox_http_request_duration_seconds_bucket",
                &[labels[0], labels[1], ("le", "+Inf")],
                s.count,
            );
            sample(
                out,
                "safebox_http_request_duration_seconds_sum",
                &labels,
                s.sum,
            );
            sample(
                out,
                "safebox_http_request_duration_seconds_count",
                &labels,
                s.count,
            );
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample line.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (index, (label, value)) in labels.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape_label_value(out, value);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Escapes a label value as the exposition format requires: `\`, `"` and line
/// feeds.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The method label: the standard methods by name, anything else as `other`, so
/// clients cannot create series at will.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Middleware: counts every request by method, route template and status, and
/// times it. Reads [`Metrics`] from the app data; without it, counts nothing.
pub(crate) async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = method_label(req.method());
    let started = Instant::now();
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let (status, route) = match &result {
            // Set by the route's resource (`request_id::named`).
            Ok(response) => (
                response.status(),
                response
                    .request()
                    .extensions()
                    .get::<RouteLabel>()
                    .map_or(UNMATCHED, |route| route.0),
            ),
            Err(err) => (err.as_response_error().status_code(), UNMATCHED),
        };
        metrics.observe_request(method, route, status.as_u16(), started.elapsed());
    }
    result
}

/// Wraps the audit log port: counts `login` events by outcome and `lockout`
/// events, then hands every event on unchanged.
pub struct CountingAuditLog {
    inner: Arc<dyn AuditLog>,
    metrics: Arc<Metrics>,
}

impl CountingAuditLog {
    /// Counts into `metrics` what goes to `inner`.
    pub fn new(inner: Arc<dyn AuditLog>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl CountingAuditLog {
    fn count(&self, event: &AuditEvent) {
        match event.action {
            AuditAction::Login => self.metrics.login(event.outcome),
            AuditAction::Lockout => self.metrics.lockout(),
            _ => {}
        }
    }
}

impl AuditLog for CountingAuditLog {
    fn record(&self, event: AuditEvent) {
        self.count(&event);
        self.inner.record(event);
    }

    fn record_or_refuse(&self, event: AuditEvent) -> Result<(), AuditRefused> {
        self.count(&event);
        self.inner.record_or_refuse(event)
    }

    fn list(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, RepoError> {
        self.inner.list(query)
    }

    fn prune(&self, cutoff: Timestamp) -> Result<u64, RepoError> {
        self.inner.prune(cutoff)
    }
}

#[cfg(test)]
mod tests {
    use safebox_domain::Origin;
    use safebox_domain::UserId;
    use safebox_domain::ports::MockAuditLog;
    use safebox_infra::db::ConnectionCounts;

    use super::*;
    use crate::hashing::HashingPool;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }

    #[test]
    fn the_exposition_has_every_family_with_help_type_and_escaped_labels() {
        let metrics = Metrics::default();
        metrics.observe_request("GET", "/get_secret", 401, Duration::from_millis(3));
        metrics.observe_request("GET", "/get_secret", 401, Duration::from_millis(30));
        metrics.observe_request("GET", "/a\"b\\c\nd", 200, Duration::from_secs(60));
        metrics.login(AuditOutcome::Failure);
        metrics.lockout();
        metrics.secret_read(true);
        metrics.secret_read(true);
        metrics.secret_read(false);
        let pool = HashingPool::new(1, 1);
        let text = metrics.render(&Snapshot {
            hashing: pool.stats(),
            connections: PoolConnections {
                reads: ConnectionCounts { idle: 3, in_use: 1 },
                writes: ConnectionCounts { idle: 1, in_use: 0 },
            },
            redis: Some(RedisConnections { idle: 5, in_use: 2 }),
            read_cache: Some(ReadCacheEntries {
                sessions: 4,
                accounts: 3,
                secrets: 9,
            }),
            audit: AuditQueue {
                depth: 7,
                dropped: 2,
                refused: 5,
            },
        });
        for line in [
            "# TYPE safebox_http_requests_total counter",
            "safebox_http_requests_total{method=\"GET\",route=\"/get_secret\",status=\"401\"} 2",
            "# TYPE safebox_http_request_duration_seconds histogram",
            "safebox_http_request_duration_seconds_bucket{method=\"GET\",route=\"/get_secret\",le=\"0.005\"} 1",
            "safebox_http_request_duration_seconds_bucket{method=\"GET\",route=\"/get_secret\",le=\"0.05\"} 2",
            "safebox_http_request_duration_seconds_bucket{method=\"GET\",route=\"/get_secret\",le=\"+Inf\"} 2",
            "safebox_http_request_duration_seconds_count{method=\"GET\",route=\"/get_secret\"} 2",
            "safebox_http_request_duration_seconds_bucket{method=\"GET\",route=\"/a\\\"b\\\\c\\nd\",le=\"10\"} 0",
            "safebox_http_request_duration_seconds_bucket{method=\"GET\",route=\"/a\\\"b\\\\c\\nd\",le=\"+Inf\"} 1",
            "safebox_logins_total{outcome=\"success\"} 0",
            "safebox_logins_total{outcome=\"failure\"} 1",
            "safebox_logins_total{outcome=\"locked\"} 0",
            "safebox_lockouts_total 1",
            "safebox_hashing_queue_depth 0",
            "safebox_hashing_rejections_total 0",
            "# TYPE safebox_hashing_job_seconds gauge",
            "safebox_hashing_job_seconds 0",
            "safebox_db_pool_connections{pool=\"reads\",state=\"idle\"} 3",
            "safebox_db_pool_connections{pool=\"reads\",state=\"in_use\"} 1",
            "safebox_db_pool_connections{pool=\"writes\",state=\"in_use\"} 0",
            "# TYPE safebox_redis_pool_connections gauge",
            "safebox_redis_pool_connections{state=\"idle\"} 5",
            "safebox_redis_pool_connections{state=\"in_use\"} 2",
            "safebox_audit_queue_depth 7",
            "safebox_audit_events_dropped_total 2",
            "# TYPE safebox_audit_refusals_total counter",
            "safebox_audit_refusals_total 5",
            "# TYPE safebox_secret_reads_total counter",
            "safebox_secret_reads_total{from=\"memory\"} 2",
            "safebox_secret_reads_total{from=\"storage\"} 1",
            "# TYPE safebox_read_cache_entries gauge",
            "safebox_read_cache_entries{part=\"sessions\"} 4",
            "safebox_read_cache_entries{part=\"accounts\"} 3",
            "safebox_read_cache_entries{part=\"secrets\"} 9",
        ] {
            assert!(
                text.lines().any(|got| got == line),
                "{line:?} missing from\n{text}"
            );
        }
        // Every sample's family was introduced first.
        let mut typed = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.push(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(
                    typed.iter().any(|family| name.starts_with(family.as_str())),
                    "{line}"
                );
            }
        }
    }

    /// More threads than shards, so that some share one: every request is
    /// counted once, in whichever shard its thread uses.
    #[test]
    fn requests_counted_on_many_threads_add_up_in_the_exposition() {
        let metrics = Metrics::default();
        let threads = SHARDS + 3;
        std::thread::scope(|scope| {
            for n in 0..threads {
                let metrics = &metrics;
                scope.spawn(move || {
                    for _ in 0..100 {
                        metrics.observe_request("GET", "/get_secret", 200, Duration::ZERO);
                    }
                    let status = if n % 2 == 0 { 404 } else { 401 };
                    metrics.observe_request("PUT", "/secrets/{name}", status, Duration::ZERO);
                });
            }
        });
        let pool = HashingPool::new(1, 0);
        let text = metrics.render(&Snapshot {
            hashing: pool.stats(),
            connections: PoolConnections {
                reads: ConnectionCounts { idle: 0, in_use: 0 },
                writes: ConnectionCounts { idle: 0, in_use: 0 },
            },
            redis: None,
            read_cache: None,
            audit: AuditQueue::default(),
        });
        let reads = 100 * threads;
        let (even, odd) = (threads.div_ceil(2), threads / 2);
        for line in [
            format!(
                "safebox_http_requests_total{{method=\"GET\",route=\"/get_secret\",status=\"200\"}} {reads}"
            ),
            format!(
                "safebox_http_request_duration_seconds_bucket{{method=\"GET\",route=\"/get_secret\",le=\"0.005\"}} {reads}"
            ),
            format!(
                "safebox_http_request_duration_seconds_count{{method=\"GET\",route=\"/get_secret\"}} {reads}"
            ),
            format!(
                "safebox_http_requests_total{{method=\"PUT\",route=\"/secrets/{{name}}\",status=\"404\"}} {even}"
            ),
            format!(
                "safebox_http_requests_total{{method=\"PUT\",route=\"/secrets/{{name}}\",status=\"401\"}} {odd}"
            ),
        ] {
            assert!(
                text.lines().any(|got| got == line),
                "{line:?} missing from\n{text}"
            );
        }
        // One series per (method, route), however many shards counted it.
        let counts = text
            .lines()
            .filter(|line| line.starts_with("safebox_http_request_duration_seconds_count"))
            .count();
        assert_eq!(counts, 2, "{text}");
    }

    #[test]
    fn the_audit_decorator_counts_logins_and_lockouts_and_delegates() {
        let mut inner = MockAuditLog::new();
        inner.expect_record().times(4).return_const(());
        let metrics = Arc::new(Metrics::default());
        let audit = CountingAuditLog::new(Arc::new(inner), metrics.clone());
        let event = |action, outcome| {
            AuditEvent::new(
                Timestamp(1),
                &Origin::operator(),
                Some(UserId::generate()),
                action,
                outcome,
            )
        };
        audit.record(event(AuditAction::Login, AuditOutcome::Success));
        audit.record(event(AuditAction::Login, AuditOutcome::Locked));
        audit.record(event(AuditAction::Lockout, AuditOutcome::Success));
        audit.record(event(AuditAction::SecretRead, AuditOutcome::Success));
        assert_eq!(metrics.logins[0].load(Ordering::Relaxed), 1);
        assert_eq!(metrics.logins[1].load(Ordering::Relaxed), 0);
        assert_eq!(metrics.logins[2].load(Ordering::Relaxed), 1);
        assert_eq!(metrics.lockouts.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_audit_decorator_passes_a_refusal_on() {
        // Only `record_or_refuse` is expected: falling back to `record` would
        // let a read go unrecorded.
        let mut inner = MockAuditLog::new();
        inner
            .expect_record_or_refuse()
            .times(1)
            .returning(|_| Err(AuditRefused));
        let audit = CountingAuditLog::new(Arc::new(inner), Arc::default());
        let event = AuditEvent::new(
            Timestamp(1),
            &Origin::operator(),
            Some(UserId::generate()),
            AuditAction::SecretRead,
            AuditOutcome::Success,
        );
        assert_eq!(audit.record_or_refuse(event), Err(AuditRefused));
    }
}
