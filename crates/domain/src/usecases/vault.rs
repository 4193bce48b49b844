//! The vault: many named secrets per user, each with its kept versions, written
//! with check-and-set, soft-deleted and restored, or destroyed.
//!
//! [`super::SetSecret`] and [`super::GetSecret`] (the single-secret routes) use the
//! same writes and reads, on the secret named `default`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use super::{live_session, live_session_in_memory};
use crate::ports::{CipherError, Ports, VersionWrite, WriteOutcome};
use crate::{
    AuditAction, AuditEvent, AuditOutcome, Credential, Origin, RepoError, Secret, SecretListQuery,
    SecretMetadata, SecretName, SecretValue, SecretVersion, StoredVersion, Timestamp, UserId,
    VaultLimits, WrappedDataKey,
};

/// Writes to one secret from this process queue on one of these locks (picked
/// by owner and name) instead of racing: without them, many concurrent writers
/// of one secret would keep moving its newest version under each other and
/// some would give up with [`VaultError::Busy`]. The check-and-set in the
/// repository still decides between processes.
static WRITE_STRIPES: [Mutex<()>; 64] = [const { Mutex::new(()) }; 64];

/// How long a write waits for its turn before it gives up as [`VaultError::Busy`],
/// so that a burst of writes to one secret cannot hold blocking threads forever.
const WRITE_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Takes the lock of `stripe`, waiting at most [`WRITE_QUEUE_WAIT`] (parked,
/// woken in turn as the lock is released).
fn queue_on(stripe: &'static Mutex<()>) -> Result<MutexGuard<'static, ()>, VaultError> {
    stripe
        .try_lock_for(WRITE_QUEUE_WAIT)
        .ok_or(VaultError::Busy)
}

fn write_stripe(owner: &UserId, name: &SecretName) -> &'static Mutex<()> {
    let mut hasher = DefaultHasher::new();
    owner.hash(&mut hasher);
    name.hash(&mut hasher);
    let index = usize::try_from(hasher.finish() % WRITE_STRIPES.len() as u64).unwrap_or(0);
    &WRITE_STRIPES[index]
}

/// How often a write whose base moved underneath it is tried before giving up.
/// Every round re-reads the secret and checks the precondition again, so a write
/// with `If-Match` whose version moved ends in `PreconditionFailed`, not a retry.
const WRITE_ATTEMPTS: usize = 8;

/// Why a vault operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The credential no longer stands for anyone, or (on the single-secret routes)
    /// the claimed username is not the caller's.
    #[error("not authorized")]
    NotAuthorized,
    /// The caller has no live secret of that name.
    #[error("secret not found")]
    NotFound,
    /// The secret exists but does not keep this version.
    #[error("version {0} is not kept")]
    VersionNotKept(SecretVersion),
    /// A check-and-set precondition failed; the text says why.
    #[error("{0}")]
    PreconditionFailed(String),
    /// Creating the secret would exceed the caller's limit.
    #[error("you have {0} secrets, the most allowed; delete one with ?destroy=true first")]
    TooManySecrets(u64),
    /// Concurrent writes kept moving the secret's newest version; retry.
    #[error("the secret is being written concurrently; retry")]
    Busy,
    /// The account exists but has no data key: the store is inconsistent.
    #[error("the account has no data key")]
    MissingDataKey,
    /// A stored ciphertext failed authentication: it was altered or moved.
    #[error("stored secret failed its integrity check")]
    Integrity,
    /// Sealing or opening failed for another reason (for example an unknown
    /// master key).
    #[error(transparent)]
    Cipher(CipherError),
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

impl From<CipherError> for VaultError {
    fn from(err: CipherError) -> Self {
        match err {
            CipherError::Integrity => Self::Integrity,
            other => Self::Cipher(other),
        }
    }
}

impl VaultError {
    /// The audit outcome of a failed operation: `Failure` for what the caller was
    /// refused, `None` (not audited) for the server's own failures.
    fn audit_outcome(&self) -> Option<AuditOutcome> {
        match self {
            Self::NotAuthorized
            | Self::NotFound
            | Self::VersionNotKept(_)
            | Self::PreconditionFailed(_)
            | Self::TooManySecrets(_) => Some(AuditOutcome::Failure),
            Self::Busy
            | Self::MissingDataKey
            | Self::Integrity
            | Self::Cipher(_)
            | Self::Repository(_) => None,
        }
    }
}

/// What a write requires of the stored secret (HTTP's `If-Match` and
/// `If-None-Match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Nothing: the write becomes the next version, whatever that is.
    None,
    /// The newest version must be exactly this one.
    Version(SecretVersion),
    /// The secret must exist (live or soft-deleted).
    Exists,
    /// The secret must not exist: create only.
    Absent,
}

impl Precondition {
    /// Checks the precondition against what is stored.
    fn check(self, current: Option<&Secret>, name: &SecretName) -> Result<(), VaultError> {
        let failed = |why: String| Err(VaultError::PreconditionFailed(why));
        match (self, current) {
            (Self::None, _) | (Self::Exists, Some(_)) | (Self::Absent, None) => Ok(()),
            (Self::Version(_) | Self::Exists, None) => {
                failed(format!("no secret named '{}' exists", name.as_str()))
            }
            (Self::Version(expected), Some(secret)) if secret.version != expected => {
                failed(format!(
                    "the secret is at version {}, not {expected}",
                    secret.version
                ))
            }
            (Self::Version(_), Some(_)) => Ok(()),
            (Self::Absent, Some(_)) => {
                failed(format!("a secret named '{}' already exists", name.as_str()))
            }
        }
    }
}

/// A new value for a secret.
#[derive(Debug)]
pub struct PutSecret {
    /// The secret's name.
    pub name: SecretName,
    /// The value.
    pub value: SecretValue,
    /// New metadata, or `None` to keep the stored metadata.
    pub metadata: Option<SecretMetadata>,
    /// What the write requires of the stored secret.
    pub precondition: Precondition,
}

/// What a write stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The secret as it is now.
    pub secret: Secret,
    /// Whether the write created the secret.
    pub created: bool,
}

/// One version of a secret, opened.
#[derive(Debug)]
pub struct OpenedSecret {
    /// The secret.
    pub secret: Secret,
    /// The version that was opened.
    pub version: StoredVersion,
    /// Its value.
    pub value: SecretValue,
}

/// A page of the caller's secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPage {
    /// The secrets, in name order.
    pub secrets: Vec<Secret>,
    /// Where the next page starts (after this name), or `None` on the last page.
    pub next_after: Option<SecretName>,
}

/// Seals `value` as the next version of `owner`'s secret `name`, checking
/// `precondition` against what is stored, and retrying when another write moves the
/// newest version in between (only without a precondition).
pub(super) fn write_version(
    ports: &Ports,
    limits: &VaultLimits,
    owner: UserId,
    key: &WrappedDataKey,
    put: &PutSecret,
    now: Timestamp,
) -> Result<Written, VaultError> {
    let _queued = queue_on(write_stripe(&owner, &put.name))?;
    for _ in 0..WRITE_ATTEMPTS {
        let current = ports.secrets.find(&owner, &put.name)?;
        put.precondition.check(current.as_ref(), &put.name)?;
        let base = current.map(|secret| secret.version);
        let version = base.map_or(SecretVersion::FIRST, SecretVersion::next);
        let sealed = ports
            .cipher
            .seal(key, &owner, &put.name, version, &put.value)?;
        let write = VersionWrite {
            owner,
            name: put.name.clone(),
            base,
            sealed,
            metadata: put.metadata.clone(),
            now,
            keep_versions: limits.max_versions,
            max_secrets: limits.max_secrets,
        };
        match ports.secrets.write(&write)? {
            WriteOutcome::Written(secret) => {
                return Ok(Written {
                    secret,
                    created: base.is_none(),
                });
            }
            WriteOutcome::TooManySecrets => {
                return Err(VaultError::TooManySecrets(limits.max_secrets));
            }
            // The next round sees the new state and checks the precondition again.
            WriteOutcome::Conflict => {}
        }
    }
    Err(VaultError::Busy)
}

/// Reads and opens `version` (the newest when `None`) of `owner`'s live secret
/// `name`.
pub(super) fn read_version(
    ports: &Ports,
    owner: UserId,
    key: Option<WrappedDataKey>,
    name: &SecretName,
    version: Option<SecretVersion>,
) -> Result<OpenedSecret, VaultError> {
    let (secret, stored) = ports
        .secrets
        .read(&owner, name, version)?
        .filter(|(secret, _)| secret.is_live())
        .ok_or(VaultError::NotFound)?;
    let stored = match (stored, version) {
        (Some(stored), _) => stored,
        (None, Some(version)) => return Err(VaultError::VersionNotKept(version)),
        (None, None) => {
            return Err(RepoError::internal(format!(
                "the newest version {} of a secret is missing",
                secret.version
            ))
            .into());
        }
    };
    let key = key.ok_or(VaultError::MissingDataKey)?;
    let value = ports
        .cipher
        .open(&key, &owner, name, stored.version, &stored.sealed)?;
    Ok(OpenedSecret {
        secret,
        version: stored,
        value,
    })
}

/// [`read_version`] of the newest version, without blocking: the secret when the
/// secrets port holds it in memory, it is live, and it opens. `None` in every
/// other case; the caller then takes the blocking path, which reads storage and
/// gives the precise answer (a failure to open included).
pub(super) fn read_newest_in_memory(
    ports: &Ports,
    owner: UserId,
    key: Option<&WrappedDataKey>,
    name: &SecretName,
) -> Option<OpenedSecret> {
    let (secret, stored) = ports.secrets.read_newest_in_memory(&owner, name)?;
    let stored = stored.filter(|_| secret.is_live())?;
    let value = ports
        .cipher
        .open(key?, &owner, name, stored.version, &stored.sealed)
        .ok()?;
    Some(OpenedSecret {
        secret,
        version: stored,
        value,
    })
}

/// Records a successful read of one of `owner`'s secrets, or refuses it: the
/// value must not be returned when its read cannot be recorded
/// ([`AuditLog::record_or_refuse`](crate::ports::AuditLog::record_or_refuse)).
pub(super) fn audit_read(
    ports: &Ports,
    now: Timestamp,
    origin: &Origin,
    owner: UserId,
) -> Result<(), VaultError> {
    ports
        .audit
        .record_or_refuse(AuditEvent::new(
            now,
            origin,
            Some(owner),
            AuditAction::SecretRead,
            AuditOutcome::Success,
        ))
        .map_err(|refused| RepoError::Unavailable(Box::new(refused)).into())
}

/// Records `action` for `result`, as [`audit`] does, except that a successful
/// read is recorded with [`audit_read`] and becomes unavailable when it cannot
/// be.
pub(super) fn audit_outcome<T>(
    ports: &Ports,
    now: Timestamp,
    origin: &Origin,
    who: Option<UserId>,
    action: AuditAction,
    result: Result<T, VaultError>,
) -> Result<T, VaultError> {
    match (action, &result, who) {
        (AuditAction::SecretRead, Ok(_), Some(owner)) => {
            audit_read(ports, now, origin, owner).and(result)
        }
        _ => {
            audit(ports, now, origin, who, action, &result);
            result
        }
    }
}

/// Records `action` for `result`: who did it, and its outcome.
pub(super) fn audit<T>(
    ports: &Ports,
    now: Timestamp,
    origin: &Origin,
    who: Option<UserId>,
    action: AuditAction,
    result: &Result<T, VaultError>,
) {
    let outcome = match result {
        Ok(_) => Some(AuditOutcome::Success),
        Err(err) => err.audit_outcome(),
    };
    if let Some(outcome) = outcome {
        ports
            .audit
            .record(AuditEvent::new(now, origin, who, action, outcome));
    }
}

/// The vault's operations on the caller's own secrets. Each is audited: a write as
/// `secret.write`, a read as `secret.read`, a listing as `secret.list`, and
/// `secret.delete`, `secret.undelete` and `secret.destroy`.
///
/// Another user's secret is indistinguishable from a missing one.
pub struct Vault {
    ports: Ports,
    limits: VaultLimits,
}

impl Vault {
    /// Builds the use case.
    pub fn new(ports: &Ports, limits: VaultLimits) -> Self {
        Self {
            ports: ports.clone(),
            limits,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &VaultLimits {
        &self.limits
    }

    /// Runs `op` for the caller (the owner of the credential's live session) and
    /// audits it as `action`.
    fn as_caller<T>(
        &self,
        credential: &Credential,
        origin: &Origin,
        action: AuditAction,
        op: impl FnOnce(UserId, Timestamp) -> Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        let now = self.ports.clock.now();
        let (who, result) = match live_session(&self.ports, credential, now) {
            Ok(Some(session)) => (Some(session.user_id), op(session.user_id, now)),
            Ok(None) => (credential.claimed_user(), Err(VaultError::NotAuthorized)),
            Err(err) => (None, Err(err.into())),
        };
        audit_outcome(&self.ports, now, origin, who, action, result)
    }

    /// The caller's data key. `NotAuthorized` if the account is gone.
    fn data_key(&self, owner: &UserId) -> Result<Option<WrappedDataKey>, VaultError> {
        match self.ports.users.find_with_data_key(owner)? {
            Some((_, key)) => Ok(key),
            None => Err(VaultError::NotAuthorized),
        }
    }

    /// Writes `put.value` as the next version of the caller's secret `put.name`,
    /// creating the secret or restoring a soft-deleted one.
    pub fn put(
        &self,
        credential: &Credential,
        put: &PutSecret,
        origin: &Origin,
    ) -> Result<Written, VaultError> {
        self.as_caller(
            credential,
            origin,
            AuditAction::SecretWrite,
            |owner, now| {
                let key = self.data_key(&owner)?.ok_or(VaultError::MissingDataKey)?;
                write_version(&self.ports, &self.limits, owner, &key, put, now)
            },
        )
    }

    /// Opens `version` (the newest when `None`) of the caller's live secret `name`.
    pub fn get(
        &self,
        credential: &Credential,
        name: &SecretName,
        version: Option<SecretVersion>,
        origin: &Origin,
    ) -> Result<OpenedSecret, VaultError> {
        self.as_caller(credential, origin, AuditAction::SecretRead, |owner, _| {
            let key = self.data_key(&owner)?;
            read_version(&self.ports, owner, key, name, version)
        })
    }

    /// [`Self::get`] of the newest version without blocking, for async callers:
    /// `Some` when the ports hold the caller's session, data key and secret in
    /// memory and it opens, with exactly what `get` would return, audited the
    /// same way. `None` when that cannot be known without storage, and for every
    /// failure: the caller then runs `get`, on a blocking thread, which answers
    /// and audits it. Nothing is recorded for a `None`.
    pub fn get_in_memory(
        &self,
        credential: &Credential,
        name: &SecretName,
        origin: &Origin,
    ) -> Option<OpenedSecret> {
        let now = self.ports.clock.now();
        let session = live_session_in_memory(&self.ports, credential, now)?;
        let (_, key) = self
            .ports
            .users
            .find_with_data_key_in_memory(&session.user_id)?;
        let opened = read_newest_in_memory(&self.ports, session.user_id, key.as_ref(), name)?;
        // Not recorded: the blocking path then answers (and refuses) it.
        audit_read(&self.ports, now, origin, session.user_id).ok()?;
        Some(opened)
    }

    /// A page of the caller's secrets, without values.
    pub fn list(
        &self,
        credential: &Credential,
        query: &SecretListQuery,
        origin: &Origin,
    ) -> Result<SecretPage, VaultError> {
        self.as_caller(credential, origin, AuditAction::SecretList, |owner, _| {
            let mut secrets = self.ports.secrets.list(
                &owner,
                &SecretListQuery {
                    limit: query.limit + 1,
                    ..query.clone()
                },
            )?;
            let next_after = if secrets.len() > query.limit {
                secrets.truncate(query.limit);
                secrets.last().map(|secret| secret.name.clone())
            } else {
                None
            };
            Ok(SecretPage {
                secrets,
                next_after,
            })
        })
    }

    /// Soft-deletes the caller's secret `name`: reads then answer not found until
    /// it is restored. Deleting a deleted secret succeeds again.
    pub fn delete(
        &self,
        credential: &Credential,
        name: &SecretName,
        origin: &Origin,
    ) -> Result<(), VaultError> {
        self.as_caller(
            credential,
            origin,
            AuditAction::SecretDelete,
            |owner, now| {
                self.ports
                    .secrets
                    .set_deleted(&owner, name, Some(now))?
                    .map(drop)
                    .ok_or(VaultError::NotFound)
            },
        )
    }

    /// Restores the caller's soft-deleted secret `name` (a live one is left as it
    /// is).
    pub fn undelete(
        &self,
        credential: &Credential,
        name: &SecretName,
        origin: &Origin,
    ) -> Result<Secret, VaultError> {
        self.as_caller(
            credential,
            origin,
            AuditAction::SecretUndelete,
            |owner, _| {
                self.ports
                    .secrets
                    .set_deleted(&owner, name, None)?
                    .ok_or(VaultError::NotFound)
            },
        )
    }

    /// Removes the caller's secret `name` and every version of it for good.
    pub fn destroy(
        &self,
        credential: &Credential,
        name: &SecretName,
        origin: &Origin,
    ) -> Result<(), VaultError> {
        self.as_caller(
            credential,
            origin,
            AuditAction::SecretDestroy,
            |owner, _| {
                if self.ports.secrets.destroy(&owner, name)? {
                    Ok(())
                } else {
                    Err(VaultError::NotFound)
                }
            },
        )
    }
}

#[cfg(test)]
#[path = "vault_tests.rs"]
mod tests;

#[cfg(test)]
mod queue_tests {
    use super::*;

    #[test]
    fn a_write_gives_up_as_busy_when_its_turn_does_not_come() {
        static STRIPE: Mutex<()> = Mutex::new(());
        let held = STRIPE.lock();
        let waiter = std::thread::spawn(|| queue_on(&STRIPE).map(drop));
        assert!(matches!(waiter.join().unwrap(), Err(VaultError::Busy)));
        drop(held);
        assert!(queue_on(&STRIPE).is_ok());
    }
}
