use actix_web::{HttpResponse, web};
use safebox_domain::{SecretName, SecretValue};
use serde::{Deserialize, Serialize};

use super::MessageResponse;
use crate::error::ApiError;
use crate::extract::{AuthUser, JsonBody, RequestOrigin};
use crate::state::AppState;

/// `SetSecretRequest` in openapi.yaml. No `Debug`: it holds a secret.
#[derive(Deserialize)]
pub struct SetSecretRequest {
    username: String,
    secret: String,
}

/// The query of `GET /get_secret`.
#[derive(Deserialize)]
pub struct GetSecretQuery {
    username: String,
}

/// `SecretResponse` in openapi.yaml.
#[derive(Serialize)]
struct SecretResponse<'a> {
    secret: &'a str,
}

/// `POST /set_secret`
pub async fn set_secret(
    AuthUser(credential): AuthUser,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    body: JsonBody<SetSecretRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let value = SecretValue::parse(body.secret).map_err(ApiError::too_large)?;
    let shared = state.clone();
    web::block(move || {
        shared.set_secret.execute(
            &credential,
            &body.username,
            SecretName::default_name(),
            &value,
            &origin,
        )
    })
    .await??;
    Ok(HttpResponse::Ok().json(MessageResponse::new("Secret set successfully")))
}

/// `GET /get_secret?username=…`
pub async fn get_secret(
    AuthUser(credential): AuthUser,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    query: web::Query<GetSecretQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let shared = state.clone();
    let value = web::block(move || {
        shared.get_secret.execute(
            &credential,
            &query.username,
            &SecretName::default_name(),
            &origin,
        )
    })
    .await??;
    Ok(HttpResponse::Ok().json(SecretResponse {
        secret: value.expose(),
    }))
}
