//! The read cache, over HTTP: a repeated secret read is answered from memory
//! (`safebox_secret_reads_total{from="memory"}` shows it), yet every write and
//! every end of a session is seen by the very next read. And a server with the
//! cache is its database's only server.

use reqwest::{Method, Response};
use safebox_api::{Application, StartupError};
use safebox_infra::db::DbError;
use safebox_infra::{Config, KeyBytes};
use serde_json::{Value, json};

use crate::helpers::{
    Auth, PASSWORD, TestApp, assert_not_authorized, sid, spawn_app, spawn_app_on, spawn_app_with,
};

/// How many secret reads were answered from memory so far.
async fn reads_from_memory(app: &TestApp) -> u64 {
    let text = app
        .request(Method::GET, "/metrics", Auth::None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("safebox_secret_reads_total{from=\"memory\"} "))
        .unwrap_or_else(|| panic!("no reads from memory counted in\n{text}"))
        .parse()
        .unwrap()
}

async fn vault_get(app: &TestApp, auth: Auth<'_>, name: &str) -> Response {
    app.request(Method::GET, &format!("/secrets/{name}"), auth)
        .send()
        .await
        .unwrap()
}

async fn vault_put(app: &TestApp, token: &str, name: &str, value: &str) -> u16 {
    app.request(
        Method::PUT,
        &format!("/secrets/{name}"),
        Auth::Bearer(token),
    )
    .json(&json!({ "value": value }))
    .send()
    .await
    .unwrap()
    .status()
    .as_u16()
}

/// The value and version of a 200 vault read.
async fn read_value(response: Response) -> (String, u64) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    (
        body["value"].as_str().unwrap().to_owned(),
        body["version"].as_u64().unwrap(),
    )
}

/// Reads `name` until a read comes from memory, and checks that one: the first
/// read after a write goes to storage and fills the cache, the next is answered
/// from memory. Returns what it read.
async fn read_from_memory(app: &TestApp, auth: Auth<'_>, name: &str) -> (String, u64) {
    let first = read_value(vault_get(app, auth, name).await).await;
    let before = reads_from_memory(app).await;
    let second = read_value(vault_get(app, auth, name).await).await;
    assert_eq!(
        reads_from_memory(app).await,
        before + 1,
        "the second read of {name} came from memory"
    );
    assert_eq!(first, second, "memory and storage agree on {name}");
    second
}

#[tokio::test]
async fn a_repeated_read_comes_from_memory_and_sees_every_write_at_once() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    let alice = Auth::Bearer(&token);
    assert_eq!(vault_put(&app, &token, "team/db", "v1-CANARY").await, 201);
    assert_eq!(
        read_from_memory(&app, alice, "team/db").await,
        ("v1-CANARY".to_owned(), 1)
    );

    // A new version: the very next read has it.
    assert_eq!(vault_put(&app, &token, "team/db", "v2-CANARY").await, 200);
    assert_eq!(
        read_value(vault_get(&app, alice, "team/db").await).await,
        ("v2-CANARY".to_owned(), 2)
    );
    read_from_memory(&app, alice, "team/db").await;

    // Soft delete, undelete, destroy: each seen by the next read.
    let delete = |path: String| app.request(Method::DELETE, &path, alice).send();
    assert_eq!(
        delete("/secrets/team/db".into()).await.unwrap().status(),
        204
    );
    assert_eq!(vault_get(&app, alice, "team/db").await.status(), 404);
    let undeleted = app
        .request(Method::POST, "/secrets/team/db/undelete", alice)
        .send()
        .await
        .unwrap();
    assert_eq!(undeleted.status(), 200);
    assert_eq!(
        read_from_memory(&app, alice, "team/db").await,
        ("v2-CANARY".to_owned(), 2)
    );
    let destroyed = delete("/secrets/team/db?destroy=true".into())
        .await
        .unwrap();
    assert_eq!(destroyed.status(), 204);
    assert_eq!(vault_get(&app, alice, "team/db").await.status(), 404);

    // The single-secret routes share the cache and see their writes too.
    for value in ["first-CANARY", "second-CANARY"] {
        assert_eq!(app.set_secret(&token, "alice", value).await.status(), 200);
        for _ in 0..2 {
            let response = app.get_secret(&token, "alice").await;
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body, json!({ "secret": value }));
        }
    }
    assert_eq!(
        read_from_memory(&app, alice, "default").await,
        ("second-CANARY".to_owned(), 2)
    );
    // Another user's name is refused, from memory or not.
    let response = app.get_secret(&token, "bob").await;
    assert_not_authorized(response).await;
}

/// One way of ending `victim`'s session, using `other` (another session of the
/// same user) where the way needs one.
type End = for<'a> fn(&'a TestApp, &'a str, &'a str) -> futures_util::future::BoxFuture<'a, u16>;

#[tokio::test]
async fn every_way_of_ending_a_session_is_refused_at_once_though_its_reads_were_in_memory() {
    use futures_util::FutureExt as _;

    let ways: [(&str, End); 6] = [
        ("POST /logout", |app, victim, _| {
            async move {
                let request = app.request(Method::POST, "/logout", Auth::Bearer(victim));
                request.send().await.unwrap().status().as_u16()
            }
            .boxed()
        }),
        ("DELETE /auth", |app, victim, _| {
            async move {
                let request = app.request(Method::DELETE, "/auth", Auth::Bearer(victim));
                request.send().await.unwrap().status().as_u16()
            }
            .boxed()
        }),
        ("DELETE /sessions", |app, victim, _| {
            async move {
                let request = app.request(Method::DELETE, "/sessions", Auth::Bearer(victim));
                request.send().await.unwrap().status().as_u16()
            }
            .boxed()
        }),
        (
            "DELETE /sessions/{id} from another session",
            |app, victim, other| {
                async move {
                    let path = format!("/sessions/{}", sid(victim));
                    let request = app.request(Method::DELETE, &path, Auth::Bearer(other));
                    request.send().await.unwrap().status().as_u16()
                }
                .boxed()
            },
        ),
        ("PUT /password from another session", |app, _, other| {
            async move {
                let request = app
                    .request(Method::PUT, "/password", Auth::Bearer(other))
                    .json(&json!({
                        "current_password": PASSWORD,
                        "new_password": "tangerine glacier whistles",
                    }));
                request.send().await.unwrap().status().as_u16()
            }
            .boxed()
        }),
        ("DELETE /user/{username}", |app, _, other| {
            async move {
                let request = app.request(Method::DELETE, "/user/alice", Auth::Bearer(other));
                request.send().await.unwrap().status().as_u16()
            }
            .boxed()
        }),
    ];
    for (way, end) in ways {
        let app = spawn_app_with(|config| config.ip_rate_per_minute = 0).await;
        let victim = app.user_with_token("alice").await;
        let other = app.user_with_token_for_existing("alice").await;
        assert_eq!(vault_put(&app, &victim, "s", "CANARY").await, 201, "{way}");
        read_from_memory(&app, Auth::Bearer(&victim), "s").await;
        let status = end(&app, &victim, &other).await;
        assert!((200..300).contains(&status), "{way}: {status}");
        assert_not_authorized(vault_get(&app, Auth::Bearer(&victim), "s").await).await;
        assert_not_authorized(app.get_secret(&victim, "alice").await).await;
    }
}

#[tokio::test]
async fn a_cookie_session_reads_from_memory_until_it_logs_out() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    assert_eq!(vault_put(&app, &token, "s", "CANARY").await, 201);
    let cookie = app.cookie_login_for("alice").await;
    let auth = Auth::Cookie(&cookie);
    assert_eq!(
        read_from_memory(&app, auth, "s").await,
        ("CANARY".to_owned(), 1)
    );
    let logout = app
        .request(Method::POST, "/logout", auth)
        .header("x-requested-with", "test")
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let response = vault_get(&app, auth, "s").await;
    assert_eq!(response.status(), 401);
    // The bearer session of the same user is untouched.
    read_from_memory(&app, Auth::Bearer(&token), "s").await;
}

#[tokio::test]
async fn a_server_with_the_read_cache_is_its_databases_only_server() {
    let dir = tempfile::tempdir().unwrap();
    let first = spawn_app_on(dir.path(), |_| {}).await;
    let token = first.user_with_token("alice").await;
    assert_eq!(vault_put(&first, &token, "s", "CANARY").await, 201);

    // A second server is refused at start, with the cache or without it.
    for cache_mib in [16, 0] {
        let mut config = Config::defaults(dir.path());
        config.port = 0;
        config.read_cache_mib = cache_mib;
        match Application::build(config).await {
            Err(StartupError::Database(err @ DbError::InUse { .. })) => {
                let message = err.to_string();
                assert!(message.contains("SAFEBOX_READ_CACHE_MIB=0"), "{message}");
                assert!(
                    message.contains(&format!("pid {}", std::process::id())),
                    "{message}"
                );
            }
            Err(other) => panic!("cache {cache_mib} MiB: {other}"),
            Ok(_) => panic!("a second server started with a {cache_mib} MiB cache"),
        }
    }

    // Once the first has stopped, servers without the cache can share the file,
    // and their reads come from storage.
    first.stop().await;
    let (master, jwt) = (KeyBytes::generate().unwrap(), KeyBytes::generate().unwrap());
    let without = |dir: &std::path::Path| {
        let (dir, master, jwt) = (dir.to_owned(), master.clone(), jwt.clone());
        async move {
            spawn_app_on(&dir, move |config| {
                config.read_cache_mib = 0;
                config.master_key = Some(master);
                config.jwt_secret = Some(jwt);
            })
            .await
        }
    };
    let one = without(dir.path()).await;
    let two = without(dir.path()).await;
    let token = one.user_with_token("bob").await;
    assert_eq!(vault_put(&one, &token, "s", "shared").await, 201);
    for app in [&one, &two] {
        for _ in 0..2 {
            let (value, _) = read_value(vault_get(app, Auth::Bearer(&token), "s").await).await;
            assert_eq!(value, "shared");
        }
        assert_eq!(reads_from_memory(app).await, 0);
    }
    // A server with the cache cannot join them.
    let mut config = Config::defaults(dir.path());
    config.port = 0;
    assert!(matches!(
        Application::build(config).await,
        Err(StartupError::Database(DbError::InUse { .. }))
    ));
}
