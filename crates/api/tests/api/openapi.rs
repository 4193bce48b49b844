use std::collections::BTreeSet;

use safebox_api::{api_routes, operator_routes};

use crate::helpers::spawn_app;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn documented() -> BTreeSet<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml");
    let spec: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "openapi.yaml is OpenAPI 3.1"
    );
    let mut operations = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap().to_lowercase();
            if METHODS.contains(&method.as_str()) || method == "head" || method == "options" {
                operations.insert((method, path.as_str().unwrap().to_owned()));
            }
        }
    }
    operations
}

/// The API's routes and the operator routes (`/healthz`, `/readyz`, `/metrics`),
/// which are registered apart from the API's but documented with it.
fn served() -> BTreeSet<(String, String)> {
    api_routes()
        .iter()
        .map(|route| (route.method.as_str().to_lowercase(), route.path.to_owned()))
        .chain(
            operator_routes()
                .into_iter()
                .map(|(method, path)| (method.as_str().to_lowercase(), path.to_owned())),
        )
        .collect()
}

#[test]
fn openapi_documents_exactly_the_served_routes() {
    let documented = documented();
    let served = served();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in openapi.yaml but not served: {unserved:?}"
    );
}

#[tokio::test]
async fn the_live_server_answers_exactly_the_documented_methods() {
    let app = spawn_app().await;
    let documented = documented();
    let paths: BTreeSet<_> = documented.iter().map(|(_, path)| path.clone()).collect();
    for path in &paths {
        for method in METHODS {
            let response = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(path))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let is_documented = documented.contains(&(method.to_owned(), path.clone()));
            // Only POST on `/secrets/{name}/undelete` restores a secret; GET, PUT
            // and DELETE there address the secret literally named
            // `{name}/undelete` through `/secrets/{name}` (see `UNDELETE` in
            // routes.rs), so they answer like that route (401 without a
            // credential), not 405.
            if path == "/secrets/{name}/undelete" && ["get", "put", "delete"].contains(&method) {
                assert_eq!(
                    status, 401,
                    "{method} {path} is served by /secrets/{{name}}"
                );
                continue;
            }
            if is_documented {
                assert!(
                    status != 404 && status != 405,
                    "{method} {path} is documented but answered {status}"
                );
            } else {
                assert_eq!(status, 405, "{method} {path} is not documented");
                assert!(response.headers().get("allow").is_some());
            }
        }
    }
    let response = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["detail"], "Not found");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let responses = [
        app.client.get(app.url("/")).send().await.unwrap(),
        app.client.get(app.url("/get_secret")).send().await.unwrap(),
        app.register("h@example.com", "h", crate::helpers::PASSWORD)
            .await,
    ];
    for response in responses {
        let headers = response.headers();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
            ("content-security-policy", "default-src 'none'"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(
                headers.get(name).map(|v| v.to_str().unwrap()),
                Some(value),
                "{name} on {}",
                response.url()
            );
        }
        // HSTS only makes sense, and is only sent, over TLS.
        assert!(headers.get("strict-transport-security").is_none());
    }
}
