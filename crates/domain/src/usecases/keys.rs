//! Master key rotation: re-wrapping every user's data key under the newest master
//! key of the ring, and reporting which master keys still wrap data keys.
//!
//! Only the wrapping changes. A data key keeps its id and its 256 bits, so every
//! secret it sealed opens as before, and a server holding both the old and the
//! new master key reads every secret at every moment of a rotation.

use std::sync::Arc;

use crate::KeyId;
use crate::ports::{CipherError, DataKeyRepository, SecretCipher};
use crate::{RepoError, UserId};

/// Why a rotation stopped.
#[derive(Debug, thiserror::Error)]
pub enum RotateKeysError {
    /// A data key could not be re-wrapped: its master key is not in the ring, or
    /// the wrapped key failed its integrity check.
    #[error("the data key of user {owner} cannot be re-wrapped: {source}")]
    Cipher {
        /// Whose data key it is.
        owner: UserId,
        /// Why.
        #[source]
        source: CipherError,
    },
    /// The store failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
}

/// How far a rotation has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationProgress {
    /// Data keys re-wrapped by this run so far.
    pub rewrapped: u64,
    /// Data keys that were not wrapped by the sealing key when the run started.
    pub total: u64,
}

/// One master key as the database and the ring see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterKeyStatus {
    /// The key's id.
    pub id: KeyId,
    /// How many data keys it wraps.
    pub data_keys: u64,
    /// Whether the configured ring holds it.
    pub in_ring: bool,
    /// Whether it wraps new data keys (the newest of the ring).
    pub sealing: bool,
}

impl MasterKeyStatus {
    /// Whether the key can be taken out of the ring: it wraps no data key and
    /// does not seal new ones.
    pub fn removable(&self) -> bool {
        self.data_keys == 0 && !self.sealing
    }
}

/// Re-wraps data keys under the sealing master key, and reports per master key.
pub struct RotateKeys {
    keys: Arc<dyn DataKeyRepository>,
    cipher: Arc<dyn SecretCipher>,
}

impl RotateKeys {
    /// Builds the use case.
    pub fn new(keys: Arc<dyn DataKeyRepository>, cipher: Arc<dyn SecretCipher>) -> Self {
        Self { keys, cipher }
    }

    /// Re-wraps, `batch` at a time, every data key that the sealing master key does
    /// not wrap, calling `progress` after each batch. Safe while servers serve
    /// (each swap is a check-and-set on the stored wrapped key) and resumable: a run
    /// that is interrupted leaves every data key wrapped by one key of the ring,
    /// and the next run does what is left. Returns how many it re-wrapped.
    pub fn rotate(
        &self,
        batch: usize,
        progress: &mut dyn FnMut(RotationProgress),
    ) -> Result<u64, RotateKeysError> {
        let sealing = self.cipher.sealing_key();
        let total = self
            .keys
            .count_by_master_key()?
            .into_iter()
            .filter(|(id, _)| *id != sealing)
            .map(|(_, count)| count)
            .sum();
        let mut done = RotationProgress {
            rewrapped: 0,
            total,
        };
        loop {
            let pending = self.keys.not_wrapped_by(&sealing, batch.max(1))?;
            if pending.is_empty() {
                return Ok(done.rewrapped);
            }
            let before = done.rewrapped;
            for (owner, old) in pending {
                let rewrapped = self
                    .cipher
                    .rewrap(&old, &owner)
                    .map_err(|source| RotateKeysError::Cipher { owner, source })?;
                // `None`: already wrapped by the sealing key (the ring changed).
                // A lost check-and-set means the account was deleted meanwhile.
                if let Some(new) = rewrapped
                    && self.keys.replace(&owner, &old, &new)?
                {
                    done.rewrapped += 1;
                }
            }
            if done.rewrapped == before {
                // Every swap of the batch was lost: something else is rewriting
                // these keys (another rotation?). Stop rather than spin.
                return Err(RepoError::internal(
                    "no data key of a batch could be swapped; is another rotation running?",
                )
                .into());
            }
            // Keys written meanwhile by a server with an older ring may appear.
            done.total = done.total.max(done.rewrapped);
            progress(done);
        }
    }

    /// Every master key the database or the ring knows, ring order first.
    pub fn status(&self) -> Result<Vec<MasterKeyStatus>, RepoError> {
        let sealing = self.cipher.sealing_key();
        let mut counts = self.keys.count_by_master_key()?;
        let mut report: Vec<MasterKeyStatus> = self
            .cipher
            .key_ring()
            .into_iter()
            .map(|id| {
                let data_keys = counts
                    .iter()
                    .position(|(counted, _)| *counted == id)
                    .map_or(0, |at| counts.remove(at).1);
                MasterKeyStatus {
                    sealing: id == sealing,
                    id,
                    data_keys,
                    in_ring: true,
                }
            })
            .collect();
        report.extend(counts.into_iter().map(|(id, data_keys)| MasterKeyStatus {
            id,
            data_keys,
            in_ring: false,
            sealing: false,
        }));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ports::{MockDataKeyRepository, MockSecretCipher};
    use crate::usecases::fixtures::boom;
    use crate::{DataKeyId, SealedData, WrappedDataKey};

    fn key(id: &str) -> KeyId {
        KeyId(id.into())
    }

    /// A data key wrapped by the master key `master`.
    fn wrapped(id: DataKeyId, master: &str) -> WrappedDataKey {
        WrappedDataKey {
            id,
            sealed: SealedData {
                key_id: key(master),
                bytes: format!("{} under {master}", id.0).into_bytes(),
            },
        }
    }

    /// `count` users whose data keys the master key "old" wraps.
    fn old_keys(count: usize) -> Vec<(UserId, WrappedDataKey)> {
        (0..count)
            .map(|_| (UserId::generate(), wrapped(DataKeyId::generate(), "old")))
            .collect()
    }

    /// A cipher whose ring is `ring` (the last one seals) and that re-wraps any
    /// data key under "new".
    fn cipher(ring: &[&str]) -> MockSecretCipher {
        let ring: Vec<KeyId> = ring.iter().map(|id| key(id)).collect();
        let sealing = ring.last().unwrap().clone();
        let mut cipher = MockSecretCipher::new();
        cipher.expect_sealing_key().return_const(sealing);
        cipher.expect_key_ring().return_const(ring);
        cipher
            .expect_rewrap()
            .returning(|old, _| Ok(Some(wrapped(old.id, "new"))));
        cipher
    }

    fn rotate(
        keys: MockDataKeyRepository,
        cipher: MockSecretCipher,
        batch: usize,
    ) -> (Result<u64, RotateKeysError>, Vec<RotationProgress>) {
        let mut reports = Vec::new();
        let result = RotateKeys::new(Arc::new(keys), Arc::new(cipher))
            .rotate(batch, &mut |progress| reports.push(progress));
        (result, reports)
    }

    #[test]
    fn rotate_rewraps_in_batches_and_reports_progress() {
        let pending = old_keys(5);
        let mut keys = MockDataKeyRepository::new();
        keys.expect_count_by_master_key()
            .times(1)
            .returning(|| Ok(vec![(key("new"), 7), (key("old"), 5)]));
        // What is still not wrapped by "new": the keys not yet replaced.
        let left = Arc::new(Mutex::new(pending.clone()));
        let listed = Arc::clone(&left);
        keys.expect_not_wrapped_by()
            .withf(|master, limit| *master == key("new") && *limit == 2)
            .times(4)
            .returning(move |_, limit| {
                Ok(listed.lock().unwrap().iter().take(limit).cloned().collect())
            });
        let replaced = Arc::new(Mutex::new(Vec::new()));
        let (swapped, left_over) = (Arc::clone(&replaced), Arc::clone(&left));
        keys.expect_replace()
            .times(5)
            .returning(move |owner, old, new| {
                let mut left = left_over.lock().unwrap();
                let at = left.iter().position(|(o, k)| o == owner && k == old);
                // The same data key, only wrapped again.
                assert_eq!(new.id, old.id);
                swapped.lock().unwrap().push((*owner, new.clone()));
                Ok(at.map(|at| left.remove(at)).is_some())
            });
        let (result, reports) = rotate(keys, cipher(&["old", "new"]), 2);

        assert_eq!(result.unwrap(), 5);
        assert_eq!(
            reports,
            [(2, 5), (4, 5), (5, 5)]
                .map(|(rewrapped, total)| RotationProgress { rewrapped, total })
        );
        let expected: Vec<_> = pending
            .iter()
            .map(|(owner, old)| (*owner, wrapped(old.id, "new")))
            .collect();
        assert_eq!(*replaced.lock().unwrap(), expected);
        assert!(left.lock().unwrap().is_empty());
    }

    #[test]
    fn rotate_with_nothing_to_do_reports_nothing() {
        let mut keys = MockDataKeyRepository::new();
        keys.expect_count_by_master_key()
            .returning(|| Ok(vec![(key("new"), 3)]));
        // A batch of 0 still asks for one at a time.
        keys.expect_not_wrapped_by()
            .withf(|master, limit| *master == key("new") && *limit == 1)
            .times(1)
            .returning(|_, _| Ok(Vec::new()));
        let (result, reports) = rotate(keys, cipher(&["old", "new"]), 0);
        assert_eq!(result.unwrap(), 0);
        assert!(reports.is_empty());
    }

    #[test]
    fn rotate_counts_only_the_swaps_it_won() {
        // The second account of the first batch is deleted meanwhile.
        let pending = old_keys(2);
        let lost = pending[1].0;
        let mut keys = MockDataKeyRepository::new();
        keys.expect_count_by_master_key()
            .returning(|| Ok(vec![(key("old"), 2)]));
        let mut batches = vec![pending, Vec::new()].into_iter();
        keys.expect_not_wrapped_by()
            .times(2)
            .returning(move |_, _| Ok(batches.next().unwrap()));
        keys.expect_replace()
            .times(2)
            .returning(move |owner, _, _| Ok(*owner != lost));
        let (result, reports) = rotate(keys, cipher(&["old", "new"]), 10);
        assert_eq!(result.unwrap(), 1);
        assert_eq!(
            reports,
            [RotationProgress {
                rewrapped: 1,
                total: 2
            }]
        );
    }

    #[test]
    fn a_batch_whose_every_swap_is_lost_stops_instead_of_spinning() {
        let pending = old_keys(3);
        let mut keys = MockDataKeyRepository::new();
        keys.expect_count_by_master_key()
            .returning(|| Ok(vec![(key("old"), 3)]));
        // Asked once: asking again would panic the mock (and would spin forever).
        keys.expect_not_wrapped_by()
            .times(1)
            .returning(move |_, _| Ok(pending.clone()));
        keys.expect_replace()
            .times(3)
            .returning(|_, _, _| Ok(false));
        let (result, reports) = rotate(keys, cipher(&["old", "new"]), 10);
        match result {
            Err(RotateKeysError::Repository(err)) => {
                assert!(err.to_string().contains("another rotation"), "{err}");
            }
            other => panic!("expected a storage error, got {other:?}"),
        }
        assert!(reports.is_empty());
    }

    #[test]
    fn an_unknown_master_key_stops_the_rotation_naming_the_owner() {
        let pending = old_keys(3);
        let stuck = pending[1].0;
        let mut keys = MockDataKeyRepository::new();
        keys.expect_count_by_master_key()
            .returning(|| Ok(vec![(key("old"), 2), (key("lost"), 1)]));
        let batch = pending.clone();
        keys.expect_not_wrapped_by()
            .times(1)
            .returning(move |_, _| Ok(batch.clone()));
        // Only the first key is swapped; nothing after the failure is touched.
        let first = pending[0].0;
        keys.expect_replace()
            .withf(move |owner, _, _| *owner == first)
            .times(1)
            .returning(|_, _, _| Ok(true));
        let mut cipher = MockSecretCipher::new();
        cipher.expect_sealing_key().return_const(key("new"));
        cipher
            .expect_rewrap()
            .times(2)
            .returning(move |old, owner| {
                if *owner == stuck {
                    Err(CipherError::UnknownKey(key("lost")))
                } else {
                    Ok(Some(wrapped(old.id, "new")))
                }
            });
        let (result, reports) = rotate(keys, cipher, 10);
        match result {
            Err(
                ref err @ RotateKeysError::Cipher {
                    owner,
                    source: CipherError::UnknownKey(ref master),
                },
            ) => {
                assert_eq!(owner, stuck);
                assert_eq!(*master, key("lost"));
                assert_eq!(
                    err.to_string(),
                    format!("the data key of user {stuck} cannot be re-wrapped: unknown key lost")
                );
            }
            other => panic!("expected a cipher error, got {other:?}"),
        }
        assert!(reports.is_empty());
    }

    #[test]
    fn rotate_reports_storage_failures() {
        let mut keys = MockDataKeyRepository::new();
        keys.expect_count_by_master_key()
            .returning(|| Err(RepoError::Unavailable(boom())));
        let (result, _) = rotate(keys, cipher(&["new"]), 10);
        assert!(
            matches!(
                result,
                Err(RotateKeysError::Repository(RepoError::Unavailable(_)))
            ),
            "{result:?}"
        );
    }

    fn status(ring: &[&str], counts: Vec<(KeyId, u64)>) -> Vec<MasterKeyStatus> {
        let mut keys = MockDataKeyRepository::new();
        keys.expect_count_by_master_key()
            .times(1)
            .returning(move || Ok(counts.clone()));
        RotateKeys::new(Arc::new(keys), Arc::new(cipher(ring)))
            .status()
            .unwrap()
    }

    fn row(id: &str, data_keys: u64, in_ring: bool, sealing: bool) -> MasterKeyStatus {
        MasterKeyStatus {
            id: key(id),
            data_keys,
            in_ring,
            sealing,
        }
    }

    #[test]
    fn status_lists_the_ring_in_order_then_keys_only_the_database_knows() {
        let report = status(
            &["k1", "k2", "k3"],
            vec![(key("ghost"), 2), (key("k3"), 4), (key("k2"), 1)],
        );
        assert_eq!(
            report,
            [
                row("k1", 0, true, false),
                row("k2", 1, true, false),
                row("k3", 4, true, true),
                row("ghost", 2, false, false),
            ]
        );
        assert_eq!(
            report
                .iter()
                .map(MasterKeyStatus::removable)
                .collect::<Vec<_>>(),
            [true, false, false, false]
        );
    }

    #[test]
    fn the_sealing_key_is_never_removable() {
        let report = status(&["only"], Vec::new());
        assert_eq!(report, [row("only", 0, true, true)]);
        assert!(!report[0].removable());
    }
}
