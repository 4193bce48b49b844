use super::SessionPolicy;
use crate::ports::{HashError, IssuedToken, LockoutPolicy, Ports, TokenError};
use crate::{
    AuditAction, AuditEvent, AuditOutcome, Email, OpaqueToken, Origin, PasswordAttempt, RepoError,
    SessionId, SessionKind, User, UserId, Username,
};

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
    /// The kind of session to open.
    pub kind: SessionKind,
    /// Where the request came from, for the audit log and the session record.
    pub origin: Origin,
}

/// What the holder of a new session presents from now on.
#[derive(Debug)]
pub enum SessionCredentials {
    /// For a bearer session: a short-lived access token and a refresh token.
    Bearer {
        /// The access token.
        access: IssuedToken,
        /// The session's first refresh token.
        refresh: OpaqueToken,
    },
    /// For a cookie session: the cookie's value, valid for `max_age_secs`.
    Cookie {
        /// The cookie's value.
        cookie: OpaqueToken,
        /// Seconds until the session ends.
        max_age_secs: u64,
    },
}

/// A successful login.
#[derive(Debug)]
pub struct LoginSuccess {
    /// Who logged in.
    pub user: User,
    /// The new session.
    pub session_id: SessionId,
    /// What to hand the client.
    pub credentials: SessionCredentials,
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

/// Checks a password and opens a session, locking an account after repeated
/// failures. Audited as `login` (and `lockout` when a lock begins).
pub struct Login {
    ports: Ports,
    lockout: LockoutPolicy,
    sessions: SessionPolicy,
}

/// The attempt-limiter key of an existing account: logins by email and by
/// username, and password changes, all count against it.
pub(crate) fn account_key(id: &UserId) -> String {
    format!("user:{id}")
}

/// The longest identifier text kept as a lockout key for an unknown account.
const MAX_KEY_LEN: usize = 320;

impl Login {
    /// Builds the use case.
    pub fn new(ports: &Ports, lockout: LockoutPolicy, sessions: SessionPolicy) -> Self {
        Self {
            ports: ports.clone(),
            lockout,
            sessions,
        }
    }

    /// Logs in.
    ///
    /// - A locked account answers [`LoginError::Locked`] without checking the
    ///   password, so a guess made while locked learns nothing.
    /// - An unknown or malformed identifier costs exactly one verification against
    ///   the hasher's dummy hash, the same work as a wrong password, and is locked
    ///   out the same way, so neither timing nor lockouts reveal which accounts
    ///   exist.
    /// - A success resets the failure count and opens a session of the kind asked
    ///   for, recording the client IP and user agent.
    pub fn execute(&self, command: LoginCommand) -> Result<LoginSuccess, LoginError> {
        let ports = &self.ports;
        let (user, key) = self.find(&command.identifier)?;
        let user_id = user.as_ref().map(|user| user.id);
        let now = ports.clock.now();
        let audit = |action, outcome| {
            ports.audit.record(AuditEvent::new(
                now,
                &command.origin,
                user_id,
                action,
                outcome,
            ));
        };
        if let Some(retry_after_secs) = ports.attempts.locked_for(&key, now)? {
            audit(AuditAction::Login, AuditOutcome::Locked);
            return Err(LoginError::Locked { retry_after_secs });
        }
        let hash = user.as_ref().map_or_else(
            || ports.hasher.dummy_hash(),
            |user| user.password_hash.clone(),
        );
        let verified = ports.hasher.verify(&command.password, &hash)?;
        let Some(user) = user.filter(|_| verified) else {
            audit(AuditAction::Login, AuditOutcome::Failure);
            if ports.attempts.record_failure(&key, now, &self.lockout)? {
                audit(AuditAction::Lockout, AuditOutcome::Success);
            }
            return Err(LoginError::InvalidCredentials);
        };
        ports.attempts.reset(&key)?;
        let session = self
            .sessions
            .open(&user.id, command.kind, &command.origin, now);
        let (opaque, digest) = ports.opaque_tokens.generate()?;
        ports.sessions.create(&session, &digest)?;
        let credentials = match command.kind {
            SessionKind::Bearer => SessionCredentials::Bearer {
                access: ports.tokens.issue(&user.id, &session.id)?,
                refresh: opaque,
            },
            SessionKind::Cookie => SessionCredentials::Cookie {
                cookie: opaque,
                max_age_secs: self.sessions.ttl_secs,
            },
        };
        audit(AuditAction::Login, AuditOutcome::Success);
        Ok(LoginSuccess {
            user,
            session_id: session.id,
            credentials,
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
            Some(user) => account_key(&user.id),
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
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::ports::{AccessToken, MockAttemptLimiter, MockPasswordHasher, MockUserRepository};
    use crate::usecases::fixtures::{Mocks, RecordingAudit, boom, digest_of, user};
    use crate::{AuditAction as A, AuditOutcome as O, Timestamp};
    use crate::{PasswordHash, Session};

    fn attempt(identifier: LoginIdentifier, password: &str) -> LoginCommand {
        LoginCommand {
            identifier,
            password: PasswordAttempt::new(password.into()),
            kind: SessionKind::Bearer,
            origin: Origin {
                client_ip: Some("198.51.100.7".into()),
                user_agent: Some("curl/8".into()),
            },
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

    /// alice exists (by email and username); her password is "the password";
    /// nothing is locked.
    fn alice_mocks() -> (Mocks, User) {
        let alice = user("alice");
        let mut mocks = Mocks::default();
        let found = alice.clone();
        mocks
            .users
            .expect_find_by_email()
            .withf(|email| email.as_str() == "alice@example.com")
            .returning(move |_| Ok(Some(found.clone())));
        let found = alice.clone();
        mocks
            .users
            .expect_find_by_username()
            .withf(|name| name.as_str() == "alice")
            .returning(move |_| Ok(Some(found.clone())));
        mocks.users.expect_find_by_email().returning(|_| Ok(None));
        mocks
            .users
            .expect_find_by_username()
            .returning(|_| Ok(None));
        mocks
            .hasher
            .expect_dummy_hash()
            .returning(|| PasswordHash("dummy".into()));
        mocks.hasher.expect_verify().returning(|attempt, hash| {
            Ok(hash.0 == "hash-of-alice" && attempt.expose() == "the password")
        });
        mocks
            .attempts
            .expect_locked_for()
            .returning(|_, _| Ok(None));
        (mocks, alice)
    }

    fn run(
        mocks: Mocks,
        command: LoginCommand,
    ) -> (Result<LoginSuccess, LoginError>, RecordingAudit) {
        let (ports, audit) = mocks.ports();
        let result = Login::new(
            &ports,
            LockoutPolicy::default(),
            SessionPolicy { ttl_secs: 600 },
        )
        .execute(command);
        (result, audit)
    }

    /// Expects one opaque token ("opaque") and one session stored with its digest;
    /// returns where the stored session will be put.
    fn expect_session(mocks: &mut Mocks) -> Arc<Mutex<Option<Session>>> {
        mocks
            .opaque_tokens
            .expect_generate()
            .times(1)
            .returning(|| {
                let token = OpaqueToken::new("opaque".into());
                let digest = digest_of(&token);
                Ok((token, digest))
            });
        let stored = Arc::new(Mutex::new(None));
        let sink = stored.clone();
        mocks
            .sessions
            .expect_create()
            .withf(|_, digest| digest.0 == "digest-of-opaque")
            .times(1)
            .returning(move |session, _| {
                *sink.lock().unwrap() = Some(session.clone());
                Ok(())
            });
        stored
    }

    #[test]
    fn the_right_password_opens_a_bearer_session_resets_the_count_and_is_audited() {
        let (mut mocks, alice) = alice_mocks();
        let id = alice.id;
        let key = format!("user:{id}");
        let stored = expect_session(&mut mocks);
        let sink = stored.clone();
        mocks
            .tokens
            .expect_issue()
            .withf(move |subject, session| {
                *subject == id && sink.lock().unwrap().as_ref().map(|s| s.id) == Some(*session)
            })
            .times(1)
            .returning(|_, _| Ok(issued()));
        mocks
            .attempts
            .expect_reset()
            .withf(move |k| k == key)
            .times(1)
            .returning(|_| Ok(()));
        let (result, audit) = run(mocks, by_email("the password"));
        let success = result.unwrap();
        assert_eq!(success.user, alice);
        let session = stored.lock().unwrap().clone().unwrap();
        assert_eq!(success.session_id, session.id);
        assert_eq!(session.user_id, id);
        assert_eq!(session.kind, SessionKind::Bearer);
        assert_eq!(session.created_at, Timestamp(1_000));
        assert_eq!(session.expires_at, Timestamp(1_600));
        assert_eq!(session.client_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(session.user_agent.as_deref(), Some("curl/8"));
        match success.credentials {
            SessionCredentials::Bearer { access, refresh } => {
                assert_eq!(access.token.expose(), "jwt");
                assert_eq!(refresh.expose(), "opaque");
            }
            other => panic!("expected bearer credentials, got {other:?}"),
        }
        assert_eq!(audit.recorded(), [(A::Login, O::Success, Some(id))]);
        assert_eq!(audit.events()[0].client_ip.as_deref(), Some("198.51.100.7"));
    }

    #[test]
    fn a_cookie_login_opens_a_cookie_session_without_an_access_token() {
        let (mut mocks, _) = alice_mocks();
        let stored = expect_session(&mut mocks);
        mocks.tokens.expect_issue().never();
        mocks.attempts.expect_reset().returning(|_| Ok(()));
        let command = LoginCommand {
            kind: SessionKind::Cookie,
            ..by_email("the password")
        };
        let success = run(mocks, command).0.unwrap();
        match success.credentials {
            SessionCredentials::Cookie {
                cookie,
                max_age_secs,
            } => {
                assert_eq!(cookie.expose(), "opaque");
                assert_eq!(max_age_secs, 600);
            }
            other => panic!("expected a cookie, got {other:?}"),
        }
        let session = stored.lock().unwrap().clone().unwrap();
        assert_eq!(session.kind, SessionKind::Cookie);
    }

    #[test]
    fn login_by_username_uses_the_same_account_key() {
        let (mut mocks, alice) = alice_mocks();
        let key = format!("user:{}", alice.id);
        expect_session(&mut mocks);
        mocks.tokens.expect_issue().returning(|_, _| Ok(issued()));
        mocks
            .attempts
            .expect_reset()
            .withf(move |k| k == key)
            .times(1)
            .returning(|_| Ok(()));
        run(
            mocks,
            attempt(LoginIdentifier::Username("ALICE".into()), "the password"),
        )
        .0
        .unwrap();
    }

    #[test]
    fn a_wrong_password_counts_a_failure_against_the_account() {
        let (mut mocks, alice) = alice_mocks();
        let key = format!("user:{}", alice.id);
        mocks
            .attempts
            .expect_record_failure()
            .withf(move |k, now, policy| {
                k == key && *now == Timestamp(1_000) && *policy == LockoutPolicy::default()
            })
            .times(1)
            .returning(|_, _, _| Ok(false));
        let (result, audit) = run(mocks, by_email("not the password"));
        assert!(matches!(result, Err(LoginError::InvalidCredentials)));
        assert_eq!(audit.recorded(), [(A::Login, O::Failure, Some(alice.id))]);
    }

    #[test]
    fn the_failure_that_locks_the_account_is_audited_as_a_lockout() {
        let (mut mocks, alice) = alice_mocks();
        mocks
            .attempts
            .expect_record_failure()
            .returning(|_, _, _| Ok(true));
        let (result, audit) = run(mocks, by_email("not the password"));
        assert!(matches!(result, Err(LoginError::InvalidCredentials)));
        assert_eq!(
            audit.recorded(),
            [
                (A::Login, O::Failure, Some(alice.id)),
                (A::Lockout, O::Success, Some(alice.id))
            ]
        );
    }

    #[test]
    fn an_unknown_account_costs_a_dummy_verification_and_counts_by_identifier() {
        let (mut mocks, _) = alice_mocks();
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
        let (result, audit) = run(mocks, command);
        assert!(matches!(result, Err(LoginError::InvalidCredentials)));
        assert_eq!(audit.recorded(), [(A::Login, O::Failure, None)]);
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
            let (mut mocks, _) = alice_mocks();
            mocks.users = MockUserRepository::new(); // any lookup would panic
            mocks
                .attempts
                .expect_record_failure()
                .withf(move |k, _, _| k == key)
                .times(1)
                .returning(|_, _, _| Ok(false));
            assert!(matches!(
                run(mocks, attempt(identifier, "x")).0,
                Err(LoginError::InvalidCredentials)
            ));
        }
    }

    #[test]
    fn a_locked_account_is_refused_without_checking_the_password() {
        for password in ["the password", "wrong"] {
            let (mut mocks, alice) = alice_mocks();
            mocks.attempts = MockAttemptLimiter::new();
            mocks
                .attempts
                .expect_locked_for()
                .returning(|_, _| Ok(Some(600)));
            mocks.hasher = MockPasswordHasher::new(); // any verification would panic
            let (result, audit) = run(mocks, by_email(password));
            assert!(matches!(
                result,
                Err(LoginError::Locked {
                    retry_after_secs: 600
                })
            ));
            assert_eq!(audit.recorded(), [(A::Login, O::Locked, Some(alice.id))]);
        }
    }

    #[test]
    fn an_overlong_unknown_identifier_makes_a_bounded_key() {
        let (mut mocks, _) = alice_mocks();
        mocks
            .attempts
            .expect_record_failure()
            .withf(|k, _, _| k.len() <= "login:".len() + MAX_KEY_LEN)
            .times(1)
            .returning(|_, _, _| Ok(false));
        let long = "é".repeat(1000);
        assert!(matches!(
            run(mocks, attempt(LoginIdentifier::Username(long), "x")).0,
            Err(LoginError::InvalidCredentials)
        ));
    }

    #[test]
    fn failures_of_the_ports_are_not_invalid_credentials() {
        let (mut mocks, _) = alice_mocks();
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_by_email()
            .returning(|_| Err(RepoError::Unavailable(boom())));
        assert!(matches!(
            run(mocks, by_email("the password")).0,
            Err(LoginError::Repository(_))
        ));

        let (mut mocks, _) = alice_mocks();
        mocks.attempts = MockAttemptLimiter::new();
        mocks
            .attempts
            .expect_locked_for()
            .returning(|_, _| Err(RepoError::Unavailable(boom())));
        assert!(matches!(
            run(mocks, by_email("the password")).0,
            Err(LoginError::Repository(_))
        ));

        let (mut mocks, _) = alice_mocks();
        mocks.hasher = MockPasswordHasher::new();
        mocks
            .hasher
            .expect_verify()
            .returning(|_, _| Err(HashError(boom())));
        assert!(matches!(
            run(mocks, by_email("the password")).0,
            Err(LoginError::Hashing(_))
        ));

        let (mut mocks, _) = alice_mocks();
        mocks.attempts.expect_reset().returning(|_| Ok(()));
        expect_session(&mut mocks);
        mocks
            .tokens
            .expect_issue()
            .returning(|_, _| Err(TokenError::Failure(boom())));
        assert!(matches!(
            run(mocks, by_email("the password")).0,
            Err(LoginError::Token(_))
        ));

        let (mut mocks, _) = alice_mocks();
        mocks.attempts.expect_reset().returning(|_| Ok(()));
        mocks
            .opaque_tokens
            .expect_generate()
            .returning(|| Err(TokenError::Failure(boom())));
        assert!(matches!(
            run(mocks, by_email("the password")).0,
            Err(LoginError::Token(_))
        ));
    }
}
