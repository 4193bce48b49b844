use diesel::prelude::*;
use diesel::result::Error as DieselError;
use safebox_domain::ports::{RefreshRotation, SessionRepository};
use safebox_domain::{RepoError, Session, SessionId, SessionKind, Timestamp, TokenDigest, UserId};

use super::schema::{refresh_tokens, sessions};
use super::{
    DbConnection, DbPool, checkout, checkout_write, native, repo_error, write_transaction,
};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub(super) struct SessionRow {
    pub(super) id: String,
    pub(super) user_id: String,
    pub(super) kind: String,
    pub(super) cookie_hash: Option<String>,
    pub(super) created_at: i64,
    pub(super) last_used_at: i64,
    pub(super) expires_at: i64,
    pub(super) client_ip: Option<String>,
    pub(super) user_agent: Option<String>,
}

/// A refresh token's row, for `safebox db copy`; the repository writes the
/// columns directly.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub(super) struct RefreshTokenRow {
    pub(super) token_hash: String,
    pub(super) session_id: String,
    pub(super) created_at: i64,
    pub(super) spent_at: Option<i64>,
}

impl TryFrom<SessionRow> for Session {
    type Error = RepoError;

    fn try_from(row: SessionRow) -> Result<Self, RepoError> {
        let uuid = |text: &str, column: &str| {
            uuid::Uuid::parse_str(text)
                .map_err(|err| RepoError::internal(format!("corrupt sessions.{column}: {err}")))
        };
        Ok(Session {
            id: SessionId(uuid(&row.id, "id")?),
            user_id: UserId(uuid(&row.user_id, "user_id")?),
            kind: SessionKind::parse(&row.kind).ok_or_else(|| {
                RepoError::internal(format!("corrupt sessions.kind {:?}", row.kind))
            })?,
            created_at: Timestamp(row.created_at),
            last_used_at: Timestamp(row.last_used_at),
            expires_at: Timestamp(row.expires_at),
            client_ip: row.client_ip,
            user_agent: row.user_agent,
        })
    }
}

/// [`SessionRepository`] on diesel. Refresh tokens and cookies are stored only as
/// digests.
#[derive(Clone)]
pub struct DieselSessionRepository {
    pool: DbPool,
}

impl DieselSessionRepository {
    /// A repository on `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

fn to_session(row: Option<SessionRow>) -> Result<Option<Session>, RepoError> {
    row.map(Session::try_from).transpose()
}

/// Deletes the sessions `ids` selects and their refresh tokens, tokens first: the
/// schema would cascade, but not every MySQL-compatible database enforces foreign
/// keys. Returns how many sessions were deleted.
fn delete_sessions(conn: &mut DbConnection, ids: &[String]) -> Result<u64, DieselError> {
    native!(conn, |conn| {
        if ids.is_empty() {
            return Ok(0);
        }
        diesel::delete(refresh_tokens::table.filter(refresh_tokens::session_id.eq_any(ids)))
            .execute(conn)?;
        let deleted =
            diesel::delete(sessions::table.filter(sessions::id.eq_any(ids))).execute(conn)?;
        Ok(deleted as u64)
    })
}

impl SessionRepository for DieselSessionRepository {
    fn create(&self, session: &Session, credential: &TokenDigest) -> Result<(), RepoError> {
        let row = SessionRow {
            id: session.id.to_string(),
            user_id: session.user_id.to_string(),
            kind: session.kind.as_str().to_owned(),
            cookie_hash: (session.kind == SessionKind::Cookie).then(|| credential.0.clone()),
            created_at: session.created_at.as_secs(),
            last_used_at: session.last_used_at.as_secs(),
            expires_at: session.expires_at.as_secs(),
            client_ip: session.client_ip.clone(),
            user_agent: session.user_agent.clone(),
        };
        let mut conn = checkout_write(&self.pool)?;
        write_transaction(&mut conn, |conn| {
            let expired: Vec<String> = native!(&mut *conn, |conn| sessions::table
                .filter(sessions::user_id.eq(&row.user_id))
                .filter(sessions::expires_at.le(row.created_at))
                .select(sessions::id)
                .load(conn))?;
            delete_sessions(conn, &expired)?;
            native!(&mut *conn, |conn| {
                diesel::insert_into(sessions::table)
                    .values(&row)
                    .execute(conn)?;
                if session.kind == SessionKind::Bearer {
                    diesel::insert_into(refresh_tokens::table)
                        .values((
                            refresh_tokens::token_hash.eq(&credential.0),
                            refresh_tokens::session_id.eq(&row.id),
                            refresh_tokens::created_at.eq(row.created_at),
                        ))
                        .execute(conn)?;
                }
                Ok(())
            })
        })
        .map_err(repo_error)
    }

    fn find(&self, id: &SessionId) -> Result<Option<Session>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        to_session(
            native!(&mut *conn, |conn| sessions::table
                .find(id.to_string())
                .select(SessionRow::as_select())
                .get_result(conn)
                .optional())
            .map_err(repo_error)?,
        )
    }

    fn find_by_cookie(&self, cookie: &TokenDigest) -> Result<Option<Session>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        to_session(
            native!(&mut *conn, |conn| sessions::table
                .filter(sessions::cookie_hash.eq(&cookie.0))
                .select(SessionRow::as_select())
                .get_result(conn)
                .optional())
            .map_err(repo_error)?,
        )
    }

    fn touch(&self, id: &SessionId, now: Timestamp) -> Result<(), RepoError> {
        let mut conn = checkout_write(&self.pool)?;
        native!(&mut *conn, |conn| diesel::update(
            sessions::table.find(id.to_string())
        )
        .set(sessions::last_used_at.eq(now.as_secs()))
        .execute(conn))
        .map_err(repo_error)?;
        Ok(())
    }

    fn list(&self, user: &UserId, now: Timestamp) -> Result<Vec<Session>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        native!(&mut *conn, |conn| sessions::table
            .filter(sessions::user_id.eq(user.to_string()))
            .filter(sessions::expires_at.gt(now.as_secs()))
            .order((sessions::created_at.desc(), sessions::id.desc()))
            .select(SessionRow::as_select())
            .load(conn))
        .map_err(repo_error)?
        .into_iter()
        .map(Session::try_from)
        .collect()
    }

    fn end(&self, id: &SessionId) -> Result<bool, RepoError> {
        let mut conn = checkout_write(&self.pool)?;
        let deleted = write_transaction(&mut conn, |conn| delete_sessions(conn, &[id.to_string()]))
            .map_err(repo_error)?;
        Ok(deleted > 0)
    }

    fn end_others(&self, user: &UserId, keep: &SessionId) -> Result<u64, RepoError> {
        let mut conn = checkout_write(&self.pool)?;
        write_transaction(&mut conn, |conn| {
            let others: Vec<String> = native!(&mut *conn, |conn| sessions::table
                .filter(sessions::user_id.eq(user.to_string()))
                .filter(sessions::id.ne(keep.to_string()))
                .select(sessions::id)
                .load(conn))?;
            delete_sessions(conn, &others)
        })
        .map_err(repo_error)
    }

    fn end_all(&self, user: &UserId) -> Result<u64, RepoError> {
        let mut conn = checkout_write(&self.pool)?;
        write_transaction(&mut conn, |conn| {
            let all: Vec<String> = native!(&mut *conn, |conn| sessions::table
                .filter(sessions::user_id.eq(user.to_string()))
                .select(sessions::id)
                .load(conn))?;
            delete_sessions(conn, &all)
        })
        .map_err(repo_error)
    }

    fn rotate_refresh(
        &self,
        presented: &TokenDigest,
        replacement: &TokenDigest,
        now: Timestamp,
    ) -> Result<RefreshRotation, RepoError> {
        let mut conn = checkout_write(&self.pool)?;
        let row: Option<(Option<i64>, SessionRow)> = write_transaction(&mut conn, |conn| {
            native!(conn, |conn| {
                let found = refresh_tokens::table
                    .inner_join(sessions::table)
                    .filter(refresh_tokens::token_hash.eq(&presented.0))
                    .select((refresh_tokens::spent_at, SessionRow::as_select()))
                    .get_result::<(Option<i64>, SessionRow)>(conn)
                    .optional()?;
                let Some((None, session)) = found else {
                    return Ok(found);
                };
                // Spend the token only if it is still unspent: of two concurrent
                // rotations the second finds it spent (SQLite serialises them on its
                // write lock; MySQL's row lock makes the second UPDATE wait, then
                // match nothing).
                let spent = diesel::update(
                    refresh_tokens::table
                        .find(&presented.0)
                        .filter(refresh_tokens::spent_at.is_null()),
                )
                .set(refresh_tokens::spent_at.eq(now.as_secs()))
                .execute(conn)?;
                if spent == 0 {
                    return Ok(Some((Some(now.as_secs()), session)));
                }
                diesel::insert_into(refresh_tokens::table)
                    .values((
                        refresh_tokens::token_hash.eq(&replacement.0),
                        refresh_tokens::session_id.eq(&session.id),
                        refresh_tokens::created_at.eq(now.as_secs()),
                    ))
                    .execute(conn)?;
                diesel::update(sessions::table.find(&session.id))
                    .set(sessions::last_used_at.eq(now.as_secs()))
                    .execute(conn)?;
                Ok::<_, DieselError>(Some((None, session)))
            })
        })
        .map_err(repo_error)?;
        Ok(match row {
            None => RefreshRotation::Unknown,
            Some((None, session)) => RefreshRotation::Rotated(Session::try_from(session)?),
            Some((Some(_), session)) => RefreshRotation::Reused(Session::try_from(session)?),
        })
    }
}
