//! Repository tests against a real SQLite file in a temporary directory.

use std::sync::Arc;
use std::time::Duration;

use safebox_domain::ports::{AuditLog, Clock, CreateUserError, SecretRepository, UserRepository};
use safebox_domain::{
    AuditAction, AuditEvent, AuditOutcome, AuditQuery, DataKeyId, Email, KeyId, NewUser, Origin,
    PasswordHash, Role, SealedData, Secret, SecretName, Timestamp, User, UserId, Username,
    WrappedDataKey,
};
use safebox_infra::db::{self, DbPool};
use safebox_infra::{DieselAuditLog, DieselSecretRepository, DieselUserRepository, SystemClock};

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
            role: Role::User,
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

#[test]
fn roles_are_stored_and_set_by_username() {
    let store = store();
    let alice = new_user("alice", "alice@example.com");
    store.users.create(&alice).unwrap();
    assert_eq!(
        store
            .users
            .find_by_id(&alice.user.id)
            .unwrap()
            .unwrap()
            .role,
        Role::User
    );
    let id = store
        .users
        .set_role(&Username::parse("ALICE").unwrap(), Role::Admin)
        .unwrap();
    assert_eq!(id, Some(alice.user.id));
    assert_eq!(
        store
            .users
            .find_by_id(&alice.user.id)
            .unwrap()
            .unwrap()
            .role,
        Role::Admin
    );
    assert_eq!(
        store
            .users
            .set_role(&Username::parse("nobody").unwrap(), Role::Admin)
            .unwrap(),
        None
    );
}

fn event(at: i64, user: Option<UserId>, action: AuditAction) -> AuditEvent {
    AuditEvent::new(
        Timestamp(at),
        &Origin::ip("192.0.2.7"),
        user,
        action,
        AuditOutcome::Success,
    )
}

/// Waits (bounded) until the batch writer has stored `count` events.
fn wait_for(audit: &DieselAuditLog, count: usize) -> Vec<safebox_domain::AuditRecord> {
    for _ in 0..200 {
        let page = audit
            .list(&AuditQuery {
                user: None,
                before: None,
                limit: 200,
            })
            .unwrap();
        if page.len() >= count {
            return page;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the audit writer did not store {count} events in 2 s");
}

#[test]
fn audit_events_are_listed_newest_first_filtered_and_paginated() {
    let store = store();
    let now = SystemClock.now().as_secs();
    let audit = DieselAuditLog::start(
        store.pool.clone(),
        Duration::from_secs(86_400),
        Arc::new(SystemClock),
    );
    let alice = UserId::generate();
    let bob = UserId::generate();
    audit.record(event(now, Some(alice), AuditAction::Register));
    audit.record(event(now, Some(bob), AuditAction::Register));
    audit.record(event(now, Some(alice), AuditAction::SecretWrite));
    audit.record(event(now, None, AuditAction::Login));

    let all = wait_for(&audit, 4);
    let actions: Vec<_> = all.iter().map(|r| r.event.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::Login,
            AuditAction::SecretWrite,
            AuditAction::Register,
            AuditAction::Register
        ]
    );
    assert_eq!(all[0].event.client_ip.as_deref(), Some("192.0.2.7"));

    let own = audit
        .list(&AuditQuery {
            user: Some(alice),
            before: None,
            limit: 10,
        })
        .unwrap();
    assert_eq!(own.len(), 2);
    assert!(own.iter().all(|r| r.event.user_id == Some(alice)));

    let first = audit
        .list(&AuditQuery {
            user: None,
            before: None,
            limit: 3,
        })
        .unwrap();
    let rest = audit
        .list(&AuditQuery {
            user: None,
            before: Some(first[2].id.clone()),
            limit: 3,
        })
        .unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].event.action, AuditAction::Register);
}

#[test]
fn old_audit_events_are_pruned_at_start_and_on_demand() {
    let store = store();
    let now = SystemClock.now().as_secs();
    {
        let audit = DieselAuditLog::start(
            store.pool.clone(),
            Duration::from_secs(365 * 86_400),
            Arc::new(SystemClock),
        );
        audit.record(event(now - 40 * 86_400, None, AuditAction::Login));
        audit.record(event(now - 10 * 86_400, None, AuditAction::Login));
        audit.record(event(now, None, AuditAction::Login));
        wait_for(&audit, 3);
    } // dropping the log flushes its queue
    // A retention of 30 days prunes the 40-day-old event when the writer starts.
    let audit = DieselAuditLog::start(
        store.pool.clone(),
        Duration::from_secs(30 * 86_400),
        Arc::new(SystemClock),
    );
    let mut remaining = Vec::new();
    for _ in 0..200 {
        remaining = audit
            .list(&AuditQuery {
                user: None,
                before: None,
                limit: 10,
            })
            .unwrap();
        if remaining.len() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(remaining.len(), 2);
    assert_eq!(audit.prune(Timestamp(now - 86_400)).unwrap(), 1);
    assert_eq!(
        audit
            .list(&AuditQuery {
                user: None,
                before: None,
                limit: 10
            })
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn dropping_the_audit_log_writes_what_is_queued() {
    let store = store();
    let now = SystemClock.now().as_secs();
    {
        let audit = DieselAuditLog::start(
            store.pool.clone(),
            Duration::from_secs(86_400),
            Arc::new(SystemClock),
        );
        for _ in 0..500 {
            audit.record(event(now, None, AuditAction::SecretRead));
        }
    }
    let audit = DieselAuditLog::start(
        store.pool.clone(),
        Duration::from_secs(86_400),
        Arc::new(SystemClock),
    );
    assert_eq!(
        audit
            .list(&AuditQuery {
                user: None,
                before: None,
                limit: 200
            })
            .unwrap()
            .len(),
        200
    );
    let mut total = 0;
    let mut before = None;
    loop {
        let page = audit
            .list(&AuditQuery {
                user: None,
                before: before.clone(),
                limit: 200,
            })
            .unwrap();
        if page.is_empty() {
            break;
        }
        total += page.len();
        before = Some(page.last().unwrap().id.clone());
    }
    assert_eq!(total, 500);
}
