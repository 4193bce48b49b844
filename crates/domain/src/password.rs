use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ValidationError;
use crate::error::redacted;

/// bcrypt reads at most this many bytes of a password; longer ones are refused rather
/// than silently truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// The rules a new password must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length in Unicode scalar values (characters), not bytes.
    pub min_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_chars: 12 }
    }
}

impl PasswordPolicy {
    /// Checks `candidate` against the policy and wraps it as a [`Password`].
    ///
    /// The error names the rule that was broken and never contains the candidate.
    pub fn parse(&self, candidate: String) -> Result<Password, ValidationError> {
        const FIELD: &str = "password";
        let candidate = Password(candidate);
        if candidate.0.chars().count() < self.min_chars {
            return Err(ValidationError::new(
                FIELD,
                format!("must be at least {} characters", self.min_chars),
            ));
        }
        if candidate.0.len() > MAX_PASSWORD_BYTES {
            return Err(ValidationError::new(
                FIELD,
                format!("must be at most {MAX_PASSWORD_BYTES} bytes of UTF-8"),
            ));
        }
        Ok(candidate)
    }
}

/// A new password that met the [`PasswordPolicy`]. Zeroized on drop; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Password(String);

impl Password {
    /// The password's text, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted(f, "Password")
    }
}

/// A password offered at login. It is not checked against the policy (the policy may
/// have changed since the account was created), only verified against a stored hash.
/// Zeroized on drop; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct PasswordAttempt(String);

impl PasswordAttempt {
    /// Wraps the text a client sent.
    pub fn new(raw: String) -> Self {
        Self(raw)
    }

    /// The attempt's text, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted(f, "PasswordAttempt")
    }
}

/// A password hash in the hasher's own encoding (a bcrypt `$2b$…` string).
///
/// Not a secret in the cryptographic sense, but an offline-guessing target, so
/// `Debug` is redacted too.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted(f, "PasswordHash")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_counts_characters_and_caps_bytes() {
        let policy = PasswordPolicy { min_chars: 12 };
        assert_eq!(
            policy.parse("short".into()).unwrap_err().to_string(),
            "password: must be at least 12 characters"
        );
        // 12 characters but 24 bytes: long enough.
        assert!(policy.parse("éééééééééééé".into()).is_ok());
        assert!(policy.parse("a".repeat(72)).is_ok());
        assert_eq!(
            policy.parse("a".repeat(73)).unwrap_err().to_string(),
            "password: must be at most 72 bytes of UTF-8"
        );
        // 36 characters, 72 bytes: fine; one more two-byte character is not.
        assert!(policy.parse("é".repeat(36)).is_ok());
        assert!(policy.parse("é".repeat(37)).is_err());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let password = PasswordPolicy::default()
            .parse("correct horse battery".into())
            .unwrap();
        let attempt = PasswordAttempt::new("correct horse battery".into());
        let hash = PasswordHash("$2b$12$abcdefghijklmnopqrstuv".into());
        for shown in [
            format!("{password:?}"),
            format!("{attempt:?}"),
            format!("{hash:?}"),
        ] {
            assert!(!shown.contains("horse"), "{shown}");
            assert!(!shown.contains("abcdef"), "{shown}");
            assert!(shown.contains("<redacted>"));
        }
    }
}
