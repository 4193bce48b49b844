use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use safebox_domain::ports::{SecretRepository, VersionWrite, WriteOutcome};
use safebox_domain::{
    KeyId, RepoError, SealedData, Secret, SecretListQuery, SecretMetadata, SecretName,
    SecretVersion, StoredVersion, Timestamp, UserId,
};

use super::schema::{secret_versions, secrets};
use super::{
    DbConnection, DbPool, checkout, checkout_write, native, repo_error, write_transaction,
};

/// A secret's header row: everything but its values.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = secrets)]
pub(super) struct SecretRow {
    pub(super) user_id: String,
    pub(super) name: String,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) version: i64,
    pub(super) oldest_version: i64,
    pub(super) metadata: String,
    pub(super) deleted_at: Option<i64>,
}

/// One sealed version.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = secret_versions)]
pub(super) struct VersionRow {
    pub(super) user_id: String,
    pub(super) name: String,
    pub(super) version: i64,
    pub(super) key_id: String,
    pub(super) ciphertext: Vec<u8>,
    pub(super) created_at: i64,
}

fn corrupt(column: &str, err: impl std::fmt::Display) -> RepoError {
    RepoError::internal(format!("corrupt secrets.{column}: {err}"))
}

fn version_of(raw: i64, column: &str) -> Result<SecretVersion, RepoError> {
    u64::try_from(raw)
        .ok()
        .filter(|&v| v >= 1)
        .map(SecretVersion)
        .ok_or_else(|| corrupt(column, format!("{raw} is not a version")))
}

fn stored(version: u64) -> Result<i64, RepoError> {
    i64::try_from(version).map_err(|_| RepoError::internal("version number out of range"))
}

fn metadata_json(metadata: &SecretMetadata) -> Result<String, RepoError> {
    serde_json::to_string(metadata.entries()).map_err(RepoError::internal)
}

impl SecretRow {
    fn into_secret(self, owner: UserId) -> Result<Secret, RepoError> {
        let entries: BTreeMap<String, String> =
            serde_json::from_str(&self.metadata).map_err(|err| corrupt("metadata", err))?;
        Ok(Secret {
            owner,
            name: SecretName::parse(&self.name).map_err(|err| corrupt("name", err))?,
            version: version_of(self.version, "version")?,
            oldest_version: version_of(self.oldest_version, "oldest_version")?,
            metadata: SecretMetadata::from_stored(entries),
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
            deleted_at: self.deleted_at.map(Timestamp),
        })
    }
}

impl VersionRow {
    fn into_stored(self) -> Result<StoredVersion, RepoError> {
        Ok(StoredVersion {
            version: version_of(self.version, "version")?,
            sealed: SealedData {
                key_id: KeyId(self.key_id),
                bytes: self.ciphertext,
            },
            created_at: Timestamp(self.created_at),
        })
    }
}

/// [`SecretRepository`] on diesel. Sees only ciphertext.
#[derive(Clone)]
pub struct DieselSecretRepository {
    pool: DbPool,
}

impl DieselSecretRepository {
    /// A repository on `pool`.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

fn header(
    conn: &mut DbConnection,
    owner: &str,
    name: &str,
) -> Result<Option<SecretRow>, DieselError> {
    native!(conn, |conn| secrets::table
        .filter(secrets::user_id.eq(owner))
        .filter(secrets::name.eq(name))
        .select(SecretRow::as_select())
        .get_result(conn)
        .optional())
}

/// Serialises the creation of secrets per owner, so that the count checked
/// against the owner's limit cannot change before the insert commits. SQLite's
/// write transaction holds the whole database already; on MySQL the owner's row
/// is locked (`SELECT … FOR UPDATE`) until the transaction ends.
fn lock_owner(conn: &mut DbConnection, owner: &str) -> Result<(), DieselError> {
    match conn {
        DbConnection::Sqlite(_) => {
            let _ = owner;
            Ok(())
        }
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(conn) => {
            use super::schema::users;
            users::table
                .find(owner)
                .select(users::id)
                .for_update()
                .get_result::<String>(conn)
                .optional()
                .map(drop)
        }
    }
}

/// A [`VersionWrite`]'s values in their stored form.
struct StoredWrite {
    owner: String,
    base: Option<i64>,
    version: i64,
    metadata: Option<String>,
}

/// Why a write transaction stopped without writing.
enum Abort {
    Outcome(WriteOutcome),
    Db(DieselError),
}

impl From<DieselError> for Abort {
    fn from(err: DieselError) -> Self {
        Self::Db(err)
    }
}

impl DieselSecretRepository {
    /// The body of [`SecretRepository::write`], inside one write transaction: the
    /// check, the header, the new version and the pruning of old versions commit
    /// together or not at all.
    fn write_in(
        conn: &mut DbConnection,
        write: &VersionWrite,
        stored_write: &StoredWrite,
    ) -> Result<SecretRow, Abort> {
        let StoredWrite {
            owner,
            base,
            version,
            metadata,
        } = stored_write;
        let (owner, version, metadata) = (owner.as_str(), *version, metadata.as_deref());
        let name = write.name.as_str();
        let now = write.now.as_secs();
        match *base {
            None => {
                lock_owner(conn, owner)?;
                if header(conn, owner, name)?.is_some() {
                    return Err(Abort::Outcome(WriteOutcome::Conflict));
                }
                let count: i64 = native!(&mut *conn, |conn| secrets::table
                    .filter(secrets::user_id.eq(owner))
                    .count()
                    .get_result(conn))?;
                if u64::try_from(count).unwrap_or(u64::MAX) >= write.max_secrets {
                    return Err(Abort::Outcome(WriteOutcome::TooManySecrets));
                }
                let row = SecretRow {
                    user_id: owner.to_owned(),
                    name: name.to_owned(),
                    created_at: now,
                    updated_at: now,
                    version,
                    oldest_version: version,
                    metadata: metadata.unwrap_or("{}").to_owned(),
                    deleted_at: None,
                };
                native!(&mut *conn, |conn| diesel::insert_into(secrets::table)
                    .values(&row)
                    .execute(conn))
                .map_err(|err| match err {
                    DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                        Abort::Outcome(WriteOutcome::Conflict)
                    }
                    other => Abort::Db(other),
                })?;
            }
            Some(base) => {
                let target = secrets::table
                    .filter(secrets::user_id.eq(owner))
                    .filter(secrets::name.eq(name))
                    .filter(secrets::version.eq(base));
                let updated = native!(&mut *conn, |conn| match metadata {
                    Some(metadata) => diesel::update(target)
                        .set((
                            secrets::version.eq(version),
                            secrets::updated_at.eq(now),
                            secrets::deleted_at.eq(None::<i64>),
                            secrets::metadata.eq(metadata),
                        ))
                        .execute(conn),
                    None => diesel::update(target)
                        .set((
                            secrets::version.eq(version),
                            secrets::updated_at.eq(now),
                            secrets::deleted_at.eq(None::<i64>),
                        ))
                        .execute(conn),
                })?;
                if updated == 0 {
                    return Err(Abort::Outcome(WriteOutcome::Conflict));
                }
            }
        }
        let row = VersionRow {
            user_id: owner.to_owned(),
            name: name.to_owned(),
            version,
            key_id: write.sealed.key_id.0.clone(),
            ciphertext: write.sealed.bytes.clone(),
            created_at: now,
        };
        native!(&mut *conn, |conn| diesel::insert_into(
            secret_versions::table
        )
        .values(&row)
        .execute(conn))?;
        if base.is_some() {
            let keep = i64::try_from(write.keep_versions.max(1)).unwrap_or(i64::MAX);
            native!(&mut *conn, |conn| {
                diesel::delete(
                    secret_versions::table
                        .filter(secret_versions::user_id.eq(owner))
                        .filter(secret_versions::name.eq(name))
                        .filter(secret_versions::version.le(version.saturating_sub(keep))),
                )
                .execute(conn)?;
                let oldest: Option<i64> = secret_versions::table
                    .filter(secret_versions::user_id.eq(owner))
                    .filter(secret_versions::name.eq(name))
                    .select(diesel::dsl::min(secret_versions::version))
                    .get_result(conn)?;
                diesel::update(
                    secrets::table
                        .filter(secrets::user_id.eq(owner))
                        .filter(secrets::name.eq(name)),
                )
                .set(secrets::oldest_version.eq(oldest.unwrap_or(version)))
                .execute(conn)
            })?;
        }
        Ok(header(conn, owner, name)?.ok_or(DieselError::NotFound)?)
    }
}

impl SecretRepository for DieselSecretRepository {
    fn find(&self, owner: &UserId, name: &SecretName) -> Result<Option<Secret>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        header(&mut conn, &owner.to_string(), name.as_str())
            .map_err(repo_error)?
            .map(|row| row.into_secret(*owner))
            .transpose()
    }

    fn read(
        &self,
        owner: &UserId,
        name: &SecretName,
        version: Option<SecretVersion>,
    ) -> Result<Option<(Secret, Option<StoredVersion>)>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        let user = owner.to_string();
        let asked = version.map(|version| stored(version.0)).transpose()?;
        let same_secret = secret_versions::user_id
            .eq(secrets::user_id)
            .and(secret_versions::name.eq(secrets::name));
        let filtered = secrets::table
            .filter(secrets::user_id.eq(&user))
            .filter(secrets::name.eq(name.as_str()));
        // One lookup: the header with the asked-for version (the newest by default).
        let row = native!(&mut *conn, |conn| {
            // `as_select` is typed by its backend: made in each arm.
            let columns = (SecretRow::as_select(), Option::<VersionRow>::as_select());
            match asked {
                None => filtered
                    .left_join(
                        secret_versions::table
                            .on(same_secret.and(secret_versions::version.eq(secrets::version))),
                    )
                    .select(columns)
                    .get_result(conn),
                Some(version) => filtered
                    .left_join(
                        secret_versions::table
                            .on(same_secret.and(secret_versions::version.eq(version))),
                    )
                    .select(columns)
                    .get_result(conn),
            }
        })
        .optional()
        .map_err(repo_error)?;
        row.map(|(secret, version)| {
            Ok((
                secret.into_secret(*owner)?,
                version.map(VersionRow::into_stored).transpose()?,
            ))
        })
        .transpose()
    }

    fn write(&self, write: &VersionWrite) -> Result<WriteOutcome, RepoError> {
        let stored_write = StoredWrite {
            owner: write.owner.to_string(),
            base: write.base.map(|base| stored(base.0)).transpose()?,
            version: stored(write.version().0)?,
            metadata: write.metadata.as_ref().map(metadata_json).transpose()?,
        };
        let mut conn = checkout_write(&self.pool)?;
        match write_transaction(&mut conn, |conn| Self::write_in(conn, write, &stored_write)) {
            Ok(row) => Ok(WriteOutcome::Written(row.into_secret(write.owner)?)),
            Err(Abort::Outcome(outcome)) => Ok(outcome),
            Err(Abort::Db(err)) => Err(repo_error(err)),
        }
    }

    fn list(&self, owner: &UserId, query: &SecretListQuery) -> Result<Vec<Secret>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        native!(&mut *conn, |conn| {
            let mut select = secrets::table
                .filter(secrets::user_id.eq(owner.to_string()))
                .select(SecretRow::as_select())
                .order(secrets::name.asc())
                .limit(i64::try_from(query.limit).unwrap_or(i64::MAX))
                .into_boxed();
            if !query.prefix.is_empty() {
                // Names are ASCII below DEL (0x7f), so every name that starts with the
                // prefix sorts between it and the prefix followed by DEL. (LIKE would be
                // case-insensitive in SQLite and treat '_' as a wildcard.)
                select = select
                    .filter(secrets::name.ge(query.prefix.clone()))
                    .filter(secrets::name.lt(format!("{}\u{7f}", query.prefix)));
            }
            if let Some(after) = &query.after {
                select = select.filter(secrets::name.gt(after.as_str().to_owned()));
            }
            if !query.include_deleted {
                select = select.filter(secrets::deleted_at.is_null());
            }
            select.load(conn)
        })
        .map_err(repo_error)?
        .into_iter()
        .map(|row| row.into_secret(*owner))
        .collect()
    }

    fn set_deleted(
        &self,
        owner: &UserId,
        name: &SecretName,
        at: Option<Timestamp>,
    ) -> Result<Option<Secret>, RepoError> {
        let user = owner.to_string();
        let mut conn = checkout_write(&self.pool)?;
        let row = write_transaction(&mut conn, |conn| {
            let target = secrets::table
                .filter(secrets::user_id.eq(&user))
                .filter(secrets::name.eq(name.as_str()));
            native!(&mut *conn, |conn| match at {
                // Keep the first deletion time when deleting again.
                Some(at) => diesel::update(target.filter(secrets::deleted_at.is_null()))
                    .set(secrets::deleted_at.eq(at.as_secs()))
                    .execute(conn),
                None => diesel::update(target)
                    .set(secrets::deleted_at.eq(None::<i64>))
                    .execute(conn),
            })?;
            header(conn, &user, name.as_str())
        })
        .map_err(repo_error)?;
        row.map(|row| row.into_secret(*owner)).transpose()
    }

    fn destroy(&self, owner: &UserId, name: &SecretName) -> Result<bool, RepoError> {
        let user = owner.to_string();
        let mut conn = checkout_write(&self.pool)?;
        // The versions first: the schema would cascade, but not every
        // MySQL-compatible database enforces foreign keys.
        let deleted = write_transaction(&mut conn, |conn| {
            native!(conn, |conn| {
                diesel::delete(
                    secret_versions::table
                        .filter(secret_versions::user_id.eq(&user))
                        .filter(secret_versions::name.eq(name.as_str())),
                )
                .execute(conn)?;
                diesel::delete(
                    secrets::table
                        .filter(secrets::user_id.eq(&user))
                        .filter(secrets::name.eq(name.as_str())),
                )
                .execute(conn)
            })
        })
        .map_err(repo_error)?;
        Ok(deleted > 0)
    }
}
