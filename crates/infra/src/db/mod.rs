//! diesel + r2d2 on SQLite (the embedded default) and, with the `mysql` feature,
//! MySQL-compatible servers: the connection pool, migrations and repositories.
//!
//! One set of repositories serves every backend through [`DbConnection`], diesel's
//! `MultiConnection` over the backends' connections. Where the SQL of the backends
//! really differs, the method concerned matches on the connection's variant.

mod audit;
pub mod copy;
mod schema;
mod secrets;
mod serve_lock;
mod sessions;
mod users;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection as _, TransactionManager};
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection as _};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection as _, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use safebox_domain::{BoxError, RepoError};

use crate::redact_url;

pub use audit::DieselAuditLog;
pub use secrets::DieselSecretRepository;
pub use serve_lock::ServeLock;
pub use sessions::DieselSessionRepository;
pub use users::DieselUserRepository;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");

/// How long SQLite waits on a lock held by another connection before giving up.
const BUSY_TIMEOUT_MS: u32 = 5_000;

/// A connection to whichever backend the database URL names.
///
/// The MySQL variant comes first: `DbConnection::establish` tries the variants in
/// order, and MySQL refuses anything but a `mysql://` URL at once, so an SQLite
/// path falls through to SQLite without a connection attempt. (The pool does not
/// rely on this: it connects by the URL's scheme, so that a MySQL server that is
/// down is reported as such, never retried as a file name.)
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// A MySQL-compatible server (MySQL 8, MariaDB, TiDB, Vitess).
    #[cfg(feature = "mysql")]
    Mysql(diesel::MysqlConnection),
    /// An SQLite file.
    Sqlite(SqliteConnection),
}

/// The kind of database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (`sqlite://PATH` or a bare path).
    Sqlite,
    /// A MySQL-compatible server (`mysql://`).
    Mysql,
}

impl Backend {
    /// The name operators see in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Mysql => "mysql",
        }
    }
}

/// A database URL resolved by its scheme.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file at this path.
    Sqlite(String),
    /// A MySQL-compatible server at this `mysql://` URL (it may hold a password).
    Mysql(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Mysql(url) => f.debug_tuple("Mysql").field(&redact_url(url)).finish(),
        }
    }
}

impl DatabaseUrl {
    /// Resolves `url`: `sqlite://PATH`, `sqlite:PATH` or a bare path is SQLite,
    /// `mysql://…` is MySQL; any other scheme is an error naming it.
    pub fn parse(url: &str) -> Result<Self, DbError> {
        if url.starts_with("mysql://") {
            return Ok(Self::Mysql(url.to_owned()));
        }
        let path = if let Some(path) = url.strip_prefix("sqlite://") {
            path
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            path
        } else if let Some((scheme, _)) = url.split_once("://") {
            return Err(DbError::UnsupportedUrl(format!(
                "unsupported scheme {scheme:?}; use sqlite://PATH, a file path or mysql://USER:PASSWORD@HOST:PORT/DATABASE"
            )));
        } else {
            url
        };
        if path.is_empty() || path == ":memory:" {
            return Err(DbError::UnsupportedUrl(
                "an SQLite file path is required (in-memory databases are not shared by a pool)"
                    .to_owned(),
            ));
        }
        Ok(Self::Sqlite(path.to_owned()))
    }

    /// The backend this URL names.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Mysql(_) => Backend::Mysql,
        }
    }

    /// The URL with any password replaced, for messages.
    pub fn redacted(&self) -> String {
        match self {
            // A mistyped MySQL URL (`mysql:/user:pw@host`) is taken for a path:
            // it is redacted like any URL.
            Self::Sqlite(path) => redact_url(&format!("sqlite://{path}")),
            Self::Mysql(url) => redact_url(url),
        }
    }
}

/// Opens connections for the pool, by the URL's scheme, and applies safebox's
/// session settings to each.
pub struct DbManager {
    url: DatabaseUrl,
    /// MySQL: how long a statement waits for a row lock.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    lock_wait_secs: u64,
}

impl ManageConnection for DbManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        use diesel::r2d2::Error;
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path).map_err(Error::ConnectionError)?;
                // synchronous=FULL: a commit returns only after the WAL is fsynced,
                // so every acknowledged write survives a power cut, not just a
                // process crash.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = FULL;
                     PRAGMA foreign_keys = ON;"
                ))
                .map_err(Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
            #[cfg(feature = "mysql")]
            DatabaseUrl::Mysql(url) => {
                let mut conn =
                    diesel::MysqlConnection::establish(url).map_err(Error::ConnectionError)?;
                // Strict mode: a value that does not fit is an error, never silently
                // truncated. A row lock is waited for about as long as a request
                // waits for a connection, not InnoDB's default 50 s.
                conn.batch_execute(&format!(
                    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO';
                     SET SESSION innodb_lock_wait_timeout = {};",
                    self.lock_wait_secs
                ))
                .map_err(Error::QueryError)?;
                mysql::check_tls(&mut conn, url).map_err(|problem| {
                    Error::ConnectionError(diesel::ConnectionError::BadConnection(problem))
                })?;
                Ok(DbConnection::Mysql(conn))
            }
            #[cfg(not(feature = "mysql"))]
            DatabaseUrl::Mysql(_) => Err(Error::ConnectionError(
                diesel::ConnectionError::BadConnection(MYSQL_NOT_BUILT.to_owned()),
            )),
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        CONNECTION_LOST.with(|lost| lost.replace(false))
            || std::thread::panicking()
            || conn.is_broken()
    }
}

thread_local! {
    /// Set when a statement on the connection this thread has checked out failed
    /// in a way that leaves the connection unusable (its server went away); read
    /// and cleared when the connection goes back to the pool, which then drops it
    /// instead of handing it out again. A connection is used by one thread at a
    /// time, from checkout to return, so the flag always concerns that one.
    static CONNECTION_LOST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Notes a failure that leaves the checked-out connection unusable; see
/// [`CONNECTION_LOST`].
fn note_failure(err: &DieselError) {
    if breaks_connection(err) {
        CONNECTION_LOST.with(|lost| lost.set(true));
    }
}

#[cfg(not(feature = "mysql"))]
const MYSQL_NOT_BUILT: &str = "this safebox was built without MySQL support; build it with `cargo build --release -p safebox-server --features mysql`";

type DbConnPool = Pool<DbManager>;
/// A connection checked out of a [`DbPool`].
pub type Conn = PooledConnection<DbManager>;

/// The database connections shared by the repositories: a pool for reads, and
/// a pool that every write goes through.
///
/// On SQLite the write pool is one connection. SQLite lets one connection write at
/// a time; others that try wait in SQLite's busy handler, which sleeps in steps of
/// up to 100 ms. Queueing writers on the one write connection instead wakes each
/// the moment the previous write is done. (Another process writing the same file,
/// such as `safebox admin`, still meets the busy timeout.) A MySQL server locks
/// rows, not the database, so there both are the same pool.
#[derive(Clone)]
pub struct DbPool {
    backend: Backend,
    reads: DbConnPool,
    writes: DbConnPool,
    /// Requests waiting for a write connection: the audit log's background
    /// writer gives way to them ([`checkout_background_write`]).
    writers_waiting: Arc<AtomicUsize>,
}

impl DbPool {
    /// The backend the pool is connected to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for reading, for callers outside the repositories (tests,
    /// the command line).
    pub fn get(&self) -> Result<Conn, diesel::r2d2::PoolError> {
        self.reads.get()
    }

    /// Checks that the database answers: checks out a read connection (waiting at
    /// most the pool's connection timeout) and runs a trivial query. Blocks.
    ///
    /// On SQLite the query reads the schema table rather than `SELECT 1`, which
    /// SQLite answers without touching the file: reading the schema takes a read
    /// transaction, so a database that cannot be read is noticed.
    pub fn ping(&self) -> Result<(), PingError> {
        let mut conn = self.reads.get().map_err(PingError::Checkout)?;
        match &mut *conn {
            DbConnection::Sqlite(conn) => conn.batch_execute("SELECT count(*) FROM sqlite_master"),
            #[cfg(feature = "mysql")]
            DbConnection::Mysql(conn) => conn.batch_execute("SELECT 1"),
        }
        .inspect_err(note_failure)
        .map_err(PingError::Query)
    }

    /// Whether a request is waiting for a write connection. On SQLite there is
    /// one, so a background writer holding it (the audit log, in batches)
    /// checks this between rows and commits early to let the request write.
    pub(crate) fn writers_waiting(&self) -> bool {
        self.writers_waiting.load(Ordering::SeqCst) > 0
    }

    /// How many connections of each pool are idle and in use, for metrics.
    pub fn connections(&self) -> PoolConnections {
        let state = |pool: &DbConnPool| {
            let state = pool.state();
            ConnectionCounts {
                idle: state.idle_connections,
                in_use: state.connections.saturating_sub(state.idle_connections),
            }
        };
        PoolConnections {
            reads: state(&self.reads),
            writes: state(&self.writes),
        }
    }
}

/// The connections of the two pools; see [`DbPool::connections`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConnections {
    /// The read pool.
    pub reads: ConnectionCounts,
    /// The write pool (one connection on SQLite; the read pool itself on MySQL).
    pub writes: ConnectionCounts,
}

/// The connections of one pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// Open and waiting to be checked out.
    pub idle: u32,
    /// Checked out.
    pub in_use: u32,
}

/// Why [`DbPool::ping`] failed.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    /// No connection could be checked out within the pool's timeout (every
    /// connection busy, or new ones cannot be opened).
    #[error("no database connection: {0}")]
    Checkout(#[source] diesel::r2d2::PoolError),
    /// The query failed.
    #[error("database query failed: {0}")]
    Query(#[source] DieselError),
}

impl PingError {
    /// A short reason for a health check's response: fixed text that never holds a
    /// path, a query or data.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Checkout(_) => "timed out waiting for a connection",
            Self::Query(DieselError::DatabaseError(_, info))
                if is_busy(&info.message().to_ascii_lowercase()) =>
            {
                "database is locked"
            }
            Self::Query(err) if is_unavailable(err) => "connection lost",
            Self::Query(_) => "query failed",
        }
    }
}

/// The database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL's scheme is not one this build serves.
    #[error("SAFEBOX_DATABASE_URL: {0}")]
    UnsupportedUrl(String),
    /// The pool could not open a working connection.
    #[error("cannot open the database {database}: {source}")]
    Connect {
        /// The database, its password redacted.
        database: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(#[source] BoxError),
    /// Another server holds a claim on this SQLite database that this one
    /// cannot share ([`ServeLock`]).
    #[error(
        "the SQLite database {database} is already served by {}{}. A server with the read cache \
         (the default) must be the only server of its database: stop the other first, or set \
         SAFEBOX_READ_CACHE_MIB=0 on every server that shares the file",
        if *.exclusive { "another safebox server" } else { "a safebox server with the read cache on" },
        pid_note(.holder)
    )]
    InUse {
        /// The database file.
        database: String,
        /// The pid of the last server that claimed it, when it is known.
        holder: Option<u32>,
        /// Whether this server wanted it alone (it has the read cache on).
        exclusive: bool,
    },
}

fn pid_note(holder: &Option<u32>) -> String {
    holder
        .map(|pid| format!(" (pid {pid}, or another)"))
        .unwrap_or_default()
}

/// Opens the connection pools on `url`: `pool_size` connections for reads and,
/// on SQLite, one for writes. Fails if no connection can be made within
/// `timeout`, which is also how long a request waits for a connection later.
pub fn connect(url: &str, pool_size: u32, timeout: Duration) -> Result<DbPool, DbError> {
    let url = DatabaseUrl::parse(url)?;
    let backend = url.backend();
    let database = url.redacted();
    #[cfg(not(feature = "mysql"))]
    if backend == Backend::Mysql {
        return Err(DbError::UnsupportedUrl(MYSQL_NOT_BUILT.to_owned()));
    }
    let manager = || DbManager {
        url: url.clone(),
        lock_wait_secs: timeout.as_secs().max(1),
    };
    let pool = |size: u32| {
        Pool::builder()
            .max_size(size)
            // Checking each connection with a query on every checkout would cost
            // a round trip per request (a quarter of a MySQL read). A connection
            // whose server went away (a restart, a failover, an idle timeout) is
            // dropped when it comes back from the request that found out
            // (`CONNECTION_LOST`), and the pool opens a new one.
            .test_on_check_out(false)
            .connection_timeout(timeout)
            .build(manager())
            .map_err(|err| DbError::Connect {
                database: database.clone(),
                source: Box::new(err),
            })
    };
    let reads = pool(pool_size)?;
    let writes = match backend {
        Backend::Sqlite => pool(1)?,
        Backend::Mysql => reads.clone(),
    };
    Ok(DbPool {
        backend,
        reads,
        writes,
        writers_waiting: Arc::default(),
    })
}

fn migration_connection(pool: &DbPool) -> Result<Conn, DbError> {
    pool.writes.get().map_err(|err| DbError::Connect {
        database: pool.backend.as_str().to_owned(),
        source: Box::new(err),
    })
}

/// The migrations not yet applied, without applying any.
pub fn pending_migrations(pool: &DbPool) -> Result<Vec<String>, DbError> {
    let mut conn = migration_connection(pool)?;
    match &mut *conn {
        DbConnection::Sqlite(conn) => conn.pending_migrations(SQLITE_MIGRATIONS).map(versions),
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(conn) => conn.pending_migrations(MYSQL_MIGRATIONS).map(versions),
    }
    .map_err(DbError::Migration)
}

fn versions<DB: diesel::backend::Backend>(
    migrations: Vec<Box<dyn diesel::migration::Migration<DB> + '_>>,
) -> Vec<String> {
    migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect()
}

/// Applies every pending migration of the backend's folder (`migrations/sqlite`
/// or `migrations/mysql`); returns the versions applied.
pub fn migrate(pool: &DbPool) -> Result<Vec<String>, DbError> {
    let mut conn = migration_connection(pool)?;
    let applied = match &mut *conn {
        // All of it under SQLite's write lock, so that of two processes
        // starting at once one migrates and the other waits (busy_timeout),
        // then finds nothing left to do. Each migration runs in a savepoint.
        DbConnection::Sqlite(conn) => conn.immediate_transaction(|conn| {
            conn.run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|applied| applied.iter().map(ToString::to_string).collect())
        }),
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(conn) => mysql::migrate_locked(conn),
    }
    .map_err(DbError::Migration)?;
    Ok(applied)
}

#[cfg(feature = "mysql")]
mod mysql {
    use diesel::sql_types::{Integer, Nullable};
    use diesel::{MysqlConnection, QueryableByName, RunQueryDsl as _};
    use diesel_migrations::MigrationHarness as _;
    use safebox_domain::BoxError;

    use super::MYSQL_MIGRATIONS;

    /// How long an instance waits for another's migration to finish, and how
    /// long a migration's statements wait for row locks.
    const LOCK_WAIT_SECS: i32 = 120;
    /// The lock's name: named locks are server-wide, so it names the database
    /// (hashed, to stay within the 64 characters a name may have).
    const LOCK: &str = "CONCAT('safebox_migrations:', SHA1(DATABASE()))";

    #[derive(QueryableByName)]
    struct Status {
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[diesel(column_name = "Value")]
        value: String,
    }

    /// Fails when the URL asks for TLS (`ssl_mode` `required`, `verify_ca` or
    /// `verify_identity`) and the connection is not encrypted. libmariadb, the
    /// client library Debian builds link, ignores diesel's `ssl_mode` and
    /// connects in plaintext; this makes that an error instead of a silent
    /// downgrade.
    pub(super) fn check_tls(conn: &mut MysqlConnection, url: &str) -> Result<(), String> {
        let Some(mode) = ssl_mode(url) else {
            return Ok(());
        };
        if !matches!(mode.as_str(), "required" | "verify_ca" | "verify_identity") {
            return Ok(());
        }
        let cipher: Vec<Status> = diesel::sql_query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            .load(conn)
            .map_err(|err| format!("cannot check that the connection is encrypted: {err}"))?;
        if cipher.iter().any(|status| !status.value.is_empty()) {
            return Ok(());
        }
        Err(format!(
            "ssl_mode={mode} was asked for, but the connection is not encrypted: this build's \
             MySQL client library does not apply ssl_mode (libmariadb ignores it); build \
             against libmysqlclient, or reach the server over a TLS tunnel and drop ssl_mode"
        ))
    }

    /// The `ssl_mode` query parameter of a `mysql://` URL, in lower case.
    fn ssl_mode(url: &str) -> Option<String> {
        let query = url.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (name == "ssl_mode").then(|| value.to_ascii_lowercase())
        })
    }

    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = Nullable<Integer>)]
        locked: Option<i32>,
    }

    /// Runs the pending migrations holding a named lock (`GET_LOCK`), so that of
    /// several instances started at once one migrates and the others wait, then
    /// find nothing left to do.
    pub(super) fn migrate_locked(conn: &mut MysqlConnection) -> Result<Vec<String>, BoxError> {
        let taken: Locked = diesel::sql_query(format!(
            "SELECT GET_LOCK({LOCK}, {LOCK_WAIT_SECS}) AS locked"
        ))
        .get_result(conn)?;
        // A migration on a live database may wait for rows that requests hold
        // (migration 000004 updates every secret): longer than a request would.
        // The connection goes back to the pool with this setting changed, so
        // it is dropped there (CONNECTION_LOST) and the pool opens a fresh one.
        super::CONNECTION_LOST.with(|lost| lost.set(true));
        diesel::sql_query(format!(
            "SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_SECS}"
        ))
        .execute(conn)?;
        if taken.locked != Some(1) {
            return Err(format!(
                "another instance held the migration lock for over {LOCK_WAIT_SECS} s"
            )
            .into());
        }
        let applied = conn
            .run_pending_migrations(MYSQL_MIGRATIONS)
            .map(|applied| applied.iter().map(ToString::to_string).collect());
        let released = diesel::sql_query(format!("DO RELEASE_LOCK({LOCK})")).execute(conn);
        let applied = applied?;
        released?;
        Ok(applied)
    }
}

fn checkout(pool: &DbPool) -> Result<Conn, RepoError> {
    checkout_from(&pool.reads)
}

/// A connection of the write pool for a request's write; see [`DbPool`]. While
/// it waits, background writers give way ([`DbPool::writers_waiting`]).
fn checkout_write(pool: &DbPool) -> Result<Conn, RepoError> {
    struct Waiting<'a>(&'a AtomicUsize);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    pool.writers_waiting.fetch_add(1, Ordering::SeqCst);
    let _waiting = Waiting(&pool.writers_waiting);
    checkout_from(&pool.writes)
}

/// A connection of the write pool for background work (the audit log), which
/// must not hold it while requests wait: see [`DbPool::writers_waiting`].
fn checkout_background_write(pool: &DbPool) -> Result<Conn, RepoError> {
    checkout_from(&pool.writes)
}

/// A connection of `pool`, waiting at most its timeout, or less when the
/// request's deadline comes sooner ([`crate::deadline`]).
fn checkout_from(pool: &DbConnPool) -> Result<Conn, RepoError> {
    let wait = crate::deadline::bounded(pool.connection_timeout())
        .ok_or_else(|| RepoError::Unavailable(Box::new(crate::deadline::DeadlinePassed)))?;
    pool.get_timeout(wait)
        .map_err(|err| RepoError::Unavailable(Box::new(err)))
}

/// Runs `f` in a transaction meant to write. On SQLite it begins `IMMEDIATE`,
/// taking the write lock up front: a deferred transaction that reads and then
/// writes fails at once (without the busy handler) when another process wrote in
/// between, so that a check and the write it guards could not be kept together.
/// MySQL locks the rows a statement writes, so a plain transaction does.
fn write_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DieselError>,
{
    match conn {
        DbConnection::Sqlite(conn) => {
            AnsiTransactionManager::begin_transaction_sql(conn, "BEGIN IMMEDIATE")?;
        }
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(conn) => AnsiTransactionManager::begin_transaction(conn)?,
    }
    // The inner connection holds the transaction's state, so committing through
    // the outer one ends the transaction begun above.
    match f(conn) {
        Ok(value) => {
            // A commit that fails on a lost connection comes back as diesel's
            // RollbackErrorOnCommit: the outcome is unknown (503), and
            // `repo_error` marks the connection.
            DbConnection::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => {
            // The error that ended the transaction is the one to report. A
            // rollback that fails too (the connection is gone) only means the
            // connection must not be used again.
            if DbConnection::rollback_transaction(conn).is_err() {
                CONNECTION_LOST.with(|lost| lost.set(true));
            }
            Err(err)
        }
    }
}

/// Runs `$body` with `$c` bound to the backend's own connection
/// (`SqliteConnection` or `MysqlConnection`): the statement is written once and
/// compiled for each backend.
///
/// Every repository statement runs this way rather than on the
/// `MultiConnection` itself. diesel's multi-backend connection builds a
/// statement's SQL text again, with its binds converted, on every execution,
/// even when the statement is cached: with three statements per read that cost
/// a third of the read throughput. The backends' own connections find their
/// cached statements by type. It also runs what the multi-backend cannot send,
/// such as multi-row `INSERT`s.
macro_rules! native {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Sqlite($c) => $body,
            #[cfg(feature = "mysql")]
            $crate::db::DbConnection::Mysql($c) => $body,
        }
    };
}
pub(crate) use native;

/// Maps a diesel error to the port's error: a locked or busy database, a lost
/// connection or a lock wait that timed out is `Unavailable` (retrying later may
/// work), anything else `Internal`.
fn repo_error(err: DieselError) -> RepoError {
    note_failure(&err);
    if is_unavailable(&err) {
        RepoError::Unavailable(Box::new(err))
    } else {
        RepoError::Internal(Box::new(err))
    }
}

fn is_unavailable(err: &DieselError) -> bool {
    match err {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::SerializationFailure,
            _,
        ) => true,
        DieselError::DatabaseError(_, info) => {
            let message = info.message().to_ascii_lowercase();
            is_busy(&message) || mentions(&message, &UNAVAILABLE)
        }
        // A commit that failed, and the rollback after it too: whether the
        // transaction committed is unknown.
        DieselError::RollbackErrorOnCommit { .. } | DieselError::BrokenTransactionManager => true,
        _ => false,
    }
}

/// Whether `err` leaves its connection unusable: closed, its server gone, or
/// its transaction state unknown.
fn breaks_connection(err: &DieselError) -> bool {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        DieselError::DatabaseError(_, info) => {
            mentions(&info.message().to_ascii_lowercase(), &GONE)
        }
        DieselError::RollbackErrorOnCommit { .. } | DieselError::BrokenTransactionManager => true,
        _ => false,
    }
}

/// Whether the lower-case `message` contains one of `words`.
fn mentions(message: &str, words: &[&str]) -> bool {
    words.iter().any(|word| message.contains(word))
}

/// The words, in lower case, of libmysqlclient, libmariadb and the servers
/// (MySQL, MariaDB, TiDB) for a connection or server that went away.
const GONE: [&str; 5] = [
    "server has gone away",
    "lost connection",
    "server shutdown in progress",
    "connection was killed",
    "commands out of sync",
];

/// [`GONE`], and the words for a server that cannot be reached, a lock wait or
/// a transaction that lost to another: retrying later may work.
const UNAVAILABLE: [&str; 10] = [
    "server has gone away",
    "lost connection",
    "server shutdown in progress",
    "connection was killed",
    "can't connect",
    "unknown mysql server host",
    "unknown server host",
    "lock wait timeout exceeded",
    "deadlock found",
    // TiDB's optimistic transactions, when another committed first.
    "write conflict",
];

fn is_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database is busy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_resolve_by_scheme_or_give_clear_errors() {
        let sqlite = |url| DatabaseUrl::parse(url).unwrap();
        assert_eq!(
            sqlite("sqlite://./data/x.db"),
            DatabaseUrl::Sqlite("./data/x.db".into())
        );
        assert_eq!(
            sqlite("sqlite:///var/x.db"),
            DatabaseUrl::Sqlite("/var/x.db".into())
        );
        assert_eq!(sqlite("/var/x.db"), DatabaseUrl::Sqlite("/var/x.db".into()));
        assert_eq!(sqlite("x.db"), DatabaseUrl::Sqlite("x.db".into()));
        let mysql = DatabaseUrl::parse("mysql://root:pw@127.0.0.1/test").unwrap();
        assert_eq!(mysql.backend(), Backend::Mysql);
        assert_eq!(mysql.redacted(), "mysql://root:<redacted>@127.0.0.1/test");
        assert!(!format!("{mysql:?}").contains("pw"));
        let err = DatabaseUrl::parse("postgres://x/y")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported scheme \"postgres\""), "{err}");
        assert!(DatabaseUrl::parse("sqlite://:memory:").is_err());
        assert!(DatabaseUrl::parse("").is_err());
    }

    /// Both backends' folders must hold the same migrations, so that a database
    /// of either kind is at the same schema version after the same release, and
    /// `safebox db copy` can compare them.
    #[test]
    fn both_backends_have_the_same_migrations() {
        let folder = |backend: &str| -> Vec<String> {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../migrations")
                .join(backend);
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| {
                    let entry = entry.unwrap();
                    for file in ["up.sql", "down.sql"] {
                        assert!(
                            entry.path().join(file).is_file(),
                            "{:?} lacks {file}",
                            entry.path()
                        );
                    }
                    entry.file_name().to_string_lossy().into_owned()
                })
                .collect();
            names.sort();
            names
        };
        let sqlite = folder("sqlite");
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, folder("mysql"));
    }

    #[cfg(not(feature = "mysql"))]
    #[test]
    fn a_build_without_mysql_says_how_to_get_it() {
        let err = connect("mysql://root@127.0.0.1/test", 1, Duration::from_secs(1))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--features mysql"), "{err}");
    }

    #[test]
    fn ping_answers_and_reports_an_exhausted_pool() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("p.db").display().to_string();
        let pool = connect(&url, 1, Duration::from_millis(100)).unwrap();
        assert_eq!(pool.backend(), Backend::Sqlite);
        pool.ping().unwrap();
        let idle = pool.connections();
        assert_eq!(idle.reads, ConnectionCounts { idle: 1, in_use: 0 });
        assert_eq!(idle.writes, ConnectionCounts { idle: 1, in_use: 0 });
        let held = pool.get().unwrap();
        assert_eq!(
            pool.connections().reads,
            ConnectionCounts { idle: 0, in_use: 1 }
        );
        let err = pool.ping().unwrap_err();
        assert_eq!(err.reason(), "timed out waiting for a connection");
        drop(held);
        pool.ping().unwrap();
    }

    #[test]
    fn every_connection_gets_the_pragmas() {
        use diesel::sql_types::{BigInt, Text};
        use diesel::{QueryableByName, RunQueryDsl};

        #[derive(QueryableByName)]
        struct Mode {
            #[diesel(sql_type = Text)]
            journal_mode: String,
        }
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("p.db").display().to_string();
        let pool = connect(&url, 2, Duration::from_secs(2)).unwrap();
        let mut a = pool.get().unwrap();
        let mut b = pool.get().unwrap();
        for conn in [&mut a, &mut b] {
            // Irrefutable unless the mysql feature adds its variant.
            #[allow(irrefutable_let_patterns)]
            let DbConnection::Sqlite(conn) = &mut **conn else {
                panic!("not SQLite")
            };
            let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
                .get_result(conn)
                .unwrap();
            assert_eq!(mode.journal_mode, "wal");
            for (pragma, expected) in [
                ("foreign_keys", 1),
                ("synchronous", 2),
                ("busy_timeout", 5000),
            ] {
                let value: i64 = diesel::select(diesel::dsl::sql::<BigInt>(&format!(
                    "(SELECT * FROM pragma_{pragma})"
                )))
                .get_result(conn)
                .unwrap();
                assert_eq!(value, expected, "{pragma}");
            }
        }
    }

    #[test]
    fn lost_servers_and_lock_timeouts_are_unavailable_not_internal() {
        struct Info(&'static str);
        impl diesel::result::DatabaseErrorInformation for Info {
            fn message(&self) -> &str {
                self.0
            }
            fn details(&self) -> Option<&str> {
                None
            }
            fn hint(&self) -> Option<&str> {
                None
            }
            fn table_name(&self) -> Option<&str> {
                None
            }
            fn column_name(&self) -> Option<&str> {
                None
            }
            fn constraint_name(&self) -> Option<&str> {
                None
            }
            fn statement_position(&self) -> Option<i32> {
                None
            }
        }
        let error = |message| {
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(Info(message)))
        };
        for message in [
            // libmysqlclient
            "MySQL server has gone away",
            "Lost connection to MySQL server during query",
            // libmariadb
            "Server has gone away",
            "Lost connection to server during query",
            "Can't connect to server on '127.0.0.1' (111)",
            "Unknown server host 'db.invalid' (-2)",
            // the servers
            "Lock wait timeout exceeded; try restarting transaction",
            "Write conflict, txnStartTS=1, conflictStartTS=2 [try again later]",
            "database is locked",
        ] {
            assert!(
                matches!(repo_error(error(message)), RepoError::Unavailable(_)),
                "{message}"
            );
        }
        assert!(matches!(
            repo_error(error("Unknown column 'x' in 'field list'")),
            RepoError::Internal(_)
        ));
        assert!(matches!(
            repo_error(DieselError::NotFound),
            RepoError::Internal(_)
        ));
        // A commit whose outcome is unknown is a 503, never a 500.
        let lost_commit = DieselError::RollbackErrorOnCommit {
            rollback_error: Box::new(error("Server has gone away")),
            commit_error: Box::new(error("Lost connection to server during query")),
        };
        assert!(matches!(repo_error(lost_commit), RepoError::Unavailable(_)));
    }

    #[test]
    fn a_connection_whose_server_went_away_is_not_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("p.db").display().to_string());
        let manager = DbManager {
            url: url.clone(),
            lock_wait_secs: 1,
        };
        let mut conn = manager.connect().unwrap();
        assert!(!manager.has_broken(&mut conn));
        let failure = |message: &'static str| {
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_owned()))
        };
        // A lock timeout leaves the connection usable; a lost server does not.
        let _ = repo_error(failure(
            "Lock wait timeout exceeded; try restarting transaction",
        ));
        assert!(!manager.has_broken(&mut conn));
        let _ = repo_error(failure("Lost connection to server during query"));
        assert!(manager.has_broken(&mut conn), "dropped on return");
        // libmariadb's capitalisation too.
        let _ = repo_error(failure("Server has gone away"));
        assert!(manager.has_broken(&mut conn));
        // The mark went with that connection: the next one is fine.
        assert!(!manager.has_broken(&mut conn));
        // The pool drops it and hands out a new one: a TEMP table, which only
        // its own connection sees, is gone.
        let pool = Pool::builder()
            .max_size(1)
            .build(DbManager {
                url,
                lock_wait_secs: 1,
            })
            .unwrap();
        let marked = |conn: &mut DbConnection| {
            native!(conn, |conn| conn.batch_execute("SELECT * FROM temp.marker")).is_ok()
        };
        {
            let mut first = pool.get().unwrap();
            native!(&mut *first, |conn| conn
                .batch_execute("CREATE TEMP TABLE marker (x)"))
            .unwrap();
        }
        assert!(
            marked(&mut pool.get().unwrap()),
            "a healthy connection is reused"
        );
        {
            let _checked_out = pool.get().unwrap();
            let _ = repo_error(failure("MySQL server has gone away"));
        }
        assert!(
            !marked(&mut pool.get().unwrap()),
            "the lost connection was replaced"
        );
    }
}
