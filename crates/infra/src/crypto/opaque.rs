use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use safebox_domain::ports::{OpaqueTokens, TokenError};
use safebox_domain::{OpaqueToken, TokenDigest};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// The random bytes in one opaque token.
const TOKEN_BYTES: usize = 32;

/// [`OpaqueTokens`] from the operating system's CSPRNG: 256 random bits, encoded as
/// unpadded base64url (43 characters), stored as their SHA-256 in hex. The tokens
/// carry their full entropy, so one unsalted SHA-256 is enough to make the stored
/// digest useless to whoever reads the database.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomOpaqueTokens;

impl OpaqueTokens for RandomOpaqueTokens {
    fn generate(&self) -> Result<(OpaqueToken, TokenDigest), TokenError> {
        let mut bytes = Zeroizing::new([0_u8; TOKEN_BYTES]);
        getrandom::fill(bytes.as_mut()).map_err(|err| TokenError::Failure(Box::new(err)))?;
        let token = OpaqueToken::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()));
        let digest = self.digest(&token);
        Ok((token, digest))
    }

    fn digest(&self, token: &OpaqueToken) -> TokenDigest {
        TokenDigest(hex::encode(Sha256::digest(token.expose().as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn tokens_are_256_random_bits_and_digests_are_stable_and_one_way() {
        let tokens = RandomOpaqueTokens;
        let mut seen = HashSet::new();
        for _ in 0..1_000 {
            let (token, digest) = tokens.generate().unwrap();
            assert_eq!(URL_SAFE_NO_PAD.decode(token.expose()).unwrap().len(), 32);
            assert_eq!(tokens.digest(&token), digest);
            assert_eq!(digest.0.len(), 64);
            assert!(!digest.0.contains(token.expose()));
            assert!(seen.insert(token.expose().to_owned()), "a token repeated");
        }
        assert_ne!(
            tokens.digest(&OpaqueToken::new("a".into())),
            tokens.digest(&OpaqueToken::new("b".into()))
        );
    }
}
