use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::redacted;
use crate::{SealedData, Timestamp, UserId, ValidationError};

/// The largest secret value accepted, in bytes of UTF-8.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// The name of a stored secret within its owner's namespace.
///
/// The single-secret routes use [`SecretName::default_name`]. Names are part of the
/// ciphertext's associated data, so a ciphertext only opens under the name it was
/// sealed for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretName(String);

impl SecretName {
    /// The longest name accepted.
    pub const MAX_LEN: usize = 128;

    /// The name used by `/set_secret` and `/get_secret`.
    pub fn default_name() -> Self {
        Self("default".to_owned())
    }

    /// Validates `raw`: 1–128 characters of `[A-Za-z0-9._/-]`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        const FIELD: &str = "name";
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                FIELD,
                format!("must be 1 to {} characters", Self::MAX_LEN),
            ));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
        {
            return Err(ValidationError::new(
                FIELD,
                "may contain only letters, digits, '.', '_', '/' and '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A secret's plaintext. Zeroized on drop; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretValue(String);

impl SecretValue {
    /// Validates the size of a value a client sent.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `secret` when the value exceeds
    /// [`MAX_SECRET_BYTES`].
    pub fn parse(raw: String) -> Result<Self, ValidationError> {
        let value = Self(raw);
        if value.0.len() > MAX_SECRET_BYTES {
            return Err(ValidationError::new(
                "secret",
                format!("must be at most {MAX_SECRET_BYTES} bytes"),
            ));
        }
        Ok(value)
    }

    /// Wraps a value that a cipher has just decrypted.
    pub fn from_decrypted(plaintext: String) -> Self {
        Self(plaintext)
    }

    /// The plaintext, for the cipher and the response writer only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted(f, "SecretValue")
    }
}

/// A stored secret: always sealed, never plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// The user who owns it; bound into the ciphertext.
    pub owner: UserId,
    /// Its name in the owner's namespace; bound into the ciphertext.
    pub name: SecretName,
    /// The value sealed by the owner's data key.
    pub sealed: SealedData,
    /// When the secret was first written.
    pub created_at: Timestamp,
    /// When it was last replaced.
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_capped_and_redacted() {
        assert!(SecretValue::parse("x".repeat(MAX_SECRET_BYTES)).is_ok());
        assert_eq!(
            SecretValue::parse("x".repeat(MAX_SECRET_BYTES + 1))
                .unwrap_err()
                .to_string(),
            "secret: must be at most 16384 bytes"
        );
        let value = SecretValue::parse("hunter2-launch-codes".into()).unwrap();
        assert_eq!(format!("{value:?}"), "SecretValue(<redacted>)");
    }

    #[test]
    fn secret_names_follow_the_charset() {
        assert!(SecretName::parse("team/db.password_v-2").is_ok());
        assert!(SecretName::parse("").is_err());
        assert!(SecretName::parse("a b").is_err());
        assert!(SecretName::parse(&"a".repeat(129)).is_err());
    }
}
