use std::sync::Arc;

use crate::UserId;
use crate::ports::{TokenError, TokenIssuer};

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who is calling.
    pub user_id: UserId,
    /// The id of the token they presented.
    pub token_id: String,
}

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

/// Turns a bearer token into a [`Principal`]. Cheap (one HMAC): safe to run inline.
pub struct Authenticate {
    tokens: Arc<dyn TokenIssuer>,
}

impl Authenticate {
    /// Builds the use case.
    pub fn new(tokens: Arc<dyn TokenIssuer>) -> Self {
        Self { tokens }
    }

    /// Verifies `token`.
    pub fn execute(&self, token: &str) -> Result<Principal, AuthenticateError> {
        match self.tokens.verify(token) {
            Ok(claims) => Ok(Principal {
                user_id: claims.subject,
                token_id: claims.token_id,
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
    use crate::Timestamp;
    use crate::ports::{MockTokenIssuer, TokenClaims};

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
    fn a_valid_token_yields_its_subject() {
        let principal = authenticate_with(|| {
            Ok(TokenClaims {
                subject: UserId(uuid::Uuid::nil()),
                token_id: "jti-1".into(),
                issued_at: Timestamp(1),
                expires_at: Timestamp(2),
            })
        })
        .execute("presented")
        .unwrap();
        assert_eq!(principal.user_id, UserId(uuid::Uuid::nil()));
        assert_eq!(principal.token_id, "jti-1");
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
