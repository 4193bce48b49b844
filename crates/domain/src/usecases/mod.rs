//! The use cases: one struct per operation, each holding the ports it needs and
//! exposing a synchronous `execute`. Each has its own error enum so that callers
//! must decide what every failure means to them.
//!
//! Use cases block (they hash, query and encrypt), so async callers run them on a
//! blocking thread.

mod accounts;
mod authenticate;
mod change_password;
mod get_secret;
mod keys;
mod list_audit;
mod login;
mod register;
mod sessions;
mod set_role;
mod set_secret;
mod vault;

pub use accounts::{ManageAccount, ManageAccountError};
pub use authenticate::{Authenticate, AuthenticateError};
pub use change_password::{ChangePassword, ChangePasswordError};
pub use get_secret::{GetSecret, GetSecretError};
pub use keys::{MasterKeyStatus, RotateKeys, RotateKeysError, RotationProgress};
pub use list_audit::{ListAudit, ListAuditError, MAX_AUDIT_PAGE};
pub use login::{
    Login, LoginCommand, LoginError, LoginIdentifier, LoginSuccess, SessionCredentials,
};
pub use register::{Register, RegisterCommand, RegisterError};
pub use sessions::{
    CurrentSession, EndSession, EndSessionError, ListSessions, Logout, Refresh, RefreshError,
    Refreshed, SessionError, SessionPolicy, WhoAmI,
};
pub use set_role::{SetRole, SetRoleError};
pub use set_secret::{SetSecret, SetSecretError};
pub use vault::{OpenedSecret, Precondition, PutSecret, SecretPage, Vault, VaultError, Written};

use crate::ports::Ports;
use crate::{Credential, RepoError, Session, Timestamp, User, Username, WrappedDataKey};

/// How stale a session's `last_used_at` may get before a request rewrites it: a
/// read costs no write, and the listing is still right to the minute.
const TOUCH_EVERY_SECS: i64 = 60;

/// The live session `credential` belongs to, or `Ok(None)` when it belongs to
/// none: the session ended, expired, or (for an access token) belongs to another
/// user than the token names. Records the use at most once a minute.
fn live_session(
    ports: &Ports,
    credential: &Credential,
    now: Timestamp,
) -> Result<Option<Session>, RepoError> {
    let session = match credential {
        Credential::Access {
            user_id,
            session_id,
        } => ports
            .sessions
            .find(session_id)?
            .filter(|session| session.user_id == *user_id),
        Credential::Cookie(cookie) => ports
            .sessions
            .find_by_cookie(&ports.opaque_tokens.digest(cookie))?,
    };
    let Some(session) = session.filter(|session| session.is_live(now)) else {
        return Ok(None);
    };
    if needs_touch(&session, now) {
        ports.sessions.touch(&session.id, now)?;
    }
    Ok(Some(session))
}

/// Whether a use of `session` at `now` must be recorded ([`TOUCH_EVERY_SECS`]).
fn needs_touch(session: &Session, now: Timestamp) -> bool {
    now.as_secs() - session.last_used_at.as_secs() >= TOUCH_EVERY_SECS
}

/// [`live_session`] without blocking, for the reads that can be answered from
/// memory: the session when the sessions port holds it in memory, it is live,
/// it belongs to the token's user and its use needs no recording. `None` in
/// every other case, whatever the reason: the caller then takes the blocking
/// path, which gives the precise answer.
fn live_session_in_memory(
    ports: &Ports,
    credential: &Credential,
    now: Timestamp,
) -> Option<Session> {
    let session = match credential {
        Credential::Access {
            user_id,
            session_id,
        } => ports
            .sessions
            .find_in_memory(session_id)
            .filter(|session| session.user_id == *user_id)?,
        Credential::Cookie(cookie) => ports
            .sessions
            .find_by_cookie_in_memory(&ports.opaque_tokens.digest(cookie))?,
    };
    (session.is_live(now) && !needs_touch(&session, now)).then_some(session)
}

/// Resolves the caller's live session and account (with their data key) and checks
/// that `claimed_username` is the caller's own. `Ok(None)` means "not authorised":
/// the session ended, the account is gone, or the claim names somebody else (or
/// nobody valid).
fn caller_owning(
    ports: &Ports,
    credential: &Credential,
    claimed_username: &str,
    now: Timestamp,
) -> Result<Option<(User, Option<WrappedDataKey>)>, RepoError> {
    let Ok(claimed) = Username::parse(claimed_username) else {
        return Ok(None);
    };
    let Some(session) = live_session(ports, credential, now)? else {
        return Ok(None);
    };
    Ok(ports
        .users
        .find_with_data_key(&session.user_id)?
        .filter(|(user, _)| user.username == claimed))
}

/// The caller's live session and account, or `Ok(None)` when the credential no
/// longer stands for anyone.
fn caller(
    ports: &Ports,
    credential: &Credential,
    now: Timestamp,
) -> Result<Option<(Session, User)>, RepoError> {
    let Some(session) = live_session(ports, credential, now)? else {
        return Ok(None);
    };
    Ok(ports
        .users
        .find_by_id(&session.user_id)?
        .map(|user| (session, user)))
}

#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::{Arc, Mutex};

    use crate::ports::{
        AuditLog, AuditRefused, Clock, MockAttemptLimiter, MockOpaqueTokens, MockPasswordHasher,
        MockSecretCipher, MockSecretRepository, MockSessionRepository, MockTokenIssuer,
        MockUserRepository, Ports,
    };
    use crate::{
        AuditAction, AuditEvent, AuditOutcome, AuditQuery, AuditRecord, Credential, DataKeyId,
        Email, KeyId, OpaqueToken, PasswordHash, RepoError, Role, SealedData, Session, SessionId,
        SessionKind, Timestamp, TokenDigest, User, UserData, UserId, Username, WrappedDataKey,
    };

    pub fn user(name: &str) -> User {
        User {
            id: UserId::generate(),
            username: Username::parse(name).unwrap(),
            email: Some(Email::parse(&format!("{name}@example.com")).unwrap()),
            password_hash: PasswordHash(format!("hash-of-{name}")),
            role: Role::User,
            data: UserData::empty(),
            created_at: Timestamp(1_700_000_000),
        }
    }

    /// A live bearer session of `user`, last used at the mocks' default now.
    pub fn session_of(user: &User) -> Session {
        session_for(user.id)
    }

    /// A live bearer session of the user `user_id`.
    pub fn session_for(user_id: UserId) -> Session {
        Session {
            id: SessionId::generate(),
            user_id,
            kind: SessionKind::Bearer,
            created_at: Timestamp(900),
            last_used_at: Timestamp(1_000),
            expires_at: Timestamp(90_000),
            client_ip: None,
            user_agent: None,
        }
    }

    /// The access-token credential of `session`.
    pub fn credential(session: &Session) -> Credential {
        Credential::Access {
            user_id: session.user_id,
            session_id: session.id,
        }
    }

    /// The digest the mocked [`MockOpaqueTokens`] gives `token`.
    pub fn digest_of(token: &OpaqueToken) -> TokenDigest {
        TokenDigest(format!("digest-of-{}", token.expose()))
    }

    pub fn data_key() -> WrappedDataKey {
        WrappedDataKey {
            id: DataKeyId::generate(),
            sealed: SealedData {
                key_id: KeyId("master-1".into()),
                bytes: vec![1; 60],
            },
        }
    }

    pub fn boom() -> crate::BoxError {
        "boom".into()
    }

    pub struct FixedClock(pub Timestamp);

    impl Clock for FixedClock {
        fn now(&self) -> Timestamp {
            self.0
        }
    }

    /// What a [`RecordingAudit`] saw: (action, outcome, user) per event.
    pub type Recorded = Vec<(AuditAction, AuditOutcome, Option<UserId>)>;

    /// An audit log that remembers what it was given; a refusing one turns
    /// down every `record_or_refuse`, as a log that is behind does.
    #[derive(Clone, Default)]
    pub struct RecordingAudit(Arc<Mutex<Vec<AuditEvent>>>, bool);

    impl RecordingAudit {
        pub fn refusing() -> Self {
            Self(Arc::default(), true)
        }

        pub fn recorded(&self) -> Recorded {
            self.0
                .lock()
                .unwrap()
                .iter()
                .map(|event| (event.action, event.outcome, event.user_id))
                .collect()
        }

        pub fn events(&self) -> Vec<AuditEvent> {
            self.0.lock().unwrap().clone()
        }
    }

    impl AuditLog for RecordingAudit {
        fn record(&self, event: AuditEvent) {
            self.0.lock().unwrap().push(event);
        }

        fn record_or_refuse(&self, event: AuditEvent) -> Result<(), AuditRefused> {
            if self.1 {
                return Err(AuditRefused);
            }
            self.record(event);
            Ok(())
        }

        fn list(&self, _: &AuditQuery) -> Result<Vec<AuditRecord>, RepoError> {
            unreachable!("use cases under test do not list through RecordingAudit")
        }

        fn prune(&self, _: Timestamp) -> Result<u64, RepoError> {
            Ok(0)
        }
    }

    /// A mock of every port; a test sets expectations on the ones it uses (an
    /// unexpected call panics), then builds [`Ports`].
    pub struct Mocks {
        pub users: MockUserRepository,
        pub secrets: MockSecretRepository,
        pub hasher: MockPasswordHasher,
        pub cipher: MockSecretCipher,
        pub tokens: MockTokenIssuer,
        pub sessions: MockSessionRepository,
        pub opaque_tokens: MockOpaqueTokens,
        pub attempts: MockAttemptLimiter,
        pub audit: RecordingAudit,
        pub now: Timestamp,
    }

    impl Default for Mocks {
        fn default() -> Self {
            Self {
                users: MockUserRepository::new(),
                secrets: MockSecretRepository::new(),
                hasher: MockPasswordHasher::new(),
                cipher: MockSecretCipher::new(),
                tokens: MockTokenIssuer::new(),
                sessions: MockSessionRepository::new(),
                opaque_tokens: MockOpaqueTokens::new(),
                attempts: MockAttemptLimiter::new(),
                audit: RecordingAudit::default(),
                now: Timestamp(1_000),
            }
        }
    }

    impl Mocks {
        /// Expects lookups of `session` by id and answers with it.
        pub fn with_session(mut self, session: &Session) -> Self {
            let found = session.clone();
            self.sessions
                .expect_find()
                .withf(move |id| *id == found.id)
                .returning(move |_| Ok(Some(found.clone())));
            self
        }

        /// Digests opaque tokens as [`digest_of`] does.
        pub fn with_digests(mut self) -> Self {
            self.opaque_tokens.expect_digest().returning(digest_of);
            self
        }

        pub fn ports(self) -> (Ports, RecordingAudit) {
            let audit = self.audit.clone();
            let ports = Ports {
                users: Arc::new(self.users),
                secrets: Arc::new(self.secrets),
                hasher: Arc::new(self.hasher),
                cipher: Arc::new(self.cipher),
                tokens: Arc::new(self.tokens),
                sessions: Arc::new(self.sessions),
                opaque_tokens: Arc::new(self.opaque_tokens),
                attempts: Arc::new(self.attempts),
                audit: Arc::new(self.audit),
                clock: Arc::new(FixedClock(self.now)),
            };
            (ports, audit)
        }
    }
}
