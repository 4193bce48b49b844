use std::sync::Arc;

use crate::ports::{AuditLog, Clock, UserRepository};
use crate::{AuditAction, AuditEvent, AuditOutcome, Origin, RepoError, Role, UserId, Username};

/// Why a role could not be set.
#[derive(Debug, thiserror::Error)]
pub enum SetRoleError {
    /// No account has that username.
    #[error("no such user")]
    NoSuchUser,
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// Grants or revokes the admin role (the operator's `safebox admin` command).
/// Audited as `admin.grant` or `admin.revoke`.
pub struct SetRole {
    users: Arc<dyn UserRepository>,
    audit: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
}

impl SetRole {
    /// Builds the use case from the only three ports it needs, so that the
    /// operator's command line need not load keys or start a hasher.
    pub fn new(
        users: Arc<dyn UserRepository>,
        audit: Arc<dyn AuditLog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            users,
            audit,
            clock,
        }
    }

    /// Gives `username` the role `role`; returns the account's id.
    pub fn execute(
        &self,
        username: &Username,
        role: Role,
        origin: &Origin,
    ) -> Result<UserId, SetRoleError> {
        let action = match role {
            Role::Admin => AuditAction::AdminGrant,
            Role::User => AuditAction::AdminRevoke,
        };
        let result = self.users.set_role(username, role)?;
        let (user_id, outcome) = match result {
            Some(id) => (Some(id), AuditOutcome::Success),
            None => (None, AuditOutcome::Failure),
        };
        self.audit.record(AuditEvent::new(
            self.clock.now(),
            origin,
            user_id,
            action,
            outcome,
        ));
        result.ok_or(SetRoleError::NoSuchUser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usecases::fixtures::{Mocks, Recorded, boom};

    fn run(mocks: Mocks, role: Role) -> (Result<UserId, SetRoleError>, Recorded) {
        let (ports, audit) = mocks.ports();
        let result = SetRole::new(ports.users, ports.audit, ports.clock).execute(
            &Username::parse("carol").unwrap(),
            role,
            &Origin::operator(),
        );
        (result, audit.recorded())
    }

    #[test]
    fn grant_and_revoke_set_the_role_and_are_audited() {
        for (role, action) in [
            (Role::Admin, AuditAction::AdminGrant),
            (Role::User, AuditAction::AdminRevoke),
        ] {
            let id = UserId::generate();
            let mut mocks = Mocks::default();
            mocks
                .users
                .expect_set_role()
                .withf(move |name, r| name.as_str() == "carol" && *r == role)
                .times(1)
                .returning(move |_, _| Ok(Some(id)));
            let (result, recorded) = run(mocks, role);
            assert_eq!(result.unwrap(), id);
            assert_eq!(recorded, [(action, AuditOutcome::Success, Some(id))]);
        }
    }

    #[test]
    fn an_unknown_user_is_reported_and_audited_as_a_failure() {
        let mut mocks = Mocks::default();
        mocks.users.expect_set_role().returning(|_, _| Ok(None));
        let (result, recorded) = run(mocks, Role::Admin);
        assert!(matches!(result, Err(SetRoleError::NoSuchUser)));
        assert_eq!(
            recorded,
            [(AuditAction::AdminGrant, AuditOutcome::Failure, None)]
        );
    }

    #[test]
    fn storage_failures_are_reported() {
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_set_role()
            .returning(|_, _| Err(RepoError::Unavailable(boom())));
        assert!(matches!(
            run(mocks, Role::Admin).0,
            Err(SetRoleError::Repository(_))
        ));
    }
}
