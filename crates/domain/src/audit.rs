use std::fmt;

use crate::{Timestamp, UserId};

/// Where a request came from, as far as the audit log is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's IP address, as the HTTP layer determined it; `None` for the
    /// command line.
    pub client_ip: Option<String>,
    /// The client's `User-Agent`, at most [`crate::MAX_USER_AGENT_CHARS`]
    /// characters; recorded on sessions, never in the audit log.
    pub user_agent: Option<String>,
}

impl Origin {
    /// An origin with a client IP.
    pub fn ip(client_ip: impl Into<String>) -> Self {
        Self {
            client_ip: Some(client_ip.into()),
            user_agent: None,
        }
    }

    /// The operator's command line.
    pub fn operator() -> Self {
        Self::default()
    }
}

/// A security-relevant action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// An account was registered.
    Register,
    /// Someone tried to log in.
    Login,
    /// An account was locked after repeated failures.
    Lockout,
    /// A secret was read.
    SecretRead,
    /// A secret was written.
    SecretWrite,
    /// The caller's secrets were listed (names and metadata, never values).
    SecretList,
    /// A secret was soft-deleted.
    SecretDelete,
    /// A soft-deleted secret was restored.
    SecretUndelete,
    /// A secret and all its versions were destroyed.
    SecretDestroy,
    /// An operator granted the admin role.
    AdminGrant,
    /// An operator revoked the admin role.
    AdminRevoke,
    /// A user logged out (ended the session they were using).
    Logout,
    /// A session was ended by its user from another session, or by a password
    /// change.
    SessionEnd,
    /// A refresh token was exchanged for new tokens.
    TokenRefresh,
    /// A spent refresh token was presented again; its session was ended.
    RefreshReuse,
    /// A user changed their password.
    PasswordChange,
    /// An account's data was read through `/user/{username}`.
    UserRead,
    /// An account's data was replaced.
    UserUpdate,
    /// An account was deleted.
    UserDelete,
}

impl AuditAction {
    /// The stable name stored and returned by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
            Self::Lockout => "lockout",
            Self::SecretRead => "secret.read",
            Self::SecretWrite => "secret.write",
            Self::SecretList => "secret.list",
            Self::SecretDelete => "secret.delete",
            Self::SecretUndelete => "secret.undelete",
            Self::SecretDestroy => "secret.destroy",
            Self::AdminGrant => "admin.grant",
            Self::AdminRevoke => "admin.revoke",
            Self::Logout => "logout",
            Self::SessionEnd => "session.end",
            Self::TokenRefresh => "token.refresh",
            Self::RefreshReuse => "refresh.reuse",
            Self::PasswordChange => "password.change",
            Self::UserRead => "user.read",
            Self::UserUpdate => "user.update",
            Self::UserDelete => "user.delete",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Register,
            Self::Login,
            Self::Lockout,
            Self::SecretRead,
            Self::SecretWrite,
            Self::SecretList,
            Self::SecretDelete,
            Self::SecretUndelete,
            Self::SecretDestroy,
            Self::AdminGrant,
            Self::AdminRevoke,
            Self::Logout,
            Self::SessionEnd,
            Self::TokenRefresh,
            Self::RefreshReuse,
            Self::PasswordChange,
            Self::UserRead,
            Self::UserUpdate,
            Self::UserDelete,
        ]
        .into_iter()
        .find(|action| action.as_str() == name)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// It did what was asked.
    Success,
    /// It was refused: wrong credentials, not authorised, not found, a duplicate.
    Failure,
    /// It was refused without being tried, because the account is locked.
    Locked,
}

impl AuditOutcome {
    /// The stable name stored and returned by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Locked => "locked",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Success, Self::Failure, Self::Locked]
            .into_iter()
            .find(|outcome| outcome.as_str() == name)
    }
}

/// One entry of the audit log. It never holds a password, secret, token or key:
/// only who, from where, what, when and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When it happened.
    pub at: Timestamp,
    /// The account concerned, when known.
    pub user_id: Option<UserId>,
    /// Where the request came from.
    pub client_ip: Option<String>,
    /// What was done.
    pub action: AuditAction,
    /// How it ended.
    pub outcome: AuditOutcome,
}

impl AuditEvent {
    /// An event at `at` from `origin`.
    pub fn new(
        at: Timestamp,
        origin: &Origin,
        user_id: Option<UserId>,
        action: AuditAction,
        outcome: AuditOutcome,
    ) -> Self {
        Self {
            at,
            user_id,
            client_ip: origin.client_ip.clone(),
            action,
            outcome,
        }
    }
}

/// A stored audit event and its id, which orders events newest-last and serves
/// as the pagination cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The event's id.
    pub id: String,
    /// The event.
    pub event: AuditEvent,
}

/// A page request for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this user's events; `None` for everyone's.
    pub user: Option<UserId>,
    /// Only events older than this id (the previous page's last id).
    pub before: Option<String>,
    /// At most this many events.
    pub limit: u32,
}
