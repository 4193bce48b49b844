//! # safebox-api
//!
//! The HTTP face of safebox: actix-web handlers that stay thin (extract, convert to
//! domain types, run one use case off the async workers, respond), the [`AuthUser`]
//! and [`JsonBody`] extractors, [`ApiError`] (every domain error mapped to a status
//! with no catch-all), and [`Application`], which wires the adapters together.
#![forbid(unsafe_code)]

mod blocking;
mod docs_ui;
mod error;
mod extract;
mod handlers;
mod hashing;
pub mod logging;
mod metrics;
mod ops;
mod request_id;
mod routes;
mod startup;
mod state;
mod yielding;

pub use error::ApiError;
pub use extract::{AuthUser, ClientIp, IpRateLimit, JsonBody, MAX_JSON_BODY_BYTES};
pub use hashing::{HashingPool, HashingStats, PoolError};
pub use metrics::{CountingAuditLog, Metrics};
pub use ops::operator_routes;
pub use request_id::{RequestId, X_REQUEST_ID};
pub use routes::{ApiRoute, api_routes};
pub use startup::{Application, StartupError};
pub use state::AppState;
