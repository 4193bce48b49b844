use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use safebox_domain::ports::{
    AccessToken, Clock, IssuedToken, TokenClaims, TokenError, TokenIssuer,
};
use safebox_domain::{SessionId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

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
pub struct JwtTokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
    clock: Arc<dyn Clock>,
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
        }
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
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        let subject = uuid::Uuid::parse_str(&claims.sub).map_err(|_| TokenError::Invalid)?;
        let session = SessionId::parse(&claims.sid).ok_or(TokenError::Invalid)?;
        if claims.exp <= self.clock.now().as_secs() {
            return Err(TokenError::Expired);
        }
        Ok(TokenClaims {
            subject: UserId(subject),
            session,
            token_id: claims.jti,
            issued_at: Timestamp(claims.iat),
            expires_at: Timestamp(claims.exp),
        })
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
