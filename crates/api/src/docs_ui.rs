//! The live documentation: `GET /openapi.yaml` and Swagger UI under `/docs/`.
//!
//! Both are public (no authentication) and built into the binary: the spec is the
//! repository's `openapi.yaml` as it was at build time, and Swagger UI's files come
//! from the release vendored in `utoipa-swagger-ui` (nothing is downloaded at build
//! or run time).

use std::sync::{Arc, LazyLock};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use utoipa_swagger_ui::Config;

use crate::error::ApiError;
use crate::handlers;
use crate::request_id::named;

/// The OpenAPI description served at `/openapi.yaml`.
pub const OPENAPI_YAML: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml"));

/// The Content-Security-Policy of the `/docs/` pages, in place of the API's
/// `default-src 'none'`. Swagger UI's page loads its scripts, styles and icons
/// from `/docs/` (no inline script: its initialiser is the served
/// `swagger-initializer.js`), fetches `/openapi.yaml` and, for "Try it out", calls
/// the API on the same origin. Its stylesheet embeds icons as `data:` images, and
/// React sets some inline styles. Nothing may come from another origin, no plugin,
/// base URL, form target or frame is allowed, and the page may not be framed.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Swagger UI's settings: the spec by URL, and no online validator badge (it
/// would send the spec's address to validator.swagger.io, which the CSP blocks).
static SWAGGER_CONFIG: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| Arc::new(Config::from("/openapi.yaml").validator_url("none")));

/// Registers the documentation routes. Each path answers 405 (with `Allow: GET`)
/// to other methods, like the API's own paths.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let get_only =
        || web::to(|| async { Err::<HttpResponse, _>(handlers::method_not_allowed("GET".into())) });
    cfg.service(named(
        web::resource("/openapi.yaml")
            .route(web::get().to(openapi_yaml))
            .default_service(get_only()),
        "/openapi.yaml",
    ))
    .service(named(
        web::resource("/docs")
            .route(web::get().to(docs_redirect))
            .default_service(get_only()),
        "/docs",
    ))
    .service(named(
        web::resource("/docs/{file:.*}")
            .route(web::get().to(docs_file))
            .default_service(get_only()),
        "/docs/{file}",
    ));
}

/// `GET /openapi.yaml`: the OpenAPI 3.1 description of this API.
async fn openapi_yaml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI_YAML)
}

/// `GET /docs`: Swagger UI's relative links need the trailing slash.
async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

/// `GET /docs/{file}`: Swagger UI's page (`/docs/`) and its files.
async fn docs_file(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let file = file.into_inner();
    // Only the embedded files are served: the name is looked up, never used as a path.
    let found = utoipa_swagger_ui::serve(&file, SWAGGER_CONFIG.clone())
        .map_err(|err| ApiError::internal("Swagger UI", &*err))?
        .ok_or_else(crate::handlers::unserved)?;
    let content_type = if found.content_type.starts_with("text/") {
        format!("{}; charset=utf-8", found.content_type)
    } else {
        found.content_type
    };
    let mut response = HttpResponse::Ok();
    response.content_type(content_type).insert_header((
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    ));
    if found.gzpipped {
        response.insert_header((header::CONTENT_ENCODING, "gzip"));
    }
    Ok(response.body(found.bytes.into_owned()))
}
