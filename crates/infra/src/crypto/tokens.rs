use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::RwLock;
use safebox_domain::ports::{
    AccessToken, Clock, IssuedToken, TokenClaims, TokenError, TokenIssuer,
};
use safebox_domain::{SessionId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::KeyBytes;

/// The `iss` claim of every token safebox issues, and the only one it accepts.
pub const TOKEN_ISSUER: &str = "safebox";
/// The `aud` claim of every token safebox issues, and the only one it accepts.
pub const TOKEN_AUDIENCE: &str = "safebox-api";

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    sid: String,
    jti: String,
    iat: i64,
    exp: i64,
    iss: String,
    aud: String,
}

/// [`TokenIssuer`] for HS256 JSON Web Tokens. Only HS256 is accepted: `alg: none`
/// and every other algorithm are refused before any claim is read.
///
/// A client sends the same access token with every request until it expires, so
/// the claims of recently verified tokens are kept ([`VerifiedTokens`]): a token
/// seen before costs one SHA-256 instead of a full decode and HMAC.
pub struct JwtTokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
    clock: Arc<dyn Clock>,
    verified: VerifiedTokens,
}

/// The claims of the tokens verified most recently, found by the SHA-256 digest
/// of the whole token: a fixed table of [`VerifiedTokens::SLOTS`] slots, each
/// holding the last token whose digest falls in it.
///
/// - Only a token that passed every check of [`jsonwebtoken::decode`] is kept,
///   under the digest of its exact text, so a hit stands for that same text
///   having been verified with this issuer's key. Finding another text with the
///   same digest is finding a SHA-256 collision.
/// - Expiry is checked again on every use, against the clock.
/// - Digests, not tokens, are kept: a copy of the process's memory holds no
///   bearer token from here.
/// - Revocation is not the token's business: every request also checks that
///   the token's session is live.
///
/// Each slot has its own read-write lock. Lookups take it shared, so workers
/// checking the same token (one client, many connections) never wait for each
/// other, nor for one that the OS preempted while it held the lock.
struct VerifiedTokens {
    slots: Box<[Slot]>,
}

/// One entry of [`VerifiedTokens`]: a token's digest and its claims.
type Slot = RwLock<Option<([u8; 32], TokenClaims)>>;

impl VerifiedTokens {
    /// About 150 KiB: more clients than one instance serves at once.
    const SLOTS: usize = 1024;

    fn new() -> Self {
        Self {
            slots: (0..Self::SLOTS).map(|_| RwLock::new(None)).collect(),
        }
    }

    fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    fn slot(&self, digest: &[u8; 32]) -> &Slot {
        let index = u16::from_le_bytes([digest[0], digest[1]]);
        &self.slots[usize::from(index) % self.slots.len()]
    }

    fn get(&self, digest: &[u8; 32]) -> Option<TokenClaims> {
        match &*self.slot(digest).read() {
            Some((kept, claims)) if kept == digest => Some(claims.clone()),
            _ => None,
        }
    }

    fn put(&self, digest: [u8; 32], claims: &TokenClaims) {
        *self.slot(&digest).write() = Some((digest, claims.clone()));
    }
}

impl fmt::Debug for JwtTokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtTokenIssuer")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl JwtTokenIssuer {
    /// An issuer signing with `secret`, issuing tokens that live for `ttl`.
    pub fn new(secret: &KeyBytes, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against the injected clock below, not the system's.
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[TOKEN_ISSUER]);
        validation.set_audience(&[TOKEN_AUDIENCE]);
        Self {
            encoding: EncodingKey::from_secret(secret.expose()),
            decoding: DecodingKey::from_secret(secret.expose()),
            validation,
            ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            clock,
            verified: VerifiedTokens::new(),
        }
    }

    /// Decodes `token` and checks its signature, algorithm, issuer, audience and
    /// required claims: everything but its expiry.
    fn decode(&self, token: &str) -> Result<TokenClaims, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        let subject = uuid::Uuid::parse_str(&claims.sub).map_err(|_| TokenError::Invalid)?;
        let session = SessionId::parse(&claims.sid).ok_or(TokenError::Invalid)?;
        Ok(TokenClaims {
            subject: UserId(subject),
            session,
            token_id: claims.jti,
            issued_at: Timestamp(claims.iat),
            expires_at: Timestamp(claims.exp),
        })
    }
}

impl TokenIssuer for JwtTokenIssuer {
    fn issue(&self, subject: &UserId, session: &SessionId) -> Result<IssuedToken, TokenError> {
        let now = self.clock.now();
        let claims = Claims {
            sub: subject.to_string(),
            sid: session.to_string(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now.as_secs(),
            exp: now.plus_secs(self.ttl_secs).as_secs(),
            iss: TOKEN_ISSUER.to_owned(),
            aud: TOKEN_AUDIENCE.to_owned(),
        };
        let encoded = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|err| TokenError::Failure(Box::new(err)))?;
        Ok(IssuedToken {
            token: AccessToken::new(encoded),
            expires_in: u64::try_from(self.ttl_secs).unwrap_or(0),
        })
    }

    fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        let digest = VerifiedTokens::digest(token);
        let claims = match self.verified.get(&digest) {
            Some(claims) => claims,
            None => {
                let claims = self.decode(token)?;
                self.verified.put(digest, &claims);
                claims
            }
        };
        if claims.expires_at.as_secs() <= self.clock.now().as_secs() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    struct FixedClock(AtomicI64);

    impl Clock for FixedClock {
        fn now(&self) -> Timestamp {
            Timestamp(self.0.load(Ordering::SeqCst))
        }
    }

    fn issuer(secret: u8) -> (JwtTokenIssuer, Arc<FixedClock>) {
        let clock = Arc::new(FixedClock(AtomicI64::new(1_800_000_000)));
        let issuer = JwtTokenIssuer::new(
            &KeyBytes::new(vec![secret; 32]).unwrap(),
            Duration::from_secs(900),
            clock.clone(),
        );
        (issuer, clock)
    }

    #[test]
    fn issues_verifiable_tokens_with_unique_ids() {
        let (issuer, _) = issuer(1);
        let subject = UserId::generate();
        let session = SessionId::generate();
        let first = issuer.issue(&subject, &session).unwrap();
        let second = issuer.issue(&subject, &session).unwrap();
        assert_eq!(first.expires_in, 900);
        let claims = issuer.verify(first.token.expose()).unwrap();
        assert_eq!(claims.subject, subject);
        assert_eq!(claims.session, session);
        assert_eq!(claims.expires_at, Timestamp(1_800_000_900));
        assert_ne!(
            claims.token_id,
            issuer.verify(second.token.expose()).unwrap().token_id
        );
    }

    #[test]
    fn expires_exactly_at_exp() {
        let (issuer, clock) = issuer(1);
        let token = issuer
            .issue(&UserId::generate(), &SessionId::generate())
            .unwrap();
        clock.0.store(1_800_000_899, Ordering::SeqCst);
        assert!(issuer.verify(token.token.expose()).is_ok());
        clock.0.store(1_800_000_900, Ordering::SeqCst);
        assert!(matches!(
            issuer.verify(token.token.expose()),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn refuses_other_keys_tampering_and_alg_none() {
        let (issuer, _) = issuer(1);
        let (other, _) = issuer_with_other_key();
        let token = other
            .issue(&UserId::generate(), &SessionId::generate())
            .unwrap();
        assert!(matches!(
            issuer.verify(token.token.expose()),
            Err(TokenError::Invalid)
        ));

        let token = issuer
            .issue(&UserId::generate(), &SessionId::generate())
            .unwrap();
        let encoded = token.token.expose();
        let (head, signature) = encoded.rsplit_once('.').unwrap();
        let (_, payload) = head.split_once('.').unwrap();

        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        for forged in [
            format!("{none_header}.{payload}."),
            format!("{none_header}.{payload}.{signature}"),
            format!("{head}.{}", &signature[..signature.len() - 2]),
            encoded.replacen('.', ".x", 1),
            String::new(),
            "not-a-jwt".into(),
        ] {
            assert!(
                matches!(issuer.verify(&forged), Err(TokenError::Invalid)),
                "{forged}"
            );
        }
    }

    #[test]
    fn a_verified_token_is_remembered_but_its_forgeries_are_not() {
        let (issuer, _) = issuer(1);
        let subject = UserId::generate();
        let session = SessionId::generate();
        let token = issuer.issue(&subject, &session).unwrap();
        let encoded = token.token.expose();
        let first = issuer.verify(encoded).unwrap();
        assert_eq!(
            issuer.verify(encoded).unwrap(),
            first,
            "a repeat must agree"
        );

        // Now that the genuine token is remembered, each change to it is still
        // decoded and refused.
        let (head, signature) = encoded.rsplit_once('.').unwrap();
        let mut flipped = signature.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        for forged in [
            format!("{head}.{}", String::from_utf8(flipped).unwrap()),
            format!("{encoded}A"),
            format!(" {encoded}"),
            encoded[..encoded.len() - 1].to_owned(),
        ] {
            assert!(
                matches!(issuer.verify(&forged), Err(TokenError::Invalid)),
                "{forged}"
            );
        }
        assert_eq!(issuer.verify(encoded).unwrap(), first);

        // Another issuer (another key) never sees this one's memory.
        let (other, _) = issuer_with_other_key();
        assert!(matches!(other.verify(encoded), Err(TokenError::Invalid)));
    }

    #[test]
    fn tokens_sharing_a_slot_each_verify_as_themselves() {
        let (issuer, _) = issuer(1);
        // Four times as many tokens as slots: many share one, and evict each other.
        let issued: Vec<(UserId, SessionId, String)> = (0..VerifiedTokens::SLOTS * 4)
            .map(|_| {
                let (subject, session) = (UserId::generate(), SessionId::generate());
                let token = issuer.issue(&subject, &session).unwrap();
                (subject, session, token.token.expose().to_owned())
            })
            .collect();
        for _ in 0..2 {
            for (subject, session, token) in &issued {
                let claims = issuer.verify(token).unwrap();
                assert_eq!((claims.subject, claims.session), (*subject, *session));
            }
        }
    }

    fn issuer_with_other_key() -> (JwtTokenIssuer, Arc<FixedClock>) {
        issuer(2)
    }

    #[test]
    fn refuses_another_issuer_or_audience_or_a_token_without_a_session() {
        let secret = vec![1_u8; 32];
        let (issuer, _) = issuer(1);
        let session = SessionId::generate().to_string();
        for (iss, aud, sid) in [
            ("someone-else", TOKEN_AUDIENCE, session.as_str()),
            (TOKEN_ISSUER, "another-api", session.as_str()),
            (TOKEN_ISSUER, TOKEN_AUDIENCE, "not-a-session-id"),
        ] {
            let claims = Claims {
                sub: UserId::generate().to_string(),
                sid: sid.into(),
                jti: "j".into(),
                iat: 1_800_000_000,
                exp: 1_900_000_000,
                iss: iss.into(),
                aud: aud.into(),
            };
            let token = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(&secret),
            )
            .unwrap();
            assert!(matches!(issuer.verify(&token), Err(TokenError::Invalid)));
        }
    }
}
