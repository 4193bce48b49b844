use diesel::prelude::*;
use diesel::upsert::excluded;
use safebox_domain::ports::SecretRepository;
use safebox_domain::{KeyId, RepoError, SealedData, Secret, SecretName, Timestamp, UserId};

use super::schema::secrets;
use super::{DbPool, checkout, repo_error};

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
        let mut conn = checkout(&self.pool)?;
        diesel::insert_into(secrets::table)
            .values(&row)
            .on_conflict((secrets::user_id, secrets::name))
            .do_update()
            .set((
                secrets::key_id.eq(excluded(secrets::key_id)),
                secrets::ciphertext.eq(excluded(secrets::ciphertext)),
                secrets::updated_at.eq(excluded(secrets::updated_at)),
            ))
            .execute(&mut conn)
            .map_err(repo_error)?;
        Ok(())
    }

    fn find(&self, owner: &UserId, name: &SecretName) -> Result<Option<Secret>, RepoError> {
        let mut conn = checkout(&self.pool)?;
        let row = secrets::table
            .filter(secrets::user_id.eq(owner.to_string()))
            .filter(secrets::name.eq(name.as_str()))
            .select(SecretRow::as_select())
            .first(&mut conn)
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
