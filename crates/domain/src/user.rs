use std::fmt;

use crate::{PasswordHash, Timestamp, ValidationError, WrappedDataKey};

/// A user's stable, application-generated identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(pub uuid::Uuid);

impl UserId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A validated username: 1–64 characters of `[A-Za-z0-9._-]`.
///
/// Usernames are case-insensitive: parsing folds them to lower case, so `Alice` and
/// `alice` name the same account and one can never impersonate the other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// The longest username accepted, in characters.
    pub const MAX_LEN: usize = 64;

    /// Validates and canonicalises `raw`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        const FIELD: &str = "username";
        if raw.is_empty() {
            return Err(ValidationError::new(FIELD, "must not be empty"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                FIELD,
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(ValidationError::new(
                FIELD,
                "may contain only letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// The canonical (lower-case) username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated e-mail address, folded to lower case.
///
/// The check is deliberately structural (one `@`, a sane local part, a domain made of
/// DNS labels); only delivering mail proves an address exists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// The longest address accepted (RFC 5321's path limit less the brackets).
    pub const MAX_LEN: usize = 254;

    /// Validates and canonicalises `raw` (surrounding whitespace is ignored).
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        const FIELD: &str = "email";
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ValidationError::new(FIELD, "must not be empty"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                FIELD,
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        let invalid = || ValidationError::new(FIELD, "is not a valid email address");
        let (local, domain) = raw.split_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"@\"(),:;<>[\\]".contains(&b));
        let domain_ok = domain.len() <= 253
            && domain.split('.').count() >= 2
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !(local_ok && domain_ok) {
            return Err(invalid());
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// The canonical (lower-case) address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map_or(&self.0, |(local, _)| local)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an account may do beyond its own data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Role {
    /// An ordinary account.
    #[default]
    User,
    /// May read, update and delete every account, and read everyone's audit
    /// events. Never another user's secrets.
    Admin,
}

impl Role {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "user" => Some(Self::User),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable identifier; the subject of every token issued to this user.
    pub id: UserId,
    /// Canonical username, unique across accounts.
    pub username: Username,
    /// Canonical e-mail address, unique across accounts. Accounts made by
    /// `POST /user` may have none.
    pub email: Option<Email>,
    /// The bcrypt hash of the password (never the password).
    pub password_hash: PasswordHash,
    /// What the account may do.
    pub role: Role,
    /// The account's free-form data (address, phone, …).
    pub data: UserData,
    /// When the account was created.
    pub created_at: Timestamp,
}

/// An account's free-form data: the text of a JSON object, at most
/// [`UserData::MAX_BYTES`] long.
///
/// The HTTP layer checks that the text is a JSON object; this type holds it
/// opaquely, so that the domain needs no JSON library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData(String);

impl UserData {
    /// The largest data accepted, in bytes of serialised JSON.
    pub const MAX_BYTES: usize = 16 * 1024;

    /// The empty object.
    pub fn empty() -> Self {
        Self("{}".to_owned())
    }

    /// Accepts the serialised text of a JSON object.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `data` when it exceeds [`Self::MAX_BYTES`].
    pub fn parse(json_object: String) -> Result<Self, ValidationError> {
        if json_object.len() > Self::MAX_BYTES {
            return Err(ValidationError::new(
                "data",
                format!("must be at most {} bytes", Self::MAX_BYTES),
            ));
        }
        Ok(Self(json_object))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for UserData {
    fn default() -> Self {
        Self::empty()
    }
}

/// Everything a repository needs to create an account atomically: the user row and
/// the user's freshly wrapped data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The account to store.
    pub user: User,
    /// The user's data key, wrapped by the current master key.
    pub data_key: WrappedDataKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_fold_case_and_reject_bad_characters() {
        assert_eq!(
            Username::parse("Alice.B-1_x").unwrap().as_str(),
            "alice.b-1_x"
        );
        assert_eq!(
            Username::parse("").unwrap_err().problem,
            "must not be empty"
        );
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse("ümlaut").is_err());
        assert!(Username::parse(&"a".repeat(64)).is_ok());
        assert!(Username::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn user_data_is_capped() {
        assert_eq!(UserData::default().as_str(), "{}");
        let max = format!("{{\"a\":\"{}\"}}", "x".repeat(UserData::MAX_BYTES - 8));
        assert_eq!(max.len(), UserData::MAX_BYTES);
        assert!(UserData::parse(max.clone()).is_ok());
        let over = format!("{max} ");
        assert_eq!(
            UserData::parse(over).unwrap_err().to_string(),
            "data: must be at most 16384 bytes"
        );
    }

    #[test]
    fn emails_are_checked_structurally_and_folded() {
        let email = Email::parse(" New.User@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "new.user@example.com");
        assert_eq!(email.local_part(), "new.user");
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@-b.com",
            "a@b..com",
            ".a@b.com",
            "a..b@c.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long_local).is_err());
    }
}
