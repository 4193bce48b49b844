//! Request workers give up their core every few responses.
//!
//! Under load a request worker can run for milliseconds without blocking:
//! while it answers one connection, the next has already sent its request.
//! The scheduler lets a running thread use up its slice, which it checks at
//! the tick (every 4 ms at 250 Hz), before a thread waiting for the same core
//! gets it. So every other thread waiting for that core waits up to a tick or
//! two: the audit writer, the hashing threads, and on the same machine a
//! reverse proxy or the clients, whose answers then sit unread. That wait
//! was the p99 of reads in `make bench` (docs/performance.md).
//!
//! So each worker calls `sched_yield` after every [`RESPONSES_PER_YIELD`]
//! responses, once the response that made the count has been written. When
//! no other thread is waiting for the core the call returns at once; when one
//! is, it runs now instead of at the next tick.

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

/// Counts one response answered on this worker and, after every
/// [`RESPONSES_PER_YIELD`]-th, yields the core once the current poll is over.
/// Must run on an actix worker (it spawns onto the worker's task set).
pub(crate) fn response_answered() {
    if count_response() {
        // A task spawned now runs after the poll in progress, in which the
        // connection writes this response: the response does not wait for
        // the threads the yield lets run.
        actix_web::rt::spawn(async { std::thread::yield_now() });
    }
}

/// Counts one response answered on this thread. True when it is the
/// [`RESPONSES_PER_YIELD`]-th since the last time it was true.
fn count_response() -> bool {
    SINCE_YIELD.with(|count| {
        let answered = count.get() + 1;
        let due = answered >= RESPONSES_PER_YIELD;
        count.set(if due { 0 } else { answered });
        due
    })
}

#[cfg(test)]
mod tests {
    use super::{RESPONSES_PER_YIELD, count_response};

    /// The cadence only: whether the yield itself happens cannot be observed
    /// (with nothing else waiting for the core it changes nothing).
    #[test]
    fn a_worker_yields_once_every_thirty_two_responses() {
        // Each test runs on a thread of its own, so the count starts at zero.
        // The responses (counted from 1) after which the worker yields.
        let yields_after: Vec<u32> = (1..=100).filter(|_| count_response()).collect();
        assert_eq!(RESPONSES_PER_YIELD, 32);
        assert_eq!(yields_after, [32, 64, 96]);
    }
}
