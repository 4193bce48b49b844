use std::fmt;

/// Identifies an encryption key: a master key (for wrapped data keys) or a user's
/// data key (for secret ciphertexts). Stored next to everything a key seals so that
/// keys can be rotated without guessing which one to use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one user data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataKeyId(pub uuid::Uuid);

impl DataKeyId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// The id as a [`KeyId`], as recorded on the ciphertexts this key seals.
    pub fn as_key_id(&self) -> KeyId {
        KeyId(self.0.to_string())
    }
}

/// Authenticated ciphertext plus the id of the key that sealed it.
///
/// `bytes` is opaque to the domain; the cipher adapter decides its layout (nonce,
/// ciphertext, tag). It is not secret, so `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedData {
    /// The key that sealed `bytes`.
    pub key_id: KeyId,
    /// The adapter-defined sealed bytes.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for SealedData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedData")
            .field("key_id", &self.key_id)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// A user's data key, sealed by a master key. The plaintext data key exists only
/// inside the cipher adapter (which may keep the keys it uses most in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    /// The data key's own id, recorded on every secret it seals.
    pub id: DataKeyId,
    /// The data key sealed by the master key named in `sealed.key_id`.
    pub sealed: SealedData,
}
