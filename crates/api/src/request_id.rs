//! Request ids and the request's context: every request gets an id, every
//! response echoes it in `X-Request-Id`, and every log line written while
//! serving the request carries it (see [`crate::logging`]).
//!
//! A client's (or a proxy's) `X-Request-Id` is kept when it is 1 to 128
//! characters of `A-Z a-z 0-9 . _ -`, so a trace can be followed across services;
//! anything else is replaced by a fresh UUID v4, so a header can never smuggle
//! control characters or markup into logs.
//!
//! The context holds only what a log line needs to be traced back: the id, the
//! method, the route template and the client IP (from the configured source,
//! `SAFEBOX_CLIENT_IP_SOURCE`). Never the path or query, which can hold a
//! secret's name or a username.

use std::rc::Rc;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{HttpServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::web::Data;
use safebox_infra::ClientIpSource;

use crate::extract::ClientIp;
use crate::logging::{RequestContext, in_request};
use crate::metrics::method_label;
use crate::state::AppState;

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

/// The route template the request matched, as documented (`/secrets/{name}`),
/// in its extensions: set by the route's own resource ([`named`]) or, under
/// `/secrets/`, by the vault's routing ([`name_route`]), so the metrics need not
/// match the path against the route table again. Requests no route matched have
/// none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteLabel(pub(crate) &'static str);

/// `resource`, serving under the route template `label`: every request it
/// serves, whatever the method, records `label` as its log lines' `http.route`
/// and its [`RouteLabel`].
pub(crate) fn named(resource: actix_web::Resource, label: &'static str) -> impl HttpServiceFactory {
    resource.wrap(from_fn(move |req, next| route_named(label, req, next)))
}

async fn route_named(
    label: &'static str,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    name_route(&req, label);
    next.call(req).await
}

/// Records `label` as the route template `req` matched: in its log lines'
/// `http.route` and as its [`RouteLabel`].
pub(crate) fn name_route(req: &impl HttpMessage, label: &'static str) {
    RequestContext::with_current(|request| {
        if let Some(request) = request {
            request.set_route(label);
        }
    });
    req.extensions_mut().insert(RouteLabel(label));
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

/// The context every log line of the request is written with. Its route is
/// recorded once routing has found it ([`named`]).
fn request_context(req: &ServiceRequest, id: String) -> RequestContext {
    let source = req
        .app_data::<Data<AppState>>()
        .map_or(ClientIpSource::Peer, |state| state.client_ip);
    let ClientIp(ip) = ClientIp::of(req.request(), source);
    RequestContext::new(id, method_label(req.method()), ip)
}

/// Middleware, outermost: settles the request id, stores it in the request's
/// extensions, runs the request with its context ([`in_request`]) and
/// sets `X-Request-Id` on the response, whatever the response is (errors, 404s
/// and middleware failures included). Every response is also counted towards
/// the worker's next yield of its core ([`crate::yielding`]).
pub(crate) async fn assign(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let id = request_id_of(&req);
    // Only the characters checked above (or a UUID's): always a valid value.
    let value = HeaderValue::from_str(&id).expect("request ids are visible ASCII");
    let context = Rc::new(request_context(&req, id.clone()));
    req.extensions_mut().insert(RequestId(id));
    let outcome = in_request(context, || next.call(req)).await;
    crate::yielding::response_answered();
    match outcome {
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
