use super::{caller, live_session};
use crate::ports::{IssuedToken, Ports, RefreshRotation, TokenError};
use crate::{
    AuditAction, AuditEvent, AuditOutcome, Credential, MAX_USER_AGENT_CHARS, OpaqueToken, Origin,
    RepoError, Session, SessionId, SessionKind, Timestamp, User, UserId,
};

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session's absolute lifetime in seconds, from login; refreshing never
    /// extends it.
    pub ttl_secs: u64,
}

impl Default for SessionPolicy {
    /// 24 hours.
    fn default() -> Self {
        Self {
            ttl_secs: 24 * 60 * 60,
        }
    }
}

impl SessionPolicy {
    /// A new session of `user` opened at `now` from `origin`.
    pub fn open(
        &self,
        user: &UserId,
        kind: SessionKind,
        origin: &Origin,
        now: Timestamp,
    ) -> Session {
        Session {
            id: SessionId::generate(),
            user_id: *user,
            kind,
            created_at: now,
            last_used_at: now,
            expires_at: now.plus_secs(i64::try_from(self.ttl_secs).unwrap_or(i64::MAX)),
            client_ip: origin.client_ip.clone(),
            user_agent: origin
                .user_agent
                .as_deref()
                .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect()),
        }
    }
}

/// Why a request on the caller's own sessions failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The credential no longer stands for a live session of an existing account.
    #[error("not authorized")]
    NotAuthorized,
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// The caller's live session and account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentSession {
    /// The session the request was authenticated by.
    pub session: Session,
    /// Its account.
    pub user: User,
}

/// Who is calling, if anyone: the account behind a credential. Backs `GET /` and
/// `GET /profile`.
pub struct WhoAmI {
    ports: Ports,
}

impl WhoAmI {
    /// Builds the use case.
    pub fn new(ports: &Ports) -> Self {
        Self {
            ports: ports.clone(),
        }
    }

    /// The caller's session and account; [`SessionError::NotAuthorized`] when the
    /// credential no longer stands for anyone.
    pub fn execute(&self, credential: &Credential) -> Result<CurrentSession, SessionError> {
        let now = self.ports.clock.now();
        let (session, user) =
            caller(&self.ports, credential, now)?.ok_or(SessionError::NotAuthorized)?;
        Ok(CurrentSession { session, user })
    }
}

/// Ends the session the request was authenticated by. Audited as `logout`.
pub struct Logout {
    ports: Ports,
}

impl Logout {
    /// Builds the use case.
    pub fn new(ports: &Ports) -> Self {
        Self {
            ports: ports.clone(),
        }
    }

    /// Ends the caller's current session: every token and cookie of it is refused
    /// from now on.
    pub fn execute(&self, credential: &Credential, origin: &Origin) -> Result<(), SessionError> {
        let now = self.ports.clock.now();
        let session =
            live_session(&self.ports, credential, now)?.ok_or(SessionError::NotAuthorized)?;
        self.ports.sessions.end(&session.id)?;
        self.ports.audit.record(AuditEvent::new(
            now,
            origin,
            Some(session.user_id),
            AuditAction::Logout,
            AuditOutcome::Success,
        ));
        Ok(())
    }
}

/// Lists the caller's live sessions.
pub struct ListSessions {
    ports: Ports,
}

impl ListSessions {
    /// Builds the use case.
    pub fn new(ports: &Ports) -> Self {
        Self {
            ports: ports.clone(),
        }
    }

    /// The caller's live sessions, newest first, and the id of the one this request
    /// was authenticated by.
    pub fn execute(
        &self,
        credential: &Credential,
    ) -> Result<(Vec<Session>, SessionId), SessionError> {
        let now = self.ports.clock.now();
        let current =
            live_session(&self.ports, credential, now)?.ok_or(SessionError::NotAuthorized)?;
        let sessions = self.ports.sessions.list(&current.user_id, now)?;
        Ok((sessions, current.id))
    }
}

/// Why a session could not be ended.
#[derive(Debug, thiserror::Error)]
pub enum EndSessionError {
    /// The credential no longer stands for a live session.
    #[error("not authorized")]
    NotAuthorized,
    /// The caller has no session with that id (it may be somebody else's).
    #[error("session not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// Ends one of the caller's sessions by id. Audited as `session.end`.
pub struct EndSession {
    ports: Ports,
}

impl EndSession {
    /// Builds the use case.
    pub fn new(ports: &Ports) -> Self {
        Self {
            ports: ports.clone(),
        }
    }

    /// Ends the caller's session `target` (the id as the client sent it). Another
    /// user's session is [`EndSessionError::NotFound`], exactly like a missing one.
    pub fn execute(
        &self,
        credential: &Credential,
        target: &str,
        origin: &Origin,
    ) -> Result<(), EndSessionError> {
        let now = self.ports.clock.now();
        let current =
            live_session(&self.ports, credential, now)?.ok_or(EndSessionError::NotAuthorized)?;
        let target = SessionId::parse(target).ok_or(EndSessionError::NotFound)?;
        let owned = self
            .ports
            .sessions
            .find(&target)?
            .is_some_and(|session| session.user_id == current.user_id);
        if !owned || !self.ports.sessions.end(&target)? {
            return Err(EndSessionError::NotFound);
        }
        self.ports.audit.record(AuditEvent::new(
            now,
            origin,
            Some(current.user_id),
            AuditAction::SessionEnd,
            AuditOutcome::Success,
        ));
        Ok(())
    }
}

/// New tokens for a bearer session.
#[derive(Debug)]
pub struct Refreshed {
    /// A fresh access token for the same session.
    pub access: IssuedToken,
    /// The session's new refresh token; the presented one is spent.
    pub refresh: OpaqueToken,
}

/// Why a refresh token was not exchanged.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, of an ended or expired session, or spent (a replay, which has just
    /// ended the whole session).
    #[error("invalid refresh token")]
    Invalid,
    /// A token could not be made.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// Exchanges a refresh token for a new access token and a new refresh token
/// (rotation). A spent refresh token presented again means it was stolen: the whole
/// session ends, including access tokens already issued from it. Audited as
/// `token.refresh`, and `refresh.reuse` on a replay.
pub struct Refresh {
    ports: Ports,
}

impl Refresh {
    /// Builds the use case.
    pub fn new(ports: &Ports) -> Self {
        Self {
            ports: ports.clone(),
        }
    }

    /// Rotates `presented`.
    pub fn execute(
        &self,
        presented: &OpaqueToken,
        origin: &Origin,
    ) -> Result<Refreshed, RefreshError> {
        let ports = &self.ports;
        let now = ports.clock.now();
        let audit = |user: Option<UserId>, action, outcome| {
            ports
                .audit
                .record(AuditEvent::new(now, origin, user, action, outcome));
        };
        let (refresh, replacement) = ports.opaque_tokens.generate()?;
        let rotation = ports.sessions.rotate_refresh(
            &ports.opaque_tokens.digest(presented),
            &replacement,
            now,
        )?;
        let session = match rotation {
            // A session may outlive its account where sessions are kept apart
            // from accounts (Redis): such a session ends here.
            RefreshRotation::Rotated(session)
                if session.is_live(now) && ports.users.find_by_id(&session.user_id)?.is_some() =>
            {
                session
            }
            RefreshRotation::Rotated(expired) => {
                ports.sessions.end(&expired.id)?;
                audit(
                    Some(expired.user_id),
                    AuditAction::TokenRefresh,
                    AuditOutcome::Failure,
                );
                return Err(RefreshError::Invalid);
            }
            RefreshRotation::Reused(session) => {
                ports.sessions.end(&session.id)?;
                audit(
                    Some(session.user_id),
                    AuditAction::RefreshReuse,
                    AuditOutcome::Failure,
                );
                return Err(RefreshError::Invalid);
            }
            RefreshRotation::Unknown => {
                audit(None, AuditAction::TokenRefresh, AuditOutcome::Failure);
                return Err(RefreshError::Invalid);
            }
        };
        let access = ports.tokens.issue(&session.user_id, &session.id)?;
        audit(
            Some(session.user_id),
            AuditAction::TokenRefresh,
            AuditOutcome::Success,
        );
        Ok(Refreshed { access, refresh })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::AccessToken;
    use crate::usecases::fixtures::{
        Mocks, Recorded, boom, credential, digest_of, session_of, user,
    };
    use crate::{AuditAction as A, AuditOutcome as O, TokenDigest};

    fn issued() -> IssuedToken {
        IssuedToken {
            token: AccessToken::new("jwt".into()),
            expires_in: 900,
        }
    }

    #[test]
    fn a_policy_opens_sessions_for_its_lifetime_with_a_bounded_user_agent() {
        let origin = Origin {
            client_ip: Some("192.0.2.1".into()),
            user_agent: Some("é".repeat(1000)),
        };
        let owner = UserId::generate();
        let session = SessionPolicy { ttl_secs: 60 }.open(
            &owner,
            SessionKind::Cookie,
            &origin,
            Timestamp(100),
        );
        assert_eq!(session.user_id, owner);
        assert_eq!(session.kind, SessionKind::Cookie);
        assert_eq!(session.expires_at, Timestamp(160));
        assert_eq!(session.last_used_at, Timestamp(100));
        assert_eq!(session.client_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(
            session.user_agent.as_ref().unwrap().chars().count(),
            MAX_USER_AGENT_CHARS
        );
        assert!(!session.is_live(Timestamp(160)));
        assert_eq!(SessionPolicy::default().ttl_secs, 86_400);
    }

    #[test]
    fn who_am_i_finds_the_account_of_a_live_session() {
        let alice = user("alice");
        let session = session_of(&alice);
        let mut mocks = Mocks::default().with_session(&session);
        let found = alice.clone();
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(found.clone())));
        let (ports, _) = mocks.ports();
        let current = WhoAmI::new(&ports).execute(&credential(&session)).unwrap();
        assert_eq!(current.user, alice);
        assert_eq!(current.session, session);
    }

    #[test]
    fn a_token_naming_another_users_session_stands_for_nobody() {
        let alice = user("alice");
        let session = session_of(&alice);
        let mocks = Mocks::default().with_session(&session);
        let (ports, _) = mocks.ports();
        let forged = Credential::Access {
            user_id: user("mallory").id,
            session_id: session.id,
        };
        assert!(matches!(
            WhoAmI::new(&ports).execute(&forged),
            Err(SessionError::NotAuthorized)
        ));
    }

    #[test]
    fn ended_expired_and_orphaned_sessions_stand_for_nobody() {
        let alice = user("alice");
        let session = session_of(&alice);
        // Ended: no such session.
        let mut mocks = Mocks::default();
        mocks.sessions.expect_find().returning(|_| Ok(None));
        let (ports, _) = mocks.ports();
        assert!(matches!(
            WhoAmI::new(&ports).execute(&credential(&session)),
            Err(SessionError::NotAuthorized)
        ));
        // Expired: past its end.
        let mocks = Mocks {
            now: session.expires_at,
            ..Mocks::default()
        };
        let (ports, _) = mocks.with_session(&session).ports();
        assert!(matches!(
            WhoAmI::new(&ports).execute(&credential(&session)),
            Err(SessionError::NotAuthorized)
        ));
        // Orphaned: the account is gone.
        let mut mocks = Mocks::default().with_session(&session);
        mocks.users.expect_find_by_id().returning(|_| Ok(None));
        let (ports, _) = mocks.ports();
        assert!(matches!(
            WhoAmI::new(&ports).execute(&credential(&session)),
            Err(SessionError::NotAuthorized)
        ));
    }

    #[test]
    fn a_cookie_is_looked_up_by_its_digest_and_use_is_recorded_once_a_minute() {
        let alice = user("alice");
        let mut session = session_of(&alice);
        session.kind = SessionKind::Cookie;
        session.last_used_at = Timestamp(940); // 60 s before the mocks' now
        let mut mocks = Mocks::default().with_digests();
        let found = session.clone();
        mocks
            .sessions
            .expect_find_by_cookie()
            .withf(|digest| digest.0 == "digest-of-cookie-value")
            .returning(move |_| Ok(Some(found.clone())));
        let id = session.id;
        mocks
            .sessions
            .expect_touch()
            .withf(move |touched, now| *touched == id && *now == Timestamp(1_000))
            .times(1)
            .returning(|_, _| Ok(()));
        let found = alice.clone();
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(found.clone())));
        let (ports, _) = mocks.ports();
        let cookie = Credential::Cookie(OpaqueToken::new("cookie-value".into()));
        assert_eq!(WhoAmI::new(&ports).execute(&cookie).unwrap().user, alice);

        // Used 59 s ago: no write.
        session.last_used_at = Timestamp(941);
        let mut mocks = Mocks::default().with_digests();
        mocks
            .sessions
            .expect_find_by_cookie()
            .returning(move |_| Ok(Some(session.clone())));
        mocks.sessions.expect_touch().never();
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(alice.clone())));
        let (ports, _) = mocks.ports();
        assert!(WhoAmI::new(&ports).execute(&cookie).is_ok());
    }

    #[test]
    fn logout_ends_the_current_session_and_is_audited() {
        let alice = user("alice");
        let session = session_of(&alice);
        let mut mocks = Mocks::default().with_session(&session);
        let id = session.id;
        mocks
            .sessions
            .expect_end()
            .withf(move |ended| *ended == id)
            .times(1)
            .returning(|_| Ok(true));
        let (ports, audit) = mocks.ports();
        Logout::new(&ports)
            .execute(&credential(&session), &Origin::ip("192.0.2.1"))
            .unwrap();
        assert_eq!(audit.recorded(), [(A::Logout, O::Success, Some(alice.id))]);
    }

    #[test]
    fn logout_without_a_live_session_is_not_authorized() {
        let alice = user("alice");
        let session = session_of(&alice);
        let mut mocks = Mocks::default();
        mocks.sessions.expect_find().returning(|_| Ok(None));
        let (ports, audit) = mocks.ports();
        assert!(matches!(
            Logout::new(&ports).execute(&credential(&session), &Origin::default()),
            Err(SessionError::NotAuthorized)
        ));
        assert!(audit.recorded().is_empty());
    }

    #[test]
    fn listing_returns_the_users_sessions_and_marks_the_current_one() {
        let alice = user("alice");
        let session = session_of(&alice);
        let other = session_of(&alice);
        let mut mocks = Mocks::default().with_session(&session);
        let listed = vec![other.clone(), session.clone()];
        let owner = alice.id;
        mocks
            .sessions
            .expect_list()
            .withf(move |user, now| *user == owner && *now == Timestamp(1_000))
            .returning(move |_, _| Ok(listed.clone()));
        let (ports, _) = mocks.ports();
        let (sessions, current) = ListSessions::new(&ports)
            .execute(&credential(&session))
            .unwrap();
        assert_eq!(sessions, [other, session.clone()]);
        assert_eq!(current, session.id);
    }

    #[test]
    fn ending_ones_own_other_session_works_and_is_audited() {
        let alice = user("alice");
        let current = session_of(&alice);
        let other = session_of(&alice);
        let mut mocks = Mocks::default().with_session(&current).with_session(&other);
        let id = other.id;
        mocks
            .sessions
            .expect_end()
            .withf(move |ended| *ended == id)
            .times(1)
            .returning(|_| Ok(true));
        let (ports, audit) = mocks.ports();
        EndSession::new(&ports)
            .execute(
                &credential(&current),
                &other.id.to_string(),
                &Origin::default(),
            )
            .unwrap();
        assert_eq!(
            audit.recorded(),
            [(A::SessionEnd, O::Success, Some(alice.id))]
        );
    }

    #[test]
    fn another_users_missing_or_malformed_session_is_not_found() {
        let alice = user("alice");
        let current = session_of(&alice);
        let bobs = session_of(&user("bob"));
        let mut mocks = Mocks::default().with_session(&current).with_session(&bobs);
        mocks.sessions.expect_find().returning(|_| Ok(None));
        mocks.sessions.expect_end().never();
        let (ports, audit) = mocks.ports();
        let end = EndSession::new(&ports);
        for target in [
            bobs.id.to_string(),
            SessionId::generate().to_string(),
            "nope".to_owned(),
        ] {
            assert!(matches!(
                end.execute(&credential(&current), &target, &Origin::default()),
                Err(EndSessionError::NotFound)
            ));
        }
        assert!(audit.recorded().is_empty());
    }

    #[test]
    fn ending_a_session_needs_a_live_one() {
        let current = session_of(&user("alice"));
        let mut mocks = Mocks::default();
        mocks.sessions.expect_find().returning(|_| Ok(None));
        let (ports, _) = mocks.ports();
        assert!(matches!(
            EndSession::new(&ports).execute(
                &credential(&current),
                &current.id.to_string(),
                &Origin::default()
            ),
            Err(EndSessionError::NotAuthorized)
        ));
    }

    /// Mocks whose token factory makes "new-refresh" and digests as `digest_of`,
    /// and whose store answers the rotation of "old-refresh" with `rotation`.
    fn refresh_mocks(rotation: RefreshRotation) -> Mocks {
        let mut mocks = Mocks::default().with_digests();
        mocks.opaque_tokens.expect_generate().returning(|| {
            let token = OpaqueToken::new("new-refresh".into());
            let digest = digest_of(&token);
            Ok((token, digest))
        });
        mocks
            .sessions
            .expect_rotate_refresh()
            .withf(|presented, replacement, _| {
                presented.0 == "digest-of-old-refresh" && replacement.0 == "digest-of-new-refresh"
            })
            .times(1)
            .returning(move |_, _, _| Ok(rotation.clone()));
        mocks
    }

    /// Refreshes with `mocks`, which must end `session` and issue nothing;
    /// returns what was audited.
    fn refused_ending(mut mocks: Mocks, session: &Session) -> Recorded {
        let id = session.id;
        mocks
            .sessions
            .expect_end()
            .withf(move |ended| *ended == id)
            .times(1)
            .returning(|_| Ok(true));
        mocks.tokens.expect_issue().never();
        let (result, recorded) = refresh(mocks);
        assert!(matches!(result, Err(RefreshError::Invalid)));
        recorded
    }

    fn refresh(mocks: Mocks) -> (Result<Refreshed, RefreshError>, Recorded) {
        let (ports, audit) = mocks.ports();
        let result = Refresh::new(&ports)
            .execute(&OpaqueToken::new("old-refresh".into()), &Origin::default());
        (result, audit.recorded())
    }

    #[test]
    fn a_live_refresh_token_rotates_and_issues_an_access_token_for_its_session() {
        let alice = user("alice");
        let session = session_of(&alice);
        let mut mocks = refresh_mocks(RefreshRotation::Rotated(session.clone()));
        let (owner, id) = (alice.id, session.id);
        let account = alice.clone();
        mocks
            .users
            .expect_find_by_id()
            .withf(move |user| *user == owner)
            .times(1)
            .returning(move |_| Ok(Some(account.clone())));
        mocks
            .tokens
            .expect_issue()
            .withf(move |user, sid| *user == owner && *sid == id)
            .times(1)
            .returning(|_, _| Ok(issued()));
        let (result, recorded) = refresh(mocks);
        let refreshed = result.unwrap();
        assert_eq!(refreshed.refresh.expose(), "new-refresh");
        assert_eq!(refreshed.access.token.expose(), "jwt");
        assert_eq!(recorded, [(A::TokenRefresh, O::Success, Some(alice.id))]);
    }

    #[test]
    fn a_replayed_refresh_token_ends_the_whole_session() {
        let alice = user("alice");
        let session = session_of(&alice);
        let mocks = refresh_mocks(RefreshRotation::Reused(session.clone()));
        let recorded = refused_ending(mocks, &session);
        assert_eq!(recorded, [(A::RefreshReuse, O::Failure, Some(alice.id))]);
    }

    #[test]
    fn the_refresh_token_of_a_deleted_account_is_invalid_and_ends_its_session() {
        let alice = user("alice");
        let session = session_of(&alice);
        let mut mocks = refresh_mocks(RefreshRotation::Rotated(session.clone()));
        mocks
            .users
            .expect_find_by_id()
            .times(1)
            .returning(|_| Ok(None));
        let recorded = refused_ending(mocks, &session);
        assert_eq!(recorded, [(A::TokenRefresh, O::Failure, Some(alice.id))]);
    }

    #[test]
    fn an_unknown_refresh_token_is_invalid() {
        let (result, recorded) = refresh(refresh_mocks(RefreshRotation::Unknown));
        assert!(matches!(result, Err(RefreshError::Invalid)));
        assert_eq!(recorded, [(A::TokenRefresh, O::Failure, None)]);
    }

    #[test]
    fn an_expired_sessions_refresh_token_is_invalid_and_ends_it() {
        let alice = user("alice");
        let mut session = session_of(&alice);
        session.expires_at = Timestamp(1_000);
        let mut mocks = refresh_mocks(RefreshRotation::Rotated(session.clone()));
        mocks.sessions.expect_end().times(1).returning(|_| Ok(true));
        mocks.tokens.expect_issue().never();
        let (result, recorded) = refresh(mocks);
        assert!(matches!(result, Err(RefreshError::Invalid)));
        assert_eq!(recorded, [(A::TokenRefresh, O::Failure, Some(alice.id))]);
    }

    #[test]
    fn failures_of_the_ports_are_not_invalid_tokens() {
        let mut mocks = Mocks::default().with_digests();
        mocks
            .opaque_tokens
            .expect_generate()
            .returning(|| Ok((OpaqueToken::new("n".into()), TokenDigest("d".into()))));
        mocks
            .sessions
            .expect_rotate_refresh()
            .returning(|_, _, _| Err(RepoError::Unavailable(boom())));
        assert!(matches!(refresh(mocks).0, Err(RefreshError::Repository(_))));

        let mut mocks = Mocks::default();
        mocks
            .opaque_tokens
            .expect_generate()
            .returning(|| Err(TokenError::Failure(boom())));
        assert!(matches!(refresh(mocks).0, Err(RefreshError::Token(_))));

        let session = session_of(&user("alice"));
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_find()
            .returning(|_| Err(RepoError::Unavailable(boom())));
        let (ports, _) = mocks.ports();
        assert!(matches!(
            WhoAmI::new(&ports).execute(&credential(&session)),
            Err(SessionError::Repository(_))
        ));
    }
}
