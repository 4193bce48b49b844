use super::caller_owning;
use crate::ports::{CipherError, Ports};
use crate::{
    AuditAction, AuditEvent, AuditOutcome, Credential, Origin, RepoError, Secret, SecretName,
    SecretValue, Timestamp, User, WrappedDataKey,
};

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
/// Audited as `secret.write`.
pub struct SetSecret {
    ports: Ports,
}

impl SetSecret {
    /// Builds the use case.
    pub fn new(ports: &Ports) -> Self {
        Self {
            ports: ports.clone(),
        }
    }

    /// Stores `value` as the caller's secret `name`. `claimed_username` is the
    /// username the client sent; it must be the caller's own.
    pub fn execute(
        &self,
        credential: &Credential,
        claimed_username: &str,
        name: SecretName,
        value: &SecretValue,
        origin: &Origin,
    ) -> Result<(), SetSecretError> {
        let now = self.ports.clock.now();
        let (who, result) = match caller_owning(&self.ports, credential, claimed_username, now) {
            Ok(Some((user, key))) => (Some(user.id), self.store(&user, key, name, value, now)),
            Ok(None) => (
                credential.claimed_user(),
                Err(SetSecretError::NotAuthorized),
            ),
            Err(err) => (None, Err(err.into())),
        };
        let outcome = match &result {
            Ok(()) => Some(AuditOutcome::Success),
            Err(SetSecretError::NotAuthorized) => Some(AuditOutcome::Failure),
            Err(_) => None,
        };
        if let Some(outcome) = outcome {
            self.ports.audit.record(AuditEvent::new(
                now,
                origin,
                who,
                AuditAction::SecretWrite,
                outcome,
            ));
        }
        result
    }

    fn store(
        &self,
        user: &User,
        key: Option<WrappedDataKey>,
        name: SecretName,
        value: &SecretValue,
        now: Timestamp,
    ) -> Result<(), SetSecretError> {
        let key = key.ok_or(SetSecretError::MissingDataKey)?;
        let sealed = self.ports.cipher.seal(&key, &user.id, &name, value)?;
        self.ports.secrets.upsert(&Secret {
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
    use crate::ports::{MockSecretCipher, MockUserRepository};
    use crate::usecases::fixtures::{
        Mocks, RecordingAudit, boom, credential, data_key, session_for, user,
    };
    use crate::{KeyId, SealedData, Timestamp, User, UserId};

    fn happy() -> (Mocks, User) {
        let alice = user("alice");
        let mut mocks = Mocks {
            now: Timestamp(7),
            ..Mocks::default()
        };
        let found = alice.clone();
        mocks
            .users
            .expect_find_with_data_key()
            .returning(move |_| Ok(Some((found.clone(), Some(data_key())))));
        mocks
            .cipher
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
        (mocks, alice)
    }

    fn run(
        mocks: Mocks,
        caller: UserId,
        claimed: &str,
    ) -> (Result<(), SetSecretError>, RecordingAudit) {
        let session = session_for(caller);
        let (ports, audit) = mocks.with_session(&session).ports();
        let result = SetSecret::new(&ports).execute(
            &credential(&session),
            claimed,
            SecretName::default_name(),
            &SecretValue::parse("launch codes".into()).unwrap(),
            &Origin::ip("203.0.113.5"),
        );
        (result, audit)
    }

    #[test]
    fn seals_and_stores_under_the_callers_id_and_audits_the_write() {
        let (mut mocks, alice) = happy();
        let owner = alice.id;
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
        let (result, audit) = run(mocks, alice.id, "Alice");
        result.unwrap();
        assert_eq!(
            audit.recorded(),
            [(
                AuditAction::SecretWrite,
                AuditOutcome::Success,
                Some(alice.id)
            )]
        );
    }

    #[test]
    fn another_users_name_is_not_authorized_nothing_is_written_and_it_is_audited() {
        let (mocks, alice) = happy();
        // No upsert expectation: a write would panic the mock.
        let (result, audit) = run(mocks, alice.id, "bob");
        assert!(matches!(result, Err(SetSecretError::NotAuthorized)));
        assert_eq!(
            audit.recorded(),
            [(
                AuditAction::SecretWrite,
                AuditOutcome::Failure,
                Some(alice.id)
            )]
        );
        let (mocks, alice) = happy();
        assert!(matches!(
            run(mocks, alice.id, "not a name").0,
            Err(SetSecretError::NotAuthorized)
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
            Err(SetSecretError::NotAuthorized)
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
            Err(SetSecretError::MissingDataKey)
        ));
    }

    #[test]
    fn cipher_and_storage_failures_are_reported_and_not_audited() {
        let (mut mocks, alice) = happy();
        mocks.cipher = MockSecretCipher::new();
        mocks
            .cipher
            .expect_seal()
            .returning(|_, _, _, _| Err(CipherError::UnknownKey(KeyId("gone".into()))));
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(result, Err(SetSecretError::Cipher(_))));
        assert!(audit.recorded().is_empty());

        let (mut mocks, alice) = happy();
        mocks
            .secrets
            .expect_upsert()
            .returning(|_| Err(RepoError::Unavailable(boom())));
        assert!(matches!(
            run(mocks, alice.id, "alice").0,
            Err(SetSecretError::Repository(_))
        ));

        let (mut mocks, alice) = happy();
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_with_data_key()
            .returning(|_| Err(RepoError::internal(boom())));
        assert!(matches!(
            run(mocks, alice.id, "alice").0,
            Err(SetSecretError::Repository(_))
        ));
    }
}
