//! The vault's repositories (versioned secrets, and data keys as key rotation sees
//! them), including the migration that turns existing secrets into version 1 of
//! themselves. Written once and run against every backend: a fresh SQLite file
//! always, and a fresh MySQL database when `SAFEBOX_TEST_MYSQL_URL` is set (see
//! `safebox_infra::testing`).

use std::collections::BTreeMap;
use std::sync::Barrier;
use std::time::Duration;

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use safebox_domain::ports::{
    DataKeyRepository, SecretRepository, UserRepository, VersionWrite, WriteOutcome,
};
use safebox_domain::{
    DataKeyId, Email, KeyId, NewUser, PasswordHash, Role, SealedData, Secret, SecretListQuery,
    SecretMetadata, SecretName, SecretVersion, StoredVersion, Timestamp, User, UserData, UserId,
    Username, WrappedDataKey,
};
use safebox_infra::db::{self, DbConnection, DbPool};
use safebox_infra::testing::{TestBackend, TestDatabase};
use safebox_infra::{DieselSecretRepository, DieselUserRepository};

// ---------------------------------------------------------------------------
// Fixtures (the few needed, copied from repositories.rs)

struct Store {
    db: TestDatabase,
    pool: DbPool,
    users: DieselUserRepository,
    secrets: DieselSecretRepository,
}

impl Store {
    fn url(&self) -> String {
        self.db.url().to_owned()
    }

    /// Another store on a fresh database of the same backend.
    fn fresh(&self, test: &str) -> Store {
        open_store(self.db.backend(), test).expect("the backend was available a moment ago")
    }
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
        pool,
    })
}

/// A fresh database without any migration applied.
fn open_database(backend: TestBackend, test: &str) -> Option<TestDatabase> {
    TestDatabase::open(backend, test)
}

/// A new account whose data key the master key `master` wraps.
fn new_user_under(name: &str, master: &str) -> NewUser {
    NewUser {
        user: User {
            id: UserId::generate(),
            username: Username::parse(name).unwrap(),
            email: Some(Email::parse(&format!("{name}@example.com")).unwrap()),
            password_hash: PasswordHash(format!("$2b$04$hash-of-{name}")),
            role: Role::User,
            data: UserData::parse(format!(r#"{{"name":"{name}"}}"#)).unwrap(),
            created_at: Timestamp(1_700_000_000),
        },
        data_key: WrappedDataKey {
            id: DataKeyId::generate(),
            sealed: SealedData {
                key_id: KeyId(master.into()),
                bytes: format!("data key of {name} under {master}").into_bytes(),
            },
        },
    }
}

/// Creates an account and returns its id.
fn user(store: &Store, name: &str) -> UserId {
    let new = new_user_under(name, "mk-test");
    store.users.create(&new).unwrap();
    new.user.id
}

fn name(raw: &str) -> SecretName {
    SecretName::parse(raw).unwrap()
}

fn sealed(bytes: &[u8]) -> SealedData {
    SealedData {
        key_id: KeyId("dk-1".into()),
        bytes: bytes.to_vec(),
    }
}

fn meta(pairs: &[(&str, &str)]) -> SecretMetadata {
    SecretMetadata::parse(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    )
    .unwrap()
}

/// A write of `bytes` to `owner`'s `secret`, based on `base`, keeping 10 versions
/// and allowing 100 secrets; tests change the fields they need.
fn version_write(
    owner: UserId,
    secret: &str,
    base: Option<u64>,
    bytes: &[u8],
    at: i64,
) -> VersionWrite {
    VersionWrite {
        owner,
        name: name(secret),
        base: base.map(SecretVersion),
        sealed: sealed(bytes),
        metadata: None,
        now: Timestamp(at),
        keep_versions: 10,
        max_secrets: 100,
    }
}

/// The secret a write stored; panics on any other outcome.
fn written(outcome: WriteOutcome) -> Secret {
    match outcome {
        WriteOutcome::Written(secret) => secret,
        other => panic!("expected Written, got {other:?}"),
    }
}

/// Writes `bytes` as the next version of `owner`'s `secret` (creating it if needed).
fn put(store: &Store, owner: UserId, secret: &str, bytes: &[u8], at: i64) -> Secret {
    let base = store
        .secrets
        .find(&owner, &name(secret))
        .unwrap()
        .map(|found| found.version.0);
    written(
        store
            .secrets
            .write(&version_write(owner, secret, base, bytes, at))
            .unwrap(),
    )
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows of `table` (`secrets` or `secret_versions`) that belong to `owner`,
/// counted in SQL rather than through the repository.
fn rows_of(pool: &DbPool, table: &str, owner: UserId) -> i64 {
    let mut conn = pool.get().unwrap();
    diesel::sql_query(format!(
        "SELECT COUNT(*) AS n FROM {table} WHERE user_id = ?"
    ))
    .bind::<Text, _>(owner.to_string())
    .get_result::<Count>(&mut *conn)
    .unwrap()
    .n
}

/// The stored version rows of one secret, counted in SQL.
fn version_rows(pool: &DbPool, owner: UserId, secret: &str) -> i64 {
    let mut conn = pool.get().unwrap();
    diesel::sql_query("SELECT COUNT(*) AS n FROM secret_versions WHERE user_id = ? AND name = ?")
        .bind::<Text, _>(owner.to_string())
        .bind::<Text, _>(secret)
        .get_result::<Count>(&mut *conn)
        .unwrap()
        .n
}

fn stored_bytes(
    store: &Store,
    owner: UserId,
    secret: &str,
    version: Option<u64>,
) -> Option<Vec<u8>> {
    let (_, stored) = store
        .secrets
        .read(&owner, &name(secret), version.map(SecretVersion))
        .unwrap()
        .expect("the secret exists");
    stored.map(|stored| stored.sealed.bytes)
}

// ---------------------------------------------------------------------------
// write: creating

fn creating_writes_version_1_and_creating_again_conflicts_even_when_soft_deleted(store: Store) {
    let alice = user(&store, "alice");
    let created = written(
        store
            .secrets
            .write(&version_write(alice, "team/db", None, b"v1", 100))
            .unwrap(),
    );
    assert_eq!(
        created,
        Secret {
            owner: alice,
            name: name("team/db"),
            version: SecretVersion(1),
            oldest_version: SecretVersion(1),
            metadata: SecretMetadata::default(),
            created_at: Timestamp(100),
            updated_at: Timestamp(100),
            deleted_at: None,
        }
    );
    assert_eq!(
        store.secrets.find(&alice, &name("team/db")).unwrap(),
        Some(created.clone())
    );
    assert_eq!(version_rows(&store.pool, alice, "team/db"), 1);

    // A second create, even with other metadata, changes nothing.
    let mut again = version_write(alice, "team/db", None, b"other", 200);
    again.metadata = Some(meta(&[("k", "v")]));
    assert_eq!(store.secrets.write(&again).unwrap(), WriteOutcome::Conflict);
    assert_eq!(
        store.secrets.find(&alice, &name("team/db")).unwrap(),
        Some(created.clone())
    );
    assert_eq!(stored_bytes(&store, alice, "team/db", None).unwrap(), b"v1");
    assert_eq!(version_rows(&store.pool, alice, "team/db"), 1);

    // A soft-deleted secret still exists for a create (Vault's cas=0).
    store
        .secrets
        .set_deleted(&alice, &name("team/db"), Some(Timestamp(300)))
        .unwrap()
        .unwrap();
    assert_eq!(store.secrets.write(&again).unwrap(), WriteOutcome::Conflict);
    let after = store
        .secrets
        .find(&alice, &name("team/db"))
        .unwrap()
        .unwrap();
    assert_eq!(after.deleted_at, Some(Timestamp(300)));
    assert_eq!(after.version, SecretVersion(1));
    assert_eq!(version_rows(&store.pool, alice, "team/db"), 1);
}

fn a_new_secret_gets_the_given_metadata_and_names_are_per_owner(store: Store) {
    let alice = user(&store, "alice");
    let bob = user(&store, "bob");
    let mut write = version_write(alice, "api", None, b"a", 10);
    write.metadata = Some(meta(&[("description", "prod"), ("owner", "team-a")]));
    let created = written(store.secrets.write(&write).unwrap());
    assert_eq!(
        created.metadata,
        meta(&[("description", "prod"), ("owner", "team-a")])
    );
    // Bob's secret of the same name is another secret.
    let bobs = written(
        store
            .secrets
            .write(&version_write(bob, "api", None, b"b", 20))
            .unwrap(),
    );
    assert_eq!(bobs.version, SecretVersion(1));
    assert_eq!(bobs.metadata, SecretMetadata::default());
    assert_eq!(stored_bytes(&store, alice, "api", None).unwrap(), b"a");
    assert_eq!(stored_bytes(&store, bob, "api", None).unwrap(), b"b");
}

fn writing_for_an_owner_that_does_not_exist_is_an_error(store: Store) {
    let nobody = UserId::generate();
    assert!(
        store
            .secrets
            .write(&version_write(nobody, "x", None, b"orphan", 1))
            .is_err()
    );
    assert_eq!(rows_of(&store.pool, "secrets", nobody), 0);
    assert_eq!(rows_of(&store.pool, "secret_versions", nobody), 0);
}

fn the_secret_limit_counts_soft_deleted_secrets_and_only_applies_to_creates(store: Store) {
    let alice = user(&store, "alice");
    let bob = user(&store, "bob");
    let at_most_two = |owner, secret: &str, base| {
        let mut write = version_write(owner, secret, base, secret.as_bytes(), 10);
        write.max_secrets = 2;
        write
    };
    written(store.secrets.write(&at_most_two(alice, "a", None)).unwrap());
    written(store.secrets.write(&at_most_two(alice, "b", None)).unwrap());
    assert_eq!(
        store.secrets.write(&at_most_two(alice, "c", None)).unwrap(),
        WriteOutcome::TooManySecrets
    );
    assert_eq!(store.secrets.find(&alice, &name("c")).unwrap(), None);
    assert_eq!(version_rows(&store.pool, alice, "c"), 0);

    // A soft-deleted secret still counts.
    store
        .secrets
        .set_deleted(&alice, &name("b"), Some(Timestamp(20)))
        .unwrap()
        .unwrap();
    assert_eq!(
        store.secrets.write(&at_most_two(alice, "c", None)).unwrap(),
        WriteOutcome::TooManySecrets
    );

    // New versions of existing secrets are not creates.
    let next = written(
        store
            .secrets
            .write(&at_most_two(alice, "a", Some(1)))
            .unwrap(),
    );
    assert_eq!(next.version, SecretVersion(2));
    // Another owner has a limit of its own.
    written(store.secrets.write(&at_most_two(bob, "c", None)).unwrap());

    // Destroying one makes room.
    assert!(store.secrets.destroy(&alice, &name("b")).unwrap());
    written(store.secrets.write(&at_most_two(alice, "c", None)).unwrap());
    assert_eq!(rows_of(&store.pool, "secrets", alice), 2);
}

// ---------------------------------------------------------------------------
// write: new versions

fn a_new_version_keeps_created_at_moves_updated_at_and_keeps_or_replaces_metadata(store: Store) {
    let alice = user(&store, "alice");
    let mut create = version_write(alice, "db", None, b"v1", 100);
    create.metadata = Some(meta(&[("description", "prod db")]));
    written(store.secrets.write(&create).unwrap());

    // metadata None keeps what is stored.
    let second = written(
        store
            .secrets
            .write(&version_write(alice, "db", Some(1), b"v2", 200))
            .unwrap(),
    );
    assert_eq!(second.version, SecretVersion(2));
    assert_eq!(second.oldest_version, SecretVersion(1));
    assert_eq!(second.created_at, Timestamp(100));
    assert_eq!(second.updated_at, Timestamp(200));
    assert_eq!(second.metadata, meta(&[("description", "prod db")]));
    assert_eq!(
        store.secrets.find(&alice, &name("db")).unwrap(),
        Some(second)
    );

    // metadata Some replaces it entirely (no merge).
    let mut replace = version_write(alice, "db", Some(2), b"v3", 300);
    replace.metadata = Some(meta(&[("owner", "team-b")]));
    let third = written(store.secrets.write(&replace).unwrap());
    assert_eq!(third.metadata, meta(&[("owner", "team-b")]));
    assert_eq!(third.created_at, Timestamp(100));
    assert_eq!(third.updated_at, Timestamp(300));

    // Some(empty) clears it.
    let mut clear = version_write(alice, "db", Some(3), b"v4", 400);
    clear.metadata = Some(SecretMetadata::default());
    let fourth = written(store.secrets.write(&clear).unwrap());
    assert_eq!(fourth.metadata, SecretMetadata::default());

    // Every version keeps its own write time.
    for (version, at) in [(1, 100), (2, 200), (3, 300), (4, 400)] {
        let (secret, stored) = store
            .secrets
            .read(&alice, &name("db"), Some(SecretVersion(version)))
            .unwrap()
            .unwrap();
        assert_eq!(secret, fourth);
        let stored = stored.unwrap();
        assert_eq!(stored.version, SecretVersion(version));
        assert_eq!(stored.created_at, Timestamp(at));
        assert_eq!(stored.sealed.bytes, format!("v{version}").into_bytes());
    }
}

fn writing_a_soft_deleted_secret_restores_it(store: Store) {
    let alice = user(&store, "alice");
    put(&store, alice, "db", b"v1", 100);
    let deleted = store
        .secrets
        .set_deleted(&alice, &name("db"), Some(Timestamp(150)))
        .unwrap()
        .unwrap();
    assert_eq!(deleted.deleted_at, Some(Timestamp(150)));
    let restored = written(
        store
            .secrets
            .write(&version_write(alice, "db", Some(1), b"v2", 200))
            .unwrap(),
    );
    assert_eq!(restored.deleted_at, None);
    assert!(restored.is_live());
    assert_eq!(restored.version, SecretVersion(2));
    assert_eq!(
        store
            .secrets
            .find(&alice, &name("db"))
            .unwrap()
            .unwrap()
            .deleted_at,
        None
    );

    // Also when the write replaces the metadata.
    store
        .secrets
        .set_deleted(&alice, &name("db"), Some(Timestamp(250)))
        .unwrap()
        .unwrap();
    let mut write = version_write(alice, "db", Some(2), b"v3", 300);
    write.metadata = Some(meta(&[("k", "v")]));
    let restored = written(store.secrets.write(&write).unwrap());
    assert_eq!(restored.deleted_at, None);
    assert_eq!(restored.metadata, meta(&[("k", "v")]));
    assert_eq!(
        store.secrets.find(&alice, &name("db")).unwrap(),
        Some(restored)
    );
}

fn a_write_on_a_version_that_is_not_the_newest_conflicts_and_changes_nothing(store: Store) {
    let alice = user(&store, "alice");
    put(&store, alice, "db", b"v1", 100);
    put(&store, alice, "db", b"v2", 200);
    store
        .secrets
        .set_deleted(&alice, &name("db"), Some(Timestamp(250)))
        .unwrap();
    let before = store.secrets.find(&alice, &name("db")).unwrap().unwrap();

    for base in [1, 3, 99] {
        let mut stale = version_write(alice, "db", Some(base), b"lost", 300);
        stale.metadata = Some(meta(&[("k", "v")]));
        stale.keep_versions = 1;
        assert_eq!(
            store.secrets.write(&stale).unwrap(),
            WriteOutcome::Conflict,
            "base {base}"
        );
    }
    // Not the header (version, times, metadata, deletion), not the versions.
    assert_eq!(
        store.secrets.find(&alice, &name("db")).unwrap(),
        Some(before)
    );
    assert_eq!(version_rows(&store.pool, alice, "db"), 2);
    assert_eq!(stored_bytes(&store, alice, "db", None).unwrap(), b"v2");
    assert_eq!(stored_bytes(&store, alice, "db", Some(1)).unwrap(), b"v1");

    // A secret that does not exist (never, or no longer) has no version to match.
    assert_eq!(
        store
            .secrets
            .write(&version_write(alice, "nope", Some(1), b"x", 300))
            .unwrap(),
        WriteOutcome::Conflict
    );
    assert_eq!(store.secrets.find(&alice, &name("nope")).unwrap(), None);
    assert_eq!(version_rows(&store.pool, alice, "nope"), 0);
    assert!(store.secrets.destroy(&alice, &name("db")).unwrap());
    assert_eq!(
        store
            .secrets
            .write(&version_write(alice, "db", Some(2), b"x", 300))
            .unwrap(),
        WriteOutcome::Conflict
    );
    assert_eq!(store.secrets.find(&alice, &name("db")).unwrap(), None);
    assert_eq!(version_rows(&store.pool, alice, "db"), 0);
}

fn only_the_newest_keep_versions_are_kept_also_when_the_limit_changes(store: Store) {
    let alice = user(&store, "alice");
    let write = |base: Option<u64>, keep: u64| {
        let version = base.map_or(1, |base| base + 1);
        let mut write = version_write(
            alice,
            "db",
            base,
            format!("v{version}").as_bytes(),
            i64::try_from(version).unwrap() * 100,
        );
        write.keep_versions = keep;
        written(store.secrets.write(&write).unwrap())
    };
    let kept = |secret: &Secret| -> Vec<u64> {
        (1..=secret.version.0 + 1)
            .filter(|&version| stored_bytes(&store, alice, "db", Some(version)).is_some())
            .collect()
    };

    write(None, 3);
    write(Some(1), 3);
    let third = write(Some(2), 3);
    assert_eq!(third.oldest_version, SecretVersion(1));
    assert_eq!(kept(&third), [1, 2, 3]);
    write(Some(3), 3);
    let fifth = write(Some(4), 3);
    assert_eq!(fifth.version, SecretVersion(5));
    assert_eq!(fifth.oldest_version, SecretVersion(3));
    assert_eq!(kept(&fifth), [3, 4, 5]);
    assert_eq!(version_rows(&store.pool, alice, "db"), 3);
    // A version that is no longer kept: the secret, without a version.
    let (secret, version) = store
        .secrets
        .read(&alice, &name("db"), Some(SecretVersion(1)))
        .unwrap()
        .unwrap();
    assert_eq!(secret, fifth);
    assert_eq!(version, None);
    assert_eq!(stored_bytes(&store, alice, "db", Some(4)).unwrap(), b"v4");

    // Raised to 5: nothing more is pruned until there are 5.
    let sixth = write(Some(5), 5);
    assert_eq!(sixth.oldest_version, SecretVersion(3));
    let seventh = write(Some(6), 5);
    assert_eq!(seventh.oldest_version, SecretVersion(3));
    assert_eq!(kept(&seventh), [3, 4, 5, 6, 7]);
    let eighth = write(Some(7), 5);
    assert_eq!(eighth.oldest_version, SecretVersion(4));
    assert_eq!(kept(&eighth), [4, 5, 6, 7, 8]);
    assert_eq!(
        store.secrets.find(&alice, &name("db")).unwrap(),
        Some(eighth)
    );

    // Lowered to 1: only the new version is left.
    let ninth = write(Some(8), 1);
    assert_eq!(ninth.oldest_version, SecretVersion(9));
    assert_eq!(kept(&ninth), [9]);
    assert_eq!(version_rows(&store.pool, alice, "db"), 1);
}

fn pruning_one_secret_leaves_the_others_alone(store: Store) {
    let alice = user(&store, "alice");
    let bob = user(&store, "bob");
    for at in 1..=3 {
        put(&store, alice, "db", b"a", at);
        put(&store, alice, "db2", b"b", at);
        put(&store, bob, "db", b"c", at);
    }
    let mut prune = version_write(alice, "db", Some(3), b"a4", 10);
    prune.keep_versions = 1;
    written(store.secrets.write(&prune).unwrap());
    assert_eq!(version_rows(&store.pool, alice, "db"), 1);
    assert_eq!(version_rows(&store.pool, alice, "db2"), 3);
    assert_eq!(version_rows(&store.pool, bob, "db"), 3);
}

// ---------------------------------------------------------------------------
// write: concurrency

/// Runs `write` on each repository from its own thread, all released at once.
fn race(
    repos: Vec<DieselSecretRepository>,
    write: impl Fn(usize) -> VersionWrite + Sync,
) -> Vec<WriteOutcome> {
    let start = Barrier::new(repos.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = repos
            .into_iter()
            .enumerate()
            .map(|(i, repo)| {
                let (start, write) = (&start, &write);
                scope.spawn(move || {
                    let write = write(i);
                    start.wait();
                    repo.write(&write).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

const RACERS: usize = 8;

/// Repositories on separate pools of the same file (as separate processes would
/// be), each pool already connected.
fn separate_pools(store: &Store) -> Vec<DieselSecretRepository> {
    (0..RACERS)
        .map(|_| {
            let pool = db::connect(&store.url(), 1, Duration::from_secs(10)).unwrap();
            drop(pool.get().unwrap());
            DieselSecretRepository::new(pool)
        })
        .collect()
}

/// Clones of one repository (as one server's request threads share it).
fn shared_pool(store: &Store) -> Vec<DieselSecretRepository> {
    (0..RACERS).map(|_| store.secrets.clone()).collect()
}

fn winners(outcomes: &[WriteOutcome]) -> Vec<Secret> {
    outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            WriteOutcome::Written(secret) => Some(secret.clone()),
            _ => None,
        })
        .collect()
}

fn of_concurrent_writes_on_the_same_version_exactly_one_wins(first: Store) {
    for (setup, repos) in [
        (
            "shared pool",
            shared_pool as fn(&Store) -> Vec<DieselSecretRepository>,
        ),
        ("separate pools", separate_pools),
    ] {
        let store = first.fresh(setup);
        let alice = user(&store, "alice");
        put(&store, alice, "db", b"v1", 1);
        let outcomes = race(repos(&store), |i| {
            version_write(alice, "db", Some(1), format!("writer {i}").as_bytes(), 2)
        });
        let won = winners(&outcomes);
        assert_eq!(won.len(), 1, "{setup}: {outcomes:?}");
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == WriteOutcome::Conflict)
                .count(),
            RACERS - 1,
            "{setup}: {outcomes:?}"
        );
        assert_eq!(won[0].version, SecretVersion(2), "{setup}");
        // What is stored is the winner's, once.
        let winner = outcomes
            .iter()
            .position(|o| matches!(o, WriteOutcome::Written(_)))
            .unwrap();
        assert_eq!(
            stored_bytes(&store, alice, "db", None).unwrap(),
            format!("writer {winner}").into_bytes(),
            "{setup}"
        );
        assert_eq!(version_rows(&store.pool, alice, "db"), 2, "{setup}");
        assert_eq!(
            store.secrets.find(&alice, &name("db")).unwrap(),
            Some(won[0].clone()),
            "{setup}"
        );
    }
}

fn of_concurrent_creates_of_one_name_exactly_one_wins(first: Store) {
    for (setup, repos) in [
        (
            "shared pool",
            shared_pool as fn(&Store) -> Vec<DieselSecretRepository>,
        ),
        ("separate pools", separate_pools),
    ] {
        let store = first.fresh(setup);
        let alice = user(&store, "alice");
        let outcomes = race(repos(&store), |i| {
            version_write(alice, "new", None, format!("creator {i}").as_bytes(), 1)
        });
        let won = winners(&outcomes);
        assert_eq!(won.len(), 1, "{setup}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, WriteOutcome::Written(_) | WriteOutcome::Conflict)),
            "{setup}: {outcomes:?}"
        );
        assert_eq!(won[0].version, SecretVersion(1));
        let winner = outcomes
            .iter()
            .position(|o| matches!(o, WriteOutcome::Written(_)))
            .unwrap();
        assert_eq!(
            stored_bytes(&store, alice, "new", None).unwrap(),
            format!("creator {winner}").into_bytes(),
            "{setup}"
        );
        assert_eq!(version_rows(&store.pool, alice, "new"), 1, "{setup}");
    }
}

fn concurrent_creates_of_different_names_respect_the_secret_limit(first: Store) {
    for (setup, repos) in [
        (
            "shared pool",
            shared_pool as fn(&Store) -> Vec<DieselSecretRepository>,
        ),
        ("separate pools", separate_pools),
    ] {
        let store = first.fresh(setup);
        let alice = user(&store, "alice");
        put(&store, alice, "existing", b"x", 1);
        let outcomes = race(repos(&store), |i| {
            let mut write = version_write(alice, &format!("s{i}"), None, b"x", 2);
            write.max_secrets = 3;
            write
        });
        assert_eq!(winners(&outcomes).len(), 2, "{setup}: {outcomes:?}");
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == WriteOutcome::TooManySecrets)
                .count(),
            RACERS - 2,
            "{setup}: {outcomes:?}"
        );
        assert_eq!(rows_of(&store.pool, "secrets", alice), 3, "{setup}");
    }
}

// ---------------------------------------------------------------------------
// read

fn read_returns_the_header_with_the_newest_or_the_asked_version(store: Store) {
    let alice = user(&store, "alice");
    let bob = user(&store, "bob");
    put(&store, alice, "db", b"first", 100);
    let newest = put(&store, alice, "db", b"second", 200);

    let (secret, stored) = store
        .secrets
        .read(&alice, &name("db"), None)
        .unwrap()
        .unwrap();
    assert_eq!(secret, newest);
    assert_eq!(
        stored,
        Some(StoredVersion {
            version: SecretVersion(2),
            sealed: sealed(b"second"),
            created_at: Timestamp(200),
        })
    );
    // An older version comes with the same header (the newest version's).
    let (secret, stored) = store
        .secrets
        .read(&alice, &name("db"), Some(SecretVersion(1)))
        .unwrap()
        .unwrap();
    assert_eq!(secret, newest);
    assert_eq!(
        stored,
        Some(StoredVersion {
            version: SecretVersion(1),
            sealed: sealed(b"first"),
            created_at: Timestamp(100),
        })
    );
    // A version never written.
    let (secret, stored) = store
        .secrets
        .read(&alice, &name("db"), Some(SecretVersion(3)))
        .unwrap()
        .unwrap();
    assert_eq!(secret, newest);
    assert_eq!(stored, None);

    // No such secret, or somebody else's.
    assert_eq!(
        store.secrets.read(&alice, &name("dbx"), None).unwrap(),
        None
    );
    assert_eq!(store.secrets.read(&alice, &name("d"), None).unwrap(), None);
    assert_eq!(store.secrets.read(&bob, &name("db"), None).unwrap(), None);
    assert_eq!(
        store
            .secrets
            .read(&bob, &name("db"), Some(SecretVersion(1)))
            .unwrap(),
        None
    );
    assert_eq!(store.secrets.find(&bob, &name("db")).unwrap(), None);

    // A soft-deleted secret is still read (the use case decides), marked deleted.
    store
        .secrets
        .set_deleted(&alice, &name("db"), Some(Timestamp(300)))
        .unwrap();
    let (secret, stored) = store
        .secrets
        .read(&alice, &name("db"), None)
        .unwrap()
        .unwrap();
    assert_eq!(secret.deleted_at, Some(Timestamp(300)));
    assert_eq!(stored.unwrap().sealed.bytes, b"second");
}

// ---------------------------------------------------------------------------
// list

fn list_query(prefix: &str, after: Option<&str>, limit: usize, deleted: bool) -> SecretListQuery {
    SecretListQuery {
        prefix: prefix.to_owned(),
        after: after.map(name),
        limit,
        include_deleted: deleted,
    }
}

fn names(secrets: &[Secret]) -> Vec<&str> {
    secrets.iter().map(|secret| secret.name.as_str()).collect()
}

fn list_is_in_byte_order_and_a_prefix_is_literal_and_case_sensitive(store: Store) {
    let alice = user(&store, "alice");
    let bob = user(&store, "bob");
    let all = [
        "team/db", "a_b", "B", "aXb", "a.c", "aZc", "team_db", "Team/db", "a-b", "ab", "a/x",
        "team/dbx", "teamXdb", "team.db", "a", "Z", "0", "teamdb", "team-db", "tea",
    ];
    for secret in all {
        put(&store, alice, secret, b"x", 1);
    }
    put(&store, bob, "team/bob", b"x", 1);
    let list = |prefix: &str| {
        store
            .secrets
            .list(&alice, &list_query(prefix, None, 200, false))
            .unwrap()
    };

    let mut sorted = all.to_vec();
    sorted.sort_unstable(); // byte order for ASCII
    let listed = list("");
    assert_eq!(names(&listed), sorted);
    assert!(listed.iter().all(|secret| secret.owner == alice));
    assert_eq!(
        names(&listed)[..6],
        ["0", "B", "Team/db", "Z", "a", "a-b"],
        "upper case before lower case, '-' before '.' before '/'"
    );

    // '_' is no wildcard, '.' no pattern.
    assert_eq!(names(&list("a_")), ["a_b"]);
    assert_eq!(names(&list("team_")), ["team_db"]);
    assert_eq!(names(&list("team.")), ["team.db"]);
    // A folder, and a prefix that is also a whole name.
    assert_eq!(names(&list("team/")), ["team/db", "team/dbx"]);
    assert_eq!(names(&list("team/db")), ["team/db", "team/dbx"]);
    assert_eq!(
        names(&list("team")),
        [
            "team-db", "team.db", "team/db", "team/dbx", "teamXdb", "team_db", "teamdb"
        ]
    );
    assert_eq!(names(&list("tea")).len(), 8);
    // Case-sensitive.
    assert_eq!(names(&list("Team")), ["Team/db"]);
    assert_eq!(names(&list("TEAM")), Vec::<&str>::new());
    assert_eq!(names(&list("A")), Vec::<&str>::new());
    assert_eq!(names(&list("aX")), ["aXb"]);
    assert_eq!(
        names(&list("a")),
        ["a", "a-b", "a.c", "a/x", "aXb", "aZc", "a_b", "ab"]
    );
    assert_eq!(names(&list("zzz")), Vec::<&str>::new());
}

fn list_pages_with_after_and_limit_and_leaves_out_soft_deleted_by_default(store: Store) {
    let alice = user(&store, "alice");
    let bob = user(&store, "bob");
    for i in 0..10 {
        put(&store, alice, &format!("n{i:02}"), b"x", 1);
    }
    put(&store, alice, "other", b"x", 1);
    put(&store, bob, "n99", b"x", 1);
    for deleted in ["n03", "n04", "n09"] {
        store
            .secrets
            .set_deleted(&alice, &name(deleted), Some(Timestamp(5)))
            .unwrap()
            .unwrap();
    }

    let pages = |limit: usize, deleted: bool| {
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .secrets
                .list(&alice, &list_query("n", after.as_deref(), limit, deleted))
                .unwrap();
            assert!(page.len() <= limit);
            if page.is_empty() {
                break;
            }
            sizes.push(page.len());
            assert!(sizes.len() <= 10, "paging does not end: {sizes:?}");
            after = Some(page.last().unwrap().name.as_str().to_owned());
            seen.extend(
                page.into_iter()
                    .map(|s| (s.name.as_str().to_owned(), s.deleted_at)),
            );
        }
        (seen, sizes)
    };

    let (live, sizes) = pages(3, false);
    assert_eq!(
        live.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["n00", "n01", "n02", "n05", "n06", "n07", "n08"]
    );
    assert!(live.iter().all(|(_, deleted_at)| deleted_at.is_none()));
    assert_eq!(sizes, [3, 3, 1]);

    let (everything, sizes) = pages(4, true);
    assert_eq!(
        everything
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        [
            "n00", "n01", "n02", "n03", "n04", "n05", "n06", "n07", "n08", "n09"
        ]
    );
    assert_eq!(sizes, [4, 4, 2]);
    for (secret, deleted_at) in &everything {
        let expected = ["n03", "n04", "n09"]
            .contains(&secret.as_str())
            .then_some(Timestamp(5));
        assert_eq!(*deleted_at, expected, "{secret}");
    }

    // `after` need not be a listed (or existing) name.
    let page = store
        .secrets
        .list(&alice, &list_query("", Some("n03"), 2, false))
        .unwrap();
    assert_eq!(names(&page), ["n05", "n06"]);
    let page = store
        .secrets
        .list(&alice, &list_query("", Some("n085"), 10, false))
        .unwrap();
    assert_eq!(names(&page), ["other"]);
    let page = store
        .secrets
        .list(&alice, &list_query("", Some("zzz"), 10, true))
        .unwrap();
    assert!(page.is_empty());
    // A limit of 1.
    let page = store
        .secrets
        .list(&alice, &list_query("", None, 1, true))
        .unwrap();
    assert_eq!(names(&page), ["n00"]);
}

fn list_shows_each_secrets_header(store: Store) {
    let alice = user(&store, "alice");
    let mut create = version_write(alice, "db", None, b"v1", 100);
    create.metadata = Some(meta(&[("description", "prod")]));
    written(store.secrets.write(&create).unwrap());
    for base in 1..=3 {
        let mut write = version_write(
            alice,
            "db",
            Some(base),
            b"v",
            100 + 100 * i64::try_from(base).unwrap(),
        );
        write.keep_versions = 2;
        written(store.secrets.write(&write).unwrap());
    }
    let listed = store
        .secrets
        .list(&alice, &list_query("", None, 10, false))
        .unwrap();
    assert_eq!(
        listed,
        [Secret {
            owner: alice,
            name: name("db"),
            version: SecretVersion(4),
            oldest_version: SecretVersion(3),
            metadata: meta(&[("description", "prod")]),
            created_at: Timestamp(100),
            updated_at: Timestamp(400),
            deleted_at: None,
        }]
    );
}

// ---------------------------------------------------------------------------
// set_deleted and destroy

fn soft_delete_keeps_the_first_time_and_none_restores(store: Store) {
    let alice = user(&store, "alice");
    let bob = user(&store, "bob");
    let live = put(&store, alice, "db", b"v1", 100);
    put(&store, bob, "db", b"b", 100);

    let deleted = store
        .secrets
        .set_deleted(&alice, &name("db"), Some(Timestamp(200)))
        .unwrap()
        .unwrap();
    assert_eq!(
        deleted,
        Secret {
            deleted_at: Some(Timestamp(200)),
            ..live.clone()
        }
    );
    assert!(!deleted.is_live());
    // Deleting again keeps the first time.
    let again = store
        .secrets
        .set_deleted(&alice, &name("db"), Some(Timestamp(300)))
        .unwrap()
        .unwrap();
    assert_eq!(again.deleted_at, Some(Timestamp(200)));
    assert_eq!(
        store
            .secrets
            .find(&alice, &name("db"))
            .unwrap()
            .unwrap()
            .deleted_at,
        Some(Timestamp(200))
    );
    // The versions are kept; bob's secret of the same name is untouched.
    assert_eq!(stored_bytes(&store, alice, "db", Some(1)).unwrap(), b"v1");
    assert_eq!(
        store
            .secrets
            .find(&bob, &name("db"))
            .unwrap()
            .unwrap()
            .deleted_at,
        None
    );

    // None restores, as it was, and is idempotent.
    let restored = store
        .secrets
        .set_deleted(&alice, &name("db"), None)
        .unwrap()
        .unwrap();
    assert_eq!(restored, live);
    assert_eq!(
        store
            .secrets
            .set_deleted(&alice, &name("db"), None)
            .unwrap(),
        Some(live.clone())
    );
    // Deleting after a restore records the new time.
    let redeleted = store
        .secrets
        .set_deleted(&alice, &name("db"), Some(Timestamp(400)))
        .unwrap()
        .unwrap();
    assert_eq!(redeleted.deleted_at, Some(Timestamp(400)));

    // Unknown: None, and nothing created.
    for at in [Some(Timestamp(1)), None] {
        assert_eq!(
            store
                .secrets
                .set_deleted(&alice, &name("nope"), at)
                .unwrap(),
            None
        );
    }
    assert_eq!(store.secrets.find(&alice, &name("nope")).unwrap(), None);
    assert_eq!(
        store
            .secrets
            .set_deleted(&UserId::generate(), &name("db"), Some(Timestamp(1)))
            .unwrap(),
        None
    );
}

fn destroy_removes_the_secret_and_every_version(store: Store) {
    let alice = user(&store, "alice");
    let bob = user(&store, "bob");
    for at in 1..=3 {
        put(&store, alice, "db", b"a", at);
    }
    put(&store, alice, "db2", b"a", 1);
    put(&store, bob, "db", b"b", 1);
    assert_eq!(version_rows(&store.pool, alice, "db"), 3);

    assert!(store.secrets.destroy(&alice, &name("db")).unwrap());
    assert_eq!(store.secrets.find(&alice, &name("db")).unwrap(), None);
    assert_eq!(store.secrets.read(&alice, &name("db"), None).unwrap(), None);
    assert_eq!(version_rows(&store.pool, alice, "db"), 0);
    assert!(!store.secrets.destroy(&alice, &name("db")).unwrap());
    assert!(!store.secrets.destroy(&alice, &name("never")).unwrap());
    // Only that secret of that owner.
    assert_eq!(version_rows(&store.pool, alice, "db2"), 1);
    assert_eq!(version_rows(&store.pool, bob, "db"), 1);
    assert!(store.secrets.find(&bob, &name("db")).unwrap().is_some());

    // A soft-deleted secret is destroyed too.
    store
        .secrets
        .set_deleted(&alice, &name("db2"), Some(Timestamp(5)))
        .unwrap();
    assert!(store.secrets.destroy(&alice, &name("db2")).unwrap());
    assert_eq!(rows_of(&store.pool, "secrets", alice), 0);
    assert_eq!(rows_of(&store.pool, "secret_versions", alice), 0);

    // The name can be created again, from version 1.
    let again = written(
        store
            .secrets
            .write(&version_write(alice, "db", None, b"new", 10))
            .unwrap(),
    );
    assert_eq!(
        (again.version, again.oldest_version, again.created_at),
        (SecretVersion(1), SecretVersion(1), Timestamp(10))
    );
    assert_eq!(stored_bytes(&store, alice, "db", None).unwrap(), b"new");
}

fn deleting_the_user_takes_its_secrets_and_every_version(store: Store) {
    let alice = user(&store, "alice");
    let bob = user(&store, "bob");
    for at in 1..=3 {
        put(&store, alice, "db", b"a", at);
    }
    put(&store, alice, "gone", b"a", 1);
    store
        .secrets
        .set_deleted(&alice, &name("gone"), Some(Timestamp(2)))
        .unwrap();
    put(&store, bob, "db", b"b", 1);
    assert_eq!(rows_of(&store.pool, "secret_versions", alice), 4);

    assert!(store.users.delete(&alice).unwrap());
    assert_eq!(rows_of(&store.pool, "secrets", alice), 0);
    assert_eq!(rows_of(&store.pool, "secret_versions", alice), 0);
    assert_eq!(rows_of(&store.pool, "data_keys", alice), 0);
    assert_eq!(rows_of(&store.pool, "secrets", bob), 1);
    assert_eq!(rows_of(&store.pool, "secret_versions", bob), 1);
}

// ---------------------------------------------------------------------------
// DataKeyRepository

fn users_under(store: &Store, prefix: &str, master: &str, count: usize) -> Vec<NewUser> {
    (0..count)
        .map(|i| {
            let new = new_user_under(&format!("{prefix}{i}"), master);
            store.users.create(&new).unwrap();
            new
        })
        .collect()
}

fn data_keys_are_counted_by_master_key(store: Store) {
    assert_eq!(store.users.count_by_master_key().unwrap(), Vec::new());
    users_under(&store, "one", "k1", 3);
    users_under(&store, "two", "k2", 2);
    users_under(&store, "zero", "k0", 1);
    let mut counts = store.users.count_by_master_key().unwrap();
    counts.sort_by(|a, b| a.0.0.cmp(&b.0.0));
    assert_eq!(
        counts,
        [
            (KeyId("k0".into()), 1),
            (KeyId("k1".into()), 3),
            (KeyId("k2".into()), 2)
        ]
    );
    // A deleted account's data key is no longer counted.
    let gone = users_under(&store, "gone", "k0", 1);
    assert!(store.users.delete(&gone[0].user.id).unwrap());
    let mut counts = store.users.count_by_master_key().unwrap();
    counts.sort_by(|a, b| a.0.0.cmp(&b.0.0));
    assert_eq!(counts[0], (KeyId("k0".into()), 1));
}

fn not_wrapped_by_leaves_out_the_given_master_and_honours_the_limit(store: Store) {
    let old = users_under(&store, "old", "k1", 5);
    let new = users_under(&store, "new", "k2", 2);
    let expected = |users: &[NewUser]| {
        let mut pairs: Vec<(UserId, WrappedDataKey)> = users
            .iter()
            .map(|new| (new.user.id, new.data_key.clone()))
            .collect();
        pairs.sort_by_key(|(owner, _)| owner.0);
        pairs
    };
    let sorted = |mut pairs: Vec<(UserId, WrappedDataKey)>| {
        pairs.sort_by_key(|(owner, _)| owner.0);
        pairs
    };

    let pending = store.users.not_wrapped_by(&KeyId("k2".into()), 10).unwrap();
    assert_eq!(sorted(pending), expected(&old));
    let pending = store.users.not_wrapped_by(&KeyId("k1".into()), 10).unwrap();
    assert_eq!(sorted(pending), expected(&new));
    let mut all: Vec<NewUser> = old.clone();
    all.extend(new.iter().cloned());
    let pending = store
        .users
        .not_wrapped_by(&KeyId("k3".into()), 100)
        .unwrap();
    assert_eq!(sorted(pending), expected(&all));

    for limit in [0, 1, 2, 4] {
        let pending = store
            .users
            .not_wrapped_by(&KeyId("k2".into()), limit)
            .unwrap();
        assert_eq!(pending.len(), limit, "limit {limit}");
        assert!(
            pending
                .iter()
                .all(|(owner, key)| key.sealed.key_id == KeyId("k1".into())
                    && expected(&old).contains(&(*owner, key.clone()))),
            "limit {limit}"
        );
    }
}

fn replace_is_a_check_and_set_on_the_stored_wrapping(store: Store) {
    let alice = new_user_under("alice", "k1");
    let bob = new_user_under("bob", "k1");
    store.users.create(&alice).unwrap();
    store.users.create(&bob).unwrap();
    let owner = alice.user.id;
    let old = alice.data_key.clone();
    let new = WrappedDataKey {
        id: old.id,
        sealed: SealedData {
            key_id: KeyId("k2".into()),
            bytes: b"the same data key under k2".to_vec(),
        },
    };

    // The stored bytes differ.
    let stale = WrappedDataKey {
        sealed: SealedData {
            bytes: b"another wrapping".to_vec(),
            ..old.sealed.clone()
        },
        ..old.clone()
    };
    assert!(!store.users.replace(&owner, &stale, &new).unwrap());
    // The stored master key id differs.
    let other_master = WrappedDataKey {
        sealed: SealedData {
            key_id: KeyId("k0".into()),
            ..old.sealed.clone()
        },
        ..old.clone()
    };
    assert!(!store.users.replace(&owner, &other_master, &new).unwrap());
    // Another owner's key, or nobody's.
    assert!(!store.users.replace(&bob.user.id, &old, &new).unwrap());
    assert!(
        !store
            .users
            .replace(&UserId::generate(), &old, &new)
            .unwrap()
    );
    assert_eq!(store.users.data_key(&owner).unwrap(), Some(old.clone()));
    assert_eq!(
        store.users.data_key(&bob.user.id).unwrap(),
        Some(bob.data_key.clone())
    );

    // A re-wrapped key must be the same data key.
    let other_id = WrappedDataKey {
        id: DataKeyId::generate(),
        ..new.clone()
    };
    assert!(store.users.replace(&owner, &old, &other_id).is_err());
    assert_eq!(store.users.data_key(&owner).unwrap(), Some(old.clone()));

    // Once.
    assert!(store.users.replace(&owner, &old, &new).unwrap());
    assert_eq!(store.users.data_key(&owner).unwrap(), Some(new.clone()));
    assert!(!store.users.replace(&owner, &old, &new).unwrap());
    assert_eq!(store.users.data_key(&owner).unwrap(), Some(new.clone()));
    let (_, key) = store.users.find_with_data_key(&owner).unwrap().unwrap();
    assert_eq!(key, Some(new));
}

fn of_concurrent_replaces_of_one_data_key_exactly_one_wins(store: Store) {
    let alice = new_user_under("alice", "k1");
    store.users.create(&alice).unwrap();
    let old = alice.data_key.clone();
    let start = Barrier::new(RACERS);
    let results: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..RACERS)
            .map(|i| {
                let pool = db::connect(&store.url(), 1, Duration::from_secs(10)).unwrap();
                let users = DieselUserRepository::new(pool);
                let (start, old) = (&start, &old);
                let owner = alice.user.id;
                scope.spawn(move || {
                    let new = WrappedDataKey {
                        id: old.id,
                        sealed: SealedData {
                            key_id: KeyId(format!("k{}", i + 2)),
                            bytes: vec![u8::try_from(i).unwrap(); 8],
                        },
                    };
                    start.wait();
                    users.replace(&owner, old, &new).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|won| **won).count(), 1, "{results:?}");
    let winner = results.iter().position(|won| *won).unwrap();
    let stored = store.users.data_key(&alice.user.id).unwrap().unwrap();
    assert_eq!(stored.id, old.id);
    assert_eq!(stored.sealed.key_id, KeyId(format!("k{}", winner + 2)));
}

// ---------------------------------------------------------------------------
// The migration of existing secrets

/// Applies the first `count` migrations of the backend's own folder, then runs
/// `statements` on the same connection.
fn migrate_partly_then_run(pool: &DbPool, count: usize, statements: &[String]) {
    fn on<C>(conn: &mut C, folder: &str, count: usize, statements: &[String])
    where
        C: MigrationHarness<C::Backend> + diesel::Connection,
        for<'a> diesel::query_builder::SqlQuery: diesel::query_dsl::methods::ExecuteDsl<C>,
    {
        let migrations = FileBasedMigrations::from_path(format!(
            "{}/../../migrations/{folder}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        for _ in 0..count {
            conn.run_next_migration(migrations.clone()).unwrap();
        }
        let pending = conn.pending_migrations(migrations).unwrap();
        assert_eq!(pending.len(), 1, "only the vault migration is left");
        for statement in statements {
            assert!(diesel::sql_query(statement).execute(conn).unwrap() > 0);
        }
    }
    let mut conn = pool.get().unwrap();
    match &mut *conn {
        DbConnection::Sqlite(conn) => on(conn, "sqlite", count, statements),
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(conn) => on(conn, "mysql", count, statements),
    }
}

fn migrating_makes_every_existing_secret_version_1_of_itself(database: TestDatabase) {
    let pool = db::connect(database.url(), 2, Duration::from_secs(2)).unwrap();
    let alice = UserId::generate();
    let bob = UserId::generate();
    let (alice_key, bob_key) = (DataKeyId::generate(), DataKeyId::generate());
    let ciphertext = |seed: u8| -> Vec<u8> { (0..45).map(|i| seed.wrapping_mul(31) ^ i).collect() };
    let statements = [
        format!(
            "INSERT INTO users (id, username, email, password_hash, data, created_at) VALUES
             ('{alice}', 'alice', 'alice@example.com', '$2b$04$x', '{{}}', 1000),
             ('{bob}', 'bob', NULL, '$2b$04$y', '{{}}', 1001)"
        ),
        format!(
            "INSERT INTO data_keys (user_id, id, master_key_id, wrapped_key, created_at) VALUES
             ('{alice}', '{}', 'mk-old', X'0102', 1000),
             ('{bob}', '{}', 'mk-old', X'0304', 1001)",
            alice_key.0, bob_key.0
        ),
        format!(
            "INSERT INTO secrets (user_id, name, key_id, ciphertext, created_at, updated_at) VALUES
             ('{alice}', 'default', '{}', X'{}', 2000, 2500),
             ('{alice}', 'team/db', '{}', X'{}', 2100, 2100),
             ('{bob}', 'default', '{}', X'{}', 3000, 3300)",
            alice_key.0,
            hex::encode(ciphertext(1)),
            alice_key.0,
            hex::encode(ciphertext(2)),
            bob_key.0,
            hex::encode(ciphertext(3)),
        ),
    ];
    migrate_partly_then_run(&pool, 3, &statements);

    let applied = db::migrate(&pool).unwrap();
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert!(db::migrate(&pool).unwrap().is_empty());

    let secrets = DieselSecretRepository::new(pool.clone());
    let users = DieselUserRepository::new(pool.clone());
    for (owner, key, secret, seed, created, updated) in [
        (alice, alice_key, "default", 1, 2000, 2500),
        (alice, alice_key, "team/db", 2, 2100, 2100),
        (bob, bob_key, "default", 3, 3000, 3300),
    ] {
        let expected = Secret {
            owner,
            name: name(secret),
            version: SecretVersion(1),
            oldest_version: SecretVersion(1),
            metadata: SecretMetadata::default(),
            created_at: Timestamp(created),
            updated_at: Timestamp(updated),
            deleted_at: None,
        };
        let version = StoredVersion {
            version: SecretVersion(1),
            sealed: SealedData {
                key_id: key.as_key_id(),
                bytes: ciphertext(seed),
            },
            created_at: Timestamp(updated),
        };
        for asked in [None, Some(SecretVersion(1))] {
            assert_eq!(
                secrets.read(&owner, &name(secret), asked).unwrap(),
                Some((expected.clone(), Some(version.clone()))),
                "{secret} of {owner}, {asked:?}"
            );
        }
        assert_eq!(
            secrets
                .read(&owner, &name(secret), Some(SecretVersion(2)))
                .unwrap(),
            Some((expected.clone(), None))
        );
        assert!(
            secrets
                .list(&owner, &list_query("", None, 10, false))
                .unwrap()
                .contains(&expected)
        );
    }
    assert_eq!(rows_of(&pool, "secret_versions", alice), 2);
    assert_eq!(rows_of(&pool, "secret_versions", bob), 1);

    // The migrated secret takes new versions, and the data keys are untouched.
    let next = written(
        secrets
            .write(&version_write(alice, "default", Some(1), b"v2", 4000))
            .unwrap(),
    );
    assert_eq!(
        (next.version, next.oldest_version, next.created_at),
        (SecretVersion(2), SecretVersion(1), Timestamp(2000))
    );
    let key = users.data_key(&alice).unwrap().unwrap();
    assert_eq!(key.id, alice_key);
    assert_eq!(key.sealed.key_id, KeyId("mk-old".into()));
    assert_eq!(key.sealed.bytes, [1, 2]);
    assert_eq!(users.find_by_id(&alice).unwrap().unwrap().role, Role::User);

    // The migrated versions cascade with their secret and their owner.
    assert!(secrets.destroy(&alice, &name("team/db")).unwrap());
    assert_eq!(version_rows(&pool, alice, "team/db"), 0);
    assert!(users.delete(&bob).unwrap());
    assert_eq!(rows_of(&pool, "secret_versions", bob), 0);
    assert_eq!(rows_of(&pool, "secret_versions", alice), 2);
}

safebox_infra::backend_tests!(open_store =>
    creating_writes_version_1_and_creating_again_conflicts_even_when_soft_deleted,
    a_new_secret_gets_the_given_metadata_and_names_are_per_owner,
    writing_for_an_owner_that_does_not_exist_is_an_error,
    the_secret_limit_counts_soft_deleted_secrets_and_only_applies_to_creates,
    a_new_version_keeps_created_at_moves_updated_at_and_keeps_or_replaces_metadata,
    writing_a_soft_deleted_secret_restores_it,
    a_write_on_a_version_that_is_not_the_newest_conflicts_and_changes_nothing,
    only_the_newest_keep_versions_are_kept_also_when_the_limit_changes,
    pruning_one_secret_leaves_the_others_alone,
    read_returns_the_header_with_the_newest_or_the_asked_version,
    list_is_in_byte_order_and_a_prefix_is_literal_and_case_sensitive,
    list_pages_with_after_and_limit_and_leaves_out_soft_deleted_by_default,
    list_shows_each_secrets_header,
    soft_delete_keeps_the_first_time_and_none_restores,
    destroy_removes_the_secret_and_every_version,
    deleting_the_user_takes_its_secrets_and_every_version,
    data_keys_are_counted_by_master_key,
    not_wrapped_by_leaves_out_the_given_master_and_honours_the_limit,
    replace_is_a_check_and_set_on_the_stored_wrapping,
    of_concurrent_replaces_of_one_data_key_exactly_one_wins,
    of_concurrent_writes_on_the_same_version_exactly_one_wins,
    of_concurrent_creates_of_one_name_exactly_one_wins,
    concurrent_creates_of_different_names_respect_the_secret_limit,
);

/// The migration test needs a database without the schema.
mod migration {
    use super::*;

    safebox_infra::backend_tests!(open_database => migrating_makes_every_existing_secret_version_1_of_itself);
}
