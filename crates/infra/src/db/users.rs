use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use safebox_domain::ports::{CreateUserError, DataKeyRepository, UserRepository};
use safebox_domain::{
    DataKeyId, Email, KeyId, NewUser, PasswordHash, RepoError, Role, SealedData, Timestamp, User,
    UserData, UserId, Username, WrappedDataKey,
};

use super::schema::{data_keys, refresh_tokens, secret_versions, secrets, sessions, users};
use super::{DbPool, checkout, checkout_write, native, repo_error, write_transaction};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub(super) struct UserRow {
    pub(super) id: String,
    pub(super) username: String,
    pub(super) email: Option<String>,
    pub(super) password_hash: String,
    pub(super) data: String,
    pub(super) created_at: i64,
    pub(super) role: String,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = data_keys)]
pub(super) struct DataKeyRow {
    pub(super) user_id: String,
    pub(super) id: String,
    pub(super) master_key_id: String,
    pub(super) wrapped_key: Vec<u8>,
    pub(super) created_at: i64,
}

/// Parses a column that the application wrote; failure means corrupt data.
fn parse_uuid(text: &str, column: &str) -> Result<uuid::Uuid, RepoError> {
    uuid::Uuid::parse_str(text)
        .map_err(|err| RepoError::internal(format!("corrupt {column} {text:?}: {err}")))
}

impl TryFrom<UserRow> for User {
    type Error = RepoError;

    fn try_from(row: UserRow) -> Result<Self, RepoError> {
        let corrupt =
            |column: &str, err| RepoError::internal(format!("corrupt users.{column}: {err}"));
        Ok(User {
            id: UserId(parse_uuid(&row.id, "users.id")?),
            username: Username::parse(&row.username).map_err(|e| corrupt("username", e))?,
            email: row
                .email
                .as_deref()
                .map(Email::parse)
                .transpose()
                .map_err(|e| corrupt("email", e))?,
            password_hash: PasswordHash(row.password_hash),
            role: Role::parse(&row.role)
                .ok_or_else(|| RepoError::internal(format!("corrupt users.role {:?}", row.role)))?,
            data: UserData::parse(row.data).map_err(|e| corrupt("data", e))?,
            created_at: Timestamp(row.created_at),
        })
    }
}

impl TryFrom<DataKeyRow> for WrappedDataKey {
    type Error = RepoError;

    fn try_from(row: DataKeyRow) -> Result<Self, RepoError> {
        Ok(WrappedDataKey {
            id: DataKeyId(parse_uuid(&row.id, "data_keys.id")?),
            sealed: SealedData {
                key_id: KeyId(row.master_key_id),
                bytes: row.wrapped_key,
            },
        })
    }
}

/// [`UserRepository`] on diesel.
#[derive(Clone)]
pub struct DieselUserRepository {
    pool: DbPool,
}

impl DieselUserRepository {
    /// A repository on `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

/// The account a lookup by a unique column found. The queries are built without
/// boxing, so that they are cached prepared statements, and without `LIMIT ?`,
/// whose bound value makes SQLite compile a cached statement again on every use.
fn to_user(found: Result<Option<UserRow>, DieselError>) -> Result<Option<User>, RepoError> {
    found.map_err(repo_error)?.map(User::try_from).transpose()
}

/// Tells which unique index a violation hit from the database's message: SQLite
/// names the column ("UNIQUE constraint failed: users.email"), MySQL the key
/// ("Duplicate entry '…' for key 'users.email'"). Only the part naming the index
/// is looked at: the duplicate value itself may contain "email".
fn duplicate(err: DieselError) -> CreateUserError {
    match &err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            let message = info.message();
            let index = message
                .rsplit_once(" for key ")
                .map_or(message, |(_, key)| key);
            if index.contains("email") {
                CreateUserError::EmailTaken
            } else if index.contains("username") {
                CreateUserError::UsernameTaken
            } else {
                CreateUserError::Repository(repo_error(err))
            }
        }
        _ => CreateUserError::Repository(repo_error(err)),
    }
}

impl UserRepository for DieselUserRepository {
    fn create(&self, new_user: &NewUser) -> Result<(), CreateUserError> {
        let user = &new_user.user;
        let key = &new_user.data_key;
        let user_row = UserRow {
            id: user.id.to_string(),
            username: user.username.as_str().to_owned(),
            email: user.email.as_ref().map(|email| email.as_str().to_owned()),
            password_hash: user.password_hash.0.clone(),
            data: user.data.as_str().to_owned(),
            created_at: user.created_at.as_secs(),
            role: user.role.as_str().to_owned(),
        };
        let key_row = DataKeyRow {
            user_id: user.id.to_string(),
            id: key.id.0.to_string(),
            master_key_id: key.sealed.key_id.0.clone(),
            wrapped_key: key.sealed.bytes.clone(),
            created_at: user.created_at.as_secs(),
        };
        let mut conn = checkout_write(&self.pool)?;
        write_transaction(&mut conn, |conn| {
            native!(conn, |conn| {
                diesel::insert_into(users::table)
                    .values(&user_row)
                    .execute(conn)?;
                diesel::insert_into(data_keys::table)
                    .values(&key_row)
                    .execute(conn)?;
                Ok(())
            })
        })
        .map_err(duplicate)
    }

    fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        to_user(native!(&mut *conn, |conn| users::table
            .filter(users::email.eq(email.as_str()))
            .select(UserRow::as_select())
            .get_result(conn)
            .optional()))
    }

    fn find_by_username(&self, username: &Username) -> Result<Option<User>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        to_user(native!(&mut *conn, |conn| users::table
            .filter(users::username.eq(username.as_str()))
            .select(UserRow::as_select())
            .get_result(conn)
            .optional()))
    }

    fn find_by_id(&self, id: &UserId) -> Result<Option<User>, RepoError> {
        let id = id.to_string();
        let mut conn = checkout(&self.pool)?;
        to_user(native!(&mut *conn, |conn| users::table
            .filter(users::id.eq(&id))
            .select(UserRow::as_select())
            .get_result(conn)
            .optional()))
    }

    fn find_with_data_key(
        &self,
        id: &UserId,
    ) -> Result<Option<(User, Option<WrappedDataKey>)>, RepoError> {
        let id = id.to_string();
        let mut conn = checkout(&self.pool)?;
        let row: Option<(UserRow, Option<DataKeyRow>)> = native!(&mut *conn, |conn| users::table
            .left_join(data_keys::table)
            .filter(users::id.eq(&id))
            .select((UserRow::as_select(), Option::<DataKeyRow>::as_select()))
            .get_result(conn)
            .optional())
        .map_err(repo_error)?;
        row.map(|(user, key)| {
            Ok((
                User::try_from(user)?,
                key.map(WrappedDataKey::try_from).transpose()?,
            ))
        })
        .transpose()
    }

    fn set_role(&self, username: &Username, role: Role) -> Result<Option<UserId>, RepoError> {
        let mut conn = checkout_write(&self.pool)?;
        let id: Option<String> = write_transaction(&mut conn, |conn| {
            native!(conn, |conn| {
                let target = users::table.filter(users::username.eq(username.as_str()));
                let id = target
                    .select(users::id)
                    .get_result::<String>(conn)
                    .optional()?;
                if id.is_some() {
                    diesel::update(target)
                        .set(users::role.eq(role.as_str()))
                        .execute(conn)?;
                }
                Ok::<_, DieselError>(id)
            })
        })
        .map_err(repo_error)?;
        id.map(|id| parse_uuid(&id, "users.id").map(UserId))
            .transpose()
    }

    fn update_data(&self, id: &UserId, data: &UserData) -> Result<bool, RepoError> {
        let mut conn = checkout_write(&self.pool)?;
        let updated = native!(&mut *conn, |conn| diesel::update(
            users::table.filter(users::id.eq(id.to_string()))
        )
        .set(users::data.eq(data.as_str()))
        .execute(conn))
        .map_err(repo_error)?;
        Ok(updated > 0)
    }

    fn update_password_hash(&self, id: &UserId, hash: &PasswordHash) -> Result<bool, RepoError> {
        let mut conn = checkout_write(&self.pool)?;
        let updated = native!(&mut *conn, |conn| diesel::update(
            users::table.filter(users::id.eq(id.to_string()))
        )
        .set(users::password_hash.eq(&hash.0))
        .execute(conn))
        .map_err(repo_error)?;
        Ok(updated > 0)
    }

    fn delete(&self, id: &UserId) -> Result<bool, RepoError> {
        let id = id.to_string();
        let mut conn = checkout_write(&self.pool)?;
        write_transaction(&mut conn, |conn| {
            native!(conn, |conn| {
                // The data key goes first: without it, no copy of this user's
                // ciphertexts can ever be opened again.
                diesel::delete(data_keys::table.filter(data_keys::user_id.eq(&id)))
                    .execute(conn)?;
                // Then everything else of the account, children before parents. The
                // schema would cascade, but not every MySQL-compatible database
                // enforces foreign keys (Vitess, older TiDB).
                diesel::delete(secret_versions::table.filter(secret_versions::user_id.eq(&id)))
                    .execute(conn)?;
                diesel::delete(secrets::table.filter(secrets::user_id.eq(&id))).execute(conn)?;
                let user_sessions = sessions::table
                    .filter(sessions::user_id.eq(&id))
                    .select(sessions::id);
                diesel::delete(
                    refresh_tokens::table.filter(refresh_tokens::session_id.eq_any(user_sessions)),
                )
                .execute(conn)?;
                diesel::delete(sessions::table.filter(sessions::user_id.eq(&id))).execute(conn)?;
                let deleted =
                    diesel::delete(users::table.filter(users::id.eq(&id))).execute(conn)?;
                Ok(deleted > 0)
            })
        })
        .map_err(repo_error)
    }

    fn data_key(&self, owner: &UserId) -> Result<Option<WrappedDataKey>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        native!(&mut *conn, |conn| data_keys::table
            .filter(data_keys::user_id.eq(owner.to_string()))
            .select(DataKeyRow::as_select())
            .get_result(conn)
            .optional())
        .map_err(repo_error)?
        .map(WrappedDataKey::try_from)
        .transpose()
    }
}

impl DataKeyRepository for DieselUserRepository {
    fn count_by_master_key(&self) -> Result<Vec<(KeyId, u64)>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        let counts: Vec<(String, i64)> = native!(&mut *conn, |conn| data_keys::table
            .group_by(data_keys::master_key_id)
            .select((data_keys::master_key_id, diesel::dsl::count_star()))
            .order(data_keys::master_key_id.asc())
            .load(conn))
        .map_err(repo_error)?;
        Ok(counts
            .into_iter()
            .map(|(id, count)| (KeyId(id), u64::try_from(count).unwrap_or(0)))
            .collect())
    }

    fn not_wrapped_by(
        &self,
        master: &KeyId,
        limit: usize,
    ) -> Result<Vec<(UserId, WrappedDataKey)>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        native!(&mut *conn, |conn| data_keys::table
            .filter(data_keys::master_key_id.ne(&master.0))
            .order(data_keys::user_id.asc())
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .select(DataKeyRow::as_select())
            .load(conn))
        .map_err(repo_error)?
        .into_iter()
        .map(|row| {
            let owner = UserId(parse_uuid(&row.user_id, "data_keys.user_id")?);
            Ok((owner, WrappedDataKey::try_from(row)?))
        })
        .collect()
    }

    fn replace(
        &self,
        owner: &UserId,
        old: &WrappedDataKey,
        new: &WrappedDataKey,
    ) -> Result<bool, RepoError> {
        if old.id != new.id {
            return Err(RepoError::internal(
                "a re-wrapped data key must keep its id",
            ));
        }
        let mut conn = checkout_write(&self.pool)?;
        // Check-and-set on the stored wrapping: a concurrent rotation or a deleted
        // account makes this a no-op, never a lost key.
        let replaced = native!(&mut *conn, |conn| diesel::update(
            data_keys::table
                .filter(data_keys::user_id.eq(owner.to_string()))
                .filter(data_keys::id.eq(old.id.0.to_string()))
                .filter(data_keys::master_key_id.eq(&old.sealed.key_id.0))
                .filter(data_keys::wrapped_key.eq(&old.sealed.bytes)),
        )
        .set((
            data_keys::master_key_id.eq(&new.sealed.key_id.0),
            data_keys::wrapped_key.eq(&new.sealed.bytes),
        ))
        .execute(conn))
        .map_err(repo_error)?;
        Ok(replaced == 1)
    }
}
