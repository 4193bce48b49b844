use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use safebox_domain::PasswordPolicy;
use safebox_domain::ports::{
    AttemptLimiter, Clock, LockoutPolicy, Ports, SessionRepository, TokenIssuer,
};
use safebox_domain::ports::{SecretRepository, UserRepository};
use safebox_domain::usecases::{
    Authenticate, ChangePassword, EndSession, GetSecret, ListAudit, ListSessions, Login, Logout,
    ManageAccount, Refresh, Register, SessionPolicy, SetSecret, Vault, WhoAmI,
};
use safebox_infra::db::{self, Backend, DbError, ServeLock};
use safebox_infra::{
    AesGcmSecretCipher, BcryptPasswordHasher, CachingSecretRepository, CachingSessionRepository,
    CachingUserRepository, Config, ConfigError, DieselAuditLog, DieselSecretRepository,
    DieselSessionRepository, DieselUserRepository, EmbeddedBreachList, JwtTokenIssuer,
    MemoryAttemptLimiter, MemoryRateLimiter, RandomOpaqueTokens, ReadCache, RedisAttemptLimiter,
    RedisRateLimiter, RedisSessionRepository, RedisSettings, RedisStore, SystemClock, TlsFiles,
};

use crate::error::ApiError;
use crate::extract::describe;
use crate::handlers;
use crate::hashing::HashingPool;
use crate::metrics::{CountingAuditLog, Metrics};
use crate::ops::{self, Ops};
use crate::request_id;
use crate::routes;
use crate::state::{AppState, IpLimiter};

/// Why the application could not start. Messages name the setting at fault and
/// never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration or key files are unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// Redis could not be reached or set up.
    #[error("SAFEBOX_REDIS_URL: {0}")]
    Redis(String),
    /// The password hasher could not be set up.
    #[error("cannot set up password hashing: {0}")]
    Hasher(String),
    /// The TLS certificate or key could not be loaded.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A built safebox: the database migrated, the adapters wired, the listeners
/// bound: the API's, and the metrics server's when `SAFEBOX_METRICS_ADDR` is set.
pub struct Application {
    port: u16,
    server: Server,
    metrics: Option<(u16, Server)>,
    /// Held while serving, on SQLite: see [`claim_database`].
    serve_lock: Option<ServeLock>,
    read_cache: Option<Arc<ReadCache>>,
}

impl Application {
    /// Validates `config`, resolves the keys (generating development keys if none are
    /// configured), opens and migrates the database, wires every adapter into its
    /// use case and binds the listener. Port 0 binds a free port; see [`Self::port`].
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        config.validate()?;
        config.ensure_data_dir()?;
        let keys = config.resolve_keys()?;
        for var in &keys.development {
            tracing::warn!(
                "{var} is not set: using a development key from {}. Set it for production.",
                config.data_dir.display()
            );
        }
        if config.bcrypt_cost < 10 {
            tracing::warn!(
                cost = config.bcrypt_cost,
                "SAFEBOX_BCRYPT_COST is below 10: passwords are cheap to guess. Use only for tests."
            );
        }

        let database_url = config.effective_database_url();
        let (serve_lock, read_cache) = claim_database(&config, &database_url)?;
        let pool = db::connect(&database_url, config.db_pool_size, config.db_timeout)?;
        let applied = db::migrate(&pool)?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "applied database migrations");
        }

        let redis = config
            .redis_url
            .as_ref()
            .map(|url| {
                RedisStore::connect(&RedisSettings {
                    url: url.clone(),
                    pool_size: config.redis_pool_size,
                    timeout: config.redis_timeout,
                    prefix: config.redis_prefix.clone(),
                })
            })
            .transpose()
            .map_err(|err| StartupError::Redis(err.to_string()))?;
        tracing::info!(
            database = pool.backend().as_str(),
            redis = redis.is_some(),
            read_cache_mib = read_cache.as_ref().map_or(0, |_| config.read_cache_mib),
            "storage is ready"
        );
        if redis.is_none() && pool.backend() == Backend::Mysql {
            tracing::warn!(
                "SAFEBOX_REDIS_URL is not set: login lockouts and per-IP rate limits are counted \
                 per instance. Several instances on one database need Redis to share them."
            );
        }
        // With Redis, the state every instance must see at once lives there;
        // without it, sessions are in the database and the counters in memory.
        let (mut sessions, attempts): (Arc<dyn SessionRepository>, Arc<dyn AttemptLimiter>) =
            match &redis {
                Some(store) => (
                    Arc::new(RedisSessionRepository::new(store.clone())),
                    Arc::new(RedisAttemptLimiter::new(store.clone())),
                ),
                None => (
                    Arc::new(DieselSessionRepository::new(pool.clone())),
                    Arc::new(MemoryAttemptLimiter::default()),
                ),
            };
        let mut users: Arc<dyn UserRepository> = Arc::new(DieselUserRepository::new(pool.clone()));
        let mut secrets: Arc<dyn SecretRepository> =
            Arc::new(DieselSecretRepository::new(pool.clone()));
        if let Some(cache) = &read_cache {
            sessions = Arc::new(CachingSessionRepository::new(sessions, cache.clone()));
            users = Arc::new(CachingUserRepository::new(users, cache.clone()));
            secrets = Arc::new(CachingSecretRepository::new(secrets, cache.clone()));
        }

        let metrics = Arc::new(Metrics::default());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let tokens: Arc<dyn TokenIssuer> = Arc::new(JwtTokenIssuer::new(
            &keys.jwt,
            config.access_token_ttl,
            clock.clone(),
        ));
        let audit_log = Arc::new(DieselAuditLog::start(
            pool.clone(),
            config.audit_retention,
            clock.clone(),
        ));
        let ports = Ports {
            users,
            secrets,
            hasher: Arc::new(
                BcryptPasswordHasher::new(config.bcrypt_cost)
                    .map_err(|err| StartupError::Hasher(err.to_string()))?,
            ),
            cipher: Arc::new(AesGcmSecretCipher::new(keys.master_ring()?)),
            tokens,
            sessions,
            opaque_tokens: Arc::new(RandomOpaqueTokens),
            attempts,
            // Counts logins and lockouts for /metrics on the way to the database.
            audit: Arc::new(CountingAuditLog::new(audit_log.clone(), metrics.clone())),
            clock,
        };
        let lockout = LockoutPolicy {
            threshold: config.lockout_threshold,
            window_secs: config.lockout_window.as_secs(),
            duration_secs: config.lockout_duration.as_secs(),
        };

        let sessions = SessionPolicy {
            ttl_secs: config.session_ttl.as_secs(),
        };
        let password_policy = PasswordPolicy::new(
            config.password_min_length,
            Arc::new(EmbeddedBreachList::load()),
        );
        let tls = config.tls.as_ref().map(load_tls).transpose()?;
        let hashing = HashingPool::new(config.hash_workers, config.hash_queue);
        let ops = web::Data::new(Ops {
            db: pool,
            redis: redis.clone(),
            check_timeout: config.db_timeout + Duration::from_secs(1),
            metrics: metrics.clone(),
            hashing: hashing.stats(),
            read_cache: read_cache.clone(),
            audit: audit_log,
        });
        let state_metrics = metrics.clone();
        let metrics = web::Data::from(metrics);
        let state = web::Data::new(AppState {
            register: Register::new(&ports),
            login: Login::new(&ports, lockout, sessions),
            authenticate: Authenticate::new(ports.tokens.clone()),
            set_secret: SetSecret::new(&ports, config.vault_limits()),
            get_secret: GetSecret::new(&ports),
            vault: Vault::new(&ports, config.vault_limits()),
            list_audit: ListAudit::new(&ports),
            who_am_i: WhoAmI::new(&ports),
            manage_account: ManageAccount::new(&ports),
            change_password: ChangePassword::new(&ports, password_policy.clone(), lockout),
            refresh: Refresh::new(&ports),
            logout: Logout::new(&ports),
            list_sessions: ListSessions::new(&ports),
            end_session: EndSession::new(&ports),
            password_policy,
            hashing,
            ip_limiter: (config.ip_rate_per_minute > 0).then(|| match &redis {
                Some(store) => IpLimiter {
                    limiter: Arc::new(RedisRateLimiter::new(
                        store.clone(),
                        config.ip_rate_burst,
                        config.ip_rate_per_minute,
                    )),
                    blocks: true,
                },
                None => IpLimiter {
                    limiter: Arc::new(MemoryRateLimiter::new(
                        config.ip_rate_burst,
                        config.ip_rate_per_minute,
                    )),
                    blocks: false,
                },
            }),
            work_deadline: work_deadline(&config),
            hashing_deadline: work_deadline(&config) + HASHING_ALLOWANCE,
            client_ip: config.client_ip_source,
            tls: tls.is_some(),
            metrics: state_metrics,
        });

        let address = format!("{}:{}", config.host, config.port);
        let (listener, port) = bind(&address)?;
        // With a metrics address, /metrics is served there only (plain HTTP, one
        // worker); the API port answers it with 404.
        let metrics_server = config
            .metrics_addr
            .as_deref()
            .map(|address| {
                let (listener, port) = bind(address)?;
                let ops = ops.clone();
                let server = HttpServer::new(move || {
                    App::new()
                        .wrap(security_headers(false))
                        .app_data(ops.clone())
                        .configure(ops::configure_metrics)
                        .default_service(web::to(handlers::not_found))
                })
                .workers(1)
                .shutdown_timeout(10)
                .listen(listener)
                .map_err(|source| StartupError::Bind {
                    address: address.to_owned(),
                    source,
                })?
                .run();
                tracing::info!(port, "metrics are served on their own port");
                Ok::<_, StartupError>((port, server))
            })
            .transpose()?;
        let metrics_on_api = metrics_server.is_none();

        let hsts = tls.is_some();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(security_headers(hsts))
                .wrap(from_fn(crate::metrics::track))
                // Outermost: the request id and the span, around everything
                // else; the id is set on every response, errors from the layers
                // above included.
                .wrap(from_fn(request_id::assign))
                .app_data(state.clone())
                .app_data(ops.clone())
                .app_data(metrics.clone())
                .app_data(web::QueryConfig::default().error_handler(|err, _| {
                    let message = match &err {
                        actix_web::error::QueryPayloadError::Deserialize(inner) => {
                            inner.to_string()
                        }
                        other => other.to_string(),
                    };
                    ApiError::Validation(describe(".", &message, "query")).into()
                }))
                .configure(routes::configure)
                .configure(crate::docs_ui::configure)
                .configure(ops::configure_probes)
                .configure(|cfg| {
                    if metrics_on_api {
                        ops::configure_metrics(cfg);
                    }
                })
                .default_service(web::to(handlers::not_found))
        })
        .workers(config.workers)
        // Each blocking thread needs a database connection: more threads than
        // connections would only queue on the pool, waking and switching threads
        // for nothing. Blocking calls beyond these wait in the runtime's queue.
        .worker_max_blocking_threads(blocking_threads_per_worker(
            config.db_pool_size,
            config.workers,
        ))
        // Slow or idle clients must not hold connections open forever (slowloris).
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(Duration::from_secs(30))
        .shutdown_timeout(10);
        let server = match tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls),
            None => server.listen(listener),
        }
        .map_err(|source| StartupError::Bind { address, source })?
        .run();

        tracing::info!(port, tls = hsts, "safebox is listening");
        Ok(Self {
            port,
            server,
            metrics: metrics_server,
            serve_lock,
            read_cache,
        })
    }

    /// The port the API listener is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port the metrics server is bound to, when `SAFEBOX_METRICS_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// The read cache, when it is on (for tests).
    pub fn read_cache(&self) -> Option<&Arc<ReadCache>> {
        self.read_cache.as_ref()
    }

    /// A handle that stops the servers
    /// ([`ServerHandle::stop`](actix_web::dev::ServerHandle::stop)); the database is
    /// released once [`Self::run_until_stopped`] has returned.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until the servers are stopped: SIGTERM stops them gracefully
    /// (in-flight requests get up to 10 s), SIGINT and SIGQUIT at once. When one
    /// of the two servers stops, the other is stopped too. The serve lock is
    /// released when this returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        use futures_util::future::{Either, select};

        let _serve_lock = self.serve_lock;
        let Some((_, metrics)) = self.metrics else {
            return self.server.await;
        };
        let api_handle = self.server.handle();
        let metrics_handle = metrics.handle();
        match select(self.server, metrics).await {
            Either::Left((api, metrics)) => {
                metrics_handle.stop(true).await;
                api.and(metrics.await)
            }
            Either::Right((metrics, api)) => {
                api_handle.stop(true).await;
                api.await.and(metrics)
            }
        }
    }
}

/// Binds `address`; returns the listener and the port it got (port 0 picks one).
fn bind(address: &str) -> Result<(TcpListener, u16), StartupError> {
    let bind_error = |source| StartupError::Bind {
        address: address.to_owned(),
        source,
    };
    let listener = TcpListener::bind(address).map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    Ok((listener, port))
}

/// Claims the database for this server ([`ServeLock`]) and makes the read
/// cache, when it is to be used.
///
/// The cache ([`safebox_infra::read_cache`]) is correct only while every write
/// to the sessions, accounts and secrets goes through this process: so it is
/// used on SQLite (one file, one host) without Redis (whose presence means
/// several instances), when `SAFEBOX_READ_CACHE_MIB` is not 0, and then only
/// with an exclusive claim on the database, which no other server can share.
/// Servers without it claim the file shared.
fn claim_database(
    config: &Config,
    database_url: &str,
) -> Result<(Option<ServeLock>, Option<Arc<ReadCache>>), DbError> {
    let cached = config.read_cache_mib > 0 && config.redis_url.is_none();
    let lock = ServeLock::claim(database_url, cached)?;
    let cache = (cached && lock.is_some()).then(|| {
        let bytes = config.read_cache_mib.saturating_mul(1024 * 1024);
        Arc::new(ReadCache::new(usize::try_from(bytes).unwrap_or(usize::MAX)))
    });
    Ok((lock, cache))
}

/// What a login, registration or password change may take beyond the storage
/// deadline: the wait for a hashing thread and the hash itself (about 0.25 s at
/// cost 12; the queue is short, and refused when full).
const HASHING_ALLOWANCE: Duration = Duration::from_secs(5);

/// How long a request's storage work may take (see [`crate::blocking`]): the
/// longer of the database's and Redis's own timeouts, which end most failures
/// first, plus half a second.
fn work_deadline(config: &Config) -> Duration {
    let redis = config
        .redis_url
        .as_ref()
        .map_or(Duration::ZERO, |_| config.redis_timeout);
    config.db_timeout.max(redis) + Duration::from_millis(500)
}

/// The blocking threads each worker may use: the database pool shared out among
/// the workers, at least one each.
fn blocking_threads_per_worker(db_pool_size: u32, workers: usize) -> usize {
    (usize::try_from(db_pool_size).unwrap_or(usize::MAX) / workers.max(1)).max(1)
}

/// Headers on every response. API responses carry tokens, secrets and account data,
/// so none of them may be cached, sniffed, framed or used to load anything. Over
/// TLS, browsers are also told to use HTTPS only, for a year.
fn security_headers(hsts: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Content-Security-Policy", "default-src 'none'"))
        .add(("Cache-Control", "no-store"));
    if hsts {
        headers.add(("Strict-Transport-Security", "max-age=31536000"))
    } else {
        headers
    }
}

/// Loads the certificate chain and key into a rustls server configuration (TLS 1.2
/// and 1.3, ring's safe default cipher suites, no client certificates).
fn load_tls(files: &TlsFiles) -> Result<rustls::ServerConfig, StartupError> {
    let tls_error = |what: &str, path: &std::path::Path, err: &dyn std::fmt::Display| {
        StartupError::Tls(format!("{what} {}: {err}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| tls_error("SAFEBOX_TLS_CERT", &files.cert, &err))?;
    if certs.is_empty() {
        return Err(tls_error(
            "SAFEBOX_TLS_CERT",
            &files.cert,
            &"no certificate found",
        ));
    }
    // The key's own error text never includes key material.
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|err| tls_error("SAFEBOX_TLS_KEY", &files.key, &err))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|err| StartupError::Tls(err.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| StartupError::Tls(format!("the certificate and key do not fit: {err}")))
}

#[cfg(test)]
mod tests {
    use super::blocking_threads_per_worker;

    #[test]
    fn the_database_pool_is_shared_out_among_the_workers() {
        assert_eq!(blocking_threads_per_worker(8, 2), 4);
        assert_eq!(blocking_threads_per_worker(9, 2), 4);
        assert_eq!(blocking_threads_per_worker(1, 4), 1);
        assert_eq!(blocking_threads_per_worker(8, 0), 8);
    }
}
