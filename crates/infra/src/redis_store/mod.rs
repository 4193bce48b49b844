//! Redis adapters: sessions, login lockouts and per-IP rate limits that several
//! stateless safebox instances share, with Redis' own key expiry doing the
//! clean-up.
//!
//! # Key layout
//!
//! Every key starts with [`RedisSettings::prefix`] (`P` below), so that several
//! deployments or test runs can share one Redis.
//!
//! | key | type | holds | expires |
//! | --- | --- | --- | --- |
//! | `P session:{id}` | hash | the session's fields (`id`, `user`, `kind`, `created`, `used`, `expires`, `ip`, `ua`, and `cookie`: its cookie's digest) | at the session's `expires_at` |
//! | `P cookie:{digest}` | string | the id of the cookie session with this cookie | with its session |
//! | `P refresh:{digest}` | hash | `session` (its session's id) and `spent` (when it was rotated away; absent while live) | with its session |
//! | `P session-refresh:{id}` | set | the digests of every refresh token of the session, spent or live | with its session |
//! | `P user-sessions:{user}` | sorted set | the user's session ids, scored by `created_at` | with the user's last session |
//! | `P attempt-failures:{sha256(key)}` | list | times of the key's recent login failures, oldest first | a window after the last failure |
//! | `P attempt-lock:{sha256(key)}` | string | when the key's lock lifts (unix seconds) | when the lock lifts |
//! | `P rate:{key}` | hash | the token bucket: `tokens` and `at` (Redis time, µs) | once the bucket would be full again |
//!
//! (`P session:` means the prefix immediately followed by `session:`.)
//!
//! Every read-modify-write that touches more than one key runs as one Lua
//! script, which Redis executes atomically. The scripts derive the names of the
//! keys they touch from the prefix, so this layout needs a single Redis (with
//! replicas if wanted), not Redis Cluster. It needs Redis 7.0 or newer
//! (`EXPIRETIME`, effect replication of scripts that read `TIME`).

mod limits;
mod sessions;

use std::fmt;
use std::time::Duration;

use r2d2::{HandleError, ManageConnection, Pool};
use redis::{Client, ConnectionLike as _, ErrorKind, RedisError};
use safebox_domain::RepoError;

use crate::redact_url;

pub use limits::{RedisAttemptLimiter, RedisRateLimiter};
pub use sessions::RedisSessionRepository;

/// How to reach Redis and how to name keys there.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[user[:password]@]host[:port][/db]` (or `unix:///path?pass=...`).
    /// May hold a password: it never appears in `Debug` or error output.
    pub url: String,
    /// The most connections the pool opens.
    pub pool_size: u32,
    /// The limit for connecting, for each read and write on a connection, and for
    /// waiting for a free pooled connection. A Redis that does not answer within it
    /// counts as unavailable.
    pub timeout: Duration,
    /// Put in front of every key, for example `safebox:`.
    pub prefix: String,
}

impl RedisSettings {
    /// Settings for `url` with a pool of 8 connections, a 2 s timeout and the
    /// prefix `safebox:`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 8,
            timeout: Duration::from_secs(2),
            prefix: "safebox:".to_owned(),
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Why [`RedisStore::connect`] failed. The URL in these messages has its password
/// replaced by `<redacted>`.
#[derive(Debug, thiserror::Error)]
pub enum RedisConnectError {
    /// The settings cannot work (for example a pool of no connections).
    #[error("invalid Redis settings: {0}")]
    InvalidSettings(&'static str),
    /// The URL is not a Redis URL this build can use.
    #[error("invalid Redis URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection could be made within the timeout, or it broke during the
    /// handshake.
    #[error("cannot reach Redis at {url} within {timeout:?}: {cause}")]
    Unreachable {
        /// The URL, redacted.
        url: String,
        /// The timeout that was given.
        timeout: Duration,
        /// What failed.
        cause: String,
    },
    /// Redis refused the credentials (or demands some and none were given).
    #[error("Redis at {url} refused the credentials: {cause}")]
    Auth {
        /// The URL, redacted.
        url: String,
        /// Redis' answer.
        cause: String,
    },
    /// Redis answered, but not as expected.
    #[error("Redis at {url} failed: {cause}")]
    Failed {
        /// The URL, redacted.
        url: String,
        /// What failed.
        cause: String,
    },
}

/// Why [`RedisStore::ping`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisPingError {
    /// No pooled connection within the timeout (all busy, or none can be opened).
    #[error("no Redis connection: {0}")]
    Checkout(#[source] r2d2::Error),
    /// The PING itself failed.
    #[error("Redis PING failed: {0}")]
    Command(#[source] RedisError),
}

impl RedisPingError {
    /// A short reason for a health check's response: fixed text that never holds a
    /// host, a key or data.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Checkout(_) => "timed out waiting for a connection",
            Self::Command(err) if err.is_timeout() => "redis timed out",
            Self::Command(err) if err.is_io_error() => "redis connection failed",
            Self::Command(_) => "redis command failed",
        }
    }
}

/// How many pooled connections are idle and in use; see [`RedisStore::connections`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisConnections {
    /// Open and waiting to be checked out.
    pub idle: u32,
    /// Checked out.
    pub in_use: u32,
}

/// A pool of blocking connections to one Redis plus the key prefix: what every
/// Redis adapter is built on. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool<Manager>,
    prefix: String,
    /// The URL without its password, for `Debug`.
    server: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.server)
            .field("prefix", &self.prefix)
            .field("pool_size", &self.pool.max_size())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Opens the pool. Fails fast, within about `settings.timeout`, if Redis
    /// cannot be reached, refuses the credentials or does not answer PING.
    pub fn connect(settings: &RedisSettings) -> Result<Self, RedisConnectError> {
        if settings.pool_size == 0 {
            return Err(RedisConnectError::InvalidSettings(
                "pool_size must be at least 1",
            ));
        }
        if settings.timeout.is_zero() {
            // A zero socket timeout is an error in std, and "no timeout" is what
            // this adapter exists to avoid.
            return Err(RedisConnectError::InvalidSettings(
                "timeout must be more than zero",
            ));
        }
        let url = redact_url(&settings.url);
        let client =
            Client::open(settings.url.as_str()).map_err(|err| RedisConnectError::InvalidUrl {
                url: url.clone(),
                reason: err.to_string(),
            })?;
        let manager = Manager {
            client,
            timeout: settings.timeout,
        };
        // One connection by hand first: r2d2's own build error keeps only a
        // string, and the caller deserves to know whether it was the network or
        // the password.
        let mut probe = manager
            .connect()
            .map_err(|err| connect_error(&url, settings.timeout, &err))?;
        manager
            .is_valid(&mut probe)
            .map_err(|err| connect_error(&url, settings.timeout, &err))?;
        check_server(&mut probe.inner).map_err(|cause| RedisConnectError::Failed {
            url: url.clone(),
            cause,
        })?;
        drop(probe);
        let pool = Pool::builder()
            .max_size(settings.pool_size)
            .min_idle(Some(1))
            .connection_timeout(settings.timeout)
            // Every connection has socket timeouts and is dropped after an I/O
            // error; a PING on each checkout would only double the round trips.
            .test_on_check_out(false)
            .error_handler(Box::new(QuietErrors))
            .build(manager)
            .map_err(|err| RedisConnectError::Unreachable {
                url: url.clone(),
                timeout: settings.timeout,
                cause: err.to_string(),
            })?;
        Ok(Self {
            pool,
            prefix: settings.prefix.clone(),
            server: url,
        })
    }

    /// Checks that Redis answers PING on a pooled connection (waiting at most the
    /// timeout for one). Blocks.
    pub fn ping(&self) -> Result<(), RedisPingError> {
        let mut conn = self.pool.get().map_err(RedisPingError::Checkout)?;
        let pong: Result<String, RedisError> = redis::cmd("PING").query(&mut conn.inner);
        match pong {
            Ok(_) => Ok(()),
            Err(err) => {
                conn.mark_broken_if_lost(&err);
                Err(RedisPingError::Command(err))
            }
        }
    }

    /// How many pooled connections are idle and in use, for metrics.
    pub fn connections(&self) -> RedisConnections {
        let state = self.pool.state();
        RedisConnections {
            idle: state.idle_connections,
            in_use: state.connections.saturating_sub(state.idle_connections),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `prefix + kind + rest`, the name of one key (see the module's key layout).
    pub(crate) fn key(&self, kind: &str, rest: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + kind.len() + rest.len());
        key.push_str(&self.prefix);
        key.push_str(kind);
        key.push_str(rest);
        key
    }

    /// Runs `op` on a pooled connection, mapping failures to the ports' error.
    pub(crate) fn run<T>(
        &self,
        op: impl FnOnce(&mut redis::Connection) -> Result<T, RedisError>,
    ) -> Result<T, RepoError> {
        let wait = crate::deadline::bounded(self.pool.connection_timeout())
            .ok_or_else(|| RepoError::Unavailable(Box::new(crate::deadline::DeadlinePassed)))?;
        let mut conn = self
            .pool
            .get_timeout(wait)
            .map_err(|err| RepoError::Unavailable(Box::new(err)))?;
        op(&mut conn.inner).map_err(|err| {
            conn.mark_broken_if_lost(&err);
            repo_error(err)
        })
    }

    /// A raw connection for the test helpers, from the same pool.
    #[cfg(feature = "testing")]
    pub(crate) fn checkout(&self) -> Result<r2d2::PooledConnection<Manager>, r2d2::Error> {
        self.pool.get()
    }
}

/// Checks what the adapters rely on: Redis 7.0 or newer (the scripts use
/// `EXPIRETIME`). Warns when Redis may evict keys: an evicted lock lifts a
/// lockout, and an evicted spent refresh token lets its replay pass unnoticed.
fn check_server(conn: &mut redis::Connection) -> Result<(), String> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(conn)
        .map_err(|err| format!("INFO server failed: {err}"))?;
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(str::trim)
        .unwrap_or("");
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(0);
    if major < 7 {
        return Err(format!(
            "Redis 7.0 or newer is needed, and this server is {:?}",
            if version.is_empty() {
                "of an unknown version"
            } else {
                version
            }
        ));
    }
    // CONFIG may be renamed or refused (managed services): then nothing is known.
    let policy: Result<Vec<String>, RedisError> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query(conn);
    if let Ok(policy) = policy
        && let Some(policy) = policy.get(1)
        && policy != "noeviction"
    {
        tracing::warn!(
            maxmemory_policy = %policy,
            "Redis may evict keys when it is full: an evicted key can lift a lockout or let a \
             replayed refresh token pass. Set maxmemory-policy noeviction."
        );
    }
    Ok(())
}

/// Maps a Redis failure to the ports' error: the network, timeouts and a server
/// that is loading, failing over or out of memory are `Unavailable` (retrying
/// later may work); anything else, such as a reply of the wrong shape, is
/// `Internal`.
pub(crate) fn repo_error(err: RedisError) -> RepoError {
    const TRANSIENT: [&str; 10] = [
        "BUSY",
        "LOADING",
        "TRYAGAIN",
        "MASTERDOWN",
        "CLUSTERDOWN",
        "READONLY",
        "OOM",
        "NOAUTH",
        // Writes refused while a snapshot cannot be saved, or while too few
        // replicas are connected (min-replicas-to-write).
        "MISCONF",
        "NOREPLICAS",
    ];
    let transient = err.is_io_error()
        || err.kind() == ErrorKind::AuthenticationFailed
        || err.code().is_some_and(|code| TRANSIENT.contains(&code));
    if transient {
        RepoError::Unavailable(Box::new(err))
    } else {
        RepoError::Internal(Box::new(err))
    }
}

/// A stored value or script reply that is not what the adapter wrote.
pub(crate) fn corrupt(what: &'static str) -> RepoError {
    RepoError::internal(format!("unexpected data in Redis: {what}"))
}

fn connect_error(url: &str, timeout: Duration, err: &RedisError) -> RedisConnectError {
    let url = url.to_owned();
    let cause = err.to_string();
    let auth = err.kind() == ErrorKind::AuthenticationFailed
        || err
            .code()
            .is_some_and(|code| matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM"));
    if auth {
        RedisConnectError::Auth { url, cause }
    } else if err.is_io_error() {
        RedisConnectError::Unreachable {
            url,
            timeout,
            cause,
        }
    } else {
        RedisConnectError::Failed { url, cause }
    }
}

/// A pooled connection and whether it must not be reused.
pub(crate) struct Conn {
    pub(crate) inner: redis::Connection,
    broken: bool,
}

impl Conn {
    /// After a timeout the reply may still arrive later, and after a parse error
    /// the stream is out of step: either way the connection cannot be trusted
    /// again. Server error replies leave it in step.
    fn mark_broken_if_lost(&mut self, err: &RedisError) {
        if err.is_io_error() || err.kind() == ErrorKind::Parse {
            self.broken = true;
        }
    }
}

/// Opens connections with timeouts, which `redis`' own r2d2 manager lacks: without
/// them a Redis that accepts but never answers would hang request threads.
pub(crate) struct Manager {
    client: Client,
    timeout: Duration,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = RedisError;

    fn connect(&self) -> Result<Conn, RedisError> {
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(Conn {
            inner: conn,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), RedisError> {
        let pong: String = redis::cmd("PING").query(&mut conn.inner)?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "PING did not answer PONG",
            )))
        }
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || !conn.inner.is_open()
    }
}

/// r2d2 reports every failed background connect; the callers already see
/// `Unavailable` and the readiness check names the problem, so these only go to
/// debug logs rather than flooding the log while Redis is down.
#[derive(Debug, Clone, Copy)]
struct QuietErrors;

impl HandleError<RedisError> for QuietErrors {
    fn handle_error(&self, error: RedisError) {
        tracing::debug!(%error, "redis connection attempt failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_stores_never_show_a_password() {
        let settings = RedisSettings::new("redis://user:hunter2@cache:6379");
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("redis://user:<redacted>@cache:6379"),
            "{debug}"
        );
    }

    #[test]
    fn bad_settings_and_urls_are_refused_without_the_password() {
        let mut settings = RedisSettings::new("redis://u:hunter2@127.0.0.1:1");
        settings.pool_size = 0;
        let err = RedisStore::connect(&settings).unwrap_err().to_string();
        assert!(err.contains("pool_size"), "{err}");
        settings.pool_size = 1;
        settings.timeout = Duration::ZERO;
        assert!(RedisStore::connect(&settings).is_err());
        settings.timeout = Duration::from_millis(200);
        settings.url = "http://u:hunter2@127.0.0.1/".to_owned();
        let err = RedisStore::connect(&settings).unwrap_err();
        assert!(
            matches!(err, RedisConnectError::InvalidUrl { .. }),
            "{err:?}"
        );
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("http://u:<redacted>@127.0.0.1/"), "{text}");
    }
}
