use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use safebox_domain::usecases::{
    AuthenticateError, ChangePasswordError, EndSessionError, ListAuditError, LoginError,
    ManageAccountError, RefreshError, RegisterError, SessionError, VaultError,
};
use safebox_domain::{RepoError, ValidationError};
use serde::Serialize;

use crate::hashing::PoolError;
use safebox_infra::log_throttle::LogThrottle;

/// Every way a request can fail, each with one status and a `{"detail": …}` body.
///
/// Server-side failures are logged once, with their cause, where they are converted
/// into an `ApiError`; their bodies stay opaque.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with a message for the client.
    #[error("{0}")]
    BadRequest(String),
    /// 401 for the login routes: unknown account or wrong password.
    #[error("Invalid email or password")]
    InvalidCredentials,
    /// 401 with `WWW-Authenticate: Bearer`: no usable token, or not the token's user.
    #[error("Not authorized")]
    NotAuthorized,
    /// 401 for `PUT /password`: the current password given is wrong.
    #[error("Current password is incorrect")]
    WrongPassword,
    /// 401 for `POST /token/refresh`: unknown, spent or ended.
    #[error("Invalid refresh token")]
    InvalidRefreshToken,
    /// 403: authenticated, but not allowed to act on this resource.
    #[error("Forbidden")]
    Forbidden,
    /// 403: a state-changing request authenticated only by the session cookie,
    /// without the proof that it came from this site.
    #[error("Cross-site request refused: send a matching Origin or X-Requested-With header")]
    CrossSiteRequest,
    /// 404 with a message for the client.
    #[error("{0}")]
    NotFound(Cow<'static, str>),
    /// 409 with a message for the client: the request conflicts with what is
    /// stored.
    #[error("{0}")]
    Conflict(String),
    /// 412: a check-and-set precondition (`If-Match`, `If-None-Match`) failed.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 405 naming the methods that are allowed.
    #[error("Method not allowed")]
    MethodNotAllowed {
        /// The value of the `Allow` header.
        allow: String,
    },
    /// 413 with a message for the client.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 429 with `Retry-After`: a rate limit or an account lockout.
    #[error("{detail}")]
    TooManyRequests {
        /// What was limited.
        detail: &'static str,
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// 408: the request body did not arrive in time.
    #[error("request body not received in time")]
    RequestTimeout,
    /// 415: a JSON route was sent something else.
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// 422: a field failed validation.
    #[error("{0}")]
    Validation(#[from] ValidationError),
    /// 503 with `Retry-After`: a dependency or the hashing pool is saturated.
    #[error("service unavailable")]
    Unavailable,
    /// 500 with an opaque body; the cause was logged.
    #[error("internal server error")]
    Internal,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    detail: &'a str,
}

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::InvalidCredentials
            | Self::NotAuthorized
            | Self::WrongPassword
            | Self::InvalidRefreshToken => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::CrossSiteRequest => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::NotAuthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::Unavailable => {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
            }
            Self::TooManyRequests {
                retry_after_secs, ..
            } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Self::MethodNotAllowed { allow } => {
                if let Ok(value) = HeaderValue::from_str(allow) {
                    response.insert_header((header::ALLOW, value));
                }
            }
            _ => {}
        }
        response.json(ErrorBody {
            detail: &self.to_string(),
        })
    }
}

impl ApiError {
    /// Logs a server-side failure once and hides it behind an opaque 500.
    pub(crate) fn internal(what: &str, cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %cause, "{what}");
        Self::Internal
    }

    /// A validation failure that is about size: 413 rather than 422.
    pub fn too_large(err: ValidationError) -> Self {
        Self::PayloadTooLarge(err.to_string())
    }
}

impl From<RepoError> for ApiError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::Unavailable(_) => {
                tracing::warn!(error = %err, "storage unavailable");
                Self::Unavailable
            }
            RepoError::Internal(_) => Self::internal("storage failure", &err),
        }
    }
}

impl From<PoolError> for ApiError {
    fn from(err: PoolError) -> Self {
        match err {
            PoolError::Saturated => {
                static THROTTLE: LogThrottle = LogThrottle::new();
                if let Some(also) = THROTTLE.admit() {
                    tracing::warn!(
                        also_shed_since_last_line = also,
                        "password hashing queue is full or too slow; shedding the request"
                    );
                }
                Self::Unavailable
            }
            PoolError::Lost => Self::internal("hashing job failed", &err),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        Self::internal("blocking task failed", &err)
    }
}

impl From<RegisterError> for ApiError {
    fn from(err: RegisterError) -> Self {
        match err {
            RegisterError::EmailTaken => Self::BadRequest("Email already in use".into()),
            RegisterError::UsernameTaken => Self::BadRequest("Username already in use".into()),
            RegisterError::Hashing(_) | RegisterError::Cipher(_) => {
                Self::internal("registration failed", &err)
            }
            RegisterError::Repository(err) => err.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(err: LoginError) -> Self {
        match err {
            LoginError::InvalidCredentials => Self::InvalidCredentials,
            LoginError::Locked { retry_after_secs } => Self::TooManyRequests {
                detail: "Too many failed login attempts; try again later",
                retry_after_secs,
            },
            LoginError::Hashing(_) | LoginError::Token(_) => Self::internal("login failed", &err),
            LoginError::Repository(err) => err.into(),
        }
    }
}

impl From<AuthenticateError> for ApiError {
    fn from(err: AuthenticateError) -> Self {
        match err {
            AuthenticateError::InvalidToken | AuthenticateError::ExpiredToken => {
                tracing::debug!(reason = %err, "bearer token refused");
                Self::NotAuthorized
            }
        }
    }
}

impl From<ListAuditError> for ApiError {
    fn from(err: ListAuditError) -> Self {
        match err {
            ListAuditError::NotAuthorized => Self::NotAuthorized,
            ListAuditError::Repository(err) => err.into(),
        }
    }
}

impl From<VaultError> for ApiError {
    fn from(err: VaultError) -> Self {
        match err {
            VaultError::NotAuthorized => Self::NotAuthorized,
            VaultError::NotFound => Self::NotFound("Secret not found".into()),
            VaultError::VersionNotKept(_) => Self::NotFound(err.to_string().into()),
            VaultError::PreconditionFailed(why) => Self::PreconditionFailed(why),
            VaultError::TooManySecrets(_) | VaultError::Busy => Self::Conflict(err.to_string()),
            VaultError::Integrity => {
                Self::internal("INTEGRITY: a stored ciphertext failed authentication", &err)
            }
            VaultError::MissingDataKey | VaultError::Cipher(_) => {
                Self::internal("sealing or opening a secret failed", &err)
            }
            VaultError::Repository(err) => err.into(),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::NotAuthorized => Self::NotAuthorized,
            SessionError::Repository(err) => err.into(),
        }
    }
}

impl From<EndSessionError> for ApiError {
    fn from(err: EndSessionError) -> Self {
        match err {
            EndSessionError::NotAuthorized => Self::NotAuthorized,
            EndSessionError::NotFound => Self::NotFound("Session not found".into()),
            EndSessionError::Repository(err) => err.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(err: RefreshError) -> Self {
        match err {
            RefreshError::Invalid => Self::InvalidRefreshToken,
            RefreshError::Token(_) => Self::internal("refreshing a session failed", &err),
            RefreshError::Repository(err) => err.into(),
        }
    }
}

impl From<ManageAccountError> for ApiError {
    fn from(err: ManageAccountError) -> Self {
        match err {
            ManageAccountError::NotAuthorized => Self::NotAuthorized,
            ManageAccountError::Forbidden => Self::Forbidden,
            ManageAccountError::NotFound => Self::NotFound("User not found".into()),
            ManageAccountError::Repository(err) => err.into(),
        }
    }
}

impl From<ChangePasswordError> for ApiError {
    fn from(err: ChangePasswordError) -> Self {
        match err {
            ChangePasswordError::NotAuthorized => Self::NotAuthorized,
            ChangePasswordError::WrongPassword => Self::WrongPassword,
            ChangePasswordError::Locked { retry_after_secs } => Self::TooManyRequests {
                detail: "Too many failed login attempts; try again later",
                retry_after_secs,
            },
            ChangePasswordError::Policy(err) => Self::Validation(err),
            ChangePasswordError::Hashing(_) => Self::internal("changing a password failed", &err),
            ChangePasswordError::Repository(err) => err.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;
    use actix_web::http::header::HeaderMap;

    use super::*;

    async fn render(err: ApiError) -> (StatusCode, serde_json::Value, HeaderMap) {
        let response = err.error_response();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body()).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap(), headers)
    }

    #[actix_web::test]
    async fn every_error_is_a_json_detail_with_its_status() {
        let cases = [
            (
                ApiError::BadRequest("Email already in use".into()),
                400,
                "Email already in use",
            ),
            (
                ApiError::InvalidCredentials,
                401,
                "Invalid email or password",
            ),
            (ApiError::NotAuthorized, 401, "Not authorized"),
            (
                ApiError::NotFound("Secret not found".into()),
                404,
                "Secret not found",
            ),
            (
                ApiError::UnsupportedMediaType,
                415,
                "Content-Type must be application/json",
            ),
            (
                ApiError::Validation(ValidationError::new(
                    "email",
                    "is not a valid email address",
                )),
                422,
                "email: is not a valid email address",
            ),
            (ApiError::Unavailable, 503, "service unavailable"),
            (ApiError::Internal, 500, "internal server error"),
        ];
        for (err, status, detail) in cases {
            let (got, body, _) = render(err).await;
            assert_eq!(got.as_u16(), status);
            assert_eq!(body, serde_json::json!({ "detail": detail }));
        }
    }

    #[actix_web::test]
    async fn not_authorized_challenges_and_unavailable_says_when_to_retry() {
        let (_, _, headers) = render(ApiError::NotAuthorized).await;
        assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer");
        let (_, _, headers) = render(ApiError::Unavailable).await;
        assert_eq!(headers.get("retry-after").unwrap(), "1");
        let (status, body, headers) = render(ApiError::TooManyRequests {
            detail: "slow down",
            retry_after_secs: 42,
        })
        .await;
        assert_eq!(status, 429);
        assert_eq!(body, serde_json::json!({ "detail": "slow down" }));
        assert_eq!(headers.get("retry-after").unwrap(), "42");
        let (_, _, headers) = render(ApiError::InvalidCredentials).await;
        assert!(headers.get("www-authenticate").is_none());
    }

    #[test]
    fn domain_errors_map_to_their_statuses() {
        let unavailable = || RepoError::Unavailable("down".into());
        let internal = || RepoError::internal("bug");
        let status = |err: ApiError| err.status_code().as_u16();

        assert_eq!(status(RegisterError::EmailTaken.into()), 400);
        assert_eq!(status(RegisterError::UsernameTaken.into()), 400);
        assert_eq!(status(RegisterError::Repository(unavailable()).into()), 503);
        assert_eq!(status(RegisterError::Repository(internal()).into()), 500);
        assert_eq!(status(LoginError::InvalidCredentials.into()), 401);
        assert_eq!(
            status(
                LoginError::Locked {
                    retry_after_secs: 9
                }
                .into()
            ),
            429
        );
        assert_eq!(status(LoginError::Repository(unavailable()).into()), 503);
        assert_eq!(status(AuthenticateError::ExpiredToken.into()), 401);
        assert_eq!(status(VaultError::NotAuthorized.into()), 401);
        assert_eq!(status(VaultError::MissingDataKey.into()), 500);
        assert_eq!(status(VaultError::NotFound.into()), 404);
        assert_eq!(
            status(VaultError::VersionNotKept(safebox_domain::SecretVersion(3)).into()),
            404
        );
        assert_eq!(
            status(VaultError::PreconditionFailed("moved".into()).into()),
            412
        );
        assert_eq!(status(VaultError::TooManySecrets(5).into()), 409);
        assert_eq!(status(VaultError::Busy.into()), 409);
        assert_eq!(status(VaultError::Integrity.into()), 500);
        assert_eq!(status(SessionError::NotAuthorized.into()), 401);
        assert_eq!(status(EndSessionError::NotFound.into()), 404);
        assert_eq!(status(RefreshError::Invalid.into()), 401);
        assert_eq!(status(ManageAccountError::Forbidden.into()), 403);
        assert_eq!(status(ManageAccountError::NotFound.into()), 404);
        assert_eq!(status(ManageAccountError::NotAuthorized.into()), 401);
        assert_eq!(status(ChangePasswordError::WrongPassword.into()), 401);
        assert_eq!(
            status(
                ChangePasswordError::Locked {
                    retry_after_secs: 3
                }
                .into()
            ),
            429
        );
        assert_eq!(
            status(ChangePasswordError::Repository(unavailable()).into()),
            503
        );
        assert_eq!(status(PoolError::Saturated.into()), 503);
        assert_eq!(status(PoolError::Lost.into()), 500);
    }
}
