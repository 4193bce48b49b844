//! The deadline of the work running on this thread: the request that asked for
//! it stops waiting then (and is answered 503), so the work should not start
//! anything new past it.
//!
//! The ports are synchronous and know nothing of requests, so the caller that
//! runs a use case on a blocking thread sets the deadline around it
//! ([`run_until`]), and the adapters bound every wait for a pooled connection
//! by what is left. A statement already sent may still finish after the
//! deadline; what is bounded is that no new one starts.

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `work` with `deadline` as this thread's deadline, restoring the one
/// before afterwards (also when `work` panics).
pub fn run_until<R>(deadline: Instant, work: impl FnOnce() -> R) -> R {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEADLINE.with(|current| current.set(self.0));
        }
    }
    let _restore = Restore(DEADLINE.with(|current| current.replace(Some(deadline))));
    work()
}

/// How long a wait may last: `limit`, or less when this thread's deadline comes
/// sooner. `None` when the deadline has passed.
pub(crate) fn bounded(limit: Duration) -> Option<Duration> {
    match DEADLINE.with(Cell::get) {
        None => Some(limit),
        Some(deadline) => deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .map(|left| left.min(limit)),
    }
}

/// The error of work whose deadline passed before it could start a statement.
#[derive(Debug, thiserror::Error)]
#[error("the request's deadline passed")]
pub(crate) struct DeadlinePassed;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_bounded_by_the_deadline_and_it_is_restored() {
        assert_eq!(
            bounded(Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
        run_until(Instant::now() + Duration::from_millis(500), || {
            let left = bounded(Duration::from_secs(2)).unwrap();
            assert!(left <= Duration::from_millis(500) && left > Duration::from_millis(400));
            assert_eq!(
                bounded(Duration::from_millis(10)),
                Some(Duration::from_millis(10))
            );
            run_until(Instant::now(), || {
                assert_eq!(bounded(Duration::from_secs(2)), None)
            });
            assert!(
                bounded(Duration::from_secs(2)).is_some(),
                "the outer one is back"
            );
        });
        assert_eq!(
            bounded(Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
    }
}
