//! The use cases: one struct per operation, each holding the ports it needs and
//! exposing a synchronous `execute`. Each has its own error enum so that callers
//! must decide what every failure means to them.
//!
//! Use cases block (they hash, query and encrypt), so async callers run them on a
//! blocking thread.

mod authenticate;
mod get_secret;
mod list_audit;
mod login;
mod register;
mod set_role;
mod set_secret;

pub use authenticate::{Authenticate, AuthenticateError, Principal};
pub use get_secret::{GetSecret, GetSecretError};
pub use list_audit::{ListAudit, ListAuditError, MAX_AUDIT_PAGE};
pub use login::{Login, LoginCommand, LoginError, LoginIdentifier, LoginSuccess};
pub use register::{Register, RegisterCommand, RegisterError};
pub use set_role::{SetRole, SetRoleError};
pub use set_secret::{SetSecret, SetSecretError};

use crate::ports::UserRepository;
use crate::{RepoError, User, UserId, Username};

/// Resolves the caller and checks that `claimed_username` is the caller's own.
/// `Ok(None)` means "not authorised": the account is gone, or the claim names
/// somebody else (or nobody valid).
fn caller_owning(
    users: &dyn UserRepository,
    caller: &UserId,
    claimed_username: &str,
) -> Result<Option<User>, RepoError> {
    let Ok(claimed) = Username::parse(claimed_username) else {
        return Ok(None);
    };
    Ok(users
        .find_by_id(caller)?
        .filter(|user| user.username == claimed))
}

#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::{Arc, Mutex};

    use crate::ports::{
        AuditLog, Clock, MockAttemptLimiter, MockPasswordHasher, MockSecretCipher,
        MockSecretRepository, MockTokenIssuer, MockUserRepository, Ports,
    };
    use crate::{
        AuditAction, AuditEvent, AuditOutcome, AuditQuery, AuditRecord, DataKeyId, Email, KeyId,
        PasswordHash, RepoError, Role, SealedData, Timestamp, User, UserId, Username,
        WrappedDataKey,
    };

    pub fn user(name: &str) -> User {
        User {
            id: UserId::generate(),
            username: Username::parse(name).unwrap(),
            email: Email::parse(&format!("{name}@example.com")).unwrap(),
            password_hash: PasswordHash(format!("hash-of-{name}")),
            role: Role::User,
            created_at: Timestamp(1_700_000_000),
        }
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

    /// An audit log that remembers what it was given.
    #[derive(Clone, Default)]
    pub struct RecordingAudit(Arc<Mutex<Vec<AuditEvent>>>);

    impl RecordingAudit {
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
                attempts: MockAttemptLimiter::new(),
                audit: RecordingAudit::default(),
                now: Timestamp(1_000),
            }
        }
    }

    impl Mocks {
        pub fn ports(self) -> (Ports, RecordingAudit) {
            let audit = self.audit.clone();
            let ports = Ports {
                users: Arc::new(self.users),
                secrets: Arc::new(self.secrets),
                hasher: Arc::new(self.hasher),
                cipher: Arc::new(self.cipher),
                tokens: Arc::new(self.tokens),
                attempts: Arc::new(self.attempts),
                audit: Arc::new(self.audit),
                clock: Arc::new(FixedClock(self.now)),
            };
            (ports, audit)
        }
    }
}
