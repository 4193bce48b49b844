use super::caller;
use crate::ports::Ports;
use crate::{
    AuditAction, AuditEvent, AuditOutcome, Credential, Origin, RepoError, Role, Timestamp, User,
    UserData, Username,
};

/// Why an account could not be read, updated or deleted.
#[derive(Debug, thiserror::Error)]
pub enum ManageAccountError {
    /// The credential no longer stands for a live session of an existing account.
    #[error("not authorized")]
    NotAuthorized,
    /// The caller is neither the account's owner nor an admin. Also the answer for
    /// accounts that do not exist, so that it reveals nothing.
    #[error("forbidden")]
    Forbidden,
    /// An admin asked for an account that does not exist.
    #[error("user not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// Reads, updates and deletes accounts: one's own, or any account for an admin.
/// Audited as `user.read`, `user.update` and `user.delete` (with the target
/// account), and refusals as failures (with the caller).
pub struct ManageAccount {
    ports: Ports,
}

impl ManageAccount {
    /// Builds the use case.
    pub fn new(ports: &Ports) -> Self {
        Self {
            ports: ports.clone(),
        }
    }

    /// The account named `target`.
    pub fn get(
        &self,
        credential: &Credential,
        target: &str,
        origin: &Origin,
    ) -> Result<User, ManageAccountError> {
        self.audited(credential, target, origin, AuditAction::UserRead, |user| {
            Ok(user)
        })
    }

    /// Replaces the data of the account named `target`; returns the account as it
    /// is now. Its username, email and password are not changed.
    pub fn update(
        &self,
        credential: &Credential,
        target: &str,
        data: UserData,
        origin: &Origin,
    ) -> Result<User, ManageAccountError> {
        self.audited(
            credential,
            target,
            origin,
            AuditAction::UserUpdate,
            |user| {
                if !self.ports.users.update_data(&user.id, &data)? {
                    return Err(ManageAccountError::NotFound);
                }
                Ok(User { data, ..user })
            },
        )
    }

    /// Deletes the account named `target`: its data key first, then the account,
    /// its secrets and its sessions, so every token of it fails at once.
    pub fn delete(
        &self,
        credential: &Credential,
        target: &str,
        origin: &Origin,
    ) -> Result<(), ManageAccountError> {
        self.audited(
            credential,
            target,
            origin,
            AuditAction::UserDelete,
            |user| {
                // Sessions may be kept outside the database (in Redis), where
                // deleting the account does not reach them. They end first: if
                // the deletion then fails, the account is only logged out.
                self.ports.sessions.end_all(&user.id)?;
                if !self.ports.users.delete(&user.id)? {
                    return Err(ManageAccountError::NotFound);
                }
                Ok(())
            },
        )
    }

    /// Authorises the caller for `target`, runs `action` on the target account and
    /// audits the outcome.
    fn audited<T>(
        &self,
        credential: &Credential,
        target: &str,
        origin: &Origin,
        audit_as: AuditAction,
        action: impl FnOnce(User) -> Result<T, ManageAccountError>,
    ) -> Result<T, ManageAccountError> {
        let now = self.ports.clock.now();
        let (caller, target) = self.authorize(credential, target, now)?;
        let record = |user, outcome| {
            self.ports
                .audit
                .record(AuditEvent::new(now, origin, Some(user), audit_as, outcome));
        };
        match target {
            Ok(user) => {
                let target_id = user.id;
                let result = action(user);
                if result.is_ok() {
                    record(target_id, AuditOutcome::Success);
                }
                result
            }
            Err(refusal) => {
                record(caller.id, AuditOutcome::Failure);
                Err(refusal)
            }
        }
    }

    /// The caller, and the target account or why the caller may not act on it.
    #[allow(clippy::type_complexity)]
    fn authorize(
        &self,
        credential: &Credential,
        target: &str,
        now: Timestamp,
    ) -> Result<(User, Result<User, ManageAccountError>), ManageAccountError> {
        let (_, caller) =
            caller(&self.ports, credential, now)?.ok_or(ManageAccountError::NotAuthorized)?;
        let is_admin = caller.role == Role::Admin;
        let target = match Username::parse(target) {
            Ok(name) if name == caller.username => Ok(caller.clone()),
            Ok(name) if is_admin => self
                .ports
                .users
                .find_by_username(&name)?
                .ok_or(ManageAccountError::NotFound),
            Err(_) if is_admin => Err(ManageAccountError::NotFound),
            Ok(_) | Err(_) => Err(ManageAccountError::Forbidden),
        };
        Ok((caller, target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usecases::fixtures::{Mocks, boom, credential, session_of, user};
    use crate::{AuditAction as A, AuditOutcome as O, Session};

    /// Mocks where `caller` holds a live session and is found by id, and `bob`
    /// exists.
    fn mocks_for(caller: &User, bob: &User) -> (Mocks, Session) {
        let session = session_of(caller);
        let mut mocks = Mocks::default().with_session(&session);
        let found = caller.clone();
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(found.clone())));
        let found = bob.clone();
        mocks
            .users
            .expect_find_by_username()
            .returning(move |name| Ok((*name == found.username).then(|| found.clone())));
        (mocks, session)
    }

    fn admin(name: &str) -> User {
        User {
            role: Role::Admin,
            ..user(name)
        }
    }

    #[test]
    fn owners_read_their_own_account() {
        let alice = user("alice");
        let (mocks, session) = mocks_for(&alice, &user("bob"));
        let (ports, audit) = mocks.ports();
        let got = ManageAccount::new(&ports)
            .get(&credential(&session), "ALICE", &Origin::default())
            .unwrap();
        assert_eq!(got, alice);
        assert_eq!(
            audit.recorded(),
            [(A::UserRead, O::Success, Some(alice.id))]
        );
    }

    #[test]
    fn others_are_forbidden_whether_or_not_the_account_exists() {
        let alice = user("alice");
        let bob = user("bob");
        for target in ["bob", "nobody", "not a name"] {
            let (mut mocks, session) = mocks_for(&alice, &bob);
            mocks.users.expect_update_data().never();
            mocks.users.expect_delete().never();
            let (ports, audit) = mocks.ports();
            let manage = ManageAccount::new(&ports);
            let credential = credential(&session);
            let origin = Origin::default();
            assert!(matches!(
                manage.get(&credential, target, &origin),
                Err(ManageAccountError::Forbidden)
            ));
            assert!(matches!(
                manage.update(&credential, target, UserData::empty(), &origin),
                Err(ManageAccountError::Forbidden)
            ));
            assert!(matches!(
                manage.delete(&credential, target, &origin),
                Err(ManageAccountError::Forbidden)
            ));
            assert_eq!(
                audit.recorded(),
                [
                    (A::UserRead, O::Failure, Some(alice.id)),
                    (A::UserUpdate, O::Failure, Some(alice.id)),
                    (A::UserDelete, O::Failure, Some(alice.id)),
                ]
            );
        }
    }

    #[test]
    fn admins_manage_any_account_and_learn_which_do_not_exist() {
        let root = admin("root");
        let bob = user("bob");
        let (mut mocks, session) = mocks_for(&root, &bob);
        let bob_id = bob.id;
        mocks
            .users
            .expect_update_data()
            .withf(move |id, data| *id == bob_id && data.as_str() == r#"{"a":1}"#)
            .times(1)
            .returning(|_, _| Ok(true));
        mocks
            .users
            .expect_delete()
            .withf(move |id| *id == bob_id)
            .times(1)
            .returning(|_| Ok(true));
        mocks
            .sessions
            .expect_end_all()
            .withf(move |id| *id == bob_id)
            .times(1)
            .returning(|_| Ok(2));
        let (ports, audit) = mocks.ports();
        let manage = ManageAccount::new(&ports);
        let credential = credential(&session);
        let origin = Origin::default();
        assert_eq!(manage.get(&credential, "bob", &origin).unwrap(), bob);
        let data = UserData::parse(r#"{"a":1}"#.into()).unwrap();
        let updated = manage
            .update(&credential, "bob", data.clone(), &origin)
            .unwrap();
        assert_eq!(updated.data, data);
        assert_eq!(updated.username, bob.username);
        manage.delete(&credential, "bob", &origin).unwrap();
        for target in ["nobody", "not a name"] {
            assert!(matches!(
                manage.get(&credential, target, &origin),
                Err(ManageAccountError::NotFound)
            ));
        }
        assert_eq!(
            audit.recorded(),
            [
                (A::UserRead, O::Success, Some(bob.id)),
                (A::UserUpdate, O::Success, Some(bob.id)),
                (A::UserDelete, O::Success, Some(bob.id)),
                (A::UserRead, O::Failure, Some(root.id)),
                (A::UserRead, O::Failure, Some(root.id)),
            ]
        );
    }

    #[test]
    fn an_account_deleted_meanwhile_is_not_found() {
        let alice = user("alice");
        let (mut mocks, session) = mocks_for(&alice, &user("bob"));
        mocks.users.expect_update_data().returning(|_, _| Ok(false));
        mocks.users.expect_delete().returning(|_| Ok(false));
        mocks.sessions.expect_end_all().returning(|_| Ok(0));
        let (ports, audit) = mocks.ports();
        let manage = ManageAccount::new(&ports);
        let credential = credential(&session);
        assert!(matches!(
            manage.update(&credential, "alice", UserData::empty(), &Origin::default()),
            Err(ManageAccountError::NotFound)
        ));
        assert!(matches!(
            manage.delete(&credential, "alice", &Origin::default()),
            Err(ManageAccountError::NotFound)
        ));
        assert!(audit.recorded().is_empty());
    }

    #[test]
    fn without_a_live_session_nothing_is_looked_up() {
        let session = session_of(&user("alice"));
        let mut mocks = Mocks::default();
        mocks.sessions.expect_find().returning(|_| Ok(None));
        let (ports, _) = mocks.ports();
        assert!(matches!(
            ManageAccount::new(&ports).get(&credential(&session), "alice", &Origin::default()),
            Err(ManageAccountError::NotAuthorized)
        ));
    }

    #[test]
    fn store_failures_surface() {
        let root = admin("root");
        let (mut mocks, session) = mocks_for(&root, &user("bob"));
        mocks.users = crate::ports::MockUserRepository::new();
        let found = root.clone();
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(found.clone())));
        mocks
            .users
            .expect_find_by_username()
            .returning(|_| Err(RepoError::Unavailable(boom())));
        let (ports, _) = mocks.ports();
        assert!(matches!(
            ManageAccount::new(&ports).get(&credential(&session), "bob", &Origin::default()),
            Err(ManageAccountError::Repository(_))
        ));
    }
}
