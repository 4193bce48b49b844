//! The live documentation: `GET /openapi.yaml` and Swagger UI under `/docs/`.

use actix_web::web;

/// Registers the documentation routes.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
