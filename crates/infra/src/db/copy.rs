//! `safebox db copy`: every row of one database copied into another, of either
//! backend, as it is stored.
//!
//! Ciphertexts and wrapped data keys are copied byte for byte, so no key is
//! needed and none is touched: the copy opens with the same master keys as the
//! original. The source is read in one transaction (a consistent snapshot, even
//! while servers write to it) and the target is written in one transaction, so
//! a failed copy leaves the target as empty as it was. At the end every table's
//! row count and a SHA-256 of its rows (in key order) are compared between the
//! two databases.

use diesel::connection::DefaultLoadingMode;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use sha2::{Digest as _, Sha256};

use super::audit::AuditRow;
use super::schema::{
    audit_events, data_keys, refresh_tokens, secret_versions, secrets, sessions, users,
};
use super::secrets::{SecretRow, VersionRow};
use super::sessions::{RefreshTokenRow, SessionRow};
use super::users::{DataKeyRow, UserRow};
use super::{Conn, DbConnection, DbError, DbPool, native, write_transaction};

/// The tables, parents before children, as they are copied and checked.
pub const TABLES: [&str; 7] = [
    "users",
    "data_keys",
    "secrets",
    "secret_versions",
    "sessions",
    "refresh_tokens",
    "audit_events",
];

/// The most rows one `INSERT` carries.
const BATCH_ROWS: usize = 500;
/// The most bytes (roughly) one `INSERT` carries, well under MySQL's default
/// `max_allowed_packet` (16 MiB on MariaDB): a secret version may be 1 MiB.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// How far a copy has got, for progress output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyProgress {
    /// The table being copied.
    pub table: &'static str,
    /// Its rows copied so far.
    pub copied: u64,
    /// Its rows in all.
    pub total: u64,
}

/// One table of a database: its rows and a digest of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    /// The table.
    pub table: &'static str,
    /// How many rows it holds.
    pub rows: u64,
    /// SHA-256 over every row in primary-key order, hex.
    pub digest: String,
}

/// Why a copy did not happen or did not check out.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source has migrations this build knows of but that are not applied:
    /// its rows would not fit the target's schema.
    #[error(
        "the source database needs migrations {0} first: run `safebox migrate` against it with this version"
    )]
    SourceNotMigrated(String),
    /// The target already holds rows.
    #[error(
        "the target database is not empty ({table} has {rows} rows): copy only into a new, empty database"
    )]
    TargetNotEmpty {
        /// The first table found with rows.
        table: &'static str,
        /// How many.
        rows: u64,
    },
    /// After the copy the two databases differ.
    #[error(
        "verification failed: {table} has {source_rows} rows in the source and {target_rows} in the target, or their contents differ"
    )]
    Mismatch {
        /// The table that differs.
        table: &'static str,
        /// Its rows in the source.
        source_rows: u64,
        /// Its rows in the target.
        target_rows: u64,
    },
    /// Opening or migrating a database failed.
    #[error(transparent)]
    Database(#[from] DbError),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] DieselError),
    /// No connection could be had.
    #[error("no database connection: {0}")]
    Connection(#[from] diesel::r2d2::PoolError),
}

/// Copies every row of `from` into `to`, which is migrated first and must then
/// be empty; reports progress through `progress`, then verifies that both hold
/// the same rows. Returns the tables as verified.
pub fn copy(
    from: &DbPool,
    to: &DbPool,
    progress: &mut dyn FnMut(CopyProgress),
) -> Result<Vec<TableSummary>, CopyError> {
    let pending = super::pending_migrations(from)?;
    if !pending.is_empty() {
        return Err(CopyError::SourceNotMigrated(pending.join(", ")));
    }
    super::migrate(to)?;
    let mut target = to.writes.get()?;
    for table in TABLES {
        let rows = count(&mut target, table)?;
        if rows > 0 {
            return Err(CopyError::TargetNotEmpty { table, rows });
        }
    }
    let mut source = from.reads.get()?;
    // The source's summary is taken from the rows as they are copied, inside
    // its snapshot: servers may go on writing to it meanwhile.
    let expected = snapshot(&mut source, |source| {
        write_transaction(&mut target, |target| copy_all(source, target, progress))
    })?;
    drop(target);
    let found = summarize(to)?;
    for (source, target) in expected.iter().zip(&found) {
        if source != target {
            return Err(CopyError::Mismatch {
                table: source.table,
                source_rows: source.rows,
                target_rows: target.rows,
            });
        }
    }
    Ok(found)
}

/// Every table's row count and digest, read in one transaction.
pub fn summarize(pool: &DbPool) -> Result<Vec<TableSummary>, CopyError> {
    let mut conn: Conn = pool.reads.get()?;
    let summary = snapshot(&mut conn, |conn| {
        TABLES
            .into_iter()
            .map(|table| {
                let mut digest = Sha256::new();
                let mut rows = 0_u64;
                for_each_row(conn, table, &mut |row| {
                    rows += 1;
                    row.feed(&mut digest);
                    Ok(())
                })?;
                Ok::<_, DieselError>(TableSummary {
                    table,
                    rows,
                    digest: hex::encode(digest.finalize()),
                })
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(summary)
}

/// Runs `f` in a read-only transaction that sees one snapshot of the whole
/// database. On SQLite (WAL) a read transaction is one from its first read. On
/// MySQL it takes asking for: `REPEATABLE READ` whatever the server's default,
/// and the snapshot taken at once (`WITH CONSISTENT SNAPSHOT`).
fn snapshot<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, DieselError>,
) -> Result<T, DieselError> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    match conn {
        DbConnection::Sqlite(conn) => AnsiTransactionManager::begin_transaction(conn)?,
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(conn) => {
            use diesel::connection::SimpleConnection as _;
            conn.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
            AnsiTransactionManager::begin_transaction_sql(
                conn,
                "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
            )?;
        }
    }
    match f(conn) {
        Ok(value) => {
            DbConnection::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => {
            let _ = DbConnection::rollback_transaction(conn);
            Err(err)
        }
    }
}

fn count(conn: &mut DbConnection, table: &str) -> Result<u64, DieselError> {
    let rows: i64 = native!(conn, |conn| match table {
        "users" => users::table.count().get_result(conn)?,
        "data_keys" => data_keys::table.count().get_result(conn)?,
        "secrets" => secrets::table.count().get_result(conn)?,
        "secret_versions" => secret_versions::table.count().get_result(conn)?,
        "sessions" => sessions::table.count().get_result(conn)?,
        "refresh_tokens" => refresh_tokens::table.count().get_result(conn)?,
        "audit_events" => audit_events::table.count().get_result(conn)?,
        other => unreachable!("no table {other}"),
    });
    Ok(u64::try_from(rows).unwrap_or(0))
}

/// Copies each table in order; returns each table's summary as read from the
/// source.
fn copy_all(
    source: &mut DbConnection,
    target: &mut DbConnection,
    progress: &mut dyn FnMut(CopyProgress),
) -> Result<Vec<TableSummary>, DieselError> {
    let mut summaries = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let total = count(source, table)?;
        let mut batch = Batch::default();
        let mut digest = Sha256::new();
        let (mut rows, mut copied) = (0_u64, 0_u64);
        progress(CopyProgress {
            table,
            copied,
            total,
        });
        for_each_row(source, table, &mut |row| {
            rows += 1;
            row.feed(&mut digest);
            if batch.would_overflow(&row) {
                copied += batch.flush(target)?;
                progress(CopyProgress {
                    table,
                    copied,
                    total,
                });
            }
            batch.push(row);
            Ok(())
        })?;
        copied += batch.flush(target)?;
        progress(CopyProgress {
            table,
            copied,
            total,
        });
        summaries.push(TableSummary {
            table,
            rows,
            digest: hex::encode(digest.finalize()),
        });
    }
    Ok(summaries)
}

/// A row of any table, as stored.
enum Row {
    User(UserRow),
    DataKey(DataKeyRow),
    Secret(SecretRow),
    Version(VersionRow),
    Session(SessionRow),
    RefreshToken(RefreshTokenRow),
    Audit(AuditRow),
}

/// Streams `table`'s rows to `each` in primary-key order.
fn for_each_row(
    conn: &mut DbConnection,
    table: &str,
    each: &mut dyn FnMut(Row) -> Result<(), DieselError>,
) -> Result<(), DieselError> {
    macro_rules! stream {
        ($query:expr, $row:ident) => {
            native!(&mut *conn, |conn| {
                for row in $query.load_iter::<_, DefaultLoadingMode>(conn)? {
                    each(Row::$row(row?))?;
                }
                Ok::<_, DieselError>(())
            })?
        };
    }
    match table {
        "users" => stream!(
            users::table.order(users::id).select(UserRow::as_select()),
            User
        ),
        "data_keys" => stream!(
            data_keys::table
                .order(data_keys::user_id)
                .select(DataKeyRow::as_select()),
            DataKey
        ),
        "secrets" => stream!(
            secrets::table
                .order((secrets::user_id, secrets::name))
                .select(SecretRow::as_select()),
            Secret
        ),
        "secret_versions" => stream!(
            secret_versions::table
                .order((
                    secret_versions::user_id,
                    secret_versions::name,
                    secret_versions::version,
                ))
                .select(VersionRow::as_select()),
            Version
        ),
        "sessions" => stream!(
            sessions::table
                .order(sessions::id)
                .select(SessionRow::as_select()),
            Session
        ),
        "refresh_tokens" => stream!(
            refresh_tokens::table
                .order(refresh_tokens::token_hash)
                .select(RefreshTokenRow::as_select()),
            RefreshToken
        ),
        "audit_events" => stream!(
            audit_events::table
                .order(audit_events::id)
                .select(AuditRow::as_select()),
            Audit
        ),
        other => unreachable!("no table {other}"),
    }
    Ok(())
}

/// Rows of one table waiting to be inserted together.
#[derive(Default)]
struct Batch {
    rows: Vec<Row>,
    bytes: usize,
}

impl Batch {
    fn would_overflow(&self, row: &Row) -> bool {
        !self.rows.is_empty()
            && (self.rows.len() >= BATCH_ROWS || self.bytes + row.bytes() > BATCH_BYTES)
    }

    fn push(&mut self, row: Row) {
        self.bytes += row.bytes();
        self.rows.push(row);
    }

    /// Inserts the rows in one statement; returns how many.
    fn flush(&mut self, target: &mut DbConnection) -> Result<u64, DieselError> {
        let rows = std::mem::take(&mut self.rows);
        self.bytes = 0;
        let Some(first) = rows.first() else {
            return Ok(0);
        };
        macro_rules! insert {
            ($variant:ident, $table:path) => {{
                let typed: Vec<_> = rows
                    .into_iter()
                    .filter_map(|row| match row {
                        Row::$variant(row) => Some(row),
                        _ => None,
                    })
                    .collect();
                native!(&mut *target, |conn| diesel::insert_into($table)
                    .values(&typed)
                    .execute(conn))?
            }};
        }
        let inserted = match first {
            Row::User(_) => insert!(User, users::table),
            Row::DataKey(_) => insert!(DataKey, data_keys::table),
            Row::Secret(_) => insert!(Secret, secrets::table),
            Row::Version(_) => insert!(Version, secret_versions::table),
            Row::Session(_) => insert!(Session, sessions::table),
            Row::RefreshToken(_) => insert!(RefreshToken, refresh_tokens::table),
            Row::Audit(_) => insert!(Audit, audit_events::table),
        };
        Ok(inserted as u64)
    }
}

/// A value as the digest sees it: a type tag, then a length-prefixed encoding, so
/// that no two different rows feed the same bytes.
trait Feed {
    fn feed(&self, digest: &mut Sha256);
}

impl Feed for str {
    fn feed(&self, digest: &mut Sha256) {
        self.as_bytes().feed(digest);
    }
}

impl Feed for String {
    fn feed(&self, digest: &mut Sha256) {
        self.as_str().feed(digest);
    }
}

impl Feed for [u8] {
    fn feed(&self, digest: &mut Sha256) {
        digest.update([b'b']);
        digest.update((self.len() as u64).to_le_bytes());
        digest.update(self);
    }
}

impl Feed for Vec<u8> {
    fn feed(&self, digest: &mut Sha256) {
        self.as_slice().feed(digest);
    }
}

impl Feed for i64 {
    fn feed(&self, digest: &mut Sha256) {
        digest.update([b'i']);
        digest.update(self.to_le_bytes());
    }
}

impl<T: Feed> Feed for Option<T> {
    fn feed(&self, digest: &mut Sha256) {
        match self {
            None => digest.update([b'n']),
            Some(value) => value.feed(digest),
        }
    }
}

impl Row {
    /// Feeds every column, in the table's order.
    fn feed(&self, digest: &mut Sha256) {
        macro_rules! columns {
            ($($column:expr),*) => {{ $( $column.feed(digest); )* }};
        }
        match self {
            Self::User(r) => columns!(
                r.id,
                r.username,
                r.email,
                r.password_hash,
                r.data,
                r.created_at,
                r.role
            ),
            Self::DataKey(r) => columns!(
                r.user_id,
                r.id,
                r.master_key_id,
                r.wrapped_key,
                r.created_at
            ),
            Self::Secret(r) => columns!(
                r.user_id,
                r.name,
                r.created_at,
                r.updated_at,
                r.version,
                r.oldest_version,
                r.metadata,
                r.deleted_at
            ),
            Self::Version(r) => columns!(
                r.user_id,
                r.name,
                r.version,
                r.key_id,
                r.ciphertext,
                r.created_at
            ),
            Self::Session(r) => columns!(
                r.id,
                r.user_id,
                r.kind,
                r.cookie_hash,
                r.created_at,
                r.last_used_at,
                r.expires_at,
                r.client_ip,
                r.user_agent
            ),
            Self::RefreshToken(r) => columns!(r.token_hash, r.session_id, r.created_at, r.spent_at),
            Self::Audit(r) => columns!(r.id, r.at, r.user_id, r.client_ip, r.event, r.outcome),
        }
        digest.update([b'.']);
    }

    /// Roughly how many bytes the row takes in an `INSERT`.
    fn bytes(&self) -> usize {
        const FIXED: usize = 256;
        FIXED
            + match self {
                Self::User(r) => r.data.len(),
                Self::DataKey(r) => r.wrapped_key.len(),
                Self::Secret(r) => r.metadata.len(),
                Self::Version(r) => 2 * r.ciphertext.len(),
                Self::Session(r) => r.user_agent.as_ref().map_or(0, String::len),
                Self::RefreshToken(_) | Self::Audit(_) => 0,
            }
    }
}
