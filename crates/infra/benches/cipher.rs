//! Secret encryption micro-benchmarks: sealing and opening a secret with
//! AES-256-GCM, including unwrapping the user's data key with the master key (as
//! every `set_secret` and `get_secret` does), at 100 B, 16 KiB and the default 64 KiB
//! maximum.
//! `cargo bench -p safebox-infra --bench cipher`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use safebox_domain::ports::SecretCipher;
use safebox_domain::{SecretName, SecretValue, SecretVersion, UserId, VaultLimits};
use safebox_infra::{AesGcmSecretCipher, KeyBytes, MasterKey, MasterKeyRing};

const SIZES: [(&str, usize); 3] = [("100B", 100), ("16KiB", 16 * 1024), ("64KiB", 64 * 1024)];
const VERSION: SecretVersion = SecretVersion(1);

fn cipher(c: &mut Criterion) {
    let master = KeyBytes::new(vec![0x42; 32]).expect("32 bytes is a valid key");
    let cipher = AesGcmSecretCipher::new(MasterKeyRing::single(MasterKey::derive(&master)));
    let owner = UserId::generate();
    let key = cipher.new_data_key(&owner).expect("data key");
    let name = SecretName::default_name();

    let mut group = c.benchmark_group("secret");
    for (label, size) in SIZES {
        let limit = VaultLimits::default().max_value_bytes;
        let value = SecretValue::parse("s".repeat(size), limit, "value").expect("within the limit");
        let sealed = cipher
            .seal(&key, &owner, &name, VERSION, &value)
            .expect("seal");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("encrypt", label), &value, |b, value| {
            b.iter(|| {
                cipher
                    .seal(&key, &owner, &name, VERSION, black_box(value))
                    .expect("seal")
            });
        });
        group.bench_with_input(BenchmarkId::new("decrypt", label), &sealed, |b, sealed| {
            b.iter(|| {
                cipher
                    .open(&key, &owner, &name, VERSION, black_box(sealed))
                    .expect("open")
            });
        });
    }
    group.finish();

    c.bench_function("master_key/derive", |b| {
        b.iter(|| MasterKey::derive(black_box(&master)));
    });
}

criterion_group!(benches, cipher);
criterion_main!(benches);
