//! In-memory attempt counters and rate limits, for a single instance.
//!
//! Both maps are bounded: when one reaches its capacity, entries that no longer
//! matter (no recent failures and no lock; a bucket that has refilled) are swept
//! first, and only if that frees nothing is an arbitrary entry evicted. Evicting
//! forgets at most one key's history, which an attacker could only force by
//! spraying more distinct keys than the per-IP rate limit lets through.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use safebox_domain::ports::{AttemptLimiter, LockoutPolicy, RateLimiter};
use safebox_domain::{RepoError, Timestamp};

/// Keys tracked before sweeping.
const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug, Default)]
struct Attempts {
    failures: VecDeque<i64>,
    locked_until: i64,
}

/// [`AttemptLimiter`] in process memory: per-key failure times in a sliding window.
#[derive(Debug)]
pub struct MemoryAttemptLimiter {
    entries: Mutex<HashMap<String, Attempts>>,
    capacity: usize,
}

impl Default for MemoryAttemptLimiter {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

fn poisoned<T>(_: T) -> RepoError {
    RepoError::internal("limiter lock poisoned")
}

impl MemoryAttemptLimiter {
    /// A limiter that tracks up to `capacity` keys.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }
}

impl AttemptLimiter for MemoryAttemptLimiter {
    fn locked_for(&self, key: &str, now: Timestamp) -> Result<Option<u64>, RepoError> {
        let entries = self.entries.lock().map_err(poisoned)?;
        Ok(entries
            .get(key)
            .filter(|entry| entry.locked_until > now.as_secs())
            .map(|entry| (entry.locked_until - now.as_secs()).unsigned_abs()))
    }

    fn record_failure(
        &self,
        key: &str,
        now: Timestamp,
        policy: &LockoutPolicy,
    ) -> Result<bool, RepoError> {
        let now = now.as_secs();
        let window = i64::try_from(policy.window_secs).unwrap_or(i64::MAX);
        let mut entries = self.entries.lock().map_err(poisoned)?;
        if !entries.contains_key(key) && entries.len() >= self.capacity {
            entries.retain(|_, entry| {
                entry.locked_until > now
                    || entry
                        .failures
                        .back()
                        .is_some_and(|&at| at > now.saturating_sub(window))
            });
            if entries.len() >= self.capacity {
                let victim = entries.keys().next().cloned();
                if let Some(victim) = victim {
                    entries.remove(&victim);
                }
            }
        }
        let entry = entries.entry(key.to_owned()).or_default();
        while entry
            .failures
            .front()
            .is_some_and(|&at| at <= now.saturating_sub(window))
        {
            entry.failures.pop_front();
        }
        entry.failures.push_back(now);
        let threshold = usize::try_from(policy.threshold.max(1)).unwrap_or(usize::MAX);
        if entry.failures.len() >= threshold {
            entry.failures.clear();
            let duration = i64::try_from(policy.duration_secs).unwrap_or(i64::MAX);
            entry.locked_until = now.saturating_add(duration);
            return Ok(true);
        }
        Ok(false)
    }

    fn reset(&self, key: &str) -> Result<(), RepoError> {
        self.entries.lock().map_err(poisoned)?.remove(key);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// [`RateLimiter`] in process memory: a token bucket per key that holds up to
/// `burst` tokens and refills at `per_minute` tokens a minute.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
    burst: f64,
    per_second: f64,
    capacity: usize,
}

impl MemoryRateLimiter {
    /// A limiter allowing bursts of `burst` requests and `per_minute` sustained.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_minute) / 60.0,
            capacity: DEFAULT_CAPACITY,
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }
}

impl RateLimiter for MemoryRateLimiter {
    fn acquire(&self, key: &str) -> Result<Option<u64>, RepoError> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().map_err(poisoned)?;
        if !buckets.contains_key(key) && buckets.len() >= self.capacity {
            let burst = self.burst;
            buckets.retain(|_, bucket| self.refilled(*bucket, now) < burst);
            if buckets.len() >= self.capacity {
                let victim = buckets.keys().next().cloned();
                if let Some(victim) = victim {
                    buckets.remove(&victim);
                }
            }
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let tokens = self.refilled(*bucket, now);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                updated: now,
            };
            return Ok(None);
        }
        *bucket = Bucket {
            tokens,
            updated: now,
        };
        let wait = if self.per_second > 0.0 {
            Duration::from_secs_f64((1.0 - tokens) / self.per_second)
        } else {
            Duration::from_secs(u64::MAX / 2)
        };
        // Rounded up: a client that waits Retry-After seconds finds a token.
        Ok(Some((wait.as_secs_f64().ceil() as u64).max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::contracts;

    fn policy() -> LockoutPolicy {
        contracts::lockout_policy()
    }

    #[test]
    fn attempts_keep_the_port_contract() {
        contracts::attempts_lock_after_the_threshold_within_the_window(
            &MemoryAttemptLimiter::default(),
        );
        contracts::failures_outside_the_window_do_not_count(&MemoryAttemptLimiter::default());
        contracts::reset_forgets_failures(&MemoryAttemptLimiter::default());
    }

    #[test]
    fn a_full_map_sweeps_stale_keys_and_keeps_locks() {
        let limiter = MemoryAttemptLimiter::with_capacity(2);
        for _ in 0..3 {
            limiter
                .record_failure("locked", Timestamp(0), &policy())
                .unwrap();
        }
        limiter
            .record_failure("stale", Timestamp(0), &policy())
            .unwrap();
        limiter
            .record_failure("new", Timestamp(500), &policy())
            .unwrap();
        let entries = limiter.entries.lock().unwrap();
        assert!(entries.len() <= 2);
        assert!(entries.contains_key("new"));
        assert!(!entries.contains_key("stale"));
    }

    #[test]
    fn buckets_keep_the_port_contract() {
        contracts::buckets_allow_a_burst_then_refuse_with_a_wait(&MemoryRateLimiter::new(3, 60));
        contracts::buckets_refill_over_time(&MemoryRateLimiter::new(1, 300));
    }
}
