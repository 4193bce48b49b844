//! Operator endpoints: liveness (`/healthz`), readiness (`/readyz`) and metrics
//! (`/metrics`).
//!
//! None of them takes credentials, and none is in [`crate::api_routes`]: they are
//! for orchestrators and monitoring, not API clients.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::HttpServiceFactory;
use actix_web::http::Method;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use futures_util::FutureExt as _;
use futures_util::future::join_all;
use safebox_infra::db::DbPool;
use safebox_infra::log_throttle::LogThrottle;
use safebox_infra::{DieselAuditLog, ReadCache, RedisStore};
use serde_json::{Map, Value, json};

use crate::handlers;
use crate::hashing::HashingStats;
use crate::metrics::{AuditQueue, Metrics, Snapshot};
use crate::request_id::named;

/// What the operator endpoints read: the database (to check it and count its
/// connections), the counters and the hashing pool's statistics.
pub(crate) struct Ops {
    pub db: DbPool,
    /// Redis, when configured.
    pub redis: Option<RedisStore>,
    /// How long a readiness check may take: the pool's connection timeout, plus
    /// a second for the query.
    pub check_timeout: Duration,
    pub metrics: Arc<Metrics>,
    pub hashing: HashingStats,
    /// The read cache, when it is on.
    pub read_cache: Option<Arc<ReadCache>>,
    /// The audit log, for its queue.
    pub audit: Arc<DieselAuditLog>,
}

/// The operator endpoints as (method, path), for comparing with openapi.yaml:
/// they are served next to [`crate::api_routes`] but not by it. `/metrics` is on
/// the API port unless `SAFEBOX_METRICS_ADDR` is set.
pub fn operator_routes() -> Vec<(Method, &'static str)> {
    vec![
        (Method::GET, "/healthz"),
        (Method::GET, "/readyz"),
        (Method::GET, "/metrics"),
    ]
}

/// Registers `/healthz` and `/readyz`.
pub(crate) fn configure_probes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/healthz", web::get().to(healthz)))
        .service(get_only("/readyz", web::get().to(readyz)));
}

/// Registers `/metrics`.
pub(crate) fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/metrics", web::get().to(metrics)));
}

/// A resource answering GET, and 405 with `Allow: GET` to anything else.
fn get_only(path: &'static str, route: actix_web::Route) -> impl HttpServiceFactory {
    let resource = web::resource(path)
        .route(route)
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(handlers::method_not_allowed("GET".to_owned()))
        }));
    named(resource, path)
}

/// `GET /healthz`: the process is up and serving. Touches nothing else, so a
/// slow database never makes an orchestrator restart a healthy process.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// A dependency readiness depends on, and how its check ended: `Err` holds a
/// short reason that is safe to show to anyone (no paths, queries or data).
struct Check {
    name: &'static str,
    result: Result<(), &'static str>,
}

/// `GET /readyz`: 200 when every dependency answers, else 503 naming the ones
/// that did not. Every check runs at once, each bounded in time.
async fn readyz(ops: web::Data<Ops>) -> HttpResponse {
    // Further dependencies (a KMS) are added to this list.
    let mut checks = vec![database(&ops).boxed_local()];
    if let Some(redis) = &ops.redis {
        checks.push(self::redis(redis.clone(), ops.check_timeout).boxed_local());
    }
    let checks = join_all(checks).await;
    let failed: Vec<&str> = checks
        .iter()
        .filter(|check| check.result.is_err())
        .map(|check| check.name)
        .collect();
    let statuses: Map<String, Value> = checks
        .iter()
        .map(|check| {
            let status = check.result.err().unwrap_or("ok");
            (check.name.to_owned(), Value::from(status))
        })
        .collect();
    if failed.is_empty() {
        HttpResponse::Ok().json(json!({ "status": "ready", "checks": statuses }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({
            "detail": format!("not ready: {} unavailable", failed.join(", ")),
            "checks": statuses,
        }))
    }
}

/// Unauthenticated callers can ask for readiness as often as they like: a
/// failing dependency is logged at most once a second.
static READINESS_LOG: LogThrottle = LogThrottle::new();

/// Checks that the database answers a trivial query, off the async workers.
async fn database(ops: &Ops) -> Check {
    let db = ops.db.clone();
    checked("database", ops.check_timeout, move || {
        db.ping().map_err(|err| (err.reason(), err.to_string()))
    })
    .await
}

/// Checks that Redis answers PING, off the async workers.
async fn redis(redis: RedisStore, timeout: Duration) -> Check {
    checked("redis", timeout, move || {
        redis.ping().map_err(|err| (err.reason(), err.to_string()))
    })
    .await
}

/// Runs the blocking `check` of `dependency` within `timeout`. It fails with a
/// reason safe to show anyone, and a cause that is only logged.
async fn checked(
    name: &'static str,
    timeout: Duration,
    check: impl FnOnce() -> Result<(), (&'static str, String)> + Send + 'static,
) -> Check {
    let (result, cause) = match actix_web::rt::time::timeout(timeout, web::block(check)).await {
        Ok(Ok(Ok(()))) => (Ok(()), None),
        Ok(Ok(Err((reason, cause)))) => (Err(reason), Some(cause)),
        Ok(Err(err)) => (Err("check could not run"), Some(err.to_string())),
        Err(_) => (Err("timed out"), None),
    };
    if let Err(reason) = result
        && let Some(suppressed) = READINESS_LOG.admit()
    {
        tracing::warn!(
            dependency = name,
            reason,
            cause = cause.as_deref().unwrap_or(reason),
            suppressed,
            "readiness check failed"
        );
    }
    Check { name, result }
}

/// `GET /metrics`: Prometheus text exposition (format 0.0.4).
///
/// It takes no credentials, so it must not be exposed publicly: serve it on a
/// private address with `SAFEBOX_METRICS_ADDR`, or keep `/metrics` away from the
/// internet at the proxy. It never contains secrets, secret names, usernames or
/// tokens: requests are counted by route template, method and status only.
async fn metrics(ops: web::Data<Ops>) -> HttpResponse {
    let text = ops.metrics.render(&Snapshot {
        hashing: ops.hashing.clone(),
        connections: ops.db.connections(),
        redis: ops.redis.as_ref().map(RedisStore::connections),
        read_cache: ops.read_cache.as_deref().map(ReadCache::entries),
        audit: AuditQueue {
            depth: ops.audit.queued(),
            dropped: ops.audit.dropped(),
            refused: ops.audit.refused(),
        },
    });
    HttpResponse::Ok()
        .insert_header(ContentType(
            "text/plain; version=0.0.4; charset=utf-8"
                .parse()
                .expect("a valid media type"),
        ))
        .body(text)
}
