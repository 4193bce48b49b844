//! AES-256-GCM envelope encryption.
//!
//! Sealed layout (both for wrapped data keys and for secrets):
//! `version (1 byte = 1) || nonce (12 bytes) || ciphertext || tag (16 bytes)`.
//!
//! Associated data binds every ciphertext to where it belongs:
//! - a wrapped data key to its owner and its own id;
//! - a secret to its owner, the data key that sealed it, and its name.
//!
//! so a ciphertext copied into another row, for another user or name, fails to open.

use std::fmt;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use safebox_domain::ports::{CipherError, SecretCipher};
use safebox_domain::{
    DataKeyId, KeyId, SealedData, SecretName, SecretValue, UserId, WrappedDataKey,
};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::KeyBytes;

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const DATA_KEY_AAD: &[u8] = b"safebox/v1/data-key\0";
const SECRET_AAD: &[u8] = b"safebox/v1/secret\0";

/// A master key: an AES-256-GCM key derived from operator-supplied material with
/// HKDF-SHA256, and a key id derived the same way (so the id is stable for the
/// same material and reveals nothing about the key).
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
    /// Derives the master key from `material` (at least 32 bytes).
    pub fn derive(material: &KeyBytes) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b"safebox master key"), material.expose());
        let mut key = Zeroizing::new([0_u8; 32]);
        let mut id = [0_u8; 8];
        // Both lengths are far below HKDF-SHA256's 8160-byte limit.
        hkdf.expand(b"aes-256-gcm key v1", key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        hkdf.expand(b"key id v1", &mut id)
            .expect("8 bytes is a valid HKDF-SHA256 output length");
        Self {
            id: KeyId(format!("mk-{}", hex::encode(id))),
            aead: aead_for(&key),
        }
    }

    /// The key's id, recorded on every data key it wraps.
    pub fn id(&self) -> &KeyId {
        &self.id
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
    bytes.push(FORMAT_V1);
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&ciphertext);
    Ok(SealedData { key_id, bytes })
}

fn open(aead: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CipherError> {
    let [FORMAT_V1, rest @ ..] = sealed else {
        return Err(CipherError::Integrity);
    };
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(CipherError::Integrity);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_from(nonce).map_err(|_| CipherError::Integrity)?;
    aead.decrypt(
        &nonce,
        Payload {
            msg: ciphertext,
            aad,
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

/// [`SecretCipher`] with AES-256-GCM: the master key wraps per-user data keys, which
/// seal the secrets.
pub struct AesGcmSecretCipher {
    master: MasterKey,
}

impl fmt::Debug for AesGcmSecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AesGcmSecretCipher")
            .field("master", &self.master)
            .finish()
    }
}

impl AesGcmSecretCipher {
    /// A cipher that seals new data keys with `master`.
    pub fn new(master: MasterKey) -> Self {
        Self { master }
    }

    /// Unwraps `key` into a ready AES-GCM instance for its data key.
    fn data_key(&self, key: &WrappedDataKey, owner: &UserId) -> Result<Aes256Gcm, CipherError> {
        if key.sealed.key_id != self.master.id {
            return Err(CipherError::UnknownKey(key.sealed.key_id.clone()));
        }
        let plaintext = open(
            &self.master.aead,
            &key.sealed.bytes,
            &data_key_aad(owner, &key.id),
        )?;
        let raw: &[u8; 32] = plaintext
            .as_slice()
            .try_into()
            .map_err(|_| CipherError::Integrity)?;
        Ok(aead_for(raw))
    }
}

impl SecretCipher for AesGcmSecretCipher {
    fn new_data_key(&self, owner: &UserId) -> Result<WrappedDataKey, CipherError> {
        let id = DataKeyId::generate();
        let mut raw = Zeroizing::new([0_u8; 32]);
        getrandom::fill(raw.as_mut()).map_err(rng_failure)?;
        let sealed = seal(
            &self.master.aead,
            self.master.id.clone(),
            raw.as_ref(),
            &data_key_aad(owner, &id),
        )?;
        Ok(WrappedDataKey { id, sealed })
    }

    fn seal(
        &self,
        key: &WrappedDataKey,
        owner: &UserId,
        name: &SecretName,
        value: &SecretValue,
    ) -> Result<SealedData, CipherError> {
        let aead = self.data_key(key, owner)?;
        seal(
            &aead,
            key.id.as_key_id(),
            value.expose().as_bytes(),
            &secret_aad(owner, &key.id, name),
        )
    }

    fn open(
        &self,
        key: &WrappedDataKey,
        owner: &UserId,
        name: &SecretName,
        sealed: &SealedData,
    ) -> Result<SecretValue, CipherError> {
        if sealed.key_id != key.id.as_key_id() {
            return Err(CipherError::UnknownKey(sealed.key_id.clone()));
        }
        let aead = self.data_key(key, owner)?;
        let plaintext = open(&aead, &sealed.bytes, &secret_aad(owner, &key.id, name))?;
        let text = std::str::from_utf8(&plaintext).map_err(|_| CipherError::Integrity)?;
        Ok(SecretValue::from_decrypted(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn cipher() -> AesGcmSecretCipher {
        AesGcmSecretCipher::new(MasterKey::derive(&KeyBytes::new(vec![7; 32]).unwrap()))
    }

    fn name(raw: &str) -> SecretName {
        SecretName::parse(raw).unwrap()
    }

    fn value(raw: &str) -> SecretValue {
        SecretValue::parse(raw.into()).unwrap()
    }

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let cipher = cipher();
        let owner = UserId::generate();
        let key = cipher.new_data_key(&owner).unwrap();
        assert_eq!(key.sealed.key_id, *cipher.master.id());
        let sealed = cipher
            .seal(&key, &owner, &name("default"), &value("attack at dawn"))
            .unwrap();
        assert_eq!(sealed.key_id, key.id.as_key_id());
        assert!(!sealed.bytes.windows(6).any(|w| w == b"attack"));
        let opened = cipher
            .open(&key, &owner, &name("default"), &sealed)
            .unwrap();
        assert_eq!(opened.expose(), "attack at dawn");
    }

    #[test]
    fn every_flipped_bit_fails_authentication() {
        let cipher = cipher();
        let owner = UserId::generate();
        let key = cipher.new_data_key(&owner).unwrap();
        let sealed = cipher
            .seal(&key, &owner, &name("n"), &value("short"))
            .unwrap();
        for byte in 0..sealed.bytes.len() {
            for bit in 0..8 {
                let mut tampered = sealed.clone();
                tampered.bytes[byte] ^= 1 << bit;
                assert!(
                    matches!(
                        cipher.open(&key, &owner, &name("n"), &tampered),
                        Err(CipherError::Integrity)
                    ),
                    "byte {byte} bit {bit}"
                );
            }
        }
        let mut truncated = sealed.clone();
        truncated.bytes.truncate(20);
        assert!(matches!(
            cipher.open(&key, &owner, &name("n"), &truncated),
            Err(CipherError::Integrity)
        ));
        // A tampered wrapped data key fails too.
        let mut bad_key = key.clone();
        bad_key.sealed.bytes[20] ^= 1;
        assert!(matches!(
            cipher.open(&bad_key, &owner, &name("n"), &sealed),
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
            .seal(&alice_key, &alice, &name("a"), &value("alice's"))
            .unwrap();

        // Another name under the same owner and key.
        assert!(matches!(
            cipher.open(&alice_key, &alice, &name("b"), &sealed),
            Err(CipherError::Integrity)
        ));
        // Alice's wrapped key copied to Bob's row does not unwrap for Bob.
        assert!(matches!(
            cipher.open(&alice_key, &bob, &name("a"), &sealed),
            Err(CipherError::Integrity)
        ));
        // Alice's ciphertext with Bob's key: refused by key id, and even with the
        // key id forged, by authentication.
        assert!(matches!(
            cipher.open(&bob_key, &bob, &name("a"), &sealed),
            Err(CipherError::UnknownKey(_))
        ));
        let forged = SealedData {
            key_id: bob_key.id.as_key_id(),
            bytes: sealed.bytes.clone(),
        };
        assert!(matches!(
            cipher.open(&bob_key, &bob, &name("a"), &forged),
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
                .seal(&key, &owner, &name("n"), &value("same"))
                .unwrap();
            assert!(nonces.insert(sealed.bytes[1..1 + NONCE_LEN].to_vec()));
        }
    }

    #[test]
    fn another_master_key_cannot_unwrap() {
        let owner = UserId::generate();
        let key = cipher().new_data_key(&owner).unwrap();
        let other =
            AesGcmSecretCipher::new(MasterKey::derive(&KeyBytes::new(vec![8; 32]).unwrap()));
        assert!(matches!(
            other.seal(&key, &owner, &name("n"), &value("x")),
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
}
