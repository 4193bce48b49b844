//! Accounts: `GET /`, sign-up with `POST /user`, `GET`/`PUT`/`DELETE
//! /user/{username}` for the owner, other users and admins, and `PUT /password`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Auth, NEW_PASSWORD, PASSWORD, TestApp, assert_hello_world, assert_json, assert_no_content,
    assert_not_authorized, assert_refused_everywhere, assert_user, detail, sid, spawn_app,
    spawn_app_with, spawn_app_without_ip_limit,
};

const FORBIDDEN: &str = "Forbidden";

async fn get_user(app: &TestApp, auth: Auth<'_>, username: &str) -> reqwest::Response {
    app.request(Method::GET, &format!("/user/{username}"), auth)
        .send()
        .await
        .unwrap()
}

async fn put_user(
    app: &TestApp,
    auth: Auth<'_>,
    username: &str,
    body: &Value,
) -> reqwest::Response {
    app.request(Method::PUT, &format!("/user/{username}"), auth)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn delete_user(app: &TestApp, auth: Auth<'_>, username: &str) -> reqwest::Response {
    app.request(Method::DELETE, &format!("/user/{username}"), auth)
        .send()
        .await
        .unwrap()
}

async fn put_password(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.request(Method::PUT, "/password", Auth::Bearer(token))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `alice`'s `User` as `/register` creates it, without `created_at`.
fn registered(username: &str) -> Value {
    json!({
        "username": username,
        "email": format!("{username}@example.com"),
        "data": {},
        "role": "user",
    })
}

/// A `data` object whose compact JSON is exactly `bytes` long.
fn data_of_size(bytes: usize) -> Value {
    // `{"blob":"` + blob + `"}` is 11 bytes plus the blob.
    let data = json!({ "blob": "x".repeat(bytes - 11) });
    assert_eq!(data.to_string().len(), bytes);
    data
}

// ---------------------------------------------------------------- GET /

#[tokio::test]
async fn get_root_greets_anonymous_callers_and_describes_the_signed_in_user() {
    let app = spawn_app().await;
    assert_hello_world(&app, Auth::None).await;
    assert_hello_world(&app, Auth::Bearer("not.a.jwt")).await;

    let token = app.user_with_token("alice").await;
    let response = app
        .request(Method::GET, "/", Auth::Bearer(&token))
        .send()
        .await
        .unwrap();
    assert_json(
        response,
        200,
        json!({ "username": "alice", "email": "alice@example.com", "data": {} }),
    )
    .await;

    let response = put_user(
        &app,
        Auth::Bearer(&token),
        "alice",
        &json!({ "data": { "city": "Lisbon" } }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let response = app
        .request(Method::GET, "/", Auth::Bearer(&token))
        .send()
        .await
        .unwrap();
    assert_json(
        response,
        200,
        json!({
            "username": "alice",
            "email": "alice@example.com",
            "data": { "city": "Lisbon" },
        }),
    )
    .await;
}

// ---------------------------------------------------------------- POST /user

#[tokio::test]
async fn sign_up_returns_the_user_and_keeps_extra_fields_in_data() {
    let app = spawn_app().await;
    let response = app
        .sign_up(&json!({
            "username": "alice",
            "password": PASSWORD,
            "email": "alice@example.com",
            "data": { "theme": "dark" },
            "address": "1 Main Street",
            "phone": "+1 555 0100",
        }))
        .await;
    let expected = json!({
        "username": "alice",
        "email": "alice@example.com",
        "data": { "theme": "dark", "address": "1 Main Street", "phone": "+1 555 0100" },
        "role": "user",
    });
    let created = assert_user(response, 201, expected.clone()).await;

    // The account is real: it logs in by username and by email, and reads back the same.
    let response = app
        .auth(&json!({ "username": "alice", "password": PASSWORD }))
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .login(&json!({ "email": "alice@example.com", "password": PASSWORD }))
        .await;
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    let token = token["token"].as_str().unwrap();
    let read = assert_user(
        get_user(&app, Auth::Bearer(token), "alice").await,
        200,
        expected,
    )
    .await;
    assert_eq!(read["created_at"], created["created_at"]);
}

#[tokio::test]
async fn sign_up_never_echoes_the_password_or_its_hash() {
    let app = spawn_app().await;
    let response = app
        .sign_up(&json!({ "username": "carefuluser", "password": PASSWORD }))
        .await;
    assert_eq!(response.status(), 201);
    let text = response.text().await.unwrap();
    assert!(!text.contains("password"), "{text}");
    assert!(!text.contains("$2"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[tokio::test]
async fn sign_up_without_email_or_data_gives_a_null_email_and_empty_data() {
    let app = spawn_app().await;
    let response = app
        .sign_up(&json!({ "username": "nomail", "password": PASSWORD }))
        .await;
    assert_user(
        response,
        201,
        json!({ "username": "nomail", "email": null, "data": {}, "role": "user" }),
    )
    .await;
    // Such an account logs in by username only.
    for (path, body) in [
        (
            "/auth",
            json!({ "username": "nomail", "password": PASSWORD }),
        ),
        (
            "/login",
            json!({ "username": "nomail", "password": PASSWORD }),
        ),
    ] {
        assert_eq!(app.post_json(path, &body).await.status(), 200, "{path}");
    }
    let token = app.user_with_token_for_existing("nomail").await;
    let response = app
        .request(Method::GET, "/", Auth::Bearer(&token))
        .send()
        .await
        .unwrap();
    assert_json(
        response,
        200,
        json!({ "username": "nomail", "email": null, "data": {} }),
    )
    .await;
}

#[tokio::test]
async fn sign_up_validation_errors_are_422_naming_the_field() {
    let app = spawn_app_without_ip_limit().await;
    let cases = [
        (json!({ "password": PASSWORD }), "username: field required"),
        (json!({ "username": "dave" }), "password: field required"),
        (
            json!({ "username": "has space", "password": PASSWORD }),
            "username: may contain only letters, digits, '.', '_' and '-'",
        ),
        (
            json!({ "username": "dave", "password": "too short" }),
            "password: must be at least 12 characters",
        ),
        (
            json!({ "username": "dave", "password": "p".repeat(73) }),
            "password: must be at most 72 bytes of UTF-8",
        ),
        (
            json!({ "username": "dave", "password": "qwertyuiopasdfgh" }),
            "password: is too common: it appears in lists of breached passwords",
        ),
        (
            json!({ "username": "carol99", "password": "all about Carol99 here" }),
            "password: must not contain the username",
        ),
        (
            json!({
                "username": "carol99",
                "email": "carol.smith@example.com",
                "password": "carol.smith likes tea",
            }),
            "password: must not contain the email address",
        ),
        (
            json!({ "username": "dave", "email": "not-an-email", "password": PASSWORD }),
            "email: is not a valid email address",
        ),
        (json!(["a", "b"]), "body: must be a JSON object"),
    ];
    for (body, expected) in cases {
        let response = app.sign_up(&body).await;
        assert_eq!(detail(response, 422).await, expected, "{body}");
    }
    // None of the refused bodies created an account.
    for username in ["dave", "carol99"] {
        let response = app
            .auth(&json!({ "username": username, "password": PASSWORD }))
            .await;
        assert_json(
            response,
            401,
            json!({ "detail": "Invalid email or password" }),
        )
        .await;
    }
}

#[tokio::test]
async fn sign_up_data_must_be_an_object_of_at_most_16_kib() {
    let app = spawn_app_without_ip_limit().await;
    for data in [json!([1, 2]), json!("text"), json!(42), json!(true)] {
        let response = app
            .sign_up(&json!({ "username": "dave", "password": PASSWORD, "data": data }))
            .await;
        assert_eq!(
            detail(response, 422).await,
            "data: must be a JSON object",
            "{data}"
        );
    }

    let response = app
        .sign_up(&json!({ "username": "dave", "password": PASSWORD, "data": data_of_size(16_385) }))
        .await;
    assert_eq!(
        detail(response, 422).await,
        "data: must be at most 16384 bytes"
    );
    // Extra top-level fields count too: they end up in `data`.
    let response = app
        .sign_up(&json!({
            "username": "dave",
            "password": PASSWORD,
            "blob": "x".repeat(16_374),
        }))
        .await;
    assert_eq!(
        detail(response, 422).await,
        "data: must be at most 16384 bytes"
    );
    // A key both in `data` and at the top level.
    let response = app
        .sign_up(&json!({
            "username": "dave",
            "password": PASSWORD,
            "data": { "phone": "1" },
            "phone": "2",
        }))
        .await;
    assert_eq!(detail(response, 422).await, "data: duplicate key phone");

    // Exactly 16384 bytes is accepted.
    let largest = data_of_size(16_384);
    let response = app
        .sign_up(&json!({ "username": "dave", "password": PASSWORD, "data": largest }))
        .await;
    assert_user(
        response,
        201,
        json!({ "username": "dave", "email": null, "data": largest, "role": "user" }),
    )
    .await;
}

#[tokio::test]
async fn a_taken_username_or_email_is_400_on_sign_up() {
    let app = spawn_app_without_ip_limit().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    for username in ["alice", "ALICE"] {
        let response = app
            .sign_up(&json!({
                "username": username,
                "password": PASSWORD,
                "email": "other@example.com",
            }))
            .await;
        assert_json(
            response,
            400,
            json!({ "detail": "Username already in use" }),
        )
        .await;
    }
    for email in ["alice@example.com", "Alice@Example.COM"] {
        let response = app
            .sign_up(&json!({ "username": "other", "password": PASSWORD, "email": email }))
            .await;
        assert_json(response, 400, json!({ "detail": "Email already in use" })).await;
    }
    // Names taken through POST /user are taken for /register too, and again for /user.
    let response = app
        .sign_up(
            &json!({ "username": "carol", "password": PASSWORD, "email": "carol@example.com" }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let response = app.register("carol2@example.com", "carol", PASSWORD).await;
    assert_json(
        response,
        400,
        json!({ "detail": "Username already in use" }),
    )
    .await;
    let response = app
        .sign_up(&json!({ "username": "carol", "password": PASSWORD }))
        .await;
    assert_json(
        response,
        400,
        json!({ "detail": "Username already in use" }),
    )
    .await;
}

// ---------------------------------------------------------------- /user/{username}

#[tokio::test]
async fn the_owner_reads_and_replaces_their_data() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    let me = Auth::Bearer(&token);
    let created = assert_user(get_user(&app, me, "alice").await, 200, registered("alice")).await;

    let mut expected = registered("alice");
    expected["data"] = json!({ "a": 1, "nested": { "b": [1, 2] } });
    let response = put_user(&app, me, "alice", &json!({ "data": expected["data"] })).await;
    assert_user(response, 200, expected).await;

    // A second PUT replaces the whole object; it does not merge.
    let mut expected = registered("alice");
    expected["data"] = json!({ "c": true });
    let response = put_user(&app, me, "alice", &json!({ "data": { "c": true } })).await;
    assert_user(response, 200, expected.clone()).await;
    let read = assert_user(get_user(&app, me, "alice").await, 200, expected).await;
    assert_eq!(read["created_at"], created["created_at"]);

    // The password is untouched.
    let response = app
        .login(&json!({ "username": "alice", "password": PASSWORD }))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn put_user_validates_the_data_and_a_refusal_changes_nothing() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    let me = Auth::Bearer(&token);
    let response = put_user(&app, me, "alice", &json!({ "data": { "kept": 1 } })).await;
    assert_eq!(response.status(), 200);

    let response = put_user(&app, me, "alice", &json!({})).await;
    assert_eq!(detail(response, 422).await, "data: field required");
    for data in [json!([1]), json!("text"), json!(7)] {
        let response = put_user(&app, me, "alice", &json!({ "data": data })).await;
        assert_eq!(
            detail(response, 422).await,
            "data: must be a JSON object",
            "{data}"
        );
    }
    let response = put_user(&app, me, "alice", &json!({ "data": data_of_size(16_385) })).await;
    assert_eq!(
        detail(response, 422).await,
        "data: must be at most 16384 bytes"
    );

    let mut expected = registered("alice");
    expected["data"] = json!({ "kept": 1 });
    assert_user(get_user(&app, me, "alice").await, 200, expected).await;

    let largest = data_of_size(16_384);
    let mut expected = registered("alice");
    expected["data"] = largest.clone();
    let response = put_user(&app, me, "alice", &json!({ "data": largest })).await;
    assert_user(response, 200, expected).await;
}

#[tokio::test]
async fn another_user_gets_403_on_every_user_route_whether_or_not_the_account_exists() {
    let app = spawn_app().await;
    let alice = app.user_with_token("alice").await;
    let bob = app.user_with_token("bob").await;
    let response = put_user(
        &app,
        Auth::Bearer(&alice),
        "alice",
        &json!({ "data": { "mine": true } }),
    )
    .await;
    assert_eq!(response.status(), 200);

    for target in ["alice", "nobody"] {
        let response = get_user(&app, Auth::Bearer(&bob), target).await;
        assert_json(response, 403, json!({ "detail": FORBIDDEN })).await;
        let response = put_user(
            &app,
            Auth::Bearer(&bob),
            target,
            &json!({ "data": { "bob": "was here" } }),
        )
        .await;
        assert_json(response, 403, json!({ "detail": FORBIDDEN })).await;
        let response = delete_user(&app, Auth::Bearer(&bob), target).await;
        assert_json(response, 403, json!({ "detail": FORBIDDEN })).await;
    }

    // Alice is still there, with her data.
    let mut expected = registered("alice");
    expected["data"] = json!({ "mine": true });
    assert_user(
        get_user(&app, Auth::Bearer(&alice), "alice").await,
        200,
        expected,
    )
    .await;
}

#[tokio::test]
async fn an_admin_may_read_update_and_delete_any_account() {
    let app = spawn_app().await;
    let admin = app.admin_with_token("root").await;
    let bob = app.user_with_token("bob").await;
    let as_admin = Auth::Bearer(&admin);

    let mut me = registered("root");
    me["role"] = json!("admin");
    assert_user(get_user(&app, as_admin, "root").await, 200, me).await;
    assert_user(
        get_user(&app, as_admin, "bob").await,
        200,
        registered("bob"),
    )
    .await;

    let mut expected = registered("bob");
    expected["data"] = json!({ "set by": "admin" });
    let response = put_user(
        &app,
        as_admin,
        "bob",
        &json!({ "data": { "set by": "admin" } }),
    )
    .await;
    assert_user(response, 200, expected.clone()).await;
    assert_user(
        get_user(&app, Auth::Bearer(&bob), "bob").await,
        200,
        expected,
    )
    .await;

    // An account that does not exist is 404 for an admin.
    let not_found = json!({ "detail": "User not found" });
    assert_json(
        get_user(&app, as_admin, "nobody").await,
        404,
        not_found.clone(),
    )
    .await;
    let response = put_user(&app, as_admin, "nobody", &json!({ "data": {} })).await;
    assert_json(response, 404, not_found.clone()).await;
    assert_json(
        delete_user(&app, as_admin, "nobody").await,
        404,
        not_found.clone(),
    )
    .await;

    assert_no_content(delete_user(&app, as_admin, "bob").await, 204).await;
    assert_json(get_user(&app, as_admin, "bob").await, 404, not_found).await;
    assert_refused_everywhere(&app, Auth::Bearer(&bob), "bob").await;
    assert_hello_world(&app, Auth::Bearer(&bob)).await;
    // The admin's own session is unaffected.
    assert_eq!(get_user(&app, as_admin, "root").await.status(), 200);
}

#[tokio::test]
async fn an_admin_cannot_read_or_write_another_users_secrets() {
    let app = spawn_app().await;
    let admin = app.admin_with_token("root").await;
    let bob = app.user_with_token("bob").await;
    assert_eq!(
        app.set_secret(&bob, "bob", "bob's secret").await.status(),
        200
    );

    assert_not_authorized(app.get_secret(&admin, "bob").await).await;
    assert_not_authorized(app.set_secret(&admin, "bob", "overwritten").await).await;

    assert_json(
        app.get_secret(&bob, "bob").await,
        200,
        json!({ "secret": "bob's secret" }),
    )
    .await;
    // The admin's own secrets work as for anyone.
    assert_eq!(app.set_secret(&admin, "root", "mine").await.status(), 200);
    assert_json(
        app.get_secret(&admin, "root").await,
        200,
        json!({ "secret": "mine" }),
    )
    .await;
}

#[tokio::test]
async fn without_a_valid_credential_every_route_is_401() {
    let app = spawn_app_without_ip_limit().await;
    let token = app.user_with_token("alice").await;
    assert_refused_everywhere(&app, Auth::None, "alice").await;
    assert_refused_everywhere(&app, Auth::Bearer("not.a.jwt"), "alice").await;
    assert_refused_everywhere(&app, Auth::Cookie("not-a-session"), "alice").await;
    // Only the first character is wrong.
    let tampered = format!("x{}", &token[1..]);
    assert_refused_everywhere(&app, Auth::Bearer(&tampered), "alice").await;
    // The account was not touched by any of that.
    assert_user(
        get_user(&app, Auth::Bearer(&token), "alice").await,
        200,
        registered("alice"),
    )
    .await;
}

#[tokio::test]
async fn deleting_oneself_ends_every_session_and_frees_the_name() {
    let app = spawn_app_without_ip_limit().await;
    let response = app.register("alice@example.com", "alice", PASSWORD).await;
    assert_eq!(response.status(), 201);
    let first = app.login_tokens("alice").await;
    let second = app.login_tokens("alice").await;
    let cookie = app.cookie_login_for("alice").await;
    assert_eq!(
        app.set_secret(&first.token, "alice", "old").await.status(),
        200
    );

    let response = delete_user(&app, Auth::Bearer(&first.token), "alice").await;
    assert_no_content(response, 204).await;

    for token in [&first.token, &second.token] {
        assert_refused_everywhere(&app, Auth::Bearer(token), "alice").await;
        assert_hello_world(&app, Auth::Bearer(token)).await;
    }
    assert_refused_everywhere(&app, Auth::Cookie(&cookie), "alice").await;
    for refresh_token in [&first.refresh_token, &second.refresh_token] {
        assert_json(
            app.refresh(refresh_token).await,
            401,
            json!({ "detail": "Invalid refresh token" }),
        )
        .await;
    }
    assert_json(
        app.login(&json!({ "username": "alice", "password": PASSWORD }))
            .await,
        401,
        json!({ "detail": "Invalid email or password" }),
    )
    .await;

    // The name and the email are free again, and the new account starts empty.
    let response = app
        .sign_up(
            &json!({ "username": "alice", "password": PASSWORD, "email": "alice@example.com" }),
        )
        .await;
    assert_user(response, 201, registered("alice")).await;
    let token = app.user_with_token_for_existing("alice").await;
    assert_json(
        app.get_secret(&token, "alice").await,
        404,
        json!({ "detail": "Secret not found" }),
    )
    .await;
    // The old tokens do not come back to life with the new account.
    assert_not_authorized(app.get_secret(&first.token, "alice").await).await;
}

// ---------------------------------------------------------------- PUT /password

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions_but_not_the_current_one() {
    let app = spawn_app_without_ip_limit().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let current = app.login_tokens("alice").await;
    let other = app.login_tokens("alice").await;
    let cookie = app.cookie_login_for("alice").await;
    let bob = app.user_with_token("bob").await;

    let response = put_password(
        &app,
        &current.token,
        &json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
    )
    .await;
    assert_no_content(response, 204).await;

    // The calling session goes on, refresh token included.
    assert_user(
        get_user(&app, Auth::Bearer(&current.token), "alice").await,
        200,
        registered("alice"),
    )
    .await;
    let sessions = app.sessions(Auth::Bearer(&current.token)).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["id"], sid(&current.token).as_str());
    let refreshed = app.refreshed(&current.refresh_token).await;
    assert_eq!(
        app.get_secret(&refreshed.token, "alice").await.status(),
        404
    );

    // Every other session of alice has ended.
    assert_refused_everywhere(&app, Auth::Bearer(&other.token), "alice").await;
    assert_refused_everywhere(&app, Auth::Cookie(&cookie), "alice").await;
    assert_json(
        app.refresh(&other.refresh_token).await,
        401,
        json!({ "detail": "Invalid refresh token" }),
    )
    .await;
    // Other users keep theirs.
    assert_eq!(app.get_secret(&bob, "bob").await.status(), 404);

    // Only the new password logs in now.
    assert_json(
        app.login(&json!({ "username": "alice", "password": PASSWORD }))
            .await,
        401,
        json!({ "detail": "Invalid email or password" }),
    )
    .await;
    let response = app
        .login(&json!({ "username": "alice", "password": NEW_PASSWORD }))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_wrong_current_password_is_401_and_changes_nothing() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let current = app.login_tokens("alice").await;
    let other = app.login_tokens("alice").await;

    let response = put_password(
        &app,
        &current.token,
        &json!({ "current_password": "not the password", "new_password": NEW_PASSWORD }),
    )
    .await;
    assert!(
        response.headers().get("www-authenticate").is_none(),
        "no WWW-Authenticate: the token was fine"
    );
    assert_json(
        response,
        401,
        json!({ "detail": "Current password is incorrect" }),
    )
    .await;

    // Both sessions still work and the old password still logs in.
    for token in [&current.token, &other.token] {
        assert_eq!(app.get_secret(token, "alice").await.status(), 404);
    }
    let response = app
        .login(&json!({ "username": "alice", "password": PASSWORD }))
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .login(&json!({ "username": "alice", "password": NEW_PASSWORD }))
        .await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_weak_new_password_is_422_and_changes_nothing() {
    let app = spawn_app_without_ip_limit().await;
    app.register("carol.smith@example.com", "carol99", PASSWORD)
        .await;
    let current = app.login_tokens("carol99").await;
    let other = app.login_tokens("carol99").await;
    let cases = [
        (
            json!({ "current_password": PASSWORD, "new_password": "short" }),
            "new_password: must be at least 12 characters",
        ),
        (
            json!({ "current_password": PASSWORD, "new_password": "qwertyuiopasdfgh" }),
            "new_password: is too common: it appears in lists of breached passwords",
        ),
        (
            json!({ "current_password": PASSWORD, "new_password": "all about Carol99 here" }),
            "new_password: must not contain the username",
        ),
        (
            json!({ "current_password": PASSWORD, "new_password": "carol.smith likes tea" }),
            "new_password: must not contain the email address",
        ),
        (
            json!({ "current_password": PASSWORD }),
            "new_password: field required",
        ),
        (
            json!({ "new_password": NEW_PASSWORD }),
            "current_password: field required",
        ),
    ];
    for (body, expected) in cases {
        let response = put_password(&app, &current.token, &body).await;
        assert_eq!(detail(response, 422).await, expected, "{body}");
    }
    for token in [&current.token, &other.token] {
        assert_eq!(app.get_secret(token, "carol99").await.status(), 404);
    }
    let response = app
        .login(&json!({ "username": "carol99", "password": PASSWORD }))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn wrong_current_passwords_count_towards_the_account_lockout() {
    let app = spawn_app_with(|config| {
        config.lockout_threshold = 2;
        config.lockout_duration = Duration::from_secs(60);
    })
    .await;
    let token = app.user_with_token("alice").await;
    let wrong = json!({ "current_password": "not the password", "new_password": NEW_PASSWORD });
    for _ in 0..2 {
        let response = put_password(&app, &token, &wrong).await;
        assert_json(
            response,
            401,
            json!({ "detail": "Current password is incorrect" }),
        )
        .await;
    }
    let locked = json!({ "detail": "Too many failed login attempts; try again later" });
    let response = put_password(&app, &token, &wrong).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_json(response, 429, locked.clone()).await;
    // The account is locked for logins too, even with the right password.
    let response = app
        .login(&json!({ "username": "alice", "password": PASSWORD }))
        .await;
    assert!(response.headers().contains_key("retry-after"));
    assert_json(response, 429, locked).await;
}

#[tokio::test]
async fn put_password_needs_a_credential() {
    let app = spawn_app().await;
    let response = app
        .request(Method::PUT, "/password", Auth::None)
        .json(&json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_not_authorized(response).await;
}
