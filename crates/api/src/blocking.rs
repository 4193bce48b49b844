//! Running a use case's blocking work (the database, Redis) off the async workers,
//! within a deadline.
//!
//! Most ways a dependency fails end quickly: a refused connection, a dropped one,
//! or the pool's checkout timeout (`SAFEBOX_DB_TIMEOUT`). A server that stops
//! answering without closing its connections (a frozen process, a network that
//! drops packets) would instead hold a query, and the request waiting on it,
//! until TCP gives up, minutes later: the MySQL client library offers diesel no
//! read timeout. The deadline bounds that case. The request is answered with 503;
//! the thread still waits for its query, and work that had not started when the
//! deadline passed is skipped, so that a backlog does not run, stale, once the
//! dependency is back. Work that is running waits for connections only until the
//! deadline (`safebox_infra::deadline`); a statement already sent may still
//! finish after it.

use std::time::{Duration, Instant};

use actix_web::web;

use crate::error::ApiError;

/// Runs `job` on a blocking thread. Fails with [`ApiError::Unavailable`] (503)
/// when it has not finished within `deadline`, and skips it when it has not
/// started by then.
pub(crate) async fn run<F, R>(deadline: Duration, job: F) -> Result<R, ApiError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let work = web::block(unless_expired(Instant::now() + deadline, job));
    match actix_web::rt::time::timeout(deadline, work).await {
        Ok(Ok(Some(result))) => Ok(result),
        Ok(Err(err)) => Err(err.into()),
        Ok(Ok(None)) | Err(_) => Err(timed_out(deadline)),
    }
}

/// `job`, made to do nothing (and return `None`) when it starts at or after
/// `expires`: its caller has given up on it. While it runs, `expires` is the
/// thread's deadline, which bounds every wait for a database or Redis
/// connection ([`safebox_infra::deadline`]).
pub(crate) fn unless_expired<F, R>(expires: Instant, job: F) -> impl FnOnce() -> Option<R>
where
    F: FnOnce() -> R,
{
    move || (Instant::now() < expires).then(|| safebox_infra::deadline::run_until(expires, job))
}

/// The error of a request that ran out of time; logged at most once a second.
pub(crate) fn timed_out(deadline: Duration) -> ApiError {
    static THROTTLE: safebox_infra::log_throttle::LogThrottle =
        safebox_infra::log_throttle::LogThrottle::new();
    if let Some(also) = THROTTLE.admit() {
        tracing::warn!(
            deadline_ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
            also_timed_out_since_last_line = also,
            "a request's storage work did not finish in time; answering 503"
        );
    }
    ApiError::Unavailable
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[actix_web::test]
    async fn work_that_finishes_in_time_returns_its_result() {
        assert_eq!(run(Duration::from_secs(1), || 7).await.unwrap(), 7);
    }

    #[actix_web::test]
    async fn work_that_hangs_is_unavailable_at_the_deadline() {
        let started = Instant::now();
        let err = run(Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(2));
        })
        .await
        .unwrap_err();
        assert!(matches!(err, ApiError::Unavailable), "{err:?}");
        let waited = started.elapsed();
        assert!(waited < Duration::from_millis(1500), "{waited:?}");
    }

    #[test]
    fn work_that_could_not_start_in_time_is_skipped() {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let stale = unless_expired(Instant::now(), move || flag.store(true, Ordering::SeqCst));
        assert_eq!(stale(), None);
        assert!(!ran.load(Ordering::SeqCst), "a job past its deadline ran");
        let fresh = unless_expired(Instant::now() + Duration::from_secs(60), || 7);
        assert_eq!(fresh(), Some(7));
    }
}
