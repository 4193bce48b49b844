use actix_web::HttpResponse;

use crate::error::ApiError;

/// Any path safebox does not serve.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(unserved())
}

/// The error of a path safebox does not serve.
pub fn unserved() -> ApiError {
    ApiError::NotFound("Not found".into())
}

/// A served path called with a method it does not take.
pub fn method_not_allowed(allow: String) -> ApiError {
    ApiError::MethodNotAllowed { allow }
}
