//! The ports: everything the use cases need from the outside world, as synchronous
//! traits. Adapters live in `safebox-infra`; the `mocks` feature generates a
//! `Mock<Trait>` for each port with mockall.
//!
//! Every port is `Send + Sync` so that one instance can serve all request threads.

use std::fmt;
use std::sync::Arc;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::redacted;
use crate::{
    AuditEvent, AuditQuery, AuditRecord, BoxError, Email, KeyId, NewUser, OpaqueToken, Password,
    PasswordAttempt, PasswordHash, RepoError, Role, SealedData, Secret, SecretListQuery,
    SecretMetadata, SecretName, SecretValue, SecretVersion, Session, SessionId, StoredVersion,
    Timestamp, TokenDigest, User, UserData, UserId, Username, WrappedDataKey,
};

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Another account already uses this e-mail address.
    #[error("email already in use")]
    EmailTaken,
    /// Another account already uses this username.
    #[error("username already in use")]
    UsernameTaken,
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// Persistence of accounts and their wrapped data keys.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait UserRepository: Send + Sync {
    /// Stores the account and its wrapped data key in one transaction: afterwards
    /// either both exist or neither does.
    ///
    /// MUST return [`CreateUserError::EmailTaken`] if another account has the same
    /// email, else [`CreateUserError::UsernameTaken`] if another has the same
    /// username, also when the clash is only discovered by a unique index (a
    /// concurrent registration).
    fn create(&self, new_user: &NewUser) -> Result<(), CreateUserError>;

    /// MUST return `Ok(None)` if no account has this (canonical) email.
    fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepoError>;

    /// MUST return `Ok(None)` if no account has this (canonical) username.
    fn find_by_username(&self, username: &Username) -> Result<Option<User>, RepoError>;

    /// MUST return `Ok(None)` if no account has this id.
    fn find_by_id(&self, id: &UserId) -> Result<Option<User>, RepoError>;

    /// The user's wrapped data key. MUST return `Ok(None)` if the user has none
    /// (for example because the account was deleted).
    fn data_key(&self, owner: &UserId) -> Result<Option<WrappedDataKey>, RepoError>;

    /// The account with this id and its wrapped data key, in one lookup (the secret
    /// routes need both on every request). MUST return `Ok(None)` if no account has
    /// this id, and `Some((user, None))` if the account has no data key.
    fn find_with_data_key(
        &self,
        id: &UserId,
    ) -> Result<Option<(User, Option<WrappedDataKey>)>, RepoError>;

    /// The username and wrapped data key of the account with this id, if this
    /// repository holds them in memory: what [`Self::find_with_data_key`] last
    /// returned for it, unless a write since may have changed them.
    ///
    /// MUST NOT block: no query, no lock held by anything but other memory
    /// lookups. `None` says nothing about whether the account exists; the caller
    /// asks [`Self::find_with_data_key`] instead. The default holds nothing.
    fn find_with_data_key_in_memory(
        &self,
        id: &UserId,
    ) -> Option<(Username, Option<WrappedDataKey>)> {
        let _ = id;
        None
    }

    /// Sets the role of the account named `username`. MUST return its id, or
    /// `Ok(None)` if there is no such account.
    fn set_role(&self, username: &Username, role: Role) -> Result<Option<UserId>, RepoError>;

    /// Replaces the account's free-form data. MUST return `Ok(false)` if no account
    /// has this id.
    fn update_data(&self, id: &UserId, data: &UserData) -> Result<bool, RepoError>;

    /// Replaces the account's password hash. MUST return `Ok(false)` if no account
    /// has this id.
    fn update_password_hash(&self, id: &UserId, hash: &PasswordHash) -> Result<bool, RepoError>;

    /// Deletes the account in one transaction: its wrapped data key first (so that
    /// no copy of its ciphertexts can be opened again, even from a backup taken
    /// later), then the account with all of its secrets and sessions. MUST return
    /// `Ok(false)` if no account has this id.
    fn delete(&self, id: &UserId) -> Result<bool, RepoError>;
}

/// One new version of a secret, for [`SecretRepository::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionWrite {
    /// The owner.
    pub owner: UserId,
    /// The secret's name.
    pub name: SecretName,
    /// The version this write replaces: the newest version the caller saw, or
    /// `None` when the caller saw no secret of this name and creates it.
    pub base: Option<SecretVersion>,
    /// The new value, sealed for version `base + 1` (or 1).
    pub sealed: SealedData,
    /// New metadata, or `None` to keep what is stored (`{}` for a new secret).
    pub metadata: Option<SecretMetadata>,
    /// When the write happens.
    pub now: Timestamp,
    /// How many versions to keep, this one included.
    pub keep_versions: u64,
    /// How many secrets the owner may have, when this write creates one.
    pub max_secrets: u64,
}

impl VersionWrite {
    /// The version this write creates.
    pub fn version(&self) -> SecretVersion {
        self.base.map_or(SecretVersion::FIRST, SecretVersion::next)
    }
}

/// What [`SecretRepository::write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The version was stored; this is the secret now.
    Written(Secret),
    /// What is stored is no longer what the write was based on (another write
    /// came first, or the secret was created or destroyed meanwhile). Nothing was
    /// changed.
    Conflict,
    /// Creating the secret would exceed the owner's limit. Nothing was changed.
    TooManySecrets,
}

/// Persistence of secrets and their sealed versions. Implementations never see
/// plaintext.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SecretRepository: Send + Sync {
    /// The secret (live or soft-deleted) without any version. MUST return
    /// `Ok(None)` if the owner has no secret of that name.
    fn find(&self, owner: &UserId, name: &SecretName) -> Result<Option<Secret>, RepoError>;

    /// The secret with one of its versions: `version`, or the newest when `None`,
    /// in one lookup. MUST return `Ok(None)` if the owner has no secret of that
    /// name, and `Some((secret, None))` if the version is not kept.
    fn read(
        &self,
        owner: &UserId,
        name: &SecretName,
        version: Option<SecretVersion>,
    ) -> Result<Option<(Secret, Option<StoredVersion>)>, RepoError>;

    /// What [`Self::read`] with `version == None` would return, if this
    /// repository holds it in memory: what it last read or wrote of this secret,
    /// unless a write since may have changed it.
    ///
    /// MUST NOT block. `None` says nothing about whether the secret exists; the
    /// caller asks [`Self::read`] instead. The default holds nothing.
    fn read_newest_in_memory(
        &self,
        owner: &UserId,
        name: &SecretName,
    ) -> Option<(Secret, Option<StoredVersion>)> {
        let _ = (owner, name);
        None
    }

    /// Stores a new version, atomically and durably when it returns `Ok`:
    /// - with `write.base == None`, MUST create the secret with version 1, unless
    ///   the owner already has a secret of that name ([`WriteOutcome::Conflict`])
    ///   or has `max_secrets` secrets ([`WriteOutcome::TooManySecrets`]);
    /// - with `write.base == Some(v)`, MUST write version `v + 1` only if the newest
    ///   stored version is still `v`, else [`WriteOutcome::Conflict`]. It clears a
    ///   soft delete, replaces the metadata if given, and destroys the versions
    ///   beyond the newest `keep_versions`.
    ///
    /// Of two concurrent writes based on the same version at most one succeeds.
    /// MUST return an error if the owner does not exist.
    fn write(&self, write: &VersionWrite) -> Result<WriteOutcome, RepoError>;

    /// A page of the owner's secrets in byte order of name, per `query`.
    fn list(&self, owner: &UserId, query: &SecretListQuery) -> Result<Vec<Secret>, RepoError>;

    /// Soft-deletes the secret at `at` (`Some`), keeping an earlier deletion time, or
    /// restores it (`None`). MUST return the secret as it is afterwards, or
    /// `Ok(None)` if the owner has no secret of that name.
    fn set_deleted(
        &self,
        owner: &UserId,
        name: &SecretName,
        at: Option<Timestamp>,
    ) -> Result<Option<Secret>, RepoError>;

    /// Removes the secret and every version of it for good. MUST return `Ok(false)`
    /// if the owner has no secret of that name.
    fn destroy(&self, owner: &UserId, name: &SecretName) -> Result<bool, RepoError>;
}

/// The wrapped data keys, as key rotation sees them.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait DataKeyRepository: Send + Sync {
    /// How many data keys each master key wraps, by master key id.
    fn count_by_master_key(&self) -> Result<Vec<(KeyId, u64)>, RepoError>;

    /// Up to `limit` data keys that are not wrapped by `master`, with their owners.
    fn not_wrapped_by(
        &self,
        master: &KeyId,
        limit: usize,
    ) -> Result<Vec<(UserId, WrappedDataKey)>, RepoError>;

    /// Replaces `owner`'s wrapped data key `old` with `new` (the same data key,
    /// wrapped again), only if `old` is still what is stored. MUST return whether
    /// it replaced it.
    fn replace(
        &self,
        owner: &UserId,
        old: &WrappedDataKey,
        new: &WrappedDataKey,
    ) -> Result<bool, RepoError>;
}

/// What presenting a refresh token did to its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRotation {
    /// The token was live: it is now spent, the replacement is live, and this is
    /// its session.
    Rotated(Session),
    /// The token had already been spent: somebody is replaying it. Nothing was
    /// changed; this is the session it belonged to.
    Reused(Session),
    /// No live session has this token.
    Unknown,
}

/// Persistence of login sessions and their refresh tokens and cookies, stored only
/// as digests.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SessionRepository: Send + Sync {
    /// Stores a new session with its first credential: for a bearer session
    /// `credential` is the digest of its first refresh token, for a cookie session
    /// the digest of its cookie. MUST also delete the user's expired sessions.
    /// MUST return an error if the user does not exist.
    fn create(&self, session: &Session, credential: &TokenDigest) -> Result<(), RepoError>;

    /// MUST return `Ok(None)` if no session has this id. Expired sessions MAY be
    /// returned; callers check [`Session::is_live`].
    fn find(&self, id: &SessionId) -> Result<Option<Session>, RepoError>;

    /// The cookie session whose cookie has this digest. MUST return `Ok(None)` if
    /// there is none.
    fn find_by_cookie(&self, cookie: &TokenDigest) -> Result<Option<Session>, RepoError>;

    /// The session with this id, if this repository holds it in memory: what
    /// [`Self::find`] or [`Self::find_by_cookie`] last returned for it, with the
    /// last [`Self::touch`], unless it may have ended since.
    ///
    /// MUST NOT block, and MUST NOT return a session that any call of this
    /// repository has ended, or that another process could have ended: an ended
    /// session must be refused at once. `None` says nothing about whether the
    /// session exists; the caller asks [`Self::find`] instead. The default holds
    /// nothing.
    fn find_in_memory(&self, id: &SessionId) -> Option<Session> {
        let _ = id;
        None
    }

    /// [`Self::find_in_memory`] for [`Self::find_by_cookie`].
    fn find_by_cookie_in_memory(&self, cookie: &TokenDigest) -> Option<Session> {
        let _ = cookie;
        None
    }

    /// Records that the session was used at `now`.
    fn touch(&self, id: &SessionId, now: Timestamp) -> Result<(), RepoError>;

    /// The user's sessions that are live at `now`, newest first.
    fn list(&self, user: &UserId, now: Timestamp) -> Result<Vec<Session>, RepoError>;

    /// Ends (deletes) the session and its refresh tokens. MUST return `Ok(false)` if
    /// no session has this id.
    fn end(&self, id: &SessionId) -> Result<bool, RepoError>;

    /// Ends every session of `user` except `keep`; returns how many ended.
    fn end_others(&self, user: &UserId, keep: &SessionId) -> Result<u64, RepoError>;

    /// Ends every session of `user` (the account is being deleted); returns how
    /// many ended. MUST NOT fail when the user has none.
    fn end_all(&self, user: &UserId) -> Result<u64, RepoError>;

    /// Spends the refresh token `presented` and makes `replacement` its session's
    /// live refresh token, atomically: of two concurrent calls with the same token
    /// at most one MUST see [`RefreshRotation::Rotated`]. MUST return
    /// [`RefreshRotation::Reused`] without changing anything if `presented` was
    /// already spent, and [`RefreshRotation::Unknown`] if no session holds it.
    fn rotate_refresh(
        &self,
        presented: &TokenDigest,
        replacement: &TokenDigest,
        now: Timestamp,
    ) -> Result<RefreshRotation, RepoError>;
}

/// Makes the opaque tokens of sessions (refresh tokens, cookies) and their digests.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait OpaqueTokens: Send + Sync {
    /// MUST return a fresh token of at least 256 bits from a cryptographically secure
    /// random source, with its digest.
    fn generate(&self) -> Result<(OpaqueToken, TokenDigest), TokenError>;

    /// MUST return the same digest that [`Self::generate`] returned for `token`, and
    /// a one-way one: the token cannot be recovered from it.
    fn digest(&self, token: &OpaqueToken) -> TokenDigest;
}

/// The password hasher failed (it did not merely find a mismatch).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(#[source] pub BoxError);

/// One-way password hashing (bcrypt in production).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait PasswordHasher: Send + Sync {
    /// Hashes a policy-conforming password with a fresh salt. MUST return a hash
    /// that [`Self::verify`] accepts for exactly this password.
    fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;

    /// MUST return `Ok(true)` only if `attempt` is exactly the password that produced
    /// `hash`. MUST NOT truncate: an attempt longer than the algorithm can read MUST
    /// return `Ok(false)` after the same amount of work as any other attempt.
    fn verify(&self, attempt: &PasswordAttempt, hash: &PasswordHash) -> Result<bool, HashError>;

    /// A valid hash of an unguessable password, at the configured cost. Login verifies
    /// against it when the account does not exist, so that an unknown account costs
    /// the same work as a wrong password. MUST be cheap to call (computed once).
    fn dummy_hash(&self) -> PasswordHash;
}

/// When repeated login failures lock an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures within `window_secs` that lock the account.
    pub threshold: u32,
    /// The sliding window failures are counted in, in seconds.
    pub window_secs: u64,
    /// How long a lock lasts, in seconds.
    pub duration_secs: u64,
}

impl Default for LockoutPolicy {
    /// Vault's: 5 failures in 15 minutes lock for 15 minutes.
    fn default() -> Self {
        Self {
            threshold: 5,
            window_secs: 15 * 60,
            duration_secs: 15 * 60,
        }
    }
}

/// Counts failed attempts per key (an account) and locks keys that fail too often.
/// Implementations may keep state in memory, a database or Redis; several server
/// instances sharing one implementation see the same counts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait AttemptLimiter: Send + Sync {
    /// MUST return `Some(seconds until the lock lifts)` (at least 1) if `key` is
    /// locked at `now`, else `None`.
    fn locked_for(&self, key: &str, now: Timestamp) -> Result<Option<u64>, RepoError>;

    /// Records one failure of `key` at `now`. When this failure makes
    /// `policy.threshold` failures within the last `policy.window_secs`, MUST lock
    /// `key` for `policy.duration_secs` and return `true`; otherwise `false`.
    fn record_failure(
        &self,
        key: &str,
        now: Timestamp,
        policy: &LockoutPolicy,
    ) -> Result<bool, RepoError>;

    /// MUST forget every failure of `key` (a successful login resets the count).
    fn reset(&self, key: &str) -> Result<(), RepoError>;
}

/// A token-bucket rate limiter keyed by a string (for example a client IP).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait RateLimiter: Send + Sync {
    /// Takes one token from `key`'s bucket. MUST return `None` if a token was
    /// available and `Some(seconds until the next token)` (at least 1) if not.
    fn acquire(&self, key: &str) -> Result<Option<u64>, RepoError>;
}

/// The audit log of security events.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait AuditLog: Send + Sync {
    /// Records `event`. MAY buffer and write shortly after; MUST NOT fail or block
    /// the caller's operation on slow storage: an adapter that cannot keep up
    /// reports that itself.
    fn record(&self, event: AuditEvent);

    /// Records `event` only if the log can take it now, and says so: on `Err`
    /// nothing was recorded. For what must not happen unrecorded: a secret's
    /// value is returned only once its read is recorded, so a log that falls
    /// behind refuses reads rather than lets them go unaudited. MUST NOT block,
    /// and SHOULD keep room for [`Self::record`]'s events when it refuses
    /// these. The default records and succeeds, for logs that never refuse.
    fn record_or_refuse(&self, event: AuditEvent) -> Result<(), AuditRefused> {
        self.record(event);
        Ok(())
    }

    /// A page of events, newest first. MUST return only `query.user`'s events when
    /// it is set, and only events older than `query.before` when that is set.
    fn list(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, RepoError>;

    /// Deletes events that happened before `cutoff`; returns how many.
    fn prune(&self, cutoff: Timestamp) -> Result<u64, RepoError>;
}

/// The audit log could not take an event now (it is behind); nothing was
/// recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audit log is not keeping up; the event was not recorded")]
pub struct AuditRefused;

/// A list of known breached or very common passwords.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait BreachedPasswords: Send + Sync {
    /// MUST return `true` if the password whose [`crate::breach_key`] is `key` is on
    /// the list. MUST NOT do network I/O: it runs inline on request threads.
    fn contains(&self, key: &str) -> bool;
}

/// Why a cipher operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    /// The data was sealed by a key this cipher does not hold.
    #[error("unknown key {0}")]
    UnknownKey(KeyId),
    /// Authentication failed: the ciphertext, its key or its associated data was
    /// altered or moved. Never returned as garbage plaintext.
    #[error("integrity check failed")]
    Integrity,
    /// The cipher could not run (for example the random number generator failed).
    #[error("cipher failure: {0}")]
    Failure(#[source] BoxError),
}

/// Envelope encryption of secrets: a master key wraps each user's data key, and the
/// data key seals that user's secrets.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SecretCipher: Send + Sync {
    /// MUST generate a fresh random 256-bit data key and return it wrapped by the
    /// current master key, bound to `owner`, so that the wrapped key only unwraps for
    /// that owner.
    fn new_data_key(&self, owner: &UserId) -> Result<WrappedDataKey, CipherError>;

    /// MUST encrypt `value` with the data key in `key` under a fresh random nonce, with
    /// `owner`, `name` and `version` as associated data, and record the data key's
    /// id in the result. Two calls MUST NOT produce the same nonce.
    fn seal(
        &self,
        key: &WrappedDataKey,
        owner: &UserId,
        name: &SecretName,
        version: SecretVersion,
        value: &SecretValue,
    ) -> Result<SealedData, CipherError>;

    /// MUST return [`CipherError::Integrity`] if `sealed` was altered, or was sealed
    /// for another owner, name, version or data key.
    fn open(
        &self,
        key: &WrappedDataKey,
        owner: &UserId,
        name: &SecretName,
        version: SecretVersion,
        sealed: &SealedData,
    ) -> Result<SecretValue, CipherError>;

    /// The id of the master key that wraps new data keys (the newest of the ring).
    fn sealing_key(&self) -> KeyId;

    /// The ids of every master key this cipher holds, oldest first.
    fn key_ring(&self) -> Vec<KeyId>;

    /// The same data key wrapped by the sealing master key, or `Ok(None)` if it is
    /// already. MUST return [`CipherError::UnknownKey`] if `key` is wrapped by a
    /// master key this cipher does not hold.
    fn rewrap(
        &self,
        key: &WrappedDataKey,
        owner: &UserId,
    ) -> Result<Option<WrappedDataKey>, CipherError>;
}

/// A signed access token. Zeroized on drop; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps an encoded token.
    pub fn new(encoded: String) -> Self {
        Self(encoded)
    }

    /// The encoded token, for the response writer only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted(f, "AccessToken")
    }
}

/// A freshly issued access token and its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The encoded token.
    pub token: AccessToken,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The user the token was issued to.
    pub subject: UserId,
    /// The session it was issued for (`sid`).
    pub session: SessionId,
    /// The token's unique id (`jti`).
    pub token_id: String,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops being valid.
    pub expires_at: Timestamp,
}

/// Why a token was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Malformed, forged, signed with another algorithm or key, or for another
    /// issuer or audience.
    #[error("invalid token")]
    Invalid,
    /// Correctly signed but past its expiry.
    #[error("expired token")]
    Expired,
    /// A token could not be issued.
    #[error("token failure: {0}")]
    Failure(#[source] BoxError),
}

/// Issues and verifies access tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait TokenIssuer: Send + Sync {
    /// MUST issue a token naming `subject` and `session`, valid from the clock's now
    /// for the configured lifetime, with a unique token id.
    fn issue(&self, subject: &UserId, session: &SessionId) -> Result<IssuedToken, TokenError>;

    /// MUST return [`TokenError::Invalid`] unless `token` was issued by this issuer's
    /// key and algorithm for its issuer and audience and names a session, and
    /// [`TokenError::Expired`] if its expiry is not after the clock's now.
    fn verify(&self, token: &str) -> Result<TokenClaims, TokenError>;
}

/// Every port, as the use cases take them. Cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct Ports {
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// Sealed secrets.
    pub secrets: Arc<dyn SecretRepository>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Envelope encryption.
    pub cipher: Arc<dyn SecretCipher>,
    /// Access tokens.
    pub tokens: Arc<dyn TokenIssuer>,
    /// Login sessions.
    pub sessions: Arc<dyn SessionRepository>,
    /// Refresh tokens and session cookies.
    pub opaque_tokens: Arc<dyn OpaqueTokens>,
    /// Login failure counting.
    pub attempts: Arc<dyn AttemptLimiter>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

/// The current time. A port so that tests can fix it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// MUST return now, in whole seconds since the Unix epoch (UTC).
    fn now(&self) -> Timestamp;
}
