use std::sync::Arc;

use super::caller_owning;
use crate::ports::{CipherError, Clock, SecretCipher, SecretRepository, UserRepository};
use crate::{RepoError, Secret, SecretName, SecretValue, UserId};

/// Why a secret could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum SetSecretError {
    /// The caller's account is gone, or the claimed username is not the caller's.
    #[error("not authorized")]
    NotAuthorized,
    /// The account exists but has no data key: the store is inconsistent.
    #[error("the account has no data key")]
    MissingDataKey,
    /// Sealing failed (including a data key that does not unwrap).
    #[error(transparent)]
    Cipher(#[from] CipherError),
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// Seals and stores one of the caller's own secrets, replacing its previous value.
pub struct SetSecret {
    users: Arc<dyn UserRepository>,
    secrets: Arc<dyn SecretRepository>,
    cipher: Arc<dyn SecretCipher>,
    clock: Arc<dyn Clock>,
}

impl SetSecret {
    /// Builds the use case.
    pub fn new(
        users: Arc<dyn UserRepository>,
        secrets: Arc<dyn SecretRepository>,
        cipher: Arc<dyn SecretCipher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            users,
            secrets,
            cipher,
            clock,
        }
    }

    /// Stores `value` as the caller's secret `name`. `claimed_username` is the
    /// username the client sent; it must be the caller's own.
    pub fn execute(
        &self,
        caller: &UserId,
        claimed_username: &str,
        name: SecretName,
        value: &SecretValue,
    ) -> Result<(), SetSecretError> {
        let Some(user) = caller_owning(self.users.as_ref(), caller, claimed_username)? else {
            return Err(SetSecretError::NotAuthorized);
        };
        let key = self
            .users
            .data_key(&user.id)?
            .ok_or(SetSecretError::MissingDataKey)?;
        let sealed = self.cipher.seal(&key, &user.id, &name, value)?;
        let now = self.clock.now();
        self.secrets.upsert(&Secret {
            owner: user.id,
            name,
            sealed,
            created_at: now,
            updated_at: now,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockClock, MockSecretCipher, MockSecretRepository, MockUserRepository};
    use crate::usecases::fixtures::{boom, data_key, user};
    use crate::{KeyId, SealedData, Timestamp, User};

    struct Mocks {
        alice: User,
        users: MockUserRepository,
        secrets: MockSecretRepository,
        cipher: MockSecretCipher,
        clock: MockClock,
    }

    impl Mocks {
        fn happy() -> Self {
            let alice = user("alice");
            let mut users = MockUserRepository::new();
            let found = alice.clone();
            users
                .expect_find_by_id()
                .returning(move |_| Ok(Some(found.clone())));
            users.expect_data_key().returning(|_| Ok(Some(data_key())));
            let mut cipher = MockSecretCipher::new();
            cipher
                .expect_seal()
                .withf(|_, _, name, value| {
                    name.as_str() == "default" && value.expose() == "launch codes"
                })
                .returning(|key, _, _, _| {
                    Ok(SealedData {
                        key_id: key.id.as_key_id(),
                        bytes: b"sealed".to_vec(),
                    })
                });
            let mut clock = MockClock::new();
            clock.expect_now().returning(|| Timestamp(7));
            Self {
                alice,
                users,
                secrets: MockSecretRepository::new(),
                cipher,
                clock,
            }
        }

        fn run(self, claimed: &str) -> Result<(), SetSecretError> {
            let id = self.alice.id;
            SetSecret::new(
                Arc::new(self.users),
                Arc::new(self.secrets),
                Arc::new(self.cipher),
                Arc::new(self.clock),
            )
            .execute(
                &id,
                claimed,
                SecretName::default_name(),
                &SecretValue::parse("launch codes".into()).unwrap(),
            )
        }
    }

    #[test]
    fn seals_and_stores_under_the_callers_id() {
        let mut mocks = Mocks::happy();
        let owner = mocks.alice.id;
        mocks
            .secrets
            .expect_upsert()
            .withf(move |secret| {
                secret.owner == owner
                    && secret.name.as_str() == "default"
                    && secret.sealed.bytes == b"sealed"
                    && secret.updated_at == Timestamp(7)
            })
            .times(1)
            .returning(|_| Ok(()));
        mocks.run("Alice").unwrap();
    }

    #[test]
    fn another_users_name_is_not_authorized_and_nothing_is_written() {
        let mocks = Mocks::happy();
        // No upsert expectation: a write would panic the mock.
        assert!(matches!(
            mocks.run("bob"),
            Err(SetSecretError::NotAuthorized)
        ));
        let mocks = Mocks::happy();
        assert!(matches!(
            mocks.run("not a name"),
            Err(SetSecretError::NotAuthorized)
        ));
    }

    #[test]
    fn a_deleted_caller_is_not_authorized() {
        let mut mocks = Mocks::happy();
        mocks.users = MockUserRepository::new();
        mocks.users.expect_find_by_id().returning(|_| Ok(None));
        assert!(matches!(
            mocks.run("alice"),
            Err(SetSecretError::NotAuthorized)
        ));
    }

    #[test]
    fn a_missing_data_key_is_reported() {
        let mut mocks = Mocks::happy();
        let alice = mocks.alice.clone();
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(alice.clone())));
        mocks.users.expect_data_key().returning(|_| Ok(None));
        assert!(matches!(
            mocks.run("alice"),
            Err(SetSecretError::MissingDataKey)
        ));
    }

    #[test]
    fn cipher_and_storage_failures_are_reported() {
        let mut mocks = Mocks::happy();
        mocks.cipher = MockSecretCipher::new();
        mocks
            .cipher
            .expect_seal()
            .returning(|_, _, _, _| Err(CipherError::UnknownKey(KeyId("gone".into()))));
        assert!(matches!(mocks.run("alice"), Err(SetSecretError::Cipher(_))));

        let mut mocks = Mocks::happy();
        mocks
            .secrets
            .expect_upsert()
            .returning(|_| Err(RepoError::Unavailable(boom())));
        assert!(matches!(
            mocks.run("alice"),
            Err(SetSecretError::Repository(_))
        ));

        let mut mocks = Mocks::happy();
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_by_id()
            .returning(|_| Err(RepoError::internal(boom())));
        assert!(matches!(
            mocks.run("alice"),
            Err(SetSecretError::Repository(_))
        ));
    }
}
