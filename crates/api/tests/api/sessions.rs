//! Server-side sessions: `POST /auth`, `DELETE /auth`, `POST /logout`,
//! `POST /token/refresh` (rotation and reuse), `GET /sessions`,
//! `DELETE /sessions/{id}`, the absolute session lifetime and access-token expiry.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Auth, PASSWORD, TestApp, Tokens, assert_hello_world, assert_json, assert_no_content,
    assert_not_authorized, assert_refused_everywhere, detail, jwt_payload, now, sid, spawn_app,
    spawn_app_with, spawn_app_without_ip_limit,
};

const INVALID_REFRESH: &str = "Invalid refresh token";

/// Asserts a refresh token is 32 random bytes as base64url without padding.
fn assert_refresh_token_shape(refresh_token: &str) {
    assert_eq!(refresh_token.len(), 43, "{refresh_token:?}");
    let bytes = URL_SAFE_NO_PAD
        .decode(refresh_token)
        .unwrap_or_else(|_| panic!("not base64url without padding: {refresh_token:?}"));
    assert_eq!(bytes.len(), 32);
}

fn sorted_keys(body: &Value) -> Vec<String> {
    let mut keys: Vec<String> = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Asserts the exact shape of a login response (`POST /login`, `POST /auth`).
async fn assert_login_response(response: reqwest::Response, expires_in: u64) -> Tokens {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        sorted_keys(&body),
        [
            "expires_in",
            "message",
            "refresh_token",
            "token",
            "token_type"
        ]
    );
    assert_eq!(body["message"], "Login successful");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], expires_in);
    let tokens = Tokens {
        token: body["token"].as_str().unwrap().to_owned(),
        refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
    };
    assert_refresh_token_shape(&tokens.refresh_token);
    let session = uuid::Uuid::parse_str(&sid(&tokens.token)).expect("sid is a UUID");
    assert_eq!(session.get_version_num(), 4, "sid is a UUID v4");
    tokens
}

/// Asserts the exact shape of a `POST /token/refresh` success.
async fn assert_refresh_response(response: reqwest::Response, expires_in: u64) -> Tokens {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        sorted_keys(&body),
        ["expires_in", "refresh_token", "token", "token_type"]
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], expires_in);
    let tokens = Tokens {
        token: body["token"].as_str().unwrap().to_owned(),
        refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
    };
    assert_refresh_token_shape(&tokens.refresh_token);
    tokens
}

async fn assert_invalid_refresh(app: &TestApp, refresh_token: &str) {
    assert_json(
        app.refresh(refresh_token).await,
        401,
        json!({ "detail": INVALID_REFRESH }),
    )
    .await;
}

/// Asserts the exact shape of one `Session` of `GET /sessions`.
fn assert_session_shape(session: &Value) {
    assert_eq!(
        sorted_keys(session),
        [
            "client_ip",
            "created_at",
            "current",
            "expires_at",
            "id",
            "kind",
            "last_used_at",
            "user_agent",
        ]
    );
    let id = uuid::Uuid::parse_str(session["id"].as_str().unwrap()).expect("a UUID id");
    assert_eq!(id.get_version_num(), 4);
    let created_at = session["created_at"].as_i64().expect("integer created_at");
    let last_used_at = session["last_used_at"]
        .as_i64()
        .expect("integer last_used_at");
    assert!(session["expires_at"].is_i64(), "integer expires_at");
    assert!(
        (now() - 600..=now()).contains(&created_at),
        "created_at {created_at} is a recent Unix time"
    );
    assert!(
        (created_at..=now()).contains(&last_used_at),
        "last_used_at {last_used_at} between created_at {created_at} and now"
    );
    assert!(session["current"].is_boolean());
}

fn ids(sessions: &[Value]) -> Vec<String> {
    sessions
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------- logins

#[tokio::test]
async fn login_and_auth_return_an_access_and_a_refresh_token_for_a_new_session() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let mut all = Vec::new();
    for (path, body) in [
        (
            "/login",
            json!({ "email": "alice@example.com", "password": PASSWORD }),
        ),
        (
            "/login",
            json!({ "username": "alice", "password": PASSWORD }),
        ),
        (
            "/auth",
            json!({ "username": "alice", "password": PASSWORD }),
        ),
        (
            "/auth",
            json!({ "email": "alice@example.com", "password": PASSWORD }),
        ),
    ] {
        let tokens = assert_login_response(app.post_json(path, &body).await, 900).await;
        // The access token works at once.
        assert_eq!(app.get_secret(&tokens.token, "alice").await.status(), 404);
        all.push(tokens);
    }
    let sids: HashSet<String> = all.iter().map(|t| sid(&t.token)).collect();
    let refresh_tokens: HashSet<&str> = all.iter().map(|t| t.refresh_token.as_str()).collect();
    assert_eq!(sids.len(), 4, "each login starts its own session");
    assert_eq!(refresh_tokens.len(), 4);

    let sessions = app.sessions(Auth::Bearer(&all[0].token)).await;
    assert_eq!(sessions.len(), 4);
    let listed: HashSet<String> = ids(&sessions).into_iter().collect();
    assert_eq!(listed, sids);
    for session in &sessions {
        assert_session_shape(session);
        assert_eq!(session["kind"], "bearer");
    }
}

#[tokio::test]
async fn auth_refuses_bad_credentials_exactly_like_login() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    for body in [
        json!({ "username": "alice", "password": "wrong password!" }),
        json!({ "username": "nobody", "password": PASSWORD }),
        json!({ "email": "alice@example.com", "password": "wrong password!" }),
        json!({ "email": "nobody@example.com", "password": PASSWORD }),
    ] {
        let response = app.auth(&body).await;
        assert!(response.headers().get("www-authenticate").is_none());
        assert_json(
            response,
            401,
            json!({ "detail": "Invalid email or password" }),
        )
        .await;
    }
}

// ---------------------------------------------------------------- logout

async fn logging_out_ends_only_the_current_session(method: Method, path: &str) {
    let app = spawn_app_without_ip_limit().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let ending = app.login_tokens("alice").await;
    let staying = app.login_tokens("alice").await;
    assert_eq!(
        app.set_secret(&ending.token, "alice", "kept")
            .await
            .status(),
        200
    );

    let response = app
        .request(method, path, Auth::Bearer(&ending.token))
        .send()
        .await
        .unwrap();
    assert_no_content(response, 204).await;

    // The ended session is refused everywhere (a second logout included) and
    // cannot be refreshed; GET / no longer knows the caller.
    assert_refused_everywhere(&app, Auth::Bearer(&ending.token), "alice").await;
    assert_hello_world(&app, Auth::Bearer(&ending.token)).await;
    assert_invalid_refresh(&app, &ending.refresh_token).await;

    // The other session goes on.
    let sessions = app.sessions(Auth::Bearer(&staying.token)).await;
    assert_eq!(ids(&sessions), [sid(&staying.token)]);
    assert_eq!(sessions[0]["current"], true);
    assert_json(
        app.get_secret(&staying.token, "alice").await,
        200,
        json!({ "secret": "kept" }),
    )
    .await;
    let refreshed = app.refreshed(&staying.refresh_token).await;
    assert_eq!(
        app.get_secret(&refreshed.token, "alice").await.status(),
        200
    );
}

#[tokio::test]
async fn delete_auth_ends_only_the_current_session() {
    logging_out_ends_only_the_current_session(Method::DELETE, "/auth").await;
}

#[tokio::test]
async fn post_logout_ends_only_the_current_session() {
    logging_out_ends_only_the_current_session(Method::POST, "/logout").await;
}

// ---------------------------------------------------------------- refresh

#[tokio::test]
async fn a_refresh_rotates_both_tokens_within_the_same_session() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let first = app.login_tokens("alice").await;
    let before = app.sessions(Auth::Bearer(&first.token)).await;
    assert_eq!(before.len(), 1);

    let second = assert_refresh_response(app.refresh(&first.refresh_token).await, 900).await;
    assert_ne!(second.token, first.token);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(sid(&second.token), sid(&first.token), "the same session");
    assert_ne!(
        jwt_payload(&second.token)["jti"],
        jwt_payload(&first.token)["jti"]
    );
    assert_eq!(
        jwt_payload(&second.token)["sub"],
        jwt_payload(&first.token)["sub"]
    );

    // Still one session, with the same lifetime: refreshing never extends it.
    let after = app.sessions(Auth::Bearer(&second.token)).await;
    assert_eq!(ids(&after), ids(&before));
    assert_eq!(after[0]["created_at"], before[0]["created_at"]);
    assert_eq!(after[0]["expires_at"], before[0]["expires_at"]);
    assert_eq!(after[0]["current"], true);

    // The new refresh token is the one that works next.
    let third = assert_refresh_response(app.refresh(&second.refresh_token).await, 900).await;
    assert_eq!(sid(&third.token), sid(&first.token));
    assert_eq!(app.get_secret(&third.token, "alice").await.status(), 404);
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_ends_the_whole_session() {
    let app = spawn_app_without_ip_limit().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let first = app.login_tokens("alice").await;
    let bystander = app.login_tokens("alice").await;
    let second = app.refreshed(&first.refresh_token).await;
    let newest = app.refreshed(&second.refresh_token).await;
    assert_eq!(app.get_secret(&newest.token, "alice").await.status(), 404);

    // The first refresh token was spent by the first rotation: using it again is reuse.
    assert_invalid_refresh(&app, &first.refresh_token).await;

    // The whole session has ended: its newest tokens fail too, and so do the older ones.
    assert_invalid_refresh(&app, &newest.refresh_token).await;
    assert_refused_everywhere(&app, Auth::Bearer(&newest.token), "alice").await;
    for token in [&first.token, &second.token] {
        assert_not_authorized(app.get_secret(token, "alice").await).await;
    }
    assert_hello_world(&app, Auth::Bearer(&newest.token)).await;

    // Another session of the same user is not affected.
    let sessions = app.sessions(Auth::Bearer(&bystander.token)).await;
    assert_eq!(ids(&sessions), [sid(&bystander.token)]);
    let refreshed = app.refreshed(&bystander.refresh_token).await;
    assert_eq!(
        app.get_secret(&refreshed.token, "alice").await.status(),
        404
    );
}

#[tokio::test]
async fn replaying_a_refresh_token_right_after_its_rotation_ends_the_session() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let first = app.login_tokens("alice").await;
    let second = app.refreshed(&first.refresh_token).await;
    // A replay of the token just spent, as an attacker who copied it would send it.
    assert_invalid_refresh(&app, &first.refresh_token).await;
    assert_invalid_refresh(&app, &second.refresh_token).await;
    assert_not_authorized(app.get_secret(&second.token, "alice").await).await;
}

#[tokio::test]
async fn unknown_refresh_tokens_are_401_and_a_missing_one_is_422() {
    let app = spawn_app().await;
    let access = app.user_with_token("alice").await;
    let never_issued = URL_SAFE_NO_PAD.encode([7_u8; 32]);
    for refresh_token in [never_issued.as_str(), "garbage", access.as_str()] {
        assert_invalid_refresh(&app, refresh_token).await;
    }
    let response = app.post_json("/token/refresh", &json!({})).await;
    assert_eq!(detail(response, 422).await, "refresh_token: field required");
    // None of that ended alice's session.
    assert_eq!(app.get_secret(&access, "alice").await.status(), 404);
}

// ---------------------------------------------------------------- GET /sessions

#[tokio::test]
async fn the_session_list_describes_each_session_of_the_caller_newest_first() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let response = app
        .client
        .post(app.url("/login"))
        .header("user-agent", "first-agent/1.0")
        .json(&json!({ "username": "alice", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let oldest = assert_login_response(response, 900).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let response = app
        .client
        .post(app.url("/auth"))
        .header("user-agent", "second-agent/2.0")
        .json(&json!({ "username": "alice", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let middle = assert_login_response(response, 900).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let cookie = app.cookie_login_for("alice").await;
    // Bob's session is never listed for alice.
    let bob = app.user_with_token("bob").await;

    let sessions = app.sessions(Auth::Bearer(&middle.token)).await;
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    for session in &sessions {
        assert_session_shape(session);
        assert_eq!(session["client_ip"], "127.0.0.1");
        assert_eq!(
            session["expires_at"].as_i64().unwrap() - session["created_at"].as_i64().unwrap(),
            86_400,
            "the default absolute lifetime"
        );
    }
    let created: Vec<i64> = sessions
        .iter()
        .map(|s| s["created_at"].as_i64().unwrap())
        .collect();
    assert!(
        created[0] > created[1] && created[1] > created[2],
        "newest first: {created:?}"
    );
    let (newest, mid, old) = (&sessions[0], &sessions[1], &sessions[2]);
    assert_eq!(newest["kind"], "cookie");
    assert_eq!(newest["user_agent"], Value::Null);
    assert_eq!(newest["current"], false);
    assert_eq!(mid["id"], sid(&middle.token).as_str());
    assert_eq!(mid["kind"], "bearer");
    assert_eq!(mid["user_agent"], "second-agent/2.0");
    assert_eq!(mid["current"], true);
    assert_eq!(old["id"], sid(&oldest.token).as_str());
    assert_eq!(old["kind"], "bearer");
    assert_eq!(old["user_agent"], "first-agent/1.0");
    assert_eq!(old["current"], false);

    // Listed through the cookie, the same sessions, with the cookie one current.
    let through_cookie = app.sessions(Auth::Cookie(&cookie)).await;
    assert_eq!(ids(&through_cookie), ids(&sessions));
    let current: Vec<bool> = through_cookie
        .iter()
        .map(|s| s["current"].as_bool().unwrap())
        .collect();
    assert_eq!(current, [true, false, false]);

    let bobs = app.sessions(Auth::Bearer(&bob)).await;
    assert_eq!(ids(&bobs), [sid(&bob)]);
    assert_eq!(bobs[0]["current"], true);
}

#[tokio::test]
async fn a_long_user_agent_is_cut_to_256_characters() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let agent = format!("{}{}", "a".repeat(256), "b".repeat(44));
    let response = app
        .client
        .post(app.url("/login"))
        .header("user-agent", &agent)
        .json(&json!({ "username": "alice", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let tokens = assert_login_response(response, 900).await;
    let sessions = app.sessions(Auth::Bearer(&tokens.token)).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["user_agent"], "a".repeat(256).as_str());
}

#[tokio::test]
async fn the_session_lifetime_is_configurable() {
    let app = spawn_app_with(|config| config.session_ttl = Duration::from_secs(3_600)).await;
    let token = app.user_with_token("alice").await;
    let sessions = app.sessions(Auth::Bearer(&token)).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0]["expires_at"].as_i64().unwrap() - sessions[0]["created_at"].as_i64().unwrap(),
        3_600
    );
}

// ---------------------------------------------------------------- DELETE /sessions/{id}

async fn delete_session(app: &TestApp, auth: Auth<'_>, id: &str) -> reqwest::Response {
    app.request(Method::DELETE, &format!("/sessions/{id}"), auth)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn deleting_a_session_by_id_ends_that_session_only() {
    let app = spawn_app_without_ip_limit().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let mine = app.login_tokens("alice").await;
    let other = app.login_tokens("alice").await;
    let bob = app.user_with_tokens("bob").await;
    let admin = app.admin_with_token("root").await;
    let not_found = json!({ "detail": "Session not found" });

    // Someone else's session, an unknown id and a malformed one are all 404.
    let bobs_session = sid(&bob.token);
    let unknown = uuid::Uuid::new_v4().to_string();
    for id in [bobs_session.as_str(), unknown.as_str(), "not-a-uuid"] {
        let response = delete_session(&app, Auth::Bearer(&mine.token), id).await;
        assert_json(response, 404, not_found.clone()).await;
    }
    // Admins too can end only their own sessions.
    let response = delete_session(&app, Auth::Bearer(&admin), &sid(&mine.token)).await;
    assert_json(response, 404, not_found.clone()).await;
    assert_eq!(app.sessions(Auth::Bearer(&bob.token)).await.len(), 1);
    assert_eq!(app.sessions(Auth::Bearer(&mine.token)).await.len(), 2);

    // Alice ends her other session.
    let response = delete_session(&app, Auth::Bearer(&mine.token), &sid(&other.token)).await;
    assert_no_content(response, 204).await;
    assert_refused_everywhere(&app, Auth::Bearer(&other.token), "alice").await;
    assert_invalid_refresh(&app, &other.refresh_token).await;
    let sessions = app.sessions(Auth::Bearer(&mine.token)).await;
    assert_eq!(ids(&sessions), [sid(&mine.token)]);
    // Gone now, so a second delete is 404.
    let response = delete_session(&app, Auth::Bearer(&mine.token), &sid(&other.token)).await;
    assert_json(response, 404, not_found).await;

    // Her current session can be ended by id as well.
    let response = delete_session(&app, Auth::Bearer(&mine.token), &sid(&mine.token)).await;
    assert_no_content(response, 204).await;
    assert_not_authorized(app.get_secret(&mine.token, "alice").await).await;
    assert_invalid_refresh(&app, &mine.refresh_token).await;

    // Bob never noticed.
    assert_eq!(app.get_secret(&bob.token, "bob").await.status(), 404);
}

// ---------------------------------------------------------------- expiry

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_even_when_refreshed() {
    let app = spawn_app_with(|config| {
        config.session_ttl = Duration::from_secs(3);
        config.ip_rate_per_minute = 0;
    })
    .await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let first = app.login_tokens("alice").await;
    let response = app
        .post_json(
            "/sessions",
            &json!({ "username": "alice", "password": PASSWORD }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let set_cookie = crate::helpers::session_set_cookie(&response);
    assert!(
        set_cookie
            .normalised_attributes()
            .contains(&"max-age=3".to_owned()),
        "{}",
        set_cookie.raw
    );
    let cookie = set_cookie.value;

    let before = app.sessions(Auth::Bearer(&first.token)).await;
    let bearer = before
        .iter()
        .find(|s| s["id"] == sid(&first.token).as_str())
        .unwrap()
        .clone();
    let expires_at = bearer["expires_at"].as_i64().unwrap();
    assert_eq!(expires_at - bearer["created_at"].as_i64().unwrap(), 3);

    // Refreshed while alive: works, and does not move the end.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let second = app.refreshed(&first.refresh_token).await;
    let after = app.sessions(Auth::Bearer(&second.token)).await;
    let bearer = after
        .iter()
        .find(|s| s["id"] == sid(&first.token).as_str())
        .unwrap();
    assert_eq!(bearer["expires_at"], expires_at);

    // Past the absolute lifetime everything of both sessions is refused.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    assert_refused_everywhere(&app, Auth::Bearer(&second.token), "alice").await;
    assert_refused_everywhere(&app, Auth::Cookie(&cookie), "alice").await;
    assert_hello_world(&app, Auth::Bearer(&second.token)).await;
    assert_invalid_refresh(&app, &second.refresh_token).await;

    // A new login starts a new session.
    let fresh = app.login_tokens("alice").await;
    assert_eq!(app.get_secret(&fresh.token, "alice").await.status(), 404);
}

#[tokio::test]
async fn an_expired_access_token_is_refused_but_its_session_can_be_refreshed() {
    let app = spawn_app_with(|config| {
        config.access_token_ttl = Duration::from_secs(1);
        config.ip_rate_per_minute = 0;
    })
    .await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let response = app
        .login(&json!({ "username": "alice", "password": PASSWORD }))
        .await;
    let tokens = assert_login_response(response, 1).await;
    assert_eq!(app.get_secret(&tokens.token, "alice").await.status(), 404);

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_refused_everywhere(&app, Auth::Bearer(&tokens.token), "alice").await;
    assert_hello_world(&app, Auth::Bearer(&tokens.token)).await;

    // The session itself lives on (24 h): the refresh token gets a fresh access token.
    let fresh = assert_refresh_response(app.refresh(&tokens.refresh_token).await, 1).await;
    assert_eq!(sid(&fresh.token), sid(&tokens.token));
    assert_eq!(app.get_secret(&fresh.token, "alice").await.status(), 404);
}

// ---------------------------------------------------------------- forged tokens

fn sign(app: &TestApp, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(&app.jwt_secret),
    )
    .unwrap()
}

#[tokio::test]
async fn a_correctly_signed_token_without_a_live_session_is_refused() {
    let app = spawn_app_without_ip_limit().await;
    let token = app.user_with_token("alice").await;
    let claims = jwt_payload(&token);
    // Sanity check: the same claims re-signed are accepted, so the refusals below
    // are about the session.
    assert_eq!(
        app.get_secret(&sign(&app, &claims), "alice").await.status(),
        404
    );

    let mut unknown_session = claims.clone();
    unknown_session["sid"] = json!(uuid::Uuid::new_v4().to_string());
    let unknown_session = sign(&app, &unknown_session);
    assert_refused_everywhere(&app, Auth::Bearer(&unknown_session), "alice").await;
    assert_hello_world(&app, Auth::Bearer(&unknown_session)).await;

    let mut no_session = claims.clone();
    no_session.as_object_mut().unwrap().remove("sid");
    let no_session = sign(&app, &no_session);
    assert_refused_everywhere(&app, Auth::Bearer(&no_session), "alice").await;

    // An expired token of a live session.
    let mut expired = claims.clone();
    expired["iat"] = json!(claims["iat"].as_i64().unwrap() - 3600);
    expired["exp"] = json!(claims["iat"].as_i64().unwrap() - 1);
    let expired = sign(&app, &expired);
    assert_refused_everywhere(&app, Auth::Bearer(&expired), "alice").await;
    assert_hello_world(&app, Auth::Bearer(&expired)).await;

    // The real token is still fine.
    assert_eq!(app.get_secret(&token, "alice").await.status(), 404);
}

// ---------------------------------------------------------------- rate limits

#[tokio::test]
async fn the_new_credential_routes_are_limited_per_client_ip() {
    let app = spawn_app_with(|config| {
        config.ip_rate_burst = 2;
        config.ip_rate_per_minute = 1;
    })
    .await;
    // Registering and logging in use up the burst.
    app.register("alice@example.com", "alice", PASSWORD).await;
    let tokens = app.login_tokens("alice").await;

    let credentials = json!({ "username": "alice", "password": PASSWORD });
    let requests = [
        (
            "POST /user",
            app.client
                .post(app.url("/user"))
                .json(&json!({ "username": "newbie", "password": PASSWORD })),
        ),
        (
            "POST /auth",
            app.client.post(app.url("/auth")).json(&credentials),
        ),
        (
            "POST /sessions",
            app.client.post(app.url("/sessions")).json(&credentials),
        ),
        (
            "POST /token/refresh",
            app.client
                .post(app.url("/token/refresh"))
                .json(&json!({ "refresh_token": tokens.refresh_token })),
        ),
        (
            "PUT /password",
            app.client
                .put(app.url("/password"))
                .bearer_auth(&tokens.token)
                .json(&json!({
                    "current_password": PASSWORD,
                    "new_password": crate::helpers::NEW_PASSWORD,
                })),
        ),
    ];
    for (name, request) in requests {
        let response = request.send().await.unwrap();
        assert!(
            response.headers().contains_key("retry-after"),
            "{name} has Retry-After"
        );
        assert_eq!(
            detail(response, 429).await,
            "Too many requests from this address; try again later",
            "{name}"
        );
    }
    // Routes that take no credentials in the body are not limited.
    let sessions = app.sessions(Auth::Bearer(&tokens.token)).await;
    assert_eq!(sessions.len(), 1);
    let response = app
        .request(Method::DELETE, "/auth", Auth::Bearer(&tokens.token))
        .send()
        .await
        .unwrap();
    assert_no_content(response, 204).await;
}

// ---------------------------------------------------------------- storage

#[tokio::test]
async fn refresh_tokens_and_session_cookies_are_never_stored_in_clear() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let response = app
        .client
        .post(app.url("/login"))
        .header("user-agent", "storage-canary-agent")
        .json(&json!({ "username": "alice", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let first = assert_login_response(response, 900).await;
    let second = app.refreshed(&first.refresh_token).await;
    let cookie = app.cookie_login_for("alice").await;

    let all: Vec<u8> = std::fs::read_dir(app.data_dir.path())
        .unwrap()
        .flat_map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    for needle in [
        first.refresh_token.as_str(),
        second.refresh_token.as_str(),
        cookie.as_str(),
    ] {
        assert!(
            !all.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle:?} is stored in clear"
        );
    }
    // The sessions themselves are stored: the scan sees the sessions table.
    let canary = b"storage-canary-agent";
    assert!(all.windows(canary.len()).any(|w| w == canary));
}
