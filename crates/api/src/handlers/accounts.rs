use actix_web::{HttpResponse, web};
use safebox_domain::usecases::{LoginCommand, LoginIdentifier, RegisterCommand};
use safebox_domain::{Email, PasswordAttempt, PasswordOwner, Username, ValidationError};
use serde::{Deserialize, Serialize};

use super::MessageResponse;
use crate::error::ApiError;
use crate::extract::{ClientIp, IpRateLimit, JsonBody};
use crate::hashing::PoolError;
use crate::state::AppState;

/// `RegisterRequest` in openapi.yaml. No `Debug`: it holds a password.
#[derive(Deserialize)]
pub struct RegisterRequest {
    email: String,
    username: String,
    password: String,
}

/// `LoginRequest` in openapi.yaml. No `Debug`: it holds a password.
#[derive(Deserialize)]
pub struct LoginRequest {
    email: Option<String>,
    username: Option<String>,
    password: String,
}

/// `LoginResponse` in openapi.yaml.
#[derive(Serialize)]
struct LoginResponse {
    token: String,
    message: &'static str,
    token_type: &'static str,
    expires_in: u64,
}

/// How long a request refused by the full hashing pool waits before its 503.
///
/// The wait holds no thread (it is a timer on the async worker) and keeps the 503
/// far below the 50 ms that counts as shedding at once, but it bounds how fast a
/// flood of clients retrying at once can come back: without it, answering the
/// refusals would itself take the CPU that hashing and other requests need.
const SHED_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

/// Runs a use case that hashes on the hashing pool, shedding with a short delay
/// when the pool is full.
async fn on_hashing_pool<F, R>(state: &AppState, job: F) -> Result<R, ApiError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match state.hashing.run(job).await {
        Ok(result) => Ok(result),
        Err(PoolError::Saturated) => {
            actix_web::rt::time::sleep(SHED_DELAY).await;
            Err(PoolError::Saturated.into())
        }
        Err(err) => Err(err.into()),
    }
}

/// `POST /register`
pub async fn register(
    _: IpRateLimit,
    client: ClientIp,
    state: web::Data<AppState>,
    body: JsonBody<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let email = Email::parse(&body.email)?;
    let username = Username::parse(&body.username)?;
    let password = state.password_policy.check(
        body.password,
        PasswordOwner {
            username: &username,
            email: Some(&email),
        },
    )?;
    let command = RegisterCommand {
        email,
        username,
        password,
        origin: client.origin(),
    };
    let shared = state.clone();
    on_hashing_pool(&state, move || shared.register.execute(command)).await??;
    Ok(HttpResponse::Created().json(MessageResponse::new("Registration successful")))
}

/// `POST /login`
pub async fn login(
    _: IpRateLimit,
    client: ClientIp,
    state: web::Data<AppState>,
    body: JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let identifier = match (body.email, body.username) {
        (Some(email), _) => LoginIdentifier::Email(email),
        (None, Some(username)) => LoginIdentifier::Username(username),
        (None, None) => return Err(ValidationError::new("email", "field required").into()),
    };
    let command = LoginCommand {
        identifier,
        password: PasswordAttempt::new(body.password),
        origin: client.origin(),
    };
    let shared = state.clone();
    let success = on_hashing_pool(&state, move || shared.login.execute(command)).await??;
    Ok(HttpResponse::Ok().json(LoginResponse {
        token: success.token.token.expose().to_owned(),
        message: "Login successful",
        token_type: "Bearer",
        expires_in: success.token.expires_in,
    }))
}
