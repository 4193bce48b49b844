//! Repository micro-benchmarks on a temporary SQLite file (WAL, synchronous=FULL,
//! as in production): the reads `GET /get_secret` makes (the user with their data
//! key, and the secret with its newest version), each including a pool checkout,
//! and one secret version write (an fsync'd commit).
//! `cargo bench -p safebox-infra --bench repository`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use safebox_domain::ports::{
    SecretCipher, SecretRepository, UserRepository, VersionWrite, WriteOutcome,
};
use safebox_domain::{
    Email, NewUser, PasswordHash, Role, SecretName, SecretValue, SecretVersion, Timestamp, User,
    UserData, UserId, Username,
};
use safebox_infra::db::{connect, migrate};
use safebox_infra::{
    AesGcmSecretCipher, DieselSecretRepository, DieselUserRepository, KeyBytes, MasterKey,
    MasterKeyRing,
};

fn repository(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let pool = connect(&url, 2, Duration::from_secs(2)).expect("connect");
    migrate(&pool).expect("migrate");
    let users = DieselUserRepository::new(pool.clone());
    let secrets = DieselSecretRepository::new(pool);
    let cipher = AesGcmSecretCipher::new(MasterKeyRing::single(MasterKey::derive(
        &KeyBytes::new(vec![0x42; 32]).expect("32 bytes is a valid key"),
    )));

    // A few hundred users, so lookups go through a real index rather than one row.
    let mut owner = None;
    for index in 0..300 {
        let id = UserId::generate();
        let name = format!("bench{index}");
        let data_key = cipher.new_data_key(&id).expect("data key");
        users
            .create(&NewUser {
                user: User {
                    id,
                    username: Username::parse(&name).expect("username"),
                    email: Some(Email::parse(&format!("{name}@example.com")).expect("email")),
                    password_hash: PasswordHash(format!("$2b$12${name}")),
                    role: Role::User,
                    data: UserData::empty(),
                    created_at: Timestamp(1_700_000_000),
                },
                data_key: data_key.clone(),
            })
            .expect("create user");
        let secret_name = SecretName::default_name();
        let value = SecretValue::parse("myTopSecretValue".into(), 64, "value").expect("value");
        let sealed = cipher
            .seal(&data_key, &id, &secret_name, SecretVersion(1), &value)
            .expect("seal");
        let write = VersionWrite {
            owner: id,
            name: secret_name,
            base: None,
            sealed,
            metadata: None,
            now: Timestamp(1_700_000_000),
            keep_versions: 10,
            max_secrets: 1_000,
        };
        assert!(matches!(
            secrets.write(&write).expect("write"),
            WriteOutcome::Written(_)
        ));
        if index == 150 {
            owner = Some(id);
        }
    }
    let owner = owner.expect("user 150 was created");
    let name = SecretName::default_name();
    let (_, newest) = secrets
        .read(&owner, &name, None)
        .expect("read")
        .expect("stored");
    let sealed = newest.expect("the newest version").sealed;

    let mut group = c.benchmark_group("repository");
    group.bench_function("users/find_with_data_key", |b| {
        b.iter(|| {
            users
                .find_with_data_key(black_box(&owner))
                .expect("query")
                .expect("found")
        });
    });
    group.bench_function("secrets/read_newest", |b| {
        b.iter(|| {
            secrets
                .read(black_box(&owner), black_box(&name), None)
                .expect("query")
                .expect("found")
        });
    });
    // Each write is a durable commit (WAL + fsync), so this measures the disk.
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("secrets/write_version", |b| {
        b.iter(|| {
            let base = secrets
                .find(&owner, &name)
                .expect("find")
                .map(|secret| secret.version);
            let write = VersionWrite {
                owner,
                name: name.clone(),
                base,
                sealed: sealed.clone(),
                metadata: None,
                now: Timestamp(1_700_000_001),
                keep_versions: 10,
                max_secrets: 1_000,
            };
            black_box(secrets.write(&write).expect("write"))
        });
    });
    group.finish();
}

criterion_group!(benches, repository);
criterion_main!(benches);
