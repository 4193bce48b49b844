use std::sync::Arc;

use crate::ports::{
    HashError, IssuedToken, PasswordHasher, TokenError, TokenIssuer, UserRepository,
};
use crate::{Email, PasswordAttempt, RepoError, UserId, Username};

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

/// Checks a password and issues an access token.
pub struct Login {
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenIssuer>,
}

impl Login {
    /// Builds the use case.
    pub fn new(
        users: Arc<dyn UserRepository>,
        hasher: Arc<dyn PasswordHasher>,
        tokens: Arc<dyn TokenIssuer>,
    ) -> Self {
        Self {
            users,
            hasher,
            tokens,
        }
    }

    /// Logs in. An unknown or malformed identifier costs exactly one verification
    /// against the hasher's dummy hash, the same work as a wrong password, so that
    /// response times do not reveal which accounts exist.
    pub fn execute(&self, command: LoginCommand) -> Result<LoginSuccess, LoginError> {
        let user = match &command.identifier {
            LoginIdentifier::Email(raw) => match Email::parse(raw) {
                Ok(email) => self.users.find_by_email(&email)?,
                Err(_) => None,
            },
            LoginIdentifier::Username(raw) => match Username::parse(raw) {
                Ok(username) => self.users.find_by_username(&username)?,
                Err(_) => None,
            },
        };
        let Some(user) = user else {
            self.hasher
                .verify(&command.password, &self.hasher.dummy_hash())?;
            return Err(LoginError::InvalidCredentials);
        };
        if !self.hasher.verify(&command.password, &user.password_hash)? {
            return Err(LoginError::InvalidCredentials);
        }
        let token = self.tokens.issue(&user.id)?;
        Ok(LoginSuccess {
            user_id: user.id,
            token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PasswordHash;
    use crate::ports::{AccessToken, MockPasswordHasher, MockTokenIssuer, MockUserRepository};
    use crate::usecases::fixtures::{boom, user};

    fn attempt(identifier: LoginIdentifier) -> LoginCommand {
        LoginCommand {
            identifier,
            password: PasswordAttempt::new("the password".into()),
        }
    }

    fn by_email() -> LoginCommand {
        attempt(LoginIdentifier::Email("Alice@Example.com".into()))
    }

    fn issued() -> IssuedToken {
        IssuedToken {
            token: AccessToken::new("jwt".into()),
            expires_in: 900,
        }
    }

    /// A hasher that accepts exactly "the password" against alice's hash and expects
    /// `dummy` dummy verifications.
    fn hasher(dummy: usize) -> MockPasswordHasher {
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_dummy_hash()
            .times(dummy)
            .returning(|| PasswordHash("dummy".into()));
        hasher
            .expect_verify()
            .withf(|_, hash| hash.0 == "dummy")
            .times(dummy)
            .returning(|_, _| Ok(false));
        hasher
            .expect_verify()
            .withf(|_, hash| hash.0 == "hash-of-alice")
            .returning(|attempt, _| Ok(attempt.expose() == "the password"));
        hasher
    }

    fn login(
        users: MockUserRepository,
        hasher: MockPasswordHasher,
        tokens: MockTokenIssuer,
    ) -> Login {
        Login::new(Arc::new(users), Arc::new(hasher), Arc::new(tokens))
    }

    #[test]
    fn the_right_password_by_email_issues_a_token() {
        let alice = user("alice");
        let id = alice.id;
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_email()
            .withf(|email| email.as_str() == "alice@example.com")
            .returning(move |_| Ok(Some(alice.clone())));
        let mut tokens = MockTokenIssuer::new();
        tokens
            .expect_issue()
            .withf(move |subject| *subject == id)
            .times(1)
            .returning(|_| Ok(issued()));
        let success = login(users, hasher(0), tokens).execute(by_email()).unwrap();
        assert_eq!(success.user_id, id);
        assert_eq!(success.token.token.expose(), "jwt");
    }

    #[test]
    fn the_right_password_by_username_issues_a_token() {
        let alice = user("alice");
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_username()
            .withf(|name| name.as_str() == "alice")
            .returning(move |_| Ok(Some(alice.clone())));
        let mut tokens = MockTokenIssuer::new();
        tokens.expect_issue().times(1).returning(|_| Ok(issued()));
        login(users, hasher(0), tokens)
            .execute(attempt(LoginIdentifier::Username("ALICE".into())))
            .unwrap();
    }

    #[test]
    fn a_wrong_password_is_invalid_credentials() {
        let alice = user("alice");
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_email()
            .returning(move |_| Ok(Some(alice.clone())));
        let mut command = by_email();
        command.password = PasswordAttempt::new("not the password".into());
        let err = login(users, hasher(0), MockTokenIssuer::new())
            .execute(command)
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[test]
    fn an_unknown_account_still_costs_one_verification() {
        let mut users = MockUserRepository::new();
        users.expect_find_by_email().returning(|_| Ok(None));
        let err = login(users, hasher(1), MockTokenIssuer::new())
            .execute(by_email())
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[test]
    fn a_malformed_identifier_is_an_unknown_account_without_a_lookup() {
        for identifier in [
            LoginIdentifier::Email("not an email".into()),
            LoginIdentifier::Username("no spaces allowed".into()),
        ] {
            let err = login(MockUserRepository::new(), hasher(1), MockTokenIssuer::new())
                .execute(attempt(identifier))
                .unwrap_err();
            assert!(matches!(err, LoginError::InvalidCredentials));
        }
    }

    #[test]
    fn failures_of_the_ports_are_not_invalid_credentials() {
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_email()
            .returning(|_| Err(RepoError::Unavailable(boom())));
        let err = login(users, MockPasswordHasher::new(), MockTokenIssuer::new())
            .execute(by_email())
            .unwrap_err();
        assert!(matches!(err, LoginError::Repository(_)));

        let alice = user("alice");
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_email()
            .returning(move |_| Ok(Some(alice.clone())));
        let mut broken = MockPasswordHasher::new();
        broken
            .expect_verify()
            .returning(|_, _| Err(HashError(boom())));
        let err = login(users, broken, MockTokenIssuer::new())
            .execute(by_email())
            .unwrap_err();
        assert!(matches!(err, LoginError::Hashing(_)));

        let alice = user("alice");
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_email()
            .returning(move |_| Ok(Some(alice.clone())));
        let mut tokens = MockTokenIssuer::new();
        tokens
            .expect_issue()
            .returning(|_| Err(TokenError::Failure(boom())));
        let err = login(users, hasher(0), tokens)
            .execute(by_email())
            .unwrap_err();
        assert!(matches!(err, LoginError::Token(_)));
    }
}
