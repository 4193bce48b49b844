//! Repository tests against a real SQLite file in a temporary directory.

use std::time::Duration;

use safebox_domain::ports::{CreateUserError, SecretRepository, UserRepository};
use safebox_domain::{
    DataKeyId, Email, KeyId, NewUser, PasswordHash, SealedData, Secret, SecretName, Timestamp,
    User, UserId, Username, WrappedDataKey,
};
use safebox_infra::db::{self, DbPool};
use safebox_infra::{DieselSecretRepository, DieselUserRepository};

struct Store {
    _dir: tempfile::TempDir,
    pool: DbPool,
    users: DieselUserRepository,
    secrets: DieselSecretRepository,
}

fn store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let pool = db::connect(&url, 4, Duration::from_secs(2)).unwrap();
    let applied = db::migrate(&pool).unwrap();
    assert!(!applied.is_empty());
    Store {
        _dir: dir,
        users: DieselUserRepository::new(pool.clone()),
        secrets: DieselSecretRepository::new(pool.clone()),
        pool,
    }
}

fn new_user(name: &str, email: &str) -> NewUser {
    NewUser {
        user: User {
            id: UserId::generate(),
            username: Username::parse(name).unwrap(),
            email: Email::parse(email).unwrap(),
            password_hash: PasswordHash(format!("$2b$04$hash-of-{name}")),
            created_at: Timestamp(1_700_000_000),
        },
        data_key: WrappedDataKey {
            id: DataKeyId::generate(),
            sealed: SealedData {
                key_id: KeyId("mk-test".into()),
                bytes: vec![1, 2, 3, 4],
            },
        },
    }
}

fn secret(owner: UserId, bytes: &[u8], at: i64) -> Secret {
    Secret {
        owner,
        name: SecretName::default_name(),
        sealed: SealedData {
            key_id: KeyId("dk".into()),
            bytes: bytes.to_vec(),
        },
        created_at: Timestamp(at),
        updated_at: Timestamp(at),
    }
}

#[test]
fn created_users_are_found_by_email_username_and_id() {
    let store = store();
    let alice = new_user("alice", "alice@example.com");
    store.users.create(&alice).unwrap();
    let by_email = store
        .users
        .find_by_email(&Email::parse("ALICE@example.com").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(by_email, alice.user);
    let by_name = store
        .users
        .find_by_username(&Username::parse("Alice").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(by_name, alice.user);
    assert_eq!(
        store.users.find_by_id(&alice.user.id).unwrap().unwrap(),
        alice.user
    );
    assert_eq!(
        store.users.data_key(&alice.user.id).unwrap().unwrap(),
        alice.data_key
    );
}

#[test]
fn unknown_users_are_none() {
    let store = store();
    assert!(
        store
            .users
            .find_by_email(&Email::parse("nobody@example.com").unwrap())
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .users
            .find_by_username(&Username::parse("nobody").unwrap())
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .users
            .find_by_id(&UserId::generate())
            .unwrap()
            .is_none()
    );
    assert!(store.users.data_key(&UserId::generate()).unwrap().is_none());
}

#[test]
fn duplicates_are_reported_by_field_and_leave_nothing_behind() {
    let store = store();
    store
        .users
        .create(&new_user("alice", "alice@example.com"))
        .unwrap();

    let same_email = new_user("other", "alice@example.com");
    assert!(matches!(
        store.users.create(&same_email),
        Err(CreateUserError::EmailTaken)
    ));
    let same_name = new_user("alice", "other@example.com");
    assert!(matches!(
        store.users.create(&same_name),
        Err(CreateUserError::UsernameTaken)
    ));

    // Neither failed attempt left a user or a data key behind.
    assert!(
        store
            .users
            .find_by_id(&same_email.user.id)
            .unwrap()
            .is_none()
    );
    assert!(store.users.data_key(&same_name.user.id).unwrap().is_none());
}

#[test]
fn a_data_key_id_clash_rolls_back_the_user_too() {
    let store = store();
    let alice = new_user("alice", "alice@example.com");
    store.users.create(&alice).unwrap();
    let mut bob = new_user("bob", "bob@example.com");
    bob.data_key.id = alice.data_key.id;
    assert!(store.users.create(&bob).is_err());
    assert!(store.users.find_by_id(&bob.user.id).unwrap().is_none());
}

#[test]
fn upsert_replaces_the_value_and_keeps_created_at() {
    let store = store();
    let alice = new_user("alice", "alice@example.com");
    store.users.create(&alice).unwrap();
    let id = alice.user.id;
    assert!(
        store
            .secrets
            .find(&id, &SecretName::default_name())
            .unwrap()
            .is_none()
    );

    store.secrets.upsert(&secret(id, b"first", 100)).unwrap();
    store.secrets.upsert(&secret(id, b"second", 200)).unwrap();
    let found = store
        .secrets
        .find(&id, &SecretName::default_name())
        .unwrap()
        .unwrap();
    assert_eq!(found.sealed.bytes, b"second");
    assert_eq!(found.created_at, Timestamp(100));
    assert_eq!(found.updated_at, Timestamp(200));
}

#[test]
fn secrets_are_per_owner_and_need_an_existing_owner() {
    let store = store();
    let alice = new_user("alice", "alice@example.com");
    let bob = new_user("bob", "bob@example.com");
    store.users.create(&alice).unwrap();
    store.users.create(&bob).unwrap();
    store
        .secrets
        .upsert(&secret(alice.user.id, b"alice's", 1))
        .unwrap();
    assert!(
        store
            .secrets
            .find(&bob.user.id, &SecretName::default_name())
            .unwrap()
            .is_none()
    );
    // foreign_keys = ON: a secret for a user that does not exist is refused.
    assert!(
        store
            .secrets
            .upsert(&secret(UserId::generate(), b"orphan", 1))
            .is_err()
    );
}

#[test]
fn an_exhausted_pool_is_unavailable_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("small.db").display().to_string();
    let pool = db::connect(&url, 1, Duration::from_millis(200)).unwrap();
    db::migrate(&pool).unwrap();
    let users = DieselUserRepository::new(pool.clone());
    let _held = pool.get().unwrap();
    let err = users.find_by_id(&UserId::generate()).unwrap_err();
    assert!(
        matches!(err, safebox_domain::RepoError::Unavailable(_)),
        "{err:?}"
    );
}

#[test]
fn migrations_are_idempotent() {
    let store = store();
    assert!(db::migrate(&store.pool).unwrap().is_empty());
}
