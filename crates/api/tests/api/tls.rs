use serde_json::json;

use crate::helpers::{PASSWORD, TlsApp, spawn_tls_app};

#[tokio::test]
async fn serves_https_with_hsts_when_a_certificate_is_configured() {
    let TlsApp {
        app,
        client,
        port,
        base,
    } = spawn_tls_app().await;

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
