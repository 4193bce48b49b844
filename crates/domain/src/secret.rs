use std::collections::BTreeMap;
use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::redacted;
use crate::{SealedData, Timestamp, UserId, ValidationError};

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
    /// Validates the size of a value a client sent in the field `field`.
    ///
    /// # Errors
    /// A [`ValidationError`] on `field` when the value is longer than `max_bytes`
    /// bytes of UTF-8. It never includes the value.
    pub fn parse(
        raw: String,
        max_bytes: usize,
        field: &'static str,
    ) -> Result<Self, ValidationError> {
        let value = Self(raw);
        if value.0.len() > max_bytes {
            return Err(ValidationError::new(
                field,
                format!("must be at most {max_bytes} bytes"),
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

/// A secret's version number: 1 for its first value, then one more for each write.
/// Numbers are never reused, even after older versions are destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretVersion(pub u64);

impl SecretVersion {
    /// The version of a secret's first value.
    pub const FIRST: Self = Self(1);

    /// Validates a version a client asked for: a whole number from 1.
    pub fn parse(raw: u64) -> Result<Self, ValidationError> {
        if raw == 0 {
            return Err(ValidationError::new("version", "must be at least 1"));
        }
        Ok(Self(raw))
    }

    /// The version after this one.
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for SecretVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A secret's metadata: a small map of strings such as a description or tags.
///
/// Metadata is stored in plaintext, like names, so that secrets can be listed and
/// found without their values; it must never hold secret material.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretMetadata(BTreeMap<String, String>);

impl SecretMetadata {
    /// The most entries allowed.
    pub const MAX_ENTRIES: usize = 16;
    /// The longest key allowed, in characters of `[A-Za-z0-9._-]`.
    pub const MAX_KEY_LEN: usize = 64;
    /// The longest value allowed, in bytes of UTF-8.
    pub const MAX_VALUE_BYTES: usize = 512;

    /// Validates metadata a client sent: at most [`Self::MAX_ENTRIES`] entries, each
    /// key 1–64 characters of `[A-Za-z0-9._-]` and each value at most 512 bytes.
    pub fn parse(entries: BTreeMap<String, String>) -> Result<Self, ValidationError> {
        const FIELD: &str = "metadata";
        if entries.len() > Self::MAX_ENTRIES {
            return Err(ValidationError::new(
                FIELD,
                format!("must have at most {} entries", Self::MAX_ENTRIES),
            ));
        }
        for (key, value) in &entries {
            if key.is_empty()
                || key.len() > Self::MAX_KEY_LEN
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(ValidationError::new(
                    FIELD,
                    format!(
                        "keys must be 1 to {} characters of letters, digits, '.', '_' and '-'",
                        Self::MAX_KEY_LEN
                    ),
                ));
            }
            if value.len() > Self::MAX_VALUE_BYTES {
                return Err(ValidationError::new(
                    FIELD,
                    format!("values must be at most {} bytes", Self::MAX_VALUE_BYTES),
                ));
            }
        }
        Ok(Self(entries))
    }

    /// Metadata read back from storage, which was validated when it was written.
    pub fn from_stored(entries: BTreeMap<String, String>) -> Self {
        Self(entries)
    }

    /// The entries.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// The limits of each user's vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaultLimits {
    /// How many versions of a secret are kept; older ones are destroyed.
    pub max_versions: u64,
    /// The largest value, in bytes of UTF-8.
    pub max_value_bytes: usize,
    /// How many secrets one user may have, soft-deleted ones included.
    pub max_secrets: u64,
}

impl Default for VaultLimits {
    /// 10 versions (as Vault's KV engine keeps), 64 KiB values, 1,000 secrets.
    fn default() -> Self {
        Self {
            max_versions: 10,
            max_value_bytes: 64 * 1024,
            max_secrets: 1_000,
        }
    }
}

/// A stored secret: its name, metadata and version history, without any value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// The user who owns it; bound into every ciphertext of it.
    pub owner: UserId,
    /// Its name in the owner's namespace; bound into every ciphertext of it.
    pub name: SecretName,
    /// The newest version.
    pub version: SecretVersion,
    /// The oldest version still kept.
    pub oldest_version: SecretVersion,
    /// Its metadata (plaintext).
    pub metadata: SecretMetadata,
    /// When the secret was first written.
    pub created_at: Timestamp,
    /// When its newest version was written.
    pub updated_at: Timestamp,
    /// When it was soft-deleted; `None` while it is live.
    pub deleted_at: Option<Timestamp>,
}

impl Secret {
    /// Whether the secret is live (not soft-deleted).
    pub fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }
}

/// One kept version of a secret: its value sealed by the owner's data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    /// Its number.
    pub version: SecretVersion,
    /// The value, sealed for this owner, name and version.
    pub sealed: SealedData,
    /// When it was written.
    pub created_at: Timestamp,
}

/// A page request of a user's secrets, in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretListQuery {
    /// Only names that start with this (empty: all).
    pub prefix: String,
    /// Only names after this one (the previous page's last name).
    pub after: Option<SecretName>,
    /// At most this many.
    pub limit: usize,
    /// Whether soft-deleted secrets are listed too.
    pub include_deleted: bool,
}

impl SecretListQuery {
    /// The largest page.
    pub const MAX_LIMIT: usize = 200;
    /// The page size when the client names none.
    pub const DEFAULT_LIMIT: usize = 50;

    /// Validates a name prefix: up to 128 characters of `[A-Za-z0-9._/-]`.
    pub fn parse_prefix(raw: &str) -> Result<String, ValidationError> {
        if raw.is_empty() {
            return Ok(String::new());
        }
        SecretName::parse(raw)
            .map(|name| name.0)
            .map_err(|err| ValidationError::new("prefix", err.problem))
    }

    /// Validates a page size: 1 to [`Self::MAX_LIMIT`].
    pub fn parse_limit(raw: usize) -> Result<usize, ValidationError> {
        if raw == 0 || raw > Self::MAX_LIMIT {
            return Err(ValidationError::new(
                "limit",
                format!("must be 1 to {}", Self::MAX_LIMIT),
            ));
        }
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_capped_and_redacted() {
        assert!(SecretValue::parse("x".repeat(100), 100, "value").is_ok());
        assert_eq!(
            SecretValue::parse("x".repeat(101), 100, "value")
                .unwrap_err()
                .to_string(),
            "value: must be at most 100 bytes"
        );
        // Bytes, not characters: 'é' is two bytes of UTF-8.
        assert!(SecretValue::parse("é".repeat(51), 100, "secret").is_err());
        let value = SecretValue::parse("hunter2-launch-codes".into(), 100, "secret").unwrap();
        assert_eq!(format!("{value:?}"), "SecretValue(<redacted>)");
    }

    #[test]
    fn secret_names_follow_the_charset() {
        assert!(SecretName::parse("team/db.password_v-2").is_ok());
        assert!(SecretName::parse("").is_err());
        assert!(SecretName::parse("a b").is_err());
        assert!(SecretName::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn versions_start_at_one() {
        assert!(SecretVersion::parse(0).is_err());
        assert_eq!(SecretVersion::parse(3).unwrap().next(), SecretVersion(4));
    }

    #[test]
    fn metadata_is_small_and_plain() {
        let entries = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(
            SecretMetadata::parse(entries(&[("description", "prod db"), ("team.a-b_c", "")]))
                .is_ok()
        );
        assert!(SecretMetadata::parse(entries(&[("", "x")])).is_err());
        assert!(SecretMetadata::parse(entries(&[("has space", "x")])).is_err());
        assert!(SecretMetadata::parse(entries(&[(&"k".repeat(65), "x")])).is_err());
        assert!(SecretMetadata::parse(entries(&[("k", &"v".repeat(513))])).is_err());
        let many: BTreeMap<_, _> = (0..17).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(
            SecretMetadata::parse(many).unwrap_err().to_string(),
            "metadata: must have at most 16 entries"
        );
    }
}
