use super::caller;
use crate::ports::Ports;
use crate::{AuditQuery, AuditRecord, Credential, RepoError, Role};

/// The most events one page may hold.
pub const MAX_AUDIT_PAGE: u32 = 200;

/// Why the audit log could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListAuditError {
    /// The credential no longer stands for a live session of an existing account.
    #[error("not authorized")]
    NotAuthorized,
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// Lists audit events, newest first: the caller's own, or everyone's for an admin.
pub struct ListAudit {
    ports: Ports,
}

impl ListAudit {
    /// Builds the use case.
    pub fn new(ports: &Ports) -> Self {
        Self {
            ports: ports.clone(),
        }
    }

    /// One page of at most `limit` events (clamped to 1..=[`MAX_AUDIT_PAGE`]) older
    /// than the event id `before`.
    pub fn execute(
        &self,
        credential: &Credential,
        before: Option<String>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, ListAuditError> {
        let (_, user) = caller(&self.ports, credential, self.ports.clock.now())?
            .ok_or(ListAuditError::NotAuthorized)?;
        let scope = match user.role {
            Role::Admin => None,
            Role::User => Some(user.id),
        };
        Ok(self.ports.audit.list(&AuditQuery {
            user: scope,
            before,
            limit: limit.clamp(1, MAX_AUDIT_PAGE),
        })?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::UserId;
    use crate::ports::{MockAuditLog, MockUserRepository};
    use crate::usecases::fixtures::{Mocks, boom, credential, session_of, user};

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
        let session = session_of(&user("carol"));
        let session = crate::Session {
            user_id: id,
            ..session
        };
        let (mut ports, _) = Mocks::default().with_session(&session).ports();
        ports.users = Arc::new(users);
        ports.audit = Arc::new(audit);
        ListAudit::new(&ports).execute(&credential(&session), Some("cursor".into()), limit)
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
        assert!(matches!(
            list(
                None,
                10,
                AuditQuery {
                    user: None,
                    before: None,
                    limit: 10,
                }
            ),
            Err(ListAuditError::NotAuthorized)
        ));
    }

    #[test]
    fn an_ended_session_is_not_authorized() {
        let session = session_of(&user("carol"));
        let mut mocks = Mocks::default();
        mocks.sessions.expect_find().returning(|_| Ok(None));
        let (ports, _) = mocks.ports();
        assert!(matches!(
            ListAudit::new(&ports).execute(&credential(&session), None, 10),
            Err(ListAuditError::NotAuthorized)
        ));
    }

    #[test]
    fn store_failures_surface() {
        let carol = user("carol");
        let session = session_of(&carol);
        let mut mocks = Mocks::default().with_session(&session);
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(carol.clone())));
        let (mut ports, _) = mocks.ports();
        let mut audit = MockAuditLog::new();
        audit
            .expect_list()
            .returning(|_| Err(RepoError::Unavailable(boom())));
        ports.audit = Arc::new(audit);
        assert!(matches!(
            ListAudit::new(&ports).execute(&credential(&session), None, 10),
            Err(ListAuditError::Repository(_))
        ));
    }
}
