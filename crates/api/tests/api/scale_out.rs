//! Several instances on one MySQL and one Redis, dependencies that fail under
//! load, and `db copy` of a deployment in use. These need real servers: they
//! run when `SAFEBOX_TEST_MYSQL_URL` and `SAFEBOX_TEST_REDIS_URL` are set (`make
//! test-all`), skip with a notice otherwise, and fail under `CI=true`.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use safebox_infra::testing::{FaultyProxy, TestDatabase, TestRedis, in_ci, service_url};
use safebox_infra::{Config, KeyBytes, db};
use serde_json::{Value, json};

use crate::helpers::{Auth, PASSWORD, TestApp, Tokens, spawn_app_with};

const REDIS_URL_VAR: &str = "SAFEBOX_TEST_REDIS_URL";

/// The keys every instance of one deployment shares.
#[derive(Clone)]
struct SharedKeys {
    master: KeyBytes,
    jwt: KeyBytes,
}

impl SharedKeys {
    fn new() -> Self {
        Self {
            master: KeyBytes::generate().unwrap(),
            jwt: KeyBytes::generate().unwrap(),
        }
    }

    fn apply(&self, config: &mut Config) {
        config.master_key = Some(self.master.clone());
        config.jwt_secret = Some(self.jwt.clone());
    }
}

/// An instance of a deployment: `database` (a URL), Redis under `redis` (URL and
/// prefix) when given, and the deployment's keys.
async fn instance(
    keys: &SharedKeys,
    database: &str,
    redis: Option<(&str, &str)>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let database = database.to_owned();
    let redis = redis.map(|(url, prefix)| (url.to_owned(), prefix.to_owned()));
    spawn_app_with(move |config| {
        keys.apply(config);
        config.database_url = Some(database);
        if let Some((url, prefix)) = redis {
            config.redis_url = Some(url);
            config.redis_prefix = prefix;
        }
        adjust(config);
    })
    .await
}

fn redis_prefix(redis: &TestRedis) -> String {
    redis.store().prefix().to_owned()
}

async fn profile_status(app: &TestApp, token: &str) -> StatusCode {
    app.request(Method::GET, "/profile", Auth::Bearer(token))
        .send()
        .await
        .unwrap()
        .status()
}

async fn put_secret(app: &TestApp, token: &str, name: &str, value: &str) -> StatusCode {
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
}

async fn read_secret(app: &TestApp, token: &str, name: &str) -> (StatusCode, Value) {
    let response = app
        .request(
            Method::GET,
            &format!("/secrets/{name}"),
            Auth::Bearer(token),
        )
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn failed_login(app: &TestApp, username: &str) -> StatusCode {
    app.login(&json!({ "username": username, "password": "not the password at all" }))
        .await
        .status()
}

// ---------------------------------------------------------------------------
// Two instances, one MySQL, one Redis

#[tokio::test]
async fn two_instances_on_mysql_and_redis_share_sessions_secrets_and_lockouts() {
    let test = "two_instances_on_mysql_and_redis_share_sessions_secrets_and_lockouts";
    let (Some(database), Some(redis_url)) =
        (TestDatabase::mysql(test), service_url(REDIS_URL_VAR, test))
    else {
        return;
    };
    let redis = TestRedis::connect(&redis_url);
    let prefix = redis_prefix(&redis);
    let keys = SharedKeys::new();
    // The per-IP limit is turned off here and tested on its own below.
    let no_ip_limit = |config: &mut Config| config.ip_rate_per_minute = 0;
    let a = instance(
        &keys,
        database.url(),
        Some((&redis_url, &prefix)),
        no_ip_limit,
    )
    .await;
    let b = instance(
        &keys,
        database.url(),
        Some((&redis_url, &prefix)),
        no_ip_limit,
    )
    .await;

    // A token from A works on B.
    let Tokens { token, .. } = a.user_with_tokens("alice").await;
    assert_eq!(profile_status(&b, &token).await, 200);

    // A secret written on A reads on B.
    assert_eq!(put_secret(&a, &token, "team/db", "written on A").await, 201);
    let (status, body) = read_secret(&b, &token, "team/db").await;
    assert_eq!(
        (status.as_u16(), &body["value"]),
        (200, &json!("written on A"))
    );

    // A session made on B is listed on A.
    let other = b.login_tokens("alice").await;
    let listed = a.sessions(Auth::Bearer(&token)).await;
    assert_eq!(listed.len(), 2, "{listed:?}");

    // Logout on B kills the token on A at once.
    let logout = b
        .request(Method::POST, "/logout", Auth::Bearer(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert_eq!(profile_status(&a, &token).await, 401);
    assert_eq!(profile_status(&b, &token).await, 401);
    assert_eq!(profile_status(&a, &other.token).await, 200);

    // Failed logins spread over A and B add up to one lockout (5 by default).
    assert_eq!(
        b.register("bob@example.com", "bob", PASSWORD)
            .await
            .status(),
        201
    );
    for (attempt, app) in [&a, &b, &a, &b].into_iter().enumerate() {
        assert_eq!(failed_login(app, "bob").await, 401, "attempt {attempt}");
    }
    assert_eq!(
        failed_login(&a, "bob").await,
        401,
        "the fifth failure locks"
    );
    for app in [&a, &b] {
        let locked = app
            .login(&json!({ "username": "bob", "password": PASSWORD }))
            .await;
        assert_eq!(locked.status(), 429, "even the right password is refused");
        assert!(locked.headers().contains_key("retry-after"));
    }
}

#[tokio::test]
async fn two_instances_with_redis_share_the_per_ip_rate_limit() {
    let test = "two_instances_with_redis_share_the_per_ip_rate_limit";
    let Some(redis_url) = service_url(REDIS_URL_VAR, test) else {
        return;
    };
    let redis = TestRedis::connect(&redis_url);
    let prefix = redis_prefix(&redis);
    let keys = SharedKeys::new();
    let database = TestDatabase::sqlite();
    let burst_of_four = |config: &mut Config| {
        config.ip_rate_burst = 4;
        config.ip_rate_per_minute = 1;
    };
    let a = instance(
        &keys,
        database.url(),
        Some((&redis_url, &prefix)),
        burst_of_four,
    )
    .await;
    let b = instance(
        &keys,
        database.url(),
        Some((&redis_url, &prefix)),
        burst_of_four,
    )
    .await;
    // Four requests from this address, two on each instance, use the burst up.
    for app in [&a, &b, &a, &b] {
        assert_eq!(failed_login(app, "nobody").await, 401);
    }
    for app in [&a, &b] {
        let limited = app
            .login(&json!({ "username": "nobody", "password": "whatever it is" }))
            .await;
        assert_eq!(limited.status(), 429);
        let body: Value = limited.json().await.unwrap();
        assert_eq!(
            body["detail"],
            "Too many requests from this address; try again later"
        );
    }
}

#[tokio::test]
async fn with_redis_sessions_live_in_redis_and_expire_with_their_lifetime() {
    let test = "with_redis_sessions_live_in_redis_and_expire_with_their_lifetime";
    let Some(redis_url) = service_url(REDIS_URL_VAR, test) else {
        return;
    };
    let redis = TestRedis::connect(&redis_url);
    let prefix = redis_prefix(&redis);
    let database = TestDatabase::sqlite();
    let app = instance(
        &SharedKeys::new(),
        database.url(),
        Some((&redis_url, &prefix)),
        |_| {},
    )
    .await;
    let tokens = app.user_with_tokens("carol").await;
    let sessions: Vec<String> = redis
        .keys()
        .into_iter()
        .filter(|key| key.starts_with("session:"))
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    // 24 hours by default, as a native TTL.
    let ttl: i64 = redis.query(redis::cmd("TTL").arg(redis.key(&sessions[0])));
    assert!((86_390..=86_400).contains(&ttl), "TTL {ttl}");
    // Nothing of the session is in the database.
    let pool = db::connect(database.url(), 1, Duration::from_secs(2)).unwrap();
    let copied = db::copy::summarize(&pool).unwrap();
    let rows = |table: &str| copied.iter().find(|t| t.table == table).unwrap().rows;
    assert_eq!((rows("sessions"), rows("refresh_tokens")), (0, 0));
    // Deleting the account ends its sessions in Redis too.
    let deleted = app
        .request(Method::DELETE, "/user/carol", Auth::Bearer(&tokens.token))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let left: Vec<String> = redis
        .keys()
        .into_iter()
        .filter(|key| !key.starts_with("attempt") && !key.starts_with("rate:"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

// ---------------------------------------------------------------------------
// Faults: a dependency that goes away, or freezes, under requests

/// How long a request may take to be refused while a dependency is down or
/// frozen: the storage deadline (SAFEBOX_DB_TIMEOUT 2 s + 0.5 s) and some slack
/// for a loaded test machine.
const REFUSAL_BOUND: Duration = Duration::from_millis(3_200);

/// `url` (`scheme://user:pw@host:port/…`) pointed at a fresh proxy to its host.
fn through_proxy(url: &str) -> (String, FaultyProxy) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (format!("{userinfo}@"), rest),
        None => (String::new(), rest),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let proxy = FaultyProxy::start(authority);
    let proxied = format!("{scheme}://{userinfo}127.0.0.1:{}{path}", proxy.port());
    (proxied, proxy)
}

/// One write of the drill and how it ended.
struct Attempt {
    name: String,
    status: StatusCode,
    took: Duration,
    at: Instant,
}

/// Writes secrets one after another while `fault` breaks the dependency behind
/// `proxy` for a few seconds, then checks: every answer was a success or a 503,
/// every 503 came within [`REFUSAL_BOUND`], `/readyz` named `dependency` while
/// `/healthz` stayed up, the service came back by itself, and every write that
/// was acknowledged is there.
async fn outage_drill(
    app: &TestApp,
    proxy: &FaultyProxy,
    dependency: &str,
    fault: fn(&FaultyProxy),
) {
    let Tokens { token, .. } = app.user_with_tokens("drill").await;
    let mut attempts: Vec<Attempt> = Vec::new();
    let started = Instant::now();
    let (mut broken_at, mut restored_at) = (None, None);
    let mut readiness_checked = false;
    let mut i = 0;
    loop {
        let elapsed = started.elapsed();
        if broken_at.is_none() && elapsed > Duration::from_millis(800) {
            fault(proxy);
            broken_at = Some(Instant::now());
        }
        if let Some(broken) = broken_at
            && restored_at.is_none()
            && broken.elapsed() > Duration::from_millis(4_500)
        {
            proxy.restore();
            restored_at = Some(Instant::now());
        }
        if broken_at.is_some() && restored_at.is_none() && !readiness_checked && i % 2 == 1 {
            readiness_checked = true;
            let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
            assert_eq!(ready.status(), 503);
            let body: Value = ready.json().await.unwrap();
            assert_ne!(body["checks"][dependency], "ok", "{body}");
            assert!(
                body["detail"].as_str().unwrap().contains(dependency),
                "{body}"
            );
            let live = app.client.get(app.url("/healthz")).send().await.unwrap();
            assert_eq!(live.status(), 200);
        }
        if let Some(restored) = restored_at {
            let recovered = attempts
                .iter()
                .any(|a| a.at > restored && a.status.is_success());
            if recovered && restored.elapsed() > Duration::from_secs(1) {
                break;
            }
            assert!(
                restored.elapsed() < Duration::from_secs(20),
                "no recovery within 20 s of the {dependency} coming back"
            );
        }
        let name = format!("drill/{i}");
        let at = Instant::now();
        let status = put_secret(app, &token, &name, &format!("value {i}")).await;
        attempts.push(Attempt {
            name,
            status,
            took: at.elapsed(),
            at,
        });
        i += 1;
        // A steady trickle, well under the account's secret limit.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let broken_at = broken_at.unwrap();
    let restored_at = restored_at.unwrap();
    assert!(
        readiness_checked,
        "readiness was never checked during the outage"
    );
    for attempt in &attempts {
        assert!(
            attempt.status.is_success() || attempt.status == 503,
            "{} answered {}",
            attempt.name,
            attempt.status
        );
        if attempt.status == 503 {
            assert!(
                attempt.took <= REFUSAL_BOUND,
                "{} took {:?} to be refused",
                attempt.name,
                attempt.took
            );
        }
    }
    let during: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.at > broken_at + Duration::from_millis(100) && a.at + a.took < restored_at)
        .collect();
    assert!(!during.is_empty(), "no request ran during the outage");
    assert!(
        during.iter().all(|a| a.status == 503),
        "a write succeeded while the {dependency} was broken"
    );
    assert!(
        attempts
            .iter()
            .any(|a| a.at < broken_at && a.status.is_success()),
        "nothing succeeded before the outage"
    );
    // No acknowledged write is lost.
    for attempt in attempts.iter().filter(|a| a.status.is_success()) {
        let (status, body) = read_secret(app, &token, &attempt.name).await;
        assert_eq!(status, 200, "{} was acknowledged but is gone", attempt.name);
        let i = attempt.name.trim_start_matches("drill/");
        assert_eq!(body["value"], format!("value {i}"));
    }
}

async fn mysql_drill(test: &str, fault: fn(&FaultyProxy)) {
    let Some(database) = TestDatabase::mysql(test) else {
        return;
    };
    let (url, proxy) = through_proxy(database.url());
    let app = instance(&SharedKeys::new(), &url, None, |config| {
        config.ip_rate_per_minute = 0;
    })
    .await;
    outage_drill(&app, &proxy, "database", fault).await;
}

async fn redis_drill(test: &str, fault: fn(&FaultyProxy)) {
    let Some(redis_url) = service_url(REDIS_URL_VAR, test) else {
        return;
    };
    let redis = TestRedis::connect(&redis_url);
    let (url, proxy) = through_proxy(&redis_url);
    let database = TestDatabase::sqlite();
    let app = instance(
        &SharedKeys::new(),
        database.url(),
        Some((&url, &redis_prefix(&redis))),
        |config| config.ip_rate_per_minute = 0,
    )
    .await;
    outage_drill(&app, &proxy, "redis", fault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_that_stops_answers_503_in_time_and_recovers_without_losing_writes() {
    mysql_drill(
        "a_mysql_that_stops_answers_503_in_time_and_recovers_without_losing_writes",
        FaultyProxy::down,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_that_freezes_answers_503_in_time_and_recovers_without_losing_writes() {
    mysql_drill(
        "a_mysql_that_freezes_answers_503_in_time_and_recovers_without_losing_writes",
        FaultyProxy::stall,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stops_answers_503_in_time_and_recovers_without_losing_writes() {
    redis_drill(
        "a_redis_that_stops_answers_503_in_time_and_recovers_without_losing_writes",
        FaultyProxy::down,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_freezes_answers_503_in_time_and_recovers_without_losing_writes() {
    redis_drill(
        "a_redis_that_freezes_answers_503_in_time_and_recovers_without_losing_writes",
        FaultyProxy::stall,
    )
    .await;
}

#[tokio::test]
async fn starting_with_an_unreachable_mysql_or_redis_fails_with_a_clear_message() {
    let keys = SharedKeys::new();
    for (database, redis, expected) in [
        (
            Some("mysql://safebox:hunter2@127.0.0.1:1/safebox"),
            None,
            "cannot open the database mysql://safebox:<redacted>@127.0.0.1:1/safebox",
        ),
        (
            None,
            Some("redis://:hunter2@127.0.0.1:1"),
            "SAFEBOX_REDIS_URL: cannot reach Redis at redis://:<redacted>@127.0.0.1:1",
        ),
    ] {
        if database.is_some() && !cfg!(feature = "mysql") {
            assert!(!in_ci(), "CI must build the mysql feature");
            eprintln!("SKIPPED the MySQL half: built without the mysql feature");
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::defaults(dir.path());
        config.port = 0;
        keys.apply(&mut config);
        config.database_url = database.map(str::to_owned);
        config.redis_url = redis.map(str::to_owned);
        config.db_timeout = Duration::from_millis(500);
        config.redis_timeout = Duration::from_millis(500);
        let started = Instant::now();
        let err = safebox_api::Application::build(config)
            .await
            .err()
            .expect("the start fails")
            .to_string();
        assert!(err.starts_with(expected), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}

// ---------------------------------------------------------------------------
// `db copy` of a deployment in use, through MySQL and back

#[tokio::test]
async fn db_copy_round_trips_a_deployment_through_mysql_and_every_credential_and_secret_still_works()
 {
    let test = "db_copy_round_trips_a_deployment_through_mysql_and_every_credential_and_secret_still_works";
    let Some(mysql) = TestDatabase::mysql(test) else {
        return;
    };
    let keys = SharedKeys::new();
    let original = TestDatabase::sqlite();
    let back = TestDatabase::sqlite();
    let app = instance(&keys, original.url(), None, |_| {}).await;

    // Accounts, versioned secrets with metadata, a soft delete, the compat
    // route's secret, a bearer session whose refresh token has rotated once (so
    // a spent token exists), a cookie session and the audit log.
    let first = app.user_with_tokens("dave").await;
    let tokens = app.refreshed(&first.refresh_token).await;
    let cookie = app.cookie_login_for("dave").await;
    for version in 1..=3 {
        let value = format!("db password v{version}");
        app.request(Method::PUT, "/secrets/team/db", Auth::Bearer(&tokens.token))
            .json(&json!({ "value": value, "metadata": { "owner": "ops" } }))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        put_secret(&app, &tokens.token, "old", "gone soon").await,
        201
    );
    let deleted = app
        .request(Method::DELETE, "/secrets/old", Auth::Bearer(&tokens.token))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    assert_eq!(
        app.set_secret(&tokens.token, "dave", "compat value")
            .await
            .status(),
        200
    );
    let erin = app.user_with_tokens("erin").await;
    assert_eq!(put_secret(&app, &erin.token, "k", "erin's").await, 201);
    let pool = |url: &str| db::connect(url, 1, Duration::from_secs(5)).unwrap();
    // Wait for the audit writer to commit what it has queued (it lets events
    // gather for 50 ms): until the table stops growing.
    let audited = || {
        let tables = db::copy::summarize(&pool(original.url())).unwrap();
        tables
            .iter()
            .find(|t| t.table == "audit_events")
            .unwrap()
            .rows
    };
    let mut seen = audited();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = audited();
        if now == seen && now > 0 {
            break;
        }
        seen = now;
    }

    let none = &mut |_| {};
    let there = db::copy::copy(&pool(original.url()), &pool(mysql.url()), none).unwrap();
    let home = db::copy::copy(&pool(mysql.url()), &pool(back.url()), none).unwrap();
    let before = db::copy::summarize(&pool(original.url())).unwrap();
    assert_eq!(there, before, "SQLite to MySQL");
    assert_eq!(home, before, "MySQL to SQLite");
    for table in &before {
        assert!(table.rows > 0, "{} has no rows to copy", table.table);
    }

    // The copies serve with the same keys: tokens, the refresh token, the
    // cookie, every version of every secret, and the soft delete.
    for (url, label) in [(back.url(), "back in SQLite"), (mysql.url(), "in MySQL")] {
        let copy = instance(&keys, url, None, |_| {}).await;
        assert_eq!(profile_status(&copy, &tokens.token).await, 200, "{label}");
        for version in 1..=3 {
            let response = copy
                .request(
                    Method::GET,
                    &format!("/secrets/team/db?version={version}"),
                    Auth::Bearer(&tokens.token),
                )
                .send()
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["value"], format!("db password v{version}"), "{label}");
            assert_eq!(body["metadata"]["owner"], "ops", "{label}");
        }
        assert_eq!(
            read_secret(&copy, &tokens.token, "old").await.0,
            404,
            "{label}"
        );
        let compat = copy.get_secret(&tokens.token, "dave").await;
        assert_eq!(
            compat.json::<Value>().await.unwrap()["secret"],
            "compat value"
        );
        assert_eq!(
            read_secret(&copy, &erin.token, "k").await.1["value"],
            "erin's"
        );
        let by_cookie = copy
            .request(Method::GET, "/profile", Auth::Cookie(&cookie))
            .send()
            .await
            .unwrap();
        assert_eq!(by_cookie.status(), 200, "{label}");
        // The live refresh token rotates on the copy, and the spent one is
        // still recognised as a replay.
        copy.refreshed(&tokens.refresh_token).await;
        assert_eq!(
            copy.refresh(&first.refresh_token).await.status(),
            401,
            "{label}"
        );
    }
}
