//! The route handlers. Each one extracts, converts to domain types, runs one use
//! case off the async workers and responds.

mod accounts;
mod audit;
mod fallback;
mod secrets;
mod sessions;
mod users;
mod vault;

pub use accounts::{change_password, cookie_login, login, register, sign_up};
pub use audit::list_audit;
pub use fallback::{method_not_allowed, not_found, unserved};
pub use secrets::{get_secret, set_secret};
pub use sessions::{end_session, list_sessions, logout, refresh};
pub use users::{delete_user, get_user, home, profile, put_user};
pub use vault::{
    delete_secret, get_secret as get_vault_secret, list_secrets, put_secret, undelete_secret,
};

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
