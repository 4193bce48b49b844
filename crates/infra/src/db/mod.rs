//! diesel + r2d2 on SQLite: the connection pool, migrations and repositories.

mod audit;
mod schema;
mod secrets;
mod sessions;
mod users;

use std::time::Duration;

use diesel::SqliteConnection;
use diesel::connection::SimpleConnection as _;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use safebox_domain::{BoxError, RepoError};

pub use audit::DieselAuditLog;
pub use secrets::DieselSecretRepository;
pub use sessions::DieselSessionRepository;
pub use users::DieselUserRepository;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// How long SQLite waits on a lock held by another connection before giving up.
const BUSY_TIMEOUT_MS: u32 = 5_000;

type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;
type Conn = PooledConnection<ConnectionManager<SqliteConnection>>;

/// The database connections shared by the repositories: a pool for reads, and
/// one connection that every write goes through.
///
/// SQLite lets one connection write at a time; others that try wait in SQLite's
/// busy handler, which sleeps in steps of up to 100 ms. Queueing writers on the
/// one write connection instead wakes each the moment the previous write is done.
/// (Another process writing the same file, such as `safebox admin`, still meets
/// the busy timeout.)
#[derive(Clone)]
pub struct DbPool {
    reads: SqlitePool,
    writes: SqlitePool,
}

impl DbPool {
    /// A connection for reading, for callers outside the repositories (tests,
    /// the command line).
    pub fn get(&self) -> Result<Conn, diesel::r2d2::PoolError> {
        self.reads.get()
    }

    /// Checks that the database answers: checks out a read connection (waiting at
    /// most the pool's connection timeout) and runs a trivial query. Blocks.
    ///
    /// The query reads the schema table rather than `SELECT 1`, which SQLite
    /// answers without touching the file: reading the schema takes a read
    /// transaction, so a database that cannot be read is noticed.
    pub fn ping(&self) -> Result<(), PingError> {
        use diesel::RunQueryDsl as _;
        let mut conn = self.reads.get().map_err(PingError::Checkout)?;
        diesel::sql_query("SELECT count(*) FROM sqlite_master")
            .execute(&mut *conn)
            .map(drop)
            .map_err(PingError::Query)
    }

    /// How many connections of each pool are idle and in use, for metrics.
    pub fn connections(&self) -> PoolConnections {
        let state = |pool: &SqlitePool| {
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
    /// The write pool (one connection).
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
            Self::Query(DieselError::DatabaseError(_, info)) if is_busy(info.message()) => {
                "database is locked"
            }
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
    #[error("cannot open the database: {0}")]
    Connect(#[source] BoxError),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(#[source] BoxError),
}

/// Resolves a database URL to an SQLite file path: `sqlite://PATH` or a bare path.
pub fn sqlite_path(url: &str) -> Result<String, DbError> {
    let path = if let Some(path) = url.strip_prefix("sqlite://") {
        path
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        path
    } else if url.starts_with("mysql://") {
        return Err(DbError::UnsupportedUrl(
            "MySQL is not supported by this build yet; use sqlite://PATH".to_owned(),
        ));
    } else if let Some((scheme, _)) = url.split_once("://") {
        return Err(DbError::UnsupportedUrl(format!(
            "unsupported scheme {scheme:?}; use sqlite://PATH or a file path"
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
    Ok(path.to_owned())
}

/// Applies safebox's SQLite settings to every pooled connection.
#[derive(Debug, Clone, Copy)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        // synchronous=FULL: a commit returns only after the WAL is fsynced, so every
        // acknowledged write survives a power cut, not just a process crash.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;"
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens the connection pools on `url`: `pool_size` connections for reads and
/// one for writes. Fails fast if no connection can be made.
pub fn connect(url: &str, pool_size: u32, timeout: Duration) -> Result<DbPool, DbError> {
    let path = sqlite_path(url)?;
    let pool = |size: u32| {
        Pool::builder()
            .max_size(size)
            // A local SQLite file cannot drop a connection: checking each one with
            // a query on every checkout would only cost time.
            .test_on_check_out(false)
            .connection_timeout(timeout)
            .connection_customizer(Box::new(SqlitePragmas))
            .build(ConnectionManager::<SqliteConnection>::new(path.clone()))
            .map_err(|err| DbError::Connect(Box::new(err)))
    };
    Ok(DbPool {
        reads: pool(pool_size)?,
        writes: pool(1)?,
    })
}

/// The migrations not yet applied, without applying any.
pub fn pending_migrations(pool: &DbPool) -> Result<Vec<String>, DbError> {
    let mut conn = pool
        .writes
        .get()
        .map_err(|err| DbError::Connect(Box::new(err)))?;
    let pending = conn
        .pending_migrations(MIGRATIONS)
        .map_err(DbError::Migration)?;
    Ok(pending
        .iter()
        .map(|m| m.name().version().to_string())
        .collect())
}

/// Applies every pending migration; returns the versions applied.
pub fn migrate(pool: &DbPool) -> Result<Vec<String>, DbError> {
    let mut conn = pool
        .writes
        .get()
        .map_err(|err| DbError::Connect(Box::new(err)))?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(DbError::Migration)?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

fn checkout(pool: &DbPool) -> Result<Conn, RepoError> {
    pool.reads
        .get()
        .map_err(|err| RepoError::Unavailable(Box::new(err)))
}

/// The write connection; see [`DbPool`].
fn checkout_write(pool: &DbPool) -> Result<Conn, RepoError> {
    pool.writes
        .get()
        .map_err(|err| RepoError::Unavailable(Box::new(err)))
}

/// Maps a diesel error to the port's error: a locked or busy database is
/// `Unavailable` (retrying later may work), anything else `Internal`.
fn repo_error(err: DieselError) -> RepoError {
    match &err {
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) if is_busy(info.message()) => {
            RepoError::Unavailable(Box::new(err))
        }
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
            RepoError::Unavailable(Box::new(err))
        }
        _ => RepoError::Internal(Box::new(err)),
    }
}

fn is_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database is busy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_resolve_to_paths_or_clear_errors() {
        assert_eq!(sqlite_path("sqlite://./data/x.db").unwrap(), "./data/x.db");
        assert_eq!(sqlite_path("sqlite:///var/x.db").unwrap(), "/var/x.db");
        assert_eq!(sqlite_path("/var/x.db").unwrap(), "/var/x.db");
        assert_eq!(sqlite_path("x.db").unwrap(), "x.db");
        let err = sqlite_path("mysql://root@127.0.0.1/test")
            .unwrap_err()
            .to_string();
        assert!(err.contains("MySQL is not supported"), "{err}");
        let err = sqlite_path("postgres://x/y").unwrap_err().to_string();
        assert!(err.contains("unsupported scheme \"postgres\""), "{err}");
        assert!(sqlite_path("sqlite://:memory:").is_err());
        assert!(sqlite_path("").is_err());
    }

    #[test]
    fn ping_answers_and_reports_an_exhausted_pool() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("p.db").display().to_string();
        let pool = connect(&url, 1, Duration::from_millis(100)).unwrap();
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
            let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
                .get_result(&mut **conn)
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
                .get_result(&mut **conn)
                .unwrap();
                assert_eq!(value, expected, "{pragma}");
            }
        }
    }
}
