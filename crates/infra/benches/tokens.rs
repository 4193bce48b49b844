//! Access-token micro-benchmarks: issuing (one HS256 signature plus a UUID and JSON)
//! and verifying (one HMAC plus claim checks), which every authenticated request
//! pays on the async worker. `cargo bench -p safebox-infra --bench tokens`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use safebox_domain::ports::TokenIssuer;
use safebox_domain::{SessionId, UserId};
use safebox_infra::{JwtTokenIssuer, KeyBytes, SystemClock};

fn issuer() -> JwtTokenIssuer {
    let secret = KeyBytes::new(vec![0x5a; 32]).expect("32 bytes is a valid key");
    JwtTokenIssuer::new(&secret, Duration::from_secs(900), Arc::new(SystemClock))
}

fn tokens(c: &mut Criterion) {
    let issuer = issuer();
    let subject = UserId::generate();
    let session = SessionId::generate();
    let issued = issuer.issue(&subject, &session).expect("issue");
    let token = issued.token.expose().to_owned();

    let mut group = c.benchmark_group("token");
    group.bench_function("issue", |b| {
        b.iter(|| issuer.issue(black_box(&subject), &session).expect("issue"));
    });
    group.bench_function("verify", |b| {
        b.iter(|| issuer.verify(black_box(&token)).expect("verify"));
    });
    group.bench_function("verify_rejects_tampered", |b| {
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        b.iter(|| issuer.verify(black_box(&tampered)).is_err());
    });
    group.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
