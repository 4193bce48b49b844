use actix_web::{HttpResponse, web};
use safebox_domain::usecases::MAX_AUDIT_PAGE;
use safebox_domain::{AuditRecord, ValidationError};
use serde::{Deserialize, Serialize};

use crate::blocking;
use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::state::AppState;

const DEFAULT_PAGE: u32 = 50;

/// The query of `GET /audit`.
#[derive(Deserialize)]
pub struct AuditPageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `AuditEvent` in openapi.yaml.
#[derive(Serialize)]
struct AuditEventBody {
    id: String,
    at: i64,
    user_id: Option<String>,
    client_ip: Option<String>,
    event: &'static str,
    outcome: &'static str,
}

impl From<AuditRecord> for AuditEventBody {
    fn from(record: AuditRecord) -> Self {
        Self {
            id: record.id,
            at: record.event.at.as_secs(),
            user_id: record.event.user_id.map(|id| id.to_string()),
            client_ip: record.event.client_ip,
            event: record.event.action.as_str(),
            outcome: record.event.outcome.as_str(),
        }
    }
}

/// `AuditPage` in openapi.yaml.
#[derive(Serialize)]
struct AuditPage {
    events: Vec<AuditEventBody>,
    next_cursor: Option<String>,
}

/// `GET /audit?limit=&cursor=`: the caller's events (everyone's for an admin),
/// newest first.
pub async fn list_audit(
    AuthUser(credential): AuthUser,
    state: web::Data<AppState>,
    query: web::Query<AuditPageQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(ValidationError::new("limit", format!("must be 1 to {MAX_AUDIT_PAGE}")).into());
    }
    let shared = state.clone();
    let records = blocking::run(state.work_deadline, move || {
        shared.list_audit.execute(&credential, query.cursor, limit)
    })
    .await??;
    let full_page = records.len() == limit as usize;
    let next_cursor = records
        .last()
        .filter(|_| full_page)
        .map(|record| record.id.clone());
    Ok(HttpResponse::Ok().json(AuditPage {
        events: records.into_iter().map(AuditEventBody::from).collect(),
        next_cursor,
    }))
}
