use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    Auth, NEW_PASSWORD, PASSWORD, TestApp, detail, spawn_app, spawn_app_without_ip_limit,
};

async fn page(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/audit{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The caller's events once at least `count` are written (the writer is
/// asynchronous), as (event, outcome) pairs, newest first.
async fn events(app: &TestApp, token: &str, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        let response = page(app, token, "?limit=200").await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let events = body["events"].as_array().unwrap().clone();
        if events.len() >= count {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {count} audit events after 2 s");
}

fn names(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test]
async fn each_security_event_of_a_user_is_audited_newest_first() {
    let app = spawn_app().await;
    app.register("alice@example.com", "alice", PASSWORD).await;
    let failed = app
        .login(&json!({ "username": "alice", "password": "wrong password!!" }))
        .await;
    assert_eq!(failed.status(), 401);
    let token = app.user_with_token_for_existing("alice").await;
    assert_eq!(app.set_secret(&token, "alice", "s").await.status(), 200);
    assert_eq!(app.get_secret(&token, "alice").await.status(), 200);
    assert_eq!(app.get_secret(&token, "bob").await.status(), 401);

    let events = events(&app, &token, 6).await;
    assert_eq!(
        names(&events),
        pairs(&[
            ("secret.read", "failure"),
            ("secret.read", "success"),
            ("secret.write", "success"),
            ("login", "success"),
            ("login", "failure"),
            ("register", "success"),
        ])
    );
    let user_id = crate::helpers::jwt_payload(&token)["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    for event in &events {
        assert_eq!(event["user_id"], user_id.as_str());
        assert_eq!(event["client_ip"], "127.0.0.1");
        assert!(event["at"].as_i64().unwrap() > 1_700_000_000);
    }
}

#[tokio::test]
async fn session_account_and_password_events_are_audited() {
    use reqwest::Method;

    let app = spawn_app_without_ip_limit().await;
    let first = app.user_with_tokens("alice").await;
    let second = app.login_tokens("alice").await;
    app.refreshed(&second.refresh_token).await;
    let reused = app.refresh(&second.refresh_token).await;
    assert_eq!(reused.status(), 401);
    let own = Auth::Bearer(&first.token);
    let update = app
        .request(Method::PUT, "/user/alice", own)
        .json(&json!({ "data": { "phone": "555" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(update.status(), 200);
    let read = app
        .request(Method::GET, "/user/alice", own)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let change = |current: &'static str| {
        app.request(Method::PUT, "/password", own)
            .json(&json!({ "current_password": current, "new_password": NEW_PASSWORD }))
            .send()
    };
    assert_eq!(change("not the password").await.unwrap().status(), 401);
    let third = app.login_tokens("alice").await;
    assert_eq!(change(PASSWORD).await.unwrap().status(), 204);
    let ended = app
        .request(Method::GET, "/profile", Auth::Bearer(&third.token))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ended.status(),
        401,
        "the password change ended the third session"
    );
    let logout = app
        .request(Method::POST, "/logout", own)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let response = app
        .login(&json!({ "username": "alice", "password": NEW_PASSWORD }))
        .await;
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    let token = token["token"].as_str().unwrap().to_owned();

    let events = events(&app, &token, 13).await;
    assert_eq!(
        names(&events),
        pairs(&[
            ("login", "success"),
            ("logout", "success"),
            ("session.end", "success"),
            ("password.change", "success"),
            ("login", "success"),
            ("password.change", "failure"),
            ("user.read", "success"),
            ("user.update", "success"),
            ("refresh.reuse", "failure"),
            ("token.refresh", "success"),
            ("login", "success"),
            ("login", "success"),
            ("register", "success"),
        ])
    );
}

#[tokio::test]
async fn a_lockout_is_audited_and_locked_attempts_too() {
    let app = spawn_app().await;
    app.register("victim@example.com", "victim", PASSWORD).await;
    for _ in 0..6 {
        app.login(&json!({ "username": "victim", "password": "wrong password!!" }))
            .await;
    }
    // Log in as an admin to read the victim's events (the victim is locked out).
    let admin = app.user_with_token("admin").await;
    app.make_admin("admin");
    let all = events(&app, &admin, 10).await;
    let victim: Vec<_> = all
        .iter()
        .filter(|e| {
            e["event"] != "register" && e["user_id"] != crate::helpers::jwt_payload(&admin)["sub"]
        })
        .cloned()
        .collect();
    assert_eq!(
        names(&victim),
        pairs(&[
            ("login", "locked"),
            ("lockout", "success"),
            ("login", "failure"),
            ("login", "failure"),
            ("login", "failure"),
            ("login", "failure"),
            ("login", "failure"),
        ])
    );
}

#[tokio::test]
async fn users_see_only_their_own_events_and_admins_see_everyones() {
    let app = spawn_app().await;
    let alice = app.user_with_token("alice").await;
    let bob = app.user_with_token("bob").await;
    app.login(&json!({ "email": "ghost@example.com", "password": "whatever it is" }))
        .await;

    let alice_id = crate::helpers::jwt_payload(&alice)["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let own = events(&app, &alice, 2).await;
    assert!(
        own.iter().all(|e| e["user_id"] == alice_id.as_str()),
        "{own:?}"
    );

    // Everyone's: alice's two, bob's two and the unknown account's failed login.
    app.make_admin("bob");
    let all = events(&app, &bob, 5).await;
    assert_eq!(all.len(), 5);
    assert!(all.iter().any(|e| e["user_id"] == alice_id.as_str()));
    assert!(
        all.iter()
            .any(|e| e["user_id"].is_null() && e["event"] == "login")
    );
}

#[tokio::test]
async fn pages_follow_the_cursor_to_the_end() {
    let app = spawn_app().await;
    let token = app.user_with_token("pager").await;
    for n in 0..3 {
        assert_eq!(
            app.set_secret(&token, "pager", &format!("v{n}"))
                .await
                .status(),
            200
        );
    }
    let all = events(&app, &token, 5).await;

    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let body: Value = page(&app, &token, &query).await.json().await.unwrap();
        let events = body["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        seen.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        match body["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<_> = all
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_audit_route_needs_a_token_and_a_sane_limit() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/audit")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let token = app.user_with_token("someone").await;
    assert_eq!(
        detail(page(&app, &token, "?limit=0").await, 422).await,
        "limit: must be 1 to 200"
    );
    assert_eq!(
        detail(page(&app, &token, "?limit=201").await, 422).await,
        "limit: must be 1 to 200"
    );
    assert_eq!(
        detail(page(&app, &token, "?limit=ten").await, 422).await,
        "query: has an invalid value"
    );
}

#[tokio::test]
async fn no_audit_row_holds_a_password_secret_or_token() {
    let app = spawn_app().await;
    let token = app.user_with_token("careful").await;
    let secret = "audit-canary-secret-4411";
    app.set_secret(&token, "careful", secret).await;
    app.get_secret(&token, "careful").await;
    app.login(&json!({ "username": "careful", "password": "audit-canary-wrong-9" }))
        .await;
    events(&app, &token, 5).await;
    let all: Vec<u8> = std::fs::read_dir(app.data_dir.path())
        .unwrap()
        .flat_map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    for needle in [PASSWORD, secret, "audit-canary-wrong-9", token.as_str()] {
        assert!(
            !all.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle:?} is stored"
        );
    }
    // The events themselves are stored: the scan sees the audit table.
    assert!(all.windows(11).any(|w| w == b"secret.read"));
}
