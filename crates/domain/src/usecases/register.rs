use std::sync::Arc;

use crate::ports::{
    AuditLog, CipherError, Clock, CreateUserError, HashError, PasswordHasher, Ports, SecretCipher,
    UserRepository,
};
use crate::{
    AuditAction, AuditEvent, AuditOutcome, Email, NewUser, Origin, Password, RepoError, Role, User,
    UserData, UserId, Username,
};

/// A validated registration.
#[derive(Debug)]
pub struct RegisterCommand {
    /// The new account's e-mail address (`POST /register` requires one; `POST /user`
    /// does not).
    pub email: Option<Email>,
    /// The new account's username.
    pub username: Username,
    /// The new account's password, already checked against the policy.
    pub password: Password,
    /// The new account's free-form data.
    pub data: UserData,
    /// Where the request came from, for the audit log.
    pub origin: Origin,
}

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// Another account uses this e-mail address.
    #[error("email already in use")]
    EmailTaken,
    /// Another account uses this username.
    #[error("username already in use")]
    UsernameTaken,
    /// The password could not be hashed.
    #[error(transparent)]
    Hashing(#[from] HashError),
    /// The data key could not be made.
    #[error(transparent)]
    Cipher(#[from] CipherError),
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

impl From<CreateUserError> for RegisterError {
    fn from(err: CreateUserError) -> Self {
        match err {
            CreateUserError::EmailTaken => Self::EmailTaken,
            CreateUserError::UsernameTaken => Self::UsernameTaken,
            CreateUserError::Repository(err) => Self::Repository(err),
        }
    }
}

/// Creates an account: hashes the password, makes the user's data key and stores
/// both atomically. Audited as `register`.
pub struct Register {
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn PasswordHasher>,
    cipher: Arc<dyn SecretCipher>,
    audit: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
}

impl Register {
    /// Builds the use case.
    pub fn new(ports: &Ports) -> Self {
        Self {
            users: ports.users.clone(),
            hasher: ports.hasher.clone(),
            cipher: ports.cipher.clone(),
            audit: ports.audit.clone(),
            clock: ports.clock.clone(),
        }
    }

    /// Registers the account and returns it.
    ///
    /// Duplicates are looked for before hashing, so a flood of registrations for
    /// existing accounts costs no bcrypt work; the repository's unique indexes still
    /// decide a race between two concurrent registrations.
    pub fn execute(&self, command: RegisterCommand) -> Result<User, RegisterError> {
        let origin = command.origin.clone();
        let result = self.register(command);
        let outcome = match &result {
            Ok(user) => Some((Some(user.id), AuditOutcome::Success)),
            Err(RegisterError::EmailTaken | RegisterError::UsernameTaken) => {
                Some((None, AuditOutcome::Failure))
            }
            Err(_) => None,
        };
        if let Some((user_id, outcome)) = outcome {
            self.audit.record(AuditEvent::new(
                self.clock.now(),
                &origin,
                user_id,
                AuditAction::Register,
                outcome,
            ));
        }
        result
    }

    fn register(&self, command: RegisterCommand) -> Result<User, RegisterError> {
        if let Some(email) = &command.email
            && self.users.find_by_email(email)?.is_some()
        {
            return Err(RegisterError::EmailTaken);
        }
        if self.users.find_by_username(&command.username)?.is_some() {
            return Err(RegisterError::UsernameTaken);
        }
        let password_hash = self.hasher.hash(&command.password)?;
        let id = UserId::generate();
        let data_key = self.cipher.new_data_key(&id)?;
        let user = User {
            id,
            username: command.username,
            email: command.email,
            password_hash,
            role: Role::User,
            data: command.data,
            created_at: self.clock.now(),
        };
        let new_user = NewUser { user, data_key };
        self.users.create(&new_user)?;
        Ok(new_user.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usecases::fixtures::{Mocks, boom, data_key, user};
    use crate::{PasswordHash, PasswordOwner, PasswordPolicy, Timestamp};

    fn command() -> RegisterCommand {
        RegisterCommand {
            email: Some(Email::parse("new@example.com").unwrap()),
            username: Username::parse("newbie").unwrap(),
            password: PasswordPolicy::without_breach_list(12)
                .check(
                    "a long enough password".into(),
                    PasswordOwner {
                        username: &Username::parse("newbie").unwrap(),
                        email: None,
                    },
                )
                .unwrap(),
            data: UserData::parse(r#"{"phone":"555"}"#.into()).unwrap(),
            origin: Origin::ip("192.0.2.1"),
        }
    }

    /// No account exists yet; hashing and key generation work.
    fn happy() -> Mocks {
        let mut mocks = Mocks {
            now: Timestamp(42),
            ..Mocks::default()
        };
        mocks.users.expect_find_by_email().returning(|_| Ok(None));
        mocks
            .users
            .expect_find_by_username()
            .returning(|_| Ok(None));
        mocks
            .hasher
            .expect_hash()
            .withf(|password| password.expose() == "a long enough password")
            .returning(|_| Ok(PasswordHash("$2b$hash".into())));
        mocks
            .cipher
            .expect_new_data_key()
            .returning(|_| Ok(data_key()));
        mocks
    }

    fn run(mocks: Mocks) -> (Result<User, RegisterError>, Vec<crate::AuditEvent>) {
        run_command(mocks, command())
    }

    fn run_command(
        mocks: Mocks,
        command: RegisterCommand,
    ) -> (Result<User, RegisterError>, Vec<crate::AuditEvent>) {
        let (ports, audit) = mocks.ports();
        let result = Register::new(&ports).execute(command);
        (result, audit.events())
    }

    #[test]
    fn stores_the_hash_and_a_data_key_and_audits_the_success() {
        let mut mocks = happy();
        mocks.cipher = crate::ports::MockSecretCipher::new();
        let key = data_key();
        let expected_key = key.clone();
        mocks
            .cipher
            .expect_new_data_key()
            .times(1)
            .returning(move |_| Ok(key.clone()));
        mocks
            .users
            .expect_create()
            .withf(move |new| {
                new.user.username.as_str() == "newbie"
                    && new.user.email.as_ref().map(Email::as_str) == Some("new@example.com")
                    && new.user.data.as_str() == r#"{"phone":"555"}"#
                    && new.user.password_hash == PasswordHash("$2b$hash".into())
                    && new.user.role == Role::User
                    && new.user.created_at == Timestamp(42)
                    && new.data_key == expected_key
            })
            .times(1)
            .returning(|_| Ok(()));
        let (result, events) = run(mocks);
        let id = result.unwrap().id;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, AuditAction::Register);
        assert_eq!(events[0].outcome, AuditOutcome::Success);
        assert_eq!(events[0].user_id, Some(id));
        assert_eq!(events[0].client_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(events[0].at, Timestamp(42));
    }

    #[test]
    fn an_account_without_email_skips_the_email_lookup() {
        let mut mocks = happy();
        mocks.users.checkpoint();
        mocks.users.expect_find_by_email().never();
        mocks
            .users
            .expect_find_by_username()
            .returning(|_| Ok(None));
        mocks
            .users
            .expect_create()
            .withf(|new| new.user.email.is_none())
            .times(1)
            .returning(|_| Ok(()));
        let command = RegisterCommand {
            email: None,
            ..command()
        };
        let (result, _) = run_command(mocks, command);
        assert_eq!(result.unwrap().email, None);
    }

    #[test]
    fn a_taken_email_is_refused_before_any_hashing_and_audited() {
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_by_email()
            .returning(|_| Ok(Some(user("someone"))));
        // No hasher expectation: a hash call would panic.
        let (result, events) = run(mocks);
        assert!(matches!(result, Err(RegisterError::EmailTaken)));
        assert_eq!(events[0].outcome, AuditOutcome::Failure);
        assert_eq!(events[0].user_id, None);
    }

    #[test]
    fn a_taken_username_is_refused_before_any_hashing() {
        let mut mocks = Mocks::default();
        mocks.users.expect_find_by_email().returning(|_| Ok(None));
        mocks
            .users
            .expect_find_by_username()
            .returning(|_| Ok(Some(user("newbie"))));
        assert!(matches!(run(mocks).0, Err(RegisterError::UsernameTaken)));
    }

    #[test]
    fn a_race_lost_at_the_unique_index_is_still_a_duplicate() {
        let mut mocks = happy();
        mocks
            .users
            .expect_create()
            .returning(|_| Err(CreateUserError::UsernameTaken));
        assert!(matches!(run(mocks).0, Err(RegisterError::UsernameTaken)));

        let mut mocks = happy();
        mocks
            .users
            .expect_create()
            .returning(|_| Err(CreateUserError::EmailTaken));
        assert!(matches!(run(mocks).0, Err(RegisterError::EmailTaken)));
    }

    #[test]
    fn storage_failures_surface_as_repository_errors_and_are_not_audited() {
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_by_email()
            .returning(|_| Err(RepoError::Unavailable(boom())));
        let (result, events) = run(mocks);
        assert!(matches!(result, Err(RegisterError::Repository(_))));
        assert!(events.is_empty());

        let mut mocks = happy();
        mocks
            .users
            .expect_create()
            .returning(|_| Err(CreateUserError::Repository(RepoError::internal(boom()))));
        assert!(matches!(run(mocks).0, Err(RegisterError::Repository(_))));
    }

    #[test]
    fn hashing_and_key_failures_stop_the_registration() {
        let mut mocks = happy();
        mocks.hasher = crate::ports::MockPasswordHasher::new();
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Err(HashError(boom())));
        assert!(matches!(run(mocks).0, Err(RegisterError::Hashing(_))));

        let mut mocks = happy();
        mocks.cipher = crate::ports::MockSecretCipher::new();
        mocks
            .cipher
            .expect_new_data_key()
            .returning(|_| Err(CipherError::Failure(boom())));
        assert!(matches!(run(mocks).0, Err(RegisterError::Cipher(_))));
    }
}
