use std::fmt;

use base64::Engine as _;
use safebox_domain::ports::{HashError, PasswordHasher};
use safebox_domain::{Password, PasswordAttempt, PasswordHash};
use zeroize::Zeroizing;

/// bcrypt reads at most this many bytes.
const BCRYPT_MAX_BYTES: usize = 72;

/// [`PasswordHasher`] with bcrypt (`$2b$`), refusing to truncate long passwords.
///
/// The bcrypt crate's `non_truncating_*` functions count the C string terminator and
/// so refuse a password of exactly 72 bytes, which bcrypt does read whole. This
/// adapter therefore enforces the 72-byte bound itself and calls the plain
/// functions only with input that fits, so no byte of a password is ever dropped.
pub struct BcryptPasswordHasher {
    cost: u32,
    dummy: PasswordHash,
}

impl fmt::Debug for BcryptPasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BcryptPasswordHasher")
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

impl BcryptPasswordHasher {
    /// Builds a hasher at `cost` (4–31). Computes the dummy hash once, so this
    /// takes as long as one hash at that cost.
    pub fn new(cost: u32) -> Result<Self, HashError> {
        let mut random = Zeroizing::new([0_u8; 32]);
        getrandom::fill(random.as_mut()).map_err(|err| HashError(err.to_string().into()))?;
        let unguessable = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(random));
        let dummy =
            bcrypt::hash(unguessable.as_bytes(), cost).map_err(|err| HashError(Box::new(err)))?;
        Ok(Self {
            cost,
            dummy: PasswordHash(dummy),
        })
    }

    /// The configured cost.
    pub fn cost(&self) -> u32 {
        self.cost
    }
}

impl PasswordHasher for BcryptPasswordHasher {
    fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        if password.expose().len() > BCRYPT_MAX_BYTES {
            return Err(HashError("password longer than bcrypt's 72 bytes".into()));
        }
        bcrypt::hash(password.expose(), self.cost)
            .map(PasswordHash)
            .map_err(|err| HashError(Box::new(err)))
    }

    fn verify(&self, attempt: &PasswordAttempt, hash: &PasswordHash) -> Result<bool, HashError> {
        if attempt.expose().len() > BCRYPT_MAX_BYTES {
            // No stored password is this long, so it cannot match; spend the same
            // work anyway so that the length does not show in the response time.
            bcrypt::verify(b"", &hash.0).map_err(|err| HashError(Box::new(err)))?;
            return Ok(false);
        }
        bcrypt::verify(attempt.expose(), &hash.0).map_err(|err| HashError(Box::new(err)))
    }

    fn dummy_hash(&self) -> PasswordHash {
        self.dummy.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safebox_domain::{PasswordOwner, PasswordPolicy, Username};

    #[test]
    fn verifies_the_right_password_only_and_never_truncates() {
        let hasher = BcryptPasswordHasher::new(4).unwrap();
        let password = "p".repeat(72);
        let hash = hasher
            .hash(
                &PasswordPolicy::without_breach_list(12)
                    .check(
                        password.clone(),
                        PasswordOwner {
                            username: &Username::parse("someone").unwrap(),
                            email: None,
                        },
                    )
                    .unwrap(),
            )
            .unwrap();
        assert!(hash.0.starts_with("$2b$04$"));
        assert!(!hash.0.contains(&password));
        assert!(
            hasher
                .verify(&PasswordAttempt::new(password.clone()), &hash)
                .unwrap()
        );
        assert!(
            !hasher
                .verify(&PasswordAttempt::new("p".repeat(71)), &hash)
                .unwrap()
        );
        // A truncating bcrypt would accept this: the first 72 bytes match.
        let longer = format!("{password}extra");
        assert!(!hasher.verify(&PasswordAttempt::new(longer), &hash).unwrap());
    }

    #[test]
    fn the_dummy_hash_has_the_configured_cost_and_matches_nothing_simple() {
        let hasher = BcryptPasswordHasher::new(5).unwrap();
        let dummy = hasher.dummy_hash();
        assert!(dummy.0.starts_with("$2b$05$"));
        assert!(
            !hasher
                .verify(&PasswordAttempt::new(String::new()), &dummy)
                .unwrap()
        );
        assert!(
            !hasher
                .verify(&PasswordAttempt::new("password".into()), &dummy)
                .unwrap()
        );
    }
}
