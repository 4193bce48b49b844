use std::time::{SystemTime, UNIX_EPOCH};

use safebox_domain::Timestamp;
use safebox_domain::ports::Clock;

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        Timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}
