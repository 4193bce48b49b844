//! The audit log on diesel, written in batches by a background thread.
//!
//! `record` only queues the event, so auditing a secret read does not add a
//! synchronous, fsynced write to the read. After the first event of a batch the
//! writer thread sleeps for [`LINGER`], then inserts what has gathered (up to
//! [`BATCH`]) in one transaction, so a busy server commits the audit log a few
//! times a second rather than once per request: every commit is an fsync that
//! also holds SQLite's one write lock, which the requests' own writes wait for.
//! When events arrive faster than that (a backlog of a whole batch is waiting),
//! the writer does not linger but writes the next batch at once. It prunes
//! events older than the retention period once an hour. Events still queued
//! when the log is dropped are written before the drop returns.
//!
//! A batch that storage cannot take for now (the write connection held past
//! the pool's timeout, a locked or full disk, a database that went away) is
//! tried again, with a growing pause, until it is written (without the rows a
//! failed try may have stored after all, looked up by id): meanwhile the queue
//! fills, and reads are refused once it is nearly full, rather than served
//! with their events lost. Only an error that trying again cannot mend, or
//! storage still unavailable [`RETRY_WHEN_CLOSING`] after the log began to
//! close, loses the rest of a batch; those events are counted as dropped.
//!
//! On SQLite the rows of a batch go in `INSERT`s of exactly [`SQLITE_ROWS`]
//! rows, and the last few one by one: two statements, each prepared once (a
//! multi-row `INSERT` of any other size would be new SQL, parsed and planned
//! again). Against one row an `INSERT`, that took the writer's CPU per event
//! from 5.2-6.3 to 4.2-4.6 µs under `make bench`'s reads. On MySQL, where every
//! statement is a round trip, they go in multi-row `INSERT`s of [`MYSQL_ROWS`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use diesel::prelude::*;
use safebox_domain::ports::{AuditLog, AuditRefused, Clock};
use safebox_domain::{
    AuditAction, AuditEvent, AuditOutcome, AuditQuery, AuditRecord, RepoError, Timestamp, UserId,
};

use super::schema::audit_events;
use super::{
    DbConnection, DbPool, checkout, checkout_background_write, native, repo_error,
    write_transaction,
};
use crate::log_throttle::LogThrottle;

/// Events that may wait for the writer (a few MiB at most); beyond this, events
/// are dropped (and counted and logged) rather than slowing requests down.
/// `make bench` reads 100,000 secrets a second on 2 cores, all audited: this is
/// over half a second of them.
const QUEUE_CAPACITY: usize = 65_536;
/// Places of the queue that [`AuditLog::record_or_refuse`] leaves to
/// [`AuditLog::record`]: a flood of reads, refused once the queue is this
/// close to full, never crowds out a login or a write.
const KEPT_FOR_RECORD: usize = 4_096;
/// The most events one transaction inserts.
const BATCH: usize = 8_192;
/// The rows of one `INSERT` on SQLite (see the [module](self)), and so how
/// often, in rows, the writer looks for a request waiting to write: about a
/// tenth of a millisecond of work.
const SQLITE_ROWS: usize = 32;
/// The rows one pruning statement deletes.
const PRUNE_ROWS: i64 = 10_000;
/// How long the writer waits for requests' writes before it goes on, at most.
const GIVE_WAY: Duration = Duration::from_millis(50);
/// The rows of one multi-row `INSERT` on MySQL.
#[cfg(feature = "mysql")]
const MYSQL_ROWS: usize = 500;
/// How long the writer lets events gather after the first of a batch, at most.
const LINGER: Duration = Duration::from_millis(50);
/// The writer's first pause before it tries again a batch that storage could
/// not take; each pause doubles, up to [`RETRY_PAUSE_MAX`].
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between two tries of one batch.
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(2);
/// How long a closing log keeps trying to write what it holds.
const RETRY_WHEN_CLOSING: Duration = Duration::from_secs(5);
/// How many waiting events end the linger early: a busy server writes about a
/// millisecond's work at a time instead of a burst that holds a core for ten,
/// which requests would wait behind.
const ENOUGH: usize = 1_024;
/// How often the lingering writer looks at the queue.
const LINGER_STEP: Duration = Duration::from_millis(2);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// A stored audit event. `None` is inserted as NULL, not as `DEFAULT` (the
/// columns have no default): with the `DEFAULT` reading, diesel writes the
/// insert's SQL afresh for every row to find out which statement it is, which
/// was a quarter of the audit writer's time per row.
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events, treat_none_as_default_value = false)]
pub(super) struct AuditRow {
    pub(super) id: String,
    pub(super) at: i64,
    pub(super) user_id: Option<String>,
    pub(super) client_ip: Option<String>,
    pub(super) event: String,
    pub(super) outcome: String,
}

impl From<&AuditEvent> for AuditRow {
    fn from(event: &AuditEvent) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            at: event.at.as_secs(),
            user_id: event.user_id.map(|id| id.to_string()),
            client_ip: event.client_ip.clone(),
            event: event.action.as_str().to_owned(),
            outcome: event.outcome.as_str().to_owned(),
        }
    }
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = RepoError;

    fn try_from(row: AuditRow) -> Result<Self, RepoError> {
        let corrupt = |what: &str| RepoError::internal(format!("corrupt audit_events.{what}"));
        Ok(AuditRecord {
            event: AuditEvent {
                at: Timestamp(row.at),
                user_id: row
                    .user_id
                    .map(|id| uuid::Uuid::parse_str(&id).map(UserId))
                    .transpose()
                    .map_err(|_| corrupt("user_id"))?,
                client_ip: row.client_ip,
                action: AuditAction::parse(&row.event).ok_or_else(|| corrupt("event"))?,
                outcome: AuditOutcome::parse(&row.outcome).ok_or_else(|| corrupt("outcome"))?,
            },
            id: row.id,
        })
    }
}

/// [`AuditLog`] on diesel with a background batch writer.
pub struct DieselAuditLog {
    pool: DbPool,
    sender: Option<Sender<AuditEvent>>,
    writer: Option<JoinHandle<()>>,
    state: Arc<WriterState>,
    refused: AtomicU64,
}

/// What the log and its writer thread share.
#[derive(Debug, Default)]
struct WriterState {
    /// Set when the log is dropped.
    closing: AtomicBool,
    /// When a closing writer stops trying to write what storage does not take:
    /// [`RETRY_WHEN_CLOSING`] after it first had to try again while closing.
    give_up_at: OnceLock<Instant>,
    /// Events lost: the queue was full, or storage would not take them.
    dropped: AtomicU64,
}

impl WriterState {
    /// Whether the writer has tried long enough: what storage does not take
    /// now is lost.
    fn gave_up(&self) -> bool {
        self.give_up_at
            .get()
            .is_some_and(|at| Instant::now() >= *at)
    }

    /// Counts `events` as lost, and says so.
    fn lose(&self, events: usize, err: &dyn std::fmt::Display) {
        self.dropped
            .fetch_add(u64::try_from(events).unwrap_or(u64::MAX), Ordering::Relaxed);
        tracing::error!(error = %err, events, "writing audit events failed: events lost");
    }
}

impl std::fmt::Debug for DieselAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DieselAuditLog")
            .field("dropped", &self.state.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl DieselAuditLog {
    /// Starts the writer thread. Events older than `retention` are pruned at once
    /// and then hourly.
    pub fn start(pool: DbPool, retention: Duration, clock: Arc<dyn Clock>) -> Self {
        let (sender, receiver) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        let writer_pool = pool.clone();
        let state = Arc::new(WriterState::default());
        let writer_state = Arc::clone(&state);
        let writer = std::thread::Builder::new()
            .name("safebox-audit".into())
            .spawn(move || {
                write_loop(
                    &writer_pool,
                    &receiver,
                    retention,
                    clock.as_ref(),
                    &writer_state,
                );
            })
            .expect("the OS refused to start the audit writer thread");
        Self {
            pool,
            sender: Some(sender),
            writer: Some(writer),
            state,
            refused: AtomicU64::new(0),
        }
    }

    /// Events lost: dropped because the queue was full, or not written because
    /// storage would not take them (see the [module](self)).
    pub fn dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
    }

    /// Events queued and not yet taken by the writer.
    pub fn queued(&self) -> usize {
        self.sender.as_ref().map_or(0, Sender::len)
    }

    /// Events refused by [`AuditLog::record_or_refuse`] (and the reads they
    /// were for) because the queue was nearly full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

fn write_loop(
    pool: &DbPool,
    receiver: &Receiver<AuditEvent>,
    retention: Duration,
    clock: &dyn Clock,
    state: &WriterState,
) {
    let retention_secs = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
    let prune = || {
        let cutoff = Timestamp(clock.now().as_secs().saturating_sub(retention_secs));
        match prune_before(pool, cutoff) {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "pruned audit events past retention"),
            Err(err) => tracing::error!(error = %err, "pruning the audit log failed"),
        }
    };
    prune();
    let mut last_prune = Instant::now();
    loop {
        match receiver.recv_timeout(PRUNE_EVERY) {
            Ok(first) => {
                linger(receiver);
                let mut batch = Vec::with_capacity(BATCH.min(receiver.len() + 1));
                batch.push(first);
                batch.extend(receiver.try_iter().take(BATCH - 1));
                write_batch(pool, &batch, &|| receiver.len(), state);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            prune();
            last_prune = Instant::now();
        }
    }
}

/// Lets events gather after the first of a batch: for [`LINGER`], or until
/// [`ENOUGH`] are waiting. Sleeps rather than waits on the channel: a waiting
/// writer would be woken by every single event.
fn linger(receiver: &Receiver<AuditEvent>) {
    let until = Instant::now() + LINGER;
    while receiver.len() + 1 < ENOUGH {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(LINGER_STEP));
    }
}

/// Writes `batch`, in as many transactions as requests' writes make it take:
/// each time one commits early to let a request write, the writer waits until
/// no request waits any more (at most [`GIVE_WAY`]) and goes on with the rest.
/// What storage cannot take for now is tried again (see the [module](self)).
fn write_batch(
    pool: &DbPool,
    batch: &[AuditEvent],
    waiting: &dyn Fn() -> usize,
    state: &WriterState,
) {
    if state.gave_up() {
        state.lose(batch.len(), &"storage unavailable while closing");
        return;
    }
    // Ids are given once, so that a batch tried again is the same rows.
    let rows: Vec<AuditRow> = batch.iter().map(AuditRow::from).collect();
    write_rows(pool, rows, waiting, state, false);
}

/// Writes `rows`, trying again what storage cannot take for now.
///
/// A try that failed may still have been stored: a commit whose connection
/// was lost on the way (MySQL) may have committed. So after a failed try, and
/// when `unsure` from the start, the rows already stored are looked up by id
/// and not inserted again: else the next try would fail on their ids, and
/// events that are stored would be counted as lost.
fn write_rows(
    pool: &DbPool,
    mut rows: Vec<AuditRow>,
    waiting: &dyn Fn() -> usize,
    state: &WriterState,
    mut unsure: bool,
) {
    let mut done = 0;
    let mut retry = Retry::default();
    while done < rows.len() {
        if unsure {
            match stored_ids(pool, &rows[done..]) {
                Ok(stored) => {
                    rows.drain(..done);
                    done = 0;
                    rows.retain(|row| !stored.contains(&row.id));
                    unsure = false;
                    continue;
                }
                Err(RepoError::Unavailable(err)) if retry.pause(state) => {
                    trying_again(&err, rows.len() - done);
                    continue;
                }
                Err(err) => {
                    state.lose(rows.len() - done, &err);
                    return;
                }
            }
        }
        match insert(pool, &rows[done..], waiting) {
            Ok(written) => {
                done += written;
                retry = Retry::default();
            }
            Err(RepoError::Unavailable(err)) if retry.pause(state) => {
                trying_again(&err, rows.len() - done);
                unsure = true;
                continue;
            }
            Err(err) => {
                state.lose(rows.len() - done, &err);
                return;
            }
        }
        if done < rows.len() {
            give_way(pool);
        }
    }
}

/// Says, at most once a second, that `events` wait for storage.
fn trying_again(err: &dyn std::fmt::Display, events: usize) {
    static THROTTLE: LogThrottle = LogThrottle::new();
    if let Some(also) = THROTTLE.admit() {
        tracing::warn!(
            error = %err,
            events,
            also_retried_since_last_line = also,
            "audit events not written yet: storage unavailable; trying again"
        );
    }
}

/// Ids looked up at a time by [`stored_ids`]: well within the bound
/// parameters of a statement on either backend.
const LOOKUP_IDS: usize = 500;

/// Which of `rows` are stored already, by id.
fn stored_ids(pool: &DbPool, rows: &[AuditRow]) -> Result<HashSet<String>, RepoError> {
    let mut conn = checkout_background_write(pool)?;
    let mut stored = HashSet::new();
    for chunk in rows.chunks(LOOKUP_IDS) {
        let ids: Vec<&str> = chunk.iter().map(|row| row.id.as_str()).collect();
        let found: Vec<String> = native!(&mut *conn, |conn| audit_events::table
            .select(audit_events::id)
            .filter(audit_events::id.eq_any(&ids))
            .load(conn))
        .map_err(repo_error)?;
        stored.extend(found);
    }
    Ok(stored)
}

/// The pauses between tries of one batch.
#[derive(Debug, Default)]
struct Retry {
    /// The pause before the next try; [`RETRY_PAUSE`] when zero.
    next: Duration,
}

impl Retry {
    /// Pauses before the next try and returns true, or returns false at once
    /// when the log is closing and the writer has tried long enough.
    fn pause(&mut self, state: &WriterState) -> bool {
        if state.closing.load(Ordering::Acquire) {
            state
                .give_up_at
                .get_or_init(|| Instant::now() + RETRY_WHEN_CLOSING);
            if state.gave_up() {
                return false;
            }
        }
        let pause = self.next.max(RETRY_PAUSE);
        std::thread::sleep(pause);
        self.next = (pause * 2).min(RETRY_PAUSE_MAX);
        true
    }
}

/// Inserts `rows` in one transaction and returns how many it inserted: all
/// of them, or on SQLite fewer when a request started waiting for the one
/// write connection meanwhile. Then it commits what it has at once, so that a
/// logout or a password change never waits behind a backlog of audit events.
///
/// Between rows it also yields its core, so that request workers sharing it
/// run first, as often as [`rows_between_yields`] says for the number of events
/// `waiting`.
fn insert(
    pool: &DbPool,
    rows: &[AuditRow],
    waiting: &dyn Fn() -> usize,
) -> Result<usize, RepoError> {
    let mut conn = checkout_background_write(pool)?;
    write_transaction(&mut conn, |conn| match conn {
        DbConnection::Sqlite(conn) => {
            let (mut written, mut since_yield) = (0, 0);
            while written < rows.len() {
                let rest = &rows[written..];
                let inserted = match rest.first_chunk::<SQLITE_ROWS>() {
                    Some(chunk) => diesel::insert_into(audit_events::table)
                        .values(chunk)
                        .execute(conn)?,
                    None => diesel::insert_into(audit_events::table)
                        .values(&rest[0])
                        .execute(conn)?,
                };
                written += inserted;
                since_yield += inserted;
                if pool.writers_waiting() {
                    break;
                }
                if rows_between_yields(waiting()).is_some_and(|rows| since_yield >= rows) {
                    std::thread::yield_now();
                    since_yield = 0;
                }
            }
            Ok(written)
        }
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(conn) => {
            for chunk in rows.chunks(MYSQL_ROWS) {
                diesel::insert_into(audit_events::table)
                    .values(chunk)
                    .execute(conn)?;
            }
            Ok(rows.len())
        }
    })
    .map_err(repo_error)
}

/// Deletes the events before `cutoff`, [`PRUNE_ROWS`] at a time, giving way
/// to requests' writes between the rounds: a first prune of a busy log can
/// hold millions of rows, which one statement would hold the write lock for.
fn prune_before(pool: &DbPool, cutoff: Timestamp) -> Result<u64, RepoError> {
    use diesel::sql_types::BigInt;

    let mut total = 0;
    loop {
        let deleted = {
            let mut conn = checkout_background_write(pool)?;
            match &mut *conn {
                DbConnection::Sqlite(conn) => diesel::sql_query(
                    "DELETE FROM audit_events WHERE id IN \
                     (SELECT id FROM audit_events WHERE at < ? LIMIT ?)",
                )
                .bind::<BigInt, _>(cutoff.as_secs())
                .bind::<BigInt, _>(PRUNE_ROWS)
                .execute(conn),
                #[cfg(feature = "mysql")]
                DbConnection::Mysql(conn) => {
                    diesel::sql_query("DELETE FROM audit_events WHERE at < ? LIMIT ?")
                        .bind::<BigInt, _>(cutoff.as_secs())
                        .bind::<BigInt, _>(PRUNE_ROWS)
                        .execute(conn)
                }
            }
            .map_err(repo_error)?
        };
        total += deleted as u64;
        if (deleted as i64) < PRUNE_ROWS {
            return Ok(total);
        }
        give_way(pool);
    }
}

/// How many rows the writer inserts between two yields of its core, by how
/// many events wait: after every `INSERT` while fewer than 8,192 wait, so that
/// the request workers sharing its core run first and their latency does not
/// grow behind a batch; after every second one up to 32,768; never beyond. On
/// a saturated machine each yield can cost it a round of other threads' time
/// slices: yielding as often as when it keeps up, it would never catch up.
fn rows_between_yields(waiting: usize) -> Option<usize> {
    match waiting {
        0..8_192 => Some(SQLITE_ROWS),
        8_192..32_768 => Some(2 * SQLITE_ROWS),
        _ => None,
    }
}

/// Waits while requests wait for the write connection, at most [`GIVE_WAY`].
fn give_way(pool: &DbPool) {
    let until = Instant::now() + GIVE_WAY;
    while pool.writers_waiting() && Instant::now() < until {
        std::thread::sleep(Duration::from_micros(200));
    }
}

impl AuditLog for DieselAuditLog {
    fn record(&self, event: AuditEvent) {
        let Some(sender) = &self.sender else { return };
        match sender.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => {
                self.state.dropped.fetch_add(1, Ordering::Relaxed);
                static THROTTLE: LogThrottle = LogThrottle::new();
                if let Some(also) = THROTTLE.admit() {
                    tracing::error!(
                        event = %event.action,
                        also_dropped_since_last_line = also,
                        "audit queue full: event dropped"
                    );
                }
            }
            Err(TrySendError::Disconnected(event)) => {
                static THROTTLE: LogThrottle = LogThrottle::new();
                if let Some(also) = THROTTLE.admit() {
                    tracing::error!(
                        event = %event.action,
                        also_dropped_since_last_line = also,
                        "audit writer stopped: event dropped"
                    );
                }
            }
        }
    }

    fn record_or_refuse(&self, event: AuditEvent) -> Result<(), AuditRefused> {
        let Some(sender) = &self.sender else {
            return Err(AuditRefused);
        };
        // The last places in the queue are kept for `record`'s events.
        if sender.len() >= QUEUE_CAPACITY - KEPT_FOR_RECORD {
            self.refused.fetch_add(1, Ordering::Relaxed);
            static THROTTLE: LogThrottle = LogThrottle::new();
            if let Some(also) = THROTTLE.admit() {
                tracing::warn!(
                    event = %event.action,
                    also_refused_since_last_line = also,
                    "audit queue nearly full: refusing what must be recorded (503)"
                );
            }
            return Err(AuditRefused);
        }
        self.record(event);
        Ok(())
    }

    fn list(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        native!(&mut *conn, |conn| {
            let mut select = audit_events::table.into_boxed();
            if let Some(user) = query.user {
                select = select.filter(audit_events::user_id.eq(user.to_string()));
            }
            if let Some(before) = &query.before {
                select = select.filter(audit_events::id.lt(before.clone()));
            }
            select
                .order(audit_events::id.desc())
                .limit(i64::from(query.limit))
                .select(AuditRow::as_select())
                .load(conn)
        })
        .map_err(repo_error)?
        .into_iter()
        .map(AuditRecord::try_from)
        .collect()
    }

    fn prune(&self, cutoff: Timestamp) -> Result<u64, RepoError> {
        prune_before(&self.pool, cutoff)
    }
}

impl Drop for DieselAuditLog {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and stop.
        self.state.closing.store(true, Ordering::Release);
        self.sender = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use safebox_domain::Origin;

    use super::*;

    fn database() -> (tempfile::TempDir, DbPool) {
        database_waiting(Duration::from_secs(2))
    }

    /// A database whose connections are waited for `timeout` at most.
    fn database_waiting(timeout: Duration) -> (tempfile::TempDir, DbPool) {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("audit.db").display().to_string();
        let pool = super::super::connect(&url, 2, timeout).unwrap();
        super::super::migrate(&pool).unwrap();
        (dir, pool)
    }

    fn events(count: usize, at: i64) -> Vec<AuditEvent> {
        (0..count)
            .map(|_| {
                AuditEvent::new(
                    Timestamp(at),
                    &Origin::ip("192.0.2.1"),
                    None,
                    AuditAction::SecretRead,
                    AuditOutcome::Success,
                )
            })
            .collect()
    }

    fn stored(pool: &DbPool) -> i64 {
        let mut conn = pool.get().unwrap();
        native!(&mut *conn, |conn| audit_events::table
            .count()
            .get_result::<i64>(conn))
        .unwrap()
    }

    #[test]
    fn a_batch_commits_early_when_a_request_waits_to_write() {
        let (_dir, pool) = database();
        let batch = events(100, 1_800_000_000);
        let rows = || batch.iter().map(AuditRow::from).collect::<Vec<_>>();
        // A request waiting for the one write connection: the batch commits
        // after its first rows and hands the rest back.
        pool.writers_waiting.fetch_add(1, Ordering::SeqCst);
        assert_eq!(insert(&pool, &rows(), &|| 0).unwrap(), SQLITE_ROWS);
        assert_eq!(stored(&pool), SQLITE_ROWS as i64);
        // Nobody waiting: all of it, in one transaction.
        pool.writers_waiting.fetch_sub(1, Ordering::SeqCst);
        assert_eq!(insert(&pool, &rows(), &|| 0).unwrap(), batch.len());
        // write_batch finishes the whole batch whatever happens.
        write_batch(&pool, &batch, &|| 0, &WriterState::default());
        assert_eq!(stored(&pool), (SQLITE_ROWS + 2 * batch.len()) as i64);
    }

    #[test]
    fn a_nearly_full_queue_refuses_what_must_be_recorded_and_keeps_room_for_the_rest() {
        let (_dir, pool) = database();
        let log = DieselAuditLog::start(
            pool.clone(),
            Duration::from_secs(86_400),
            Arc::new(crate::SystemClock),
        );
        let event = || events(1, 1_800_000_000).remove(0);
        // Holding the one write connection keeps the writer from draining the
        // queue, as a slow disk would.
        let held = pool.writes.get().unwrap();
        let mut sent = 0;
        while log.queued() < QUEUE_CAPACITY - KEPT_FOR_RECORD {
            log.record(event());
            sent += 1;
        }
        assert_eq!(log.record_or_refuse(event()), Err(AuditRefused));
        assert_eq!(log.refused(), 1);
        // `record` still has its room.
        for _ in 0..KEPT_FOR_RECORD {
            log.record(event());
        }
        sent += KEPT_FOR_RECORD;
        assert_eq!(log.dropped(), 0);
        log.record(event());
        assert_eq!(log.dropped(), 1, "beyond the queue, events are dropped");

        drop(held);
        let deadline = Instant::now() + Duration::from_secs(60);
        while log.queued() > 0 {
            assert!(Instant::now() < deadline, "the writer did not catch up");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(log.record_or_refuse(event()), Ok(()));
        sent += 1;
        drop(log);
        assert_eq!(
            stored(&pool),
            i64::try_from(sent).unwrap(),
            "every event queued was written, the refused and dropped ones not"
        );
    }

    fn started(pool: &DbPool) -> DieselAuditLog {
        DieselAuditLog::start(
            pool.clone(),
            Duration::from_secs(86_400),
            Arc::new(crate::SystemClock),
        )
    }

    #[test]
    fn events_storage_cannot_take_for_now_are_written_once_it_can() {
        let (_dir, pool) = database_waiting(Duration::from_millis(100));
        let log = started(&pool);
        // The write connection held for many times the pool's timeout.
        let held = pool.writes.get().unwrap();
        for event in events(300, 1_800_000_000) {
            log.record(event);
        }
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(stored(&pool), 0);
        drop(held);
        drop(log);
        assert_eq!(stored(&pool), 300, "every event was written in the end");
    }

    /// A try whose outcome is unknown (a MySQL connection lost during COMMIT)
    /// may have stored its rows: trying again stores each event once and
    /// counts none as lost. Before, the next try failed on the stored ids and
    /// the whole rest of the batch was counted as lost.
    #[test]
    fn a_batch_tried_again_after_an_unknown_outcome_stores_each_event_once() {
        let (_dir, pool) = database();
        let state = WriterState::default();
        let rows = || -> Vec<AuditRow> {
            events(40, 1_800_000_000)
                .iter()
                .map(AuditRow::from)
                .collect()
        };
        let batch = rows();
        // What the try that failed had stored: a full INSERT of 32 and one row.
        let first = batch[..33].to_vec();
        assert_eq!(insert(&pool, &first, &|| 0).unwrap(), 33);
        write_rows(&pool, batch, &|| 0, &state, true);
        assert_eq!(stored(&pool), 40);
        assert_eq!(state.dropped.load(Ordering::Relaxed), 0);
        // Rows not stored before are simply inserted, unsure or not.
        write_rows(&pool, rows(), &|| 0, &state, true);
        write_rows(&pool, rows(), &|| 0, &state, false);
        assert_eq!(stored(&pool), 120);
        assert_eq!(state.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_closing_log_gives_up_on_storage_that_stays_unavailable_and_counts_the_loss() {
        let (_dir, pool) = database_waiting(Duration::from_millis(100));
        let log = started(&pool);
        let state = Arc::clone(&log.state);
        let held = pool.writes.get().unwrap();
        // Two batches: the second is not tried for as long again.
        let queued = BATCH + 50;
        for event in events(queued, 1_800_000_000) {
            log.record(event);
        }
        let closing = Instant::now();
        drop(log);
        let took = closing.elapsed();
        assert!(took >= RETRY_WHEN_CLOSING, "{took:?}");
        assert!(
            took < RETRY_WHEN_CLOSING + RETRY_PAUSE_MAX + Duration::from_millis(500),
            "{took:?}"
        );
        assert_eq!(
            state.dropped.load(Ordering::Relaxed),
            u64::try_from(queued).unwrap()
        );
        drop(held);
        assert_eq!(stored(&pool), 0);
    }

    #[test]
    fn pruning_deletes_in_rounds_and_only_what_is_old() {
        let (_dir, pool) = database();
        let old = events(usize::try_from(PRUNE_ROWS).unwrap() * 2 + 500, 1_000);
        let recent = events(300, 2_000_000_000);
        write_batch(&pool, &old, &|| 50_000, &WriterState::default());
        write_batch(&pool, &recent, &|| 0, &WriterState::default());
        assert_eq!(
            prune_before(&pool, Timestamp(1_000_000)).unwrap(),
            old.len() as u64
        );
        assert_eq!(stored(&pool), recent.len() as i64);
        assert_eq!(prune_before(&pool, Timestamp(1_000_000)).unwrap(), 0);
    }

    #[test]
    fn absent_user_and_address_are_stored_as_null_and_read_back_as_absent() {
        let (_dir, pool) = database();
        let user = UserId(uuid::Uuid::now_v7());
        let with = AuditEvent::new(
            Timestamp(1_800_000_001),
            &Origin::ip("198.51.100.7"),
            Some(user),
            AuditAction::Login,
            AuditOutcome::Failure,
        );
        let without = AuditEvent::new(
            Timestamp(1_800_000_002),
            &Origin::operator(),
            None,
            AuditAction::SecretRead,
            AuditOutcome::Success,
        );
        write_batch(
            &pool,
            &[with.clone(), without.clone()],
            &|| 0,
            &WriterState::default(),
        );

        let mut conn = pool.get().unwrap();
        let nulls: i64 = native!(&mut *conn, |conn| audit_events::table
            .filter(audit_events::user_id.is_null())
            .filter(audit_events::client_ip.is_null())
            .count()
            .get_result(conn))
        .unwrap();
        assert_eq!(nulls, 1);
        drop(conn);
        assert_eq!(newest_first(&pool, 10), vec![without, with]);
    }

    #[test]
    fn rows_inserted_together_are_stored_field_for_field() {
        let (_dir, pool) = database();
        // One whole multi-row INSERT, then the last rows one by one; every
        // field differs from its neighbours', NULLs included.
        let batch: Vec<AuditEvent> = (0..SQLITE_ROWS + 3)
            .map(|i| {
                let n = i as i64;
                AuditEvent::new(
                    Timestamp(1_800_000_000 + n),
                    &if i % 3 == 0 {
                        Origin::operator()
                    } else {
                        Origin::ip(format!("192.0.2.{i}"))
                    },
                    (i % 2 == 0).then(|| UserId(uuid::Uuid::now_v7())),
                    [AuditAction::SecretRead, AuditAction::Login][i % 2],
                    [AuditOutcome::Success, AuditOutcome::Failure][i / 2 % 2],
                )
            })
            .collect();
        write_batch(&pool, &batch, &|| 0, &WriterState::default());
        let mut expected = batch;
        expected.reverse();
        assert_eq!(newest_first(&pool, 100), expected);
    }

    /// Up to `limit` stored events, newest first, read through the port.
    fn newest_first(pool: &DbPool, limit: u32) -> Vec<AuditEvent> {
        let log = DieselAuditLog {
            pool: pool.clone(),
            sender: None,
            writer: None,
            state: Arc::default(),
            refused: AtomicU64::new(0),
        };
        let query = AuditQuery {
            user: None,
            before: None,
            limit,
        };
        let listed = log.list(&query).unwrap();
        listed.into_iter().map(|record| record.event).collect()
    }
}
