use std::sync::Arc;

use crate::Credential;
use crate::ports::{TokenError, TokenIssuer};

/// Why a presented token does not authenticate anyone.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticateError {
    /// Malformed, forged or for another issuer or audience.
    #[error("invalid token")]
    InvalidToken,
    /// Past its expiry.
    #[error("expired token")]
    ExpiredToken,
}

/// Turns a bearer token into a [`Credential`]: its user and session. Cheap (one
/// HMAC), so it runs inline; whether the session is still live is checked by the
/// use case the request then runs.
pub struct Authenticate {
    tokens: Arc<dyn TokenIssuer>,
}

impl Authenticate {
    /// Builds the use case.
    pub fn new(tokens: Arc<dyn TokenIssuer>) -> Self {
        Self { tokens }
    }

    /// Verifies `token`.
    pub fn execute(&self, token: &str) -> Result<Credential, AuthenticateError> {
        match self.tokens.verify(token) {
            Ok(claims) => Ok(Credential::Access {
                user_id: claims.subject,
                session_id: claims.session,
            }),
            Err(TokenError::Expired) => Err(AuthenticateError::ExpiredToken),
            Err(TokenError::Invalid | TokenError::Failure(_)) => {
                Err(AuthenticateError::InvalidToken)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockTokenIssuer, TokenClaims};
    use crate::{SessionId, Timestamp, UserId};

    fn authenticate_with(result: fn() -> Result<TokenClaims, TokenError>) -> Authenticate {
        let mut tokens = MockTokenIssuer::new();
        tokens
            .expect_verify()
            .withf(|token| token == "presented")
            .times(1)
            .returning(move |_| result());
        Authenticate::new(Arc::new(tokens))
    }

    #[test]
    fn a_valid_token_yields_its_subject_and_session() {
        let credential = authenticate_with(|| {
            Ok(TokenClaims {
                subject: UserId(uuid::Uuid::nil()),
                session: SessionId(uuid::Uuid::from_u128(7)),
                token_id: "jti-1".into(),
                issued_at: Timestamp(1),
                expires_at: Timestamp(2),
            })
        })
        .execute("presented")
        .unwrap();
        assert_eq!(
            credential,
            Credential::Access {
                user_id: UserId(uuid::Uuid::nil()),
                session_id: SessionId(uuid::Uuid::from_u128(7)),
            }
        );
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let err = authenticate_with(|| Err(TokenError::Expired))
            .execute("presented")
            .unwrap_err();
        assert!(matches!(err, AuthenticateError::ExpiredToken));
    }

    #[test]
    fn an_invalid_or_unverifiable_token_is_refused_as_invalid() {
        let err = authenticate_with(|| Err(TokenError::Invalid))
            .execute("presented")
            .unwrap_err();
        assert!(matches!(err, AuthenticateError::InvalidToken));
        let err = authenticate_with(|| Err(TokenError::Failure("x".into())))
            .execute("presented")
            .unwrap_err();
        assert!(matches!(err, AuthenticateError::InvalidToken));
    }
}
