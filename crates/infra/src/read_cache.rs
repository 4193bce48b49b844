//! The read cache: what an authenticated secret read needs (the session, the
//! account's username and wrapped data key, the sealed newest version of the
//! secret), kept in memory so that a repeated read is answered without a query
//! or a hop to a blocking thread.
//!
//! [`ReadCache`] is shared by three decorators, [`CachingSessionRepository`],
//! [`CachingUserRepository`] and [`CachingSecretRepository`], which wrap the
//! repositories of the database and implement the ports' `*_in_memory` lookups.
//!
//! # Coherence
//!
//! The cache is only ever correct for a database that nothing else writes: every
//! write must go through these decorators. `safebox serve` uses it on SQLite
//! without Redis only, where it holds the database's serve lock
//! ([`crate::db::ServeLock`]), so that no second server can end a session or
//! change a secret behind its back. Within the process:
//!
//! - Every write goes to the database first and then drops what it may have
//!   changed from the cache, whether it succeeded or not, before returning.
//!   A session that is ended is therefore never served from memory again once
//!   `end` returns.
//! - The blocking lookups always ask the database and put what they find in the
//!   cache. A lookup that raced with a write must not put back what the write
//!   just dropped: each part of the cache has a generation that every drop
//!   advances, a lookup takes it before its query ([`Ticket`]), and what it found
//!   is kept only if no drop happened meanwhile.
//! - Only what the database said is kept, and the `*_in_memory` lookups return
//!   it as it was read: the use cases still check a session's expiry, and every
//!   secret is opened, and so authenticated, on every read.
//!
//! The CLI's commands that may run beside a server change nothing that is kept
//! here: `admin grant|revoke` change a role (not kept), `keys rotate` wraps a
//! data key again under another master key (the kept wrapping still opens, with
//! the old master key, until the ring loses it, which takes a restart).
//!
//! # Memory
//!
//! Entries are kept within a budget of bytes (estimated per entry): a quarter
//! for sessions, a quarter for accounts, and half for secrets. Plaintext is never
//! kept: secrets stay sealed, data keys wrapped, cookies and refresh tokens as
//! the digests the database holds.
//!
//! # Concurrency
//!
//! Every authenticated read looks up all three parts, on whichever worker it
//! runs, so lookups take only a read lock and never wait for each other. (With
//! a mutex, a worker preempted while holding it stalled the other workers'
//! reads until it ran again, up to a scheduler time slice.) A lookup therefore
//! does not reorder the entries; it marks the one it found as used instead, and
//! eviction, under the write lock, gives a marked entry a second chance: it is
//! unmarked and moved to the back, and the next unmarked one from the front
//! goes (the CLOCK approximation of least-recently-used). Values are kept
//! behind an [`Arc`], so the read lock is held for a hash lookup and a
//! reference count; the copy a caller gets is made after it is released.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lru::LruCache;
use parking_lot::RwLock;
use safebox_domain::ports::{
    CreateUserError, RefreshRotation, SecretRepository, SessionRepository, UserRepository,
    VersionWrite, WriteOutcome,
};
use safebox_domain::{
    Email, NewUser, PasswordHash, RepoError, Role, Secret, SecretListQuery, SecretName,
    SecretVersion, Session, SessionId, StoredVersion, Timestamp, TokenDigest, User, UserData,
    UserId, Username, WrappedDataKey,
};

/// What one entry costs beyond the bytes it holds: the map's slot, the list's
/// links, the allocations' headers.
const ENTRY_OVERHEAD: usize = 128;

/// What a lookup read before its query: see [`Bounded::fill`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ticket(u64);

/// One kept value: its estimated weight, and whether a lookup found it since
/// eviction last looked at it.
struct Entry<V> {
    value: Arc<V>,
    weight: usize,
    used: AtomicBool,
}

/// One part of the cache: entries within a budget of estimated bytes, oldest
/// first, and the generation that every drop advances.
struct Bounded<K: Hash + Eq, V> {
    entries: LruCache<K, Entry<V>>,
    bytes: usize,
    budget: usize,
    generation: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    fn new(budget: usize) -> Self {
        Self {
            entries: LruCache::unbounded(),
            bytes: 0,
            budget,
            generation: 0,
        }
    }

    /// The value kept for `key`, marked as used; takes only `&self`, so that
    /// lookups share a read lock.
    fn get(&self, key: &K) -> Option<Arc<V>> {
        let entry = self.entries.peek(key)?;
        entry.used.store(true, Ordering::Relaxed);
        Some(Arc::clone(&entry.value))
    }

    fn ticket(&self) -> Ticket {
        Ticket(self.generation)
    }

    /// Keeps `value`, weighing `weight` bytes, unless something was dropped since
    /// `ticket` was taken (the value may be older than that drop) or it alone is
    /// over the budget. Returns the entries evicted to make room, or `None` when
    /// it kept nothing.
    fn fill(&mut self, ticket: Ticket, key: K, value: V, weight: usize) -> Option<Vec<(K, V)>> {
        let weight = weight + ENTRY_OVERHEAD;
        if ticket.0 != self.generation || weight > self.budget {
            return None;
        }
        let entry = Entry {
            value: Arc::new(value),
            weight,
            used: AtomicBool::new(false),
        };
        if let Some(old) = self.entries.put(key.clone(), entry) {
            self.bytes -= old.weight;
        }
        self.bytes += weight;
        let mut evicted = Vec::new();
        while self.bytes > self.budget {
            let Some((oldest, entry)) = self.entries.peek_lru() else {
                break;
            };
            // A second chance for an entry found since it was last looked at,
            // and for the one just kept (which is not over the budget alone).
            if entry.used.swap(false, Ordering::Relaxed) || *oldest == key {
                let oldest = oldest.clone();
                self.entries.promote(&oldest);
                continue;
            }
            let Some((oldest, entry)) = self.entries.pop_lru() else {
                break;
            };
            self.bytes -= entry.weight;
            evicted.push((oldest, Arc::unwrap_or_clone(entry.value)));
        }
        Some(evicted)
    }

    /// Changes a kept entry in place (its weight must not change); does nothing
    /// when it is not kept.
    fn update(&mut self, key: &K, change: impl FnOnce(&mut V)) {
        if let Some(entry) = self.entries.peek_mut(key) {
            change(Arc::make_mut(&mut entry.value));
        }
    }

    /// Drops `key` after a write, and makes every lookup that started before
    /// this keep nothing: what they read may be older than the write.
    fn drop_key(&mut self, key: &K) -> Option<V> {
        self.generation += 1;
        self.forget(key)
    }

    /// Drops `key` because storage no longer has it (a lookup found nothing).
    /// Nothing was written, so lookups in flight may keep what they found: a
    /// write that removed it drops it itself.
    fn forget(&mut self, key: &K) -> Option<V> {
        let entry = self.entries.pop(key)?;
        self.bytes -= entry.weight;
        Some(Arc::unwrap_or_clone(entry.value))
    }

    /// Drops every entry `matches` selects, as [`Self::drop_key`] does.
    fn drop_where(&mut self, matches: impl Fn(&K, &V) -> bool) -> Vec<(K, V)> {
        self.generation += 1;
        let keys: Vec<K> = self
            .entries
            .iter()
            .filter(|(key, entry)| matches(key, &entry.value))
            .map(|(key, _)| key.clone())
            .collect();
        keys.into_iter()
            .filter_map(|key| {
                let value = self.forget(&key)?;
                Some((key, value))
            })
            .collect()
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A kept session, with the digest of its cookie when it was found by it.
#[derive(Clone)]
struct KeptSession {
    session: Session,
    cookie: Option<TokenDigest>,
}

/// The sessions, by id and by cookie digest.
struct Sessions {
    by_id: Bounded<SessionId, KeptSession>,
    by_cookie: HashMap<TokenDigest, SessionId>,
}

impl Sessions {
    fn forget_cookies(&mut self, dropped: Vec<(SessionId, KeptSession)>) {
        for (_, kept) in dropped {
            if let Some(cookie) = kept.cookie {
                self.by_cookie.remove(&cookie);
            }
        }
    }

    fn drop_session(&mut self, id: &SessionId) {
        if let Some(kept) = self.by_id.drop_key(id) {
            self.forget_cookies(vec![(*id, kept)]);
        }
    }

    fn forget_session(&mut self, id: &SessionId) {
        if let Some(kept) = self.by_id.forget(id) {
            self.forget_cookies(vec![(*id, kept)]);
        }
    }
}

/// The username and wrapped data key of an account.
type Owner = (Username, Option<WrappedDataKey>);

/// What [`SecretRepository::read`] returns for the newest version.
type Newest = (Secret, Option<StoredVersion>);

/// How many entries each part of a [`ReadCache`] holds, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadCacheEntries {
    /// Sessions.
    pub sessions: usize,
    /// Accounts (username and wrapped data key).
    pub accounts: usize,
    /// Secrets (the newest version, sealed).
    pub secrets: usize,
}

/// The state the three caching repositories share; see the [module](self).
pub struct ReadCache {
    sessions: RwLock<Sessions>,
    owners: RwLock<Bounded<UserId, Owner>>,
    secrets: RwLock<Bounded<(UserId, SecretName), Newest>>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("entries", &self.entries())
            .finish_non_exhaustive()
    }
}

impl ReadCache {
    /// A cache of at most about `budget_bytes`.
    pub fn new(budget_bytes: usize) -> Self {
        let quarter = budget_bytes / 4;
        Self {
            sessions: RwLock::new(Sessions {
                by_id: Bounded::new(quarter),
                by_cookie: HashMap::new(),
            }),
            owners: RwLock::new(Bounded::new(quarter)),
            secrets: RwLock::new(Bounded::new(budget_bytes - 2 * quarter)),
        }
    }

    /// How many entries each part holds now.
    pub fn entries(&self) -> ReadCacheEntries {
        ReadCacheEntries {
            sessions: self.sessions.read().by_id.len(),
            accounts: self.owners.read().len(),
            secrets: self.secrets.read().len(),
        }
    }

    fn session(&self, id: &SessionId) -> Option<Session> {
        let kept = self.sessions.read().by_id.get(id)?;
        Some(kept.session.clone())
    }

    fn session_by_cookie(&self, cookie: &TokenDigest) -> Option<Session> {
        let kept = {
            let sessions = self.sessions.read();
            let id = sessions.by_cookie.get(cookie)?;
            sessions.by_id.get(id)?
        };
        Some(kept.session.clone())
    }

    fn session_ticket(&self) -> Ticket {
        self.sessions.read().by_id.ticket()
    }

    fn keep_session(&self, ticket: Ticket, session: &Session, cookie: Option<&TokenDigest>) {
        let weight = size_of::<Session>()
            + session.client_ip.as_ref().map_or(0, String::len)
            + session.user_agent.as_ref().map_or(0, String::len)
            + cookie.map_or(0, |digest| 2 * digest.0.len());
        let mut sessions = self.sessions.write();
        // A session found by id keeps the cookie it was found by before, so that
        // the cookie's entry goes when the session does.
        let cookie = cookie.cloned().or_else(|| {
            sessions
                .by_id
                .entries
                .peek(&session.id)
                .and_then(|entry| entry.value.cookie.clone())
        });
        let kept = KeptSession {
            session: session.clone(),
            cookie: cookie.clone(),
        };
        let Some(evicted) = sessions.by_id.fill(ticket, session.id, kept, weight) else {
            return;
        };
        sessions.forget_cookies(evicted);
        if let Some(cookie) = cookie {
            sessions.by_cookie.insert(cookie, session.id);
        }
    }

    fn touch_session(&self, id: &SessionId, now: Timestamp) {
        self.sessions
            .write()
            .by_id
            .update(id, |kept| kept.session.last_used_at = now);
    }

    fn drop_session(&self, id: &SessionId) {
        self.sessions.write().drop_session(id);
    }

    fn forget_session(&self, id: &SessionId) {
        self.sessions.write().forget_session(id);
    }

    fn drop_sessions_of(&self, user: &UserId) {
        let mut sessions = self.sessions.write();
        let dropped = sessions
            .by_id
            .drop_where(|_, kept| kept.session.user_id == *user);
        sessions.forget_cookies(dropped);
    }

    fn owner(&self, id: &UserId) -> Option<Owner> {
        let kept = self.owners.read().get(id)?;
        Some(Owner::clone(&kept))
    }

    fn owner_ticket(&self) -> Ticket {
        self.owners.read().ticket()
    }

    fn keep_owner(&self, ticket: Ticket, id: UserId, owner: Owner) {
        let weight = size_of::<Owner>()
            + owner.0.as_str().len()
            + owner
                .1
                .as_ref()
                .map_or(0, |key| key.sealed.bytes.len() + key.sealed.key_id.0.len());
        self.owners.write().fill(ticket, id, owner, weight);
    }

    fn forget_owner(&self, id: &UserId) {
        self.owners.write().forget(id);
    }

    fn secret(&self, owner: &UserId, name: &SecretName) -> Option<Newest> {
        let key = (*owner, name.clone());
        let kept = self.secrets.read().get(&key)?;
        Some(Newest::clone(&kept))
    }

    fn secret_ticket(&self) -> Ticket {
        self.secrets.read().ticket()
    }

    fn keep_secret(&self, ticket: Ticket, newest: &Newest) {
        let (secret, version) = newest;
        let weight = size_of::<Newest>()
            + 2 * secret.name.as_str().len()
            + secret
                .metadata
                .entries()
                .iter()
                .map(|(key, value)| key.len() + value.len() + 32)
                .sum::<usize>()
            + version.as_ref().map_or(0, |version| {
                version.sealed.bytes.len() + version.sealed.key_id.0.len()
            });
        let key = (secret.owner, secret.name.clone());
        self.secrets
            .write()
            .fill(ticket, key, newest.clone(), weight);
    }

    fn drop_secret(&self, owner: &UserId, name: &SecretName) {
        self.secrets.write().drop_key(&(*owner, name.clone()));
    }

    fn forget_secret(&self, owner: &UserId, name: &SecretName) {
        self.secrets.write().forget(&(*owner, name.clone()));
    }

    /// Drops everything kept of an account that is gone.
    fn drop_user(&self, id: &UserId) {
        self.drop_sessions_of(id);
        self.owners.write().drop_key(id);
        self.secrets.write().drop_where(|(owner, _), _| owner == id);
    }
}

/// A [`SessionRepository`] that keeps the sessions it finds in a [`ReadCache`]
/// and answers [`SessionRepository::find_in_memory`] from it.
pub struct CachingSessionRepository {
    inner: Arc<dyn SessionRepository>,
    cache: Arc<ReadCache>,
}

impl CachingSessionRepository {
    /// Wraps `inner`, which nothing else may write to.
    pub fn new(inner: Arc<dyn SessionRepository>, cache: Arc<ReadCache>) -> Self {
        Self { inner, cache }
    }
}

impl SessionRepository for CachingSessionRepository {
    fn create(&self, session: &Session, credential: &TokenDigest) -> Result<(), RepoError> {
        // The user's expired sessions it deletes may be kept; being expired, they
        // are never live again.
        self.inner.create(session, credential)
    }

    fn find(&self, id: &SessionId) -> Result<Option<Session>, RepoError> {
        let ticket = self.cache.session_ticket();
        let found = self.inner.find(id)?;
        match &found {
            Some(session) => self.cache.keep_session(ticket, session, None),
            None => self.cache.forget_session(id),
        }
        Ok(found)
    }

    fn find_by_cookie(&self, cookie: &TokenDigest) -> Result<Option<Session>, RepoError> {
        let ticket = self.cache.session_ticket();
        let found = self.inner.find_by_cookie(cookie)?;
        if let Some(session) = &found {
            self.cache.keep_session(ticket, session, Some(cookie));
        }
        Ok(found)
    }

    fn find_in_memory(&self, id: &SessionId) -> Option<Session> {
        self.cache.session(id)
    }

    fn find_by_cookie_in_memory(&self, cookie: &TokenDigest) -> Option<Session> {
        self.cache.session_by_cookie(cookie)
    }

    fn touch(&self, id: &SessionId, now: Timestamp) -> Result<(), RepoError> {
        self.inner.touch(id, now)?;
        self.cache.touch_session(id, now);
        Ok(())
    }

    fn list(&self, user: &UserId, now: Timestamp) -> Result<Vec<Session>, RepoError> {
        self.inner.list(user, now)
    }

    fn end(&self, id: &SessionId) -> Result<bool, RepoError> {
        let ended = self.inner.end(id);
        self.cache.drop_session(id);
        ended
    }

    fn end_others(&self, user: &UserId, keep: &SessionId) -> Result<u64, RepoError> {
        let ended = self.inner.end_others(user, keep);
        // `keep` goes too: it is read again, once, on its next use.
        self.cache.drop_sessions_of(user);
        ended
    }

    fn end_all(&self, user: &UserId) -> Result<u64, RepoError> {
        let ended = self.inner.end_all(user);
        self.cache.drop_sessions_of(user);
        ended
    }

    fn rotate_refresh(
        &self,
        presented: &TokenDigest,
        replacement: &TokenDigest,
        now: Timestamp,
    ) -> Result<RefreshRotation, RepoError> {
        let rotation = self.inner.rotate_refresh(presented, replacement, now);
        if let Ok(RefreshRotation::Rotated(session) | RefreshRotation::Reused(session)) = &rotation
        {
            self.cache.drop_session(&session.id);
        }
        rotation
    }
}

/// A [`UserRepository`] that keeps each account's username and wrapped data key,
/// as [`UserRepository::find_with_data_key`] finds them, in a [`ReadCache`].
pub struct CachingUserRepository {
    inner: Arc<dyn UserRepository>,
    cache: Arc<ReadCache>,
}

impl CachingUserRepository {
    /// Wraps `inner`, which nothing else may write to.
    pub fn new(inner: Arc<dyn UserRepository>, cache: Arc<ReadCache>) -> Self {
        Self { inner, cache }
    }
}

impl UserRepository for CachingUserRepository {
    fn create(&self, new_user: &NewUser) -> Result<(), CreateUserError> {
        self.inner.create(new_user)
    }

    fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        self.inner.find_by_email(email)
    }

    fn find_by_username(&self, username: &Username) -> Result<Option<User>, RepoError> {
        self.inner.find_by_username(username)
    }

    fn find_by_id(&self, id: &UserId) -> Result<Option<User>, RepoError> {
        self.inner.find_by_id(id)
    }

    fn data_key(&self, owner: &UserId) -> Result<Option<WrappedDataKey>, RepoError> {
        self.inner.data_key(owner)
    }

    fn find_with_data_key(
        &self,
        id: &UserId,
    ) -> Result<Option<(User, Option<WrappedDataKey>)>, RepoError> {
        let ticket = self.cache.owner_ticket();
        let found = self.inner.find_with_data_key(id)?;
        match &found {
            Some((user, key)) => {
                self.cache
                    .keep_owner(ticket, *id, (user.username.clone(), key.clone()));
            }
            None => self.cache.forget_owner(id),
        }
        Ok(found)
    }

    fn find_with_data_key_in_memory(
        &self,
        id: &UserId,
    ) -> Option<(Username, Option<WrappedDataKey>)> {
        self.cache.owner(id)
    }

    fn set_role(&self, username: &Username, role: Role) -> Result<Option<UserId>, RepoError> {
        // The role is not kept; nothing to drop.
        self.inner.set_role(username, role)
    }

    fn update_data(&self, id: &UserId, data: &UserData) -> Result<bool, RepoError> {
        self.inner.update_data(id, data)
    }

    fn update_password_hash(&self, id: &UserId, hash: &PasswordHash) -> Result<bool, RepoError> {
        self.inner.update_password_hash(id, hash)
    }

    fn delete(&self, id: &UserId) -> Result<bool, RepoError> {
        let deleted = self.inner.delete(id);
        // The account took its sessions and secrets with it.
        self.cache.drop_user(id);
        deleted
    }
}

/// A [`SecretRepository`] that keeps the newest version of each secret it reads
/// in a [`ReadCache`], sealed, and answers
/// [`SecretRepository::read_newest_in_memory`] from it.
pub struct CachingSecretRepository {
    inner: Arc<dyn SecretRepository>,
    cache: Arc<ReadCache>,
}

impl CachingSecretRepository {
    /// Wraps `inner`, which nothing else may write to.
    pub fn new(inner: Arc<dyn SecretRepository>, cache: Arc<ReadCache>) -> Self {
        Self { inner, cache }
    }
}

impl SecretRepository for CachingSecretRepository {
    fn find(&self, owner: &UserId, name: &SecretName) -> Result<Option<Secret>, RepoError> {
        self.inner.find(owner, name)
    }

    fn read(
        &self,
        owner: &UserId,
        name: &SecretName,
        version: Option<SecretVersion>,
    ) -> Result<Option<(Secret, Option<StoredVersion>)>, RepoError> {
        if version.is_some() {
            return self.inner.read(owner, name, version);
        }
        let ticket = self.cache.secret_ticket();
        let found = self.inner.read(owner, name, None)?;
        match &found {
            Some(newest) => self.cache.keep_secret(ticket, newest),
            None => self.cache.forget_secret(owner, name),
        }
        Ok(found)
    }

    fn read_newest_in_memory(
        &self,
        owner: &UserId,
        name: &SecretName,
    ) -> Option<(Secret, Option<StoredVersion>)> {
        self.cache.secret(owner, name)
    }

    fn write(&self, write: &VersionWrite) -> Result<WriteOutcome, RepoError> {
        let outcome = self.inner.write(write);
        self.cache.drop_secret(&write.owner, &write.name);
        outcome
    }

    fn list(&self, owner: &UserId, query: &SecretListQuery) -> Result<Vec<Secret>, RepoError> {
        self.inner.list(owner, query)
    }

    fn set_deleted(
        &self,
        owner: &UserId,
        name: &SecretName,
        at: Option<Timestamp>,
    ) -> Result<Option<Secret>, RepoError> {
        let changed = self.inner.set_deleted(owner, name, at);
        self.cache.drop_secret(owner, name);
        changed
    }

    fn destroy(&self, owner: &UserId, name: &SecretName) -> Result<bool, RepoError> {
        let destroyed = self.inner.destroy(owner, name);
        self.cache.drop_secret(owner, name);
        destroyed
    }
}

#[cfg(test)]
mod tests {
    use safebox_domain::ports::{MockSecretRepository, MockSessionRepository, MockUserRepository};
    use safebox_domain::{
        DataKeyId, Email, KeyId, PasswordHash, Role, SealedData, SecretMetadata, SessionKind,
        UserData,
    };

    use super::*;

    const MIB: usize = 1024 * 1024;

    fn session_of(user: UserId) -> Session {
        Session {
            id: SessionId::generate(),
            user_id: user,
            kind: SessionKind::Bearer,
            created_at: Timestamp(10),
            last_used_at: Timestamp(20),
            expires_at: Timestamp(1_000_000),
            client_ip: Some("203.0.113.9".into()),
            user_agent: None,
        }
    }

    fn user_named(name: &str) -> User {
        User {
            id: UserId::generate(),
            username: Username::parse(name).unwrap(),
            email: Some(Email::parse(&format!("{name}@example.com")).unwrap()),
            password_hash: PasswordHash("hash".into()),
            role: Role::User,
            data: UserData::empty(),
            created_at: Timestamp(1),
        }
    }

    fn wrapped_key() -> WrappedDataKey {
        WrappedDataKey {
            id: DataKeyId::generate(),
            sealed: SealedData {
                key_id: KeyId("mk".into()),
                bytes: vec![7; 60],
            },
        }
    }

    fn newest(owner: UserId, name: &str, version: u64, sealed_len: usize) -> Newest {
        let secret = Secret {
            owner,
            name: SecretName::parse(name).unwrap(),
            version: SecretVersion(version),
            oldest_version: SecretVersion(1),
            metadata: SecretMetadata::default(),
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            deleted_at: None,
        };
        let stored = StoredVersion {
            version: SecretVersion(version),
            sealed: SealedData {
                key_id: KeyId("dk".into()),
                bytes: vec![1; sealed_len],
            },
            created_at: Timestamp(2),
        };
        (secret, Some(stored))
    }

    fn name(raw: &str) -> SecretName {
        SecretName::parse(raw).unwrap()
    }

    fn boom() -> RepoError {
        RepoError::Unavailable("boom".into())
    }

    /// A session repository whose `find` answers `session` (by its id), and
    /// whose every way of ending sessions succeeds.
    fn sessions_finding(session: &Session) -> MockSessionRepository {
        let mut inner = MockSessionRepository::new();
        let found = session.clone();
        inner
            .expect_find()
            .returning(move |id| Ok((*id == found.id).then(|| found.clone())));
        inner
    }

    fn caching_sessions(
        inner: MockSessionRepository,
    ) -> (CachingSessionRepository, Arc<ReadCache>) {
        let cache = Arc::new(ReadCache::new(16 * MIB));
        (
            CachingSessionRepository::new(Arc::new(inner), cache.clone()),
            cache,
        )
    }

    #[test]
    fn a_session_is_in_memory_once_found_and_never_after_it_ends() {
        let session = session_of(UserId::generate());
        let mut inner = sessions_finding(&session);
        inner.expect_end().times(1).returning(|_| Ok(true));
        let (sessions, _) = caching_sessions(inner);

        assert_eq!(
            sessions.find_in_memory(&session.id),
            None,
            "nothing read yet"
        );
        assert_eq!(sessions.find(&session.id).unwrap(), Some(session.clone()));
        assert_eq!(sessions.find_in_memory(&session.id), Some(session.clone()));
        assert!(sessions.end(&session.id).unwrap());
        assert_eq!(sessions.find_in_memory(&session.id), None);
    }

    #[test]
    fn every_way_of_ending_sessions_drops_them_even_when_the_store_fails() {
        type End = fn(&CachingSessionRepository, &Session);
        let ways: [(&str, End); 5] = [
            ("end", |repo, s| drop(repo.end(&s.id))),
            ("end_others", |repo, s| {
                drop(repo.end_others(&s.user_id, &s.id))
            }),
            ("end_all", |repo, s| drop(repo.end_all(&s.user_id))),
            ("rotated", |repo, _| {
                let (presented, next) = (TokenDigest("r1".into()), TokenDigest("r2".into()));
                drop(repo.rotate_refresh(&presented, &next, Timestamp(30)));
            }),
            ("reused", |repo, _| {
                let (presented, next) = (TokenDigest("r0".into()), TokenDigest("r2".into()));
                drop(repo.rotate_refresh(&presented, &next, Timestamp(30)));
            }),
        ];
        for (way, end) in ways {
            // A store that fails may or may not have ended it: it goes either way.
            for fails in [false, true] {
                let session = session_of(UserId::generate());
                let mut inner = sessions_finding(&session);
                let outcome = move |ended: u64| if fails { Err(boom()) } else { Ok(ended) };
                inner
                    .expect_end()
                    .returning(move |_| outcome(1).map(|n| n == 1));
                inner.expect_end_all().returning(move |_| outcome(1));
                inner.expect_end_others().returning(move |_, _| outcome(1));
                let ended = session.clone();
                inner
                    .expect_rotate_refresh()
                    .returning(move |presented, _, _| {
                        Ok(if presented.0 == "r1" {
                            RefreshRotation::Rotated(ended.clone())
                        } else {
                            RefreshRotation::Reused(ended.clone())
                        })
                    });
                let (sessions, _) = caching_sessions(inner);
                sessions.find(&session.id).unwrap();
                assert!(sessions.find_in_memory(&session.id).is_some(), "{way}");
                end(&sessions, &session);
                assert_eq!(
                    sessions.find_in_memory(&session.id),
                    None,
                    "{way}, store fails: {fails}"
                );
            }
        }
    }

    #[test]
    fn another_users_sessions_stay_when_one_user_is_logged_out_everywhere() {
        let (alice, bob) = (
            session_of(UserId::generate()),
            session_of(UserId::generate()),
        );
        let mut inner = MockSessionRepository::new();
        let found = [alice.clone(), bob.clone()];
        inner
            .expect_find()
            .returning(move |id| Ok(found.iter().find(|s| s.id == *id).cloned()));
        inner.expect_end_all().returning(|_| Ok(1));
        let (sessions, _) = caching_sessions(inner);
        sessions.find(&alice.id).unwrap();
        sessions.find(&bob.id).unwrap();
        sessions.end_all(&alice.user_id).unwrap();
        assert_eq!(sessions.find_in_memory(&alice.id), None);
        assert_eq!(sessions.find_in_memory(&bob.id), Some(bob));
    }

    #[test]
    fn a_lookup_that_raced_with_an_end_keeps_nothing() {
        let session = session_of(UserId::generate());
        let cache = Arc::new(ReadCache::new(16 * MIB));
        let mut inner = MockSessionRepository::new();
        // While the query runs, another thread ends the session and drops it;
        // the query's answer, read before the end, is already stale.
        let (racing, stale) = (cache.clone(), session.clone());
        inner.expect_find().times(1).returning(move |id| {
            racing.drop_session(id);
            Ok(Some(stale.clone()))
        });
        let sessions = CachingSessionRepository::new(Arc::new(inner), cache);
        assert_eq!(sessions.find(&session.id).unwrap(), Some(session.clone()));
        assert_eq!(sessions.find_in_memory(&session.id), None);
    }

    #[test]
    fn a_lookup_that_finds_nothing_spoils_no_other_lookup() {
        let session = session_of(UserId::generate());
        let cache = Arc::new(ReadCache::new(16 * MIB));
        let mut inner = MockSessionRepository::new();
        // While this lookup runs, another finds nothing for some other id:
        // nothing was written, so this one's answer is still good to keep.
        let (other, found) = (cache.clone(), session.clone());
        inner.expect_find().times(1).returning(move |_| {
            other.forget_session(&SessionId::generate());
            Ok(Some(found.clone()))
        });
        let sessions = CachingSessionRepository::new(Arc::new(inner), cache);
        sessions.find(&session.id).unwrap();
        assert_eq!(sessions.find_in_memory(&session.id), Some(session));
    }

    #[test]
    fn a_cookie_lookup_that_keeps_nothing_adds_no_cookie_entry() {
        let session = session_of(UserId::generate());
        let cookie = TokenDigest("digest".into());
        let cache = Arc::new(ReadCache::new(16 * MIB));
        let mut inner = sessions_finding(&session);
        let (racing, found) = (cache.clone(), session.clone());
        inner.expect_find_by_cookie().times(1).returning(move |_| {
            // A write to another session drops it meanwhile.
            racing.drop_session(&SessionId::generate());
            Ok(Some(found.clone()))
        });
        let sessions = CachingSessionRepository::new(Arc::new(inner), cache.clone());
        sessions.find(&session.id).unwrap();
        sessions.find_by_cookie(&cookie).unwrap();
        assert!(sessions.find_in_memory(&session.id).is_some(), "kept by id");
        assert_eq!(sessions.find_by_cookie_in_memory(&cookie), None);
        assert!(cache.sessions.read().by_cookie.is_empty());
    }

    #[test]
    fn a_session_the_store_no_longer_has_is_dropped() {
        let session = session_of(UserId::generate());
        let mut inner = MockSessionRepository::new();
        let mut answers = vec![None, Some(session.clone())];
        inner
            .expect_find()
            .times(2)
            .returning(move |_| Ok(answers.pop().unwrap()));
        let (sessions, _) = caching_sessions(inner);
        sessions.find(&session.id).unwrap();
        assert!(sessions.find_in_memory(&session.id).is_some());
        assert_eq!(sessions.find(&session.id).unwrap(), None);
        assert_eq!(sessions.find_in_memory(&session.id), None);
    }

    #[test]
    fn cookie_sessions_are_found_by_digest_and_a_touch_is_seen_in_memory() {
        let mut session = session_of(UserId::generate());
        session.kind = SessionKind::Cookie;
        let cookie = TokenDigest("digest-of-cookie".into());
        let mut inner = MockSessionRepository::new();
        let (found, digest) = (session.clone(), cookie.clone());
        inner
            .expect_find_by_cookie()
            .returning(move |asked| Ok((*asked == digest).then(|| found.clone())));
        let mut touches = vec![Err(boom()), Ok(())];
        inner
            .expect_touch()
            .times(2)
            .returning(move |_, _| touches.pop().unwrap());
        inner.expect_end().returning(|_| Ok(true));
        let (sessions, cache) = caching_sessions(inner);

        assert_eq!(sessions.find_by_cookie_in_memory(&cookie), None);
        sessions.find_by_cookie(&cookie).unwrap();
        assert_eq!(
            sessions.find_by_cookie_in_memory(&cookie),
            Some(session.clone())
        );
        let other = TokenDigest("another".into());
        assert_eq!(sessions.find_by_cookie_in_memory(&other), None);

        sessions.touch(&session.id, Timestamp(500)).unwrap();
        let touched = sessions.find_in_memory(&session.id).unwrap();
        assert_eq!(touched.last_used_at, Timestamp(500));
        // A touch that failed changes nothing.
        assert!(sessions.touch(&session.id, Timestamp(900)).is_err());
        assert_eq!(
            sessions.find_in_memory(&session.id).unwrap().last_used_at,
            Timestamp(500)
        );

        sessions.end(&session.id).unwrap();
        assert_eq!(sessions.find_by_cookie_in_memory(&cookie), None);
        assert!(
            cache.sessions.read().by_cookie.is_empty(),
            "the cookie's entry went too"
        );
    }

    #[test]
    fn accounts_keep_username_and_key_until_deleted_with_their_sessions_and_secrets() {
        let (alice, bob) = (user_named("alice"), user_named("bob"));
        let key = wrapped_key();
        let cache = Arc::new(ReadCache::new(16 * MIB));
        let mut users = MockUserRepository::new();
        let known = [alice.clone(), bob.clone()];
        let found_key = key.clone();
        users.expect_find_with_data_key().returning(move |id| {
            Ok(known
                .iter()
                .find(|user| user.id == *id)
                .map(|user| (user.clone(), Some(found_key.clone()))))
        });
        users.expect_delete().times(1).returning(|_| Ok(true));
        let users = CachingUserRepository::new(Arc::new(users), cache.clone());
        let mut sessions = MockSessionRepository::new();
        let (alice_session, bob_session) = (session_of(alice.id), session_of(bob.id));
        let known = [alice_session.clone(), bob_session.clone()];
        sessions
            .expect_find()
            .returning(move |id| Ok(known.iter().find(|s| s.id == *id).cloned()));
        let sessions = CachingSessionRepository::new(Arc::new(sessions), cache.clone());
        let mut secrets = MockSecretRepository::new();
        let (alice_id, bob_id) = (alice.id, bob.id);
        secrets
            .expect_read()
            .returning(move |owner, name, _| Ok(Some(newest(*owner, name.as_str(), 1, 40))));
        let secrets = CachingSecretRepository::new(Arc::new(secrets), cache.clone());

        assert_eq!(users.find_with_data_key_in_memory(&alice.id), None);
        for user in [&alice, &bob] {
            users.find_with_data_key(&user.id).unwrap();
        }
        sessions.find(&alice_session.id).unwrap();
        sessions.find(&bob_session.id).unwrap();
        secrets.read(&alice_id, &name("a"), None).unwrap();
        secrets.read(&bob_id, &name("a"), None).unwrap();
        assert_eq!(
            users.find_with_data_key_in_memory(&alice.id),
            Some((alice.username.clone(), Some(key.clone())))
        );
        assert_eq!(
            cache.entries(),
            ReadCacheEntries {
                sessions: 2,
                accounts: 2,
                secrets: 2
            }
        );

        users.delete(&alice.id).unwrap();
        assert_eq!(users.find_with_data_key_in_memory(&alice.id), None);
        assert_eq!(sessions.find_in_memory(&alice_session.id), None);
        assert_eq!(secrets.read_newest_in_memory(&alice_id, &name("a")), None);
        // Bob's are untouched.
        assert!(users.find_with_data_key_in_memory(&bob.id).is_some());
        assert!(sessions.find_in_memory(&bob_session.id).is_some());
        assert!(secrets.read_newest_in_memory(&bob_id, &name("a")).is_some());
    }

    #[test]
    fn a_missing_account_is_dropped_and_role_or_data_changes_keep_nothing_stale() {
        let alice = user_named("alice");
        let mut users = MockUserRepository::new();
        let mut answers = vec![None, Some((alice.clone(), None))];
        users
            .expect_find_with_data_key()
            .times(2)
            .returning(move |_| Ok(answers.pop().unwrap()));
        let id = alice.id;
        users.expect_set_role().returning(move |_, _| Ok(Some(id)));
        let users = CachingUserRepository::new(Arc::new(users), Arc::new(ReadCache::new(16 * MIB)));
        users.find_with_data_key(&alice.id).unwrap();
        assert_eq!(
            users.find_with_data_key_in_memory(&alice.id),
            Some((alice.username.clone(), None))
        );
        // What is kept holds no role: a role change leaves it as it is.
        users.set_role(&alice.username, Role::Admin).unwrap();
        assert!(users.find_with_data_key_in_memory(&alice.id).is_some());
        assert_eq!(users.find_with_data_key(&alice.id).unwrap(), None);
        assert_eq!(users.find_with_data_key_in_memory(&alice.id), None);
    }

    #[test]
    fn the_newest_version_is_kept_until_any_write_to_its_secret() {
        type Write = fn(&CachingSecretRepository, UserId);
        let writes: [(&str, Write); 4] = [
            ("write", |repo, owner| {
                drop(repo.write(&VersionWrite {
                    owner,
                    name: name("db"),
                    base: Some(SecretVersion(1)),
                    sealed: SealedData {
                        key_id: KeyId("dk".into()),
                        bytes: vec![2; 40],
                    },
                    metadata: None,
                    now: Timestamp(5),
                    keep_versions: 10,
                    max_secrets: 10,
                }));
            }),
            ("delete", |repo, owner| {
                drop(repo.set_deleted(&owner, &name("db"), Some(Timestamp(5))));
            }),
            ("undelete", |repo, owner| {
                drop(repo.set_deleted(&owner, &name("db"), None))
            }),
            ("destroy", |repo, owner| {
                drop(repo.destroy(&owner, &name("db")))
            }),
        ];
        for (what, write) in writes {
            for fails in [false, true] {
                let owner = UserId::generate();
                let mut inner = MockSecretRepository::new();
                inner.expect_read().returning(move |owner, name, version| {
                    Ok(Some(newest(
                        *owner,
                        name.as_str(),
                        version.map_or(1, |v| v.0),
                        40,
                    )))
                });
                inner.expect_write().returning(move |_| {
                    if fails {
                        Err(boom())
                    } else {
                        Ok(WriteOutcome::Conflict)
                    }
                });
                inner
                    .expect_set_deleted()
                    .returning(move |_, _, _| if fails { Err(boom()) } else { Ok(None) });
                inner
                    .expect_destroy()
                    .returning(move |_, _| if fails { Err(boom()) } else { Ok(true) });
                let secrets = CachingSecretRepository::new(
                    Arc::new(inner),
                    Arc::new(ReadCache::new(16 * MIB)),
                );
                // An older version is not the newest: nothing is kept for it.
                secrets
                    .read(&owner, &name("db"), Some(SecretVersion(1)))
                    .unwrap();
                assert_eq!(secrets.read_newest_in_memory(&owner, &name("db")), None);
                secrets.read(&owner, &name("db"), None).unwrap();
                assert_eq!(
                    secrets.read_newest_in_memory(&owner, &name("db")),
                    Some(newest(owner, "db", 1, 40))
                );
                assert_eq!(secrets.read_newest_in_memory(&owner, &name("other")), None);
                write(&secrets, owner);
                assert_eq!(
                    secrets.read_newest_in_memory(&owner, &name("db")),
                    None,
                    "{what}, store fails: {fails}"
                );
            }
        }
    }

    /// A cache of 64 KiB (32 KiB for secrets) over a store whose every secret
    /// weighs about 4 KiB with its overhead: room for a handful.
    fn secrets_of_4_kib() -> (CachingSecretRepository, Arc<ReadCache>) {
        let cache = Arc::new(ReadCache::new(64 * 1024));
        let mut inner = MockSecretRepository::new();
        inner
            .expect_read()
            .returning(|owner, name, _| Ok(Some(newest(*owner, name.as_str(), 1, 3_800))));
        (
            CachingSecretRepository::new(Arc::new(inner), cache.clone()),
            cache,
        )
    }

    #[test]
    fn memory_stays_within_the_budget_and_the_least_recently_used_go_first() {
        let (secrets, cache) = secrets_of_4_kib();
        let owner = UserId::generate();
        let names: Vec<SecretName> = (0..20).map(|n| name(&format!("s{n:02}"))).collect();
        for (at, name) in names.iter().enumerate() {
            secrets.read(&owner, name, None).unwrap();
            // Keep the first one in use: it is never the least recently used.
            assert!(
                secrets.read_newest_in_memory(&owner, &names[0]).is_some(),
                "at {at}"
            );
            let kept = cache.secrets.read();
            assert!(
                kept.bytes <= kept.budget,
                "{} > {}",
                kept.bytes,
                kept.budget
            );
        }
        let kept: Vec<&SecretName> = names
            .iter()
            .filter(|name| secrets.read_newest_in_memory(&owner, name).is_some())
            .collect();
        assert!(kept.len() < names.len() && kept.len() >= 5, "{kept:?}");
        assert!(kept.contains(&&names[0]));
        assert!(kept.contains(&&names[19]), "the newest is kept");
        assert!(!kept.contains(&&names[1]), "the least recently used went");

        // A secret bigger than the whole budget is read, but not kept.
        let mut huge = MockSecretRepository::new();
        huge.expect_read()
            .returning(|owner, name, _| Ok(Some(newest(*owner, name.as_str(), 1, 64 * 1024))));
        let secrets = CachingSecretRepository::new(Arc::new(huge), cache);
        assert!(secrets.read(&owner, &name("huge"), None).unwrap().is_some());
        assert_eq!(secrets.read_newest_in_memory(&owner, &name("huge")), None);
    }

    /// Lookups do not reorder entries (they share a read lock); eviction gives
    /// an entry found since it last looked a second chance instead, and never
    /// evicts the entry it is making room for.
    #[test]
    fn eviction_spares_entries_found_since_and_the_one_just_kept() {
        let (secrets, cache) = secrets_of_4_kib();
        let owner = UserId::generate();
        // Whether an entry is kept, without finding (and so marking) it.
        let kept = |name: &SecretName| {
            cache
                .secrets
                .read()
                .entries
                .contains(&(owner, name.clone()))
        };
        let found = |name: &SecretName| secrets.read_newest_in_memory(&owner, name).is_some();

        // Kept until one does not fit: none was found, so the oldest goes.
        let mut names = Vec::new();
        while cache.secrets.read().len() == names.len() {
            names.push(name(&format!("s{:02}", names.len())));
            secrets.read(&owner, names.last().unwrap(), None).unwrap();
        }
        let full = names.len() - 1;
        assert!(full >= 4, "{full}");
        assert!(!kept(&names[0]));

        // All found: each gets its second chance, the newcomer is kept, and
        // then the oldest goes after all.
        assert!(names[1..].iter().all(found));
        secrets.read(&owner, &name("newcomer"), None).unwrap();
        assert!(kept(&name("newcomer")));
        assert!(!kept(&names[1]));
        assert!(names[2..].iter().all(kept));

        // Only the oldest found: it stays, and the next oldest goes.
        assert!(found(&names[2]));
        secrets.read(&owner, &name("another"), None).unwrap();
        assert!(kept(&name("another")));
        assert!(kept(&names[2]), "found since eviction last looked");
        assert!(!kept(&names[3]));
        assert!(names[4..].iter().all(kept));
        assert!(kept(&name("newcomer")));
        assert_eq!(cache.secrets.read().len(), full);
    }

    #[test]
    fn evicted_cookie_sessions_leave_no_cookie_entry_behind() {
        // 8 KiB in all: 2 KiB for sessions, a handful of entries.
        let cache = Arc::new(ReadCache::new(8 * 1024));
        let mut inner = MockSessionRepository::new();
        inner.expect_find_by_cookie().returning(|digest| {
            let mut session = session_of(UserId::generate());
            session.kind = SessionKind::Cookie;
            session.user_agent = Some(digest.0.clone());
            Ok(Some(session))
        });
        let sessions = CachingSessionRepository::new(Arc::new(inner), cache.clone());
        for n in 0..100 {
            sessions
                .find_by_cookie(&TokenDigest(format!("cookie-{n:03}")))
                .unwrap();
        }
        let kept = cache.sessions.read();
        assert!(kept.by_id.len() < 100 && kept.by_id.len() > 0);
        assert_eq!(kept.by_cookie.len(), kept.by_id.len());
    }
}
