use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::redacted;
use crate::{Timestamp, UserId};

/// Identifies one login session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub uuid::Uuid);

impl SessionId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// Parses an id a client sent; `None` when it is not a UUID.
    pub fn parse(raw: &str) -> Option<Self> {
        uuid::Uuid::parse_str(raw).ok().map(Self)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a session's holder authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKind {
    /// API clients: short-lived bearer access tokens plus a rotating refresh token.
    Bearer,
    /// Browsers: one opaque, HttpOnly session cookie.
    Cookie,
}

impl SessionKind {
    /// The stable name stored and returned by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Cookie => "cookie",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "bearer" => Some(Self::Bearer),
            "cookie" => Some(Self::Cookie),
            _ => None,
        }
    }
}

/// A server-side login session. Every access token names one; ending the session
/// ends every credential issued for it at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session's id (the `sid` claim of its access tokens).
    pub id: SessionId,
    /// Whose session it is.
    pub user_id: UserId,
    /// How it authenticates.
    pub kind: SessionKind,
    /// When the user logged in.
    pub created_at: Timestamp,
    /// When it was last used, to the minute.
    pub last_used_at: Timestamp,
    /// Its absolute end; refreshing never moves it.
    pub expires_at: Timestamp,
    /// The client IP of the login.
    pub client_ip: Option<String>,
    /// The `User-Agent` of the login, truncated.
    pub user_agent: Option<String>,
}

impl Session {
    /// Whether the session is still within its lifetime at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }
}

/// An opaque bearer credential (a refresh token or a session cookie): 256 random
/// bits, shown to its holder once and stored only as a [`TokenDigest`].
/// Zeroized on drop; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct OpaqueToken(String);

impl OpaqueToken {
    /// Wraps an encoded token (freshly generated, or as a client presented it).
    pub fn new(encoded: String) -> Self {
        Self(encoded)
    }

    /// The encoded token, for the response writer and the digest only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted(f, "OpaqueToken")
    }
}

/// The one-way digest of an [`OpaqueToken`], which is all the store ever keeps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub String);

/// What a request presented to prove who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A verified access token: its user and session.
    Access {
        /// The token's subject.
        user_id: UserId,
        /// The session the token names.
        session_id: SessionId,
    },
    /// A session cookie, not yet looked up.
    Cookie(OpaqueToken),
}

impl Credential {
    /// The user an access token names (verified as signed, not as live); `None`
    /// for a cookie, which names nobody until it is looked up.
    pub fn claimed_user(&self) -> Option<UserId> {
        match self {
            Self::Access { user_id, .. } => Some(*user_id),
            Self::Cookie(_) => None,
        }
    }
}

/// The most characters of a `User-Agent` a session records.
pub const MAX_USER_AGENT_CHARS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_tokens_are_redacted() {
        for kind in [SessionKind::Bearer, SessionKind::Cookie] {
            assert_eq!(SessionKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(SessionKind::parse("other"), None);
        let token = OpaqueToken::new("very-secret".into());
        assert_eq!(format!("{token:?}"), "OpaqueToken(<redacted>)");
        assert!(SessionId::parse("not-a-uuid").is_none());
        let id = SessionId::generate();
        assert_eq!(SessionId::parse(&id.to_string()), Some(id));
    }
}
