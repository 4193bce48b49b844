use std::sync::Arc;

use super::caller_owning;
use crate::ports::{CipherError, SecretCipher, SecretRepository, UserRepository};
use crate::{RepoError, SecretName, SecretValue, UserId};

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GetSecretError {
    /// The caller's account is gone, or the claimed username is not the caller's.
    #[error("not authorized")]
    NotAuthorized,
    /// The caller has no secret of that name.
    #[error("secret not found")]
    NotFound,
    /// The account exists but has no data key: the store is inconsistent.
    #[error("the account has no data key")]
    MissingDataKey,
    /// The stored ciphertext failed authentication: it was altered or moved.
    #[error("stored secret failed its integrity check")]
    Integrity,
    /// Opening failed for another reason (for example an unknown master key).
    #[error(transparent)]
    Cipher(CipherError),
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

impl From<CipherError> for GetSecretError {
    fn from(err: CipherError) -> Self {
        match err {
            CipherError::Integrity => Self::Integrity,
            other => Self::Cipher(other),
        }
    }
}

/// Reads and opens one of the caller's own secrets.
pub struct GetSecret {
    users: Arc<dyn UserRepository>,
    secrets: Arc<dyn SecretRepository>,
    cipher: Arc<dyn SecretCipher>,
}

impl GetSecret {
    /// Builds the use case.
    pub fn new(
        users: Arc<dyn UserRepository>,
        secrets: Arc<dyn SecretRepository>,
        cipher: Arc<dyn SecretCipher>,
    ) -> Self {
        Self {
            users,
            secrets,
            cipher,
        }
    }

    /// Returns the caller's secret `name`. `claimed_username` is the username the
    /// client sent; it must be the caller's own.
    pub fn execute(
        &self,
        caller: &UserId,
        claimed_username: &str,
        name: &SecretName,
    ) -> Result<SecretValue, GetSecretError> {
        let Some(user) = caller_owning(self.users.as_ref(), caller, claimed_username)? else {
            return Err(GetSecretError::NotAuthorized);
        };
        let secret = self
            .secrets
            .find(&user.id, name)?
            .ok_or(GetSecretError::NotFound)?;
        let key = self
            .users
            .data_key(&user.id)?
            .ok_or(GetSecretError::MissingDataKey)?;
        Ok(self.cipher.open(&key, &user.id, name, &secret.sealed)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockSecretCipher, MockSecretRepository, MockUserRepository};
    use crate::usecases::fixtures::{boom, data_key, user};
    use crate::{KeyId, SealedData, Secret, Timestamp, User};

    struct Mocks {
        alice: User,
        users: MockUserRepository,
        secrets: MockSecretRepository,
        cipher: MockSecretCipher,
    }

    impl Mocks {
        fn happy() -> Self {
            let alice = user("alice");
            let owner = alice.id;
            let mut users = MockUserRepository::new();
            let found = alice.clone();
            users
                .expect_find_by_id()
                .withf(move |id| *id == owner)
                .returning(move |_| Ok(Some(found.clone())));
            users.expect_data_key().returning(|_| Ok(Some(data_key())));
            let mut secrets = MockSecretRepository::new();
            secrets
                .expect_find()
                .withf(move |id, name| *id == owner && name.as_str() == "default")
                .returning(move |_, name| {
                    Ok(Some(Secret {
                        owner,
                        name: name.clone(),
                        sealed: SealedData {
                            key_id: KeyId("dk".into()),
                            bytes: b"sealed".to_vec(),
                        },
                        created_at: Timestamp(1),
                        updated_at: Timestamp(1),
                    }))
                });
            let mut cipher = MockSecretCipher::new();
            cipher
                .expect_open()
                .withf(move |_, id, _, sealed| *id == owner && sealed.bytes == b"sealed")
                .returning(|_, _, _, _| Ok(SecretValue::from_decrypted("launch codes".into())));
            Self {
                alice,
                users,
                secrets,
                cipher,
            }
        }

        fn run(self, claimed: &str) -> Result<SecretValue, GetSecretError> {
            let id = self.alice.id;
            GetSecret::new(
                Arc::new(self.users),
                Arc::new(self.secrets),
                Arc::new(self.cipher),
            )
            .execute(&id, claimed, &SecretName::default_name())
        }
    }

    #[test]
    fn returns_the_opened_value() {
        assert_eq!(
            Mocks::happy().run("alice").unwrap().expose(),
            "launch codes"
        );
    }

    #[test]
    fn another_users_name_is_not_authorized() {
        assert!(matches!(
            Mocks::happy().run("bob"),
            Err(GetSecretError::NotAuthorized)
        ));
        assert!(matches!(
            Mocks::happy().run(""),
            Err(GetSecretError::NotAuthorized)
        ));
    }

    #[test]
    fn a_deleted_caller_is_not_authorized() {
        let mut mocks = Mocks::happy();
        mocks.users = MockUserRepository::new();
        mocks.users.expect_find_by_id().returning(|_| Ok(None));
        assert!(matches!(
            mocks.run("alice"),
            Err(GetSecretError::NotAuthorized)
        ));
    }

    #[test]
    fn no_secret_is_not_found() {
        let mut mocks = Mocks::happy();
        mocks.secrets = MockSecretRepository::new();
        mocks.secrets.expect_find().returning(|_, _| Ok(None));
        assert!(matches!(mocks.run("alice"), Err(GetSecretError::NotFound)));
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
            Err(GetSecretError::MissingDataKey)
        ));
    }

    #[test]
    fn a_tampered_ciphertext_is_an_integrity_error_never_a_value() {
        let mut mocks = Mocks::happy();
        mocks.cipher = MockSecretCipher::new();
        mocks
            .cipher
            .expect_open()
            .returning(|_, _, _, _| Err(CipherError::Integrity));
        assert!(matches!(mocks.run("alice"), Err(GetSecretError::Integrity)));

        let mut mocks = Mocks::happy();
        mocks.cipher = MockSecretCipher::new();
        mocks
            .cipher
            .expect_open()
            .returning(|_, _, _, _| Err(CipherError::UnknownKey(KeyId("old".into()))));
        assert!(matches!(mocks.run("alice"), Err(GetSecretError::Cipher(_))));
    }

    #[test]
    fn storage_failures_are_reported() {
        let mut mocks = Mocks::happy();
        mocks.secrets = MockSecretRepository::new();
        mocks
            .secrets
            .expect_find()
            .returning(|_, _| Err(RepoError::Unavailable(boom())));
        assert!(matches!(
            mocks.run("alice"),
            Err(GetSecretError::Repository(_))
        ));
    }
}
