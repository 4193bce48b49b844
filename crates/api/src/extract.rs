use std::future::{Ready, ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{BytesMut, Data};
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use futures_util::{StreamExt as _, TryFutureExt as _};
use safebox_domain::ports::RateLimiter;
use safebox_domain::{Credential, MAX_USER_AGENT_CHARS, OpaqueToken, Origin, ValidationError};
use safebox_infra::ClientIpSource;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;
use safebox_infra::log_throttle::LogThrottle;

/// The largest JSON request body accepted; larger ones get 413.
pub const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

/// How long a client may take to send a request body; slower ones get 408.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The name of the browser session cookie.
pub const SESSION_COOKIE: &str = "safebox_session";

/// The caller's credential: an `Authorization: Bearer <token>` header or, failing
/// that, the session cookie.
///
/// - A bearer token is verified here (one HMAC); whether its session is still live
///   is checked by the use case the handler runs, on the same blocking thread as
///   the rest of its work.
/// - The header wins when both are sent: a bad token is refused, never rescued by
///   the cookie.
/// - A state-changing request (anything but GET, HEAD and OPTIONS) authenticated
///   only by the cookie must also carry an `Origin` equal to this server's own, or
///   an `X-Requested-With` header, which a cross-site form cannot send: else 403.
///
/// Extraction fails with 401 `Not authorized` (and `WWW-Authenticate: Bearer`)
/// when there is no credential or the token is forged, expired or otherwise
/// invalid. Credentials are only ever read from these headers, never from the URL.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Credential);

fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn session_cookie(req: &HttpRequest) -> Option<OpaqueToken> {
    req.cookie(SESSION_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|value| !value.is_empty())
        .map(OpaqueToken::new)
}

fn app_state(req: &HttpRequest) -> Result<&Data<AppState>, ApiError> {
    req.app_data::<Data<AppState>>().ok_or_else(|| {
        tracing::error!("AppState missing from the app");
        ApiError::Internal
    })
}

/// Whether a cookie-authenticated request may change state: it names this server
/// as its `Origin`, or carries `X-Requested-With`.
fn passes_csrf_check(req: &HttpRequest, tls: bool) -> bool {
    if req.method().is_safe() || req.headers().contains_key("x-requested-with") {
        return true;
    }
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    // The Host header as the client sent it: never a proxy's X-Forwarded-Host,
    // which the client could set to anything.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| req.uri().authority().map(|authority| authority.as_str()));
    let scheme = if tls { "https" } else { "http" };
    host.is_some_and(|host| origin.eq_ignore_ascii_case(&format!("{scheme}://{host}")))
}

impl AuthUser {
    fn extract(req: &HttpRequest) -> Result<Self, ApiError> {
        let state = app_state(req)?;
        if req.headers().contains_key(header::AUTHORIZATION) {
            let token = bearer_token(req).ok_or(ApiError::NotAuthorized)?;
            return Ok(Self(state.authenticate.execute(token)?));
        }
        let cookie = session_cookie(req).ok_or(ApiError::NotAuthorized)?;
        if !passes_csrf_check(req, state.tls) {
            return Err(ApiError::CrossSiteRequest);
        }
        Ok(Self(Credential::Cookie(cookie)))
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::extract(req))
    }
}

/// The caller's credential when one was sent and the token verifies; `None`
/// otherwise. For routes that answer everyone, such as `GET /`.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<Credential>);

impl FromRequest for MaybeAuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match AuthUser::extract(req) {
            Ok(AuthUser(credential)) => Ok(Self(Some(credential))),
            Err(ApiError::NotAuthorized | ApiError::CrossSiteRequest) => Ok(Self(None)),
            Err(err) => Err(err),
        })
    }
}

/// Where a request came from: the client IP (see [`ClientIp`]) and its
/// `User-Agent`, cut to [`MAX_USER_AGENT_CHARS`] characters.
#[derive(Debug, Clone)]
pub struct RequestOrigin(pub Origin);

impl FromRequest for RequestOrigin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let source = req
            .app_data::<Data<AppState>>()
            .map_or(ClientIpSource::Peer, |state| state.client_ip);
        let ClientIp(ip) = ClientIp::of(req, source);
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect());
        ready(Ok(Self(Origin {
            client_ip: ip.map(|ip| ip.to_string()),
            user_agent,
        })))
    }
}

/// The `{name}` of `/secrets/{name}` and `/secrets/{name}/undelete`,
/// percent-decoded. Literal slashes and `%2F` both make folders. Read from the
/// path the router left after `/secrets` ([`crate::routes::vault_target`]) and
/// decoded as actix decodes a path parameter, so only for the vault's routes.
#[derive(Debug)]
pub struct SecretPath(pub String);

impl FromRequest for SecretPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        thread_local! {
            // Decodes every `%XX`; the router already decoded all but `%`, `/`
            // and `+` (actix_router::Url).
            static DECODE: actix_router::Quoter = actix_router::Quoter::new(b"", b"");
        }
        let target = crate::routes::vault_target(req.match_info().unprocessed(), req.method());
        ready(match target {
            Some((_, raw)) => Ok(Self(DECODE.with(
                |quoter| match quoter.requote(raw.as_bytes()) {
                    Some(decoded) => String::from_utf8_lossy(&decoded).into_owned(),
                    None => raw.to_owned(),
                },
            ))),
            // Only on a route outside `/secrets/`: a wiring mistake, not the
            // client's.
            None => {
                tracing::error!("SecretPath extracted on a route outside /secrets/");
                Err(ApiError::Internal)
            }
        })
    }
}

/// The client's IP address, from the source the operator configured
/// (`SAFEBOX_CLIENT_IP_SOURCE`): the TCP peer by default, or the `X-Forwarded-For`
/// entry written by the outermost trusted proxy. Falls back to the peer when the
/// header is missing or malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// Reads the client IP of `req` according to `source`.
    pub fn of(req: &HttpRequest, source: ClientIpSource) -> Self {
        let peer = req.peer_addr().map(|addr| addr.ip());
        let forwarded = match source {
            ClientIpSource::Peer => None,
            ClientIpSource::XForwardedFor { hops } => forwarded_for(req, hops),
        };
        Self(forwarded.or(peer))
    }
}

/// The `hops`-th entry from the right of all `X-Forwarded-For` headers: the address
/// the outermost trusted proxy saw. Entries further left were written by the client
/// and cannot be trusted.
fn forwarded_for(req: &HttpRequest, hops: usize) -> Option<IpAddr> {
    let entries: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let index = entries.len().checked_sub(hops)?;
    entries[index].parse().ok()
}

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let source = req
            .app_data::<Data<AppState>>()
            .map_or(ClientIpSource::Peer, |state| state.client_ip);
        ready(Ok(Self::of(req, source)))
    }
}

/// The rate-limit bucket of an address: the address itself for IPv4, its /64
/// network for IPv6, since one IPv6 client is usually given a whole /64 and could
/// otherwise use a fresh address, and a fresh bucket, for every request.
fn bucket_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
    }
}

/// How long a credential request refused for load (503: the hashing pool is
/// full) or by the per-IP limit (429) waits before its answer, at least.
///
/// The wait holds no thread (it is a timer on the async worker) and keeps the
/// answer below the 50 ms that counts as shedding at once, but it bounds how fast
/// a flood of clients retrying at once can come back: without it, answering the
/// refusals would itself take the CPU that hashing and other requests need. At
/// 20 ms, 64 clients retrying at once were refused about 2,600 times a second and
/// logins reached 0.79x the bcrypt bound on the quick check; at 35 ms, about
/// 1,600 refusals a second and 0.88x. Since refusals are answered in waves
/// ([`REFUSAL_SLOT`]), which share their wake-ups, 25 ms (about 1,900 a second)
/// costs logins next to nothing, and leaves the 50 ms more room.
pub(crate) const REFUSAL_PACE: std::time::Duration = std::time::Duration::from_millis(25);

/// Refusals are answered on the next boundary of these slots after
/// [`REFUSAL_PACE`], so 25 to 30 ms after they came in.
///
/// Answering each refusal at its own moment wakes a worker for every one, and
/// each wake-up preempts a hashing thread and evicts bcrypt's S-boxes from its
/// core's cache: at 1,600 refusals a second that cost logins about a tenth of
/// the bcrypt bound. Answered in waves, the refusals (and the retries they
/// bring back) share their wake-ups.
const REFUSAL_SLOT: std::time::Duration = std::time::Duration::from_millis(5);

/// Waits out the pace of a refused credential request (see [`REFUSAL_PACE`]
/// and [`REFUSAL_SLOT`]).
pub(crate) async fn pace_refusal() {
    static EPOCH: std::sync::LazyLock<std::time::Instant> =
        std::sync::LazyLock::new(std::time::Instant::now);
    let now = EPOCH.elapsed();
    let at = *EPOCH + refusal_answer_at(now);
    actix_web::rt::time::sleep_until(at.into()).await;
}

/// When a refusal that came in at `now` is answered: the first slot boundary
/// at least [`REFUSAL_PACE`] later (both measured from the same epoch).
fn refusal_answer_at(now: std::time::Duration) -> std::time::Duration {
    let earliest = (now + REFUSAL_PACE).as_nanos();
    let slot = REFUSAL_SLOT.as_nanos();
    let boundary = u64::try_from(earliest.div_ceil(slot) * slot).unwrap_or(u64::MAX);
    std::time::Duration::from_nanos(boundary)
}

/// A guard for the credential routes: takes one token from the client IP's bucket,
/// or fails with 429 and `Retry-After`. Listed before the body in a handler's
/// arguments, so a limited client costs no parsing and no hashing.
#[derive(Debug, Clone, Copy)]
pub struct IpRateLimit;

impl IpRateLimit {
    /// Takes a token from the client's bucket: inline when the buckets are in
    /// memory, on a blocking thread (within the storage deadline) when they are in
    /// Redis.
    async fn check(
        limiter: Arc<dyn RateLimiter>,
        key: String,
        blocking_deadline: Option<std::time::Duration>,
    ) -> Result<Self, ApiError> {
        let taken = match blocking_deadline {
            Some(deadline) => {
                let bucket = key.clone();
                crate::blocking::run(deadline, move || limiter.acquire(&bucket)).await?
            }
            None => limiter.acquire(&key),
        };
        match taken? {
            None => Ok(Self),
            Some(retry_after_secs) => {
                static THROTTLE: LogThrottle = LogThrottle::new();
                if let Some(also) = THROTTLE.admit() {
                    tracing::info!(
                        client_ip = %key,
                        also_limited_since_last_line = also,
                        "client IP rate limit reached"
                    );
                }
                pace_refusal().await;
                Err(ApiError::TooManyRequests {
                    detail: "Too many requests from this address; try again later",
                    retry_after_secs,
                })
            }
        }
    }
}

impl FromRequest for IpRateLimit {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = match app_state(req) {
            Ok(state) => state,
            Err(err) => return Box::pin(ready(Err(err))),
        };
        let Some(ip_limiter) = &state.ip_limiter else {
            return Box::pin(ready(Ok(Self)));
        };
        let ClientIp(ip) = ClientIp::of(req, state.client_ip);
        let key = ip.map_or_else(
            || "ip:unknown".to_owned(),
            |ip| format!("ip:{}", bucket_of(ip)),
        );
        let deadline = ip_limiter.blocks.then_some(state.work_deadline);
        Box::pin(Self::check(Arc::clone(&ip_limiter.limiter), key, deadline))
    }
}

/// A JSON request body, deserialised into `T`.
///
/// Unlike `actix_web::web::Json`, every failure is a `{"detail": …}` body:
/// - a Content-Type other than `application/json` (or `+json`): 415;
/// - a body over [`MAX_JSON_BODY_BYTES`]: 413, detected from `Content-Length` or
///   while reading, without buffering more than the limit;
/// - malformed JSON: 400 `malformed JSON: …`;
/// - a missing field or a value of the wrong type: 422 `<field>: <problem>`.
///
/// Error messages never include the values sent.
pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    /// The deserialised body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

fn is_json(req: &HttpRequest) -> bool {
    match req.mime_type() {
        Ok(Some(mime)) => {
            mime.type_() == "application"
                && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
        }
        _ => false,
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("request body must be at most {limit} bytes"))
}

/// Reads a request body of at most `limit` bytes, within `BODY_TIMEOUT`: 413
/// past the limit (from `Content-Length` or while reading, never buffering more),
/// 408 when it trickles in too slowly.
fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> Pin<Box<dyn Future<Output = Result<BytesMut, ApiError>>>> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Box::pin(ready(Err(too_large(limit))));
    }
    let mut payload = payload.take();
    Box::pin(async move {
        let read = async {
            let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk
                    .map_err(|_| ApiError::BadRequest("could not read the request body".into()))?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        // The server's request timeout covers the head only; a body trickled in
        // byte by byte must not hold the connection open either.
        actix_web::rt::time::timeout(BODY_TIMEOUT, read)
            .await
            .map_err(|_| ApiError::RequestTimeout)?
    })
}

/// A JSON body of at most `limit` bytes: 415 for another Content-Type, then as
/// [`read_body`] and [`parse_json`].
fn json_body<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> Pin<Box<dyn Future<Output = Result<T, ApiError>>>> {
    if !is_json(req) {
        return Box::pin(ready(Err(ApiError::UnsupportedMediaType)));
    }
    let body = read_body(req, payload, limit);
    Box::pin(async move { parse_json(&body.await?) })
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        Box::pin(json_body(req, payload, MAX_JSON_BODY_BYTES).map_ok(JsonBody))
    }
}

/// A JSON body that carries a secret value: like [`JsonBody`], but its size
/// limit follows `SAFEBOX_MAX_SECRET_BYTES` (twice the value limit, for JSON
/// escaping, plus 16 KiB for the rest of the body, and never below
/// [`MAX_JSON_BODY_BYTES`]). A value over its own limit that fits in the body is
/// refused with 413 by the handler, naming the field.
pub struct SecretBody<T>(pub T);

impl<T> SecretBody<T> {
    /// The deserialised body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// The body limit of [`SecretBody`] for a value limit of `max_value_bytes`.
pub fn secret_body_limit(max_value_bytes: usize) -> usize {
    max_value_bytes
        .saturating_mul(2)
        .saturating_add(16 * 1024)
        .max(MAX_JSON_BODY_BYTES)
}

impl<T: DeserializeOwned + 'static> FromRequest for SecretBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<Data<AppState>>()
            .map_or(MAX_JSON_BODY_BYTES, |state| {
                secret_body_limit(state.vault.limits().max_value_bytes)
            });
        Box::pin(json_body(req, payload, limit).map_ok(SecretBody))
    }
}

/// A request body sent either as JSON (see [`JsonBody`]) or as an HTML form
/// (`application/x-www-form-urlencoded`), with the same limits and the same error
/// bodies; any other Content-Type is 415.
///
/// A form is what any web page can make a browser post to any site, so a form
/// body must pass the same check as a cookie-authenticated request (this server's
/// `Origin`, or `X-Requested-With`), else 403. Without it another site could log
/// a visitor's browser in to the other site's own account (login CSRF). A JSON
/// body needs no check: a browser sends one cross-site only after a CORS
/// preflight, which safebox never grants.
pub struct JsonOrFormBody<T>(pub T);

fn is_form(req: &HttpRequest) -> bool {
    matches!(req.mime_type(), Ok(Some(mime)) if mime.essence_str() == "application/x-www-form-urlencoded")
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonOrFormBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = is_form(req);
        if !form && !is_json(req) {
            return Box::pin(ready(Err(ApiError::UnsupportedMediaType)));
        }
        if form {
            let checked = app_state(req).and_then(|state| {
                if passes_csrf_check(req, state.tls) {
                    Ok(())
                } else {
                    Err(ApiError::CrossSiteRequest)
                }
            });
            if let Err(err) = checked {
                return Box::pin(ready(Err(err)));
            }
        }
        let body = read_body(req, payload, MAX_JSON_BODY_BYTES);
        Box::pin(async move {
            let body = body.await?;
            if !form {
                return parse_json(&body).map(Self);
            }
            serde_urlencoded::from_bytes(&body)
                .map(Self)
                .map_err(|err| ApiError::Validation(describe(".", &err.to_string(), "body")))
        })
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so that malformed JSON is a 400 even when its first part would
    // already fail the schema; skipping values allocates nothing.
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map_err(|err| ApiError::BadRequest(format!("malformed JSON: {err}")))?;
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ValidationError::new("body", "must be a JSON object").into());
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        ApiError::Validation(describe(&path, &err.into_inner().to_string(), "body"))
    })
}

/// Turns a serde data error into `<field>: <problem>` without echoing the value.
///
/// serde reports a missing field at the parent's path with the message
/// "missing field `name`", and a wrong type at the field's own path with
/// "invalid type: <what was sent>, expected <what is wanted>".
pub(crate) fn describe(path: &str, message: &str, whole: &'static str) -> ValidationError {
    let message = message.split(" at line ").next().unwrap_or(message);
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        let field = if path == "." || path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return ValidationError::new(known_field(field), "field required");
    }
    let problem = match message.split_once(", expected ") {
        Some((_, expected)) if expected.starts_with("struct ") => {
            "must be a JSON object".to_owned()
        }
        Some((_, expected)) => format!("must be {expected}"),
        None => "has an invalid value".to_owned(),
    };
    if path == "." || path.is_empty() {
        return ValidationError::new(whole, problem);
    }
    ValidationError::new(known_field(path.to_owned()), problem)
}

/// Field names in validation errors are `&'static str`, and a serde path can hold
/// map keys or indexes sent by the client; only the field names of our own request
/// types are reported by name (a nested path by its top-level field, such as
/// `metadata` for `metadata.k`), anything else as "body".
fn known_field(field: String) -> &'static str {
    const KNOWN: &[&str] = &[
        "email",
        "username",
        "password",
        "secret",
        "limit",
        "cursor",
        "data",
        "current_password",
        "new_password",
        "refresh_token",
        "value",
        "metadata",
    ];
    let top = field.split(['.', '[']).next().unwrap_or_default();
    KNOWN
        .iter()
        .find(|known| **known == top)
        .copied()
        .unwrap_or("body")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[test]
    fn refusals_are_answered_on_the_first_slot_boundary_after_the_pace() {
        use std::time::Duration;
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        for (came_in, answered) in [
            (ms(0), ms(25)),
            (us(1), ms(30)),
            (ms(1), ms(30)),
            (ms(5), ms(30)),
            (ms(5) + us(1), ms(35)),
            (ms(1_002), ms(1_030)),
        ] {
            let at = refusal_answer_at(came_in);
            assert_eq!(at, answered, "came in at {came_in:?}");
            let waited = at - came_in;
            assert!(waited >= REFUSAL_PACE && waited < REFUSAL_PACE + REFUSAL_SLOT);
        }
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        email: String,
        password: String,
    }

    fn detail(body: &str) -> (u16, String) {
        let err = parse_json::<Sample>(body.as_bytes()).unwrap_err();
        (
            actix_web::ResponseError::status_code(&err).as_u16(),
            err.to_string(),
        )
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket_of(a), bucket_of(b));
        assert_ne!(bucket_of(a), bucket_of(other));
        assert_eq!(bucket_of("203.0.113.7".parse().unwrap()), "203.0.113.7");
        assert_eq!(
            bucket_of("::ffff:203.0.113.7".parse().unwrap()),
            "203.0.113.7"
        );
    }

    #[test]
    fn malformed_json_is_400() {
        for body in ["", "{", "{\"email\": }", "nope", "{} trailing"] {
            let (status, detail) = detail(body);
            assert_eq!(status, 400, "{body:?}");
            assert!(detail.starts_with("malformed JSON: "), "{detail}");
        }
    }

    #[test]
    fn missing_and_mistyped_fields_are_422_naming_the_field() {
        assert_eq!(
            detail(r#"{"email":"a@b.co"}"#),
            (422, "password: field required".into())
        );
        assert_eq!(
            detail(r#"{"email":5,"password":"x"}"#),
            (422, "email: must be a string".into())
        );
        assert_eq!(detail("[1]"), (422, "body: must be a JSON object".into()));
    }

    #[test]
    fn rejected_values_are_never_echoed() {
        let (_, shown) = detail(r#"{"email":"a@b.co","password":["hunter2-secret"]}"#);
        assert!(!shown.contains("hunter2"), "{shown}");
        let (_, shown) = detail(r#"{"email":"a@b.co","password":123456789}"#);
        assert!(!shown.contains("123456789"), "{shown}");
    }
}
