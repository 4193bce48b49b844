//! Unit tests of [`Vault`] and the writes and reads it shares with the
//! single-secret routes, against the mocked ports.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::ports::{MockSecretCipher, MockSecretRepository, MockUserRepository};
use crate::usecases::fixtures::{
    Mocks, Recorded, RecordingAudit, boom, credential, data_key, session_for, user,
};
use crate::{KeyId, SealedData, Session, User};

/// The mocks' now: within a minute of the session's last use, so it is not touched.
const NOW: Timestamp = Timestamp(1_030);

const LIMITS: VaultLimits = VaultLimits {
    max_versions: 3,
    max_value_bytes: 100,
    max_secrets: 50,
};

fn name(raw: &str) -> SecretName {
    SecretName::parse(raw).unwrap()
}

fn metadata(pairs: &[(&str, &str)]) -> SecretMetadata {
    SecretMetadata::parse(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    )
    .unwrap()
}

/// `owner`'s secret `raw_name` at `version`, live.
fn secret(owner: UserId, raw_name: &str, version: u64) -> Secret {
    Secret {
        owner,
        name: name(raw_name),
        version: SecretVersion(version),
        oldest_version: SecretVersion(version.saturating_sub(LIMITS.max_versions - 1).max(1)),
        metadata: metadata(&[("team", "a")]),
        created_at: Timestamp(10),
        updated_at: Timestamp(20 + i64::try_from(version).unwrap()),
        deleted_at: None,
    }
}

fn deleted(mut secret: Secret) -> Secret {
    secret.deleted_at = Some(Timestamp(500));
    secret
}

/// What the mocked cipher seals for `version`: the version is in the bytes, so a
/// write shows which version its value was sealed for.
fn sealed_for(version: SecretVersion) -> SealedData {
    SealedData {
        key_id: KeyId("dk".into()),
        bytes: format!("sealed-v{version}").into_bytes(),
    }
}

fn value(raw: &str) -> SecretValue {
    SecretValue::parse(raw.into(), LIMITS.max_value_bytes, "value").unwrap()
}

fn put(raw_name: &str, precondition: Precondition) -> PutSecret {
    PutSecret {
        name: name(raw_name),
        value: value("s3cr3t"),
        metadata: None,
        precondition,
    }
}

/// The (name, version) of every seal, in order.
type Seals = Arc<Mutex<Vec<(SecretName, SecretVersion)>>>;

/// Every write, in order.
type Writes = Arc<Mutex<Vec<VersionWrite>>>;

/// Alice, with a live session and a data key, and mocks that know both. Nothing
/// else is expected: every test adds what it needs, and any other call panics.
struct World {
    mocks: Mocks,
    alice: User,
    session: Session,
    key: WrappedDataKey,
}

impl World {
    fn new() -> Self {
        let alice = user("alice");
        let session = session_for(alice.id);
        let key = data_key();
        let mut mocks = Mocks {
            now: NOW,
            ..Mocks::default()
        }
        .with_session(&session);
        let (found, found_key, owner) = (alice.clone(), key.clone(), alice.id);
        mocks
            .users
            .expect_find_with_data_key()
            .withf(move |id| *id == owner)
            .returning(move |_| Ok(Some((found.clone(), Some(found_key.clone())))));
        Self {
            mocks,
            alice,
            session,
            key,
        }
    }

    fn owner(&self) -> UserId {
        self.alice.id
    }

    /// `find` of Alice's `raw_name` answers `current`, every time.
    fn finding(mut self, raw_name: &'static str, current: Option<Secret>) -> Self {
        let owner = self.owner();
        self.mocks
            .secrets
            .expect_find()
            .withf(move |id, name| *id == owner && name.as_str() == raw_name)
            .returning(move |_, _| Ok(current.clone()));
        self
    }

    /// `find` answers these, in turn (once each).
    fn finding_in_turn(mut self, answers: Vec<Option<Secret>>) -> Self {
        let owner = self.owner();
        let times = answers.len();
        let mut answers = answers.into_iter();
        self.mocks
            .secrets
            .expect_find()
            .withf(move |id, _| *id == owner)
            .times(times)
            .returning(move |_, _| Ok(answers.next().unwrap()));
        self
    }

    /// The cipher seals "s3cr3t" with Alice's key for Alice; every seal is
    /// remembered.
    fn sealing(mut self) -> (Self, Seals) {
        let seals = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&seals);
        let (key, owner) = (self.key.clone(), self.owner());
        self.mocks
            .cipher
            .expect_seal()
            .withf(move |used, id, _, _, value| {
                *used == key && *id == owner && value.expose() == "s3cr3t"
            })
            .returning(move |_, _, name, version, _| {
                seen.lock().unwrap().push((name.clone(), version));
                Ok(sealed_for(version))
            });
        (self, seals)
    }

    /// `write` answers these outcomes, in turn (once each); every write is
    /// remembered.
    fn writing(mut self, outcomes: Vec<WriteOutcome>) -> (Self, Writes) {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&writes);
        let times = outcomes.len();
        let mut outcomes = outcomes.into_iter();
        self.mocks
            .secrets
            .expect_write()
            .times(times)
            .returning(move |write| {
                seen.lock().unwrap().push(write.clone());
                Ok(outcomes.next().unwrap())
            });
        (self, writes)
    }

    /// Runs `op` on a [`Vault`] over the mocks with Alice's credential.
    fn run<T>(
        self,
        op: impl FnOnce(&Vault, &Credential, &Origin) -> T,
    ) -> (T, RecordingAudit, UserId) {
        let owner = self.owner();
        let credential = credential(&self.session);
        let (ports, audit) = self.mocks.ports();
        let vault = Vault::new(&ports, LIMITS);
        let result = op(&vault, &credential, &Origin::ip("198.51.100.7"));
        (result, audit, owner)
    }
}

fn one(action: AuditAction, outcome: AuditOutcome, who: UserId) -> Recorded {
    vec![(action, outcome, Some(who))]
}

fn precondition_text(result: Result<Written, VaultError>) -> String {
    match result {
        Err(VaultError::PreconditionFailed(why)) => why,
        other => panic!("expected a failed precondition, got {other:?}"),
    }
}

// ---------------------------------------------------------------- put

#[test]
fn put_creates_version_one_with_the_given_metadata() {
    let world = World::new().finding("team/db", None);
    let owner = world.owner();
    let (world, seals) = world.sealing();
    let (world, writes) = world.writing(vec![WriteOutcome::Written(secret(owner, "team/db", 1))]);
    let mut request = put("team/db", Precondition::None);
    request.metadata = Some(metadata(&[("description", "prod db")]));
    let (result, audit, owner) = world.run(|vault, who, from| vault.put(who, &request, from));

    assert_eq!(
        result.unwrap(),
        Written {
            secret: secret(owner, "team/db", 1),
            created: true,
        }
    );
    assert_eq!(
        *seals.lock().unwrap(),
        [(name("team/db"), SecretVersion(1))]
    );
    assert_eq!(
        *writes.lock().unwrap(),
        [VersionWrite {
            owner,
            name: name("team/db"),
            base: None,
            sealed: sealed_for(SecretVersion(1)),
            metadata: Some(metadata(&[("description", "prod db")])),
            now: NOW,
            keep_versions: 3,
            max_secrets: 50,
        }]
    );
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretWrite, AuditOutcome::Success, owner)
    );
    assert_eq!(audit.events()[0].at, NOW);
    assert_eq!(audit.events()[0].client_ip.as_deref(), Some("198.51.100.7"));
}

#[test]
fn put_writes_the_next_version_on_top_of_the_newest_and_keeps_metadata() {
    let world = World::new();
    let owner = world.owner();
    let world = world.finding("team/db", Some(secret(owner, "team/db", 4)));
    let (world, seals) = world.sealing();
    let (world, writes) = world.writing(vec![WriteOutcome::Written(secret(owner, "team/db", 5))]);
    let request = put("team/db", Precondition::None);
    let (result, audit, owner) = world.run(|vault, who, from| vault.put(who, &request, from));

    let written = result.unwrap();
    assert!(!written.created);
    assert_eq!(written.secret.version, SecretVersion(5));
    // The value is sealed for the version being written, not the one it replaces.
    assert_eq!(
        *seals.lock().unwrap(),
        [(name("team/db"), SecretVersion(5))]
    );
    let writes = writes.lock().unwrap();
    assert_eq!(
        *writes,
        [VersionWrite {
            owner,
            name: name("team/db"),
            base: Some(SecretVersion(4)),
            sealed: sealed_for(SecretVersion(5)),
            metadata: None,
            now: NOW,
            keep_versions: 3,
            max_secrets: 50,
        }]
    );
    assert_eq!(writes[0].version(), SecretVersion(5));
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretWrite, AuditOutcome::Success, owner)
    );
}

#[test]
fn successive_puts_number_versions_one_two_three() {
    // A store that keeps one secret: find sees what the last write wrote.
    let mut world = World::new();
    let owner = world.owner();
    let stored: Arc<Mutex<Option<Secret>>> = Arc::default();
    let (found, kept) = (Arc::clone(&stored), Arc::clone(&stored));
    world
        .mocks
        .secrets
        .expect_find()
        .returning(move |_, _| Ok(found.lock().unwrap().clone()));
    world.mocks.secrets.expect_write().returning(move |write| {
        let mut kept = kept.lock().unwrap();
        // A write is based on what is stored, as the repository requires.
        assert_eq!(kept.as_ref().map(|secret| secret.version), write.base);
        let written = secret(write.owner, write.name.as_str(), write.version().0);
        *kept = Some(written.clone());
        Ok(WriteOutcome::Written(written))
    });
    world
        .mocks
        .cipher
        .expect_seal()
        .returning(|_, _, _, version, _| Ok(sealed_for(version)));
    let (results, _, _) = world.run(|vault, who, from| {
        (0..3)
            .map(|_| {
                let written = vault.put(who, &put("x", Precondition::None), from).unwrap();
                (written.secret.version, written.created)
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(
        results,
        [
            (SecretVersion(1), true),
            (SecretVersion(2), false),
            (SecretVersion(3), false)
        ]
    );
    assert_eq!(
        stored
            .lock()
            .unwrap()
            .as_ref()
            .map(|s| (s.owner, s.version)),
        Some((owner, SecretVersion(3)))
    );
}

#[test]
fn put_to_a_soft_deleted_secret_writes_the_next_version() {
    let world = World::new();
    let owner = world.owner();
    let world = world.finding("x", Some(deleted(secret(owner, "x", 2))));
    let (world, _) = world.sealing();
    let (world, writes) = world.writing(vec![WriteOutcome::Written(secret(owner, "x", 3))]);
    let request = put("x", Precondition::None);
    let (result, _, _) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert!(!result.unwrap().created);
    assert_eq!(writes.lock().unwrap()[0].base, Some(SecretVersion(2)));
}

#[test]
fn if_match_a_version_writes_only_on_exactly_that_version() {
    // The stored version differs: refused, nothing sealed or written.
    let world = World::new();
    let owner = world.owner();
    let world = world.finding("x", Some(secret(owner, "x", 4)));
    let request = put("x", Precondition::Version(SecretVersion(3)));
    let (result, audit, owner) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert_eq!(
        precondition_text(result),
        "the secret is at version 4, not 3"
    );
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretWrite, AuditOutcome::Failure, owner)
    );

    // No such secret: refused.
    let world = World::new().finding("x", None);
    let request = put("x", Precondition::Version(SecretVersion(1)));
    let (result, audit, owner) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert_eq!(precondition_text(result), "no secret named 'x' exists");
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretWrite, AuditOutcome::Failure, owner)
    );

    // The same version: written on top of it.
    let world = World::new();
    let owner = world.owner();
    let world = world.finding("x", Some(secret(owner, "x", 4)));
    let (world, _) = world.sealing();
    let (world, writes) = world.writing(vec![WriteOutcome::Written(secret(owner, "x", 5))]);
    let request = put("x", Precondition::Version(SecretVersion(4)));
    let (result, _, _) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert_eq!(result.unwrap().secret.version, SecretVersion(5));
    assert_eq!(writes.lock().unwrap()[0].base, Some(SecretVersion(4)));
}

#[test]
fn if_none_match_creates_only() {
    for existing in [false, true] {
        let world = World::new();
        let owner = world.owner();
        let current = secret(owner, "x", 2);
        let current = if existing { current } else { deleted(current) };
        // A soft-deleted secret exists too.
        let world = world.finding("x", Some(current));
        let request = put("x", Precondition::Absent);
        let (result, audit, owner) = world.run(|vault, who, from| vault.put(who, &request, from));
        assert_eq!(
            precondition_text(result),
            "a secret named 'x' already exists"
        );
        assert_eq!(
            audit.recorded(),
            one(AuditAction::SecretWrite, AuditOutcome::Failure, owner)
        );
    }

    let world = World::new().finding("x", None);
    let owner = world.owner();
    let (world, _) = world.sealing();
    let (world, writes) = world.writing(vec![WriteOutcome::Written(secret(owner, "x", 1))]);
    let request = put("x", Precondition::Absent);
    let (result, _, _) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert!(result.unwrap().created);
    assert_eq!(writes.lock().unwrap()[0].base, None);
}

#[test]
fn if_match_any_writes_only_to_an_existing_secret() {
    let world = World::new().finding("x", None);
    let request = put("x", Precondition::Exists);
    let (result, audit, owner) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert_eq!(precondition_text(result), "no secret named 'x' exists");
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretWrite, AuditOutcome::Failure, owner)
    );

    // A soft-deleted secret exists too.
    for soft_deleted in [false, true] {
        let world = World::new();
        let owner = world.owner();
        let current = secret(owner, "x", 7);
        let current = if soft_deleted {
            deleted(current)
        } else {
            current
        };
        let world = world.finding("x", Some(current));
        let (world, seals) = world.sealing();
        let (world, writes) = world.writing(vec![WriteOutcome::Written(secret(owner, "x", 8))]);
        let request = put("x", Precondition::Exists);
        let (result, _, _) = world.run(|vault, who, from| vault.put(who, &request, from));
        assert!(!result.unwrap().created);
        assert_eq!(writes.lock().unwrap()[0].base, Some(SecretVersion(7)));
        assert_eq!(seals.lock().unwrap()[0].1, SecretVersion(8));
    }
}

#[test]
fn a_conflict_is_retried_on_what_is_stored_now() {
    let world = World::new();
    let owner = world.owner();
    let world = world.finding_in_turn(vec![
        Some(secret(owner, "x", 2)),
        Some(secret(owner, "x", 3)),
    ]);
    let (world, seals) = world.sealing();
    let (world, writes) = world.writing(vec![
        WriteOutcome::Conflict,
        WriteOutcome::Written(secret(owner, "x", 4)),
    ]);
    let request = put("x", Precondition::None);
    let (result, audit, owner) = world.run(|vault, who, from| vault.put(who, &request, from));

    assert_eq!(result.unwrap().secret.version, SecretVersion(4));
    assert_eq!(
        *seals.lock().unwrap(),
        [(name("x"), SecretVersion(3)), (name("x"), SecretVersion(4))]
    );
    let writes = writes.lock().unwrap();
    assert_eq!(
        writes
            .iter()
            .map(|write| (write.base, write.sealed.clone()))
            .collect::<Vec<_>>(),
        [
            (Some(SecretVersion(2)), sealed_for(SecretVersion(3))),
            (Some(SecretVersion(3)), sealed_for(SecretVersion(4)))
        ]
    );
    // One write, one event.
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretWrite, AuditOutcome::Success, owner)
    );
}

#[test]
fn a_created_secret_that_conflicts_is_written_as_the_next_version() {
    // Two creators race: the loser writes version 2 on top of the winner's 1.
    let world = World::new();
    let owner = world.owner();
    let world = world.finding_in_turn(vec![None, Some(secret(owner, "x", 1))]);
    let (world, _) = world.sealing();
    let (world, writes) = world.writing(vec![
        WriteOutcome::Conflict,
        WriteOutcome::Written(secret(owner, "x", 2)),
    ]);
    let request = put("x", Precondition::None);
    let (result, _, _) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert_eq!(
        result.unwrap(),
        Written {
            secret: secret(owner, "x", 2),
            created: false,
        }
    );
    let bases: Vec<_> = writes.lock().unwrap().iter().map(|w| w.base).collect();
    assert_eq!(bases, [None, Some(SecretVersion(1))]);
}

#[test]
fn with_a_precondition_a_conflict_is_checked_again_and_fails() {
    // If-Match: "2", and another write makes version 3 in between.
    let world = World::new();
    let owner = world.owner();
    let world = world.finding_in_turn(vec![
        Some(secret(owner, "x", 2)),
        Some(secret(owner, "x", 3)),
    ]);
    let (world, seals) = world.sealing();
    let (world, writes) = world.writing(vec![WriteOutcome::Conflict]);
    let request = put("x", Precondition::Version(SecretVersion(2)));
    let (result, audit, owner) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert_eq!(
        precondition_text(result),
        "the secret is at version 3, not 2"
    );
    assert_eq!(seals.lock().unwrap().len(), 1);
    assert_eq!(writes.lock().unwrap().len(), 1);
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretWrite, AuditOutcome::Failure, owner)
    );

    // If-None-Match: *, and another write creates it in between.
    let world = World::new();
    let owner = world.owner();
    let world = world.finding_in_turn(vec![None, Some(secret(owner, "x", 1))]);
    let (world, _) = world.sealing();
    let (world, _) = world.writing(vec![WriteOutcome::Conflict]);
    let request = put("x", Precondition::Absent);
    let (result, _, _) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert_eq!(
        precondition_text(result),
        "a secret named 'x' already exists"
    );
}

#[test]
fn endless_conflicts_give_up_busy_after_eight_attempts() {
    let mut world = World::new();
    let owner = world.owner();
    let mut version = 0;
    world
        .mocks
        .secrets
        .expect_find()
        .times(8)
        .returning(move |owner, name| {
            version += 1;
            Ok(Some(secret(*owner, name.as_str(), version)))
        });
    let (world, seals) = world.sealing();
    let (world, writes) = world.writing(vec![WriteOutcome::Conflict; 8]);
    let request = put("x", Precondition::None);
    let (result, audit, _) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert!(matches!(result, Err(VaultError::Busy)), "{result:?}");
    assert_eq!(seals.lock().unwrap().len(), 8);
    let writes = writes.lock().unwrap();
    assert_eq!(writes.len(), 8);
    assert_eq!(writes[7].base, Some(SecretVersion(8)));
    assert!(writes.iter().all(|write| write.owner == owner));
    // The server gave up: not the caller's fault, not audited.
    assert!(audit.recorded().is_empty());
}

#[test]
fn too_many_secrets_is_refused_and_audited() {
    let world = World::new().finding("x", None);
    let (world, _) = world.sealing();
    let (world, writes) = world.writing(vec![WriteOutcome::TooManySecrets]);
    let request = put("x", Precondition::None);
    let (result, audit, owner) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert!(
        matches!(result, Err(VaultError::TooManySecrets(50))),
        "{result:?}"
    );
    assert_eq!(writes.lock().unwrap()[0].max_secrets, 50);
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretWrite, AuditOutcome::Failure, owner)
    );
}

#[test]
fn put_without_a_data_key_or_account_fails() {
    let mut world = World::new();
    let found = world.alice.clone();
    world.mocks.users = MockUserRepository::new();
    world
        .mocks
        .users
        .expect_find_with_data_key()
        .returning(move |_| Ok(Some((found.clone(), None))));
    let request = put("x", Precondition::None);
    let (result, audit, _) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert!(
        matches!(result, Err(VaultError::MissingDataKey)),
        "{result:?}"
    );
    assert!(audit.recorded().is_empty());

    let mut world = World::new();
    world.mocks.users = MockUserRepository::new();
    world
        .mocks
        .users
        .expect_find_with_data_key()
        .returning(|_| Ok(None));
    let (result, audit, owner) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert!(
        matches!(result, Err(VaultError::NotAuthorized)),
        "{result:?}"
    );
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretWrite, AuditOutcome::Failure, owner)
    );
}

#[test]
fn seal_and_store_failures_are_reported_and_not_audited() {
    let mut world = World::new().finding("x", None);
    world
        .mocks
        .cipher
        .expect_seal()
        .returning(|_, _, _, _, _| Err(CipherError::Failure(boom())));
    let request = put("x", Precondition::None);
    let (result, audit, _) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert!(
        matches!(result, Err(VaultError::Cipher(CipherError::Failure(_)))),
        "{result:?}"
    );
    assert!(audit.recorded().is_empty());

    let mut world = World::new();
    world
        .mocks
        .secrets
        .expect_find()
        .returning(|_, _| Err(RepoError::Unavailable(boom())));
    let (result, audit, _) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert!(
        matches!(
            result,
            Err(VaultError::Repository(RepoError::Unavailable(_)))
        ),
        "{result:?}"
    );
    assert!(audit.recorded().is_empty());

    let world = World::new().finding("x", None);
    let (mut world, _) = world.sealing();
    world
        .mocks
        .secrets
        .expect_write()
        .times(1)
        .returning(|_| Err(RepoError::internal(boom())));
    let (result, audit, _) = world.run(|vault, who, from| vault.put(who, &request, from));
    assert!(
        matches!(result, Err(VaultError::Repository(RepoError::Internal(_)))),
        "{result:?}"
    );
    assert!(audit.recorded().is_empty());
}

// ---------------------------------------------------------------- get

fn stored_version(version: u64) -> StoredVersion {
    StoredVersion {
        version: SecretVersion(version),
        sealed: sealed_for(SecretVersion(version)),
        created_at: Timestamp(20 + i64::try_from(version).unwrap()),
    }
}

impl World {
    /// `read` of Alice's `raw_name` at `asked` answers `answer`, once.
    fn reading(
        mut self,
        raw_name: &'static str,
        asked: Option<SecretVersion>,
        answer: Option<(Secret, Option<StoredVersion>)>,
    ) -> Self {
        let owner = self.owner();
        self.mocks
            .secrets
            .expect_read()
            .withf(move |id, name, version| {
                *id == owner && name.as_str() == raw_name && *version == asked
            })
            .times(1)
            .returning(move |_, _, _| Ok(answer.clone()));
        self
    }

    /// The cipher opens, with Alice's key for Alice, what [`sealed_for`] sealed,
    /// as "value of v<version>" — and only under the version it was sealed for.
    fn opening(mut self) -> Self {
        let (key, owner) = (self.key.clone(), self.owner());
        self.mocks
            .cipher
            .expect_open()
            .withf(move |used, id, _, _, _| *used == key && *id == owner)
            .returning(|_, _, _, version, sealed| {
                if *sealed == sealed_for(version) {
                    Ok(SecretValue::from_decrypted(format!("value of v{version}")))
                } else {
                    Err(CipherError::Integrity)
                }
            });
        self
    }
}

#[test]
fn get_opens_the_newest_version() {
    let world = World::new();
    let owner = world.owner();
    let world = world
        .reading(
            "team/db",
            None,
            Some((secret(owner, "team/db", 3), Some(stored_version(3)))),
        )
        .opening();
    let (result, audit, owner) =
        world.run(|vault, who, from| vault.get(who, &name("team/db"), None, from));
    let opened = result.unwrap();
    assert_eq!(opened.value.expose(), "value of v3");
    assert_eq!(opened.version, stored_version(3));
    assert_eq!(opened.secret, secret(owner, "team/db", 3));
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretRead, AuditOutcome::Success, owner)
    );
}

impl World {
    /// The ports hold Alice's session, her account with her key, and her
    /// `raw_name` as `answer`, in memory; the blocking lookups of the `World`
    /// are still there, but a test that expects only memory replaces them.
    fn in_memory(
        mut self,
        raw_name: &'static str,
        answer: Option<(Secret, Option<StoredVersion>)>,
    ) -> Self {
        let (session, owner) = (self.session.clone(), self.owner());
        let (username, key) = (self.alice.username.clone(), self.key.clone());
        self.mocks.sessions = crate::ports::MockSessionRepository::new();
        self.mocks
            .sessions
            .expect_find_in_memory()
            .withf(move |id| *id == session.id)
            .returning(move |_| Some(session.clone()));
        self.mocks.users = MockUserRepository::new();
        self.mocks
            .users
            .expect_find_with_data_key_in_memory()
            .withf(move |id| *id == owner)
            .returning(move |_| Some((username.clone(), Some(key.clone()))));
        self.mocks
            .secrets
            .expect_read_newest_in_memory()
            .withf(move |id, name| *id == owner && name.as_str() == raw_name)
            .returning(move |_, _| answer.clone());
        self
    }
}

#[test]
fn a_read_the_audit_log_cannot_record_is_refused_and_nothing_else_is() {
    let world = World::new();
    let owner = world.owner();
    let mut world = world
        .reading(
            "team/db",
            None,
            Some((secret(owner, "team/db", 3), Some(stored_version(3)))),
        )
        .opening();
    world.mocks.audit = RecordingAudit::refusing();
    let (result, audit, _) =
        world.run(|vault, who, from| vault.get(who, &name("team/db"), None, from));
    assert!(
        matches!(
            result,
            Err(VaultError::Repository(RepoError::Unavailable(_)))
        ),
        "{result:?}"
    );
    assert!(audit.recorded().is_empty());

    // A failed read is recorded as always: only values are held back.
    let mut world = World::new().reading("missing", None, None);
    world.mocks.audit = RecordingAudit::refusing();
    let (result, audit, owner) =
        world.run(|vault, who, from| vault.get(who, &name("missing"), None, from));
    assert!(matches!(result, Err(VaultError::NotFound)));
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretRead, AuditOutcome::Failure, owner)
    );
}

#[test]
fn get_in_memory_opens_the_newest_version_like_get() {
    let world = World::new();
    let owner = world.owner();
    let world = world
        .in_memory(
            "team/db",
            Some((secret(owner, "team/db", 3), Some(stored_version(3)))),
        )
        .opening();
    let (opened, audit, owner) =
        world.run(|vault, who, from| vault.get_in_memory(who, &name("team/db"), from));
    let opened = opened.expect("answered from memory");
    assert_eq!(opened.value.expose(), "value of v3");
    assert_eq!(opened.version, stored_version(3));
    assert_eq!(opened.secret, secret(owner, "team/db", 3));
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretRead, AuditOutcome::Success, owner)
    );
}

/// What the secrets port holds in memory for an owner.
type Answer = Box<dyn Fn(UserId) -> Option<(Secret, Option<StoredVersion>)>>;

#[test]
fn get_in_memory_leaves_unknown_deleted_and_unopenable_secrets_to_get() {
    let owner_of = |world: &World| world.owner();
    let cases: Vec<(&str, Answer)> = vec![
        ("not in memory", Box::new(|_| None)),
        (
            "soft-deleted",
            Box::new(|owner| Some((deleted(secret(owner, "x", 2)), Some(stored_version(2))))),
        ),
        // Version 2's row holding what was sealed for version 1: the cipher
        // refuses it.
        (
            "does not open",
            Box::new(|owner| {
                let rolled_back = StoredVersion {
                    sealed: sealed_for(SecretVersion(1)),
                    ..stored_version(2)
                };
                Some((secret(owner, "x", 2), Some(rolled_back)))
            }),
        ),
    ];
    for (case, answer) in cases {
        let world = World::new();
        let owner = owner_of(&world);
        let world = world.in_memory("x", answer(owner)).opening();
        let (opened, audit, _) =
            world.run(|vault, who, from| vault.get_in_memory(who, &name("x"), from));
        assert!(opened.is_none(), "{case}");
        assert!(audit.recorded().is_empty(), "{case}");
    }
}

#[test]
fn get_opens_a_kept_older_version() {
    let world = World::new();
    let owner = world.owner();
    let world = world
        .reading(
            "x",
            Some(SecretVersion(2)),
            Some((secret(owner, "x", 3), Some(stored_version(2)))),
        )
        .opening();
    let (result, _, _) =
        world.run(|vault, who, from| vault.get(who, &name("x"), Some(SecretVersion(2)), from));
    let opened = result.unwrap();
    assert_eq!(opened.value.expose(), "value of v2");
    assert_eq!(opened.version.version, SecretVersion(2));
    assert_eq!(opened.secret.version, SecretVersion(3));
}

#[test]
fn a_version_that_is_not_kept_is_refused_without_opening() {
    // No `opening()`: opening would panic the mock.
    let world = World::new();
    let owner = world.owner();
    let world = world.reading(
        "x",
        Some(SecretVersion(1)),
        Some((secret(owner, "x", 5), None)),
    );
    let (result, audit, owner) =
        world.run(|vault, who, from| vault.get(who, &name("x"), Some(SecretVersion(1)), from));
    match result {
        Err(err @ VaultError::VersionNotKept(SecretVersion(1))) => {
            assert_eq!(err.to_string(), "version 1 is not kept");
        }
        other => panic!("expected VersionNotKept(1), got {other:?}"),
    }
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretRead, AuditOutcome::Failure, owner)
    );
}

#[test]
fn a_missing_or_soft_deleted_secret_is_not_found() {
    let world = World::new().reading("x", None, None);
    let (result, audit, owner) =
        world.run(|vault, who, from| vault.get(who, &name("x"), None, from));
    assert!(matches!(result, Err(VaultError::NotFound)), "{result:?}");
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretRead, AuditOutcome::Failure, owner)
    );

    for asked in [None, Some(SecretVersion(2))] {
        let world = World::new();
        let owner = world.owner();
        let answer = (deleted(secret(owner, "x", 2)), Some(stored_version(2)));
        let world = world.reading("x", asked, Some(answer));
        let (result, audit, owner) =
            world.run(|vault, who, from| vault.get(who, &name("x"), asked, from));
        assert!(matches!(result, Err(VaultError::NotFound)), "{result:?}");
        assert_eq!(
            audit.recorded(),
            one(AuditAction::SecretRead, AuditOutcome::Failure, owner)
        );
    }
}

#[test]
fn a_ciphertext_that_fails_its_check_is_an_integrity_error_never_a_value() {
    // Version 3's row holds what was sealed for version 2 (moved): it must not open.
    let world = World::new();
    let owner = world.owner();
    let mut moved = stored_version(3);
    moved.sealed = sealed_for(SecretVersion(2));
    let world = world
        .reading("x", None, Some((secret(owner, "x", 3), Some(moved))))
        .opening();
    let (result, audit, _) = world.run(|vault, who, from| vault.get(who, &name("x"), None, from));
    match result {
        Err(VaultError::Integrity) => {}
        Err(other) => panic!("expected an integrity error, got {other:?}"),
        Ok(opened) => panic!("a value came out: {:?}", opened.value.expose()),
    }
    assert!(audit.recorded().is_empty());
}

#[test]
fn a_missing_newest_version_is_a_storage_failure() {
    let world = World::new();
    let owner = world.owner();
    let world = world.reading("x", None, Some((secret(owner, "x", 3), None)));
    let (result, audit, _) = world.run(|vault, who, from| vault.get(who, &name("x"), None, from));
    assert!(
        matches!(result, Err(VaultError::Repository(RepoError::Internal(_)))),
        "{result:?}"
    );
    assert!(audit.recorded().is_empty());
}

#[test]
fn get_without_a_data_key_fails_and_read_failures_are_not_audited() {
    let mut world = World::new();
    let owner = world.owner();
    let found = world.alice.clone();
    world.mocks.users = MockUserRepository::new();
    world
        .mocks
        .users
        .expect_find_with_data_key()
        .returning(move |_| Ok(Some((found.clone(), None))));
    let world = world.reading(
        "x",
        None,
        Some((secret(owner, "x", 1), Some(stored_version(1)))),
    );
    let (result, audit, _) = world.run(|vault, who, from| vault.get(who, &name("x"), None, from));
    assert!(
        matches!(result, Err(VaultError::MissingDataKey)),
        "{result:?}"
    );
    assert!(audit.recorded().is_empty());

    let mut world = World::new();
    world
        .mocks
        .secrets
        .expect_read()
        .returning(|_, _, _| Err(RepoError::Unavailable(boom())));
    let (result, audit, _) = world.run(|vault, who, from| vault.get(who, &name("x"), None, from));
    assert!(
        matches!(result, Err(VaultError::Repository(_))),
        "{result:?}"
    );
    assert!(audit.recorded().is_empty());
}

// ---------------------------------------------------------------- list

fn query(limit: usize) -> SecretListQuery {
    SecretListQuery {
        prefix: "team/".into(),
        after: Some(name("team/a")),
        limit,
        include_deleted: true,
    }
}

impl World {
    /// `list` is asked for `query(limit)` with one more than `limit`, and answers
    /// `count` secrets named `team/s0`, `team/s1`, ….
    fn listing(mut self, limit: usize, count: usize) -> Self {
        let owner = self.owner();
        let expected = SecretListQuery {
            limit: limit + 1,
            ..query(limit)
        };
        self.mocks
            .secrets
            .expect_list()
            .withf(move |id, asked| *id == owner && *asked == expected)
            .times(1)
            .returning(move |owner, _| {
                Ok((0..count)
                    .map(|i| secret(*owner, &format!("team/s{i}"), 1))
                    .collect())
            });
        self
    }
}

#[test]
fn list_returns_a_page_and_where_the_next_one_starts() {
    let world = World::new().listing(2, 3);
    let (result, audit, owner) = world.run(|vault, who, from| vault.list(who, &query(2), from));
    assert_eq!(
        result.unwrap(),
        SecretPage {
            secrets: vec![secret(owner, "team/s0", 1), secret(owner, "team/s1", 1)],
            next_after: Some(name("team/s1")),
        }
    );
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretList, AuditOutcome::Success, owner)
    );
}

#[test]
fn the_last_page_has_no_next() {
    for count in [0, 1, 2] {
        let world = World::new().listing(2, count);
        let (result, _, _) = world.run(|vault, who, from| vault.list(who, &query(2), from));
        let page = result.unwrap();
        assert_eq!(page.secrets.len(), count);
        assert_eq!(page.next_after, None);
    }
}

#[test]
fn list_failures_are_reported_and_not_audited() {
    let mut world = World::new();
    world
        .mocks
        .secrets
        .expect_list()
        .returning(|_, _| Err(RepoError::Unavailable(boom())));
    let (result, audit, _) = world.run(|vault, who, from| vault.list(who, &query(2), from));
    assert!(
        matches!(result, Err(VaultError::Repository(_))),
        "{result:?}"
    );
    assert!(audit.recorded().is_empty());
}

// ------------------------------------------------- delete, undelete, destroy

impl World {
    /// `set_deleted` of Alice's `x` at `at` answers `answer`, once.
    fn setting_deleted(mut self, at: Option<Timestamp>, answer: Option<Secret>) -> Self {
        let owner = self.owner();
        self.mocks
            .secrets
            .expect_set_deleted()
            .withf(move |id, name, when| *id == owner && name.as_str() == "x" && *when == at)
            .times(1)
            .returning(move |_, _, _| Ok(answer.clone()));
        self
    }

    /// `destroy` of Alice's `x` answers `answer`, once.
    fn destroying(mut self, answer: bool) -> Self {
        let owner = self.owner();
        self.mocks
            .secrets
            .expect_destroy()
            .withf(move |id, name| *id == owner && name.as_str() == "x")
            .times(1)
            .returning(move |_, _| Ok(answer));
        self
    }
}

#[test]
fn delete_soft_deletes_now_and_a_missing_secret_is_not_found() {
    let world = World::new();
    let owner = world.owner();
    let world = world.setting_deleted(Some(NOW), Some(deleted(secret(owner, "x", 2))));
    let (result, audit, owner) = world.run(|vault, who, from| vault.delete(who, &name("x"), from));
    result.unwrap();
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretDelete, AuditOutcome::Success, owner)
    );

    let world = World::new().setting_deleted(Some(NOW), None);
    let (result, audit, owner) = world.run(|vault, who, from| vault.delete(who, &name("x"), from));
    assert!(matches!(result, Err(VaultError::NotFound)), "{result:?}");
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretDelete, AuditOutcome::Failure, owner)
    );
}

#[test]
fn undelete_restores_and_returns_the_secret() {
    let world = World::new();
    let owner = world.owner();
    let world = world.setting_deleted(None, Some(secret(owner, "x", 2)));
    let (result, audit, owner) =
        world.run(|vault, who, from| vault.undelete(who, &name("x"), from));
    assert_eq!(result.unwrap(), secret(owner, "x", 2));
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretUndelete, AuditOutcome::Success, owner)
    );

    let world = World::new().setting_deleted(None, None);
    let (result, audit, owner) =
        world.run(|vault, who, from| vault.undelete(who, &name("x"), from));
    assert!(matches!(result, Err(VaultError::NotFound)), "{result:?}");
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretUndelete, AuditOutcome::Failure, owner)
    );
}

#[test]
fn destroy_removes_and_a_missing_secret_is_not_found() {
    let world = World::new().destroying(true);
    let (result, audit, owner) = world.run(|vault, who, from| vault.destroy(who, &name("x"), from));
    result.unwrap();
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretDestroy, AuditOutcome::Success, owner)
    );

    let world = World::new().destroying(false);
    let (result, audit, owner) = world.run(|vault, who, from| vault.destroy(who, &name("x"), from));
    assert!(matches!(result, Err(VaultError::NotFound)), "{result:?}");
    assert_eq!(
        audit.recorded(),
        one(AuditAction::SecretDestroy, AuditOutcome::Failure, owner)
    );
}

#[test]
fn delete_undelete_and_destroy_failures_are_not_audited() {
    let mut world = World::new();
    world
        .mocks
        .secrets
        .expect_set_deleted()
        .times(2)
        .returning(|_, _, _| Err(RepoError::Unavailable(boom())));
    world
        .mocks
        .secrets
        .expect_destroy()
        .times(1)
        .returning(|_, _| Err(RepoError::internal(boom())));
    let (results, audit, _) = world.run(|vault, who, from| {
        [
            vault.delete(who, &name("x"), from).map(drop),
            vault.undelete(who, &name("x"), from).map(drop),
            vault.destroy(who, &name("x"), from),
        ]
    });
    for result in results {
        assert!(
            matches!(result, Err(VaultError::Repository(_))),
            "{result:?}"
        );
    }
    assert!(audit.recorded().is_empty());
}

// ---------------------------------------------------------------- sessions

/// One vault operation on the secret `x` (or a listing), its result without the
/// value.
type Op = fn(&Vault, &Credential, &Origin) -> Result<(), VaultError>;

/// Every vault operation with the action it is audited as.
fn every_op() -> [(AuditAction, Op); 6] {
    [
        (AuditAction::SecretWrite, |vault, who, from| {
            vault
                .put(who, &put("x", Precondition::None), from)
                .map(drop)
        }),
        (AuditAction::SecretRead, |vault, who, from| {
            vault.get(who, &name("x"), None, from).map(drop)
        }),
        (AuditAction::SecretList, |vault, who, from| {
            vault.list(who, &query(2), from).map(drop)
        }),
        (AuditAction::SecretDelete, |vault, who, from| {
            vault.delete(who, &name("x"), from)
        }),
        (AuditAction::SecretUndelete, |vault, who, from| {
            vault.undelete(who, &name("x"), from).map(drop)
        }),
        (AuditAction::SecretDestroy, |vault, who, from| {
            vault.destroy(who, &name("x"), from)
        }),
    ]
}

#[test]
fn a_dead_session_is_not_authorized_and_nothing_else_is_called() {
    let alice = user("alice");
    let mut ended = session_for(alice.id);
    ended.expires_at = Timestamp(NOW.0 - 1);
    for gone in [None, Some(ended)] {
        for (action, op) in every_op() {
            // No expectation on users, secrets or the cipher: any call panics.
            let session = session_for(alice.id);
            let mut mocks = Mocks {
                now: NOW,
                ..Mocks::default()
            };
            let answer = gone.clone();
            mocks
                .sessions
                .expect_find()
                .times(1)
                .returning(move |_| Ok(answer.clone()));
            let (ports, audit) = mocks.ports();
            let result = op(
                &Vault::new(&ports, LIMITS),
                &credential(&session),
                &Origin::ip("198.51.100.7"),
            );
            assert!(
                matches!(result, Err(VaultError::NotAuthorized)),
                "{action}: {result:?}"
            );
            assert_eq!(
                audit.recorded(),
                one(action, AuditOutcome::Failure, alice.id),
                "{action}"
            );
        }
    }
}

#[test]
fn a_failing_session_store_is_reported_and_not_audited() {
    for (action, op) in every_op() {
        let session = session_for(UserId::generate());
        let mut mocks = Mocks {
            now: NOW,
            ..Mocks::default()
        };
        mocks
            .sessions
            .expect_find()
            .returning(|_| Err(RepoError::Unavailable(boom())));
        let (ports, audit) = mocks.ports();
        let result = op(
            &Vault::new(&ports, LIMITS),
            &credential(&session),
            &Origin::ip("198.51.100.7"),
        );
        assert!(
            matches!(result, Err(VaultError::Repository(_))),
            "{action}: {result:?}"
        );
        assert!(audit.recorded().is_empty(), "{action}");
    }
}

#[test]
fn every_operation_acts_only_on_the_callers_own_secrets() {
    // Bob's credential reaches only Bob's secrets: every port call names Bob.
    let bob = user("bob");
    let session = session_for(bob.id);
    let mut mocks = Mocks {
        now: NOW,
        ..Mocks::default()
    }
    .with_session(&session);
    let found = bob.clone();
    let id = bob.id;
    mocks
        .users
        .expect_find_with_data_key()
        .withf(move |owner| *owner == id)
        .returning(move |_| Ok(Some((found.clone(), Some(data_key())))));
    mocks.secrets = MockSecretRepository::new();
    mocks
        .secrets
        .expect_find()
        .withf(move |owner, _| *owner == id)
        .returning(|_, _| Ok(None));
    mocks
        .secrets
        .expect_write()
        .withf(move |write| write.owner == id)
        .returning(|write| Ok(WriteOutcome::Written(secret(write.owner, "x", 1))));
    mocks
        .secrets
        .expect_read()
        .withf(move |owner, _, _| *owner == id)
        .returning(|_, _, _| Ok(None));
    mocks
        .secrets
        .expect_list()
        .withf(move |owner, _| *owner == id)
        .returning(|_, _| Ok(Vec::new()));
    mocks
        .secrets
        .expect_set_deleted()
        .withf(move |owner, _, _| *owner == id)
        .returning(|_, _, _| Ok(None));
    mocks
        .secrets
        .expect_destroy()
        .withf(move |owner, _| *owner == id)
        .returning(|_, _| Ok(false));
    mocks.cipher = MockSecretCipher::new();
    mocks
        .cipher
        .expect_seal()
        .withf(move |_, owner, _, _, _| *owner == id)
        .returning(|_, _, _, version, _| Ok(sealed_for(version)));
    let (ports, audit) = mocks.ports();
    let vault = Vault::new(&ports, LIMITS);
    let from = Origin::ip("198.51.100.7");
    let results: Vec<_> = every_op()
        .into_iter()
        .map(|(_, op)| op(&vault, &credential(&session), &from))
        .collect();
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(VaultError::NotFound)));
    assert!(results[2].is_ok());
    for result in &results[3..] {
        assert!(matches!(result, Err(VaultError::NotFound)), "{result:?}");
    }
    assert!(
        audit
            .recorded()
            .iter()
            .all(|(_, _, who)| *who == Some(bob.id))
    );
    assert_eq!(audit.recorded().len(), 6);
}
