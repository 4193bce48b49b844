//! Repository micro-benchmarks on a temporary SQLite file (WAL, synchronous=FULL,
//! as in production): the three reads `GET /get_secret` makes (user by id, secret,
//! data key), each including a pool checkout, and one secret upsert (an fsync'd
//! write). `cargo bench -p safebox-infra --bench repository`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use safebox_domain::ports::{SecretCipher, SecretRepository, UserRepository};
use safebox_domain::{
    Email, NewUser, PasswordHash, Role, Secret, SecretName, SecretValue, Timestamp, User, UserData,
    UserId, Username,
};
use safebox_infra::db::{connect, migrate};
use safebox_infra::{
    AesGcmSecretCipher, DieselSecretRepository, DieselUserRepository, KeyBytes, MasterKey,
};

fn repository(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let pool = connect(&url, 2, Duration::from_secs(2)).expect("connect");
    migrate(&pool).expect("migrate");
    let users = DieselUserRepository::new(pool.clone());
    let secrets = DieselSecretRepository::new(pool);
    let cipher = AesGcmSecretCipher::new(MasterKey::derive(
        &KeyBytes::new(vec![0x42; 32]).expect("32 bytes is a valid key"),
    ));

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
        let value = SecretValue::parse("myTopSecretValue".into()).expect("value");
        let sealed = cipher
            .seal(&data_key, &id, &secret_name, &value)
            .expect("seal");
        secrets
            .upsert(&Secret {
                owner: id,
                name: secret_name,
                sealed,
                created_at: Timestamp(1_700_000_000),
                updated_at: Timestamp(1_700_000_000),
            })
            .expect("upsert");
        if index == 150 {
            owner = Some(id);
        }
    }
    let owner = owner.expect("user 150 was created");
    let name = SecretName::default_name();
    let stored = secrets.find(&owner, &name).expect("find").expect("stored");

    let mut group = c.benchmark_group("repository");
    group.bench_function("users/find_by_id", |b| {
        b.iter(|| {
            users
                .find_by_id(black_box(&owner))
                .expect("query")
                .expect("found")
        });
    });
    group.bench_function("users/data_key", |b| {
        b.iter(|| {
            users
                .data_key(black_box(&owner))
                .expect("query")
                .expect("found")
        });
    });
    group.bench_function("secrets/find", |b| {
        b.iter(|| {
            secrets
                .find(black_box(&owner), black_box(&name))
                .expect("query")
                .expect("found")
        });
    });
    // Each upsert is a durable commit (WAL + fsync), so this measures the disk.
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("secrets/upsert", |b| {
        b.iter(|| secrets.upsert(black_box(&stored)).expect("upsert"));
    });
    group.finish();
}

criterion_group!(benches, repository);
criterion_main!(benches);
