//! The use cases: one struct per operation, each holding the ports it needs and
//! exposing a synchronous `execute`. Each has its own error enum so that callers
//! must decide what every failure means to them.
//!
//! Use cases block (they hash, query and encrypt), so async callers run them on a
//! blocking thread.

mod authenticate;
mod get_secret;
mod login;
mod register;
mod set_secret;

pub use authenticate::{Authenticate, AuthenticateError, Principal};
pub use get_secret::{GetSecret, GetSecretError};
pub use login::{Login, LoginCommand, LoginError, LoginIdentifier, LoginPorts, LoginSuccess};
pub use register::{Register, RegisterCommand, RegisterError};
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
    use crate::{
        DataKeyId, Email, KeyId, PasswordHash, SealedData, Timestamp, User, UserId, Username,
        WrappedDataKey,
    };

    pub fn user(name: &str) -> User {
        User {
            id: UserId::generate(),
            username: Username::parse(name).unwrap(),
            email: Email::parse(&format!("{name}@example.com")).unwrap(),
            password_hash: PasswordHash(format!("hash-of-{name}")),
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
}
