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

/// The databases a repository test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// A fresh SQLite file in a temporary directory; always available.
    Sqlite,
    /// A fresh database on the MySQL server `SAFEBOX_TEST_MYSQL_URL` names.
    Mysql,
}

/// The variable naming the MySQL server tests may use. The user in it must be
/// allowed to create and drop databases named `safebox_t_*`.
pub const MYSQL_URL_VAR: &str = "SAFEBOX_TEST_MYSQL_URL";

/// A database of its own for one test: a new SQLite file, or a new database on the
/// test MySQL server, dropped again when this is dropped.
pub struct TestDatabase {
    url: String,
    backend: TestBackend,
    _dir: Option<tempfile::TempDir>,
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    mysql: Option<(String, String)>,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("url", &crate::redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

impl TestDatabase {
    /// A database on `backend` for the test `test`, or `None` (after a skip notice)
    /// when that backend is not configured. Not migrated.
    pub fn open(backend: TestBackend, test: &str) -> Option<Self> {
        match backend {
            TestBackend::Sqlite => Some(Self::sqlite()),
            TestBackend::Mysql => Self::mysql(test),
        }
    }

    /// A fresh SQLite file.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Self {
            url: format!("sqlite://{}", dir.path().join("test.db").display()),
            backend: TestBackend::Sqlite,
            _dir: Some(dir),
            mysql: None,
        }
    }

    /// A fresh database on the test MySQL server, or `None` when
    /// [`MYSQL_URL_VAR`] is unset (see [`service_url`]).
    ///
    /// # Panics
    /// When the server cannot be reached or the database cannot be created, and
    /// under `CI=true` when the variable is unset or this build lacks the `mysql`
    /// feature.
    pub fn mysql(test: &str) -> Option<Self> {
        let server = service_url(MYSQL_URL_VAR, test)?;
        Self::create_mysql(&server, test)
    }

    #[cfg(feature = "mysql")]
    fn create_mysql(server: &str, _test: &str) -> Option<Self> {
        use diesel::{Connection as _, RunQueryDsl as _};
        let name = format!("safebox_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = diesel::MysqlConnection::establish(server)
            .unwrap_or_else(|err| panic!("{MYSQL_URL_VAR}: cannot connect: {err}"));
        diesel::sql_query(format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .execute(&mut admin)
        .unwrap_or_else(|err| panic!("{MYSQL_URL_VAR}: cannot create a test database: {err}"));
        Some(Self {
            url: with_database(server, &name),
            backend: TestBackend::Mysql,
            _dir: None,
            mysql: Some((server.to_owned(), name)),
        })
    }

    #[cfg(not(feature = "mysql"))]
    fn create_mysql(_server: &str, test: &str) -> Option<Self> {
        assert!(
            !in_ci(),
            "{test}: {MYSQL_URL_VAR} is set but this build lacks the `mysql` feature"
        );
        eprintln!("SKIPPED {test}: built without the `mysql` feature (make test-mysql)");
        None
    }

    /// The database's URL, for `SAFEBOX_DATABASE_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which backend it is on.
    pub fn backend(&self) -> TestBackend {
        self.backend
    }
}

/// `server` (a `mysql://` URL) with its database replaced by `database`.
pub fn with_database(server: &str, database: &str) -> String {
    let (base, query) = server
        .split_once('?')
        .map_or((server, None), |(base, query)| (base, Some(query)));
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        #[cfg(feature = "mysql")]
        if let Some((server, name)) = &self.mysql {
            use diesel::{Connection as _, RunQueryDsl as _};
            let dropped = diesel::MysqlConnection::establish(server).map(|mut admin| {
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name}")).execute(&mut admin)
            });
            if !matches!(dropped, Ok(Ok(_))) {
                eprintln!("could not drop the test database {name}");
            }
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

/// Declares each listed test `fn NAME(store: S)` once per backend: `sqlite::NAME`
/// always, and `mysql::NAME`, which skips (see [`service_url`]) unless a MySQL
/// server is configured. `open` is a function in the same module, `fn(TestBackend,
/// &str) -> Option<S>`, that makes the store on a fresh database.
///
/// One test suite, written once, so that every backend is held to the same
/// contract.
#[macro_export]
macro_rules! backend_tests {
    ($open:ident => $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let store = super::$open($crate::testing::TestBackend::Sqlite, stringify!($name))
                        .expect("SQLite is always available");
                    super::$name(store);
                }
            )*
        }
        mod mysql {
            $(
                #[test]
                fn $name() {
                    if let Some(store) = super::$open(
                        $crate::testing::TestBackend::Mysql,
                        concat!("mysql::", stringify!($name)),
                    ) {
                        super::$name(store);
                    }
                }
            )*
        }
    };
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

/// [`FaultyProxy`] and its pumps.
mod proxy {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    const FORWARD: u8 = 0;
    /// New connections are closed at once and open ones are cut, as when the
    /// server process has stopped.
    const DOWN: u8 = 1;
    /// Connections stay open but nothing is passed on, either way, as when the
    /// server is frozen or the network drops every packet.
    const STALL: u8 = 2;

    /// A TCP proxy between safebox and a service (MySQL, Redis) that a test can
    /// break: take the service down, freeze it, and bring it back, without touching
    /// the real server that other tests share.
    pub struct FaultyProxy {
        port: u16,
        mode: Arc<AtomicU8>,
        open: Arc<Mutex<Vec<TcpStream>>>,
    }

    impl FaultyProxy {
        /// Starts forwarding a local port to `upstream` (`host:port`).
        pub fn start(upstream: &str) -> Self {
            let upstream: SocketAddr = upstream.parse().expect("an IP:port upstream");
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let mode = Arc::new(AtomicU8::new(FORWARD));
            let open = Arc::new(Mutex::new(Vec::new()));
            let (accept_mode, accept_open) = (Arc::clone(&mode), Arc::clone(&open));
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { continue };
                    let (mode, open) = (Arc::clone(&accept_mode), Arc::clone(&accept_open));
                    std::thread::spawn(move || serve(client, upstream, &mode, &open));
                }
            });
            Self { port, mode, open }
        }

        /// The port to connect to instead of the service's.
        pub fn port(&self) -> u16 {
            self.port
        }

        /// Stops the service: cuts every open connection and closes new ones.
        pub fn down(&self) {
            self.mode.store(DOWN, Ordering::SeqCst);
            for stream in self.open.lock().unwrap().drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }

        /// Freezes the service: connections stay open, nothing gets through.
        pub fn stall(&self) {
            self.mode.store(STALL, Ordering::SeqCst);
        }

        /// Brings the service back.
        pub fn restore(&self) {
            self.mode.store(FORWARD, Ordering::SeqCst);
        }
    }

    impl Drop for FaultyProxy {
        fn drop(&mut self) {
            self.down();
        }
    }

    fn serve(
        client: TcpStream,
        upstream: SocketAddr,
        mode: &AtomicU8,
        open: &Mutex<Vec<TcpStream>>,
    ) {
        // A new connection waits while the service is frozen, and is closed while
        // it is down.
        while mode.load(Ordering::SeqCst) == STALL {
            std::thread::sleep(Duration::from_millis(10));
        }
        if mode.load(Ordering::SeqCst) == DOWN {
            return;
        }
        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
            return;
        };
        {
            let mut open = open.lock().unwrap();
            for stream in [&client, &server] {
                if let Ok(clone) = stream.try_clone() {
                    open.push(clone);
                }
            }
        }
        let (Ok(client_reader), Ok(server_reader)) = (client.try_clone(), server.try_clone())
        else {
            return;
        };
        std::thread::scope(|scope| {
            scope.spawn(|| pump(client_reader, &server, mode));
            pump(server_reader, &client, mode);
        });
    }

    /// Copies `from` to `to` until either closes or the service goes down; while
    /// frozen, reads nothing.
    fn pump(mut from: TcpStream, mut to: &TcpStream, mode: &AtomicU8) {
        let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
        let mut buffer = [0_u8; 16 * 1024];
        loop {
            match mode.load(Ordering::SeqCst) {
                DOWN => break,
                STALL => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                _ => {}
            }
            match from.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => {
                    // Bytes read just as the service froze are held, not
                    // passed on, until it thaws: a freeze takes effect at
                    // once.
                    while mode.load(Ordering::SeqCst) == STALL {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    if mode.load(Ordering::SeqCst) == DOWN || to.write_all(&buffer[..read]).is_err()
                    {
                        break;
                    }
                }
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    }
}

pub use proxy::FaultyProxy;

/// The contracts of the limiter ports, written once and run against every
/// adapter (in memory and in Redis): each function fails its test through a
/// panic when the adapter breaks the port's contract.
pub mod contracts {
    use std::time::Duration;

    use safebox_domain::Timestamp;
    use safebox_domain::ports::{AttemptLimiter, LockoutPolicy, RateLimiter};

    /// 3 failures in 60 s lock for 100 s.
    pub fn lockout_policy() -> LockoutPolicy {
        LockoutPolicy {
            threshold: 3,
            window_secs: 60,
            duration_secs: 100,
        }
    }

    fn fail(limiter: &dyn AttemptLimiter, key: &str, at: i64) -> bool {
        limiter
            .record_failure(key, Timestamp(at), &lockout_policy())
            .unwrap()
    }

    /// The threshold locks within the window, for the policy's duration, on the
    /// caller's clock; other keys are not affected; a lock clears the failures;
    /// a threshold of 0 behaves as 1.
    pub fn attempts_lock_after_the_threshold_within_the_window(limiter: &dyn AttemptLimiter) {
        assert!(!fail(limiter, "k", 0));
        assert!(!fail(limiter, "k", 10));
        assert_eq!(limiter.locked_for("k", Timestamp(10)).unwrap(), None);
        assert!(fail(limiter, "k", 20), "the third failure locks");
        assert_eq!(limiter.locked_for("k", Timestamp(20)).unwrap(), Some(100));
        assert_eq!(limiter.locked_for("k", Timestamp(119)).unwrap(), Some(1));
        assert_eq!(limiter.locked_for("k", Timestamp(120)).unwrap(), None);
        assert_eq!(limiter.locked_for("other", Timestamp(20)).unwrap(), None);
        // Locking cleared the failures: three more are needed.
        assert!(!fail(limiter, "k", 21));
        assert!(!fail(limiter, "k", 22));
        assert!(fail(limiter, "k", 23));
        let eager = LockoutPolicy {
            threshold: 0,
            ..lockout_policy()
        };
        assert!(limiter.record_failure("e", Timestamp(5), &eager).unwrap());
    }

    /// A failure older than the window no longer counts.
    pub fn failures_outside_the_window_do_not_count(limiter: &dyn AttemptLimiter) {
        fail(limiter, "k", 0);
        fail(limiter, "k", 30);
        assert!(!fail(limiter, "k", 61), "the first failure left the window");
        assert!(fail(limiter, "k", 62));
    }

    /// `reset` forgets every failure of the key (also one of 320 characters,
    /// the longest kept), and of a key never seen is no error.
    pub fn reset_forgets_failures(limiter: &dyn AttemptLimiter) {
        let long = format!("{}@example.com", "u".repeat(308));
        for key in ["k", long.as_str()] {
            fail(limiter, key, 0);
            fail(limiter, key, 1);
            limiter.reset(key).unwrap();
            assert!(!fail(limiter, key, 2));
            assert!(!fail(limiter, key, 3));
            assert!(
                fail(limiter, key, 4),
                "counting started again after the reset"
            );
        }
        limiter.reset("never-seen").unwrap();
    }

    /// `limiter` was made with a burst of 3 and 60 a minute: three tokens, then
    /// a refusal with a wait of 1 s (rounded up); another key has its own
    /// bucket.
    pub fn buckets_allow_a_burst_then_refuse_with_a_wait(limiter: &dyn RateLimiter) {
        for _ in 0..3 {
            assert_eq!(limiter.acquire("ip:192.0.2.1").unwrap(), None);
        }
        assert_eq!(limiter.acquire("ip:192.0.2.1").unwrap(), Some(1));
        assert_eq!(limiter.acquire("ip:2001:db8::/64").unwrap(), None);
    }

    /// `limiter` was made with a burst of 1 and 300 a minute (one token every
    /// 200 ms): refused at once, a token again after 300 ms. (The second take
    /// comes well within 200 ms of the first even on a loaded machine.)
    pub fn buckets_refill_over_time(limiter: &dyn RateLimiter) {
        assert_eq!(limiter.acquire("ip").unwrap(), None);
        assert_eq!(limiter.acquire("ip").unwrap(), Some(1));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(limiter.acquire("ip").unwrap(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_mysql_url_is_replaced() {
        assert_eq!(
            with_database("mysql://u:p@127.0.0.1:3306/test", "t1"),
            "mysql://u:p@127.0.0.1:3306/t1"
        );
        assert_eq!(with_database("mysql://u@h", "t1"), "mysql://u@h/t1");
        assert_eq!(
            with_database("mysql://u@h/x?ssl_mode=disabled", "t1"),
            "mysql://u@h/t1?ssl_mode=disabled"
        );
    }
}
