//! [`AttemptLimiter`] and [`RateLimiter`] on Redis, shared by every instance;
//! see the module `redis_store` for the key layout.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};
use safebox_domain::ports::{AttemptLimiter, LockoutPolicy, RateLimiter};
use safebox_domain::{RepoError, Timestamp};

use super::{RedisStore, corrupt};

const FAILURES: &str = "attempt-failures:";
const LOCK: &str = "attempt-lock:";
const RATE: &str = "rate:";

/// The longest expiry set on a limiter key. Redis refuses expiries that
/// overflow its clock, and a policy of "lock for u64::MAX seconds" must not turn
/// into an error on every failed login.
const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 60 * 60;

/// The longest a drained bucket that never refills (`per_minute` 0) is kept.
const MAX_BUCKET_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// Slack added to the expiry of attempt keys. Their expiry runs on Redis' clock
/// while the window and the lock are judged by the domain clock passed in, so a
/// key must outlive its meaning by a little rather than vanish a second early.
const TTL_SLACK_SECS: u64 = 1;

/// KEYS: the failure list, the lock. ARGV: now, the cutoff (failures at or before
/// it are outside the window), the threshold, when a lock would lift, the lock's
/// expiry, the list's expiry. Returns 1 if this failure locked the key.
static RECORD_FAILURE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cutoff = tonumber(ARGV[2])
while true do
  local first = redis.call('LINDEX', KEYS[1], 0)
  if not first then break end
  local at = tonumber(first)
  if at and at > cutoff then break end
  redis.call('LPOP', KEYS[1])
end
local count = redis.call('RPUSH', KEYS[1], ARGV[1])
if count >= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
  return 1
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 0
",
    )
});

/// [`AttemptLimiter`] on Redis: each key's failure times in a sliding window (a
/// list), and a lock key holding when the lock lifts. The window arithmetic uses
/// the `now` the caller passes, as [`crate::MemoryAttemptLimiter`] does; the
/// keys' expiries only clear them away afterwards.
#[derive(Debug, Clone)]
pub struct RedisAttemptLimiter {
    store: RedisStore,
}

impl RedisAttemptLimiter {
    /// A limiter on `store`.
    pub fn new(store: RedisStore) -> Self {
        Self { store }
    }
}

/// The Redis name of a lockout key: a SHA-256 digest (hex) of it, so that what
/// a client typed (an email or username of an unknown account) is neither
/// stored nor able to make a long key.
fn attempt_key(store: &RedisStore, kind: &str, key: &str) -> String {
    use sha2::Digest as _;
    store.key(kind, &hex::encode(sha2::Sha256::digest(key.as_bytes())))
}

fn ttl_secs(secs: u64) -> u64 {
    secs.saturating_add(TTL_SLACK_SECS).clamp(1, MAX_TTL_SECS)
}

impl AttemptLimiter for RedisAttemptLimiter {
    fn locked_for(&self, key: &str, now: Timestamp) -> Result<Option<u64>, RepoError> {
        let until: Option<String> = self.store.run(|conn| {
            redis::cmd("GET")
                .arg(attempt_key(&self.store, LOCK, key))
                .query(conn)
        })?;
        let Some(until) = until else {
            return Ok(None);
        };
        let until: i64 = until
            .parse()
            .map_err(|_| corrupt("a lock time that is not a number"))?;
        Ok((until > now.as_secs()).then(|| (until - now.as_secs()).unsigned_abs()))
    }

    fn record_failure(
        &self,
        key: &str,
        now: Timestamp,
        policy: &LockoutPolicy,
    ) -> Result<bool, RepoError> {
        let now = now.as_secs();
        let window = i64::try_from(policy.window_secs).unwrap_or(i64::MAX);
        let duration = i64::try_from(policy.duration_secs).unwrap_or(i64::MAX);
        let mut call = RECORD_FAILURE.prepare_invoke();
        call.key(attempt_key(&self.store, FAILURES, key))
            .key(attempt_key(&self.store, LOCK, key))
            .arg(now)
            .arg(now.saturating_sub(window))
            .arg(policy.threshold.max(1))
            .arg(now.saturating_add(duration))
            .arg(ttl_secs(policy.duration_secs))
            .arg(ttl_secs(policy.window_secs));
        let locked: i64 = self.store.run(|conn| call.invoke(conn))?;
        Ok(locked == 1)
    }

    fn reset(&self, key: &str) -> Result<(), RepoError> {
        // Like the in-memory limiter, forgetting a key forgets its lock too.
        self.store.run(|conn| {
            redis::cmd("DEL")
                .arg(attempt_key(&self.store, FAILURES, key))
                .arg(attempt_key(&self.store, LOCK, key))
                .query::<i64>(conn)
        })?;
        Ok(())
    }
}

/// KEYS: the bucket. ARGV: burst, tokens a minute, the longest expiry (ms) of a
/// bucket that never refills. Returns `{1}` when a token was taken, else `{0,
/// tokens left}`.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- Redis' clock, not the instance's: every instance must refill alike.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local burst = tonumber(ARGV[1])
local per_second = tonumber(ARGV[2]) / 60
local tokens = burst
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local stored, at = tonumber(state[1]), tonumber(state[2])
if stored and at then
  local elapsed = math.max(0, now - at) / 1000000
  tokens = math.min(burst, stored + elapsed * per_second)
end
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%d', now))
-- Gone once it would be full again, which is the same as a fresh bucket.
local ttl = tonumber(ARGV[3])
if per_second > 0 then
  ttl = math.min(ttl, math.ceil((burst - tokens) / per_second * 1000) + 1)
end
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.max(1, ttl)))
if taken == 1 then return {1} end
return {0, string.format('%.17g', tokens)}
",
    )
});

/// [`RateLimiter`] on Redis: a token bucket per key that holds up to `burst`
/// tokens and refills at `per_minute` tokens a minute, timed by Redis' clock so
/// that every instance sharing the Redis drains and refills the same bucket. It
/// answers as [`crate::MemoryRateLimiter`] does.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    store: RedisStore,
    burst: u32,
    per_minute: u32,
}

impl RedisRateLimiter {
    /// A limiter on `store` allowing bursts of `burst` requests and `per_minute`
    /// sustained.
    pub fn new(store: RedisStore, burst: u32, per_minute: u32) -> Self {
        Self {
            store,
            burst: burst.max(1),
            per_minute,
        }
    }
}

impl RateLimiter for RedisRateLimiter {
    fn acquire(&self, key: &str) -> Result<Option<u64>, RepoError> {
        let mut call = ACQUIRE.prepare_invoke();
        call.key(self.store.key(RATE, key))
            .arg(self.burst)
            .arg(self.per_minute)
            .arg(MAX_BUCKET_TTL_MS);
        let reply: Value = self.store.run(|conn| call.invoke(conn))?;
        let tokens = match reply {
            Value::Array(items) => match items.as_slice() {
                [Value::Int(1)] => return Ok(None),
                [Value::Int(0), Value::BulkString(tokens)] => std::str::from_utf8(tokens)
                    .ok()
                    .and_then(|tokens| tokens.parse::<f64>().ok())
                    .filter(|tokens| tokens.is_finite() && *tokens < 1.0),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| corrupt("rate limiter reply"))?;
        let per_second = f64::from(self.per_minute) / 60.0;
        let wait = if per_second > 0.0 {
            Duration::try_from_secs_f64((1.0 - tokens) / per_second).unwrap_or(Duration::MAX)
        } else {
            Duration::from_secs(u64::MAX / 2)
        };
        // Rounded up: a client that waits Retry-After seconds finds a token.
        Ok(Some((wait.as_secs_f64().ceil() as u64).max(1)))
    }
}
