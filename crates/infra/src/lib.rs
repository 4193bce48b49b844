//! # safebox-infra
//!
//! Adapters for the ports of `safebox-domain`, named by the technology they use:
//! [`DieselUserRepository`] and [`DieselSecretRepository`] (diesel + r2d2 on SQLite),
//! [`BcryptPasswordHasher`], [`AesGcmSecretCipher`] (AES-256-GCM envelope
//! encryption), [`JwtTokenIssuer`] (HS256 JWTs) and [`SystemClock`]; plus loading the
//! [`Config`] and the key material.
#![forbid(unsafe_code)]

mod breach;
mod clock;
pub mod config;
mod crypto;
pub mod db;
mod limits;
#[cfg(feature = "testing")]
pub mod testing;

pub use breach::EmbeddedBreachList;
pub use clock::SystemClock;
pub use config::{
    ClientIpSource, Config, ConfigError, KeyBytes, Keys, LogFormat, MasterKeyEntry, TlsFiles,
};
pub use crypto::cipher::{AesGcmSecretCipher, KeyRingError, MasterKey, MasterKeyRing};
pub use crypto::hasher::BcryptPasswordHasher;
pub use crypto::opaque::RandomOpaqueTokens;
pub use crypto::tokens::{JwtTokenIssuer, TOKEN_AUDIENCE, TOKEN_ISSUER};
pub use db::{
    DbPool, DieselAuditLog, DieselSecretRepository, DieselSessionRepository, DieselUserRepository,
};
pub use limits::{MemoryAttemptLimiter, MemoryRateLimiter};
