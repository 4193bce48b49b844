use std::sync::Arc;

use crate::ports::{
    AttemptLimiter, Clock, HashError, IssuedToken, LockoutPolicy, PasswordHasher, TokenError,
    TokenIssuer, UserRepository,
};
use crate::{Email, PasswordAttempt, RepoError, User, UserId, Username};

/// How the client named the account it is logging in to. The text is not validated:
/// anything that is not a well-formed, existing account simply fails to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginIdentifier {
    /// An e-mail address, as sent.
    Email(String),
    /// A username, as sent.
    Username(String),
}

/// A login attempt.
#[derive(Debug)]
pub struct LoginCommand {
    /// The account.
    pub identifier: LoginIdentifier,
    /// The password offered.
    pub password: PasswordAttempt,
}

/// A successful login.
#[derive(Debug)]
pub struct LoginSuccess {
    /// Who logged in.
    pub user_id: UserId,
    /// Their new access token.
    pub token: IssuedToken,
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown account or wrong password; deliberately indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many recent failures: the account is locked. The password was not
    /// checked, so the answer reveals nothing about it.
    #[error("locked out for {retry_after_secs} s")]
    Locked {
        /// Seconds until the lock lifts.
        retry_after_secs: u64,
    },
    /// The hasher failed.
    #[error(transparent)]
    Hashing(#[from] HashError),
    /// A token could not be issued.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// The ports [`Login`] needs.
pub struct LoginPorts {
    /// Account lookups.
    pub users: Arc<dyn UserRepository>,
    /// Password verification.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Token issuing.
    pub tokens: Arc<dyn TokenIssuer>,
    /// Failure counting and lockout.
    pub attempts: Arc<dyn AttemptLimiter>,
    /// The time, for the lockout window.
    pub clock: Arc<dyn Clock>,
}

/// Checks a password and issues an access token, locking an account after
/// repeated failures.
pub struct Login {
    ports: LoginPorts,
    lockout: LockoutPolicy,
}

/// The longest identifier text kept as a lockout key for an unknown account.
const MAX_KEY_LEN: usize = 320;

impl Login {
    /// Builds the use case.
    pub fn new(ports: LoginPorts, lockout: LockoutPolicy) -> Self {
        Self { ports, lockout }
    }

    /// Logs in.
    ///
    /// - A locked account answers [`LoginError::Locked`] without checking the
    ///   password, so a guess made while locked learns nothing.
    /// - An unknown or malformed identifier costs exactly one verification against
    ///   the hasher's dummy hash, the same work as a wrong password, and is locked
    ///   out the same way, so neither timing nor lockouts reveal which accounts
    ///   exist.
    /// - A success resets the failure count.
    pub fn execute(&self, command: LoginCommand) -> Result<LoginSuccess, LoginError> {
        let ports = &self.ports;
        let (user, key) = self.find(&command.identifier)?;
        let now = ports.clock.now();
        if let Some(retry_after_secs) = ports.attempts.locked_for(&key, now)? {
            return Err(LoginError::Locked { retry_after_secs });
        }
        let hash = user.as_ref().map_or_else(
            || ports.hasher.dummy_hash(),
            |user| user.password_hash.clone(),
        );
        let verified = ports.hasher.verify(&command.password, &hash)?;
        let Some(user) = user.filter(|_| verified) else {
            ports.attempts.record_failure(&key, now, &self.lockout)?;
            return Err(LoginError::InvalidCredentials);
        };
        ports.attempts.reset(&key)?;
        let token = ports.tokens.issue(&user.id)?;
        Ok(LoginSuccess {
            user_id: user.id,
            token,
        })
    }

    /// The account and its lockout key: the user id when the account exists (so
    /// failures by email and by username add up), else the canonical identifier.
    fn find(&self, identifier: &LoginIdentifier) -> Result<(Option<User>, String), RepoError> {
        let users = &self.ports.users;
        let (user, canonical) = match identifier {
            LoginIdentifier::Email(raw) => match Email::parse(raw) {
                Ok(email) => (users.find_by_email(&email)?, email.as_str().to_owned()),
                Err(_) => (None, raw.trim().to_lowercase()),
            },
            LoginIdentifier::Username(raw) => match Username::parse(raw) {
                Ok(name) => (users.find_by_username(&name)?, name.as_str().to_owned()),
                Err(_) => (None, raw.trim().to_lowercase()),
            },
        };
        let key = match &user {
            Some(user) => format!("user:{}", user.id),
            None => {
                let mut canonical = canonical;
                if canonical.len() > MAX_KEY_LEN {
                    let mut end = MAX_KEY_LEN;
                    while !canonical.is_char_boundary(end) {
                        end -= 1;
                    }
                    canonical.truncate(end);
                }
                format!("login:{canonical}")
            }
        };
        Ok((user, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PasswordHash;
    use crate::Timestamp;
    use crate::ports::{
        AccessToken, MockAttemptLimiter, MockClock, MockPasswordHasher, MockTokenIssuer,
        MockUserRepository,
    };
    use crate::usecases::fixtures::{boom, user};

    fn attempt(identifier: LoginIdentifier, password: &str) -> LoginCommand {
        LoginCommand {
            identifier,
            password: PasswordAttempt::new(password.into()),
        }
    }

    fn by_email(password: &str) -> LoginCommand {
        attempt(LoginIdentifier::Email("Alice@Example.com".into()), password)
    }

    fn issued() -> IssuedToken {
        IssuedToken {
            token: AccessToken::new("jwt".into()),
            expires_in: 900,
        }
    }

    struct Mocks {
        alice: User,
        users: MockUserRepository,
        hasher: MockPasswordHasher,
        tokens: MockTokenIssuer,
        attempts: MockAttemptLimiter,
    }

    impl Mocks {
        /// alice exists (by email and username); her password is "the password";
        /// nothing is locked.
        fn new() -> Self {
            let alice = user("alice");
            let mut users = MockUserRepository::new();
            let found = alice.clone();
            users
                .expect_find_by_email()
                .withf(|email| email.as_str() == "alice@example.com")
                .returning(move |_| Ok(Some(found.clone())));
            let found = alice.clone();
            users
                .expect_find_by_username()
                .withf(|name| name.as_str() == "alice")
                .returning(move |_| Ok(Some(found.clone())));
            users.expect_find_by_email().returning(|_| Ok(None));
            users.expect_find_by_username().returning(|_| Ok(None));
            let mut hasher = MockPasswordHasher::new();
            hasher
                .expect_dummy_hash()
                .returning(|| PasswordHash("dummy".into()));
            hasher.expect_verify().returning(|attempt, hash| {
                Ok(hash.0 == "hash-of-alice" && attempt.expose() == "the password")
            });
            let mut attempts = MockAttemptLimiter::new();
            attempts.expect_locked_for().returning(|_, _| Ok(None));
            Self {
                alice,
                users,
                hasher,
                tokens: MockTokenIssuer::new(),
                attempts,
            }
        }

        fn run(self, command: LoginCommand) -> Result<LoginSuccess, LoginError> {
            let mut clock = MockClock::new();
            clock.expect_now().returning(|| Timestamp(1_000));
            Login::new(
                LoginPorts {
                    users: Arc::new(self.users),
                    hasher: Arc::new(self.hasher),
                    tokens: Arc::new(self.tokens),
                    attempts: Arc::new(self.attempts),
                    clock: Arc::new(clock),
                },
                LockoutPolicy::default(),
            )
            .execute(command)
        }
    }

    #[test]
    fn the_right_password_issues_a_token_and_resets_the_count() {
        let mut mocks = Mocks::new();
        let id = mocks.alice.id;
        let key = format!("user:{id}");
        mocks
            .tokens
            .expect_issue()
            .withf(move |subject| *subject == id)
            .times(1)
            .returning(|_| Ok(issued()));
        mocks
            .attempts
            .expect_reset()
            .withf(move |k| k == key)
            .times(1)
            .returning(|_| Ok(()));
        let success = mocks.run(by_email("the password")).unwrap();
        assert_eq!(success.user_id, id);
        assert_eq!(success.token.token.expose(), "jwt");
    }

    #[test]
    fn login_by_username_uses_the_same_account_key() {
        let mut mocks = Mocks::new();
        let key = format!("user:{}", mocks.alice.id);
        mocks.tokens.expect_issue().returning(|_| Ok(issued()));
        mocks
            .attempts
            .expect_reset()
            .withf(move |k| k == key)
            .times(1)
            .returning(|_| Ok(()));
        mocks
            .run(attempt(
                LoginIdentifier::Username("ALICE".into()),
                "the password",
            ))
            .unwrap();
    }

    #[test]
    fn a_wrong_password_counts_a_failure_against_the_account() {
        let mut mocks = Mocks::new();
        let key = format!("user:{}", mocks.alice.id);
        mocks
            .attempts
            .expect_record_failure()
            .withf(move |k, now, policy| {
                k == key && *now == Timestamp(1_000) && *policy == LockoutPolicy::default()
            })
            .times(1)
            .returning(|_, _, _| Ok(false));
        let err = mocks.run(by_email("not the password")).unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[test]
    fn an_unknown_account_costs_a_dummy_verification_and_counts_by_identifier() {
        let mut mocks = Mocks::new();
        mocks.hasher = MockPasswordHasher::new();
        mocks
            .hasher
            .expect_dummy_hash()
            .times(1)
            .returning(|| PasswordHash("dummy".into()));
        mocks
            .hasher
            .expect_verify()
            .withf(|_, hash| hash.0 == "dummy")
            .times(1)
            .returning(|_, _| Ok(false));
        mocks
            .attempts
            .expect_record_failure()
            .withf(|k, _, _| k == "login:nobody@example.com")
            .times(1)
            .returning(|_, _, _| Ok(false));
        let command = attempt(LoginIdentifier::Email("Nobody@Example.com".into()), "x");
        assert!(matches!(
            mocks.run(command),
            Err(LoginError::InvalidCredentials)
        ));
    }

    #[test]
    fn a_malformed_identifier_is_an_unknown_account_without_a_lookup() {
        for (identifier, key) in [
            (
                LoginIdentifier::Email("Not An Email".into()),
                "login:not an email",
            ),
            (
                LoginIdentifier::Username("no spaces".into()),
                "login:no spaces",
            ),
        ] {
            let mut mocks = Mocks::new();
            mocks.users = MockUserRepository::new(); // any lookup would panic
            mocks
                .attempts
                .expect_record_failure()
                .withf(move |k, _, _| k == key)
                .times(1)
                .returning(|_, _, _| Ok(false));
            assert!(matches!(
                mocks.run(attempt(identifier, "x")),
                Err(LoginError::InvalidCredentials)
            ));
        }
    }

    #[test]
    fn a_locked_account_is_refused_without_checking_the_password() {
        for password in ["the password", "wrong"] {
            let mut mocks = Mocks::new();
            mocks.attempts = MockAttemptLimiter::new();
            mocks
                .attempts
                .expect_locked_for()
                .returning(|_, _| Ok(Some(600)));
            mocks.hasher = MockPasswordHasher::new(); // any verification would panic
            let err = mocks.run(by_email(password)).unwrap_err();
            assert!(matches!(
                err,
                LoginError::Locked {
                    retry_after_secs: 600
                }
            ));
        }
    }

    #[test]
    fn an_overlong_unknown_identifier_makes_a_bounded_key() {
        let mut mocks = Mocks::new();
        mocks
            .attempts
            .expect_record_failure()
            .withf(|k, _, _| k.len() <= "login:".len() + MAX_KEY_LEN)
            .times(1)
            .returning(|_, _, _| Ok(false));
        let long = "é".repeat(1000);
        assert!(matches!(
            mocks.run(attempt(LoginIdentifier::Username(long), "x")),
            Err(LoginError::InvalidCredentials)
        ));
    }

    #[test]
    fn failures_of_the_ports_are_not_invalid_credentials() {
        let mut mocks = Mocks::new();
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_by_email()
            .returning(|_| Err(RepoError::Unavailable(boom())));
        assert!(matches!(
            mocks.run(by_email("the password")),
            Err(LoginError::Repository(_))
        ));

        let mut mocks = Mocks::new();
        mocks.attempts = MockAttemptLimiter::new();
        mocks
            .attempts
            .expect_locked_for()
            .returning(|_, _| Err(RepoError::Unavailable(boom())));
        assert!(matches!(
            mocks.run(by_email("the password")),
            Err(LoginError::Repository(_))
        ));

        let mut mocks = Mocks::new();
        mocks.hasher = MockPasswordHasher::new();
        mocks
            .hasher
            .expect_verify()
            .returning(|_, _| Err(HashError(boom())));
        assert!(matches!(
            mocks.run(by_email("the password")),
            Err(LoginError::Hashing(_))
        ));

        let mut mocks = Mocks::new();
        mocks.attempts.expect_reset().returning(|_| Ok(()));
        mocks
            .tokens
            .expect_issue()
            .returning(|_| Err(TokenError::Failure(boom())));
        assert!(matches!(
            mocks.run(by_email("the password")),
            Err(LoginError::Token(_))
        ));
    }
}
