use serde_json::json;

use crate::helpers::{PASSWORD, assert_json, detail, jwt_payload, spawn_app};

#[tokio::test]
async fn login_by_email_returns_a_token_and_the_exact_message() {
    let app = spawn_app().await;
    app.register("newuser@example.com", "user1", PASSWORD).await;
    let response = app
        .login(&json!({ "email": "newuser@example.com", "password": PASSWORD }))
        .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Login successful");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["token"].as_str().unwrap();

    let claims = jwt_payload(token);
    for claim in ["sub", "jti", "iat", "exp", "iss", "aud"] {
        assert!(claims.get(claim).is_some(), "missing {claim} in {claims}");
    }
    assert_eq!(claims["iss"], "safebox");
    assert_eq!(claims["aud"], "safebox-api");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
}

#[tokio::test]
async fn login_by_username_works_and_is_case_insensitive() {
    let app = spawn_app().await;
    app.register("newuser@example.com", "user1", PASSWORD).await;
    for username in ["user1", "User1"] {
        let response = app
            .login(&json!({ "username": username, "password": PASSWORD }))
            .await;
        assert_eq!(response.status(), 200);
    }
    let response = app
        .login(&json!({ "email": "NEWUSER@example.com", "password": PASSWORD }))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_account_get_the_same_401() {
    let app = spawn_app().await;
    app.register("newuser@example.com", "user1", PASSWORD).await;
    let cases = [
        json!({ "email": "newuser@example.com", "password": "wrong password!" }),
        json!({ "email": "nobody@example.com", "password": PASSWORD }),
        json!({ "email": "not an email", "password": PASSWORD }),
        json!({ "username": "user1", "password": "wrong password!" }),
        json!({ "username": "nobody", "password": PASSWORD }),
        // Longer than bcrypt reads, with the real password as its first 28 bytes.
        json!({ "email": "newuser@example.com", "password": format!("{PASSWORD}{}", "x".repeat(60)) }),
    ];
    for body in cases {
        let response = app.login(&body).await;
        assert!(response.headers().get("www-authenticate").is_none());
        assert_json(
            response,
            401,
            json!({ "detail": "Invalid email or password" }),
        )
        .await;
    }
}

#[tokio::test]
async fn a_login_without_an_identifier_or_password_is_422() {
    let app = spawn_app().await;
    let response = app.login(&json!({ "password": PASSWORD })).await;
    assert_eq!(detail(response, 422).await, "email: field required");
    let response = app.login(&json!({ "email": "a@example.com" })).await;
    assert_eq!(detail(response, 422).await, "password: field required");
    let response = app
        .client
        .post(app.url("/login"))
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    assert!(detail(response, 400).await.starts_with("malformed JSON"));
}

#[tokio::test]
async fn each_login_issues_a_distinct_token() {
    let app = spawn_app().await;
    app.register("newuser@example.com", "user1", PASSWORD).await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..3 {
        let body: serde_json::Value = app
            .login(&json!({ "email": "newuser@example.com", "password": PASSWORD }))
            .await
            .json()
            .await
            .unwrap();
        let claims = jwt_payload(body["token"].as_str().unwrap());
        assert!(ids.insert(claims["jti"].as_str().unwrap().to_owned()));
    }
}
