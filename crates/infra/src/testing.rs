//! Helpers for tests that need a real external service (MySQL, Redis), for this
//! workspace's own test suites. Behind the `testing` feature; never in a release
//! build.
//!
//! A test that needs a service asks [`service_url`] for its URL. When the variable
//! is unset the test prints a notice and skips, so that `make test` passes on a
//! fresh machine; under `CI=true` an unset variable fails the test instead, so a
//! missing service can never turn into a green CI run.
//!
//! [`TestRedis`] gives a test a Redis store under a key prefix of its own and
//! deletes the test's keys afterwards.

/// Whether this is a CI run (`CI=true`), where every service must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// The URL in `var` (for example `SAFEBOX_TEST_MYSQL_URL`), or `None` after
/// printing a skip notice naming `test` when it is unset or empty.
///
/// # Panics
/// Under `CI=true` when `var` is unset: CI must run every test.
pub fn service_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if in_ci() => panic!("{test}: {var} is not set, and CI=true requires this service"),
        _ => {
            eprintln!(
                "SKIPPED {test}: set {var} to run it (see docs/deployment.md, `make test-all`)"
            );
            None
        }
    }
}

/// A [`RedisStore`](crate::RedisStore) of its own for one test: every key it makes
/// starts with a fresh random prefix (`safebox-test-<uuid>:`), so tests can run
/// in parallel on one Redis, and every key under that prefix is deleted on drop.
pub struct TestRedis {
    store: crate::RedisStore,
}

impl TestRedis {
    /// Connects to `url` with a pool of 8 connections and a 2 s timeout.
    ///
    /// # Panics
    /// If Redis cannot be reached: the test asked for it.
    pub fn connect(url: &str) -> Self {
        let settings = crate::RedisSettings {
            prefix: format!("safebox-test-{}:", uuid::Uuid::new_v4()),
            ..crate::RedisSettings::new(url)
        };
        let store = crate::RedisStore::connect(&settings)
            .unwrap_or_else(|err| panic!("cannot connect to the test Redis: {err}"));
        Self { store }
    }

    /// The store, to build adapters on.
    pub fn store(&self) -> &crate::RedisStore {
        &self.store
    }

    /// The prefix, followed by `rest`: the full name of one key.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.store.prefix())
    }

    /// Runs a raw command, to look at what the adapters stored.
    ///
    /// # Panics
    /// If the command fails.
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut conn = self.store.checkout().expect("a test Redis connection");
        cmd.query(&mut conn.inner)
            .expect("a raw test Redis command")
    }

    /// Every key under this test's prefix, without the prefix, sorted.
    ///
    /// # Panics
    /// If Redis fails.
    pub fn keys(&self) -> Vec<String> {
        let mut conn = self.store.checkout().expect("a test Redis connection");
        let mut keys = scan(&mut conn.inner, self.store.prefix()).expect("SCAN");
        for key in &mut keys {
            key.drain(..self.store.prefix().len());
        }
        keys.sort();
        keys
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // Never panic here: a test that made Redis unreachable still ends cleanly.
        let Ok(mut conn) = self.store.checkout() else {
            return;
        };
        let Ok(keys) = scan(&mut conn.inner, self.store.prefix()) else {
            return;
        };
        for batch in keys.chunks(500) {
            let _: Result<i64, _> = redis::cmd("DEL").arg(batch).query(&mut conn.inner);
        }
    }
}

/// The names of every key starting with `prefix`.
fn scan(conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<Vec<String>> {
    // SCAN's MATCH is a glob: the prefix's own glob characters must match
    // themselves.
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    let mut keys = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query(conn)?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}
