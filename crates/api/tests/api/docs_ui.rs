//! The live documentation: `/openapi.yaml` and Swagger UI under `/docs/`.

use crate::helpers::spawn_app;

/// The CSP the `/docs/` pages carry instead of the API's `default-src 'none'`.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn openapi_yaml_is_the_repository_spec_without_authentication() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/openapi.yaml"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = header(&response, "content-type").to_owned();
    assert!(
        content_type.starts_with("application/yaml"),
        "Content-Type: {content_type}"
    );
    assert_eq!(
        header(&response, "content-security-policy"),
        "default-src 'none'"
    );
    let body = response.text().await.unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml");
    assert_eq!(body, std::fs::read_to_string(path).unwrap());
    let spec: serde_yaml::Value = serde_yaml::from_str(&body).expect("the spec is YAML");
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
}

#[tokio::test]
async fn docs_serve_swagger_ui_with_its_own_files_under_a_relaxed_csp() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("text/html"));
    assert_eq!(header(&response, "content-security-policy"), DOCS_CSP);
    assert_eq!(header(&response, "x-frame-options"), "DENY");
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");

    // Every script and stylesheet comes from the server itself, and no script is
    // inline (the CSP would block it).
    for asset in [
        "./swagger-ui-bundle.js",
        "./swagger-ui-standalone-preset.js",
        "./swagger-initializer.js",
        "./swagger-ui.css",
    ] {
        assert!(html.contains(&format!("\"{asset}\"")), "{asset} in {html}");
    }
    assert!(!html.contains("<script>"), "inline script in {html}");
    assert!(!html.contains("http://") && !html.contains("https://"));

    let bundle = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(header(&bundle, "content-type").contains("javascript"));
    assert_eq!(header(&bundle, "content-security-policy"), DOCS_CSP);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);

    let css = app
        .client
        .get(app.url("/docs/swagger-ui.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(header(&css, "content-type").starts_with("text/css"));
}

#[tokio::test]
async fn the_swagger_initializer_loads_the_served_spec() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let script = response.text().await.unwrap();
    assert!(script.contains("\"url\": \"/openapi.yaml\""), "{script}");
    assert!(script.contains("\"validatorUrl\": \"none\""), "{script}");
}

#[tokio::test]
async fn docs_without_the_slash_redirect() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/docs")).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(header(&response, "location"), "/docs/");
}

#[tokio::test]
async fn unknown_docs_files_are_json_404s_and_other_methods_405() {
    let app = spawn_app().await;
    for path in [
        "/docs/nope.js",
        "/docs/..%2F..%2FCargo.toml",
        "/docs/index.html/x",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            header(&response, "content-security-policy"),
            "default-src 'none'"
        );
    }
    for path in ["/openapi.yaml", "/docs", "/docs/"] {
        let response = app.client.post(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 405, "{path}");
        assert_eq!(header(&response, "allow"), "GET");
    }
}
