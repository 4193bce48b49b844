use super::caller_owning;
use crate::ports::{CipherError, Ports};
use crate::{
    AuditAction, AuditEvent, AuditOutcome, Credential, Origin, RepoError, SecretName, SecretValue,
    User, WrappedDataKey,
};

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

/// Reads and opens one of the caller's own secrets. Audited as `secret.read`.
pub struct GetSecret {
    ports: Ports,
}

impl GetSecret {
    /// Builds the use case.
    pub fn new(ports: &Ports) -> Self {
        Self {
            ports: ports.clone(),
        }
    }

    /// Returns the caller's secret `name`. `claimed_username` is the username the
    /// client sent; it must be the caller's own.
    pub fn execute(
        &self,
        credential: &Credential,
        claimed_username: &str,
        name: &SecretName,
        origin: &Origin,
    ) -> Result<SecretValue, GetSecretError> {
        let now = self.ports.clock.now();
        let (who, result) = match caller_owning(&self.ports, credential, claimed_username, now) {
            Ok(Some((user, key))) => (Some(user.id), self.read(&user, key, name)),
            Ok(None) => (
                credential.claimed_user(),
                Err(GetSecretError::NotAuthorized),
            ),
            Err(err) => (None, Err(err.into())),
        };
        let outcome = match &result {
            Ok(_) => Some(AuditOutcome::Success),
            Err(GetSecretError::NotAuthorized | GetSecretError::NotFound) => {
                Some(AuditOutcome::Failure)
            }
            Err(_) => None,
        };
        if let Some(outcome) = outcome {
            self.ports.audit.record(AuditEvent::new(
                now,
                origin,
                who,
                AuditAction::SecretRead,
                outcome,
            ));
        }
        result
    }

    fn read(
        &self,
        user: &User,
        key: Option<WrappedDataKey>,
        name: &SecretName,
    ) -> Result<SecretValue, GetSecretError> {
        let secret = self
            .ports
            .secrets
            .find(&user.id, name)?
            .ok_or(GetSecretError::NotFound)?;
        let key = key.ok_or(GetSecretError::MissingDataKey)?;
        Ok(self
            .ports
            .cipher
            .open(&key, &user.id, name, &secret.sealed)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockSecretCipher, MockSecretRepository, MockUserRepository};
    use crate::usecases::fixtures::{
        Mocks, RecordingAudit, boom, credential, data_key, session_for, user,
    };
    use crate::{KeyId, SealedData, Secret, Timestamp, User, UserId};

    fn happy() -> (Mocks, User) {
        let alice = user("alice");
        let owner = alice.id;
        let mut mocks = Mocks::default();
        let found = alice.clone();
        mocks
            .users
            .expect_find_with_data_key()
            .withf(move |id| *id == owner)
            .returning(move |_| Ok(Some((found.clone(), Some(data_key())))));
        mocks
            .secrets
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
        mocks
            .cipher
            .expect_open()
            .withf(move |_, id, _, sealed| *id == owner && sealed.bytes == b"sealed")
            .returning(|_, _, _, _| Ok(SecretValue::from_decrypted("launch codes".into())));
        (mocks, alice)
    }

    fn run(
        mocks: Mocks,
        caller: UserId,
        claimed: &str,
    ) -> (Result<SecretValue, GetSecretError>, RecordingAudit) {
        let session = session_for(caller);
        let (ports, audit) = mocks.with_session(&session).ports();
        let result = GetSecret::new(&ports).execute(
            &credential(&session),
            claimed,
            &SecretName::default_name(),
            &Origin::ip("203.0.113.5"),
        );
        (result, audit)
    }

    #[test]
    fn returns_the_opened_value_and_audits_the_read() {
        let (mocks, alice) = happy();
        let (result, audit) = run(mocks, alice.id, "alice");
        assert_eq!(result.unwrap().expose(), "launch codes");
        assert_eq!(
            audit.recorded(),
            [(
                AuditAction::SecretRead,
                AuditOutcome::Success,
                Some(alice.id)
            )]
        );
    }

    #[test]
    fn another_users_name_is_not_authorized() {
        let (mocks, alice) = happy();
        let (result, audit) = run(mocks, alice.id, "bob");
        assert!(matches!(result, Err(GetSecretError::NotAuthorized)));
        assert_eq!(
            audit.recorded(),
            [(
                AuditAction::SecretRead,
                AuditOutcome::Failure,
                Some(alice.id)
            )]
        );
        let (mocks, alice) = happy();
        assert!(matches!(
            run(mocks, alice.id, "").0,
            Err(GetSecretError::NotAuthorized)
        ));
    }

    #[test]
    fn a_deleted_caller_is_not_authorized() {
        let (mut mocks, alice) = happy();
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_with_data_key()
            .returning(|_| Ok(None));
        assert!(matches!(
            run(mocks, alice.id, "alice").0,
            Err(GetSecretError::NotAuthorized)
        ));
    }

    #[test]
    fn no_secret_is_not_found() {
        let (mut mocks, alice) = happy();
        mocks.secrets = MockSecretRepository::new();
        mocks.secrets.expect_find().returning(|_, _| Ok(None));
        assert!(matches!(
            run(mocks, alice.id, "alice").0,
            Err(GetSecretError::NotFound)
        ));
    }

    #[test]
    fn a_missing_data_key_is_reported() {
        let (mut mocks, alice) = happy();
        let found = alice.clone();
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_with_data_key()
            .returning(move |_| Ok(Some((found.clone(), None))));
        assert!(matches!(
            run(mocks, alice.id, "alice").0,
            Err(GetSecretError::MissingDataKey)
        ));
    }

    #[test]
    fn a_tampered_ciphertext_is_an_integrity_error_never_a_value() {
        let (mut mocks, alice) = happy();
        mocks.cipher = MockSecretCipher::new();
        mocks
            .cipher
            .expect_open()
            .returning(|_, _, _, _| Err(CipherError::Integrity));
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(result, Err(GetSecretError::Integrity)));
        assert!(audit.recorded().is_empty());

        let (mut mocks, alice) = happy();
        mocks.cipher = MockSecretCipher::new();
        mocks
            .cipher
            .expect_open()
            .returning(|_, _, _, _| Err(CipherError::UnknownKey(KeyId("old".into()))));
        assert!(matches!(
            run(mocks, alice.id, "alice").0,
            Err(GetSecretError::Cipher(_))
        ));
    }

    #[test]
    fn storage_failures_are_reported() {
        let (mut mocks, alice) = happy();
        mocks.secrets = MockSecretRepository::new();
        mocks
            .secrets
            .expect_find()
            .returning(|_, _| Err(RepoError::Unavailable(boom())));
        assert!(matches!(
            run(mocks, alice.id, "alice").0,
            Err(GetSecretError::Repository(_))
        ));
    }
}
