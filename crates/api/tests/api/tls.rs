use std::sync::Arc;

use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app_with};

#[tokio::test]
async fn serves_https_with_hsts_when_a_certificate_is_configured() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();

    let app = spawn_app_with(|config| {
        config.tls = Some(safebox_infra::TlsFiles {
            cert: cert_path.clone(),
            key: key_path.clone(),
        });
    })
    .await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .resolve("localhost", ([127, 0, 0, 1], port.parse().unwrap()).into())
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");

    let response = client
        .post(format!("{base}/register"))
        .json(&json!({ "email": "tls@example.com", "username": "tls", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers().get("strict-transport-security").unwrap(),
        "max-age=31536000"
    );
    let response = client
        .post(format!("{base}/login"))
        .json(&json!({ "username": "tls", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = app
        .client
        .get(format!("http://127.0.0.1:{port}/get_secret"))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() == 400);
}

#[tokio::test]
async fn a_bad_certificate_stops_the_start_with_a_message_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let mut config = safebox_infra::Config::defaults(dir.path());
    config.port = 0;
    config.bcrypt_cost = 4;
    config.tls = Some(safebox_infra::TlsFiles { cert, key });
    let err = safebox_api::Application::build(config)
        .await
        .err()
        .expect("start refused");
    assert!(err.to_string().contains("SAFEBOX_TLS_CERT"), "{err}");
}
