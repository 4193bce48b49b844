use super::caller_owning;
use super::vault::{PutSecret, audit, write_version};
use crate::ports::Ports;
use crate::{AuditAction, Credential, Origin, VaultLimits};

pub use super::vault::VaultError as SetSecretError;

/// Seals and stores the caller's secret, as the next version of it: the
/// single-secret route's write. Audited as `secret.write`.
pub struct SetSecret {
    ports: Ports,
    limits: VaultLimits,
}

impl SetSecret {
    /// Builds the use case.
    pub fn new(ports: &Ports, limits: VaultLimits) -> Self {
        Self {
            ports: ports.clone(),
            limits,
        }
    }

    /// Stores `put.value` as the next version of the caller's secret `put.name`.
    /// `claimed_username` is the username the client sent; it must be the
    /// caller's own.
    pub fn execute(
        &self,
        credential: &Credential,
        claimed_username: &str,
        put: &PutSecret,
        origin: &Origin,
    ) -> Result<(), SetSecretError> {
        let now = self.ports.clock.now();
        let (who, result) = match caller_owning(&self.ports, credential, claimed_username, now) {
            Ok(Some((user, key))) => (
                Some(user.id),
                key.ok_or(SetSecretError::MissingDataKey).and_then(|key| {
                    write_version(&self.ports, &self.limits, user.id, &key, put, now).map(drop)
                }),
            ),
            Ok(None) => (
                credential.claimed_user(),
                Err(SetSecretError::NotAuthorized),
            ),
            Err(err) => (None, Err(err.into())),
        };
        audit(
            &self.ports,
            now,
            origin,
            who,
            AuditAction::SecretWrite,
            &result,
        );
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::ports::{CipherError, MockSecretCipher, MockSecretRepository, MockUserRepository};
    use crate::ports::{VersionWrite, WriteOutcome};
    use crate::usecases::Precondition;
    use crate::usecases::fixtures::{
        Mocks, RecordingAudit, boom, credential, data_key, session_for, user,
    };
    use crate::{
        AuditOutcome, KeyId, RepoError, SealedData, Secret, SecretMetadata, SecretName,
        SecretValue, SecretVersion, Timestamp, User, UserId,
    };

    const LIMITS: VaultLimits = VaultLimits {
        max_versions: 4,
        max_value_bytes: 100,
        max_secrets: 25,
    };

    /// The sealed bytes the mocked cipher gives version `version`.
    fn sealed_for(version: SecretVersion) -> SealedData {
        SealedData {
            key_id: KeyId("dk".into()),
            bytes: format!("sealed-v{version}").into_bytes(),
        }
    }

    fn stored(owner: UserId, version: u64, deleted: bool) -> Secret {
        Secret {
            owner,
            name: SecretName::default_name(),
            version: SecretVersion(version),
            oldest_version: SecretVersion(1),
            metadata: SecretMetadata::default(),
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            deleted_at: deleted.then_some(Timestamp(3)),
        }
    }

    /// Alice with a data key; her `default` secret is `current`; the cipher seals
    /// "launch codes" with her key for whatever version it is asked.
    fn happy(current: impl FnOnce(UserId) -> Option<Secret>) -> (Mocks, User) {
        let alice = user("alice");
        let owner = alice.id;
        let current = current(owner);
        let key = data_key();
        let mut mocks = Mocks {
            now: Timestamp(7),
            ..Mocks::default()
        };
        let (found, found_key) = (alice.clone(), key.clone());
        mocks
            .users
            .expect_find_with_data_key()
            .withf(move |id| *id == owner)
            .returning(move |_| Ok(Some((found.clone(), Some(found_key.clone())))));
        mocks
            .secrets
            .expect_find()
            .withf(move |id, name| *id == owner && name.as_str() == "default")
            .returning(move |_, _| Ok(current.clone()));
        let expected_key = key.clone();
        mocks
            .cipher
            .expect_seal()
            .withf(move |key, id, name, _, value| {
                *key == expected_key
                    && *id == owner
                    && name.as_str() == "default"
                    && value.expose() == "launch codes"
            })
            .returning(|_, _, _, version, _| Ok(sealed_for(version)));
        (mocks, alice)
    }

    fn put() -> PutSecret {
        PutSecret {
            name: SecretName::default_name(),
            value: SecretValue::parse("launch codes".into(), 100, "secret").unwrap(),
            metadata: None,
            precondition: Precondition::None,
        }
    }

    fn run(
        mocks: Mocks,
        caller: UserId,
        claimed: &str,
    ) -> (Result<(), SetSecretError>, RecordingAudit) {
        let session = session_for(caller);
        let (ports, audit) = mocks.with_session(&session).ports();
        let result = SetSecret::new(&ports, LIMITS).execute(
            &credential(&session),
            claimed,
            &put(),
            &Origin::ip("203.0.113.5"),
        );
        (result, audit)
    }

    /// Expects exactly one write, remembers it and answers `outcome`.
    fn expect_one_write(mocks: &mut Mocks, outcome: WriteOutcome) -> Arc<Mutex<Vec<VersionWrite>>> {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&writes);
        mocks
            .secrets
            .expect_write()
            .times(1)
            .returning(move |write| {
                seen.lock().unwrap().push(write.clone());
                Ok(outcome.clone())
            });
        writes
    }

    #[test]
    fn seals_and_stores_the_next_version_under_the_callers_id_and_audits_the_write() {
        let (mut mocks, alice) = happy(|_| None);
        let writes = expect_one_write(
            &mut mocks,
            WriteOutcome::Written(stored(alice.id, 3, false)),
        );
        let (result, audit) = run(mocks, alice.id, "Alice");
        result.unwrap();
        // A first write creates version 1.
        assert_eq!(
            *writes.lock().unwrap(),
            [VersionWrite {
                owner: alice.id,
                name: SecretName::default_name(),
                base: None,
                sealed: sealed_for(SecretVersion(1)),
                metadata: None,
                now: Timestamp(7),
                keep_versions: 4,
                max_secrets: 25,
            }]
        );
        assert_eq!(
            audit.recorded(),
            [(
                AuditAction::SecretWrite,
                AuditOutcome::Success,
                Some(alice.id)
            )]
        );

        // Later writes add a version on top of the newest, also to a deleted secret.
        for deleted in [false, true] {
            let (mut mocks, alice) = happy(|owner| Some(stored(owner, 6, deleted)));
            let writes = expect_one_write(
                &mut mocks,
                WriteOutcome::Written(stored(alice.id, 7, false)),
            );
            let (result, _) = run(mocks, alice.id, "alice");
            result.unwrap();
            let writes = writes.lock().unwrap();
            assert_eq!(writes.len(), 1);
            assert_eq!(writes[0].base, Some(SecretVersion(6)));
            assert_eq!(writes[0].version(), SecretVersion(7));
            assert_eq!(writes[0].sealed, sealed_for(SecretVersion(7)));
            assert_eq!(writes[0].metadata, None);
        }
    }

    #[test]
    fn another_users_name_is_not_authorized_nothing_is_written_and_it_is_audited() {
        let (mocks, alice) = happy(|_| None);
        // No write expectation: a write would panic the mock.
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
        let (mocks, alice) = happy(|_| None);
        assert!(matches!(
            run(mocks, alice.id, "not a name").0,
            Err(SetSecretError::NotAuthorized)
        ));
    }

    #[test]
    fn a_deleted_caller_is_not_authorized() {
        let (mut mocks, alice) = happy(|_| None);
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_with_data_key()
            .returning(|_| Ok(None));
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(result, Err(SetSecretError::NotAuthorized)));
        assert_eq!(
            audit.recorded(),
            [(
                AuditAction::SecretWrite,
                AuditOutcome::Failure,
                Some(alice.id)
            )]
        );
    }

    #[test]
    fn a_missing_data_key_is_reported() {
        let (mut mocks, alice) = happy(|_| None);
        let found = alice.clone();
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_with_data_key()
            .returning(move |_| Ok(Some((found.clone(), None))));
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(result, Err(SetSecretError::MissingDataKey)));
        assert!(audit.recorded().is_empty());
    }

    #[test]
    fn too_many_secrets_is_refused_and_audited() {
        let (mut mocks, alice) = happy(|_| None);
        let writes = expect_one_write(&mut mocks, WriteOutcome::TooManySecrets);
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(result, Err(SetSecretError::TooManySecrets(25))));
        assert_eq!(writes.lock().unwrap()[0].max_secrets, 25);
        assert_eq!(
            audit.recorded(),
            [(
                AuditAction::SecretWrite,
                AuditOutcome::Failure,
                Some(alice.id)
            )]
        );
    }

    #[test]
    fn cipher_and_storage_failures_are_reported_and_not_audited() {
        let (mut mocks, alice) = happy(|_| None);
        mocks.cipher = MockSecretCipher::new();
        mocks
            .cipher
            .expect_seal()
            .returning(|_, _, _, _, _| Err(CipherError::UnknownKey(KeyId("gone".into()))));
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(
            result,
            Err(SetSecretError::Cipher(CipherError::UnknownKey(KeyId(ref id)))) if id == "gone"
        ));
        assert!(audit.recorded().is_empty());

        let (mut mocks, alice) = happy(|_| None);
        mocks
            .secrets
            .expect_write()
            .returning(|_| Err(RepoError::Unavailable(boom())));
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(
            result,
            Err(SetSecretError::Repository(RepoError::Unavailable(_)))
        ));
        assert!(audit.recorded().is_empty());

        let (mut mocks, alice) = happy(|_| None);
        mocks.secrets = MockSecretRepository::new();
        mocks
            .secrets
            .expect_find()
            .returning(|_, _| Err(RepoError::internal(boom())));
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(
            result,
            Err(SetSecretError::Repository(RepoError::Internal(_)))
        ));
        assert!(audit.recorded().is_empty());

        let (mut mocks, alice) = happy(|_| None);
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_with_data_key()
            .returning(|_| Err(RepoError::internal(boom())));
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(result, Err(SetSecretError::Repository(_))));
        assert!(audit.recorded().is_empty());
    }
}
