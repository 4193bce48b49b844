//! Request ids: every request gets one, every response echoes it in
//! `X-Request-Id`, and every log line written while serving the request carries it
//! (as the `request_id` field of the request's span).
//!
//! A client's (or a proxy's) `X-Request-Id` is kept when it is 1 to 128
//! characters of `A-Z a-z 0-9 . _ -`, so a trace can be followed across services;
//! anything else is replaced by a fresh UUID v4, so a header can never smuggle
//! control characters or markup into logs.

use actix_web::HttpMessage as _;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

use crate::metrics::route_label;

/// The header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id accepted from a client.
const MAX_LEN: usize = 128;

/// The id of the request being served, in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `id` may be used as a request id as given.
fn acceptable(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The client's id if acceptable, else a fresh UUID v4.
fn request_id_of(req: &ServiceRequest) -> String {
    req.headers()
        .get(&X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| acceptable(id))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), ToOwned::to_owned)
}

/// Middleware, outermost: settles the request id, stores it in the request's
/// extensions (for [`SafeboxRootSpan`]) and sets `X-Request-Id` on the response,
/// whatever the response is (errors, 404s and middleware failures included).
pub(crate) async fn assign(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let id = request_id_of(&req);
    // Only the characters checked above (or a UUID's): always a valid value.
    let value = HeaderValue::from_str(&id).expect("request ids are visible ASCII");
    req.extensions_mut().insert(RequestId(id));
    match next.call(req).await {
        Ok(mut response) => {
            response.headers_mut().insert(X_REQUEST_ID, value);
            Ok(response)
        }
        // A failing middleware: its error becomes the response, with the id.
        // (The request cannot be kept for a `ServiceResponse`: routing needs it
        // unshared.)
        Err(err) => {
            let mut response = err.error_response();
            response.headers_mut().insert(X_REQUEST_ID, value);
            Err(InternalError::from_response(err, response).into())
        }
    }
}

/// The root span of every request, for `TracingLogger`: the fields of
/// tracing-actix-web's default span, with `request_id` taken from [`assign`]
/// (instead of a fresh id of its own) and `http.route` the documented template.
/// Log lines written inside a request (in JSON, with the current span) carry it.
pub(crate) struct SafeboxRootSpan;

impl RootSpanBuilder for SafeboxRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        let route = route_label(request.match_pattern());
        let user_agent = request
            .headers()
            .get("user-agent")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let connection = request.connection_info();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.flavor = ?request.version(),
            http.scheme = %connection.scheme(),
            http.host = %connection.host(),
            http.client_ip = %connection.realip_remote_addr().unwrap_or(""),
            http.user_agent = %user_agent,
            http.target = %request.uri().path_and_query().map_or("", |p| p.as_str()),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn only_short_plain_ids_are_kept() {
        assert!(acceptable("a"));
        assert!(acceptable("req-42_x.Y"));
        assert!(acceptable(&"a".repeat(128)));
        assert!(!acceptable(""));
        assert!(!acceptable(&"a".repeat(129)));
        assert!(!acceptable("<script>"));
        assert!(!acceptable("a b"));
        assert!(!acceptable("é"));
        assert!(!acceptable("a\tb"));
    }
}
