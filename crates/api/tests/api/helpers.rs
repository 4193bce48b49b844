use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use reqwest::{Client, Method, RequestBuilder, Response};
use safebox_api::Application;
use safebox_domain::ports::UserRepository as _;
use safebox_domain::{Role, Username};
use safebox_infra::{Config, KeyBytes};
use serde_json::{Value, json};

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_test_writer()
            .with_ansi(false)
            .event_format(safebox_api::logging::TextLines)
            .try_init();
    }
});

/// A password that meets the default policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// Another password that meets the default policy (for password changes).
pub const NEW_PASSWORD: &str = "violet anchor mumbles softly";

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "safebox_session";

/// The 403 detail of a cookie-only state change without Origin or X-Requested-With.
pub const CSRF_REFUSED: &str =
    "Cross-site request refused: send a matching Origin or X-Requested-With header";

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub data_dir: tempfile::TempDir,
    /// The JWT signing key, so tests can forge tokens signed correctly.
    pub jwt_secret: Vec<u8>,
    /// The database the app uses (`Config::effective_database_url`).
    pub database_url: String,
    /// Stops the server; the task serving it ends once it has stopped.
    server: (
        actix_web::dev::ServerHandle,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ),
}

/// safebox serving HTTPS with a certificate made for `localhost`, and a client
/// that trusts exactly that certificate and resolves `localhost` to it.
pub struct TlsApp {
    pub app: TestApp,
    pub client: Client,
    pub port: u16,
    /// `https://localhost:<port>`.
    pub base: String,
}

/// Starts safebox over TLS with a certificate generated for this test.
pub async fn spawn_tls_app() -> TlsApp {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    // The files are read while the app is built; `dir` may go afterwards.
    let app = spawn_app_with(|config| {
        config.tls = Some(safebox_infra::TlsFiles {
            cert: cert_path.clone(),
            key: key_path.clone(),
        });
    })
    .await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = Client::builder()
        .use_preconfigured_tls(tls)
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    TlsApp {
        app,
        client,
        port,
        base: format!("https://localhost:{port}"),
    }
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// No credential at all.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `Cookie: safebox_session=<value>`.
    Cookie(&'a str),
}

/// The two tokens of a bearer login or a refresh.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The access token (JWT).
    pub token: String,
    /// The opaque refresh token.
    pub refresh_token: String,
}

/// Starts safebox with test settings (bcrypt cost 4) on a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts safebox after letting the test adjust the configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    LazyLock::force(&TRACING);
    let data_dir = tempfile::tempdir().expect("temp dir");
    let jwt_secret = KeyBytes::generate().unwrap();
    let mut config = Config::defaults(data_dir.path());
    config.port = 0;
    config.bcrypt_cost = 4;
    config.master_key = Some(KeyBytes::generate().unwrap());
    config.jwt_secret = Some(jwt_secret.clone());
    config.workers = 1;
    config.hash_workers = 2;
    config.db_pool_size = 4;
    adjust(&mut config);
    let database_url = config.effective_database_url();
    let app = Application::build(config).await.expect("the app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let serving = tokio::spawn(app.run_until_stopped());
    TestApp {
        server: (handle, serving),
        address,
        client: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        data_dir,
        jwt_secret: jwt_secret.expose().to_vec(),
        database_url,
    }
}

/// Starts safebox with the per-IP limit on the credential routes turned off, for
/// tests that log in (or call `PUT /password`) more often than the default burst.
pub async fn spawn_app_without_ip_limit() -> TestApp {
    spawn_app_with(|config| config.ip_rate_per_minute = 0).await
}

impl TestApp {
    /// Stops the server (letting requests in flight finish) and waits until it
    /// has released its database, so that another app can serve it: an SQLite
    /// database is served by one process at a time while the read cache is on.
    pub async fn stop(self) {
        let (handle, serving) = self.server;
        handle.stop(true).await;
        serving
            .await
            .expect("the server task")
            .expect("the server stopped cleanly");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str, username: &str, password: &str) -> Response {
        self.post_json(
            "/register",
            &json!({ "email": email, "username": username, "password": password }),
        )
        .await
    }

    pub async fn login(&self, body: &Value) -> Response {
        self.post_json("/login", body).await
    }

    /// Registers `username` (email `<username>@example.com`) and logs in; returns the token.
    pub async fn user_with_token(&self, username: &str) -> String {
        let email = format!("{username}@example.com");
        let response = self.register(&email, username, PASSWORD).await;
        assert_eq!(response.status(), 201, "registering {username}");
        let response = self
            .login(&json!({ "email": email, "password": PASSWORD }))
            .await;
        assert_eq!(response.status(), 200, "logging in {username}");
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// Logs `username` (already registered with [`PASSWORD`]) in; returns the token.
    pub async fn user_with_token_for_existing(&self, username: &str) -> String {
        let response = self
            .login(&json!({ "username": username, "password": PASSWORD }))
            .await;
        assert_eq!(response.status(), 200, "logging in {username}");
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    pub async fn set_secret(&self, token: &str, username: &str, secret: &str) -> Response {
        self.client
            .post(self.url("/set_secret"))
            .bearer_auth(token)
            .json(&json!({ "username": username, "secret": secret }))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_secret(&self, token: &str, username: &str) -> Response {
        self.client
            .get(self.url("/get_secret"))
            .query(&[("username", username)])
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// A request to `path` carrying the credential `auth` (and nothing else).
    pub fn request(&self, method: Method, path: &str, auth: Auth<'_>) -> RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Cookie(value) => request.header("cookie", format!("{SESSION_COOKIE}={value}")),
        }
    }

    /// `POST /user` (sign-up).
    pub async fn sign_up(&self, body: &Value) -> Response {
        self.post_json("/user", body).await
    }

    /// `POST /auth`.
    pub async fn auth(&self, body: &Value) -> Response {
        self.post_json("/auth", body).await
    }

    /// `POST /token/refresh` with `refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/token/refresh", &json!({ "refresh_token": refresh_token }))
            .await
    }

    /// Refreshes with `refresh_token`, which must succeed; returns the new tokens.
    pub async fn refreshed(&self, refresh_token: &str) -> Tokens {
        let response = self.refresh(refresh_token).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "refreshing: {text}");
        tokens_of(&text)
    }

    /// Logs `username` (registered with [`PASSWORD`]) in with `POST /login`, which
    /// starts a new bearer session; returns its tokens.
    pub async fn login_tokens(&self, username: &str) -> Tokens {
        let response = self
            .login(&json!({ "username": username, "password": PASSWORD }))
            .await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "logging in {username}: {text}");
        tokens_of(&text)
    }

    /// Registers `username` (email `<username>@example.com`) and logs in with
    /// `POST /login`; returns the tokens.
    pub async fn user_with_tokens(&self, username: &str) -> Tokens {
        let email = format!("{username}@example.com");
        let response = self.register(&email, username, PASSWORD).await;
        assert_eq!(response.status(), 201, "registering {username}");
        self.login_tokens(username).await
    }

    /// Logs in with `POST /sessions` (JSON `body`), which must succeed; returns the
    /// value of the session cookie.
    pub async fn cookie_login(&self, body: &Value) -> String {
        let response = self.post_json("/sessions", body).await;
        assert_eq!(response.status(), 200, "cookie login with {body}");
        let cookie = session_set_cookie(&response);
        assert!(!cookie.value.is_empty(), "empty session cookie");
        cookie.value
    }

    /// Logs `username` (registered with [`PASSWORD`]) in with a session cookie.
    pub async fn cookie_login_for(&self, username: &str) -> String {
        self.cookie_login(&json!({ "username": username, "password": PASSWORD }))
            .await
    }

    /// `GET /sessions`, which must succeed; returns the sessions listed.
    pub async fn sessions(&self, auth: Auth<'_>) -> Vec<Value> {
        let response = self
            .request(Method::GET, "/sessions", auth)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "GET /sessions: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            body.as_object().unwrap().len(),
            1,
            "only `sessions` in {text}"
        );
        body["sessions"]
            .as_array()
            .expect("a sessions array")
            .clone()
    }

    /// Gives the existing account `username` the admin role, directly in the
    /// database (there is no HTTP route for it).
    pub fn make_admin(&self, username: &str) {
        let pool =
            safebox_infra::db::connect(&self.database_url, 1, Duration::from_secs(2)).unwrap();
        let users = safebox_infra::DieselUserRepository::new(pool);
        users
            .set_role(&Username::parse(username).unwrap(), Role::Admin)
            .unwrap()
            .expect("the account exists");
    }

    /// Registers `username` (email `<username>@example.com`), makes it an admin and
    /// then logs it in; returns the token.
    pub async fn admin_with_token(&self, username: &str) -> String {
        let email = format!("{username}@example.com");
        let response = self.register(&email, username, PASSWORD).await;
        assert_eq!(response.status(), 201, "registering {username}");
        self.make_admin(username);
        self.user_with_token_for_existing(username).await
    }
}

/// Reads the tokens of a login or refresh response body.
fn tokens_of(text: &str) -> Tokens {
    let body: Value = serde_json::from_str(text).unwrap();
    Tokens {
        token: body["token"].as_str().expect("a token").to_owned(),
        refresh_token: body["refresh_token"]
            .as_str()
            .expect("a refresh_token")
            .to_owned(),
    }
}

/// A `Set-Cookie` header, split up.
#[derive(Debug, Clone)]
pub struct SetCookie {
    /// The whole header, for messages.
    pub raw: String,
    /// The cookie's value.
    pub value: String,
    /// The attributes as sent, e.g. `HttpOnly`, `Max-Age=86400`.
    pub attributes: Vec<String>,
}

impl SetCookie {
    /// The attributes, lower-cased and sorted, without `Expires` (which only
    /// restates `Max-Age` for old browsers), for comparing as a set.
    pub fn normalised_attributes(&self) -> Vec<String> {
        let mut attributes: Vec<String> = self
            .attributes
            .iter()
            .map(|a| a.trim().to_ascii_lowercase())
            .filter(|a| !a.starts_with("expires="))
            .collect();
        attributes.sort();
        attributes
    }
}

/// The one `Set-Cookie` header of `response` that sets the session cookie.
pub fn session_set_cookie(response: &Response) -> SetCookie {
    let prefix = format!("{SESSION_COOKIE}=");
    let headers: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .filter(|value| value.starts_with(&prefix))
        .collect();
    assert_eq!(
        headers.len(),
        1,
        "exactly one {SESSION_COOKIE} Set-Cookie: {headers:?}"
    );
    let raw = headers[0].clone();
    let mut parts = raw.split(';');
    let value = parts.next().unwrap()[prefix.len()..].trim().to_owned();
    let attributes = parts
        .map(|part| part.trim().to_owned())
        .filter(|part| !part.is_empty())
        .collect();
    SetCookie {
        raw,
        value,
        attributes,
    }
}

/// The current Unix time in seconds.
pub fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The session id (`sid` claim) of an access token.
pub fn sid(token: &str) -> String {
    jwt_payload(token)["sid"]
        .as_str()
        .expect("a sid claim")
        .to_owned()
}

/// Asserts 401 `{"detail":"Not authorized"}` with `WWW-Authenticate: Bearer`.
pub async fn assert_not_authorized(response: Response) {
    let www_authenticate = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let url = response.url().clone();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 401, "{url}: {text}");
    assert_eq!(
        www_authenticate.as_deref(),
        Some("Bearer"),
        "WWW-Authenticate of {url}"
    );
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    assert_eq!(body, json!({ "detail": "Not authorized" }), "{url}");
}

/// Asserts the status and an empty body (204 responses).
pub async fn assert_no_content(response: Response, status: u16) {
    let got_status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got_status, status, "body: {text}");
    assert_eq!(text, "", "no body expected");
}

/// Asserts the status and a `User` body equal to `expected` plus a `created_at`
/// that is a recent Unix time; returns the whole body. A `User` never holds a
/// password or a hash.
pub async fn assert_user(response: Response, status: u16, expected: Value) -> Value {
    let got_status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got_status, status, "body: {text}");
    assert!(!text.contains("password"), "a password field in {text}");
    assert!(
        !text.contains("$2"),
        "something like a bcrypt hash in {text}"
    );
    assert!(!text.contains(PASSWORD), "the password in {text}");
    let mut got: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    let created_at = got
        .as_object_mut()
        .expect("a JSON object")
        .remove("created_at")
        .unwrap_or_else(|| panic!("no created_at in {text}"));
    let seconds = created_at
        .as_i64()
        .unwrap_or_else(|| panic!("created_at is not an integer: {text}"));
    assert!(
        (now() - 600..=now() + 5).contains(&seconds),
        "created_at {seconds} is not a recent Unix time"
    );
    assert_eq!(got, expected, "{text}");
    got["created_at"] = created_at;
    got
}

/// Every authenticated route, each sent with `auth` (and `X-Requested-With`, so
/// that a cookie is never refused as cross-site first): all must answer 401
/// `Not authorized` with `WWW-Authenticate: Bearer`. `username` is the account
/// the credential belonged to.
pub async fn assert_refused_everywhere(app: &TestApp, auth: Auth<'_>, username: &str) {
    let some_session = uuid::Uuid::new_v4();
    let routes = [
        (Method::GET, format!("/user/{username}"), None),
        (
            Method::PUT,
            format!("/user/{username}"),
            Some(json!({ "data": { "changed": true } })),
        ),
        (Method::DELETE, format!("/user/{username}"), None),
        (
            Method::PUT,
            "/password".to_owned(),
            Some(json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD })),
        ),
        (Method::GET, "/sessions".to_owned(), None),
        (Method::DELETE, format!("/sessions/{some_session}"), None),
        (Method::DELETE, "/sessions".to_owned(), None),
        (Method::DELETE, "/auth".to_owned(), None),
        (Method::POST, "/logout".to_owned(), None),
        (Method::GET, "/profile".to_owned(), None),
        (
            Method::GET,
            format!("/get_secret?username={username}"),
            None,
        ),
        (
            Method::POST,
            "/set_secret".to_owned(),
            Some(json!({ "username": username, "secret": "overwritten" })),
        ),
        (Method::GET, "/audit".to_owned(), None),
    ];
    for (method, path, body) in routes {
        let mut request = app
            .request(method.clone(), &path, auth)
            .header("x-requested-with", "XMLHttpRequest");
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let www_authenticate = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        assert_eq!(status, 401, "{method} {path} with {auth:?}: {text}");
        assert_eq!(
            www_authenticate.as_deref(),
            Some("Bearer"),
            "WWW-Authenticate of {method} {path}"
        );
        let got: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
        assert_eq!(
            got,
            json!({ "detail": "Not authorized" }),
            "{method} {path}"
        );
    }
}

/// Asserts that `GET /` with `auth` treats the caller as anonymous.
pub async fn assert_hello_world(app: &TestApp, auth: Auth<'_>) {
    let response = app.request(Method::GET, "/", auth).send().await.unwrap();
    assert_json(response, 200, json!({ "message": "Hello World" })).await;
}

/// Asserts the status and the exact JSON body.
pub async fn assert_json(response: Response, status: u16, body: Value) {
    let got_status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got_status, status, "body: {text}");
    let got: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    assert_eq!(got, body);
}

/// Asserts the status and returns the `detail` of a JSON error body.
pub async fn detail(response: Response, status: u16) -> String {
    let got_status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got_status, status, "body: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail string in {text}"))
        .to_owned()
}

/// Decodes a JWT's payload without verifying it.
pub fn jwt_payload(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Starts safebox on the data dir `dir` (and so on its SQLite database), after
/// letting the test adjust the configuration: several apps started on one `dir`
/// share one database, one after the other ([`TestApp::stop`] the one before),
/// or at once with the read cache off (`read_cache_mib = 0`). The returned
/// app's own `data_dir` is an unused temporary directory; `dir` belongs to the
/// caller.
pub async fn spawn_app_on(dir: &std::path::Path, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = dir.to_owned();
    let mut jwt_secret = None;
    let mut app = spawn_app_with(|config| {
        config.data_dir = dir;
        adjust(config);
        jwt_secret = config.jwt_secret.as_ref().map(|key| key.expose().to_vec());
    })
    .await;
    if let Some(jwt_secret) = jwt_secret {
        app.jwt_secret = jwt_secret;
    }
    app
}
