//! # safebox-infra
//!
//! Adapters for the ports of `safebox-domain`, named by the technology they use:
//! [`DieselUserRepository`] and [`DieselSecretRepository`] (diesel + r2d2 on SQLite),
//! [`BcryptPasswordHasher`], [`AesGcmSecretCipher`] (AES-256-GCM envelope
//! encryption), [`JwtTokenIssuer`] (HS256 JWTs) and [`SystemClock`]; sessions,
//! login lockouts and rate limits shared through Redis ([`RedisSessionRepository`],
//! [`RedisAttemptLimiter`], [`RedisRateLimiter`] on a [`RedisStore`]); plus loading
//! the [`Config`] and the key material.
#![forbid(unsafe_code)]

mod breach;
mod clock;
pub mod config;
mod crypto;
pub mod db;
pub mod deadline;
mod limits;
pub mod log_throttle;
pub mod read_cache;
mod redact;
mod redis_store;
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
pub use read_cache::{
    CachingSecretRepository, CachingSessionRepository, CachingUserRepository, ReadCache,
};
pub use redact::redact_url;
pub use redis_store::{
    RedisAttemptLimiter, RedisConnectError, RedisConnections, RedisPingError, RedisRateLimiter,
    RedisSessionRepository, RedisSettings, RedisStore,
};
