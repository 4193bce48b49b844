use std::sync::LazyLock;

use base64::Engine as _;
use reqwest::{Client, Response};
use safebox_api::Application;
use safebox_infra::{Config, KeyBytes};
use serde_json::{Value, json};

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_test_writer()
            .try_init();
    }
});

/// A password that meets the default policy.
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub data_dir: tempfile::TempDir,
    /// The JWT signing key, so tests can forge tokens signed correctly.
    pub jwt_secret: Vec<u8>,
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
    let app = Application::build(config).await.expect("the app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        data_dir,
        jwt_secret: jwt_secret.expose().to_vec(),
    }
}

impl TestApp {
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
