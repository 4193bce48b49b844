use super::caller;
use super::login::account_key;
use crate::ports::{HashError, LockoutPolicy, Ports};
use crate::{
    AuditAction, AuditEvent, AuditOutcome, Credential, Origin, PasswordAttempt, PasswordOwner,
    PasswordPolicy, RepoError, ValidationError,
};

/// Why a password was not changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The credential no longer stands for a live session of an existing account.
    #[error("not authorized")]
    NotAuthorized,
    /// The current password given is wrong. Counts as a failed login.
    #[error("current password is incorrect")]
    WrongPassword,
    /// Too many recent failures: the account is locked and nothing was checked.
    #[error("locked out for {retry_after_secs} s")]
    Locked {
        /// Seconds until the lock lifts.
        retry_after_secs: u64,
    },
    /// The new password breaks the policy.
    #[error(transparent)]
    Policy(#[from] ValidationError),
    /// The hasher failed.
    #[error(transparent)]
    Hashing(#[from] HashError),
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// Changes the caller's own password, proven by the current one, and ends every
/// other session of the account. A wrong current password counts against the
/// account's lockout exactly like a failed login, so a stolen session cannot be used
/// to guess the password. Audited as `password.change` (and `session.end` when
/// other sessions ended).
pub struct ChangePassword {
    ports: Ports,
    policy: PasswordPolicy,
    lockout: LockoutPolicy,
}

impl ChangePassword {
    /// Builds the use case.
    pub fn new(ports: &Ports, policy: PasswordPolicy, lockout: LockoutPolicy) -> Self {
        Self {
            ports: ports.clone(),
            policy,
            lockout,
        }
    }

    /// Replaces the caller's password with `new_password` (checked against the policy
    /// under the field name `new_password`).
    pub fn execute(
        &self,
        credential: &Credential,
        current_password: &PasswordAttempt,
        new_password: String,
        origin: &Origin,
    ) -> Result<(), ChangePasswordError> {
        let ports = &self.ports;
        let now = ports.clock.now();
        let (session, user) =
            caller(ports, credential, now)?.ok_or(ChangePasswordError::NotAuthorized)?;
        let audit = |action, outcome| {
            ports
                .audit
                .record(AuditEvent::new(now, origin, Some(user.id), action, outcome));
        };
        let key = account_key(&user.id);
        if let Some(retry_after_secs) = ports.attempts.locked_for(&key, now)? {
            audit(AuditAction::PasswordChange, AuditOutcome::Locked);
            return Err(ChangePasswordError::Locked { retry_after_secs });
        }
        let new_password = self
            .policy
            .check(
                new_password,
                PasswordOwner {
                    username: &user.username,
                    email: user.email.as_ref(),
                },
            )
            .map_err(|err| ValidationError::new("new_password", err.problem))?;
        if !ports.hasher.verify(current_password, &user.password_hash)? {
            audit(AuditAction::PasswordChange, AuditOutcome::Failure);
            if ports.attempts.record_failure(&key, now, &self.lockout)? {
                audit(AuditAction::Lockout, AuditOutcome::Success);
            }
            return Err(ChangePasswordError::WrongPassword);
        }
        let hash = ports.hasher.hash(&new_password)?;
        if !ports.users.update_password_hash(&user.id, &hash)? {
            return Err(ChangePasswordError::NotAuthorized);
        }
        ports.attempts.reset(&key)?;
        let ended = ports.sessions.end_others(&user.id, &session.id)?;
        audit(AuditAction::PasswordChange, AuditOutcome::Success);
        if ended > 0 {
            audit(AuditAction::SessionEnd, AuditOutcome::Success);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MockPasswordHasher;
    use crate::usecases::fixtures::{Mocks, Recorded, boom, credential, session_of, user};
    use crate::{AuditAction as A, AuditOutcome as O, PasswordHash, Session, User};

    const CURRENT: &str = "the current password";
    const NEW: &str = "a brand new passphrase";

    /// alice is logged in, her password is CURRENT, nothing is locked.
    fn alice_mocks() -> (Mocks, User, Session) {
        let alice = user("alice");
        let session = session_of(&alice);
        let mut mocks = Mocks::default().with_session(&session);
        let found = alice.clone();
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(found.clone())));
        mocks
            .attempts
            .expect_locked_for()
            .returning(|_, _| Ok(None));
        mocks.hasher.expect_verify().returning(|attempt, hash| {
            Ok(hash.0 == "hash-of-alice" && attempt.expose() == CURRENT)
        });
        (mocks, alice, session)
    }

    fn run(
        mocks: Mocks,
        session: &Session,
        current: &str,
        new: &str,
    ) -> (Result<(), ChangePasswordError>, Recorded) {
        let (ports, audit) = mocks.ports();
        let result = ChangePassword::new(
            &ports,
            PasswordPolicy::without_breach_list(12),
            LockoutPolicy::default(),
        )
        .execute(
            &credential(session),
            &PasswordAttempt::new(current.into()),
            new.into(),
            &Origin::default(),
        );
        (result, audit.recorded())
    }

    #[test]
    fn the_right_password_changes_it_and_ends_the_other_sessions() {
        let (mut mocks, alice, session) = alice_mocks();
        mocks
            .hasher
            .expect_hash()
            .withf(|password| password.expose() == NEW)
            .times(1)
            .returning(|_| Ok(PasswordHash("new-hash".into())));
        let id = alice.id;
        mocks
            .users
            .expect_update_password_hash()
            .withf(move |user, hash| *user == id && hash.0 == "new-hash")
            .times(1)
            .returning(|_, _| Ok(true));
        mocks.attempts.expect_reset().times(1).returning(|_| Ok(()));
        let keep = session.id;
        mocks
            .sessions
            .expect_end_others()
            .withf(move |user, kept| *user == id && *kept == keep)
            .times(1)
            .returning(|_, _| Ok(2));
        let (result, recorded) = run(mocks, &session, CURRENT, NEW);
        result.unwrap();
        assert_eq!(
            recorded,
            [
                (A::PasswordChange, O::Success, Some(alice.id)),
                (A::SessionEnd, O::Success, Some(alice.id)),
            ]
        );
    }

    #[test]
    fn a_wrong_current_password_counts_as_a_failed_login() {
        let (mut mocks, alice, session) = alice_mocks();
        let key = format!("user:{}", alice.id);
        mocks
            .attempts
            .expect_record_failure()
            .withf(move |k, _, _| k == key)
            .times(1)
            .returning(|_, _, _| Ok(true));
        mocks.hasher.expect_hash().never();
        let (result, recorded) = run(mocks, &session, "a wrong password!", NEW);
        assert!(matches!(result, Err(ChangePasswordError::WrongPassword)));
        assert_eq!(
            recorded,
            [
                (A::PasswordChange, O::Failure, Some(alice.id)),
                (A::Lockout, O::Success, Some(alice.id)),
            ]
        );
    }

    #[test]
    fn a_locked_account_checks_nothing() {
        let (mut mocks, alice, session) = alice_mocks();
        mocks.attempts = crate::ports::MockAttemptLimiter::new();
        mocks
            .attempts
            .expect_locked_for()
            .returning(|_, _| Ok(Some(30)));
        mocks.hasher = MockPasswordHasher::new(); // any hashing would panic
        let (result, recorded) = run(mocks, &session, CURRENT, NEW);
        assert!(matches!(
            result,
            Err(ChangePasswordError::Locked {
                retry_after_secs: 30
            })
        ));
        assert_eq!(recorded, [(A::PasswordChange, O::Locked, Some(alice.id))]);
    }

    #[test]
    fn the_new_password_must_meet_the_policy_before_any_hashing() {
        for (new, problem) in [
            ("short", "must be at least 12 characters"),
            ("alice-is-my-password", "must not contain the username"),
        ] {
            let (mut mocks, _, session) = alice_mocks();
            mocks.hasher = MockPasswordHasher::new();
            let (result, recorded) = run(mocks, &session, CURRENT, new);
            match result {
                Err(ChangePasswordError::Policy(err)) => {
                    assert_eq!(err.field, "new_password");
                    assert!(err.problem.contains(problem), "{}", err.problem);
                }
                other => panic!("expected a policy refusal, got {other:?}"),
            }
            assert!(recorded.is_empty());
        }
    }

    #[test]
    fn without_a_live_session_it_is_not_authorized() {
        let session = session_of(&user("alice"));
        let mut mocks = Mocks::default();
        mocks.sessions.expect_find().returning(|_| Ok(None));
        let (result, _) = run(mocks, &session, CURRENT, NEW);
        assert!(matches!(result, Err(ChangePasswordError::NotAuthorized)));
    }

    #[test]
    fn hashing_and_store_failures_surface() {
        let (mut mocks, _, session) = alice_mocks();
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Err(HashError(boom())));
        assert!(matches!(
            run(mocks, &session, CURRENT, NEW).0,
            Err(ChangePasswordError::Hashing(_))
        ));

        let (mut mocks, _, session) = alice_mocks();
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash("h".into())));
        mocks
            .users
            .expect_update_password_hash()
            .returning(|_, _| Err(RepoError::Unavailable(boom())));
        assert!(matches!(
            run(mocks, &session, CURRENT, NEW).0,
            Err(ChangePasswordError::Repository(_))
        ));
    }
}
