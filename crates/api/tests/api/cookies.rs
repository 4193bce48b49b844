//! Cookie sessions: `POST /sessions` (JSON and form), the cookie's attributes,
//! `GET /profile`, `DELETE /sessions`, and the CSRF rule for cookie-only state
//! changes. The client has no cookie store: each test sends the `Cookie` header
//! itself, from the `Set-Cookie` it received.

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::helpers::{
    Auth, CSRF_REFUSED, NEW_PASSWORD, PASSWORD, TestApp, TlsApp, assert_json, assert_no_content,
    assert_not_authorized, assert_refused_everywhere, assert_user, session_set_cookie, sid,
    spawn_app, spawn_app_without_ip_limit, spawn_tls_app,
};

/// The attributes every session cookie carries over plain HTTP, with the default
/// 24 h lifetime (normalised: lower case, sorted, `Expires` left out).
const PLAIN_ATTRIBUTES: [&str; 4] = ["httponly", "max-age=86400", "path=/", "samesite=strict"];

fn with_cookie(app: &TestApp, method: Method, path: &str, cookie: &str) -> RequestBuilder {
    app.request(method, path, Auth::Cookie(cookie))
}

async fn profile(app: &TestApp, auth: Auth<'_>) -> reqwest::Response {
    app.request(Method::GET, "/profile", auth)
        .send()
        .await
        .unwrap()
}

fn alice_profile() -> Value {
    json!({ "username": "alice", "email": "alice@example.com" })
}

/// Asserts a session cookie value looks like an opaque 256-bit random token.
fn assert_opaque(value: &str) {
    assert!(value.len() >= 43, "at least 256 bits: {value:?}");
    assert!(
        value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "URL-safe characters only: {value:?}"
    );
}

fn port_of(app: &TestApp) -> u16 {
    app.address.rsplit(':').next().unwrap().parse().unwrap()
}

// ---------------------------------------------------------------- POST /sessions

#[tokio::test]
async fn a_json_cookie_login_sets_a_strict_http_only_session_cookie() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;

    let mut values = Vec::new();
    for body in [
        json!({ "email": "alice@example.com", "password": PASSWORD }),
        json!({ "username": "alice", "password": PASSWORD }),
    ] {
        let response = app.post_json("/sessions", &body).await;
        let cookie = session_set_cookie(&response);
        assert_json(
            response,
            200,
            json!({ "email": "alice@example.com", "message": "logged in" }),
        )
        .await;
        assert_eq!(
            cookie.normalised_attributes(),
            PLAIN_ATTRIBUTES,
            "{}",
            cookie.raw
        );
        assert_opaque(&cookie.value);
        values.push(cookie.value);
    }
    assert_ne!(values[0], values[1], "each login gets its own cookie");

    // Both are live cookie sessions.
    for value in &values {
        assert_json(
            profile(&app, Auth::Cookie(value)).await,
            200,
            alice_profile(),
        )
        .await;
    }
    let sessions = app.sessions(Auth::Cookie(&values[1])).await;
    assert_eq!(sessions.len(), 2);
    assert!(
        sessions.iter().all(|s| s["kind"] == "cookie"),
        "{sessions:?}"
    );
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{sessions:?}");
    // The cookie is not a session id.
    for session in &sessions {
        assert!(!values.contains(&session["id"].as_str().unwrap().to_owned()));
    }
}

#[tokio::test]
async fn a_cross_site_form_login_is_refused() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let form = [("username", "alice"), ("password", PASSWORD)];
    for origin in [None, Some("http://evil.example"), Some("null")] {
        let mut request = app.client.post(app.url("/sessions")).form(&form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        assert!(response.headers().get("set-cookie").is_none());
        assert_json(response, 403, json!({ "detail": CSRF_REFUSED })).await;
    }
    // A JSON login needs no Origin: no page can send one cross-site without a
    // CORS preflight, which safebox never grants.
    let response = app
        .post_json(
            "/sessions",
            &json!({ "username": "alice", "password": PASSWORD }),
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_form_cookie_login_works_by_username_or_email() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    for form in [
        [("username", "alice"), ("password", PASSWORD)],
        [("email", "alice@example.com"), ("password", PASSWORD)],
    ] {
        let response = app
            .client
            .post(app.url("/sessions"))
            .header("origin", &app.address)
            .form(&form)
            .send()
            .await
            .unwrap();
        let cookie = session_set_cookie(&response);
        assert_json(
            response,
            200,
            json!({ "email": "alice@example.com", "message": "logged in" }),
        )
        .await;
        assert_eq!(cookie.normalised_attributes(), PLAIN_ATTRIBUTES);
        assert_json(
            profile(&app, Auth::Cookie(&cookie.value)).await,
            200,
            alice_profile(),
        )
        .await;
    }
    let response = app
        .client
        .post(app.url("/sessions"))
        .header("x-requested-with", "XMLHttpRequest")
        .form(&[("username", "alice"), ("password", "wrong password!")])
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("set-cookie").is_none());
    assert_json(
        response,
        401,
        json!({ "detail": "Invalid email or password" }),
    )
    .await;
}

#[tokio::test]
async fn a_failed_cookie_login_is_401_and_sets_no_cookie() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    for body in [
        json!({ "username": "alice", "password": "wrong password!" }),
        json!({ "email": "alice@example.com", "password": "wrong password!" }),
        json!({ "username": "nobody", "password": PASSWORD }),
        json!({ "email": "nobody@example.com", "password": PASSWORD }),
    ] {
        let response = app.post_json("/sessions", &body).await;
        assert!(response.headers().get("set-cookie").is_none(), "{body}");
        assert_json(
            response,
            401,
            json!({ "detail": "Invalid email or password" }),
        )
        .await;
    }
}

#[tokio::test]
async fn a_cookie_login_of_an_account_without_email_reports_a_null_email() {
    let app = spawn_app().await;
    let response = app
        .sign_up(&json!({ "username": "nomail", "password": PASSWORD }))
        .await;
    assert_eq!(response.status(), 201);
    let response = app
        .post_json(
            "/sessions",
            &json!({ "username": "nomail", "password": PASSWORD }),
        )
        .await;
    let cookie = session_set_cookie(&response);
    assert_json(
        response,
        200,
        json!({ "email": null, "message": "logged in" }),
    )
    .await;
    assert_json(
        profile(&app, Auth::Cookie(&cookie.value)).await,
        200,
        json!({ "username": "nomail", "email": null }),
    )
    .await;
}

// ---------------------------------------------------------------- GET /profile

#[tokio::test]
async fn profile_answers_to_the_cookie_or_a_bearer_token_and_to_nothing_else() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    let cookie = app.cookie_login_for("alice").await;

    assert_json(
        profile(&app, Auth::Cookie(&cookie)).await,
        200,
        alice_profile(),
    )
    .await;
    assert_json(
        profile(&app, Auth::Bearer(&token)).await,
        200,
        alice_profile(),
    )
    .await;

    assert_not_authorized(profile(&app, Auth::None).await).await;
    assert_not_authorized(profile(&app, Auth::Cookie("not-a-session")).await).await;
    // The two credentials are not interchangeable.
    assert_not_authorized(profile(&app, Auth::Cookie(&token)).await).await;
    assert_not_authorized(profile(&app, Auth::Bearer(&cookie)).await).await;
    // Only the safebox_session cookie counts.
    let response = app
        .client
        .get(app.url("/profile"))
        .header("cookie", format!("session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_not_authorized(response).await;

    // Reads through the cookie need no Origin or X-Requested-With.
    assert_user(
        with_cookie(&app, Method::GET, "/user/alice", &cookie)
            .send()
            .await
            .unwrap(),
        200,
        json!({
            "username": "alice",
            "email": "alice@example.com",
            "data": {},
            "role": "user",
        }),
    )
    .await;
    assert_eq!(app.sessions(Auth::Cookie(&cookie)).await.len(), 2);
}

#[tokio::test]
async fn the_authorization_header_wins_over_the_cookie() {
    let app = spawn_app().await;
    app.user_with_token("alice").await;
    let alice_cookie = app.cookie_login_for("alice").await;
    let bob = app.user_with_token("bob").await;

    let response = app
        .request(Method::GET, "/profile", Auth::Bearer(&bob))
        .header("cookie", format!("safebox_session={alice_cookie}"))
        .send()
        .await
        .unwrap();
    assert_json(
        response,
        200,
        json!({ "username": "bob", "email": "bob@example.com" }),
    )
    .await;

    // A bad Authorization header is not rescued by a good cookie.
    let response = app
        .request(Method::GET, "/profile", Auth::Bearer("not.a.jwt"))
        .header("cookie", format!("safebox_session={alice_cookie}"))
        .send()
        .await
        .unwrap();
    assert_not_authorized(response).await;

    // With an Authorization header the request is not cookie-only: no CSRF headers needed.
    let response = app
        .request(Method::PUT, "/user/bob", Auth::Bearer(&bob))
        .header("cookie", format!("safebox_session={alice_cookie}"))
        .json(&json!({ "data": { "by": "bob" } }))
        .send()
        .await
        .unwrap();
    assert_user(
        response,
        200,
        json!({
            "username": "bob",
            "email": "bob@example.com",
            "data": { "by": "bob" },
            "role": "user",
        }),
    )
    .await;
}

// ---------------------------------------------------------------- DELETE /sessions

#[tokio::test]
async fn delete_sessions_ends_the_cookie_session_and_clears_the_cookie() {
    let app = spawn_app_without_ip_limit().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let ending = app.cookie_login_for("alice").await;
    let staying = app.cookie_login_for("alice").await;
    let bearer = app.login_tokens("alice").await;

    let response = with_cookie(&app, Method::DELETE, "/sessions", &ending)
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    let cleared = session_set_cookie(&response);
    assert_no_content(response, 204).await;
    assert_eq!(cleared.value, "", "{}", cleared.raw);
    assert!(
        cleared
            .normalised_attributes()
            .contains(&"max-age=0".to_owned()),
        "{}",
        cleared.raw
    );

    assert_refused_everywhere(&app, Auth::Cookie(&ending), "alice").await;
    assert_json(
        profile(&app, Auth::Cookie(&staying)).await,
        200,
        alice_profile(),
    )
    .await;
    assert_json(
        profile(&app, Auth::Bearer(&bearer.token)).await,
        200,
        alice_profile(),
    )
    .await;
    assert_eq!(app.sessions(Auth::Cookie(&staying)).await.len(), 2);

    // Through a bearer token it ends the bearer session, and clears the cookie too.
    let response = app
        .request(Method::DELETE, "/sessions", Auth::Bearer(&bearer.token))
        .send()
        .await
        .unwrap();
    let cleared = session_set_cookie(&response);
    assert_no_content(response, 204).await;
    assert_eq!(cleared.value, "");
    assert!(
        cleared
            .normalised_attributes()
            .contains(&"max-age=0".to_owned())
    );
    assert_not_authorized(profile(&app, Auth::Bearer(&bearer.token)).await).await;
    assert_json(
        app.refresh(&bearer.refresh_token).await,
        401,
        json!({ "detail": "Invalid refresh token" }),
    )
    .await;
    assert_eq!(app.sessions(Auth::Cookie(&staying)).await.len(), 1);
}

// ---------------------------------------------------------------- CSRF

#[tokio::test]
async fn cookie_only_state_changes_need_a_matching_origin_or_x_requested_with() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let cookie = app.cookie_login_for("alice").await;
    let port = port_of(&app);
    let put = |n: u32| {
        with_cookie(&app, Method::PUT, "/user/alice", &cookie).json(&json!({ "data": { "n": n } }))
    };
    let user_with = |n: u32| {
        json!({
            "username": "alice",
            "email": "alice@example.com",
            "data": { "n": n },
            "role": "user",
        })
    };

    let response = put(0).send().await.unwrap();
    assert_json(response, 403, json!({ "detail": CSRF_REFUSED })).await;
    for origin in [
        "http://evil.example".to_owned(),
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}.evil.example"),
        "null".to_owned(),
    ] {
        let response = put(0).header("origin", &origin).send().await.unwrap();
        assert_json(response, 403, json!({ "detail": CSRF_REFUSED })).await;
    }
    // Nothing was written.
    let response = with_cookie(&app, Method::GET, "/user/alice", &cookie)
        .send()
        .await
        .unwrap();
    assert_user(
        response,
        200,
        json!({ "username": "alice", "email": "alice@example.com", "data": {}, "role": "user" }),
    )
    .await;

    // The server's own origin, or X-Requested-With with any value, lets it through.
    let response = put(1).header("origin", &app.address).send().await.unwrap();
    assert_user(response, 200, user_with(1)).await;
    let response = put(2)
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_user(response, 200, user_with(2)).await;
    let response = put(3).header("x-requested-with", "1").send().await.unwrap();
    assert_user(response, 200, user_with(3)).await;
}

#[tokio::test]
async fn every_cookie_only_state_change_without_the_headers_is_refused() {
    let app = spawn_app_without_ip_limit().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let cookie = app.cookie_login_for("alice").await;
    let other = app.login_tokens("alice").await;
    let other_session = format!("/sessions/{}", sid(&other.token));
    let attempts = [
        (Method::POST, "/logout", None),
        (Method::DELETE, "/auth", None),
        (Method::DELETE, "/sessions", None),
        (Method::DELETE, other_session.as_str(), None),
        (
            Method::PUT,
            "/password",
            Some(json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD })),
        ),
        (
            Method::PUT,
            "/user/alice",
            Some(json!({ "data": { "forged": true } })),
        ),
        (Method::DELETE, "/user/alice", None),
    ];
    for (method, path, body) in attempts {
        let mut request = with_cookie(&app, method.clone(), path, &cookie);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
        assert_json(response, 403, json!({ "detail": CSRF_REFUSED })).await;
    }

    // None of them did anything: both sessions live, the password and data are as before.
    assert_json(
        profile(&app, Auth::Cookie(&cookie)).await,
        200,
        alice_profile(),
    )
    .await;
    assert_eq!(app.sessions(Auth::Bearer(&other.token)).await.len(), 2);
    assert_user(
        app.request(Method::GET, "/user/alice", Auth::Bearer(&other.token))
            .send()
            .await
            .unwrap(),
        200,
        json!({ "username": "alice", "email": "alice@example.com", "data": {}, "role": "user" }),
    )
    .await;
    let response = app
        .login(&json!({ "username": "alice", "password": PASSWORD }))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_cookie_only_logout_with_x_requested_with_ends_the_session() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    for (method, path) in [(Method::POST, "/logout"), (Method::DELETE, "/auth")] {
        let cookie = app.cookie_login_for("alice").await;
        let response = with_cookie(&app, method, path, &cookie)
            .header("x-requested-with", "XMLHttpRequest")
            .send()
            .await
            .unwrap();
        assert_no_content(response, 204).await;
        assert_not_authorized(profile(&app, Auth::Cookie(&cookie)).await).await;
    }
}

#[tokio::test]
async fn bearer_requests_need_no_origin() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    for (n, origin) in [(1, None), (2, Some("http://evil.example"))] {
        let mut request = app
            .request(Method::PUT, "/user/alice", Auth::Bearer(&token))
            .json(&json!({ "data": { "n": n } }));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        assert_user(
            request.send().await.unwrap(),
            200,
            json!({
                "username": "alice",
                "email": "alice@example.com",
                "data": { "n": n },
                "role": "user",
            }),
        )
        .await;
    }
    let response = app
        .request(Method::POST, "/logout", Auth::Bearer(&token))
        .send()
        .await
        .unwrap();
    assert_no_content(response, 204).await;
    assert_not_authorized(profile(&app, Auth::Bearer(&token)).await).await;
}

#[tokio::test]
async fn a_password_change_through_a_cookie_session_keeps_that_session() {
    let app = spawn_app_without_ip_limit().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let cookie = app.cookie_login_for("alice").await;
    let other_cookie = app.cookie_login_for("alice").await;
    let bearer = app.login_tokens("alice").await;

    let response = with_cookie(&app, Method::PUT, "/password", &cookie)
        .header("origin", &app.address)
        .json(&json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_no_content(response, 204).await;

    assert_json(
        profile(&app, Auth::Cookie(&cookie)).await,
        200,
        alice_profile(),
    )
    .await;
    assert_not_authorized(profile(&app, Auth::Cookie(&other_cookie)).await).await;
    assert_not_authorized(profile(&app, Auth::Bearer(&bearer.token)).await).await;
    let sessions = app.sessions(Auth::Cookie(&cookie)).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["current"], true);
    // The new password works for a new cookie login (cookie_login asserts 200).
    app.cookie_login(&json!({ "username": "alice", "password": NEW_PASSWORD }))
        .await;
}

// ---------------------------------------------------------------- TLS

#[tokio::test]
async fn over_tls_the_cookie_is_secure_and_the_origin_is_https() {
    let TlsApp {
        app: _app,
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
    let response = client
        .post(format!("{base}/sessions"))
        .json(&json!({ "username": "tls", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let cookie = session_set_cookie(&response);
    assert_json(
        response,
        200,
        json!({ "email": "tls@example.com", "message": "logged in" }),
    )
    .await;
    assert_eq!(
        cookie.normalised_attributes(),
        [
            "httponly",
            "max-age=86400",
            "path=/",
            "samesite=strict",
            "secure"
        ],
        "{}",
        cookie.raw
    );

    let put = |origin: String| {
        client
            .put(format!("{base}/user/tls"))
            .header("cookie", format!("safebox_session={}", cookie.value))
            .header("origin", origin)
            .json(&json!({ "data": { "over": "tls" } }))
            .send()
    };
    // Over TLS the server's own origin is https://<Host>.
    let response = put(format!("http://localhost:{port}")).await.unwrap();
    assert_json(response, 403, json!({ "detail": CSRF_REFUSED })).await;
    let response = put(format!("https://localhost:{port}")).await.unwrap();
    assert_user(
        response,
        200,
        json!({
            "username": "tls",
            "email": "tls@example.com",
            "data": { "over": "tls" },
            "role": "user",
        }),
    )
    .await;
}
