//! The vault routes: `/secrets` and `/secrets/{name}`.

use std::collections::BTreeMap;

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use safebox_domain::usecases::{Precondition, PutSecret};
use safebox_domain::{
    Secret, SecretListQuery, SecretMetadata, SecretName, SecretValue, SecretVersion,
    ValidationError,
};
use serde::{Deserialize, Serialize};

use crate::blocking;
use crate::error::ApiError;
use crate::extract::{AuthUser, RequestOrigin, SecretBody, SecretPath};
use crate::state::AppState;

/// `PutSecretRequest` in openapi.yaml. No `Debug`: it holds a secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutSecretRequest {
    value: String,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
}

/// The query of `GET /secrets/{name}`. Every field is text here and validated by
/// hand, so that a bad value gets a 422 that names its field.
#[derive(Deserialize)]
pub struct GetQuery {
    version: Option<String>,
}

/// The query of `GET /secrets`.
#[derive(Deserialize)]
pub struct ListQuery {
    prefix: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    deleted: Option<String>,
}

/// The query of `DELETE /secrets/{name}`.
#[derive(Deserialize)]
pub struct DeleteQuery {
    destroy: Option<String>,
}

/// `SecretVersionInfo` in openapi.yaml.
#[derive(Serialize)]
struct VersionInfo<'a> {
    name: &'a str,
    version: u64,
    created_at: i64,
    updated_at: i64,
}

impl<'a> From<&'a Secret> for VersionInfo<'a> {
    fn from(secret: &'a Secret) -> Self {
        Self {
            name: secret.name.as_str(),
            version: secret.version.0,
            created_at: secret.created_at.as_secs(),
            updated_at: secret.updated_at.as_secs(),
        }
    }
}

/// `VaultSecret` in openapi.yaml.
#[derive(Serialize)]
struct SecretBodyOut<'a> {
    name: &'a str,
    value: &'a str,
    version: u64,
    metadata: &'a BTreeMap<String, String>,
    created_at: i64,
    updated_at: i64,
}

/// `SecretListEntry` in openapi.yaml.
#[derive(Serialize)]
struct ListEntry<'a> {
    name: &'a str,
    version: u64,
    oldest_version: u64,
    metadata: &'a BTreeMap<String, String>,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

/// `SecretList` in openapi.yaml.
#[derive(Serialize)]
struct ListPage<'a> {
    secrets: Vec<ListEntry<'a>>,
    next_cursor: Option<String>,
}

/// The `{name}` of the path: literal slashes and `%2F` both make folders.
fn secret_name(name: &str) -> Result<SecretName, ApiError> {
    Ok(SecretName::parse(name)?)
}

fn etag(version: SecretVersion) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}

/// A version number a client gave: a whole number from 1 up to `i64::MAX`, as
/// documented (`format: int64`). No version can be larger: the database stores
/// them as signed 64-bit integers, so a larger one would fail there (as a 500).
fn version_number(raw: &str) -> Option<SecretVersion> {
    raw.parse::<i64>()
        .ok()
        .and_then(|raw| u64::try_from(raw).ok())
        .and_then(|raw| SecretVersion::parse(raw).ok())
}

/// A conditional header's value: `*` or one strong entity tag `"N"`.
enum Condition {
    Any,
    Version(SecretVersion),
}

fn condition(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<Condition>, ApiError> {
    let Some(value) = headers.get(&name) else {
        return Ok(None);
    };
    let malformed = || {
        ApiError::BadRequest(format!(
            "{name} must be * or one version in double quotes, such as \"3\""
        ))
    };
    let text = value.to_str().map_err(|_| malformed())?.trim();
    if text == "*" {
        return Ok(Some(Condition::Any));
    }
    let digits = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(malformed)?;
    let version = version_number(digits).ok_or_else(malformed)?;
    Ok(Some(Condition::Version(version)))
}

/// `If-Match` and `If-None-Match` as a write precondition.
fn precondition(req: &HttpRequest) -> Result<Precondition, ApiError> {
    let if_match = condition(req.headers(), header::IF_MATCH)?;
    let if_none_match = condition(req.headers(), header::IF_NONE_MATCH)?;
    match (if_match, if_none_match) {
        (None, None) => Ok(Precondition::None),
        (Some(Condition::Version(version)), None) => Ok(Precondition::Version(version)),
        (Some(Condition::Any), None) => Ok(Precondition::Exists),
        (None, Some(Condition::Any)) => Ok(Precondition::Absent),
        (None, Some(Condition::Version(_))) => Err(ApiError::BadRequest(
            "If-None-Match takes only * on a write (create only)".into(),
        )),
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "send If-Match or If-None-Match, not both".into(),
        )),
    }
}

fn parse_bool(field: &'static str, raw: Option<&str>) -> Result<bool, ApiError> {
    match raw {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ValidationError::new(field, "must be true or false").into()),
    }
}

/// `PUT /secrets/{name}`
pub async fn put_secret(
    AuthUser(credential): AuthUser,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    req: HttpRequest,
    SecretPath(name): SecretPath,
    body: SecretBody<PutSecretRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = secret_name(&name)?;
    let precondition = precondition(&req)?;
    let body = body.into_inner();
    let limit = state.vault.limits().max_value_bytes;
    let put = PutSecret {
        name,
        value: SecretValue::parse(body.value, limit, "value").map_err(ApiError::too_large)?,
        metadata: body.metadata.map(SecretMetadata::parse).transpose()?,
        precondition,
    };
    let shared = state.clone();
    let written = blocking::run(state.work_deadline, move || {
        shared.vault.put(&credential, &put, &origin)
    })
    .await??;
    let secret = &written.secret;
    let mut response = if written.created {
        let mut created = HttpResponse::Created();
        created.insert_header((
            header::LOCATION,
            format!("/secrets/{}", secret.name.as_str()),
        ));
        created
    } else {
        HttpResponse::Ok()
    };
    Ok(response
        .insert_header(etag(secret.version))
        .json(VersionInfo::from(secret)))
}

/// `GET /secrets/{name}[?version=N]`
pub async fn get_secret(
    AuthUser(credential): AuthUser,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    SecretPath(name): SecretPath,
    query: web::Query<GetQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = secret_name(&name)?;
    let version = query
        .version
        .as_deref()
        .map(|raw| {
            version_number(raw).ok_or_else(|| {
                ValidationError::new(
                    "version",
                    "must be a whole number from 1 to 9223372036854775807",
                )
            })
        })
        .transpose()?;
    // The newest version, read again, is answered from memory on this worker;
    // anything else from storage, on a blocking thread.
    let in_memory = version
        .is_none()
        .then(|| state.vault.get_in_memory(&credential, &name, &origin))
        .flatten();
    state.metrics.secret_read(in_memory.is_some());
    let opened = match in_memory {
        Some(opened) => opened,
        // Boxed: inline, this rarer path's future made every read's larger than
        // the allocator's per-thread cache takes (see docs/performance.md).
        None => {
            Box::pin(blocking::run(state.work_deadline, {
                let shared = state.clone();
                move || shared.vault.get(&credential, &name, version, &origin)
            }))
            .await??
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header(etag(opened.version.version))
        .json(SecretBodyOut {
            name: opened.secret.name.as_str(),
            value: opened.value.expose(),
            version: opened.version.version.0,
            metadata: opened.secret.metadata.entries(),
            created_at: opened.secret.created_at.as_secs(),
            updated_at: opened.version.created_at.as_secs(),
        }))
}

/// `GET /secrets?prefix=&limit=&cursor=&deleted=`
pub async fn list_secrets(
    AuthUser(credential): AuthUser,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = match query.limit.as_deref() {
        None => SecretListQuery::DEFAULT_LIMIT,
        Some(raw) => SecretListQuery::parse_limit(raw.parse().unwrap_or(0))?,
    };
    let after = query
        .cursor
        .as_deref()
        .map(|cursor| {
            URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|name: String| SecretName::parse(&name).ok())
                .ok_or_else(|| ValidationError::new("cursor", "is not a cursor this API gave"))
        })
        .transpose()?;
    let list = SecretListQuery {
        prefix: SecretListQuery::parse_prefix(query.prefix.as_deref().unwrap_or(""))?,
        after,
        limit,
        include_deleted: parse_bool("deleted", query.deleted.as_deref())?,
    };
    let shared = state.clone();
    let page = blocking::run(state.work_deadline, move || {
        shared.vault.list(&credential, &list, &origin)
    })
    .await??;
    Ok(HttpResponse::Ok().json(ListPage {
        secrets: page
            .secrets
            .iter()
            .map(|secret| ListEntry {
                name: secret.name.as_str(),
                version: secret.version.0,
                oldest_version: secret.oldest_version.0,
                metadata: secret.metadata.entries(),
                created_at: secret.created_at.as_secs(),
                updated_at: secret.updated_at.as_secs(),
                deleted_at: secret.deleted_at.map(|at| at.as_secs()),
            })
            .collect(),
        next_cursor: page
            .next_after
            .map(|name| URL_SAFE_NO_PAD.encode(name.as_str())),
    }))
}

/// `DELETE /secrets/{name}[?destroy=true]`
pub async fn delete_secret(
    AuthUser(credential): AuthUser,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    SecretPath(name): SecretPath,
    query: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = secret_name(&name)?;
    let destroy = parse_bool("destroy", query.destroy.as_deref())?;
    let shared = state.clone();
    blocking::run(state.work_deadline, move || {
        if destroy {
            shared.vault.destroy(&credential, &name, &origin)
        } else {
            shared.vault.delete(&credential, &name, &origin)
        }
    })
    .await??;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /secrets/{name}/undelete`
pub async fn undelete_secret(
    AuthUser(credential): AuthUser,
    RequestOrigin(origin): RequestOrigin,
    state: web::Data<AppState>,
    SecretPath(name): SecretPath,
) -> Result<HttpResponse, ApiError> {
    let name = secret_name(&name)?;
    let shared = state.clone();
    let secret = blocking::run(state.work_deadline, move || {
        shared.vault.undelete(&credential, &name, &origin)
    })
    .await??;
    Ok(HttpResponse::Ok()
        .insert_header(etag(secret.version))
        .json(VersionInfo::from(&secret)))
}

#[cfg(test)]
mod version_tests {
    use safebox_domain::SecretVersion;

    use super::version_number;

    #[test]
    fn version_numbers_run_from_1_to_the_largest_the_database_can_hold() {
        assert_eq!(version_number("1"), Some(SecretVersion(1)));
        assert_eq!(
            version_number("9223372036854775807"),
            Some(SecretVersion(9_223_372_036_854_775_807))
        );
        for bad in [
            "0",
            "-1",
            "9223372036854775808",
            "18446744073709551616",
            "",
            "x",
            "1.0",
        ] {
            assert_eq!(version_number(bad), None, "{bad}");
        }
    }
}
