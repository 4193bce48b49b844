use std::sync::Arc;

use crate::ports::{AuditLog, Ports, UserRepository};
use crate::{AuditQuery, AuditRecord, RepoError, Role, UserId};

/// The most events one page may hold.
pub const MAX_AUDIT_PAGE: u32 = 200;

/// Why the audit log could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListAuditError {
    /// The caller's account is gone.
    #[error("not authorized")]
    NotAuthorized,
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// Lists audit events, newest first: the caller's own, or everyone's for an admin.
pub struct ListAudit {
    users: Arc<dyn UserRepository>,
    audit: Arc<dyn AuditLog>,
}

impl ListAudit {
    /// Builds the use case.
    pub fn new(ports: &Ports) -> Self {
        Self {
            users: ports.users.clone(),
            audit: ports.audit.clone(),
        }
    }

    /// One page of at most `limit` events (clamped to 1..=[`MAX_AUDIT_PAGE`]) older
    /// than the event id `before`.
    pub fn execute(
        &self,
        caller: &UserId,
        before: Option<String>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, ListAuditError> {
        let user = self
            .users
            .find_by_id(caller)?
            .ok_or(ListAuditError::NotAuthorized)?;
        let scope = match user.role {
            Role::Admin => None,
            Role::User => Some(user.id),
        };
        Ok(self.audit.list(&AuditQuery {
            user: scope,
            before,
            limit: limit.clamp(1, MAX_AUDIT_PAGE),
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockAuditLog, MockUserRepository};
    use crate::usecases::fixtures::user;

    fn list(
        role: Option<Role>,
        limit: u32,
        expected: AuditQuery,
    ) -> Result<Vec<AuditRecord>, ListAuditError> {
        let mut caller = user("carol");
        if let Some(role) = role {
            caller.role = role;
        }
        let id = caller.id;
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_id()
            .returning(move |_| Ok(role.map(|_| caller.clone())));
        let mut audit = MockAuditLog::new();
        let expected = AuditQuery {
            user: expected.user.map(|_| id),
            ..expected
        };
        audit
            .expect_list()
            .withf(move |query| *query == expected)
            .returning(|_| Ok(Vec::new()));
        let (mut ports, _) = crate::usecases::fixtures::Mocks::default().ports();
        ports.users = Arc::new(users);
        ports.audit = Arc::new(audit);
        ListAudit::new(&ports).execute(&id, Some("cursor".into()), limit)
    }

    #[test]
    fn a_user_sees_only_their_own_events() {
        let own = AuditQuery {
            user: Some(UserId::generate()), // replaced by the caller's id
            before: Some("cursor".into()),
            limit: 50,
        };
        list(Some(Role::User), 50, own).unwrap();
    }

    #[test]
    fn an_admin_sees_everyones_events() {
        let all = AuditQuery {
            user: None,
            before: Some("cursor".into()),
            limit: 50,
        };
        list(Some(Role::Admin), 50, all).unwrap();
    }

    #[test]
    fn the_page_size_is_clamped() {
        for (asked, used) in [(0, 1), (10_000, MAX_AUDIT_PAGE)] {
            let query = AuditQuery {
                user: Some(UserId::generate()),
                before: Some("cursor".into()),
                limit: used,
            };
            list(Some(Role::User), asked, query).unwrap();
        }
    }

    #[test]
    fn a_deleted_caller_is_not_authorized() {
        let mut users = MockUserRepository::new();
        users.expect_find_by_id().returning(|_| Ok(None));
        let (mut ports, _) = crate::usecases::fixtures::Mocks::default().ports();
        ports.users = Arc::new(users);
        ports.audit = Arc::new(MockAuditLog::new());
        assert!(matches!(
            ListAudit::new(&ports).execute(&UserId::generate(), None, 10),
            Err(ListAuditError::NotAuthorized)
        ));
    }
}
