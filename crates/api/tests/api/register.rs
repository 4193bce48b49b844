use serde_json::json;

use crate::helpers::{PASSWORD, assert_json, detail, spawn_app};

#[tokio::test]
async fn registration_succeeds_with_the_exact_body() {
    let app = spawn_app().await;
    let response = app.register("newuser@example.com", "user1", PASSWORD).await;
    assert_json(
        response,
        201,
        json!({ "message": "Registration successful" }),
    )
    .await;
}

#[tokio::test]
async fn a_taken_email_is_400_even_in_another_case() {
    let app = spawn_app().await;
    app.register("newuser@example.com", "user1", PASSWORD).await;
    for email in ["newuser@example.com", "NewUser@Example.COM"] {
        let response = app.register(email, "user2", PASSWORD).await;
        assert_json(response, 400, json!({ "detail": "Email already in use" })).await;
    }
}

#[tokio::test]
async fn a_taken_username_is_400_even_in_another_case() {
    let app = spawn_app().await;
    app.register("one@example.com", "user1", PASSWORD).await;
    for username in ["user1", "USER1"] {
        let response = app.register("two@example.com", username, PASSWORD).await;
        assert_json(
            response,
            400,
            json!({ "detail": "Username already in use" }),
        )
        .await;
    }
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for body in ["{", "not json", "{\"email\": \"a@b.co\",}", ""] {
        let response = app
            .client
            .post(app.url("/register"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let detail = detail(response, 400).await;
        assert!(detail.starts_with("malformed JSON"), "{body:?}: {detail}");
    }
}

#[tokio::test]
async fn missing_or_invalid_fields_are_422_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({ "username": "u", "password": PASSWORD }),
            "email: field required",
        ),
        (
            json!({ "email": "a@example.com", "password": PASSWORD }),
            "username: field required",
        ),
        (
            json!({ "email": "a@example.com", "username": "u" }),
            "password: field required",
        ),
        (
            json!({ "email": "not-an-email", "username": "u", "password": PASSWORD }),
            "email: is not a valid email address",
        ),
        (
            json!({ "email": "a@example.com", "username": "", "password": PASSWORD }),
            "username: must not be empty",
        ),
        (
            json!({ "email": "a@example.com", "username": "has space", "password": PASSWORD }),
            "username: may contain only letters, digits, '.', '_' and '-'",
        ),
        (
            json!({ "email": "a@example.com", "username": "u", "password": "too short" }),
            "password: must be at least 12 characters",
        ),
        (
            json!({ "email": "a@example.com", "username": "u", "password": "p".repeat(73) }),
            "password: must be at most 72 bytes of UTF-8",
        ),
        (
            json!({ "email": 42, "username": "u", "password": PASSWORD }),
            "email: must be a string",
        ),
        (json!(["a", "b"]), "body: must be a JSON object"),
    ];
    for (body, expected) in cases {
        let response = app.post_json("/register", &body).await;
        assert_eq!(detail(response, 422).await, expected, "{body}");
    }
}

#[tokio::test]
async fn a_72_byte_password_is_accepted_and_not_truncated() {
    let app = spawn_app().await;
    let password = "é".repeat(36); // 72 bytes, 36 characters
    let response = app.register("long@example.com", "long", &password).await;
    assert_eq!(response.status(), 201);
    let response = app
        .login(&json!({ "email": "long@example.com", "password": password }))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_minimum_length_is_configurable() {
    let app = crate::helpers::spawn_app_with(|config| config.password_min_length = 20).await;
    let response = app
        .register("a@example.com", "a", "nineteen characters")
        .await;
    assert_eq!(
        detail(response, 422).await,
        "password: must be at least 20 characters"
    );
}

#[tokio::test]
async fn a_non_json_content_type_is_415() {
    let app = spawn_app().await;
    let body =
        json!({ "email": "a@example.com", "username": "a", "password": PASSWORD }).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app.client.post(app.url("/register")).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            detail(response, 415).await,
            "Content-Type must be application/json",
            "{content_type:?}"
        );
    }
    // A charset parameter is still JSON.
    let response = app
        .client
        .post(app.url("/register"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let app = spawn_app().await;
    let huge = "x".repeat(64 * 1024);
    let response = app.register("a@example.com", &huge, PASSWORD).await;
    let detail = detail(response, 413).await;
    assert_eq!(detail, "request body must be at most 65536 bytes");
}

#[tokio::test]
async fn a_chunked_body_over_64_kib_is_413_too() {
    let app = spawn_app().await;
    let huge = format!(
        r#"{{"email":"a@example.com","username":"{}","password":"x"}}"#,
        "x".repeat(70_000)
    );
    let stream = futures_util::stream::iter(
        huge.into_bytes()
            .chunks(8192)
            .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = app
        .client
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn each_password_rule_is_a_422_naming_the_rule() {
    let app = spawn_app().await;
    let cases = [
        ("short", "password: must be at least 12 characters"),
        (
            "qwertyuiopasdfgh",
            "password: is too common: it appears in lists of breached passwords",
        ),
        (
            "QWERTY123456",
            "password: is too common: it appears in lists of breached passwords",
        ),
        (
            "all about Carol99 here",
            "password: must not contain the username",
        ),
        (
            "carol.smith likes tea",
            "password: must not contain the email address",
        ),
    ];
    for (password, expected) in cases {
        let response = app
            .register("carol.smith@example.com", "carol99", password)
            .await;
        assert_eq!(detail(response, 422).await, expected, "{password:?}");
    }
    // The same account with a password that breaks no rule.
    let response = app
        .register(
            "carol.smith@example.com",
            "carol99",
            "violet anchor mumbles",
        )
        .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn passwords_are_nfkc_normalised_before_hashing() {
    let app = spawn_app().await;
    // Registered with a precomposed "é", logged in with "e" + combining accent.
    let response = app
        .register(
            "nfkc@example.com",
            "nfkc",
            "caf\u{e9} au lait, s'il vous pla\u{ee}t",
        )
        .await;
    assert_eq!(response.status(), 201);
    let response = app
        .login(&json!({
            "email": "nfkc@example.com",
            "password": "cafe\u{301} au lait, s'il vous plai\u{302}t",
        }))
        .await;
    assert_eq!(response.status(), 200);
}
