use super::vault::{audit_outcome, audit_read, read_newest_in_memory, read_version};
use super::{caller_owning, live_session_in_memory};
use crate::ports::Ports;
use crate::{AuditAction, Credential, Origin, SecretName, SecretValue, Username};

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
        audit_outcome(
            &self.ports,
            now,
            origin,
            who,
            AuditAction::SecretRead,
            result,
        )
    }

    /// [`Self::execute`] without blocking, for async callers: `Some` when the
    /// ports hold the caller's session, account and secret in memory, the claim
    /// is the caller's own and the secret opens, with exactly what `execute`
    /// would return, audited the same way. `None` when that cannot be known
    /// without storage, and for every failure: the caller then runs `execute`, on
    /// a blocking thread, which answers and audits it. Nothing is recorded for a
    /// `None`.
    pub fn execute_in_memory(
        &self,
        credential: &Credential,
        claimed_username: &str,
        name: &SecretName,
        origin: &Origin,
    ) -> Option<SecretValue> {
        let now = self.ports.clock.now();
        let claimed = Username::parse(claimed_username).ok()?;
        let session = live_session_in_memory(&self.ports, credential, now)?;
        let (username, key) = self
            .ports
            .users
            .find_with_data_key_in_memory(&session.user_id)?;
        if username != claimed {
            return None;
        }
        let opened = read_newest_in_memory(&self.ports, session.user_id, key.as_ref(), name)?;
        // Not recorded: the blocking path then answers (and refuses) it.
        audit_read(&self.ports, now, origin, session.user_id).ok()?;
        Some(opened.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{CipherError, MockSecretCipher, MockSecretRepository, MockUserRepository};
    use crate::usecases::fixtures::{
        Mocks, RecordingAudit, boom, credential, data_key, digest_of, session_for, session_of, user,
    };
    use crate::{
        AuditOutcome, KeyId, RepoError, SealedData, Secret, SecretMetadata, SecretVersion, Session,
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

    // ------------------------------------------------------------ from memory

    /// How a test changes the in-memory set-up before it runs.
    #[derive(Default)]
    struct InMemory {
        session_unknown: bool,
        owner_unknown: bool,
        secret_unknown: bool,
        deleted: bool,
        no_version: bool,
        no_key: bool,
        cipher_fails: bool,
    }

    /// Alice's session, account (with her data key) and `default` secret at
    /// version 3, as the ports hold them in memory. The blocking lookups
    /// (`find`, `find_with_data_key`, `read`) are not expected: a call panics.
    fn in_memory(setup: &InMemory) -> (Mocks, User, Session) {
        let alice = user("alice");
        let session = session_of(&alice);
        let owner = alice.id;
        let key = data_key();
        let mut mocks = Mocks::default();
        let (found, sid) = (session.clone(), session.id);
        let session_unknown = setup.session_unknown;
        mocks
            .sessions
            .expect_find_in_memory()
            .withf(move |id| *id == sid)
            .returning(move |_| (!session_unknown).then(|| found.clone()));
        let (name, found_key) = (alice.username.clone(), (!setup.no_key).then(|| key.clone()));
        let owner_unknown = setup.owner_unknown;
        mocks
            .users
            .expect_find_with_data_key_in_memory()
            .withf(move |id| *id == owner)
            .returning(move |_| (!owner_unknown).then(|| (name.clone(), found_key.clone())));
        let (secret_unknown, deleted, no_version) =
            (setup.secret_unknown, setup.deleted, setup.no_version);
        mocks
            .secrets
            .expect_read_newest_in_memory()
            .withf(move |id, name| *id == owner && name.as_str() == "default")
            .returning(move |owner, _| {
                let (secret, version) = stored(*owner, deleted);
                (!secret_unknown).then(|| (secret, version.filter(|_| !no_version)))
            });
        let cipher_fails = setup.cipher_fails;
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
            .returning(move |_, _, _, _, _| {
                if cipher_fails {
                    Err(CipherError::Integrity)
                } else {
                    Ok(SecretValue::from_decrypted("launch codes".into()))
                }
            });
        (mocks, alice, session)
    }

    fn run_in_memory(
        mocks: Mocks,
        credential: &Credential,
        claimed: &str,
    ) -> (Option<SecretValue>, RecordingAudit) {
        let (ports, audit) = mocks.ports();
        let value = GetSecret::new(&ports).execute_in_memory(
            credential,
            claimed,
            &SecretName::default_name(),
            &Origin::ip("203.0.113.5"),
        );
        (value, audit)
    }

    #[test]
    fn a_read_the_ports_hold_in_memory_is_answered_and_audited_like_execute() {
        let (mocks, alice, session) = in_memory(&InMemory::default());
        let (value, audit) = run_in_memory(mocks, &credential(&session), "Alice");
        assert_eq!(value.unwrap().expose(), "launch codes");
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

    /// A log that is behind refuses the read's event: the value does not
    /// leave unrecorded, from storage or from memory.
    #[test]
    fn a_read_the_audit_log_cannot_record_is_refused_as_unavailable() {
        let (mut mocks, alice) = happy();
        mocks.audit = RecordingAudit::refusing();
        let (result, audit) = run(mocks, alice.id, "alice");
        assert!(
            matches!(
                result,
                Err(GetSecretError::Repository(RepoError::Unavailable(_)))
            ),
            "{result:?}"
        );
        assert!(audit.recorded().is_empty());

        let (mut mocks, _, session) = in_memory(&InMemory::default());
        mocks.audit = RecordingAudit::refusing();
        let (value, audit) = run_in_memory(mocks, &credential(&session), "alice");
        assert!(value.is_none());
        assert!(audit.recorded().is_empty());
    }

    #[test]
    fn a_cookie_session_held_in_memory_is_found_by_its_digest() {
        let (mut mocks, alice, session) = in_memory(&InMemory::default());
        let cookie = crate::OpaqueToken::new("cookie-1".into());
        let found = session.clone();
        mocks.sessions = crate::ports::MockSessionRepository::new();
        mocks
            .sessions
            .expect_find_by_cookie_in_memory()
            .withf(|digest| *digest == digest_of(&crate::OpaqueToken::new("cookie-1".into())))
            .returning(move |_| Some(found.clone()));
        let mocks = mocks.with_digests();
        let (value, audit) = run_in_memory(mocks, &Credential::Cookie(cookie), "alice");
        assert_eq!(value.unwrap().expose(), "launch codes");
        assert_eq!(audit.recorded()[0].2, Some(alice.id));
    }

    /// Whatever the in-memory path cannot answer for certain is left to the
    /// blocking path (`None`), and nothing is audited twice.
    #[test]
    fn anything_but_a_sure_success_is_left_to_the_blocking_path_unaudited() {
        let cases: [(&str, InMemory); 8] = [
            (
                "session not in memory",
                InMemory {
                    session_unknown: true,
                    ..InMemory::default()
                },
            ),
            (
                "account not in memory",
                InMemory {
                    owner_unknown: true,
                    ..InMemory::default()
                },
            ),
            (
                "secret not in memory",
                InMemory {
                    secret_unknown: true,
                    ..InMemory::default()
                },
            ),
            (
                "soft-deleted",
                InMemory {
                    deleted: true,
                    ..InMemory::default()
                },
            ),
            (
                "newest version missing",
                InMemory {
                    no_version: true,
                    ..InMemory::default()
                },
            ),
            (
                "no data key",
                InMemory {
                    no_key: true,
                    ..InMemory::default()
                },
            ),
            (
                "does not open",
                InMemory {
                    cipher_fails: true,
                    ..InMemory::default()
                },
            ),
            ("everything known", InMemory::default()),
        ];
        for (case, setup) in cases {
            let (mocks, _, session) = in_memory(&setup);
            let (value, audit) = run_in_memory(mocks, &credential(&session), "alice");
            if case == "everything known" {
                assert!(value.is_some(), "{case}");
            } else {
                assert!(value.is_none(), "{case}");
                assert!(audit.recorded().is_empty(), "{case}");
            }
        }
    }

    #[test]
    fn claims_and_sessions_that_do_not_fit_are_left_to_the_blocking_path() {
        // Another user's name, and a name that is no username at all.
        for claimed in ["bob", ""] {
            let (mocks, _, session) = in_memory(&InMemory::default());
            let (value, audit) = run_in_memory(mocks, &credential(&session), claimed);
            assert!(value.is_none(), "{claimed:?}");
            assert!(audit.recorded().is_empty());
        }
        // A token naming another user than the session's.
        let (mocks, _, session) = in_memory(&InMemory::default());
        let forged = Credential::Access {
            user_id: UserId::generate(),
            session_id: session.id,
        };
        assert!(run_in_memory(mocks, &forged, "alice").0.is_none());
        // An expired session, and one whose use is due to be recorded (a touch
        // is a write).
        for now in [Timestamp(90_000), Timestamp(1_000 + 60)] {
            let (mut mocks, _, session) = in_memory(&InMemory::default());
            mocks.now = now;
            let (value, audit) = run_in_memory(mocks, &credential(&session), "alice");
            assert!(value.is_none(), "at {now:?}");
            assert!(audit.recorded().is_empty());
        }
    }
}
