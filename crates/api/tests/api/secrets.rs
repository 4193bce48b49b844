use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_json, detail, jwt_payload, spawn_app};

async fn assert_not_authorized(response: reqwest::Response) {
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer")
    );
    assert_json(response, 401, json!({ "detail": "Not authorized" })).await;
}

#[tokio::test]
async fn set_then_get_returns_the_secret_and_a_second_set_replaces_it() {
    let app = spawn_app().await;
    let token = app.user_with_token("user1").await;

    let response = app.get_secret(&token, "user1").await;
    assert_json(response, 404, json!({ "detail": "Secret not found" })).await;

    let response = app.set_secret(&token, "user1", "myTopSecretValue").await;
    assert_json(
        response,
        200,
        json!({ "message": "Secret set successfully" }),
    )
    .await;
    let response = app.get_secret(&token, "user1").await;
    assert_json(response, 200, json!({ "secret": "myTopSecretValue" })).await;

    let response = app.set_secret(&token, "user1", "a newer value ✓").await;
    assert_eq!(response.status(), 200);
    let response = app.get_secret(&token, "user1").await;
    assert_json(response, 200, json!({ "secret": "a newer value ✓" })).await;
}

#[tokio::test]
async fn the_username_may_differ_in_case_only() {
    let app = spawn_app().await;
    let token = app.user_with_token("user1").await;
    assert_eq!(app.set_secret(&token, "USER1", "v").await.status(), 200);
    assert_json(
        app.get_secret(&token, "User1").await,
        200,
        json!({ "secret": "v" }),
    )
    .await;
}

#[tokio::test]
async fn an_empty_secret_is_stored_and_the_16_kib_limit_is_enforced() {
    let app = spawn_app().await;
    let token = app.user_with_token("user1").await;
    assert_eq!(app.set_secret(&token, "user1", "").await.status(), 200);
    assert_json(
        app.get_secret(&token, "user1").await,
        200,
        json!({ "secret": "" }),
    )
    .await;

    let largest = "s".repeat(64 * 1024);
    assert_eq!(
        app.set_secret(&token, "user1", &largest).await.status(),
        200
    );
    let response = app
        .set_secret(&token, "user1", &format!("{largest}s"))
        .await;
    assert_eq!(
        detail(response, 413).await,
        "secret: must be at most 65536 bytes"
    );
    // The refused write left the previous value in place.
    let got: Value = app.get_secret(&token, "user1").await.json().await.unwrap();
    assert_eq!(got["secret"].as_str().unwrap().len(), 64 * 1024);
}

#[tokio::test]
async fn missing_fields_are_422_and_the_query_needs_a_username() {
    let app = spawn_app().await;
    let token = app.user_with_token("user1").await;
    let response = app
        .client
        .post(app.url("/set_secret"))
        .bearer_auth(&token)
        .json(&json!({ "username": "user1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(detail(response, 422).await, "secret: field required");
    let response = app
        .client
        .get(app.url("/get_secret"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(detail(response, 422).await, "username: field required");
}

#[tokio::test]
async fn user_a_cannot_read_or_overwrite_user_b() {
    let app = spawn_app().await;
    let alice = app.user_with_token("alice").await;
    let bob = app.user_with_token("bob").await;
    assert_eq!(
        app.set_secret(&bob, "bob", "bob's secret").await.status(),
        200
    );

    assert_not_authorized(app.get_secret(&alice, "bob").await).await;
    assert_not_authorized(app.set_secret(&alice, "bob", "overwritten").await).await;
    // Also for a name that is nobody's, and one that is not a valid username.
    assert_not_authorized(app.get_secret(&alice, "nobody").await).await;
    assert_not_authorized(app.get_secret(&alice, "not a name").await).await;

    assert_json(
        app.get_secret(&bob, "bob").await,
        200,
        json!({ "secret": "bob's secret" }),
    )
    .await;
    // Alice's own store is untouched too.
    assert_eq!(app.get_secret(&alice, "alice").await.status(), 404);
}

fn sign(app: &TestApp, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(&app.jwt_secret),
    )
    .unwrap()
}

/// Every way a bearer token can be wrong, built from a real token of `user1`.
fn bad_tokens(app: &TestApp, real: &str) -> Vec<(&'static str, Option<String>)> {
    let claims = jwt_payload(real);
    let (head, signature) = real.rsplit_once('.').unwrap();
    let payload = head.split_once('.').unwrap().1;
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let hs512_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512","typ":"JWT"}"#);
    let mut tampered_claims = claims.clone();
    tampered_claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let tampered_payload = URL_SAFE_NO_PAD.encode(tampered_claims.to_string());

    let mut expired = claims.clone();
    expired["iat"] = json!(claims["iat"].as_i64().unwrap() - 3600);
    expired["exp"] = json!(claims["iat"].as_i64().unwrap() - 1);
    let mut other_issuer = claims.clone();
    other_issuer["iss"] = json!("evil");
    let mut other_audience = claims.clone();
    other_audience["aud"] = json!("another-api");
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(&app.jwt_secret),
    )
    .unwrap();
    let wrong_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&[0_u8; 32]),
    )
    .unwrap();

    vec![
        ("no header", None),
        ("empty bearer", Some("Bearer ".into())),
        ("other scheme", Some(format!("Token {real}"))),
        ("basic", Some("Basic dXNlcjE6cGFzcw==".into())),
        ("garbage", Some("Bearer not.a.jwt".into())),
        (
            "tampered payload",
            Some(format!(
                "Bearer {}.{tampered_payload}.{signature}",
                head.split_once('.').unwrap().0
            )),
        ),
        (
            "truncated signature",
            Some(format!("Bearer {head}.{}", &signature[..10])),
        ),
        (
            "alg none, no signature",
            Some(format!("Bearer {none_header}.{payload}.")),
        ),
        (
            "alg none, old signature",
            Some(format!("Bearer {none_header}.{payload}.{signature}")),
        ),
        (
            "header swapped to HS512",
            Some(format!("Bearer {hs512_header}.{payload}.{signature}")),
        ),
        ("signed with HS512", Some(format!("Bearer {hs512}"))),
        (
            "signed with another key",
            Some(format!("Bearer {wrong_key}")),
        ),
        ("expired", Some(format!("Bearer {}", sign(app, &expired)))),
        (
            "another issuer",
            Some(format!("Bearer {}", sign(app, &other_issuer))),
        ),
        (
            "another audience",
            Some(format!("Bearer {}", sign(app, &other_audience))),
        ),
        ("no expiry", Some(format!("Bearer {}", sign(app, &no_exp)))),
    ]
}

#[tokio::test]
async fn bad_tokens_are_refused_on_both_routes() {
    let app = spawn_app().await;
    let token = app.user_with_token("user1").await;
    assert_eq!(app.set_secret(&token, "user1", "kept").await.status(), 200);

    // Sanity check: a correctly signed, unexpired forgery is accepted, so the
    // refusals below are about what each case changes.
    let claims = jwt_payload(&token);
    let resigned = sign(&app, &claims);
    assert_eq!(app.get_secret(&resigned, "user1").await.status(), 200);

    for (case, authorization) in bad_tokens(&app, &token) {
        let mut get = app.client.get(app.url("/get_secret?username=user1"));
        let mut set = app
            .client
            .post(app.url("/set_secret"))
            .json(&json!({ "username": "user1", "secret": "overwritten" }));
        if let Some(value) = &authorization {
            get = get.header("authorization", value);
            set = set.header("authorization", value);
        }
        let response = get.send().await.unwrap();
        assert_eq!(response.status(), 401, "GET with {case}");
        assert_not_authorized(response).await;
        let response = set.send().await.unwrap();
        assert_eq!(response.status(), 401, "POST with {case}");
        assert_not_authorized(response).await;
    }
    assert_json(
        app.get_secret(&token, "user1").await,
        200,
        json!({ "secret": "kept" }),
    )
    .await;
}

#[tokio::test]
async fn a_token_for_a_user_that_does_not_exist_is_refused() {
    let app = spawn_app().await;
    let token = app.user_with_token("user1").await;
    let mut claims = jwt_payload(&token);
    claims["sub"] = json!(uuid::Uuid::new_v4().to_string());
    let ghost = sign(&app, &claims);
    assert_not_authorized(app.get_secret(&ghost, "user1").await).await;
    assert_not_authorized(app.set_secret(&ghost, "user1", "x").await).await;
}

#[tokio::test]
async fn authentication_is_checked_before_the_body() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/set_secret"))
        .header("content-type", "application/json")
        .body("{ not json")
        .send()
        .await
        .unwrap();
    assert_not_authorized(response).await;
    let response = app.client.get(app.url("/get_secret")).send().await.unwrap();
    assert_not_authorized(response).await;
}

#[tokio::test]
async fn tokens_are_refused_in_the_url() {
    let app = spawn_app().await;
    let token = app.user_with_token("user1").await;
    let response = app
        .client
        .get(app.url(&format!("/get_secret?username=user1&access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_not_authorized(response).await;
}
