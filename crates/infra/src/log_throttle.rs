//! Keeps a flood of identical events from turning into a flood of log lines.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Lets one call site log at most once a second and counts the calls it held
/// back. A login storm sheds thousands of requests a second; writing a line for
/// each would spend the CPU that the shedding is meant to save.
pub struct LogThrottle {
    /// The second (since the process started, plus one) of the last line logged.
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self::new()
    }
}

impl LogThrottle {
    /// A throttle that admits its first call.
    pub const fn new() -> Self {
        Self {
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(calls held back since the last line)` when this call may log.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(STARTED.elapsed().as_secs() + 1)
    }

    fn admit_at(&self, second: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        if second > last
            && self
                .last
                .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_with_a_count_of_the_rest() {
        let throttle = LogThrottle::new();
        assert_eq!(throttle.admit_at(1), Some(0));
        assert_eq!(throttle.admit_at(1), None);
        assert_eq!(throttle.admit_at(1), None);
        assert_eq!(throttle.admit_at(2), Some(2));
        assert_eq!(throttle.admit_at(2), None);
        assert_eq!(throttle.admit_at(5), Some(1));
        assert_eq!(LogThrottle::new().admit(), Some(0));
    }
}
