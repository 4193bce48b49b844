use diesel::SqliteConnection;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use safebox_domain::ports::SecretRepository;
use safebox_domain::{KeyId, RepoError, SealedData, Secret, SecretName, Timestamp, UserId};

use super::schema::secrets;
use super::{DbPool, checkout, checkout_write, repo_error};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = secrets)]
struct SecretRow {
    user_id: String,
    name: String,
    key_id: String,
    ciphertext: Vec<u8>,
    created_at: i64,
    updated_at: i64,
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

impl SecretRepository for DieselSecretRepository {
    fn upsert(&self, secret: &Secret) -> Result<(), RepoError> {
        let row = SecretRow {
            user_id: secret.owner.to_string(),
            name: secret.name.as_str().to_owned(),
            key_id: secret.sealed.key_id.0.clone(),
            ciphertext: secret.sealed.bytes.clone(),
            created_at: secret.created_at.as_secs(),
            updated_at: secret.updated_at.as_secs(),
        };
        let mut conn = checkout_write(&self.pool)?;
        // UPDATE, else INSERT, rather than one INSERT … ON CONFLICT: diesel does
        // not cache the prepared statement of an upsert, and this runs on the one
        // write connection, where re-parsing it for every write would hold up
        // every other writer.
        let replace = |conn: &mut SqliteConnection| {
            diesel::update(
                secrets::table
                    .filter(secrets::user_id.eq(&row.user_id))
                    .filter(secrets::name.eq(&row.name)),
            )
            .set((
                secrets::key_id.eq(&row.key_id),
                secrets::ciphertext.eq(&row.ciphertext),
                secrets::updated_at.eq(row.updated_at),
            ))
            .execute(conn)
        };
        if replace(&mut conn).map_err(repo_error)? == 0 {
            match diesel::insert_into(secrets::table)
                .values(&row)
                .execute(&mut conn)
            {
                Ok(_) => {}
                // Another process inserted it in between: replace that.
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    replace(&mut conn).map_err(repo_error)?;
                }
                Err(err) => return Err(repo_error(err)),
            }
        }
        Ok(())
    }

    fn find(&self, owner: &UserId, name: &SecretName) -> Result<Option<Secret>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        let row = secrets::table
            .filter(secrets::user_id.eq(owner.to_string()))
            .filter(secrets::name.eq(name.as_str()))
            .select(SecretRow::as_select())
            .get_result(&mut conn)
            .optional()
            .map_err(repo_error)?;
        Ok(row.map(|row| Secret {
            owner: *owner,
            name: name.clone(),
            sealed: SealedData {
                key_id: KeyId(row.key_id),
                bytes: row.ciphertext,
            },
            created_at: Timestamp(row.created_at),
            updated_at: Timestamp(row.updated_at),
        }))
    }
}
