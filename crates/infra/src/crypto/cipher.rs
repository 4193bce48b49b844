//! AES-256-GCM envelope encryption.
//!
//! Sealed layout (both for wrapped data keys and for secrets):
//! `format (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)`.
//!
//! Associated data binds every ciphertext to where it belongs:
//! - a wrapped data key (format 1) to its owner and its own id;
//! - a secret version (format 2) to its owner, the data key that sealed it, its
//!   name and its version number;
//! - a secret sealed before versions existed (format 1) to its owner, data key and
//!   name; it opens only as version 1, which is what the migration made it.
//!
//! so a ciphertext copied into another row, for another user, name or version,
//! fails to open: an old value cannot be passed off as a newer version. (Someone
//! who can write the database can still delete the newer version rows and lower
//! the secret's version; docs/security.md lists that as not stopped.)
//!
//! Master keys form a ring: the newest wraps new data keys, and every key of the
//! ring unwraps the data keys it wrapped, so keys rotate without downtime.

use std::fmt;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use parking_lot::RwLock;
use safebox_domain::ports::{CipherError, SecretCipher};
use safebox_domain::{
    DataKeyId, KeyId, SealedData, SecretName, SecretValue, SecretVersion, UserId, WrappedDataKey,
};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::KeyBytes;

/// Wrapped data keys, and secrets sealed before versions existed.
const FORMAT_V1: u8 = 1;
/// Secret versions: the version number is part of the associated data.
const FORMAT_V2: u8 = 2;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const DATA_KEY_AAD: &[u8] = b"safebox/v1/data-key\0";
const SECRET_AAD: &[u8] = b"safebox/v1/secret\0";
const SECRET_VERSION_AAD: &[u8] = b"safebox/v2/secret\0";

/// A master key: an AES-256-GCM key derived from operator-supplied material with
/// HKDF-SHA256, and its id: the operator's, or a fingerprint derived the same way
/// (stable for the same material, and revealing nothing about the key).
pub struct MasterKey {
    id: KeyId,
    aead: Aes256Gcm,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// Derives the master key from `material` (at least 32 bytes), with the
    /// fingerprint id `mk-<16 hex digits>`.
    pub fn derive(material: &KeyBytes) -> Self {
        let hkdf = Self::hkdf(material);
        let mut id = [0_u8; 8];
        // Far below HKDF-SHA256's 8160-byte limit.
        hkdf.expand(b"key id v1", &mut id)
            .expect("8 bytes is a valid HKDF-SHA256 output length");
        Self::with_id(KeyId(format!("mk-{}", hex::encode(id))), material)
    }

    /// Derives the master key from `material`, known by the operator's `id`.
    pub fn with_id(id: KeyId, material: &KeyBytes) -> Self {
        let mut key = Zeroizing::new([0_u8; 32]);
        Self::hkdf(material)
            .expand(b"aes-256-gcm key v1", key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self {
            id,
            aead: aead_for(&key),
        }
    }

    fn hkdf(material: &KeyBytes) -> Hkdf<Sha256> {
        Hkdf::<Sha256>::new(Some(b"safebox master key"), material.expose())
    }

    /// The key's id, recorded on every data key it wraps.
    pub fn id(&self) -> &KeyId {
        &self.id
    }
}

/// The master keys in force, oldest first: the newest wraps new data keys, and
/// each one unwraps the data keys it wrapped.
#[derive(Debug)]
pub struct MasterKeyRing {
    keys: Vec<MasterKey>,
}

/// A key ring that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// No key at all.
    #[error("the key ring is empty")]
    Empty,
    /// Two keys share an id.
    #[error("two master keys have the id {0}")]
    DuplicateId(KeyId),
}

impl MasterKeyRing {
    /// A ring of `keys`, oldest first.
    pub fn new(keys: Vec<MasterKey>) -> Result<Self, KeyRingError> {
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        for (at, key) in keys.iter().enumerate() {
            if keys[..at].iter().any(|earlier| earlier.id == key.id) {
                return Err(KeyRingError::DuplicateId(key.id.clone()));
            }
        }
        Ok(Self { keys })
    }

    /// A ring of one key.
    pub fn single(key: MasterKey) -> Self {
        Self { keys: vec![key] }
    }

    /// The key that wraps new data keys: the newest.
    pub fn sealing(&self) -> &MasterKey {
        self.keys.last().expect("a ring is never empty")
    }

    /// The key with this id.
    fn get(&self, id: &KeyId) -> Option<&MasterKey> {
        self.keys.iter().find(|key| key.id == *id)
    }
}

fn aead_for(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key).expect("AES-256 takes a 32-byte key")
}

fn rng_failure(err: impl fmt::Display) -> CipherError {
    CipherError::Failure(format!("random number generator failed: {err}").into())
}

fn seal(
    aead: &Aes256Gcm,
    format: u8,
    key_id: KeyId,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<SealedData, CipherError> {
    let nonce = Nonce::try_generate().map_err(rng_failure)?;
    let ciphertext = aead
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CipherError::Failure("AES-GCM encryption failed".into()))?;
    let mut bytes = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    bytes.push(format);
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&ciphertext);
    Ok(SealedData { key_id, bytes })
}

/// Opens `sealed`, with the associated data `aad` gives for its format byte
/// (`None`: the format is not acceptable here).
fn open(
    aead: &Aes256Gcm,
    sealed: &[u8],
    aad: impl FnOnce(u8) -> Option<Vec<u8>>,
) -> Result<Zeroizing<Vec<u8>>, CipherError> {
    let [format, rest @ ..] = sealed else {
        return Err(CipherError::Integrity);
    };
    let aad = aad(*format).ok_or(CipherError::Integrity)?;
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(CipherError::Integrity);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_from(nonce).map_err(|_| CipherError::Integrity)?;
    aead.decrypt(
        &nonce,
        Payload {
            msg: ciphertext,
            aad: &aad,
        },
    )
    .map(Zeroizing::new)
    .map_err(|_| CipherError::Integrity)
}

fn data_key_aad(owner: &UserId, id: &DataKeyId) -> Vec<u8> {
    [DATA_KEY_AAD, owner.0.as_bytes(), id.0.as_bytes()].concat()
}

fn secret_aad(owner: &UserId, key: &DataKeyId, name: &SecretName) -> Vec<u8> {
    [
        SECRET_AAD,
        owner.0.as_bytes(),
        key.0.as_bytes(),
        name.as_str().as_bytes(),
    ]
    .concat()
}

/// Format 2: the name is length-prefixed and followed by the version, so that no
/// two (name, version) pairs share associated data.
fn secret_version_aad(
    owner: &UserId,
    key: &DataKeyId,
    name: &SecretName,
    version: SecretVersion,
) -> Vec<u8> {
    let name = name.as_str().as_bytes();
    let name_len = u16::try_from(name.len()).expect("names are at most 128 bytes");
    [
        SECRET_VERSION_AAD,
        owner.0.as_bytes(),
        key.0.as_bytes(),
        &name_len.to_be_bytes(),
        name,
        &version.0.to_be_bytes(),
    ]
    .concat()
}

/// [`SecretCipher`] with AES-256-GCM: the master key ring wraps per-user data
/// keys, which seal the secrets.
///
/// Unwrapping a data key is an AES-GCM decryption under the master key and a
/// key expansion, on every seal and open; the data keys of the users served
/// most recently are kept unwrapped and expanded ([`OpenedKeys`]) instead.
pub struct AesGcmSecretCipher {
    ring: MasterKeyRing,
    opened: OpenedKeys,
}

/// The data keys unwrapped most recently, ready to use: a fixed table of
/// [`OpenedKeys::SLOTS`] slots, each holding the last data key whose owner and
/// id fall in it.
///
/// An entry is used only for exactly the wrapped key it was unwrapped from
/// (the same owner, data key id, master key id and sealed bytes), so a key that
/// was wrapped again, replaced or tampered with is unwrapped afresh, and fails
/// as it would have; and only for [`OpenedKeys::KEEP`] after it was unwrapped,
/// so the key of a deleted account does not stay. The expanded keys are
/// zeroized when they leave the table (aes-gcm's `zeroize`). Holding them adds
/// nothing a reader of the process's memory lacks: the master keys that unwrap
/// every data key are there too (docs/security.md, out of scope).
///
/// Lookups take a slot's lock shared: reads of one owner's secrets on several
/// workers at once do not wait for each other.
struct OpenedKeys {
    slots: Box<[OpenedSlot]>,
    keep: Duration,
}

/// One entry of [`OpenedKeys`]: whose data key, wrapped how, unwrapped, and
/// when.
type OpenedSlot = RwLock<Option<(UserId, WrappedDataKey, Aes256Gcm, Instant)>>;

impl OpenedKeys {
    /// About 200 KiB.
    const SLOTS: usize = 256;
    /// How long a data key is used after it was unwrapped.
    const KEEP: Duration = Duration::from_secs(600);

    fn new() -> Self {
        Self::keeping_for(Self::KEEP)
    }

    fn keeping_for(keep: Duration) -> Self {
        Self {
            slots: (0..Self::SLOTS).map(|_| RwLock::new(None)).collect(),
            keep,
        }
    }

    fn slot(&self, owner: &UserId, key: &WrappedDataKey) -> &OpenedSlot {
        // The last bytes of a UUID v4 are random.
        let (owner, id) = (owner.0.as_bytes(), key.id.0.as_bytes());
        let index = usize::from(u16::from_le_bytes([owner[14] ^ id[14], owner[15] ^ id[15]]));
        &self.slots[index % self.slots.len()]
    }

    fn get(&self, owner: &UserId, key: &WrappedDataKey) -> Option<Aes256Gcm> {
        match &*self.slot(owner, key).read() {
            Some((kept_owner, kept_key, aead, at))
                if kept_owner == owner && kept_key == key && at.elapsed() < self.keep =>
            {
                Some(aead.clone())
            }
            _ => None,
        }
    }

    fn put(&self, owner: &UserId, key: &WrappedDataKey, aead: &Aes256Gcm) {
        *self.slot(owner, key).write() = Some((*owner, key.clone(), aead.clone(), Instant::now()));
    }
}

impl fmt::Debug for AesGcmSecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AesGcmSecretCipher")
            .field("ring", &self.ring)
            .finish()
    }
}

impl AesGcmSecretCipher {
    /// A cipher that wraps new data keys with the newest key of `ring`.
    pub fn new(ring: MasterKeyRing) -> Self {
        Self {
            ring,
            opened: OpenedKeys::new(),
        }
    }

    /// The data key in `key`, unwrapped.
    fn unwrap_key(
        &self,
        key: &WrappedDataKey,
        owner: &UserId,
    ) -> Result<Zeroizing<Vec<u8>>, CipherError> {
        let master = self
            .ring
            .get(&key.sealed.key_id)
            .ok_or_else(|| CipherError::UnknownKey(key.sealed.key_id.clone()))?;
        let plaintext = open(&master.aead, &key.sealed.bytes, |format| {
            (format == FORMAT_V1).then(|| data_key_aad(owner, &key.id))
        })?;
        if plaintext.len() != 32 {
            return Err(CipherError::Integrity);
        }
        Ok(plaintext)
    }

    /// A ready AES-GCM instance for the data key in `key`: kept from an earlier
    /// unwrap of exactly this wrapped key, or unwrapped now.
    fn data_key(&self, key: &WrappedDataKey, owner: &UserId) -> Result<Aes256Gcm, CipherError> {
        if let Some(aead) = self.opened.get(owner, key) {
            return Ok(aead);
        }
        let raw = self.unwrap_key(key, owner)?;
        let raw: &[u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| CipherError::Integrity)?;
        let aead = aead_for(raw);
        self.opened.put(owner, key, &aead);
        Ok(aead)
    }

    /// Wraps the data key `raw` with the sealing master key.
    fn wrap(
        &self,
        id: DataKeyId,
        raw: &[u8],
        owner: &UserId,
    ) -> Result<WrappedDataKey, CipherError> {
        let master = self.ring.sealing();
        let sealed = seal(
            &master.aead,
            FORMAT_V1,
            master.id.clone(),
            raw,
            &data_key_aad(owner, &id),
        )?;
        Ok(WrappedDataKey { id, sealed })
    }
}

impl SecretCipher for AesGcmSecretCipher {
    fn new_data_key(&self, owner: &UserId) -> Result<WrappedDataKey, CipherError> {
        let mut raw = Zeroizing::new([0_u8; 32]);
        getrandom::fill(raw.as_mut()).map_err(rng_failure)?;
        self.wrap(DataKeyId::generate(), raw.as_ref(), owner)
    }

    fn seal(
        &self,
        key: &WrappedDataKey,
        owner: &UserId,
        name: &SecretName,
        version: SecretVersion,
        value: &SecretValue,
    ) -> Result<SealedData, CipherError> {
        let aead = self.data_key(key, owner)?;
        seal(
            &aead,
            FORMAT_V2,
            key.id.as_key_id(),
            value.expose().as_bytes(),
            &secret_version_aad(owner, &key.id, name, version),
        )
    }

    fn open(
        &self,
        key: &WrappedDataKey,
        owner: &UserId,
        name: &SecretName,
        version: SecretVersion,
        sealed: &SealedData,
    ) -> Result<SecretValue, CipherError> {
        if sealed.key_id != key.id.as_key_id() {
            return Err(CipherError::UnknownKey(sealed.key_id.clone()));
        }
        let aead = self.data_key(key, owner)?;
        let plaintext = open(&aead, &sealed.bytes, |format| match format {
            FORMAT_V2 => Some(secret_version_aad(owner, &key.id, name, version)),
            FORMAT_V1 if version == SecretVersion::FIRST => Some(secret_aad(owner, &key.id, name)),
            _ => None,
        })?;
        let text = std::str::from_utf8(&plaintext).map_err(|_| CipherError::Integrity)?;
        Ok(SecretValue::from_decrypted(text.to_owned()))
    }

    fn sealing_key(&self) -> KeyId {
        self.ring.sealing().id.clone()
    }

    fn key_ring(&self) -> Vec<KeyId> {
        self.ring.keys.iter().map(|key| key.id.clone()).collect()
    }

    fn rewrap(
        &self,
        key: &WrappedDataKey,
        owner: &UserId,
    ) -> Result<Option<WrappedDataKey>, CipherError> {
        if key.sealed.key_id == self.ring.sealing().id {
            return Ok(None);
        }
        let raw = self.unwrap_key(key, owner)?;
        self.wrap(key.id, &raw, owner).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn master(byte: u8) -> MasterKey {
        MasterKey::derive(&KeyBytes::new(vec![byte; 32]).unwrap())
    }

    fn cipher() -> AesGcmSecretCipher {
        AesGcmSecretCipher::new(MasterKeyRing::single(master(7)))
    }

    const V1: SecretVersion = SecretVersion(1);

    fn name(raw: &str) -> SecretName {
        SecretName::parse(raw).unwrap()
    }

    fn value(raw: &str) -> SecretValue {
        SecretValue::parse(raw.into(), 1024, "value").unwrap()
    }

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let cipher = cipher();
        let owner = UserId::generate();
        let key = cipher.new_data_key(&owner).unwrap();
        assert_eq!(key.sealed.key_id, cipher.sealing_key());
        let sealed = cipher
            .seal(&key, &owner, &name("default"), V1, &value("attack at dawn"))
            .unwrap();
        assert_eq!(sealed.key_id, key.id.as_key_id());
        assert!(!sealed.bytes.windows(6).any(|w| w == b"attack"));
        let opened = cipher
            .open(&key, &owner, &name("default"), V1, &sealed)
            .unwrap();
        assert_eq!(opened.expose(), "attack at dawn");
    }

    #[test]
    fn every_flipped_bit_fails_authentication() {
        let cipher = cipher();
        let owner = UserId::generate();
        let key = cipher.new_data_key(&owner).unwrap();
        let sealed = cipher
            .seal(&key, &owner, &name("n"), V1, &value("short"))
            .unwrap();
        for byte in 0..sealed.bytes.len() {
            for bit in 0..8 {
                let mut tampered = sealed.clone();
                tampered.bytes[byte] ^= 1 << bit;
                assert!(
                    matches!(
                        cipher.open(&key, &owner, &name("n"), V1, &tampered),
                        Err(CipherError::Integrity)
                    ),
                    "byte {byte} bit {bit}"
                );
            }
        }
        let mut truncated = sealed.clone();
        truncated.bytes.truncate(20);
        assert!(matches!(
            cipher.open(&key, &owner, &name("n"), V1, &truncated),
            Err(CipherError::Integrity)
        ));
        // A tampered wrapped data key fails too.
        let mut bad_key = key.clone();
        bad_key.sealed.bytes[20] ^= 1;
        assert!(matches!(
            cipher.open(&bad_key, &owner, &name("n"), V1, &sealed),
            Err(CipherError::Integrity)
        ));
    }

    #[test]
    fn a_ciphertext_moved_to_another_user_or_name_fails() {
        let cipher = cipher();
        let alice = UserId::generate();
        let bob = UserId::generate();
        let alice_key = cipher.new_data_key(&alice).unwrap();
        let bob_key = cipher.new_data_key(&bob).unwrap();
        let sealed = cipher
            .seal(&alice_key, &alice, &name("a"), V1, &value("alice's"))
            .unwrap();

        // Another name under the same owner and key.
        assert!(matches!(
            cipher.open(&alice_key, &alice, &name("b"), V1, &sealed),
            Err(CipherError::Integrity)
        ));
        // Alice's wrapped key copied to Bob's row does not unwrap for Bob.
        assert!(matches!(
            cipher.open(&alice_key, &bob, &name("a"), V1, &sealed),
            Err(CipherError::Integrity)
        ));
        // Alice's ciphertext with Bob's key: refused by key id, and even with the
        // key id forged, by authentication.
        assert!(matches!(
            cipher.open(&bob_key, &bob, &name("a"), V1, &sealed),
            Err(CipherError::UnknownKey(_))
        ));
        let forged = SealedData {
            key_id: bob_key.id.as_key_id(),
            bytes: sealed.bytes.clone(),
        };
        assert!(matches!(
            cipher.open(&bob_key, &bob, &name("a"), V1, &forged),
            Err(CipherError::Integrity)
        ));
    }

    #[test]
    fn ten_thousand_encryptions_never_repeat_a_nonce() {
        let cipher = cipher();
        let owner = UserId::generate();
        let key = cipher.new_data_key(&owner).unwrap();
        let mut nonces = HashSet::new();
        for _ in 0..10_000 {
            let sealed = cipher
                .seal(&key, &owner, &name("n"), V1, &value("same"))
                .unwrap();
            assert!(nonces.insert(sealed.bytes[1..1 + NONCE_LEN].to_vec()));
        }
    }

    #[test]
    fn a_kept_data_key_serves_only_the_exact_wrapped_key_it_came_from() {
        let cipher = cipher();
        let owner = UserId::generate();
        let key = cipher.new_data_key(&owner).unwrap();
        let sealed = cipher
            .seal(&key, &owner, &name("n"), V1, &value("kept"))
            .unwrap();
        // The data key is kept now; each change to the wrapped key, or another
        // owner, is unwrapped afresh and refused.
        let mut tampered = key.clone();
        let last = tampered.sealed.bytes.len() - 1;
        tampered.sealed.bytes[last] ^= 1;
        let mut other_master = key.clone();
        other_master.sealed.key_id = KeyId("mk-elsewhere".into());
        // Another owner whose id falls in the same slot.
        let mut same_slot = *UserId::generate().0.as_bytes();
        same_slot[14..].copy_from_slice(&owner.0.as_bytes()[14..]);
        let other_owner = UserId(uuid::Uuid::from_bytes(same_slot));
        for (what, wrapped, whose) in [
            ("tampered", &tampered, owner),
            ("another owner", &key, other_owner),
        ] {
            assert!(
                matches!(
                    cipher.open(wrapped, &whose, &name("n"), V1, &sealed),
                    Err(CipherError::Integrity)
                ),
                "{what}"
            );
        }
        assert!(matches!(
            cipher.open(&other_master, &owner, &name("n"), V1, &sealed),
            Err(CipherError::UnknownKey(_))
        ));
        let opened = cipher.open(&key, &owner, &name("n"), V1, &sealed).unwrap();
        assert_eq!(opened.expose(), "kept");
    }

    #[test]
    fn a_data_key_is_kept_only_for_its_time() {
        let owner = UserId::generate();
        let key = cipher().new_data_key(&owner).unwrap();
        let aead = aead_for(&[9; 32]);
        let kept = OpenedKeys::new();
        kept.put(&owner, &key, &aead);
        assert!(kept.get(&owner, &key).is_some());
        let expired = OpenedKeys::keeping_for(Duration::ZERO);
        expired.put(&owner, &key, &aead);
        assert!(expired.get(&owner, &key).is_none());
    }

    #[test]
    fn data_keys_sharing_a_slot_each_open_their_own_secrets() {
        let cipher = cipher();
        let users: Vec<(UserId, WrappedDataKey, SealedData)> = (0..OpenedKeys::SLOTS * 4)
            .map(|n| {
                let owner = UserId::generate();
                let key = cipher.new_data_key(&owner).unwrap();
                let sealed = cipher
                    .seal(&key, &owner, &name("n"), V1, &value(&format!("value {n}")))
                    .unwrap();
                (owner, key, sealed)
            })
            .collect();
        for _ in 0..2 {
            for (n, (owner, key, sealed)) in users.iter().enumerate() {
                let opened = cipher.open(key, owner, &name("n"), V1, sealed).unwrap();
                assert_eq!(opened.expose(), format!("value {n}"));
            }
        }
    }

    #[test]
    fn another_master_key_cannot_unwrap() {
        let owner = UserId::generate();
        let key = cipher().new_data_key(&owner).unwrap();
        let other = AesGcmSecretCipher::new(MasterKeyRing::single(master(8)));
        assert!(matches!(
            other.seal(&key, &owner, &name("n"), V1, &value("x")),
            Err(CipherError::UnknownKey(_))
        ));
    }

    #[test]
    fn the_master_key_id_is_stable_and_debug_hides_the_key() {
        let a = MasterKey::derive(&KeyBytes::new(vec![7; 32]).unwrap());
        let b = MasterKey::derive(&KeyBytes::new(vec![7; 32]).unwrap());
        assert_eq!(a.id(), b.id());
        assert!(a.id().0.starts_with("mk-"));
        let shown = format!("{:?}", cipher());
        assert!(shown.contains("mk-") && !shown.contains("aead"), "{shown}");
    }

    #[test]
    fn a_version_moved_to_another_version_fails() {
        let cipher = cipher();
        let owner = UserId::generate();
        let key = cipher.new_data_key(&owner).unwrap();
        let sealed = cipher
            .seal(&key, &owner, &name("n"), SecretVersion(3), &value("v3"))
            .unwrap();
        assert_eq!(sealed.bytes[0], FORMAT_V2);
        assert_eq!(
            cipher
                .open(&key, &owner, &name("n"), SecretVersion(3), &sealed)
                .unwrap()
                .expose(),
            "v3"
        );
        for other in [1, 2, 4] {
            assert!(matches!(
                cipher.open(&key, &owner, &name("n"), SecretVersion(other), &sealed),
                Err(CipherError::Integrity)
            ));
        }
    }

    #[test]
    fn secrets_sealed_before_versions_open_only_as_version_one() {
        let cipher = cipher();
        let owner = UserId::generate();
        let key = cipher.new_data_key(&owner).unwrap();
        // What the release before versions wrote: format 1, no version in the AAD.
        let aead = cipher.data_key(&key, &owner).unwrap();
        let legacy = seal(
            &aead,
            FORMAT_V1,
            key.id.as_key_id(),
            b"old value",
            &secret_aad(&owner, &key.id, &name("default")),
        )
        .unwrap();
        assert_eq!(
            cipher
                .open(&key, &owner, &name("default"), V1, &legacy)
                .unwrap()
                .expose(),
            "old value"
        );
        assert!(matches!(
            cipher.open(&key, &owner, &name("default"), SecretVersion(2), &legacy),
            Err(CipherError::Integrity)
        ));
    }

    #[test]
    fn a_ring_opens_with_every_key_and_wraps_with_the_newest() {
        let owner = UserId::generate();
        let old = AesGcmSecretCipher::new(MasterKeyRing::single(master(1)));
        let key = old.new_data_key(&owner).unwrap();
        let sealed = old
            .seal(&key, &owner, &name("n"), V1, &value("kept"))
            .unwrap();

        let ring = AesGcmSecretCipher::new(MasterKeyRing::new(vec![master(1), master(2)]).unwrap());
        assert_eq!(ring.sealing_key(), *master(2).id());
        assert_eq!(
            ring.key_ring(),
            [master(1).id().clone(), master(2).id().clone()]
        );
        // The old wrapping still opens under the ring.
        assert_eq!(
            ring.open(&key, &owner, &name("n"), V1, &sealed)
                .unwrap()
                .expose(),
            "kept"
        );
        // Re-wrapping keeps the data key (same id, same secrets) under the new key.
        let rewrapped = ring.rewrap(&key, &owner).unwrap().unwrap();
        assert_eq!(rewrapped.id, key.id);
        assert_eq!(rewrapped.sealed.key_id, *master(2).id());
        assert!(ring.rewrap(&rewrapped, &owner).unwrap().is_none());
        // Once re-wrapped, the old key can leave the ring.
        let new_only = AesGcmSecretCipher::new(MasterKeyRing::single(master(2)));
        assert_eq!(
            new_only
                .open(&rewrapped, &owner, &name("n"), V1, &sealed)
                .unwrap()
                .expose(),
            "kept"
        );
        assert!(matches!(
            new_only.open(&key, &owner, &name("n"), V1, &sealed),
            Err(CipherError::UnknownKey(_))
        ));
        // A re-wrapped key moved to another owner does not unwrap.
        assert!(matches!(
            ring.rewrap(&key, &UserId::generate()),
            Err(CipherError::Integrity)
        ));
        // New data keys are wrapped by the newest key.
        assert_eq!(
            ring.new_data_key(&owner).unwrap().sealed.key_id,
            *master(2).id()
        );
    }

    #[test]
    fn a_ring_needs_keys_with_distinct_ids() {
        assert!(matches!(
            MasterKeyRing::new(vec![]),
            Err(KeyRingError::Empty)
        ));
        assert!(matches!(
            MasterKeyRing::new(vec![master(1), master(1)]),
            Err(KeyRingError::DuplicateId(_))
        ));
        let named = MasterKey::with_id(
            KeyId("2026-q4".into()),
            &KeyBytes::new(vec![1; 32]).unwrap(),
        );
        assert_eq!(named.id().0, "2026-q4");
        assert!(MasterKeyRing::new(vec![master(1), named]).is_ok());
    }
}
