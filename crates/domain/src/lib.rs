//! # safebox-domain
//!
//! The heart of safebox: entities ([`User`], [`Secret`]), validated value types
//! ([`Username`], [`Email`], [`Password`], [`SecretValue`], …), the ports that adapters
//! implement ([`ports`]) and the use cases that drive them ([`usecases`]).
//!
//! This crate performs no I/O and depends on no web framework, database driver or
//! cryptography library. Everything that touches the outside world is a synchronous
//! trait in [`ports`]; the `mocks` feature exposes a mockall mock of each one so that
//! embedding services can unit-test against them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod crypto;
mod error;
mod password;
pub mod ports;
mod secret;
mod session;
mod time;
pub mod usecases;
mod user;

pub use audit::{AuditAction, AuditEvent, AuditOutcome, AuditQuery, AuditRecord, Origin};
pub use crypto::{DataKeyId, KeyId, SealedData, WrappedDataKey};
pub use error::{BoxError, RepoError, ValidationError};
pub use password::{
    MAX_PASSWORD_BYTES, Password, PasswordAttempt, PasswordHash, PasswordOwner, PasswordPolicy,
    breach_key,
};
pub use secret::{
    Secret, SecretListQuery, SecretMetadata, SecretName, SecretValue, SecretVersion, StoredVersion,
    VaultLimits,
};
pub use session::{
    Credential, MAX_USER_AGENT_CHARS, OpaqueToken, Session, SessionId, SessionKind, TokenDigest,
};
pub use time::Timestamp;
pub use user::{Email, NewUser, Role, User, UserData, UserId, Username};
