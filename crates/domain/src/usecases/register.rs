use std::sync::Arc;

use crate::ports::{
    CipherError, Clock, CreateUserError, HashError, PasswordHasher, SecretCipher, UserRepository,
};
use crate::{Email, NewUser, Password, RepoError, User, UserId, Username};

/// A validated registration.
#[derive(Debug)]
pub struct RegisterCommand {
    /// The new account's e-mail address.
    pub email: Email,
    /// The new account's username.
    pub username: Username,
    /// The new account's password, already checked against the policy.
    pub password: Password,
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
/// both atomically.
pub struct Register {
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn PasswordHasher>,
    cipher: Arc<dyn SecretCipher>,
    clock: Arc<dyn Clock>,
}

impl Register {
    /// Builds the use case.
    pub fn new(
        users: Arc<dyn UserRepository>,
        hasher: Arc<dyn PasswordHasher>,
        cipher: Arc<dyn SecretCipher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            users,
            hasher,
            cipher,
            clock,
        }
    }

    /// Registers the account and returns its id.
    ///
    /// Duplicates are looked for before hashing, so a flood of registrations for
    /// existing accounts costs no bcrypt work; the repository's unique indexes still
    /// decide a race between two concurrent registrations.
    pub fn execute(&self, command: RegisterCommand) -> Result<UserId, RegisterError> {
        if self.users.find_by_email(&command.email)?.is_some() {
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
            created_at: self.clock.now(),
        };
        self.users.create(&NewUser { user, data_key })?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockClock, MockPasswordHasher, MockSecretCipher, MockUserRepository};
    use crate::usecases::fixtures::{boom, data_key, user};
    use crate::{PasswordHash, PasswordOwner, PasswordPolicy, Timestamp};

    fn command() -> RegisterCommand {
        RegisterCommand {
            email: Email::parse("new@example.com").unwrap(),
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
        }
    }

    struct Mocks {
        users: MockUserRepository,
        hasher: MockPasswordHasher,
        cipher: MockSecretCipher,
        clock: MockClock,
    }

    impl Mocks {
        /// No account exists yet; hashing, key generation and the clock work.
        fn happy() -> Self {
            let mut users = MockUserRepository::new();
            users.expect_find_by_email().returning(|_| Ok(None));
            users.expect_find_by_username().returning(|_| Ok(None));
            let mut hasher = MockPasswordHasher::new();
            hasher
                .expect_hash()
                .withf(|password| password.expose() == "a long enough password")
                .returning(|_| Ok(PasswordHash("$2b$hash".into())));
            let mut cipher = MockSecretCipher::new();
            cipher.expect_new_data_key().returning(|_| Ok(data_key()));
            let mut clock = MockClock::new();
            clock.expect_now().returning(|| Timestamp(42));
            Self {
                users,
                hasher,
                cipher,
                clock,
            }
        }

        fn run(self) -> Result<UserId, RegisterError> {
            Register::new(
                Arc::new(self.users),
                Arc::new(self.hasher),
                Arc::new(self.cipher),
                Arc::new(self.clock),
            )
            .execute(command())
        }
    }

    #[test]
    fn stores_the_hash_and_a_data_key_bound_to_the_new_id() {
        let mut mocks = Mocks::happy();
        mocks.cipher = MockSecretCipher::new();
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
                    && new.user.email.as_str() == "new@example.com"
                    && new.user.password_hash == PasswordHash("$2b$hash".into())
                    && new.user.created_at == Timestamp(42)
                    && new.data_key == expected_key
            })
            .times(1)
            .returning(|_| Ok(()));
        mocks.run().unwrap();
    }

    #[test]
    fn a_taken_email_is_refused_before_any_hashing() {
        let mut mocks = Mocks::happy();
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_by_email()
            .returning(|_| Ok(Some(user("someone"))));
        mocks.hasher = MockPasswordHasher::new(); // any hash call would panic
        assert!(matches!(mocks.run(), Err(RegisterError::EmailTaken)));
    }

    #[test]
    fn a_taken_username_is_refused_before_any_hashing() {
        let mut mocks = Mocks::happy();
        mocks.users = MockUserRepository::new();
        mocks.users.expect_find_by_email().returning(|_| Ok(None));
        mocks
            .users
            .expect_find_by_username()
            .returning(|_| Ok(Some(user("newbie"))));
        mocks.hasher = MockPasswordHasher::new();
        assert!(matches!(mocks.run(), Err(RegisterError::UsernameTaken)));
    }

    #[test]
    fn a_race_lost_at_the_unique_index_is_still_a_duplicate() {
        let mut mocks = Mocks::happy();
        mocks
            .users
            .expect_create()
            .returning(|_| Err(CreateUserError::UsernameTaken));
        assert!(matches!(mocks.run(), Err(RegisterError::UsernameTaken)));

        let mut mocks = Mocks::happy();
        mocks
            .users
            .expect_create()
            .returning(|_| Err(CreateUserError::EmailTaken));
        assert!(matches!(mocks.run(), Err(RegisterError::EmailTaken)));
    }

    #[test]
    fn storage_failures_surface_as_repository_errors() {
        let mut mocks = Mocks::happy();
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_by_email()
            .returning(|_| Err(RepoError::Unavailable(boom())));
        assert!(matches!(mocks.run(), Err(RegisterError::Repository(_))));

        let mut mocks = Mocks::happy();
        mocks
            .users
            .expect_create()
            .returning(|_| Err(CreateUserError::Repository(RepoError::internal(boom()))));
        assert!(matches!(mocks.run(), Err(RegisterError::Repository(_))));
    }

    #[test]
    fn hashing_and_key_failures_stop_the_registration() {
        let mut mocks = Mocks::happy();
        mocks.hasher = MockPasswordHasher::new();
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Err(HashError(boom())));
        assert!(matches!(mocks.run(), Err(RegisterError::Hashing(_))));

        let mut mocks = Mocks::happy();
        mocks.cipher = MockSecretCipher::new();
        mocks
            .cipher
            .expect_new_data_key()
            .returning(|_| Err(CipherError::Failure(boom())));
        assert!(matches!(mocks.run(), Err(RegisterError::Cipher(_))));
    }
}
