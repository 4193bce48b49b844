use actix_web::{HttpResponse, web};
use safebox_domain::usecases::{LoginCommand, LoginIdentifier, RegisterCommand};
use safebox_domain::{Email, PasswordAttempt, PasswordOwner, Username, ValidationError};
use serde::{Deserialize, Serialize};

use super::MessageResponse;
use crate::error::ApiError;
use crate::extract::{ClientIp, IpRateLimit, JsonBody};
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
    state
        .hashing
        .run(move || shared.register.execute(command))
        .await??;
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
    let success = state
        .hashing
        .run(move || shared.login.execute(command))
        .await??;
    Ok(HttpResponse::Ok().json(LoginResponse {
        token: success.token.token.expose().to_owned(),
        message: "Login successful",
        token_type: "Bearer",
        expires_in: success.token.expires_in,
    }))
}
