use actix_web::{HttpResponse, web};
use safebox_domain::usecases::{Precondition, PutSecret};
use safebox_domain::{SecretName, SecretValue};
use serde::{Deserialize, Serialize};

use super::MessageResponse;
use crate::blocking;
use crate::error::ApiError;
use crate::extract::{AuthUser, RequestOrigin, SecretBody};
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
    body: SecretBody<SetSecretRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let limit = state.vault.limits().max_value_bytes;
    let put = PutSecret {
        name: SecretName::default_name(),
        value: SecretValue::parse(body.secret, limit, "secret").map_err(ApiError::too_large)?,
        metadata: None,
        precondition: Precondition::None,
    };
    let shared = state.clone();
    blocking::run(state.work_deadline, move || {
        shared
            .set_secret
            .execute(&credential, &body.username, &put, &origin)
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
    let name = SecretName::default_name();
    // A repeated read is answered from memory, on this worker; anything else
    // (a first read, a failure) from storage, on a blocking thread.
    let in_memory =
        state
            .get_secret
            .execute_in_memory(&credential, &query.username, &name, &origin);
    state.metrics.secret_read(in_memory.is_some());
    let value = match in_memory {
        Some(value) => value,
        None => {
            let shared = state.clone();
            blocking::run(state.work_deadline, move || {
                shared
                    .get_secret
                    .execute(&credential, &query.username, &name, &origin)
            })
            .await??
        }
    };
    Ok(HttpResponse::Ok().json(SecretResponse {
        secret: value.expose(),
    }))
}
