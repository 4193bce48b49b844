//! The operator endpoints (`/healthz`, `/readyz`, `/metrics`) and request ids.

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::{Client, Method, Response};
use safebox_api::Application;
use safebox_infra::{Config, KeyBytes};
use serde_json::{Value, json};

use crate::helpers::{
    Auth, PASSWORD, TestApp, assert_json, spawn_app, spawn_app_with, spawn_app_without_ip_limit,
};

/// `GET /metrics` on the API port, which must succeed; returns the body.
async fn scrape(app: &TestApp) -> String {
    let response = app
        .request(Method::GET, "/metrics", Auth::None)
        .send()
        .await
        .unwrap();
    exposition(response).await
}

/// Checks a `/metrics` response and returns its body.
async fn exposition(response: Response) -> String {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    text
}

/// The value of the sample `series` (name and labels exactly as exposed), or 0
/// when the series is absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.parse().unwrap())
}

#[tokio::test]
async fn healthz_is_cheap_and_open() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/healthz", Auth::None)
        .send()
        .await
        .unwrap();
    assert_json(response, 200, json!({ "status": "ok" })).await;
    let response = app
        .request(Method::POST, "/healthz", Auth::None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers().get("allow").unwrap(), "GET");
}

#[tokio::test]
async fn readyz_is_ready_when_the_database_answers() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/readyz", Auth::None)
        .send()
        .await
        .unwrap();
    assert_json(
        response,
        200,
        json!({ "status": "ready", "checks": { "database": "ok" } }),
    )
    .await;
}

/// A log writer shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The JSON log lines written so far.
    fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

/// Installs the JSON log format of `SAFEBOX_LOG_FORMAT=json` (as `safebox serve`
/// sets it up) writing into memory. `None` if another subscriber was installed
/// first (only when `TEST_LOG` is set and tests share a process).
fn capture_json_logs() -> Option<Captured> {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .event_format(safebox_api::logging::JsonLines)
        .try_init()
        .ok()
        .map(|()| captured)
}

#[tokio::test]
async fn readyz_is_503_naming_the_database_when_it_cannot_be_read() {
    let logs = capture_json_logs();
    let app = spawn_app().await;
    assert_eq!(
        app.request(Method::GET, "/readyz", Auth::None)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Corrupt the schema behind the app's back, as a bad disk or a stray tool
    // might: every connection rereads it and fails.
    let pool = safebox_infra::db::connect(&app.database_url, 1, std::time::Duration::from_secs(2))
        .unwrap();
    {
        use diesel::RunQueryDsl as _;
        use diesel::connection::SimpleConnection as _;
        #[derive(diesel::QueryableByName)]
        struct Version {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            schema_version: i64,
        }
        let mut conn = pool.get().unwrap();
        let version: Version = diesel::sql_query("PRAGMA schema_version")
            .get_result(&mut *conn)
            .unwrap();
        conn.batch_execute(&format!(
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_master SET sql = 'not sql at all' WHERE name = 'users';
             PRAGMA schema_version = {};
             PRAGMA writable_schema = OFF;",
            version.schema_version + 1
        ))
        .unwrap();
    }

    // The query stands in for a secret's name or a username in a path: the
    // span names the route template, never the path or query.
    let response = app
        .request(Method::GET, "/readyz?probe=name-not-for-logs", Auth::None)
        .header("x-request-id", "readyz-trace-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("x-request-id").unwrap(),
        "readyz-trace-1"
    );
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body,
        json!({
            "detail": "not ready: database unavailable",
            "checks": { "database": "query failed" },
        }),
        "{text}"
    );
    assert!(!text.contains(".db"), "a file name in {text}");

    // Liveness does not depend on the database.
    let response = app
        .request(Method::GET, "/healthz", Auth::None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // The failure was logged inside the request's span, with its id.
    if let Some(logs) = logs {
        let lines = logs.lines();
        let line = lines
            .iter()
            .find(|line| line["message"] == "readiness check failed")
            .unwrap_or_else(|| panic!("no readiness log line in {lines:?}"));
        assert_eq!(line["span"]["request_id"], "readyz-trace-1", "{line}");
        assert_eq!(line["span"]["http.route"], "/readyz", "{line}");
        assert_eq!(line["span"]["http.method"], "GET", "{line}");
        assert_eq!(line["span"]["http.client_ip"], "127.0.0.1", "{line}");
        assert!(
            !line.to_string().contains("name-not-for-logs"),
            "the path or query in {line}"
        );
        assert_eq!(line["dependency"], "database", "{line}");
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_every_family() {
    let app = spawn_app().await;
    let text = scrape(&app).await;
    for (family, kind) in [
        ("safebox_http_requests_total", "counter"),
        ("safebox_http_request_duration_seconds", "histogram"),
        ("safebox_logins_total", "counter"),
        ("safebox_lockouts_total", "counter"),
        ("safebox_hashing_queue_depth", "gauge"),
        ("safebox_hashing_rejections_total", "counter"),
        ("safebox_hashing_job_seconds", "gauge"),
        ("safebox_db_pool_connections", "gauge"),
        ("safebox_audit_queue_depth", "gauge"),
        ("safebox_audit_events_dropped_total", "counter"),
        ("safebox_audit_refusals_total", "counter"),
        ("safebox_secret_reads_total", "counter"),
        ("safebox_read_cache_entries", "gauge"),
    ] {
        assert!(
            text.contains(&format!("\n# TYPE {family} {kind}\n")),
            "no TYPE of {family} in\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP of {family}"
        );
    }
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (series, number) = line.rsplit_once(' ').unwrap();
        assert!(series.starts_with("safebox_"), "{line}");
        number
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("not a number in {line}"));
    }
    // The pools as configured: 4 read connections, 1 write connection.
    let reads = value(
        &text,
        r#"safebox_db_pool_connections{pool="reads",state="idle"}"#,
    ) + value(
        &text,
        r#"safebox_db_pool_connections{pool="reads",state="in_use"}"#,
    );
    assert_eq!(reads, 4.0, "{text}");
    assert_eq!(value(&text, "safebox_hashing_queue_depth"), 0.0);
    assert_eq!(value(&text, "safebox_hashing_rejections_total"), 0.0);
    assert_eq!(value(&text, "safebox_hashing_job_seconds"), 0.0);
}

#[tokio::test]
async fn the_hashing_pace_shows_once_a_password_was_hashed() {
    let app = spawn_app().await;
    app.user_with_token("pace").await;
    // A registration and a login ran on the hashing pool.
    let seconds = value(&scrape(&app).await, "safebox_hashing_job_seconds");
    assert!(seconds > 0.0 && seconds < 60.0, "{seconds}");
}

#[tokio::test]
async fn request_counters_move_by_route_template_and_status() {
    let app = spawn_app().await;
    let get_secret_401 =
        r#"safebox_http_requests_total{method="GET",route="/get_secret",status="401"}"#;
    let before = value(&scrape(&app).await, get_secret_401);
    for _ in 0..2 {
        let response = app
            .request(Method::GET, "/get_secret?username=nobody", Auth::None)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let text = scrape(&app).await;
    assert_eq!(value(&text, get_secret_401), before + 2.0, "{text}");
    assert_eq!(
        value(
            &text,
            r#"safebox_http_request_duration_seconds_count{method="GET",route="/get_secret"}"#
        ),
        before + 2.0
    );
    assert_eq!(
        value(
            &text,
            r#"safebox_http_request_duration_seconds_bucket{method="GET",route="/get_secret",le="+Inf"}"#
        ),
        before + 2.0
    );

    // Unknown paths are counted together.
    let response = app
        .request(Method::GET, "/no/such/place", Auth::None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let text = scrape(&app).await;
    assert!(
        value(
            &text,
            r#"safebox_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ) >= 1.0,
        "{text}"
    );
    assert!(!text.contains("no/such/place"), "{text}");
}

#[tokio::test]
async fn secret_names_and_usernames_never_reach_the_metrics() {
    let app = spawn_app().await;
    let token = app.user_with_token("metricsowner").await;
    for auth in [Auth::None, Auth::Bearer(&token)] {
        app.request(Method::GET, "/secrets/team-alpha/db-password", auth)
            .send()
            .await
            .unwrap();
    }
    app.request(Method::GET, "/user/metricsowner", Auth::Bearer(&token))
        .send()
        .await
        .unwrap();
    // A method the path does not take, and the undelete route, whose pattern
    // also spans slashes.
    let refused = app
        .request(
            Method::PATCH,
            "/secrets/team-alpha/db-password",
            Auth::Bearer(&token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 405);
    let undelete = app
        .request(
            Method::POST,
            "/secrets/team-alpha/db-password/undelete",
            Auth::Bearer(&token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(undelete.status(), 404);
    let text = scrape(&app).await;
    for series in [
        r#"safebox_http_requests_total{method="PATCH",route="/secrets/{name}",status="405"}"#,
        r#"safebox_http_requests_total{method="POST",route="/secrets/{name}/undelete",status="404"}"#,
    ] {
        assert_eq!(value(&text, series), 1.0, "{series} in\n{text}");
    }
    assert_eq!(
        value(
            &text,
            r#"safebox_http_requests_total{method="GET",route="/secrets/{name}",status="401"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"safebox_http_requests_total{method="GET",route="/secrets/{name}",status="404"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"safebox_http_requests_total{method="GET",route="/user/{username}",status="200"}"#
        ),
        1.0,
        "{text}"
    );
    for leaked in ["team-alpha", "db-password", "metricsowner", &token] {
        assert!(!text.contains(leaked), "{leaked:?} in\n{text}");
    }
}

#[tokio::test]
async fn logins_are_counted_by_outcome() {
    let app = spawn_app_without_ip_limit().await;
    let response = app
        .register("counted@example.com", "counted", PASSWORD)
        .await;
    assert_eq!(response.status(), 201);
    let before = scrape(&app).await;
    let success = r#"safebox_logins_total{outcome="success"}"#;
    let failure = r#"safebox_logins_total{outcome="failure"}"#;

    let response = app
        .login(&json!({ "username": "counted", "password": "not the password at all" }))
        .await;
    assert_eq!(response.status(), 401);
    let response = app
        .login(&json!({ "username": "counted", "password": PASSWORD }))
        .await;
    assert_eq!(response.status(), 200);

    let after = scrape(&app).await;
    assert_eq!(value(&after, failure), value(&before, failure) + 1.0);
    assert_eq!(value(&after, success), value(&before, success) + 1.0);
    assert_eq!(value(&after, "safebox_lockouts_total"), 0.0);
}

#[tokio::test]
async fn lockouts_are_counted() {
    let app = spawn_app_with(|config| {
        config.ip_rate_per_minute = 0;
        config.lockout_threshold = 2;
    })
    .await;
    let response = app.register("locked@example.com", "locked", PASSWORD).await;
    assert_eq!(response.status(), 201);
    for _ in 0..3 {
        app.login(&json!({ "username": "locked", "password": "not the password at all" }))
            .await;
    }
    let text = scrape(&app).await;
    assert_eq!(value(&text, "safebox_lockouts_total"), 1.0, "{text}");
    assert_eq!(
        value(&text, r#"safebox_logins_total{outcome="failure"}"#),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(&text, r#"safebox_logins_total{outcome="locked"}"#),
        1.0,
        "{text}"
    );
}

#[tokio::test]
async fn a_metrics_address_moves_metrics_off_the_api_port() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = Config::defaults(data_dir.path());
    config.port = 0;
    config.bcrypt_cost = 4;
    config.master_key = Some(KeyBytes::generate().unwrap());
    config.jwt_secret = Some(KeyBytes::generate().unwrap());
    config.workers = 1;
    config.hash_workers = 1;
    config.db_pool_size = 2;
    config.metrics_addr = Some("127.0.0.1:0".to_owned());
    let app = Application::build(config).await.expect("the app builds");
    let api = format!("http://127.0.0.1:{}", app.port());
    let metrics_port = app.metrics_port().expect("a metrics port");
    assert_ne!(metrics_port, app.port());
    let metrics = format!("http://127.0.0.1:{metrics_port}");
    tokio::spawn(app.run_until_stopped());
    let client = Client::new();

    // The API port serves the API and the probes, but not /metrics.
    let response = client.get(format!("{api}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-request-id"));
    let response = client.get(format!("{api}/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);

    // The metrics port serves /metrics only, and counts the API's requests.
    let text = exposition(
        client
            .get(format!("{metrics}/metrics"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        value(
            &text,
            r#"safebox_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"safebox_http_requests_total{method="GET",route="/healthz",status="200"}"#
        ),
        1.0,
        "{text}"
    );
    for path in ["/healthz", "/readyz", "/", "/login"] {
        let response = client.get(format!("{metrics}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path} on the metrics port");
    }
}

/// The `X-Request-Id` of a response.
fn request_id(response: &Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id on {}", response.url()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Asserts `id` is a UUID v4.
fn assert_generated(id: &str) {
    let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("not a UUID: {id:?}"));
    assert_eq!(uuid.get_version_num(), 4, "{id}");
}

#[tokio::test]
async fn a_valid_request_id_is_echoed_on_every_kind_of_response() {
    let app = spawn_app().await;
    let long = "a".repeat(128);
    for (method, path) in [
        (Method::GET, "/healthz"),
        (Method::GET, "/get_secret?username=x"),
        (Method::GET, "/no/such/place"),
        (Method::PATCH, "/login"),
        (Method::GET, "/metrics"),
    ] {
        for id in ["Req-42_x.y", long.as_str()] {
            let response = app
                .request(method.clone(), path, Auth::None)
                .header("x-request-id", id)
                .send()
                .await
                .unwrap();
            assert_eq!(request_id(&response), id, "{method} {path}");
        }
    }
    // A body the JSON extractor refuses.
    let response = app
        .request(Method::POST, "/login", Auth::None)
        .header("x-request-id", "bad-body")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(request_id(&response), "bad-body");
}

#[tokio::test]
async fn an_invalid_request_id_is_replaced() {
    let app = spawn_app().await;
    let too_long = "a".repeat(129);
    for bad in [
        "<script>",
        "a b",
        "",
        too_long.as_str(),
        "id;drop",
        "caf\u{e9}",
    ] {
        let response = app
            .request(Method::GET, "/healthz", Auth::None)
            .header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(bad.as_bytes()).unwrap(),
            )
            .send()
            .await
            .unwrap();
        let id = request_id(&response);
        assert_ne!(id, bad);
        assert_generated(&id);
    }
}

#[tokio::test]
async fn a_missing_request_id_is_generated_fresh_for_each_request() {
    let app = spawn_app().await;
    let mut seen = Vec::new();
    for path in ["/healthz", "/healthz", "/no/such/place", "/readyz"] {
        let response = app
            .request(Method::GET, path, Auth::None)
            .send()
            .await
            .unwrap();
        let id = request_id(&response);
        assert_generated(&id);
        assert!(!seen.contains(&id), "{id} reused");
        seen.push(id);
    }
}
