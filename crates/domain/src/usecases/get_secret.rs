use super::caller_owning;
use super::vault::{audit, read_version};
use crate::ports::Ports;
use crate::{AuditAction, Credential, Origin, SecretName, SecretValue};

pub use super::vault::VaultError as GetSecretError;

/// Reads and opens the newest version of one of the caller's own secrets: the
/// single-secret route's read. Audited as `secret.read`.
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
            Ok(Some((user, key))) => (
                Some(user.id),
                read_version(&self.ports, user.id, key, name, None).map(|opened| opened.value),
            ),
            Ok(None) => (
                credential.claimed_user(),
                Err(GetSecretError::NotAuthorized),
            ),
            Err(err) => (None, Err(err.into())),
        };
        audit(
            &self.ports,
            now,
            origin,
            who,
            AuditAction::SecretRead,
            &result,
        );
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{CipherError, MockSecretCipher, MockSecretRepository, MockUserRepository};
    use crate::usecases::fixtures::{
        Mocks, RecordingAudit, boom, credential, data_key, session_for, user,
    };
    use crate::{
        AuditOutcome, KeyId, RepoError, SealedData, Secret, SecretMetadata, SecretVersion,
        StoredVersion, Timestamp, User, UserId,
    };

    fn stored(owner: UserId, deleted: bool) -> (Secret, Option<StoredVersion>) {
        let secret = Secret {
            owner,
            name: SecretName::default_name(),
            version: SecretVersion(3),
            oldest_version: SecretVersion(1),
            metadata: SecretMetadata::default(),
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            deleted_at: deleted.then_some(Timestamp(3)),
        };
        let version = StoredVersion {
            version: SecretVersion(3),
            sealed: SealedData {
                key_id: KeyId("dk".into()),
                bytes: b"sealed-v3".to_vec(),
            },
            created_at: Timestamp(2),
        };
        (secret, Some(version))
    }

    /// Alice's `default` secret is at version 3 (soft-deleted if `deleted`); the
    /// cipher opens exactly that version with her key.
    fn happy_with(deleted: bool) -> (Mocks, User) {
        let alice = user("alice");
        let owner = alice.id;
        let key = data_key();
        let mut mocks = Mocks::default();
        let (found, found_key) = (alice.clone(), key.clone());
        mocks
            .users
            .expect_find_with_data_key()
            .withf(move |id| *id == owner)
            .returning(move |_| Ok(Some((found.clone(), Some(found_key.clone())))));
        mocks
            .secrets
            .expect_read()
            .withf(move |id, name, version| {
                *id == owner && name.as_str() == "default" && version.is_none()
            })
            .returning(move |owner, _, _| Ok(Some(stored(*owner, deleted))));
        mocks
            .cipher
            .expect_open()
            .withf(move |used, id, name, version, sealed| {
                *used == key
                    && *id == owner
                    && name.as_str() == "default"
                    && *version == SecretVersion(3)
                    && sealed.bytes == b"sealed-v3"
            })
            .returning(|_, _, _, _, _| Ok(SecretValue::from_decrypted("launch codes".into())));
        (mocks, alice)
    }

    fn happy() -> (Mocks, User) {
        happy_with(false)
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

    fn read_failure(caller: UserId) -> Vec<(AuditAction, AuditOutcome, Option<UserId>)> {
        vec![(AuditAction::SecretRead, AuditOutcome::Failure, Some(caller))]
    }

    #[test]
    fn returns_the_opened_newest_value_and_audits_the_read() {
        let (mocks, alice) = happy();
        let (result, audit) = run(mocks, alice.id, "Alice");
        assert_eq!(result.unwrap().expose(), "launch codes");
        assert_eq!(
            audit.recorded(),
            [(
                AuditAction::SecretRead,
                AuditOutcome::Success,
                Some(alice.id)
            )]
        );
        assert_eq!(audit.events()[0].client_ip.as_deref(), Some("203.0.113.5"));
    }

    #[test]
    fn another_users_name_is_not_authorized() {
        let (mocks, alice) = happy();
        let (result, audit) = run(mocks, alice.id, "bob");
        assert!(matches!(result, Err(GetSecretError::NotAuthorized)));
        assert_eq!(audit.recorded(), read_failure(alice.id));
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
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(result, Err(GetSecretError::NotAuthorized)));
        assert_eq!(audit.recorded(), read_failure(alice.id));
    }

    #[test]
    fn no_secret_is_not_found() {
        let (mut mocks, alice) = happy();
        mocks.secrets = MockSecretRepository::new();
        mocks.secrets.expect_read().returning(|_, _, _| Ok(None));
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(result, Err(GetSecretError::NotFound)));
        assert_eq!(audit.recorded(), read_failure(alice.id));
    }

    #[test]
    fn a_soft_deleted_secret_is_not_found_and_never_opened() {
        let (mut mocks, alice) = happy_with(true);
        // Opening would panic the mock.
        mocks.cipher = MockSecretCipher::new();
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(result, Err(GetSecretError::NotFound)));
        assert_eq!(audit.recorded(), read_failure(alice.id));
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
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(result, Err(GetSecretError::MissingDataKey)));
        assert!(audit.recorded().is_empty());
    }

    #[test]
    fn a_tampered_ciphertext_is_an_integrity_error_never_a_value() {
        let (mut mocks, alice) = happy();
        mocks.cipher = MockSecretCipher::new();
        mocks
            .cipher
            .expect_open()
            .times(1)
            .returning(|_, _, _, _, _| Err(CipherError::Integrity));
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(result, Err(GetSecretError::Integrity)));
        assert!(audit.recorded().is_empty());

        let (mut mocks, alice) = happy();
        mocks.cipher = MockSecretCipher::new();
        mocks
            .cipher
            .expect_open()
            .returning(|_, _, _, _, _| Err(CipherError::UnknownKey(KeyId("old".into()))));
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(
            result,
            Err(GetSecretError::Cipher(CipherError::UnknownKey(KeyId(ref id)))) if id == "old"
        ));
        assert!(audit.recorded().is_empty());
    }

    #[test]
    fn storage_failures_are_reported() {
        let (mut mocks, alice) = happy();
        mocks.secrets = MockSecretRepository::new();
        mocks
            .secrets
            .expect_read()
            .returning(|_, _, _| Err(RepoError::Unavailable(boom())));
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(matches!(
            result,
            Err(GetSecretError::Repository(RepoError::Unavailable(_)))
        ));
        assert!(audit.recorded().is_empty());

        let (mut mocks, alice) = happy();
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_with_data_key()
            .returning(|_| Err(RepoError::internal(boom())));
        assert!(matches!(
            run(mocks, alice.id, "alice").0,
            Err(GetSecretError::Repository(RepoError::Internal(_)))
        ));
    }
}
