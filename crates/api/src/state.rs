use std::sync::Arc;
use std::time::Duration;

use safebox_domain::PasswordPolicy;
use safebox_domain::ports::RateLimiter;
use safebox_domain::usecases::{
    Authenticate, ChangePassword, EndSession, GetSecret, ListAudit, ListSessions, Login, Logout,
    ManageAccount, Refresh, Register, SetSecret, Vault, WhoAmI,
};
use safebox_infra::ClientIpSource;

use crate::hashing::HashingPool;
use crate::metrics::Metrics;

/// What the handlers share: the use cases (which hold the ports), the password
/// policy and the hashing pool. Handlers see only domain types here; which adapters
/// sit behind the ports is decided in [`crate::Application`].
pub struct AppState {
    /// Creates accounts.
    pub register: Register,
    /// Checks passwords and issues tokens.
    pub login: Login,
    /// Verifies bearer tokens.
    pub authenticate: Authenticate,
    /// Stores secrets.
    pub set_secret: SetSecret,
    /// Reads secrets.
    pub get_secret: GetSecret,
    /// The vault: named, versioned secrets.
    pub vault: Vault,
    /// Lists audit events.
    pub list_audit: ListAudit,
    /// Resolves the caller's account.
    pub who_am_i: WhoAmI,
    /// Reads, updates and deletes accounts.
    pub manage_account: ManageAccount,
    /// Changes passwords.
    pub change_password: ChangePassword,
    /// Rotates refresh tokens.
    pub refresh: Refresh,
    /// Ends the current session.
    pub logout: Logout,
    /// Lists the caller's sessions.
    pub list_sessions: ListSessions,
    /// Ends one of the caller's sessions.
    pub end_session: EndSession,
    /// The rules new passwords must meet.
    pub password_policy: PasswordPolicy,
    /// Where every use case that hashes a password runs.
    pub hashing: HashingPool,
    /// The per-client-IP limit on the credential routes; `None` when turned off.
    pub ip_limiter: Option<IpLimiter>,
    /// How long a request's storage work may take before it is answered with 503
    /// (see [`crate::blocking`]).
    pub work_deadline: Duration,
    /// The same for work on the hashing pool, which also waits for a hashing
    /// thread and hashes.
    pub hashing_deadline: Duration,
    /// Where the client IP is read from.
    pub client_ip: ClientIpSource,
    /// Whether the server speaks HTTPS: the session cookie is then `Secure`, and
    /// the CSRF check expects `https://` origins.
    pub tls: bool,
    /// What handlers count themselves (the middleware counts every request).
    pub metrics: Arc<Metrics>,
}

/// The per-client-IP rate limiter and where it keeps its buckets.
pub struct IpLimiter {
    /// The buckets.
    pub limiter: Arc<dyn RateLimiter>,
    /// Whether taking a token is I/O (Redis), which must not run on the async
    /// workers; the in-memory limiter is only a short lock.
    pub blocks: bool,
}
