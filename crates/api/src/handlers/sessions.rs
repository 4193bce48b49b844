use actix_web::{HttpResponse, web};
use safebox_domain::{OpaqueToken, Session};
use serde::{Deserialize, Serialize};

use super::accounts::session_cookie;
use crate::blocking;
use crate::error::ApiError;
use crate::extract::{AuthUser, IpRateLimit, JsonBody, RequestOrigin};
use crate::state::AppState;

/// `RefreshRequest` in openapi.yaml. No `Debug`: it holds a token.
#[derive(Deserialize)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// `TokenResponse` in openapi.yaml.
#[derive(Serialize)]
struct TokenResponse {
    token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// `POST /token/refresh`: rotates a refresh token.
pub async fn refresh(
    _: IpRateLimit,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    body: JsonBody<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let presented = OpaqueToken::new(body.into_inner().refresh_token);
    let shared = state.clone();
    let refreshed = blocking::run(state.work_deadline, move || {
        shared.refresh.execute(&presented, &origin)
    })
    .await??;
    Ok(HttpResponse::Ok().json(TokenResponse {
        token: refreshed.access.token.expose().to_owned(),
        refresh_token: refreshed.refresh.expose().to_owned(),
        token_type: "Bearer",
        expires_in: refreshed.access.expires_in,
    }))
}

/// `DELETE /auth`, `POST /logout` and `DELETE /sessions`: ends the caller's
/// current session, and tells a browser to drop the session cookie.
pub async fn logout(
    AuthUser(credential): AuthUser,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let shared = state.clone();
    blocking::run(state.work_deadline, move || {
        shared.logout.execute(&credential, &origin)
    })
    .await??;
    Ok(HttpResponse::NoContent()
        .cookie(session_cookie(String::new(), 0, state.tls))
        .finish())
}

/// `Session` in openapi.yaml.
#[derive(Serialize)]
struct SessionBody {
    id: String,
    kind: &'static str,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    client_ip: Option<String>,
    user_agent: Option<String>,
    current: bool,
}

/// `SessionList` in openapi.yaml.
#[derive(Serialize)]
struct SessionList {
    sessions: Vec<SessionBody>,
}

impl SessionBody {
    fn new(session: Session, current: bool) -> Self {
        Self {
            id: session.id.to_string(),
            kind: session.kind.as_str(),
            created_at: session.created_at.as_secs(),
            last_used_at: session.last_used_at.as_secs(),
            expires_at: session.expires_at.as_secs(),
            client_ip: session.client_ip,
            user_agent: session.user_agent,
            current,
        }
    }
}

/// `GET /sessions`: the caller's live sessions, newest first.
pub async fn list_sessions(
    AuthUser(credential): AuthUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let shared = state.clone();
    let (sessions, current) = blocking::run(state.work_deadline, move || {
        shared.list_sessions.execute(&credential)
    })
    .await??;
    Ok(HttpResponse::Ok().json(SessionList {
        sessions: sessions
            .into_iter()
            .map(|session| {
                let is_current = session.id == current;
                SessionBody::new(session, is_current)
            })
            .collect(),
    }))
}

/// `DELETE /sessions/{id}`: ends one of the caller's sessions.
pub async fn end_session(
    AuthUser(credential): AuthUser,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let target = path.into_inner();
    let shared = state.clone();
    blocking::run(state.work_deadline, move || {
        shared.end_session.execute(&credential, &target, &origin)
    })
    .await??;
    Ok(HttpResponse::NoContent().finish())
}
