use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{HttpResponse, web};
use safebox_domain::usecases::{
    LoginCommand, LoginIdentifier, LoginSuccess, RegisterCommand, SessionCredentials,
};
use safebox_domain::{
    Email, PasswordAttempt, PasswordOwner, SessionKind, UserData, Username, ValidationError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::MessageResponse;
use super::users::UserBody;
use crate::error::ApiError;
use crate::extract::{
    AuthUser, IpRateLimit, JsonBody, JsonOrFormBody, RequestOrigin, SESSION_COOKIE, pace_refusal,
};
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
    refresh_token: String,
}

/// Runs a use case that hashes on the hashing pool, shedding with a short delay
/// when the pool is full.
async fn on_hashing_pool<F, R>(state: &AppState, job: F) -> Result<R, ApiError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let deadline = state.hashing_deadline;
    let job = crate::blocking::unless_expired(std::time::Instant::now() + deadline, job);
    match actix_web::rt::time::timeout(deadline, state.hashing.run(job)).await {
        Ok(Ok(Some(result))) => Ok(result),
        Ok(Err(PoolError::Saturated)) => {
            pace_refusal().await;
            Err(PoolError::Saturated.into())
        }
        Ok(Err(err)) => Err(err.into()),
        Ok(Ok(None)) | Err(_) => Err(crate::blocking::timed_out(deadline)),
    }
}

/// `POST /register`
pub async fn register(
    _: IpRateLimit,
    RequestOrigin(origin): RequestOrigin,
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
        email: Some(email),
        username,
        password,
        data: UserData::empty(),
        origin,
    };
    let shared = state.clone();
    on_hashing_pool(&state, move || shared.register.execute(command)).await??;
    Ok(HttpResponse::Created().json(MessageResponse::new("Registration successful")))
}

/// The fields of `POST /user` that are not kept in the user's data.
const SIGN_UP_FIELDS: [&str; 4] = ["username", "password", "email", "data"];

/// `SignUpRequest` in openapi.yaml: `username`, `password`, an optional `email`,
/// an optional `data` object, and any other top-level field, which is kept in the
/// data object. No `Debug`: it holds a password.
#[derive(Deserialize)]
pub struct SignUpRequest {
    username: String,
    password: String,
    email: Option<String>,
    data: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// The user's data object: `data` with the request's other top-level fields
/// merged in, serialised and size-checked.
fn sign_up_data(data: Option<Value>, extra: Map<String, Value>) -> Result<UserData, ApiError> {
    let mut merged = match data {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ValidationError::new("data", "must be a JSON object").into()),
    };
    for (key, value) in extra {
        if SIGN_UP_FIELDS.contains(&key.as_str()) {
            continue;
        }
        if merged.contains_key(&key) {
            let shown: String = key.chars().take(64).collect();
            return Err(ValidationError::new("data", format!("duplicate key {shown}")).into());
        }
        merged.insert(key, value);
    }
    data_text(&Value::Object(merged))
}

/// Serialises a data object, refusing one over [`UserData::MAX_BYTES`].
pub(super) fn data_text(object: &Value) -> Result<UserData, ApiError> {
    let text = serde_json::to_string(object).map_err(|err| {
        tracing::error!(error = %err, "serialising user data failed");
        ApiError::Internal
    })?;
    Ok(UserData::parse(text)?)
}

/// `POST /user`: sign up, with optional JSON data.
pub async fn sign_up(
    _: IpRateLimit,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    body: JsonBody<SignUpRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let username = Username::parse(&body.username)?;
    let email = body.email.as_deref().map(Email::parse).transpose()?;
    let data = sign_up_data(body.data, body.extra)?;
    let password = state.password_policy.check(
        body.password,
        PasswordOwner {
            username: &username,
            email: email.as_ref(),
        },
    )?;
    let command = RegisterCommand {
        email,
        username,
        password,
        data,
        origin,
    };
    let shared = state.clone();
    let user = on_hashing_pool(&state, move || shared.register.execute(command)).await??;
    Ok(HttpResponse::Created().json(UserBody::from(&user)))
}

impl LoginRequest {
    fn into_command(
        self,
        kind: SessionKind,
        origin: safebox_domain::Origin,
    ) -> Result<LoginCommand, ApiError> {
        let identifier = match (self.email, self.username) {
            (Some(email), _) => LoginIdentifier::Email(email),
            (None, Some(username)) => LoginIdentifier::Username(username),
            (None, None) => return Err(ValidationError::new("email", "field required").into()),
        };
        Ok(LoginCommand {
            identifier,
            password: PasswordAttempt::new(self.password),
            kind,
            origin,
        })
    }
}

/// Runs a login on the hashing pool.
async fn log_in(
    state: &web::Data<AppState>,
    command: LoginCommand,
) -> Result<LoginSuccess, ApiError> {
    let shared = state.clone();
    Ok(on_hashing_pool(state, move || shared.login.execute(command)).await??)
}

/// `POST /login` and `POST /auth`: a bearer session.
pub async fn login(
    _: IpRateLimit,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    body: JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let command = body
        .into_inner()
        .into_command(SessionKind::Bearer, origin)?;
    let success = log_in(&state, command).await?;
    let SessionCredentials::Bearer { access, refresh } = success.credentials else {
        tracing::error!("a bearer login returned other credentials");
        return Err(ApiError::Internal);
    };
    Ok(HttpResponse::Ok().json(LoginResponse {
        token: access.token.expose().to_owned(),
        message: "Login successful",
        token_type: "Bearer",
        expires_in: access.expires_in,
        refresh_token: refresh.expose().to_owned(),
    }))
}

/// `CookieLoginResponse` in openapi.yaml.
#[derive(Serialize)]
struct CookieLoginResponse<'a> {
    email: Option<&'a str>,
    message: &'static str,
}

/// The session cookie: HttpOnly, SameSite=Strict, Path=/, Secure over TLS.
pub(super) fn session_cookie(value: String, max_age_secs: i64, secure: bool) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, value)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(secure)
        .max_age(CookieDuration::seconds(max_age_secs))
        .finish()
}

/// `POST /sessions`: a cookie session, from JSON or an HTML form.
pub async fn cookie_login(
    _: IpRateLimit,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    body: JsonOrFormBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let command = body.0.into_command(SessionKind::Cookie, origin)?;
    let success = log_in(&state, command).await?;
    let SessionCredentials::Cookie {
        cookie,
        max_age_secs,
    } = success.credentials
    else {
        tracing::error!("a cookie login returned other credentials");
        return Err(ApiError::Internal);
    };
    let max_age = i64::try_from(max_age_secs).unwrap_or(i64::MAX);
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(
            cookie.expose().to_owned(),
            max_age,
            state.tls,
        ))
        .json(CookieLoginResponse {
            email: success.user.email.as_ref().map(Email::as_str),
            message: "logged in",
        }))
}

/// `ChangePasswordRequest` in openapi.yaml. No `Debug`: it holds passwords.
#[derive(Deserialize)]
pub struct ChangePasswordRequest {
    current_password: String,
    new_password: String,
}

/// `PUT /password`
pub async fn change_password(
    _: IpRateLimit,
    AuthUser(credential): AuthUser,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    body: JsonBody<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let current = PasswordAttempt::new(body.current_password);
    let shared = state.clone();
    on_hashing_pool(&state, move || {
        shared
            .change_password
            .execute(&credential, &current, body.new_password, &origin)
    })
    .await??;
    Ok(HttpResponse::NoContent().finish())
}
