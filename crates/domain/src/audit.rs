use std::fmt;

use crate::{Timestamp, UserId};

/// Where a request came from, as far as the audit log is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's IP address, as the HTTP layer determined it; `None` for the
    /// command line.
    pub client_ip: Option<String>,
}

impl Origin {
    /// An origin with a client IP.
    pub fn ip(client_ip: impl Into<String>) -> Self {
        Self {
            client_ip: Some(client_ip.into()),
        }
    }

    /// The operator's command line.
    pub fn operator() -> Self {
        Self { client_ip: None }
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
    /// An operator granted the admin role.
    AdminGrant,
    /// An operator revoked the admin role.
    AdminRevoke,
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
            Self::AdminGrant => "admin.grant",
            Self::AdminRevoke => "admin.revoke",
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
            Self::AdminGrant,
            Self::AdminRevoke,
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
