use actix_web::{HttpResponse, web};
use safebox_domain::{Email, User};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::accounts::data_text;
use crate::blocking;
use crate::error::ApiError;
use crate::extract::{AuthUser, JsonBody, MaybeAuthUser, RequestOrigin};
use crate::state::AppState;

/// The stored data object as JSON; the store only ever holds objects the API
/// wrote, so anything else is reported and shown as `{}`.
fn data_value(user: &User) -> Value {
    serde_json::from_str(user.data.as_str()).unwrap_or_else(|err| {
        tracing::error!(error = %err, user = %user.id, "stored user data is not JSON");
        Value::Object(serde_json::Map::new())
    })
}

/// `User` in openapi.yaml. Never a password or its hash.
#[derive(Serialize)]
pub struct UserBody {
    username: String,
    email: Option<String>,
    data: Value,
    role: &'static str,
    created_at: i64,
}

impl From<&User> for UserBody {
    fn from(user: &User) -> Self {
        Self {
            username: user.username.as_str().to_owned(),
            email: user.email.as_ref().map(|email| email.as_str().to_owned()),
            data: data_value(user),
            role: user.role.as_str(),
            created_at: user.created_at.as_secs(),
        }
    }
}

/// `HomeResponse` in openapi.yaml.
#[derive(Serialize)]
struct HomeBody<'a> {
    username: &'a str,
    email: Option<&'a str>,
    data: Value,
}

/// `HelloResponse` in openapi.yaml.
#[derive(Serialize)]
struct HelloBody {
    message: &'static str,
}

/// `GET /`: a greeting, or the signed-in user's username, email and data.
pub async fn home(
    MaybeAuthUser(credential): MaybeAuthUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let hello = || {
        HttpResponse::Ok().json(HelloBody {
            message: "Hello World",
        })
    };
    let Some(credential) = credential else {
        return Ok(hello());
    };
    let shared = state.clone();
    match blocking::run(state.work_deadline, move || {
        shared.who_am_i.execute(&credential)
    })
    .await?
    {
        Ok(current) => Ok(HttpResponse::Ok().json(HomeBody {
            username: current.user.username.as_str(),
            email: current.user.email.as_ref().map(Email::as_str),
            data: data_value(&current.user),
        })),
        Err(safebox_domain::usecases::SessionError::NotAuthorized) => Ok(hello()),
        Err(err) => Err(err.into()),
    }
}

/// `ProfileResponse` in openapi.yaml.
#[derive(Serialize)]
struct ProfileBody<'a> {
    username: &'a str,
    email: Option<&'a str>,
}

/// `GET /profile`: the caller's username and email.
pub async fn profile(
    AuthUser(credential): AuthUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let shared = state.clone();
    let current = blocking::run(state.work_deadline, move || {
        shared.who_am_i.execute(&credential)
    })
    .await??;
    Ok(HttpResponse::Ok().json(ProfileBody {
        username: current.user.username.as_str(),
        email: current.user.email.as_ref().map(Email::as_str),
    }))
}

/// `GET /user/{username}`
pub async fn get_user(
    AuthUser(credential): AuthUser,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let target = path.into_inner();
    let shared = state.clone();
    let user = blocking::run(state.work_deadline, move || {
        shared.manage_account.get(&credential, &target, &origin)
    })
    .await??;
    Ok(HttpResponse::Ok().json(UserBody::from(&user)))
}

/// `UpdateUserRequest` in openapi.yaml.
#[derive(Deserialize)]
pub struct UpdateUserRequest {
    data: Value,
}

/// `PUT /user/{username}`: replaces the account's data.
pub async fn put_user(
    AuthUser(credential): AuthUser,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let data = match body.into_inner().data {
        object @ Value::Object(_) => data_text(&object)?,
        _ => {
            return Err(
                safebox_domain::ValidationError::new("data", "must be a JSON object").into(),
            );
        }
    };
    let target = path.into_inner();
    let shared = state.clone();
    let user = blocking::run(state.work_deadline, move || {
        shared
            .manage_account
            .update(&credential, &target, data, &origin)
    })
    .await??;
    Ok(HttpResponse::Ok().json(UserBody::from(&user)))
}

/// `DELETE /user/{username}`
pub async fn delete_user(
    AuthUser(credential): AuthUser,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let target = path.into_inner();
    let shared = state.clone();
    blocking::run(state.work_deadline, move || {
        shared.manage_account.delete(&credential, &target, &origin)
    })
    .await??;
    Ok(HttpResponse::NoContent().finish())
}
