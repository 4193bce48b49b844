//! Request workers give up their core every few responses.
//!
//! Under load a request worker rarely runs out of work: while it answers one
//! connection, the next has already sent its request. On a kernel without
//! preemption (`PREEMPT_NONE`, the usual server build) a thread that never
//! blocks keeps its core until the scheduler's tick, 4 ms at 250 Hz, and every
//! other thread waiting for that core waits that long: the audit writer, the
//! hashing threads, and on the same machine a reverse proxy or the clients,
//! whose answers then sit unread. That wait, one or two ticks, was the p99 of
//! reads in `make bench` (docs/performance.md).
//!
//! So each worker calls `sched_yield` after every [`RESPONSES_PER_YIELD`]
//! responses. When no other thread is waiting for the core the call returns at
//! once (about a microsecond, spread over 32 responses); when one is, it runs
//! now instead of at the next tick.

use std::cell::Cell;

/// Responses a request worker answers between two yields of its core.
/// Yielding after every response cost a fifth of the reads' throughput and
/// left their p99 near 5 ms; every 32, the p99 fell from 6.4 to 2.9 ms with
/// the throughput unchanged; every 64, 3.4 to 3.7 ms (docs/performance.md).
const RESPONSES_PER_YIELD: u32 = 32;

thread_local! {
    /// Responses this thread has answered since it last yielded.
    static SINCE_YIELD: Cell<u32> = const { Cell::new(0) };
}

/// Counts one response answered on this thread and yields the core after
/// every [`RESPONSES_PER_YIELD`]-th. Returns whether it yielded.
pub(crate) fn response_answered() -> bool {
    let due = SINCE_YIELD.with(|count| {
        let answered = count.get() + 1;
        let due = answered >= RESPONSES_PER_YIELD;
        count.set(if due { 0 } else { answered });
        due
    });
    if due {
        std::thread::yield_now();
    }
    due
}

#[cfg(test)]
mod tests {
    use super::{RESPONSES_PER_YIELD, response_answered};

    #[test]
    fn a_worker_yields_once_every_thirty_two_responses() {
        // Each test runs on a thread of its own, so the count starts at zero.
        // The responses (counted from 1) after which the worker yielded.
        let yielded_after: Vec<u32> = (1..=100).filter(|_| response_answered()).collect();
        assert_eq!(RESPONSES_PER_YIELD, 32);
        assert_eq!(yielded_after, [32, 64, 96]);
    }
}
