//! The route handlers. Each one extracts, converts to domain types, runs one use
//! case off the async workers and responds.

mod accounts;
mod audit;
mod fallback;
mod secrets;

pub use accounts::{login, register};
pub use audit::list_audit;
pub use fallback::{method_not_allowed, not_found};
pub use secrets::{get_secret, set_secret};

use serde::Serialize;

/// `{"message": …}`, the body of simple successes.
#[derive(Serialize)]
pub struct MessageResponse {
    message: &'static str,
}

impl MessageResponse {
    pub fn new(message: &'static str) -> Self {
        Self { message }
    }
}

#[cfg(test)]
mod tests;
