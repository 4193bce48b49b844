//! Handler tests over mocked ports: how each failure of an adapter reaches the
//! client, without a database or real crypto.

use std::sync::Arc;

use actix_web::body::to_bytes;
use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use safebox_domain::ports::{
    AccessToken, CipherError, HashError, IssuedToken, LockoutPolicy, MockAuditLog, MockClock,
    MockOpaqueTokens, MockPasswordHasher, MockSecretCipher, MockSecretRepository,
    MockSessionRepository, MockTokenIssuer, MockUserRepository, Ports, TokenClaims, TokenError,
    WriteOutcome,
};
use safebox_domain::usecases::{
    Authenticate, ChangePassword, EndSession, GetSecret, ListAudit, ListSessions, Login, Logout,
    ManageAccount, Refresh, Register, SessionPolicy, SetSecret, Vault, WhoAmI,
};
use safebox_domain::{
    DataKeyId, Email, KeyId, OpaqueToken, PasswordHash, PasswordPolicy, RepoError, SealedData,
    Secret, SecretMetadata, SecretName, SecretValue, SecretVersion, Session, SessionId,
    SessionKind, StoredVersion, Timestamp, TokenDigest, User, UserData, UserId, Username,
    VaultLimits, WrappedDataKey,
};
use safebox_infra::{ClientIpSource, MemoryAttemptLimiter};
use serde_json::{Value, json};

use crate::hashing::HashingPool;
use crate::routes;
use crate::state::AppState;

#[derive(Default)]
struct MockPorts {
    users: MockUserRepository,
    secrets: MockSecretRepository,
    hasher: MockPasswordHasher,
    cipher: MockSecretCipher,
    tokens: MockTokenIssuer,
    sessions: MockSessionRepository,
    opaque_tokens: MockOpaqueTokens,
}

fn alice() -> User {
    User {
        id: UserId(uuid::Uuid::from_u128(1)),
        username: Username::parse("alice").unwrap(),
        email: Some(Email::parse("alice@example.com").unwrap()),
        password_hash: PasswordHash("$2b$04$hash".into()),
        role: safebox_domain::Role::User,
        data: UserData::empty(),
        created_at: Timestamp(1),
    }
}

/// Alice's live session, the one the bearer token "valid" names.
fn alices_session() -> Session {
    Session {
        id: SessionId(uuid::Uuid::from_u128(3)),
        user_id: alice().id,
        kind: SessionKind::Bearer,
        created_at: Timestamp(1),
        last_used_at: Timestamp(2),
        expires_at: Timestamp(i64::MAX),
        client_ip: None,
        user_agent: None,
    }
}

impl MockPorts {
    /// Ports whose token issuer accepts the bearer token "valid" as alice's, in
    /// her live session.
    /// The ports hold nothing in memory: every read takes the blocking path.
    fn authenticated() -> Self {
        let mut ports = Self::with_valid_token();
        ports
            .sessions
            .expect_find()
            .returning(|_| Ok(Some(alices_session())));
        ports.sessions.expect_find_in_memory().returning(|_| None);
        ports
    }

    /// Ports whose token issuer accepts the bearer token "valid" as alice's, in
    /// her live session, and that expect nothing else.
    fn with_valid_token() -> Self {
        let mut ports = Self::default();
        ports.tokens.expect_verify().returning(|token| {
            if token == "valid" {
                Ok(TokenClaims {
                    subject: alice().id,
                    session: alices_session().id,
                    token_id: "jti".into(),
                    issued_at: Timestamp(1),
                    expires_at: Timestamp(i64::MAX),
                })
            } else {
                Err(TokenError::Invalid)
            }
        });
        ports
    }

    /// Lets a login open a session whose refresh token is "refresh-token".
    fn expect_new_session(&mut self) {
        self.opaque_tokens.expect_generate().returning(|| {
            Ok((
                OpaqueToken::new("refresh-token".into()),
                TokenDigest("digest".into()),
            ))
        });
        self.sessions.expect_create().returning(|_, _| Ok(()));
    }

    fn into_state(self) -> web::Data<AppState> {
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| Timestamp(2));
        let mut audit = MockAuditLog::new();
        audit.expect_record().returning(|_| ());
        audit.expect_record_or_refuse().returning(|_| Ok(()));
        let ports = Ports {
            users: Arc::new(self.users),
            secrets: Arc::new(self.secrets),
            hasher: Arc::new(self.hasher),
            cipher: Arc::new(self.cipher),
            tokens: Arc::new(self.tokens),
            sessions: Arc::new(self.sessions),
            opaque_tokens: Arc::new(self.opaque_tokens),
            attempts: Arc::new(MemoryAttemptLimiter::default()),
            audit: Arc::new(audit),
            clock: Arc::new(clock),
        };
        let policy = PasswordPolicy::without_breach_list(12);
        web::Data::new(AppState {
            register: Register::new(&ports),
            login: Login::new(&ports, LockoutPolicy::default(), SessionPolicy::default()),
            authenticate: Authenticate::new(ports.tokens.clone()),
            set_secret: SetSecret::new(&ports, VaultLimits::default()),
            get_secret: GetSecret::new(&ports),
            vault: Vault::new(&ports, VaultLimits::default()),
            list_audit: ListAudit::new(&ports),
            who_am_i: WhoAmI::new(&ports),
            manage_account: ManageAccount::new(&ports),
            change_password: ChangePassword::new(&ports, policy.clone(), LockoutPolicy::default()),
            refresh: Refresh::new(&ports),
            logout: Logout::new(&ports),
            list_sessions: ListSessions::new(&ports),
            end_session: EndSession::new(&ports),
            password_policy: policy,
            hashing: HashingPool::new(1, 4),
            ip_limiter: None,
            work_deadline: std::time::Duration::from_secs(3),
            hashing_deadline: std::time::Duration::from_secs(8),
            client_ip: ClientIpSource::Peer,
            tls: false,
            metrics: Arc::default(),
        })
    }
}

async fn call(ports: MockPorts, request: test::TestRequest) -> (StatusCode, Value) {
    let app = test::init_service(
        App::new()
            .app_data(ports.into_state())
            .configure(routes::configure),
    )
    .await;
    let response = test::call_service(&app, request.to_request()).await;
    let status = response.status();
    let bytes = to_bytes(response.into_body()).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn register_request() -> test::TestRequest {
    test::TestRequest::post().uri("/register").set_json(json!({
        "email": "new@example.com",
        "username": "newbie",
        "password": "a long enough password",
    }))
}

fn login_request() -> test::TestRequest {
    test::TestRequest::post()
        .uri("/login")
        .set_json(json!({ "email": "alice@example.com", "password": "a long enough password" }))
}

fn get_secret_request() -> test::TestRequest {
    test::TestRequest::get()
        .uri("/get_secret?username=alice")
        .insert_header(("Authorization", "Bearer valid"))
}

fn data_key() -> WrappedDataKey {
    WrappedDataKey {
        id: DataKeyId(uuid::Uuid::from_u128(2)),
        sealed: SealedData {
            key_id: KeyId("mk-1".into()),
            bytes: vec![0; 60],
        },
    }
}

#[actix_web::test]
async fn an_unavailable_store_is_503_service_unavailable() {
    let mut ports = MockPorts::default();
    ports
        .users
        .expect_find_by_email()
        .returning(|_| Err(RepoError::Unavailable("pool timed out".into())));
    let (status, body) = call(ports, register_request()).await;
    assert_eq!(status, 503);
    assert_eq!(body, json!({ "detail": "service unavailable" }));
}

#[actix_web::test]
async fn a_broken_store_is_an_opaque_500() {
    let mut ports = MockPorts::default();
    ports
        .users
        .expect_find_by_email()
        .returning(|_| Err(RepoError::internal("disk I/O error at /var/lib/safebox")));
    let (status, body) = call(ports, login_request()).await;
    assert_eq!(status, 500);
    assert_eq!(body, json!({ "detail": "internal server error" }));
}

#[actix_web::test]
async fn a_hashing_failure_is_an_opaque_500() {
    let mut ports = MockPorts::default();
    ports.users.expect_find_by_email().returning(|_| Ok(None));
    ports
        .users
        .expect_find_by_username()
        .returning(|_| Ok(None));
    ports
        .hasher
        .expect_hash()
        .returning(|_| Err(HashError("bcrypt exploded".into())));
    let (status, body) = call(ports, register_request()).await;
    assert_eq!(status, 500);
    assert_eq!(body, json!({ "detail": "internal server error" }));
}

#[actix_web::test]
async fn a_token_that_cannot_be_issued_is_an_opaque_500() {
    let mut ports = MockPorts::default();
    ports
        .users
        .expect_find_by_email()
        .returning(|_| Ok(Some(alice())));
    ports.hasher.expect_verify().returning(|_, _| Ok(true));
    ports.expect_new_session();
    ports
        .tokens
        .expect_issue()
        .returning(|_, _| Err(TokenError::Failure("no entropy".into())));
    let (status, body) = call(ports, login_request()).await;
    assert_eq!(status, 500);
    assert_eq!(body, json!({ "detail": "internal server error" }));
}

#[actix_web::test]
async fn login_responds_with_the_issued_token() {
    let mut ports = MockPorts::default();
    ports
        .users
        .expect_find_by_email()
        .returning(|_| Ok(Some(alice())));
    ports.hasher.expect_verify().returning(|_, _| Ok(true));
    ports.expect_new_session();
    ports.tokens.expect_issue().returning(|_, _| {
        Ok(IssuedToken {
            token: AccessToken::new("header.payload.signature".into()),
            expires_in: 600,
        })
    });
    let (status, body) = call(ports, login_request()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "token": "header.payload.signature",
            "message": "Login successful",
            "token_type": "Bearer",
            "expires_in": 600,
            "refresh_token": "refresh-token",
        })
    );
}

/// A live secret at version 1.
fn stored_secret(owner: UserId, name: SecretName, deleted_at: Option<Timestamp>) -> Secret {
    Secret {
        owner,
        name,
        version: SecretVersion(1),
        oldest_version: SecretVersion(1),
        metadata: SecretMetadata::default(),
        created_at: Timestamp(1),
        updated_at: Timestamp(1),
        deleted_at,
    }
}

#[actix_web::test]
async fn a_tampered_ciphertext_is_an_opaque_500_never_a_value() {
    let mut ports = MockPorts::authenticated();
    ports
        .users
        .expect_find_with_data_key()
        .returning(|_| Ok(Some((alice(), Some(data_key())))));
    ports.secrets.expect_read().returning(|owner, name, _| {
        Ok(Some((
            stored_secret(*owner, name.clone(), None),
            Some(StoredVersion {
                version: SecretVersion(1),
                sealed: SealedData {
                    key_id: KeyId("dk".into()),
                    bytes: b"garbage".to_vec(),
                },
                created_at: Timestamp(1),
            }),
        )))
    });
    ports
        .cipher
        .expect_open()
        .returning(|_, _, _, _, _| Err(CipherError::Integrity));
    let (status, body) = call(ports, get_secret_request()).await;
    assert_eq!(status, 500);
    assert_eq!(body, json!({ "detail": "internal server error" }));
}

#[actix_web::test]
async fn a_read_the_ports_hold_in_memory_never_reaches_storage() {
    // Only the `*_in_memory` lookups are expected: `find`, `find_with_data_key`
    // or `read` (a blocking lookup) would panic the mocks.
    let mut ports = MockPorts::with_valid_token();
    ports
        .sessions
        .expect_find_in_memory()
        .returning(|_| Some(alices_session()));
    ports
        .users
        .expect_find_with_data_key_in_memory()
        .returning(|_| Some((alice().username, Some(data_key()))));
    ports
        .secrets
        .expect_read_newest_in_memory()
        .returning(|owner, name| {
            Some((
                stored_secret(*owner, name.clone(), None),
                Some(StoredVersion {
                    version: SecretVersion(1),
                    sealed: SealedData {
                        key_id: KeyId("dk".into()),
                        bytes: b"sealed".to_vec(),
                    },
                    created_at: Timestamp(1),
                }),
            ))
        });
    ports
        .cipher
        .expect_open()
        .times(1)
        .returning(|_, _, _, _, _| Ok(SecretValue::from_decrypted("from memory".into())));
    let (status, body) = call(ports, get_secret_request()).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "secret": "from memory" }));
}

#[actix_web::test]
async fn set_secret_seals_under_the_default_name() {
    let mut ports = MockPorts::authenticated();
    ports
        .users
        .expect_find_with_data_key()
        .returning(|_| Ok(Some((alice(), Some(data_key())))));
    ports
        .cipher
        .expect_seal()
        .withf(|_, owner, name, version, value| {
            *owner == alice().id
                && *name == SecretName::default_name()
                && *version == SecretVersion(1)
                && value.expose() == "v"
        })
        .times(1)
        .returning(|_, _, _, _, _| {
            Ok(SealedData {
                key_id: KeyId("dk".into()),
                bytes: vec![9],
            })
        });
    ports
        .secrets
        .expect_find()
        .times(1)
        .returning(|_, _| Ok(None));
    ports
        .secrets
        .expect_write()
        .withf(|write| write.base.is_none() && write.sealed.bytes == [9])
        .times(1)
        .returning(|write| {
            Ok(WriteOutcome::Written(stored_secret(
                write.owner,
                write.name.clone(),
                None,
            )))
        });
    let request = test::TestRequest::post()
        .uri("/set_secret")
        .insert_header(("Authorization", "Bearer valid"))
        .set_json(json!({ "username": "alice", "secret": "v" }));
    let (status, body) = call(ports, request).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "message": "Secret set successfully" }));
}

#[actix_web::test]
async fn a_refused_token_never_reaches_the_use_case() {
    // No repository expectations: any lookup would panic the mock.
    let ports = MockPorts::authenticated();
    let request = test::TestRequest::get()
        .uri("/get_secret?username=alice")
        .insert_header(("Authorization", "Bearer forged"));
    let (status, body) = call(ports, request).await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({ "detail": "Not authorized" }));
}
