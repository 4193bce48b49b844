use std::fmt;
use std::sync::Arc;

use unicode_normalization::UnicodeNormalization as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::redacted;
use crate::ports::BreachedPasswords;
use crate::{Email, Username, ValidationError};

/// bcrypt reads at most this many bytes of a password; longer ones are refused rather
/// than silently truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Parts of a username or e-mail local part shorter than this are not searched for
/// in the password: "a" or "jo" would forbid half the dictionary.
const MIN_IDENTITY_LEN: usize = 3;

/// The form a password takes before it is hashed or compared: Unicode NFKC, so that
/// the same password typed on different keyboards (composed or decomposed accents,
/// full-width digits) is the same password.
fn normalize(raw: &str) -> String {
    raw.nfkc().collect()
}

/// The key under which a password is looked up in a breached-password list: NFKC
/// and lower case. Lists are matched case-insensitively, so `Password1` is refused
/// when `password1` is listed. Adapters apply the same function to their entries.
pub fn breach_key(password: &str) -> String {
    password.nfkc().collect::<String>().to_lowercase()
}

/// The account a new password is for; the policy refuses passwords that contain
/// its username or the local part of its e-mail address.
#[derive(Debug, Clone, Copy)]
pub struct PasswordOwner<'a> {
    /// The account's username.
    pub username: &'a Username,
    /// The account's e-mail address, when it has one.
    pub email: Option<&'a Email>,
}

/// The rules a new password must meet (OWASP ASVS 4.0.3 V2.1): a minimum length,
/// bcrypt's 72-byte maximum, not a known breached password, and not built from the
/// account's own username or e-mail. Any Unicode is allowed and there are no
/// composition rules.
#[derive(Clone)]
pub struct PasswordPolicy {
    min_chars: usize,
    breached: Arc<dyn BreachedPasswords>,
}

impl fmt::Debug for PasswordPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordPolicy")
            .field("min_chars", &self.min_chars)
            .finish_non_exhaustive()
    }
}

/// A [`BreachedPasswords`] that lists nothing, for [`PasswordPolicy::without_breach_list`].
struct NoBreachList;

impl BreachedPasswords for NoBreachList {
    fn contains(&self, _key: &str) -> bool {
        false
    }
}

impl PasswordPolicy {
    /// A policy requiring `min_chars` characters (after NFKC) and checking `breached`.
    pub fn new(min_chars: usize, breached: Arc<dyn BreachedPasswords>) -> Self {
        Self {
            min_chars,
            breached,
        }
    }

    /// A policy with no breached-password list. For tests and tools only: a
    /// service that accepts passwords should use [`PasswordPolicy::new`].
    pub fn without_breach_list(min_chars: usize) -> Self {
        Self::new(min_chars, Arc::new(NoBreachList))
    }

    /// The minimum length in characters.
    pub fn min_chars(&self) -> usize {
        self.min_chars
    }

    /// Normalises `candidate` (NFKC), checks it against every rule and wraps it as
    /// a [`Password`]. The error names the rule broken and never contains the
    /// candidate.
    pub fn check(
        &self,
        candidate: String,
        owner: PasswordOwner<'_>,
    ) -> Result<Password, ValidationError> {
        const FIELD: &str = "password";
        let candidate = Zeroizing::new(candidate);
        let password = Password(normalize(&candidate));
        let text = password.expose();
        if text.chars().count() < self.min_chars {
            return Err(ValidationError::new(
                FIELD,
                format!("must be at least {} characters", self.min_chars),
            ));
        }
        if text.len() > MAX_PASSWORD_BYTES {
            return Err(ValidationError::new(
                FIELD,
                format!("must be at most {MAX_PASSWORD_BYTES} bytes of UTF-8"),
            ));
        }
        let key = Zeroizing::new(breach_key(text));
        let username = owner.username.as_str();
        if username.len() >= MIN_IDENTITY_LEN && key.contains(username) {
            return Err(ValidationError::new(FIELD, "must not contain the username"));
        }
        if let Some(email) = owner.email {
            let local = email.local_part();
            if local.len() >= MIN_IDENTITY_LEN && key.contains(local) {
                return Err(ValidationError::new(
                    FIELD,
                    "must not contain the email address",
                ));
            }
        }
        if self.breached.contains(&key) {
            return Err(ValidationError::new(
                FIELD,
                "is too common: it appears in lists of breached passwords",
            ));
        }
        Ok(password)
    }
}

/// A new password that met the [`PasswordPolicy`], in NFKC form. Zeroized on drop;
/// `Debug` is redacted.
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

/// A password offered at login, in NFKC form like a stored [`Password`]. It is not
/// checked against the policy (the policy may have changed since the account was
/// created), only verified against a stored hash. Zeroized on drop; `Debug` is
/// redacted.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct PasswordAttempt(String);

impl PasswordAttempt {
    /// Normalises the text a client sent.
    pub fn new(raw: String) -> Self {
        let raw = Zeroizing::new(raw);
        Self(normalize(&raw))
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
    use crate::ports::MockBreachedPasswords;

    fn owner_parts() -> (Username, Email) {
        (
            Username::parse("zed").unwrap(),
            Email::parse("someone@example.com").unwrap(),
        )
    }

    fn check(policy: &PasswordPolicy, candidate: &str) -> Result<Password, String> {
        let (username, email) = owner_parts();
        policy
            .check(
                candidate.to_owned(),
                PasswordOwner {
                    username: &username,
                    email: Some(&email),
                },
            )
            .map_err(|err| err.to_string())
    }

    #[test]
    fn counts_characters_after_nfkc_and_caps_bytes() {
        let policy = PasswordPolicy::without_breach_list(12);
        assert_eq!(
            check(&policy, "short").unwrap_err(),
            "password: must be at least 12 characters"
        );
        // 12 characters but 24 bytes: long enough.
        assert!(check(&policy, "éééééééééééé").is_ok());
        assert!(check(&policy, &"a".repeat(72)).is_ok());
        assert_eq!(
            check(&policy, &"a".repeat(73)).unwrap_err(),
            "password: must be at most 72 bytes of UTF-8"
        );
        // 36 characters, 72 bytes: fine; one more two-byte character is not.
        assert!(check(&policy, &"é".repeat(36)).is_ok());
        assert!(check(&policy, &"é".repeat(37)).is_err());
        // "e" + combining acute is two characters before NFKC and one after.
        let decomposed = "e\u{301}".repeat(12);
        assert_eq!(
            check(&policy, &decomposed).unwrap().expose(),
            "é".repeat(12)
        );
    }

    #[test]
    fn composed_and_decomposed_forms_are_the_same_password() {
        let policy = PasswordPolicy::without_breach_list(4);
        let composed = check(&policy, "caf\u{e9} au lait").unwrap();
        let attempt = PasswordAttempt::new("cafe\u{301} au lait".into());
        assert_eq!(composed.expose(), attempt.expose());
        // Full-width digits fold to ASCII.
        assert_eq!(PasswordAttempt::new("１２３".into()).expose(), "123");
    }

    #[test]
    fn refuses_passwords_built_from_the_account() {
        let policy = PasswordPolicy::without_breach_list(12);
        assert_eq!(
            check(&policy, "my name is ZED, ok?").unwrap_err(),
            "password: must not contain the username"
        );
        assert_eq!(
            check(&policy, "Someone-password-1").unwrap_err(),
            "password: must not contain the email address"
        );
        // Short usernames are not searched for: "zed" is, "jo" would not be.
        let username = Username::parse("jo").unwrap();
        assert!(
            policy
                .check(
                    "jolly good fellow".into(),
                    PasswordOwner {
                        username: &username,
                        email: None
                    }
                )
                .is_ok()
        );
    }

    #[test]
    fn refuses_breached_passwords_case_insensitively() {
        let mut breached = MockBreachedPasswords::new();
        breached
            .expect_contains()
            .returning(|key| key == "correcthorsebatterystaple");
        let policy = PasswordPolicy::new(12, Arc::new(breached));
        assert_eq!(
            check(&policy, "CorrectHorseBatteryStaple").unwrap_err(),
            "password: is too common: it appears in lists of breached passwords"
        );
        assert!(check(&policy, "correct horse battery staple").is_ok());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let password = check(
            &PasswordPolicy::without_breach_list(12),
            "correct horse battery",
        )
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
