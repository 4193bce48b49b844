//! The vault (`/secrets`, `/secrets/{name}`, `/secrets/{name}/undelete`), driven
//! over HTTP against the real server and its real SQLite database, as
//! /tmp/vault-contract.md describes it: versions, folders, check-and-set, soft
//! delete, listing, limits, isolation, authentication, the compat routes,
//! integrity of the stored ciphertexts, the audit log, and master key rotation.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl as _;
use diesel::sql_types::{BigInt, Binary, Text};
use reqwest::{Method, RequestBuilder, Response};
use safebox_domain::KeyId;
use safebox_domain::usecases::{MasterKeyStatus, RotateKeys, RotationProgress};
use safebox_infra::{AesGcmSecretCipher, DieselUserRepository, KeyBytes, Keys, MasterKeyEntry};
use serde_json::{Value, json};

use crate::helpers::{
    Auth, CSRF_REFUSED, TestApp, assert_json, assert_no_content, assert_not_authorized, detail,
    jwt_payload, now, spawn_app, spawn_app_on, spawn_app_with,
};

// ---------------------------------------------------------------- helpers

/// The contract's 404 for a secret that does not exist, is soft-deleted, or is
/// someone else's.
const NOT_FOUND: &str = "Secret not found";

/// The opaque body of every 500.
const INTERNAL: &str = "internal server error";

fn secret_path(name: &str) -> String {
    format!("/secrets/{name}")
}

/// A bearer request to `path`.
fn bearer(app: &TestApp, method: Method, path: &str, token: &str) -> RequestBuilder {
    app.request(method, path, Auth::Bearer(token))
}

/// `PUT /secrets/{name}` with `body`, without conditions.
async fn put(app: &TestApp, token: &str, name: &str, body: Value) -> Response {
    bearer(app, Method::PUT, &secret_path(name), token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// `PUT /secrets/{name}` with just a value.
async fn put_value(app: &TestApp, token: &str, name: &str, value: &str) -> Response {
    put(app, token, name, json!({ "value": value })).await
}

/// `PUT /secrets/{name}` with a value and one extra header (`If-Match`, …).
async fn put_if(
    app: &TestApp,
    token: &str,
    name: &str,
    value: &str,
    header: &str,
    condition: &str,
) -> Response {
    bearer(app, Method::PUT, &secret_path(name), token)
        .header(header, condition)
        .json(&json!({ "value": value }))
        .send()
        .await
        .unwrap()
}

/// `GET /secrets/{name}`, or `GET /secrets/{name}?version=N`.
async fn get(app: &TestApp, token: &str, name: &str) -> Response {
    bearer(app, Method::GET, &secret_path(name), token)
        .send()
        .await
        .unwrap()
}

async fn get_version(app: &TestApp, token: &str, name: &str, version: &str) -> Response {
    bearer(
        app,
        Method::GET,
        &format!("{}?version={version}", secret_path(name)),
        token,
    )
    .send()
    .await
    .unwrap()
}

/// `DELETE /secrets/{name}` (soft delete).
async fn delete(app: &TestApp, token: &str, name: &str) -> Response {
    bearer(app, Method::DELETE, &secret_path(name), token)
        .send()
        .await
        .unwrap()
}

/// `DELETE /secrets/{name}?destroy=true`.
async fn destroy(app: &TestApp, token: &str, name: &str) -> Response {
    bearer(
        app,
        Method::DELETE,
        &format!("{}?destroy=true", secret_path(name)),
        token,
    )
    .send()
    .await
    .unwrap()
}

/// `POST /secrets/{name}/undelete`.
async fn undelete(app: &TestApp, token: &str, name: &str) -> Response {
    bearer(
        app,
        Method::POST,
        &format!("{}/undelete", secret_path(name)),
        token,
    )
    .send()
    .await
    .unwrap()
}

/// `GET /secrets{query}`.
async fn list(app: &TestApp, token: &str, query: &str) -> Response {
    bearer(app, Method::GET, &format!("/secrets{query}"), token)
        .send()
        .await
        .unwrap()
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
}

/// Checks that `body[field]` is a recent Unix time and returns it.
fn recent(body: &Value, field: &str) -> i64 {
    let at = body[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is not an integer in {body}"));
    assert!(
        (now() - 600..=now() + 5).contains(&at),
        "{field} {at} is not a recent Unix time: {body}"
    );
    at
}

/// Asserts a write answered `status` (201 or 200) with `ETag: "<version>"`, a
/// `Location` exactly when it created the secret, and the body
/// `{name, version, created_at, updated_at}`; returns the body.
async fn assert_written(response: Response, status: u16, name: &str, version: u64) -> Value {
    let etag = header(&response, "etag");
    let location = header(&response, "location");
    let got_status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got_status, status, "writing {name}: {text}");
    assert_eq!(etag, Some(format!("\"{version}\"")), "ETag of {name}");
    if status == 201 {
        assert_eq!(location, Some(secret_path(name)), "Location of {name}");
    } else {
        assert_eq!(location, None, "no Location on an update of {name}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    let created_at = recent(&body, "created_at");
    let updated_at = recent(&body, "updated_at");
    assert!(created_at <= updated_at, "{text}");
    assert_eq!(
        body,
        json!({ "name": name, "version": version, "created_at": created_at, "updated_at": updated_at }),
    );
    body
}

/// Asserts a read answered 200 with `ETag: "<version>"`, `Cache-Control:
/// no-store` and exactly `{name, value, version, metadata, created_at,
/// updated_at}`; returns the body.
async fn assert_read(
    response: Response,
    name: &str,
    value: &str,
    version: u64,
    metadata: Value,
) -> Value {
    let etag = header(&response, "etag");
    let cache_control = header(&response, "cache-control");
    let url = response.url().clone();
    let got_status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got_status, 200, "{url}: {text}");
    assert_eq!(etag, Some(format!("\"{version}\"")), "ETag of {url}");
    assert_eq!(cache_control.as_deref(), Some("no-store"), "{url}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let created_at = recent(&body, "created_at");
    let updated_at = recent(&body, "updated_at");
    assert!(created_at <= updated_at, "{text}");
    assert_eq!(
        body,
        json!({
            "name": name,
            "value": value,
            "version": version,
            "metadata": metadata,
            "created_at": created_at,
            "updated_at": updated_at,
        }),
        "{url}"
    );
    body
}

/// Reads `name` and asserts its newest value and version (no metadata).
async fn assert_value(app: &TestApp, token: &str, name: &str, value: &str, version: u64) {
    assert_read(get(app, token, name).await, name, value, version, json!({})).await;
}

/// Asserts 404 for a secret that is not there (or not the caller's).
async fn assert_not_found(response: Response) {
    let url = response.url().clone();
    let got = detail(response, 404).await;
    assert!(
        got == NOT_FOUND,
        "{url}: expected {NOT_FOUND:?}, got {got:?}"
    );
}

async fn assert_detail(response: Response, status: u16, expected: &str) {
    let url = response.url().clone();
    assert_eq!(detail(response, status).await, expected, "{url}");
}

/// A listing page: its entries (each checked for exactly the documented fields,
/// with recent timestamps) and its `next_cursor`.
async fn page(response: Response) -> (Vec<Value>, Option<String>) {
    let url = response.url().clone();
    let got_status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got_status, 200, "{url}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["secrets", "next_cursor"]), "{text}");
    let entries = body["secrets"].as_array().expect("a secrets array").clone();
    for entry in &entries {
        let keys: BTreeSet<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "name",
                "version",
                "oldest_version",
                "metadata",
                "created_at",
                "updated_at",
                "deleted_at",
            ]),
            "never a value in a listing: {entry}"
        );
        recent(entry, "created_at");
        recent(entry, "updated_at");
        if !entry["deleted_at"].is_null() {
            recent(entry, "deleted_at");
        }
    }
    let cursor = match &body["next_cursor"] {
        Value::Null => None,
        Value::String(cursor) => Some(cursor.clone()),
        other => panic!("next_cursor is neither null nor a string: {other}"),
    };
    (entries, cursor)
}

fn names_of(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|entry| entry["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The names on one listing page with `query`, which must be its only page.
async fn listed(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let (entries, cursor) = page(list(app, token, query).await).await;
    assert_eq!(cursor, None, "one page for {query}");
    names_of(&entries)
}

/// The listing entry of `name` with `query`, if listed.
async fn entry(app: &TestApp, token: &str, query: &str, name: &str) -> Option<Value> {
    let (entries, _) = page(list(app, token, query).await).await;
    entries.into_iter().find(|entry| entry["name"] == name)
}

/// The id of the user a token belongs to (the `sub` claim), as stored in the
/// database.
fn user_id(token: &str) -> String {
    jwt_payload(token)["sub"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------- 1. versions

#[tokio::test]
async fn a_put_creates_with_201_then_writes_new_versions_with_200() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;

    let first = assert_written(put_value(&app, &token, "db", "one").await, 201, "db", 1).await;
    assert_eq!(first["created_at"], first["updated_at"]);
    let second = assert_written(put_value(&app, &token, "db", "two").await, 200, "db", 2).await;
    // created_at is when the secret was first created.
    assert_eq!(second["created_at"], first["created_at"]);

    let newest = assert_read(get(&app, &token, "db").await, "db", "two", 2, json!({})).await;
    assert_eq!(newest["created_at"], first["created_at"]);
    assert_eq!(newest["updated_at"], second["updated_at"]);
    let old = assert_read(
        get_version(&app, &token, "db", "1").await,
        "db",
        "one",
        1,
        json!({}),
    )
    .await;
    assert_eq!(old["updated_at"], first["updated_at"]);
    assert_read(
        get_version(&app, &token, "db", "2").await,
        "db",
        "two",
        2,
        json!({}),
    )
    .await;

    // An empty value is a value.
    assert_written(put_value(&app, &token, "db", "").await, 200, "db", 3).await;
    assert_value(&app, &token, "db", "", 3).await;

    // Never written: not kept.
    assert_detail(
        get_version(&app, &token, "db", "4").await,
        404,
        "version 4 is not kept",
    )
    .await;
    for bad in ["0", "-1", "x", "1.5", "", "18446744073709551616"] {
        let got = detail(get_version(&app, &token, "db", bad).await, 422).await;
        assert!(got.starts_with("version: "), "?version={bad}: {got}");
    }
    // No such secret, with or without a version.
    assert_not_found(get(&app, &token, "nope").await).await;
    assert_not_found(get_version(&app, &token, "nope", "1").await).await;
}

#[tokio::test]
async fn only_the_newest_max_versions_are_kept() {
    let app = spawn_app_with(|config| config.max_versions = 3).await;
    let token = app.user_with_token("alice").await;
    for version in 1..=5 {
        let status = if version == 1 { 201 } else { 200 };
        assert_written(
            put_value(&app, &token, "team/db", &format!("value {version}")).await,
            status,
            "team/db",
            version,
        )
        .await;
    }
    for gone in 1..=2 {
        assert_detail(
            get_version(&app, &token, "team/db", &gone.to_string()).await,
            404,
            &format!("version {gone} is not kept"),
        )
        .await;
    }
    for kept in 3..=5_u64 {
        assert_read(
            get_version(&app, &token, "team/db", &kept.to_string()).await,
            "team/db",
            &format!("value {kept}"),
            kept,
            json!({}),
        )
        .await;
    }
    assert_value(&app, &token, "team/db", "value 5", 5).await;
    let listed = entry(&app, &token, "", "team/db").await.expect("listed");
    assert_eq!(listed["version"], 5);
    assert_eq!(listed["oldest_version"], 3);

    // The pruned versions are gone from the database, not just hidden.
    assert_eq!(stored_versions(&app, &token, "team/db"), [3, 4, 5]);
}

#[tokio::test]
async fn metadata_is_kept_when_omitted_and_replaced_when_given() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    let meta = json!({ "description": "prod db", "owner": "team-a" });
    assert_written(
        put(
            &app,
            &token,
            "m",
            json!({ "value": "v1", "metadata": meta }),
        )
        .await,
        201,
        "m",
        1,
    )
    .await;
    assert_read(get(&app, &token, "m").await, "m", "v1", 1, meta.clone()).await;

    // Omitted: kept.
    assert_written(put_value(&app, &token, "m", "v2").await, 200, "m", 2).await;
    assert_read(get(&app, &token, "m").await, "m", "v2", 2, meta.clone()).await;
    // null is the same as omitted.
    assert_written(
        put(
            &app,
            &token,
            "m",
            json!({ "value": "v3", "metadata": null }),
        )
        .await,
        200,
        "m",
        3,
    )
    .await;
    assert_read(get(&app, &token, "m").await, "m", "v3", 3, meta.clone()).await;
    // Given: replaced, also by an empty object.
    let other = json!({ "rotated": "yes" });
    assert_written(
        put(
            &app,
            &token,
            "m",
            json!({ "value": "v4", "metadata": other }),
        )
        .await,
        200,
        "m",
        4,
    )
    .await;
    assert_read(get(&app, &token, "m").await, "m", "v4", 4, other.clone()).await;
    assert_eq!(
        entry(&app, &token, "", "m").await.unwrap()["metadata"],
        other
    );
    assert_written(
        put(&app, &token, "m", json!({ "value": "v5", "metadata": {} })).await,
        200,
        "m",
        5,
    )
    .await;
    assert_read(get(&app, &token, "m").await, "m", "v5", 5, json!({})).await;
}

// ---------------------------------------------------------------- 2. names

#[tokio::test]
async fn literal_and_percent_encoded_slashes_name_the_same_secret() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    assert_written(
        put_value(&app, &token, "team/db/password", "hunter2").await,
        201,
        "team/db/password",
        1,
    )
    .await;
    // Encoded slashes address the same secret, for every method.
    assert_read(
        get(&app, &token, "team%2Fdb%2Fpassword").await,
        "team/db/password",
        "hunter2",
        1,
        json!({}),
    )
    .await;
    assert_read(
        get(&app, &token, "team/db%2fpassword").await,
        "team/db/password",
        "hunter2",
        1,
        json!({}),
    )
    .await;
    assert_written(
        put_value(&app, &token, "team%2Fdb%2Fpassword", "hunter3").await,
        200,
        "team/db/password",
        2,
    )
    .await;
    assert_value(&app, &token, "team/db/password", "hunter3", 2).await;
    assert_eq!(listed(&app, &token, "").await, ["team/db/password"]);
    assert_no_content(delete(&app, &token, "team%2Fdb%2Fpassword").await, 204).await;
    assert_not_found(get(&app, &token, "team/db/password").await).await;
    assert_written(
        undelete(&app, &token, "team%2Fdb%2Fpassword").await,
        200,
        "team/db/password",
        2,
    )
    .await;
    assert_value(&app, &token, "team/db/password", "hunter3", 2).await;

    // `a/undelete` is an ordinary name for every method but POST.
    assert_written(
        put_value(&app, &token, "a/undelete", "not a verb").await,
        201,
        "a/undelete",
        1,
    )
    .await;
    assert_value(&app, &token, "a/undelete", "not a verb", 1).await;
    assert_no_content(delete(&app, &token, "a/undelete").await, 204).await;
    assert_not_found(get(&app, &token, "a/undelete").await).await;
    // POST …/undelete restores the secret `a/undelete`.
    assert_written(
        undelete(&app, &token, "a/undelete").await,
        200,
        "a/undelete",
        1,
    )
    .await;
    assert_value(&app, &token, "a/undelete", "not a verb", 1).await;

    // Every allowed character, and the longest name.
    let longest = "n".repeat(128);
    for name in ["A-Z_a.z-0/9", longest.as_str()] {
        assert_written(put_value(&app, &token, name, "ok").await, 201, name, 1).await;
        assert_value(&app, &token, name, "ok", 1).await;
    }
}

#[tokio::test]
async fn invalid_names_are_422_naming_the_field() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    let too_long = "n".repeat(129);
    let bad_names = [
        "with%20space",
        too_long.as_str(),
        "caf%C3%A9",
        "semi%3Bcolon",
        "star*",
        "tab%09",
        "%25",
    ];
    for name in bad_names {
        for response in [
            put_value(&app, &token, name, "v").await,
            get(&app, &token, name).await,
            delete(&app, &token, name).await,
            destroy(&app, &token, name).await,
            undelete(&app, &token, name).await,
        ] {
            let url = response.url().clone();
            let got = detail(response, 422).await;
            assert!(got.starts_with("name: "), "{url}: {got}");
        }
    }
    // Nothing was written.
    assert_eq!(
        listed(&app, &token, "?deleted=true").await,
        Vec::<String>::new()
    );
}

/// The contract: "Any other character, empty, or too long: 422 name: …". An empty
/// name written into the URL is `/secrets/` (a trailing slash), which the vault
/// routes match with an empty name.
#[tokio::test]
async fn an_empty_name_is_422_naming_the_field() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    for response in [
        put_value(&app, &token, "", "v").await,
        get(&app, &token, "").await,
        delete(&app, &token, "").await,
    ] {
        let url = response.url().clone();
        let got = detail(response, 422).await;
        assert!(got.starts_with("name: "), "{url}: {got}");
    }
}

/// The vault's routes are chosen by method and a literal `/undelete` suffix
/// (routes.rs), not by a pattern: what they do not take is 405 with `Allow`, as
/// on every other path, and only `/secrets` and paths below it are theirs.
#[tokio::test]
async fn vault_paths_are_routed_by_method_and_a_literal_undelete_suffix() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    assert_written(put_value(&app, &token, "a", "v").await, 201, "a", 1).await;
    let send = |method: Method, path: &'static str| {
        let request = bearer(&app, method, path, &token);
        async move { request.send().await.unwrap() }
    };
    for (method, path) in [
        // A name (`undelete`) without the route's separating slash.
        (Method::POST, "/secrets/undelete"),
        // An encoded slash belongs to the name, so this is `a/undelete`, not
        // the undelete route.
        (Method::POST, "/secrets/a%2Fundelete"),
        (Method::POST, "/secrets/a"),
        (Method::PATCH, "/secrets/a/undelete"),
        (Method::HEAD, "/secrets/a"),
        // Not a literal `/undelete` at the end.
        (Method::POST, "/secrets/a/undelete/"),
    ] {
        let response = send(method.clone(), path).await;
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(
            header(&response, "allow").as_deref(),
            Some("GET, PUT, DELETE"),
            "{method} {path}"
        );
    }
    let response = send(Method::POST, "/secrets").await;
    assert_eq!(response.status(), 405);
    assert_eq!(header(&response, "allow").as_deref(), Some("GET"));
    // An empty name before `/undelete` is still the undelete route's.
    let got = detail(send(Method::POST, "/secrets//undelete").await, 422).await;
    assert!(got.starts_with("name: "), "{got}");
    // A name is decoded once: `%252F` is the name `a%2Fb`, which holds a `%`,
    // never the secret `a/b`.
    assert_written(
        put_value(&app, &token, "a/b", "folder").await,
        201,
        "a/b",
        1,
    )
    .await;
    let got = detail(send(Method::GET, "/secrets/a%252Fb").await, 422).await;
    assert!(got.starts_with("name: "), "{got}");
    // With any method but POST, an encoded `/undelete` is part of the name.
    assert_written(
        put_value(&app, &token, "a/undelete", "x").await,
        201,
        "a/undelete",
        1,
    )
    .await;
    assert_read(
        send(Method::GET, "/secrets/a%2Fundelete").await,
        "a/undelete",
        "x",
        1,
        json!({}),
    )
    .await;
    // Only whole segments: `/secretsa` is no vault path.
    assert_eq!(send(Method::GET, "/secretsa").await.status(), 404);
    // What the vault does serve still works, listing included.
    assert_no_content(delete(&app, &token, "a").await, 204).await;
    assert_written(undelete(&app, &token, "a").await, 200, "a", 1).await;
    assert_value(&app, &token, "a", "v", 1).await;
    assert_eq!(listed(&app, &token, "").await, ["a", "a/b", "a/undelete"]);
}

// ---------------------------------------------------------------- 3. check-and-set

#[tokio::test]
async fn if_match_writes_only_on_the_expected_version() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    assert_written(put_value(&app, &token, "cas", "v1").await, 201, "cas", 1).await;

    assert_written(
        put_if(&app, &token, "cas", "v2", "if-match", "\"1\"").await,
        200,
        "cas",
        2,
    )
    .await;
    // Stale: the detail names the current version.
    assert_detail(
        put_if(&app, &token, "cas", "lost", "if-match", "\"1\"").await,
        412,
        "the secret is at version 2, not 1",
    )
    .await;
    assert_detail(
        put_if(&app, &token, "cas", "lost", "if-match", "\"3\"").await,
        412,
        "the secret is at version 2, not 3",
    )
    .await;
    assert_value(&app, &token, "cas", "v2", 2).await;
    // Surrounding whitespace is not part of the value.
    assert_written(
        put_if(&app, &token, "cas", "v3", "if-match", " \"2\" ").await,
        200,
        "cas",
        3,
    )
    .await;

    // A missing secret fails any If-Match, and is not created.
    assert_eq!(
        put_if(&app, &token, "missing", "v", "if-match", "\"1\"")
            .await
            .status(),
        412
    );
    assert_eq!(
        put_if(&app, &token, "missing", "v", "if-match", "*")
            .await
            .status(),
        412
    );
    assert_not_found(get(&app, &token, "missing").await).await;

    // If-Match: * writes when the secret exists.
    assert_written(
        put_if(&app, &token, "cas", "v4", "if-match", "*").await,
        200,
        "cas",
        4,
    )
    .await;
    assert_value(&app, &token, "cas", "v4", 4).await;
    // …also when it is soft-deleted (it still exists), restoring it.
    assert_no_content(delete(&app, &token, "cas").await, 204).await;
    assert_written(
        put_if(&app, &token, "cas", "v5", "if-match", "\"4\"").await,
        200,
        "cas",
        5,
    )
    .await;
    assert_value(&app, &token, "cas", "v5", 5).await;
}

#[tokio::test]
async fn if_none_match_star_only_creates() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    assert_written(
        put_if(&app, &token, "once", "first", "if-none-match", "*").await,
        201,
        "once",
        1,
    )
    .await;
    assert_detail(
        put_if(&app, &token, "once", "second", "if-none-match", "*").await,
        412,
        "a secret named 'once' already exists",
    )
    .await;
    assert_value(&app, &token, "once", "first", 1).await;
}

#[tokio::test]
async fn malformed_or_conflicting_conditions_are_400_and_write_nothing() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    assert_written(put_value(&app, &token, "cas", "v1").await, 201, "cas", 1).await;
    for bad in [
        "1",
        "W/\"1\"",
        "\"0\"",
        "\"\"",
        "\"-1\"",
        "\"1.0\"",
        "\"a\"",
        "\"1\", \"2\"",
        "**",
        "\"18446744073709551616\"",
    ] {
        let got = detail(
            put_if(&app, &token, "cas", "bad", "if-match", bad).await,
            400,
        )
        .await;
        assert!(
            got.to_ascii_lowercase().contains("if-match"),
            "If-Match: {bad} → {got}"
        );
    }
    for bad in ["\"1\"", "1", "W/\"1\""] {
        let got = detail(
            put_if(&app, &token, "new", "bad", "if-none-match", bad).await,
            400,
        )
        .await;
        assert!(
            got.to_ascii_lowercase().contains("if-none-match"),
            "If-None-Match: {bad} → {got}"
        );
    }
    let both = bearer(&app, Method::PUT, "/secrets/cas", &token)
        .header("if-match", "\"1\"")
        .header("if-none-match", "*")
        .json(&json!({ "value": "bad" }))
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400);
    assert_value(&app, &token, "cas", "v1", 1).await;
    assert_not_found(get(&app, &token, "new").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_concurrent_writers_with_the_same_if_match_exactly_one_wins() {
    let app = spawn_app_with(|config| config.workers = 2).await;
    let token = app.user_with_token("alice").await;
    for round in 0..20 {
        let name = format!("race/{round}");
        assert_written(put_value(&app, &token, &name, "base").await, 201, &name, 1).await;
        let (a, b) = tokio::join!(
            put_if(&app, &token, &name, "writer a", "if-match", "\"1\""),
            put_if(&app, &token, &name, "writer b", "if-match", "\"1\""),
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        let winner = if statuses[0] == 200 {
            "writer a"
        } else {
            "writer b"
        };
        let (won, lost) = if statuses[0] == 200 { (a, b) } else { (b, a) };
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 412], "round {round}");
        assert_written(won, 200, &name, 2).await;
        assert_detail(lost, 412, "the secret is at version 2, not 1").await;
        assert_value(&app, &token, &name, winner, 2).await;
        assert_eq!(
            stored_versions(&app, &token, &name),
            [1, 2],
            "round {round}"
        );

        // Two concurrent creates with If-None-Match: *: one 201, one 412.
        let name = format!("create/{round}");
        let (a, b) = tokio::join!(
            put_if(&app, &token, &name, "creator a", "if-none-match", "*"),
            put_if(&app, &token, &name, "creator b", "if-none-match", "*"),
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        let winner = if statuses[0] == 201 {
            "creator a"
        } else {
            "creator b"
        };
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 412], "round {round}");
        assert_value(&app, &token, &name, winner, 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_unconditional_writes_each_get_their_own_version() {
    // As many as `make bench` uses: none may be refused as busy.
    const WRITERS: u64 = 64;
    let app = spawn_app_with(|config| config.workers = 2).await;
    let token = app.user_with_token("alice").await;
    assert_written(
        put_value(&app, &token, "busy", "base").await,
        201,
        "busy",
        1,
    )
    .await;
    let values: Vec<String> = (0..WRITERS).map(|n| format!("w{n}")).collect();
    let writes = values
        .iter()
        .map(|value| put_value(&app, &token, "busy", value));
    let responses = futures_util::future::join_all(writes).await;
    let mut versions = Vec::new();
    for response in responses {
        let etag = header(&response, "etag");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "no write is lost or refused: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(etag, Some(format!("\"{}\"", body["version"])));
        versions.push(body["version"].as_u64().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=WRITERS + 1).collect::<Vec<_>>());
    let newest: Value = get(&app, &token, "busy").await.json().await.unwrap();
    assert_eq!(newest["version"], WRITERS + 1);
    // The default keeps 10.
    assert_eq!(
        stored_versions(&app, &token, "busy"),
        ((WRITERS + 1 - 9)..=(WRITERS + 1))
            .map(|v| v as i64)
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------- 4. delete

#[tokio::test]
async fn soft_delete_undelete_and_destroy() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    assert_written(put_value(&app, &token, "s", "v1").await, 201, "s", 1).await;
    assert_written(put_value(&app, &token, "keep", "k").await, 201, "keep", 1).await;

    // Soft delete: gone for reads and the default listing, kept for ?deleted=true.
    assert_no_content(delete(&app, &token, "s").await, 204).await;
    assert_not_found(get(&app, &token, "s").await).await;
    assert_not_found(get_version(&app, &token, "s", "1").await).await;
    assert_eq!(listed(&app, &token, "").await, ["keep"]);
    assert_eq!(listed(&app, &token, "?deleted=false").await, ["keep"]);
    let deleted = entry(&app, &token, "?deleted=true", "s")
        .await
        .expect("listed");
    let deleted_at = recent(&deleted, "deleted_at");
    assert_eq!(deleted["version"], 1);
    assert!(entry(&app, &token, "?deleted=true", "keep").await.unwrap()["deleted_at"].is_null());

    // Deleting again: 204, and the first deletion time stays.
    assert_no_content(delete(&app, &token, "s").await, 204).await;
    let again = entry(&app, &token, "?deleted=true", "s").await.unwrap();
    assert_eq!(again["deleted_at"], deleted_at);

    // A create-only write does not see through a soft delete.
    assert_detail(
        put_if(&app, &token, "s", "sneaky", "if-none-match", "*").await,
        412,
        "a secret named 's' already exists",
    )
    .await;

    // Undelete: same version, readable again; undeleting a live one is fine too.
    assert_written(undelete(&app, &token, "s").await, 200, "s", 1).await;
    assert_value(&app, &token, "s", "v1", 1).await;
    assert_written(undelete(&app, &token, "s").await, 200, "s", 1).await;
    assert!(entry(&app, &token, "", "s").await.unwrap()["deleted_at"].is_null());

    // A write to a soft-deleted secret is a new version and restores it.
    assert_no_content(delete(&app, &token, "s").await, 204).await;
    assert_written(put_value(&app, &token, "s", "v2").await, 200, "s", 2).await;
    assert_value(&app, &token, "s", "v2", 2).await;
    assert!(entry(&app, &token, "", "s").await.unwrap()["deleted_at"].is_null());
    assert_read(
        get_version(&app, &token, "s", "1").await,
        "s",
        "v1",
        1,
        json!({}),
    )
    .await;

    // Destroy, also of a soft-deleted secret: gone for good.
    assert_no_content(delete(&app, &token, "s").await, 204).await;
    assert_no_content(destroy(&app, &token, "s").await, 204).await;
    assert_not_found(get(&app, &token, "s").await).await;
    assert_not_found(get_version(&app, &token, "s", "1").await).await;
    assert_not_found(undelete(&app, &token, "s").await).await;
    assert_not_found(delete(&app, &token, "s").await).await;
    assert_not_found(destroy(&app, &token, "s").await).await;
    assert_eq!(listed(&app, &token, "?deleted=true").await, ["keep"]);
    assert_eq!(stored_versions(&app, &token, "s"), Vec::<i64>::new());
    // Destroying a live secret.
    assert_no_content(destroy(&app, &token, "keep").await, 204).await;
    assert_not_found(get(&app, &token, "keep").await).await;
    // `?destroy=false` is a soft delete.
    assert_written(put_value(&app, &token, "soft", "x").await, 201, "soft", 1).await;
    let response = bearer(&app, Method::DELETE, "/secrets/soft?destroy=false", &token)
        .send()
        .await
        .unwrap();
    assert_no_content(response, 204).await;
    assert_written(undelete(&app, &token, "soft").await, 200, "soft", 1).await;

    // The name is free again: a new secret, version 1.
    assert_written(put_value(&app, &token, "s", "reborn").await, 201, "s", 1).await;
    assert_value(&app, &token, "s", "reborn", 1).await;
    assert_detail(
        get_version(&app, &token, "s", "2").await,
        404,
        "version 2 is not kept",
    )
    .await;

    // No such secret at all.
    assert_not_found(delete(&app, &token, "never").await).await;
    assert_not_found(destroy(&app, &token, "never").await).await;
    assert_not_found(undelete(&app, &token, "never").await).await;

    // `destroy` must be true or false.
    for bad in ["maybe", "1", "TRUE", ""] {
        let response = bearer(
            &app,
            Method::DELETE,
            &format!("/secrets/s?destroy={bad}"),
            &token,
        )
        .send()
        .await
        .unwrap();
        let got = detail(response, 422).await;
        assert!(got.starts_with("destroy: "), "destroy={bad}: {got}");
    }
    assert_value(&app, &token, "s", "reborn", 1).await;
}

// ---------------------------------------------------------------- 5. listing

#[tokio::test]
async fn the_list_is_sorted_by_name_and_filtered_by_a_plain_prefix() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    assert_eq!(listed(&app, &token, "").await, Vec::<String>::new());
    // Written out of order, each with a value the listing must never show.
    let names = [
        "zeta",
        "team/db/password",
        "a_c",
        "teams",
        "A_b",
        "b",
        "a_b",
        "aXb",
        "team/api",
    ];
    for name in names {
        assert_written(
            put(
                &app,
                &token,
                name,
                json!({ "value": format!("VALUE-CANARY-{name}"), "metadata": { "n": name } }),
            )
            .await,
            201,
            name,
            1,
        )
        .await;
    }
    assert_written(
        put_value(&app, &token, "b", "VALUE-CANARY-b2").await,
        200,
        "b",
        2,
    )
    .await;
    let sorted = [
        "A_b",
        "aXb",
        "a_b",
        "a_c",
        "b",
        "team/api",
        "team/db/password",
        "teams",
        "zeta",
    ];

    let response = list(&app, &token, "").await;
    let text = response.text().await.unwrap();
    assert!(!text.contains("CANARY"), "a value in the listing: {text}");
    let (entries, cursor) = page(list(&app, &token, "").await).await;
    assert_eq!(cursor, None);
    assert_eq!(names_of(&entries), sorted);
    let b = &entries[4];
    assert_eq!(b["version"], 2);
    assert_eq!(b["oldest_version"], 1);
    assert_eq!(b["metadata"], json!({ "n": "b" }));
    assert!(b["deleted_at"].is_null());

    // A plain prefix: `_` is no wildcard, case matters, `team/` is a folder.
    assert_eq!(listed(&app, &token, "?prefix=a_").await, ["a_b", "a_c"]);
    assert_eq!(listed(&app, &token, "?prefix=A").await, ["A_b"]);
    assert_eq!(
        listed(&app, &token, "?prefix=a").await,
        ["aXb", "a_b", "a_c"]
    );
    assert_eq!(
        listed(&app, &token, "?prefix=team/").await,
        ["team/api", "team/db/password"]
    );
    assert_eq!(
        listed(&app, &token, "?prefix=team%2Fdb%2F").await,
        ["team/db/password"]
    );
    assert_eq!(
        listed(&app, &token, "?prefix=team").await,
        ["team/api", "team/db/password", "teams"]
    );
    assert_eq!(listed(&app, &token, "?prefix=zeta").await, ["zeta"]);
    assert_eq!(
        listed(&app, &token, "?prefix=zeta.").await,
        Vec::<String>::new()
    );
    assert_eq!(listed(&app, &token, "?prefix=").await, sorted);
}

#[tokio::test]
async fn pages_follow_next_cursor_to_the_end_without_duplicates() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    let mut names: Vec<String> = (0..9).map(|n| format!("p/{n:02}")).collect();
    names.push("q".to_owned());
    for name in &names {
        assert_eq!(put_value(&app, &token, name, "v").await.status(), 201);
    }
    // A soft-deleted secret is skipped by default and paged with ?deleted=true.
    assert_no_content(delete(&app, &token, "p/04").await, 204).await;

    let walk = |query: &'static str| {
        let app = &app;
        let token = &token;
        async move {
            let mut seen: Vec<String> = Vec::new();
            let mut pages = 0;
            let mut cursor: Option<String> = None;
            loop {
                let url = match &cursor {
                    None => format!("?limit=2{query}"),
                    Some(cursor) => format!("?limit=2{query}&cursor={cursor}"),
                };
                let (entries, next) = page(list(app, token, &url).await).await;
                pages += 1;
                assert!(entries.len() <= 2, "{url}");
                seen.extend(names_of(&entries));
                match next {
                    Some(next) => {
                        assert_eq!(entries.len(), 2, "a full page before a cursor: {url}");
                        cursor = Some(next);
                    }
                    None => break,
                }
                assert!(pages < 20, "the cursor does not end");
            }
            (seen, pages)
        }
    };
    let live: Vec<String> = names.iter().filter(|n| *n != "p/04").cloned().collect();
    let (seen, pages) = walk("").await;
    assert_eq!(seen, live, "every live secret once, in order");
    assert_eq!(pages, 5);
    let (seen, pages) = walk("&deleted=true").await;
    assert_eq!(seen, names);
    assert_eq!(pages, 5);
    let (seen, _) = walk("&prefix=p/").await;
    assert_eq!(seen, live[..8]);

    // A page that holds exactly what is left has no cursor.
    let (entries, cursor) = page(list(&app, &token, "?limit=9").await).await;
    assert_eq!(entries.len(), 9);
    assert_eq!(cursor, None);
    let (entries, cursor) = page(list(&app, &token, "?limit=8").await).await;
    assert_eq!(entries.len(), 8);
    let cursor = cursor.expect("one more left");
    let (entries, last) =
        page(list(&app, &token, &format!("?limit=8&cursor={cursor}")).await).await;
    assert_eq!(names_of(&entries), ["q"]);
    assert_eq!(last, None);
    // The largest page.
    let (entries, cursor) = page(list(&app, &token, "?limit=200").await).await;
    assert_eq!(entries.len(), 9);
    assert_eq!(cursor, None);
}

#[tokio::test]
async fn bad_list_queries_are_422_naming_the_field() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    assert_eq!(put_value(&app, &token, "a", "v").await.status(), 201);
    for limit in ["0", "201", "x", "-1", "1.5", ""] {
        let got = detail(list(&app, &token, &format!("?limit={limit}")).await, 422).await;
        assert_eq!(got, "limit: must be 1 to 200", "limit={limit}");
    }
    let not_a_name = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        "not a name",
    );
    for cursor in ["!!!", "%FF", "a", not_a_name.as_str()] {
        let got = detail(list(&app, &token, &format!("?cursor={cursor}")).await, 422).await;
        assert!(got.starts_with("cursor: "), "cursor={cursor}: {got}");
    }
    for deleted in ["maybe", "1", "yes"] {
        let got = detail(
            list(&app, &token, &format!("?deleted={deleted}")).await,
            422,
        )
        .await;
        assert!(got.starts_with("deleted: "), "deleted={deleted}: {got}");
    }
    for prefix in ["a%20b", "%C3%A9"] {
        let got = detail(list(&app, &token, &format!("?prefix={prefix}")).await, 422).await;
        assert!(got.starts_with("prefix: "), "prefix={prefix}: {got}");
    }
}

// ---------------------------------------------------------------- 6. limits

#[tokio::test]
async fn a_value_of_exactly_max_secret_bytes_is_stored_and_one_byte_more_is_413() {
    let app = spawn_app_with(|config| config.max_secret_bytes = 1000).await;
    let token = app.user_with_token("alice").await;
    let largest = "x".repeat(1000);
    assert_written(
        put_value(&app, &token, "big", &largest).await,
        201,
        "big",
        1,
    )
    .await;
    assert_value(&app, &token, "big", &largest, 1).await;

    let over = format!("{largest}x");
    assert_detail(
        put_value(&app, &token, "big", &over).await,
        413,
        "value: must be at most 1000 bytes",
    )
    .await;
    assert_detail(
        put_value(&app, &token, "new", &over).await,
        413,
        "value: must be at most 1000 bytes",
    )
    .await;
    // Bytes, not characters: 500 two-byte characters fit, 334 three-byte ones do not.
    let two_byte = "é".repeat(500);
    assert_written(
        put_value(&app, &token, "big", &two_byte).await,
        200,
        "big",
        2,
    )
    .await;
    assert_value(&app, &token, "big", &two_byte, 2).await;
    assert_detail(
        put_value(&app, &token, "big", &"€".repeat(334)).await,
        413,
        "value: must be at most 1000 bytes",
    )
    .await;
    // A value that JSON escaping doubles still fits the body limit.
    let quotes = "\"".repeat(1000);
    assert_written(put_value(&app, &token, "big", &quotes).await, 200, "big", 3).await;
    assert_value(&app, &token, "big", &quotes, 3).await;
    // The compat route honours the same limit.
    assert_eq!(
        app.set_secret(&token, "alice", &largest).await.status(),
        200
    );
    assert_detail(
        app.set_secret(&token, "alice", &over).await,
        413,
        "secret: must be at most 1000 bytes",
    )
    .await;

    // A body far over the limit is refused before it is read (64 KiB, the
    // smallest body limit, is above 2 × 1000 + 16 KiB).
    let huge = "x".repeat(512 * 1024);
    let got = detail(put_value(&app, &token, "big", &huge).await, 413).await;
    assert_eq!(got, "request body must be at most 65536 bytes");
    // Nothing refused was written.
    assert_value(&app, &token, "big", &quotes, 3).await;
    assert_not_found(get(&app, &token, "new").await).await;
}

#[tokio::test]
async fn the_default_64_kib_value_limit_applies_to_put_and_set_secret() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    let largest = "y".repeat(64 * 1024);
    let over = format!("{largest}y");
    assert_written(
        put_value(&app, &token, "big", &largest).await,
        201,
        "big",
        1,
    )
    .await;
    assert_value(&app, &token, "big", &largest, 1).await;
    assert_detail(
        put_value(&app, &token, "big", &over).await,
        413,
        "value: must be at most 65536 bytes",
    )
    .await;

    assert_eq!(
        app.set_secret(&token, "alice", &largest).await.status(),
        200
    );
    assert_json(
        app.get_secret(&token, "alice").await,
        200,
        json!({ "secret": largest }),
    )
    .await;
    assert_detail(
        app.set_secret(&token, "alice", &over).await,
        413,
        "secret: must be at most 65536 bytes",
    )
    .await;
    // The body limit is 2 × 64 KiB + 16 KiB: a far larger body is 413 too.
    let huge = "y".repeat(1024 * 1024);
    let got = detail(put_value(&app, &token, "big", &huge).await, 413).await;
    assert_eq!(
        got,
        format!("request body must be at most {}", 2 * 65536 + 16 * 1024) + " bytes"
    );
    assert_value(&app, &token, "big", &largest, 1).await;
}

#[tokio::test]
async fn metadata_and_the_body_shape_are_validated() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    // The limits themselves are fine: 16 entries, a 64-character key, 512 bytes.
    let mut most = serde_json::Map::new();
    for n in 0..15 {
        most.insert(format!("k{n}"), json!("v"));
    }
    most.insert("K".repeat(64), json!("é".repeat(256)));
    let most = Value::Object(most);
    assert_written(
        put(&app, &token, "m", json!({ "value": "v", "metadata": most })).await,
        201,
        "m",
        1,
    )
    .await;
    assert_read(get(&app, &token, "m").await, "m", "v", 1, most.clone()).await;

    let mut seventeen = serde_json::Map::new();
    for n in 0..17 {
        seventeen.insert(format!("k{n}"), json!("v"));
    }
    let bad_metadata = [
        (
            Value::Object(seventeen),
            "metadata: must have at most 16 entries",
        ),
        (
            json!({ "bad key": "v" }),
            "metadata: keys must be 1 to 64 characters of letters, digits, '.', '_' and '-'",
        ),
        (
            json!({ "": "v" }),
            "metadata: keys must be 1 to 64 characters of letters, digits, '.', '_' and '-'",
        ),
        (
            json!({ "k/ey": "v" }),
            "metadata: keys must be 1 to 64 characters of letters, digits, '.', '_' and '-'",
        ),
        (
            json!({ "K".repeat(65): "v" }),
            "metadata: keys must be 1 to 64 characters of letters, digits, '.', '_' and '-'",
        ),
        (
            json!({ "k": "x".repeat(513) }),
            "metadata: values must be at most 512 bytes",
        ),
        (
            json!({ "k": "é".repeat(257) }),
            "metadata: values must be at most 512 bytes",
        ),
    ];
    for (metadata, expected) in bad_metadata {
        assert_detail(
            put(
                &app,
                &token,
                "m",
                json!({ "value": "new", "metadata": metadata }),
            )
            .await,
            422,
            expected,
        )
        .await;
    }
    // Unknown fields are refused (without echoing them).
    for body in [
        json!({ "value": "v", "colour": "red" }),
        json!({ "value": "v", "version": 7 }),
    ] {
        assert_detail(
            put(&app, &token, "m", body).await,
            422,
            "body: must be `value` or `metadata`",
        )
        .await;
    }
    // Wrong types, and a missing value (which field the detail names is
    // `put_body_errors_name_the_field_value_or_metadata`).
    for body in [
        json!({ "value": "v", "metadata": { "k": 1 } }),
        json!({ "value": "v", "metadata": ["k"] }),
        json!({ "value": "v", "metadata": "k=v" }),
        json!({ "metadata": {} }),
        json!({ "value": 5 }),
        json!({ "value": null }),
        json!({ "value": ["v"] }),
    ] {
        let response = put(&app, &token, "m", body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
    }
    let response = bearer(&app, Method::PUT, "/secrets/m", &token)
        .json(&json!(["v"]))
        .send()
        .await
        .unwrap();
    assert_detail(response, 422, "body: must be a JSON object").await;
    // Not JSON at all.
    let response = bearer(&app, Method::PUT, "/secrets/m", &token)
        .header("content-type", "application/json")
        .body("{\"value\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = bearer(&app, Method::PUT, "/secrets/m", &token)
        .header("content-type", "text/plain")
        .body("{\"value\": \"v\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    // None of it was written.
    assert_read(get(&app, &token, "m").await, "m", "v", 1, most).await;
}

#[tokio::test]
async fn the_per_user_secret_limit_counts_soft_deleted_secrets_until_destroyed() {
    let app = spawn_app_with(|config| config.max_secrets_per_user = 3).await;
    let token = app.user_with_token("alice").await;
    let full = "you have 3 secrets, the most allowed; delete one with ?destroy=true first";
    for name in ["s1", "s2", "s3"] {
        assert_written(put_value(&app, &token, name, "v").await, 201, name, 1).await;
    }
    assert_detail(put_value(&app, &token, "s4", "v").await, 409, full).await;
    assert_detail(
        put_if(&app, &token, "s4", "v", "if-none-match", "*").await,
        409,
        full,
    )
    .await;
    // The compat route creates `default`, and counts the same.
    assert_detail(app.set_secret(&token, "alice", "v").await, 409, full).await;
    // New versions of existing secrets still fit.
    assert_written(put_value(&app, &token, "s1", "v2").await, 200, "s1", 2).await;

    // A soft-deleted secret still counts; writing to it restores it.
    assert_no_content(delete(&app, &token, "s1").await, 204).await;
    assert_detail(put_value(&app, &token, "s4", "v").await, 409, full).await;
    assert_written(put_value(&app, &token, "s1", "v3").await, 200, "s1", 3).await;
    assert_no_content(delete(&app, &token, "s1").await, 204).await;
    // Destroying makes room.
    assert_no_content(destroy(&app, &token, "s1").await, 204).await;
    assert_written(put_value(&app, &token, "s4", "v").await, 201, "s4", 1).await;
    assert_detail(put_value(&app, &token, "s5", "v").await, 409, full).await;
    assert_eq!(
        listed(&app, &token, "?deleted=true").await,
        ["s2", "s3", "s4"]
    );

    // The limit is per user.
    let bob = app.user_with_token("bob").await;
    for name in ["s1", "s2", "s3"] {
        assert_written(put_value(&app, &bob, name, "b").await, 201, name, 1).await;
    }
    assert_detail(put_value(&app, &bob, "s4", "b").await, 409, full).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_the_secret_limit_concurrent_creates_let_exactly_one_in() {
    let app = spawn_app_with(|config| {
        config.max_secrets_per_user = 3;
        config.workers = 2;
    })
    .await;
    let token = app.user_with_token("alice").await;
    for name in ["s1", "s2"] {
        assert_eq!(put_value(&app, &token, name, "v").await.status(), 201);
    }
    let names = ["c0", "c1", "c2", "c3", "c4", "c5"];
    let creates = names.iter().map(|name| put_value(&app, &token, name, "v"));
    let statuses: Vec<u16> = futures_util::future::join_all(creates)
        .await
        .iter()
        .map(|response| response.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(listed(&app, &token, "?deleted=true").await.len(), 3);
}

// ---------------------------------------------------------------- 7. isolation

#[tokio::test]
async fn another_users_secret_of_the_same_name_is_not_found() {
    let app = spawn_app().await;
    let alice = app.user_with_token("alice").await;
    let bob = app.user_with_token("bob").await;
    assert_written(
        put(
            &app,
            &alice,
            "shared/name",
            json!({ "value": "alice's", "metadata": { "who": "alice" } }),
        )
        .await,
        201,
        "shared/name",
        1,
    )
    .await;
    assert_written(
        put_value(&app, &alice, "gone", "alice's").await,
        201,
        "gone",
        1,
    )
    .await;
    assert_no_content(delete(&app, &alice, "gone").await, 204).await;

    for name in ["shared/name", "gone"] {
        assert_not_found(get(&app, &bob, name).await).await;
        assert_not_found(get_version(&app, &bob, name, "1").await).await;
        assert_not_found(delete(&app, &bob, name).await).await;
        assert_not_found(undelete(&app, &bob, name).await).await;
        assert_not_found(destroy(&app, &bob, name).await).await;
        // A conditional write only sees bob's own (missing) secret.
        assert_detail(
            put_if(&app, &bob, name, "bob's", "if-match", "\"1\"").await,
            412,
            &format!("no secret named '{name}' exists"),
        )
        .await;
    }
    assert_eq!(listed(&app, &bob, "").await, Vec::<String>::new());
    assert_eq!(
        listed(&app, &bob, "?deleted=true").await,
        Vec::<String>::new()
    );
    assert_eq!(
        listed(&app, &bob, "?prefix=shared/").await,
        Vec::<String>::new()
    );

    // Bob's write of the same name creates his own secret.
    assert_written(
        put_if(&app, &bob, "shared/name", "bob's", "if-none-match", "*").await,
        201,
        "shared/name",
        1,
    )
    .await;
    assert_written(
        put_value(&app, &bob, "shared/name", "bob's 2").await,
        200,
        "shared/name",
        2,
    )
    .await;
    assert_written(put_value(&app, &bob, "gone", "bob's").await, 201, "gone", 1).await;
    assert_no_content(destroy(&app, &bob, "gone").await, 204).await;
    assert_value(&app, &bob, "shared/name", "bob's 2", 2).await;

    // Alice's secrets are unchanged.
    assert_read(
        get(&app, &alice, "shared/name").await,
        "shared/name",
        "alice's",
        1,
        json!({ "who": "alice" }),
    )
    .await;
    assert_detail(
        get_version(&app, &alice, "shared/name", "2").await,
        404,
        "version 2 is not kept",
    )
    .await;
    assert_eq!(listed(&app, &alice, "").await, ["shared/name"]);
    assert_eq!(
        listed(&app, &alice, "?deleted=true").await,
        ["gone", "shared/name"]
    );
    assert_written(undelete(&app, &alice, "gone").await, 200, "gone", 1).await;
    assert_value(&app, &alice, "gone", "alice's", 1).await;
    assert_eq!(listed(&app, &bob, "").await, ["shared/name"]);
}

#[tokio::test]
async fn deleting_an_account_deletes_its_secrets_and_a_new_account_of_that_name_starts_empty() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    let old_id = user_id(&token);
    assert_written(
        put_value(&app, &token, "s", "old-account-CANARY").await,
        201,
        "s",
        1,
    )
    .await;
    assert_written(
        put_value(&app, &token, "s", "old-account-CANARY-2").await,
        200,
        "s",
        2,
    )
    .await;
    assert_written(put_value(&app, &token, "gone", "x").await, 201, "gone", 1).await;
    assert_no_content(delete(&app, &token, "gone").await, 204).await;
    let response = bearer(&app, Method::DELETE, "/user/alice", &token)
        .send()
        .await
        .unwrap();
    assert_no_content(response, 204).await;
    assert_eq!(rows_of(&app, "secrets", &old_id), 0);
    assert_eq!(rows_of(&app, "secret_versions", &old_id), 0);
    assert_eq!(rows_of(&app, "data_keys", &old_id), 0);

    let token = app.user_with_token("alice").await;
    assert_ne!(user_id(&token), old_id);
    assert_not_found(get(&app, &token, "s").await).await;
    assert_not_found(undelete(&app, &token, "gone").await).await;
    assert_eq!(
        listed(&app, &token, "?deleted=true").await,
        Vec::<String>::new()
    );
    assert_written(put_value(&app, &token, "s", "new").await, 201, "s", 1).await;
}

// ---------------------------------------------------------------- 8. auth

/// Every vault route, with a body where it takes one.
fn vault_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/secrets", None),
        (Method::GET, "/secrets?deleted=true", None),
        (Method::GET, "/secrets/s", None),
        (Method::GET, "/secrets/s?version=1", None),
        (Method::GET, "/secrets/team/s", None),
        (
            Method::PUT,
            "/secrets/s",
            Some(json!({ "value": "overwritten" })),
        ),
        (
            Method::PUT,
            "/secrets/new",
            Some(json!({ "value": "created" })),
        ),
        (Method::DELETE, "/secrets/s", None),
        (Method::DELETE, "/secrets/s?destroy=true", None),
        (Method::POST, "/secrets/s/undelete", None),
    ]
}

#[tokio::test]
async fn every_vault_route_needs_a_credential() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    assert_written(put_value(&app, &token, "s", "kept").await, 201, "s", 1).await;
    let (head, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{head}.AAAA");
    for auth in [
        Auth::None,
        Auth::Bearer("not-a-token"),
        Auth::Bearer(&forged),
        Auth::Cookie("no-such-session"),
    ] {
        for (method, path, body) in vault_routes() {
            let mut request = app
                .request(method.clone(), path, auth)
                .header("x-requested-with", "XMLHttpRequest");
            if let Some(body) = &body {
                request = request.json(body);
            }
            // Also with an invalid name: the credential is checked first.
            assert_not_authorized(request.send().await.unwrap()).await;
        }
    }
    // A missing or unverifiable credential is refused before the name is even
    // looked at. (A cookie, or a token of an ended session, is only checked
    // against the sessions by the use case, after the request is validated, as on
    // the other routes: with a bad name that is a 422.)
    for auth in [
        Auth::None,
        Auth::Bearer("not-a-token"),
        Auth::Bearer(&forged),
    ] {
        for (method, path) in [
            (Method::GET, "/secrets/bad%20name"),
            (Method::PUT, "/secrets/bad%20name"),
            (Method::DELETE, "/secrets/bad%20name?destroy=maybe"),
            (Method::POST, "/secrets/bad%20name/undelete"),
            (Method::GET, "/secrets?limit=0"),
        ] {
            let response = app
                .request(method, path, auth)
                .header("content-type", "application/json")
                .body("{ not json")
                .send()
                .await
                .unwrap();
            assert_not_authorized(response).await;
        }
    }
    assert_value(&app, &token, "s", "kept", 1).await;
    assert_not_found(get(&app, &token, "new").await).await;

    // A token of a session that ended is refused as well.
    let response = bearer(&app, Method::POST, "/logout", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    for (method, path, body) in vault_routes() {
        let mut request = bearer(&app, method, path, &token);
        if let Some(body) = &body {
            request = request.json(body);
        }
        assert_not_authorized(request.send().await.unwrap()).await;
    }
}

#[tokio::test]
async fn a_cookie_session_reads_and_needs_csrf_proof_to_change_anything() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    let cookie = app.cookie_login_for("alice").await;
    let with_cookie = |method: Method, path: &str| app.request(method, path, Auth::Cookie(&cookie));
    assert_written(put_value(&app, &token, "s", "v1").await, 201, "s", 1).await;

    // Reads need no proof.
    let response = with_cookie(Method::GET, "/secrets/s").send().await.unwrap();
    assert_read(response, "s", "v1", 1, json!({})).await;
    let (entries, _) = page(with_cookie(Method::GET, "/secrets").send().await.unwrap()).await;
    assert_eq!(names_of(&entries), ["s"]);

    // Changes without Origin or X-Requested-With, or with a foreign Origin: 403.
    for origin in [None, Some("http://evil.example"), Some("null")] {
        let attempts = [
            with_cookie(Method::PUT, "/secrets/s").json(&json!({ "value": "csrf" })),
            with_cookie(Method::PUT, "/secrets/new").json(&json!({ "value": "csrf" })),
            with_cookie(Method::DELETE, "/secrets/s"),
            with_cookie(Method::DELETE, "/secrets/s?destroy=true"),
            with_cookie(Method::POST, "/secrets/s/undelete"),
        ];
        for request in attempts {
            let request = match origin {
                Some(origin) => request.header("origin", origin),
                None => request,
            };
            let response = request.send().await.unwrap();
            assert_json(response, 403, json!({ "detail": CSRF_REFUSED })).await;
        }
    }
    assert_value(&app, &token, "s", "v1", 1).await;
    assert_eq!(listed(&app, &token, "?deleted=true").await, ["s"]);

    // With the server's own Origin, or X-Requested-With, they go through.
    let response = with_cookie(Method::PUT, "/secrets/s")
        .header("origin", &app.address)
        .json(&json!({ "value": "v2" }))
        .send()
        .await
        .unwrap();
    assert_written(response, 200, "s", 2).await;
    let response = with_cookie(Method::DELETE, "/secrets/s")
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_no_content(response, 204).await;
    let response = with_cookie(Method::POST, "/secrets/s/undelete")
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_written(response, 200, "s", 2).await;
    assert_value(&app, &token, "s", "v2", 2).await;
}

// ---------------------------------------------------------------- 9. compat

#[tokio::test]
async fn set_secret_and_get_secret_act_on_the_secret_named_default() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    assert_json(
        app.get_secret(&token, "alice").await,
        404,
        json!({ "detail": "Secret not found" }),
    )
    .await;

    assert_json(
        app.set_secret(&token, "alice", "one").await,
        200,
        json!({ "message": "Secret set successfully" }),
    )
    .await;
    assert_value(&app, &token, "default", "one", 1).await;
    assert_eq!(app.set_secret(&token, "alice", "two").await.status(), 200);
    assert_value(&app, &token, "default", "two", 2).await;
    assert_read(
        get_version(&app, &token, "default", "1").await,
        "default",
        "one",
        1,
        json!({}),
    )
    .await;
    assert_json(
        app.get_secret(&token, "alice").await,
        200,
        json!({ "secret": "two" }),
    )
    .await;
    let listed_default = entry(&app, &token, "", "default").await.expect("listed");
    assert_eq!(listed_default["version"], 2);

    // The vault's writes are what /get_secret reads.
    assert_written(
        put(
            &app,
            &token,
            "default",
            json!({ "value": "three", "metadata": { "set": "by put" } }),
        )
        .await,
        200,
        "default",
        3,
    )
    .await;
    assert_json(
        app.get_secret(&token, "alice").await,
        200,
        json!({ "secret": "three" }),
    )
    .await;
    // /set_secret keeps the metadata (it sends none).
    assert_eq!(app.set_secret(&token, "alice", "four").await.status(), 200);
    assert_read(
        get(&app, &token, "default").await,
        "default",
        "four",
        4,
        json!({ "set": "by put" }),
    )
    .await;

    // Soft-deleted: /get_secret does not see it; /set_secret restores it.
    assert_no_content(delete(&app, &token, "default").await, 204).await;
    assert_json(
        app.get_secret(&token, "alice").await,
        404,
        json!({ "detail": "Secret not found" }),
    )
    .await;
    assert_eq!(app.set_secret(&token, "alice", "five").await.status(), 200);
    assert_json(
        app.get_secret(&token, "alice").await,
        200,
        json!({ "secret": "five" }),
    )
    .await;
    assert_read(
        get(&app, &token, "default").await,
        "default",
        "five",
        5,
        json!({ "set": "by put" }),
    )
    .await;

    // Destroyed: gone for /get_secret too, and the next /set_secret starts over.
    assert_no_content(destroy(&app, &token, "default").await, 204).await;
    assert_eq!(app.get_secret(&token, "alice").await.status(), 404);
    assert_eq!(app.set_secret(&token, "alice", "six").await.status(), 200);
    assert_value(&app, &token, "default", "six", 1).await;
}

// ---------------------------------------------------------------- 10. integrity

#[derive(diesel::QueryableByName)]
struct CiphertextRow {
    #[diesel(sql_type = Binary)]
    ciphertext: Vec<u8>,
}

#[derive(diesel::QueryableByName)]
struct VersionNumber {
    #[diesel(sql_type = BigInt)]
    version: i64,
}

fn database(app: &TestApp) -> safebox_infra::DbPool {
    safebox_infra::db::connect(&app.database_url, 1, Duration::from_secs(5)).unwrap()
}

/// The versions of `token`'s user's secret `name` stored in `secret_versions`.
fn stored_versions(app: &TestApp, token: &str, name: &str) -> Vec<i64> {
    let mut conn = database(app).get().unwrap();
    diesel::sql_query(
        "SELECT version FROM secret_versions WHERE user_id = ? AND name = ? ORDER BY version",
    )
    .bind::<Text, _>(user_id(token))
    .bind::<Text, _>(name)
    .load::<VersionNumber>(&mut *conn)
    .unwrap()
    .into_iter()
    .map(|row| row.version)
    .collect()
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// How many rows of `table` belong to the user `owner`.
fn rows_of(app: &TestApp, table: &str, owner: &str) -> i64 {
    let mut conn = database(app).get().unwrap();
    diesel::sql_query(format!(
        "SELECT COUNT(*) AS count FROM {table} WHERE user_id = ?"
    ))
    .bind::<Text, _>(owner)
    .get_result::<Count>(&mut *conn)
    .unwrap()
    .count
}

/// The stored ciphertext of one version.
fn ciphertext(app: &TestApp, owner: &str, name: &str, version: i64) -> Vec<u8> {
    let mut conn = database(app).get().unwrap();
    diesel::sql_query(
        "SELECT ciphertext FROM secret_versions WHERE user_id = ? AND name = ? AND version = ?",
    )
    .bind::<Text, _>(owner)
    .bind::<Text, _>(name)
    .bind::<BigInt, _>(version)
    .get_result::<CiphertextRow>(&mut *conn)
    .unwrap()
    .ciphertext
}

/// Overwrites the stored ciphertext of one version, as an attacker with write
/// access to the database file would.
fn overwrite_ciphertext(app: &TestApp, owner: &str, name: &str, version: i64, bytes: &[u8]) {
    let mut conn = database(app).get().unwrap();
    let updated = diesel::sql_query(
        "UPDATE secret_versions SET ciphertext = ? WHERE user_id = ? AND name = ? AND version = ?",
    )
    .bind::<Binary, _>(bytes)
    .bind::<Text, _>(owner)
    .bind::<Text, _>(name)
    .bind::<BigInt, _>(version)
    .execute(&mut *conn)
    .unwrap();
    assert_eq!(updated, 1, "one row of {name} v{version}");
}

/// Asserts the opaque 500 and that no value leaked into it.
async fn assert_integrity_failure(response: Response, values: &[&str]) {
    let url = response.url().clone();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 500, "{url}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body, json!({ "detail": INTERNAL }), "{url}");
    for value in values {
        assert!(!text.contains(value), "{value:?} in {text}");
    }
}

#[tokio::test]
async fn a_tampered_ciphertext_is_an_opaque_500_never_a_value() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    let owner = user_id(&token);
    assert_written(
        put_value(&app, &token, "t", "first-CANARY").await,
        201,
        "t",
        1,
    )
    .await;
    assert_written(
        put_value(&app, &token, "t", "second-CANARY").await,
        200,
        "t",
        2,
    )
    .await;
    let original = ciphertext(&app, &owner, "t", 2);

    // Flip one bit at a time in each region: the format byte, the nonce, the
    // ciphertext proper and the tag.
    for at in [0, 5, 13, original.len() / 2 + 6, original.len() - 1] {
        let mut tampered = original.clone();
        tampered[at] ^= 0x01;
        overwrite_ciphertext(&app, &owner, "t", 2, &tampered);
        assert_integrity_failure(get(&app, &token, "t").await, &["CANARY"]).await;
        assert_integrity_failure(get_version(&app, &token, "t", "2").await, &["CANARY"]).await;
    }
    // Truncated, or empty.
    for tampered in [&original[..original.len() - 1], &original[..10], &[][..]] {
        overwrite_ciphertext(&app, &owner, "t", 2, tampered);
        assert_integrity_failure(get(&app, &token, "t").await, &["CANARY"]).await;
    }
    // The untouched version still opens, and so does the restored one.
    assert_read(
        get_version(&app, &token, "t", "1").await,
        "t",
        "first-CANARY",
        1,
        json!({}),
    )
    .await;
    overwrite_ciphertext(&app, &owner, "t", 2, &original);
    assert_value(&app, &token, "t", "second-CANARY", 2).await;

    // The compat route answers the same way for its secret.
    assert_eq!(
        app.set_secret(&token, "alice", "default-CANARY")
            .await
            .status(),
        200
    );
    let mut tampered = ciphertext(&app, &owner, "default", 1);
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    overwrite_ciphertext(&app, &owner, "default", 1, &tampered);
    assert_integrity_failure(app.get_secret(&token, "alice").await, &["CANARY"]).await;
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_version_name_or_user_does_not_open() {
    let app = spawn_app().await;
    let alice = app.user_with_token("alice").await;
    let bob = app.user_with_token("bob").await;
    let (alice_id, bob_id) = (user_id(&alice), user_id(&bob));
    assert_written(
        put_value(&app, &alice, "db", "old-password").await,
        201,
        "db",
        1,
    )
    .await;
    assert_written(
        put_value(&app, &alice, "db", "new-password").await,
        200,
        "db",
        2,
    )
    .await;
    assert_written(
        put_value(&app, &alice, "other", "other-value").await,
        201,
        "other",
        1,
    )
    .await;
    assert_written(
        put_value(&app, &bob, "db", "bobs-password").await,
        201,
        "db",
        1,
    )
    .await;

    // Rollback: version 1's ciphertext copied over version 2's row.
    let v1 = ciphertext(&app, &alice_id, "db", 1);
    let v2 = ciphertext(&app, &alice_id, "db", 2);
    overwrite_ciphertext(&app, &alice_id, "db", 2, &v1);
    assert_integrity_failure(
        get(&app, &alice, "db").await,
        &["old-password", "new-password"],
    )
    .await;
    overwrite_ciphertext(&app, &alice_id, "db", 2, &v2);
    assert_value(&app, &alice, "db", "new-password", 2).await;

    // Another name of the same user, same version number.
    let other = ciphertext(&app, &alice_id, "other", 1);
    overwrite_ciphertext(&app, &alice_id, "db", 1, &other);
    assert_integrity_failure(
        get_version(&app, &alice, "db", "1").await,
        &["other-value", "old-password"],
    )
    .await;

    // Another user's ciphertext of the same name and version.
    overwrite_ciphertext(&app, &bob_id, "db", 1, &v1);
    assert_integrity_failure(get(&app, &bob, "db").await, &["password"]).await;
    // Listing never opens values, so it still works.
    assert_eq!(listed(&app, &bob, "").await, ["db"]);
}

// ---------------------------------------------------------------- 11. audit

/// The caller's `secret.*` events, oldest first, once there are at least `count`
/// (the audit writer is asynchronous).
async fn secret_events(app: &TestApp, token: &str, count: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = bearer(app, Method::GET, "/audit?limit=200", token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let mut events: Vec<(String, String)> = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["event"].as_str().unwrap().starts_with("secret."))
            .map(|event| {
                assert_eq!(event["user_id"], user_id(token).as_str(), "{event}");
                (
                    event["event"].as_str().unwrap().to_owned(),
                    event["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        events.reverse();
        if events.len() >= count || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_vault_operation_is_audited_with_its_outcome() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    assert_eq!(
        put_value(&app, &token, "a", "CANARY-value").await.status(),
        201
    );
    assert_eq!(
        put_if(&app, &token, "a", "v", "if-match", "\"7\"")
            .await
            .status(),
        412
    );
    assert_eq!(get(&app, &token, "a").await.status(), 200);
    assert_eq!(get(&app, &token, "missing").await.status(), 404);
    assert_eq!(list(&app, &token, "").await.status(), 200);
    assert_eq!(delete(&app, &token, "a").await.status(), 204);
    assert_eq!(undelete(&app, &token, "a").await.status(), 200);
    assert_eq!(undelete(&app, &token, "missing").await.status(), 404);
    assert_eq!(destroy(&app, &token, "a").await.status(), 204);
    assert_eq!(destroy(&app, &token, "a").await.status(), 404);
    assert_eq!(delete(&app, &token, "a").await.status(), 404);

    let expected = [
        ("secret.write", "success"),
        ("secret.write", "failure"),
        ("secret.read", "success"),
        ("secret.read", "failure"),
        ("secret.list", "success"),
        ("secret.delete", "success"),
        ("secret.undelete", "success"),
        ("secret.undelete", "failure"),
        ("secret.destroy", "success"),
        ("secret.destroy", "failure"),
        ("secret.delete", "failure"),
    ];
    let events = secret_events(&app, &token, expected.len()).await;
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(event, outcome)| ((*event).to_owned(), (*outcome).to_owned()))
        .collect();
    assert_eq!(events, expected);

    // Requests refused before they reach the vault (bad input) are not events.
    assert_eq!(get(&app, &token, "bad%20name").await.status(), 422);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(secret_events(&app, &token, 0).await.len(), expected.len());
}

// ---------------------------------------------------------------- 12. key rotation

fn ring_entry(id: &str) -> MasterKeyEntry {
    MasterKeyEntry {
        id: Some(id.to_owned()),
        material: KeyBytes::generate().unwrap(),
    }
}

/// Starts safebox on `dir` with the master key ring `ring` (oldest first), the
/// JWT key `jwt` (so that tokens survive restarts) and no per-IP limit.
async fn spawn_with_ring(dir: &Path, jwt: &KeyBytes, ring: &[&MasterKeyEntry]) -> TestApp {
    let ring: Vec<MasterKeyEntry> = ring.iter().map(|entry| (*entry).clone()).collect();
    let jwt = jwt.clone();
    spawn_app_on(dir, move |config| {
        config.master_key = None;
        config.master_keys = ring;
        config.jwt_secret = Some(jwt);
        config.ip_rate_per_minute = 0;
        config.workers = 2;
    })
    .await
}

/// The rotation use case on the database at `url`, with the ring `ring`.
fn rotation(url: &str, ring: &[&MasterKeyEntry]) -> RotateKeys {
    let keys = Keys {
        master: ring.iter().map(|entry| (*entry).clone()).collect(),
        jwt: KeyBytes::generate().unwrap(),
        development: Vec::new(),
    };
    let pool = safebox_infra::db::connect(url, 2, Duration::from_secs(5)).unwrap();
    RotateKeys::new(
        Arc::new(DieselUserRepository::new(pool)),
        Arc::new(AesGcmSecretCipher::new(keys.master_ring().unwrap())),
    )
}

fn status_row(id: &str, data_keys: u64, in_ring: bool, sealing: bool) -> MasterKeyStatus {
    MasterKeyStatus {
        id: KeyId(id.to_owned()),
        data_keys,
        in_ring,
        sealing,
    }
}

/// One secret of one user: (token, name, value).
type Stored = (String, String, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_keys_rotate_while_secrets_are_read_and_the_old_key_goes_only_afterwards() {
    const USERS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let jwt = KeyBytes::generate().unwrap();
    let (k1, k2) = (ring_entry("k1"), ring_entry("k2"));

    // Users and secrets written under the ring [k1].
    let first = spawn_with_ring(dir.path(), &jwt, &[&k1]).await;
    let url = first.database_url.clone();
    let mut stored: Vec<Stored> = Vec::new();
    for n in 0..USERS {
        let username = format!("user{n:02}");
        let token = first.user_with_token(&username).await;
        for (name, value) in [
            ("db/password".to_owned(), format!("{username}-db-CANARY")),
            (format!("api/{username}"), format!("{username}-api-CANARY")),
        ] {
            assert_eq!(put_value(&first, &token, &name, &value).await.status(), 201);
            stored.push((token.clone(), name, value));
        }
    }
    first.stop().await;

    // k2 joins the ring as the newest: it seals new data keys, k1 still opens.
    let second = spawn_with_ring(dir.path(), &jwt, &[&k1, &k2]).await;
    assert_eq!(second.database_url, url, "the same database");
    let late = second.user_with_token("late").await;
    assert_eq!(
        put_value(&second, &late, "s", "late-CANARY").await.status(),
        201
    );
    stored.push((late, "s".to_owned(), "late-CANARY".to_owned()));
    assert_eq!(
        rotation(&url, &[&k1, &k2]).status().unwrap(),
        [
            status_row("k1", USERS as u64, true, false),
            status_row("k2", 1, true, true),
        ]
    );

    // A reader keeps reading every secret of every user over HTTP meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let reader = {
        let (stop, reads, failures) = (stop.clone(), reads.clone(), failures.clone());
        let (client, address) = (second.client.clone(), second.address.clone());
        let stored = stored.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                for (token, name, value) in &stored {
                    let response = client
                        .get(format!("{address}/secrets/{name}"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if status != 200 || body["value"] != value.as_str() {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{name}: {status} {body}"));
                    }
                    reads.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    // And a writer keeps writing new versions of one secret.
    let writer = {
        let (stop, failures) = (stop.clone(), failures.clone());
        let (client, address) = (second.client.clone(), second.address.clone());
        let token = stored[0].0.clone();
        tokio::spawn(async move {
            let mut written = 0_u64;
            while !stop.load(Ordering::SeqCst) {
                let response = client
                    .put(format!("{address}/secrets/live/counter"))
                    .bearer_auth(&token)
                    .json(&json!({ "value": format!("count {}", written + 1) }))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if ![200, 201].contains(&status) || body["version"] != written + 1 {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("write {}: {status} {body}", written + 1));
                }
                written += 1;
            }
            written
        })
    };
    // Let the reader get going before the rotation starts.
    let started = Instant::now();
    while reads.load(Ordering::SeqCst) < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the reader is stuck"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let rotate = {
        let (url, k1, k2, reads) = (url.clone(), k1.clone(), k2.clone(), reads.clone());
        tokio::task::spawn_blocking(move || {
            let mut progress = Vec::new();
            let mut reads_between = Vec::new();
            let rotated = rotation(&url, &[&k1, &k2]).rotate(5, &mut |step: RotationProgress| {
                progress.push((step.rewrapped, step.total));
                // Let reads happen between batches, while some data keys are
                // wrapped by k1 and others by k2.
                let before = reads.load(Ordering::SeqCst);
                let deadline = Instant::now() + Duration::from_secs(10);
                while reads.load(Ordering::SeqCst) < before + 5 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
                reads_between.push(reads.load(Ordering::SeqCst) - before);
            });
            (rotated, progress, reads_between)
        })
    };
    let (rotated, progress, reads_between) = rotate.await.unwrap();
    // A few more full rounds of reads after the rotation.
    let after = reads.load(Ordering::SeqCst);
    let started = Instant::now();
    while reads.load(Ordering::SeqCst) < after + stored.len() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the reader is stuck"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    reader.await.unwrap();
    let written = writer.await.unwrap();
    assert!(written > 0, "the writer wrote nothing");

    assert_eq!(rotated.unwrap(), USERS as u64);
    assert_eq!(progress, [(5, 20), (10, 20), (15, 20), (20, 20)]);
    assert!(
        reads_between.iter().all(|&n| n >= 5),
        "reads between batches: {reads_between:?}"
    );
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "failed reads during rotation: {failures:?}"
    );

    // k1 wraps nothing now and can go; a second run has nothing to do.
    let report = rotation(&url, &[&k1, &k2]).status().unwrap();
    assert_eq!(
        report,
        [
            status_row("k1", 0, true, false),
            status_row("k2", USERS as u64 + 1, true, true),
        ]
    );
    assert!(report[0].removable());
    assert!(!report[1].removable());
    let mut again = Vec::new();
    assert_eq!(
        rotation(&url, &[&k1, &k2])
            .rotate(5, &mut |step| again.push(step))
            .unwrap(),
        0
    );
    assert!(again.is_empty());

    // Without k1 (a restart with the new ring), everything still reads (and
    // writes).
    second.stop().await;
    let third = spawn_with_ring(dir.path(), &jwt, &[&k2]).await;
    for (token, name, value) in &stored {
        assert_value(&third, token, name, value, 1).await;
    }
    assert_value(
        &third,
        &stored[0].0,
        "live/counter",
        &format!("count {written}"),
        written,
    )
    .await;
    let (token, name, _) = &stored[0];
    assert_written(
        put_value(&third, token, name, "after-rotation").await,
        200,
        name,
        2,
    )
    .await;
    assert_eq!(
        rotation(&url, &[&k2]).status().unwrap(),
        [status_row("k2", USERS as u64 + 1, true, true)]
    );

    // With only the old key, nothing opens any more: k1 could be removed only
    // because the rotation ran.
    third.stop().await;
    let old_only = spawn_with_ring(dir.path(), &jwt, &[&k1]).await;
    for (token, name, value) in &stored {
        assert_integrity_failure(get(&old_only, token, name).await, &[value]).await;
    }
    assert_eq!(
        rotation(&url, &[&k1]).status().unwrap(),
        [
            status_row("k1", 0, true, true),
            status_row("k2", USERS as u64 + 1, false, false),
        ]
    );
}

/// The upgrade from `SAFEBOX_MASTER_KEY` to `SAFEBOX_MASTER_KEYS`: the old key
/// as a bare entry keeps its fingerprint id, so everything it wrapped still opens,
/// and it rotates out like any other key.
#[tokio::test]
async fn a_single_master_key_becomes_a_bare_ring_entry_and_rotates_out() {
    let dir = tempfile::tempdir().unwrap();
    let jwt = KeyBytes::generate().unwrap();
    let old = KeyBytes::generate().unwrap();
    let first = {
        let (old, jwt) = (old.clone(), jwt.clone());
        spawn_app_on(dir.path(), move |config| {
            config.master_key = Some(old);
            config.jwt_secret = Some(jwt);
        })
        .await
    };
    let url = first.database_url.clone();
    let token = first.user_with_token("alice").await;
    assert_eq!(put_value(&first, &token, "s", "CANARY").await.status(), 201);
    first.stop().await;

    let bare = MasterKeyEntry::unnamed(old.clone());
    let fingerprint = safebox_infra::MasterKey::derive(&old).id().clone();
    assert!(fingerprint.0.starts_with("mk-"), "{fingerprint}");
    let k2 = ring_entry("k2");
    let both = spawn_with_ring(dir.path(), &jwt, &[&bare, &k2]).await;
    assert_value(&both, &token, "s", "CANARY", 1).await;
    let report = rotation(&url, &[&bare, &k2]).status().unwrap();
    assert_eq!(
        report,
        [
            status_row(&fingerprint.0, 1, true, false),
            status_row("k2", 0, true, true),
        ]
    );
    assert_eq!(
        rotation(&url, &[&bare, &k2])
            .rotate(10, &mut |_| {})
            .unwrap(),
        1
    );
    both.stop().await;
    let new_only = spawn_with_ring(dir.path(), &jwt, &[&k2]).await;
    assert_value(&new_only, &token, "s", "CANARY", 1).await;
    // The same material under another id is another key: its data keys name
    // the fingerprint.
    let renamed = MasterKeyEntry {
        id: Some("renamed".to_owned()),
        material: old,
    };
    assert_eq!(
        rotation(&url, &[&renamed, &k2]).status().unwrap(),
        [
            status_row("renamed", 0, true, false),
            status_row("k2", 1, true, true),
        ]
    );
}

/// Before a rotation, a server without the old key cannot read: the key must not
/// be removed early.
#[tokio::test]
async fn without_rotation_the_old_key_cannot_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let jwt = KeyBytes::generate().unwrap();
    let (k1, k2) = (ring_entry("k1"), ring_entry("k2"));
    let first = spawn_with_ring(dir.path(), &jwt, &[&k1]).await;
    let token = first.user_with_token("alice").await;
    assert_eq!(put_value(&first, &token, "s", "CANARY").await.status(), 201);
    let url = first.database_url.clone();
    first.stop().await;

    let report = rotation(&url, &[&k1, &k2]).status().unwrap();
    assert_eq!(
        report,
        [
            status_row("k1", 1, true, false),
            status_row("k2", 0, true, true)
        ]
    );
    assert!(!report[0].removable());
    let new_only = spawn_with_ring(dir.path(), &jwt, &[&k2]).await;
    assert_integrity_failure(get(&new_only, &token, "s").await, &["CANARY"]).await;
    // Both keys: readable.
    new_only.stop().await;
    let both = spawn_with_ring(dir.path(), &jwt, &[&k1, &k2]).await;
    assert_value(&both, &token, "s", "CANARY", 1).await;
}

// ---------------------------------------------------------------- error details

/// A missing secret is 404 `Secret not found` on every route, the vault's and
/// `/get_secret` alike.
#[tokio::test]
async fn a_missing_vault_secret_is_404_secret_not_found_like_the_compat_route() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    assert_json(
        get(&app, &token, "nope").await,
        404,
        json!({ "detail": NOT_FOUND }),
    )
    .await;
    assert_json(
        delete(&app, &token, "nope").await,
        404,
        json!({ "detail": NOT_FOUND }),
    )
    .await;
    assert_json(
        undelete(&app, &token, "nope").await,
        404,
        json!({ "detail": NOT_FOUND }),
    )
    .await;
    // The compat route says the same.
    assert_json(
        app.get_secret(&token, "alice").await,
        404,
        json!({ "detail": "Secret not found" }),
    )
    .await;
}

/// The contract: "`value`: string, required" and "`metadata`: optional object of
/// string → string … Else 422 `{"detail":"metadata: ..."}`". The body extractor
/// names only the fields it knows (`known_field` in crates/api/src/extract.rs,
/// which lacks `value` and `metadata`), so every such error says `body: …`.
#[tokio::test]
async fn put_body_errors_name_the_field_value_or_metadata() {
    let app = spawn_app().await;
    let token = app.user_with_token("alice").await;
    for (body, field) in [
        (json!({ "metadata": {} }), "value"),
        (json!({ "value": 5 }), "value"),
        (json!({ "value": null }), "value"),
        (json!({ "value": "v", "metadata": { "k": 1 } }), "metadata"),
        (json!({ "value": "v", "metadata": ["k"] }), "metadata"),
        (json!({ "value": "v", "metadata": "k=v" }), "metadata"),
    ] {
        let got = detail(put(&app, &token, "m", body.clone()).await, 422).await;
        assert!(got.starts_with(&format!("{field}: ")), "{body} → {got}");
    }
}
