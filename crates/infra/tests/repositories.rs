//! Repository tests, written once and run against every backend: a fresh SQLite
//! file always, and a fresh MySQL database when `SAFEBOX_TEST_MYSQL_URL` is set
//! (see `safebox_infra::testing`).

use std::sync::Arc;
use std::time::Duration;

use safebox_domain::ports::{
    AuditLog, Clock, CreateUserError, RefreshRotation, SecretRepository, SessionRepository,
    UserRepository, VersionWrite, WriteOutcome,
};
use safebox_domain::{
    AuditAction, AuditEvent, AuditOutcome, AuditQuery, DataKeyId, Email, KeyId, NewUser, Origin,
    PasswordHash, RepoError, Role, SealedData, Secret, SecretName, SecretVersion, Session,
    SessionId, SessionKind, Timestamp, TokenDigest, User, UserData, UserId, Username,
    WrappedDataKey,
};
use safebox_infra::db::{self, DbPool};
use safebox_infra::testing::{TestBackend, TestDatabase};
use safebox_infra::{
    DieselAuditLog, DieselSecretRepository, DieselSessionRepository, DieselUserRepository,
    SystemClock,
};

struct Store {
    db: TestDatabase,
    pool: DbPool,
    users: DieselUserRepository,
    secrets: DieselSecretRepository,
    sessions: DieselSessionRepository,
}

fn open_store(backend: TestBackend, test: &str) -> Option<Store> {
    let db = TestDatabase::open(backend, test)?;
    let pool = db::connect(db.url(), 4, Duration::from_secs(2)).unwrap();
    let applied = db::migrate(&pool).unwrap();
    assert!(!applied.is_empty());
    Some(Store {
        db,
        users: DieselUserRepository::new(pool.clone()),
        secrets: DieselSecretRepository::new(pool.clone()),
        sessions: DieselSessionRepository::new(pool.clone()),
        pool,
    })
}

fn new_user(name: &str, email: &str) -> NewUser {
    NewUser {
        user: User {
            id: UserId::generate(),
            username: Username::parse(name).unwrap(),
            email: Some(Email::parse(email).unwrap()),
            password_hash: PasswordHash(format!("$2b$04$hash-of-{name}")),
            role: Role::User,
            data: UserData::parse(format!(r#"{{"name":"{name}"}}"#)).unwrap(),
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

/// Writes `bytes` as the next version of `owner`'s secret `default`.
fn put(store: &Store, owner: UserId, bytes: &[u8], at: i64) -> Result<WriteOutcome, RepoError> {
    let name = SecretName::default_name();
    let base = store
        .secrets
        .find(&owner, &name)?
        .map(|secret: Secret| secret.version);
    store.secrets.write(&VersionWrite {
        owner,
        name,
        base,
        sealed: SealedData {
            key_id: KeyId("dk".into()),
            bytes: bytes.to_vec(),
        },
        metadata: None,
        now: Timestamp(at),
        keep_versions: 10,
        max_secrets: 100,
    })
}

fn created_users_are_found_by_email_username_and_id(store: Store) {
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

fn a_user_is_found_with_its_data_key_in_one_lookup(store: Store) {
    let alice = new_user("alice", "alice@example.com");
    store.users.create(&alice).unwrap();
    let (user, key) = store
        .users
        .find_with_data_key(&alice.user.id)
        .unwrap()
        .unwrap();
    assert_eq!(user, alice.user);
    assert_eq!(key, Some(alice.data_key.clone()));
}

fn accounts_without_email_coexist_and_data_and_passwords_are_replaced(store: Store) {
    let mut first = new_user("first", "unused@example.com");
    first.user.email = None;
    let mut second = new_user("second", "unused2@example.com");
    second.user.email = None;
    second.data_key.id = DataKeyId::generate();
    store.users.create(&first).unwrap();
    store.users.create(&second).unwrap();
    let id = first.user.id;
    assert_eq!(store.users.find_by_id(&id).unwrap().unwrap().email, None);

    let data = UserData::parse(r#"{"phone":"555"}"#.into()).unwrap();
    assert!(store.users.update_data(&id, &data).unwrap());
    let hash = PasswordHash("$2b$04$new".into());
    assert!(store.users.update_password_hash(&id, &hash).unwrap());
    let user = store.users.find_by_id(&id).unwrap().unwrap();
    assert_eq!(user.data, data);
    assert_eq!(user.password_hash, hash);

    let nobody = UserId::generate();
    assert!(!store.users.update_data(&nobody, &data).unwrap());
    assert!(!store.users.update_password_hash(&nobody, &hash).unwrap());
}

fn deleting_a_user_takes_its_data_key_secrets_and_sessions(store: Store) {
    let alice = new_user("alice", "alice@example.com");
    let bob = new_user("bob", "bob@example.com");
    store.users.create(&alice).unwrap();
    store.users.create(&bob).unwrap();
    let id = alice.user.id;
    put(&store, id, b"sealed", 1).unwrap();
    put(&store, bob.user.id, b"b", 1).unwrap();
    let session = session(id, SessionKind::Bearer, 1_000, 2_000);
    store.sessions.create(&session, &digest("r1")).unwrap();

    assert!(store.users.delete(&id).unwrap());
    assert!(!store.users.delete(&id).unwrap());
    assert!(store.users.find_by_id(&id).unwrap().is_none());
    assert!(store.users.data_key(&id).unwrap().is_none());
    assert!(
        store
            .secrets
            .find(&id, &SecretName::default_name())
            .unwrap()
            .is_none()
    );
    assert!(store.sessions.find(&session.id).unwrap().is_none());
    assert_eq!(
        store
            .sessions
            .rotate_refresh(&digest("r1"), &digest("r2"), Timestamp(1_100))
            .unwrap(),
        RefreshRotation::Unknown
    );
    // Bob is untouched, and alice's name is free again.
    assert!(store.users.data_key(&bob.user.id).unwrap().is_some());
    let again = new_user("alice", "alice@example.com");
    store.users.create(&again).unwrap();
}

fn session(user: UserId, kind: SessionKind, at: i64, expires: i64) -> Session {
    Session {
        id: SessionId::generate(),
        user_id: user,
        kind,
        created_at: Timestamp(at),
        last_used_at: Timestamp(at),
        expires_at: Timestamp(expires),
        client_ip: Some("192.0.2.1".into()),
        user_agent: Some("curl/8".into()),
    }
}

fn digest(text: &str) -> TokenDigest {
    TokenDigest(format!("digest-{text}"))
}

fn sessions_are_stored_found_touched_listed_and_ended(store: Store) {
    let alice = new_user("alice", "alice@example.com");
    let bob = new_user("bob", "bob@example.com");
    store.users.create(&alice).unwrap();
    store.users.create(&bob).unwrap();
    let id = alice.user.id;
    let older = session(id, SessionKind::Bearer, 1_000, 5_000);
    let newer = session(id, SessionKind::Cookie, 1_001, 5_000);
    let expired = session(id, SessionKind::Bearer, 10, 900);
    let bobs = session(bob.user.id, SessionKind::Bearer, 1_000, 5_000);
    store.sessions.create(&expired, &digest("e")).unwrap();
    store.sessions.create(&older, &digest("older")).unwrap();
    store.sessions.create(&newer, &digest("cookie")).unwrap();
    store.sessions.create(&bobs, &digest("bob")).unwrap();

    assert_eq!(store.sessions.find(&older.id).unwrap(), Some(older.clone()));
    assert_eq!(
        store.sessions.find_by_cookie(&digest("cookie")).unwrap(),
        Some(newer.clone())
    );
    // A bearer session's credential is its refresh token, never a cookie.
    assert_eq!(
        store.sessions.find_by_cookie(&digest("older")).unwrap(),
        None
    );
    // Creating a session swept the user's expired one.
    assert_eq!(store.sessions.find(&expired.id).unwrap(), None);

    store.sessions.touch(&older.id, Timestamp(1_500)).unwrap();
    assert_eq!(
        store
            .sessions
            .find(&older.id)
            .unwrap()
            .unwrap()
            .last_used_at,
        Timestamp(1_500)
    );
    let listed: Vec<SessionId> = store
        .sessions
        .list(&id, Timestamp(2_000))
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [newer.id, older.id]);
    assert!(
        store
            .sessions
            .list(&id, Timestamp(5_000))
            .unwrap()
            .is_empty()
    );

    assert_eq!(store.sessions.end_others(&id, &newer.id).unwrap(), 1);
    assert_eq!(store.sessions.find(&older.id).unwrap(), None);
    assert!(store.sessions.end(&newer.id).unwrap());
    assert!(!store.sessions.end(&newer.id).unwrap());
    assert!(store.sessions.find(&bobs.id).unwrap().is_some());
}

fn refresh_tokens_rotate_once_and_a_replay_is_recognised(store: Store) {
    let alice = new_user("alice", "alice@example.com");
    store.users.create(&alice).unwrap();
    let live = session(alice.user.id, SessionKind::Bearer, 1_000, 5_000);
    store.sessions.create(&live, &digest("r1")).unwrap();

    let rotated = store
        .sessions
        .rotate_refresh(&digest("r1"), &digest("r2"), Timestamp(1_200))
        .unwrap();
    assert!(matches!(rotated, RefreshRotation::Rotated(ref s) if s.id == live.id));
    assert_eq!(
        store.sessions.find(&live.id).unwrap().unwrap().last_used_at,
        Timestamp(1_200)
    );
    // r1 is spent: presenting it again is a replay, and changes nothing.
    let replay = store
        .sessions
        .rotate_refresh(&digest("r1"), &digest("r3"), Timestamp(1_300))
        .unwrap();
    assert!(matches!(replay, RefreshRotation::Reused(ref s) if s.id == live.id));
    assert_eq!(
        store
            .sessions
            .rotate_refresh(&digest("r3"), &digest("r4"), Timestamp(1_300))
            .unwrap(),
        RefreshRotation::Unknown
    );
    // r2 is live.
    assert!(matches!(
        store
            .sessions
            .rotate_refresh(&digest("r2"), &digest("r5"), Timestamp(1_400))
            .unwrap(),
        RefreshRotation::Rotated(_)
    ));
    // Ending the session forgets all of its refresh tokens.
    store.sessions.end(&live.id).unwrap();
    for token in ["r1", "r5"] {
        assert_eq!(
            store
                .sessions
                .rotate_refresh(&digest(token), &digest("x"), Timestamp(1_500))
                .unwrap(),
            RefreshRotation::Unknown
        );
    }
}

fn concurrent_rotations_of_one_token_let_exactly_one_win(store: Store) {
    let alice = new_user("alice", "alice@example.com");
    store.users.create(&alice).unwrap();
    let live = session(alice.user.id, SessionKind::Bearer, 1_000, 5_000);
    store.sessions.create(&live, &digest("r1")).unwrap();
    let outcomes: Vec<RefreshRotation> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let sessions = store.sessions.clone();
                scope.spawn(move || {
                    sessions
                        .rotate_refresh(&digest("r1"), &digest(&format!("n{i}")), Timestamp(1_100))
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won = outcomes
        .iter()
        .filter(|o| matches!(o, RefreshRotation::Rotated(_)))
        .count();
    let replays = outcomes
        .iter()
        .filter(|o| matches!(o, RefreshRotation::Reused(_)))
        .count();
    assert_eq!((won, replays), (1, 7));
}

fn unknown_users_are_none(store: Store) {
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
    assert!(
        store
            .users
            .find_with_data_key(&UserId::generate())
            .unwrap()
            .is_none()
    );
}

fn duplicates_are_reported_by_field_and_leave_nothing_behind(store: Store) {
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

fn a_data_key_id_clash_rolls_back_the_user_too(store: Store) {
    let alice = new_user("alice", "alice@example.com");
    store.users.create(&alice).unwrap();
    let mut bob = new_user("bob", "bob@example.com");
    bob.data_key.id = alice.data_key.id;
    assert!(store.users.create(&bob).is_err());
    assert!(store.users.find_by_id(&bob.user.id).unwrap().is_none());
}

fn a_new_version_becomes_the_newest_and_keeps_created_at(store: Store) {
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

    put(&store, id, b"first", 100).unwrap();
    put(&store, id, b"second", 200).unwrap();
    let (found, newest) = store
        .secrets
        .read(&id, &SecretName::default_name(), None)
        .unwrap()
        .unwrap();
    assert_eq!(newest.unwrap().sealed.bytes, b"second");
    assert_eq!(found.version, SecretVersion(2));
    assert_eq!(found.created_at, Timestamp(100));
    assert_eq!(found.updated_at, Timestamp(200));
}

fn secrets_are_per_owner_and_need_an_existing_owner(store: Store) {
    let alice = new_user("alice", "alice@example.com");
    let bob = new_user("bob", "bob@example.com");
    store.users.create(&alice).unwrap();
    store.users.create(&bob).unwrap();
    put(&store, alice.user.id, b"alice's", 1).unwrap();
    assert!(
        store
            .secrets
            .find(&bob.user.id, &SecretName::default_name())
            .unwrap()
            .is_none()
    );
    // foreign_keys = ON: a secret for a user that does not exist is refused.
    assert!(put(&store, UserId::generate(), b"orphan", 1).is_err());
}

fn an_exhausted_pool_is_unavailable_not_a_hang(store: Store) {
    let pool = db::connect(store.db.url(), 1, Duration::from_millis(200)).unwrap();
    let users = DieselUserRepository::new(pool.clone());
    let _held = pool.get().unwrap();
    let started = std::time::Instant::now();
    let err = users.find_by_id(&UserId::generate()).unwrap_err();
    assert!(
        matches!(err, safebox_domain::RepoError::Unavailable(_)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

fn migrations_are_idempotent(store: Store) {
    assert!(db::migrate(&store.pool).unwrap().is_empty());
}

fn roles_are_stored_and_set_by_username(store: Store) {
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

fn audit_events_are_listed_newest_first_filtered_and_paginated(store: Store) {
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

fn old_audit_events_are_pruned_at_start_and_on_demand(store: Store) {
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

/// How many rows `audit_events` holds.
fn audit_rows(pool: &DbPool) -> i64 {
    use diesel::RunQueryDsl as _;

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let mut conn = pool.get().unwrap();
    diesel::sql_query("SELECT COUNT(*) AS count FROM audit_events")
        .get_result::<Count>(&mut *conn)
        .unwrap()
        .count
}

/// A burst of several batches' worth, recorded faster than any writer can
/// insert it: all of it is stored, in a few seconds, and nothing is dropped.
fn a_burst_of_several_batches_is_written_whole(store: Store) {
    const EVENTS: usize = 20_000;
    let now = SystemClock.now().as_secs();
    let audit = DieselAuditLog::start(
        store.pool.clone(),
        Duration::from_secs(86_400),
        Arc::new(SystemClock),
    );
    let user = Some(UserId::generate());
    for _ in 0..EVENTS {
        audit.record(event(now, user, AuditAction::SecretRead));
    }
    assert_eq!(audit.dropped(), 0, "the queue holds a burst this size");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while audit_rows(&store.pool) < EVENTS as i64 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {EVENTS} events stored after 30 s",
            audit_rows(&store.pool)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(audit_rows(&store.pool), EVENTS as i64);
    assert_eq!(audit.dropped(), 0);
}

fn dropping_the_audit_log_writes_what_is_queued(store: Store) {
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

/// Several instances starting at once on a new database: one migrates, the
/// others wait for it and find nothing left to do.
fn concurrent_migrations_all_succeed(database: TestDatabase) {
    let pools: Vec<DbPool> = (0..4)
        .map(|_| db::connect(database.url(), 1, Duration::from_secs(10)).unwrap())
        .collect();
    let start = std::sync::Barrier::new(pools.len());
    let applied: Vec<Vec<String>> = std::thread::scope(|scope| {
        let runs: Vec<_> = pools
            .iter()
            .map(|pool| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    db::migrate(pool).unwrap()
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    let total: usize = applied.iter().map(Vec::len).sum();
    assert_eq!(total, 4, "each migration applied exactly once: {applied:?}");
    assert!(db::pending_migrations(&pools[0]).unwrap().is_empty());
}

mod fresh {
    use super::*;

    fn open_database(backend: TestBackend, test: &str) -> Option<TestDatabase> {
        TestDatabase::open(backend, test)
    }

    safebox_infra::backend_tests!(open_database => concurrent_migrations_all_succeed);
}

safebox_infra::backend_tests!(open_store =>
    created_users_are_found_by_email_username_and_id,
    a_user_is_found_with_its_data_key_in_one_lookup,
    accounts_without_email_coexist_and_data_and_passwords_are_replaced,
    deleting_a_user_takes_its_data_key_secrets_and_sessions,
    sessions_are_stored_found_touched_listed_and_ended,
    refresh_tokens_rotate_once_and_a_replay_is_recognised,
    concurrent_rotations_of_one_token_let_exactly_one_win,
    unknown_users_are_none,
    duplicates_are_reported_by_field_and_leave_nothing_behind,
    a_data_key_id_clash_rolls_back_the_user_too,
    a_new_version_becomes_the_newest_and_keeps_created_at,
    secrets_are_per_owner_and_need_an_existing_owner,
    migrations_are_idempotent,
    roles_are_stored_and_set_by_username,
    audit_events_are_listed_newest_first_filtered_and_paginated,
    old_audit_events_are_pruned_at_start_and_on_demand,
    dropping_the_audit_log_writes_what_is_queued,
    a_burst_of_several_batches_is_written_whole,
    an_exhausted_pool_is_unavailable_not_a_hang,
);

/// `ssl_mode=required` must never end in a plaintext connection: either the
/// connection is encrypted, or opening the database fails saying why.
#[cfg(feature = "mysql")]
#[test]
fn mysql_ssl_mode_required_never_connects_in_plaintext() {
    use diesel::sql_types::Text;
    use diesel::{QueryableByName, RunQueryDsl};

    #[derive(QueryableByName)]
    struct Status {
        #[diesel(sql_type = Text)]
        #[diesel(column_name = "Value")]
        value: String,
    }
    let Some(database) = TestDatabase::mysql("mysql_ssl_mode_required_never_connects_in_plaintext")
    else {
        return;
    };
    let separator = if database.url().contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!("{}{separator}ssl_mode=required", database.url());
    match db::connect(&url, 1, Duration::from_secs(2)) {
        Ok(pool) => {
            let mut conn = pool.get().unwrap();
            let db::DbConnection::Mysql(conn) = &mut *conn else {
                panic!("a mysql:// URL opened something else")
            };
            let cipher: Vec<Status> = diesel::sql_query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                .load(conn)
                .unwrap();
            assert!(
                cipher.iter().any(|s| !s.value.is_empty()),
                "connected in plaintext"
            );
        }
        Err(err) => {
            let err = err.to_string().to_lowercase();
            assert!(
                err.contains("not encrypted") || err.contains("ssl") || err.contains("tls"),
                "{err}"
            );
            assert!(
                !err.contains(":safebox_test@"),
                "the password is redacted: {err}"
            );
        }
    }
}
