//! Configuration from `SAFEBOX_*` environment variables, and the key material.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use safebox_domain::{KeyId, VaultLimits};
use zeroize::Zeroizing;

use crate::crypto::cipher::{MasterKey, MasterKeyRing};

/// Keys must carry at least this many bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// A configuration value is missing or wrong. The message names the variable and
/// never contains a key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read, is not TOML, or has an unknown key.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A variable holds a value that cannot be used.
    #[error("{var}: {problem}")]
    Invalid {
        /// The environment variable (or file) at fault.
        var: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn invalid(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        problem: problem.into(),
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Secret key material (at least 32 bytes). Zeroized on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct KeyBytes(Zeroizing<Vec<u8>>);

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyBytes(<redacted>)")
    }
}

impl KeyBytes {
    /// Wraps raw key bytes, refusing fewer than [`MIN_KEY_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "must be base64 of at least {MIN_KEY_BYTES} bytes (got {})",
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }

    /// Decodes base64 (standard or URL-safe alphabet, padding optional).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or_else(|| "is not valid base64".to_owned())?;
        Self::new(decoded)
    }

    /// A fresh random 32-byte key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new(vec![0_u8; MIN_KEY_BYTES]);
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The key encoded as standard base64, for `safebox keygen` and key files.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&*self.0))
    }

    /// The raw bytes, for the adapters that use the key.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// Everything `safebox serve` needs to know. Built from the environment with
/// [`Config::from_env`]; tests build it with [`Config::defaults`] and edit fields.
///
/// `Debug` shows what [`Config::describe`] shows: every key and password redacted.
#[derive(Clone)]
pub struct Config {
    /// Address to bind (`SAFEBOX_HOST`).
    pub host: String,
    /// Port to bind; 0 picks a free one (`SAFEBOX_PORT`).
    pub port: u16,
    /// Directory for the SQLite file and development keys (`SAFEBOX_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Database URL; `None` means the SQLite file in the data dir
    /// (`SAFEBOX_DATABASE_URL`).
    pub database_url: Option<String>,
    /// Master key material, the single-key form; with `master_keys` empty too,
    /// the development key file is used (`SAFEBOX_MASTER_KEY`).
    pub master_key: Option<KeyBytes>,
    /// The master key ring, oldest first; the last entry wraps new data keys
    /// (`SAFEBOX_MASTER_KEYS`). Empty: `master_key` is used.
    pub master_keys: Vec<MasterKeyEntry>,
    /// Versions kept per secret (`SAFEBOX_MAX_VERSIONS`).
    pub max_versions: u64,
    /// The largest secret value in bytes (`SAFEBOX_MAX_SECRET_BYTES`).
    pub max_secret_bytes: usize,
    /// Secrets one user may have (`SAFEBOX_MAX_SECRETS_PER_USER`).
    pub max_secrets_per_user: u64,
    /// JWT signing key; `None` means the development key file (`SAFEBOX_JWT_SECRET`).
    pub jwt_secret: Option<KeyBytes>,
    /// bcrypt cost, 4–31 (`SAFEBOX_BCRYPT_COST`).
    pub bcrypt_cost: u32,
    /// Access token lifetime (`SAFEBOX_ACCESS_TOKEN_TTL`).
    pub access_token_ttl: Duration,
    /// Absolute lifetime of a login session (`SAFEBOX_SESSION_TTL`).
    pub session_ttl: Duration,
    /// Minimum password length in characters (`SAFEBOX_PASSWORD_MIN_LENGTH`).
    pub password_min_length: usize,
    /// Log filter directive (`SAFEBOX_LOG`).
    pub log: String,
    /// How log lines are written (`SAFEBOX_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Serve `/metrics` on this address instead of the API's (`SAFEBOX_METRICS_ADDR`,
    /// `host:port`); `None` serves it with the API.
    pub metrics_addr: Option<String>,
    /// Database connections in the pool (`SAFEBOX_DB_POOL_SIZE`).
    pub db_pool_size: u32,
    /// How long a request waits for a database connection (`SAFEBOX_DB_TIMEOUT`).
    pub db_timeout: Duration,
    /// Memory for the read cache of sessions, accounts' data keys and sealed
    /// secrets, in MiB (`SAFEBOX_READ_CACHE_MIB`); 0 turns it off. Used on SQLite
    /// without Redis only, where this process is the database's only server.
    pub read_cache_mib: u64,
    /// Redis for the state every instance must share: sessions, lockouts and
    /// rate limits (`SAFEBOX_REDIS_URL`); `None` keeps sessions in the database
    /// and the counters in memory.
    pub redis_url: Option<String>,
    /// Redis connections in the pool (`SAFEBOX_REDIS_POOL_SIZE`).
    pub redis_pool_size: u32,
    /// How long a Redis connection, command or checkout may take
    /// (`SAFEBOX_REDIS_TIMEOUT`).
    pub redis_timeout: Duration,
    /// The prefix of every Redis key safebox writes (`SAFEBOX_REDIS_PREFIX`).
    pub redis_prefix: String,
    /// Threads that run bcrypt (`SAFEBOX_HASH_WORKERS`).
    pub hash_workers: usize,
    /// Requests that may wait for a hashing thread (`SAFEBOX_HASH_QUEUE`).
    pub hash_queue: usize,
    /// HTTP worker threads (`SAFEBOX_WORKERS`).
    pub workers: usize,
    /// Failures that lock an account (`SAFEBOX_LOCKOUT_THRESHOLD`).
    pub lockout_threshold: u32,
    /// The window failures are counted in (`SAFEBOX_LOCKOUT_WINDOW`).
    pub lockout_window: Duration,
    /// How long a lock lasts (`SAFEBOX_LOCKOUT_DURATION`).
    pub lockout_duration: Duration,
    /// Requests a client IP may burst on the credential routes
    /// (`SAFEBOX_IP_RATE_BURST`).
    pub ip_rate_burst: u32,
    /// Sustained requests a minute per client IP on the credential routes; 0 turns
    /// the limit off (`SAFEBOX_IP_RATE_PER_MINUTE`).
    pub ip_rate_per_minute: u32,
    /// Where the client IP comes from (`SAFEBOX_CLIENT_IP_SOURCE`,
    /// `SAFEBOX_TRUSTED_PROXY_HOPS`).
    pub client_ip_source: ClientIpSource,
    /// How long audit events are kept (`SAFEBOX_AUDIT_RETENTION_DAYS`).
    pub audit_retention: Duration,
    /// Serve HTTPS with this certificate chain and key (`SAFEBOX_TLS_CERT`,
    /// `SAFEBOX_TLS_KEY`); `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in self.describe() {
            map.entry(&key, &format_args!("{value}"));
        }
        map.finish()
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// PEM files for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (`SAFEBOX_TLS_CERT`).
    pub cert: PathBuf,
    /// The private key: PKCS#8, PKCS#1 or SEC1 (`SAFEBOX_TLS_KEY`).
    pub key: PathBuf,
}

/// Where the client's IP address is read from, for rate limits and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpSource {
    /// The TCP peer address. Right when clients connect directly.
    Peer,
    /// The `X-Forwarded-For` entry added by the outermost of `hops` trusted
    /// proxies (the `hops`-th entry from the right). Right only behind proxies that
    /// append to the header; otherwise clients could choose their own address.
    XForwardedFor {
        /// Trusted proxies in front of safebox (at least 1).
        hops: usize,
    },
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Config {
    /// The defaults, with data kept in `data_dir`.
    pub fn defaults(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 49999,
            data_dir: data_dir.into(),
            database_url: None,
            master_key: None,
            master_keys: Vec::new(),
            max_versions: 10,
            max_secret_bytes: 64 * 1024,
            max_secrets_per_user: 1_000,
            jwt_secret: None,
            bcrypt_cost: 12,
            access_token_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(24 * 60 * 60),
            password_min_length: 12,
            log: "info".to_owned(),
            log_format: LogFormat::Text,
            metrics_addr: None,
            db_pool_size: 8,
            db_timeout: Duration::from_secs(2),
            read_cache_mib: 16,
            redis_url: None,
            redis_pool_size: 8,
            redis_timeout: Duration::from_secs(1),
            redis_prefix: "safebox:".to_owned(),
            hash_workers: cores(),
            hash_queue: 2 * cores(),
            workers: cores(),
            lockout_threshold: 5,
            lockout_window: Duration::from_secs(15 * 60),
            lockout_duration: Duration::from_secs(15 * 60),
            ip_rate_burst: 20,
            ip_rate_per_minute: 30,
            client_ip_source: ClientIpSource::Peer,
            audit_retention: Duration::from_secs(90 * 86_400),
            tls: None,
        }
    }

    /// Reads the `SAFEBOX_*` environment variables over the defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the `SAFEBOX_*` environment variables over the TOML file at `file`
    /// (when given) over the defaults. A file key is a variable's name without
    /// `SAFEBOX_`, in lower case: `port = 8200` is `SAFEBOX_PORT=8200`.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let from_file = match file {
            Some(path) => read_config_file(path)?,
            None => BTreeMap::new(),
        };
        Self::layered(|name| std::env::var(name).ok(), &from_file, file)
    }

    /// [`Config::load`] with the environment read through `env` and the file
    /// already read into `file` (key to value), for tests.
    pub fn layered(
        env: impl Fn(&str) -> Option<String>,
        file: &BTreeMap<String, String>,
        path: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let shown = path.map_or_else(|| "the config file".to_owned(), |p| p.display().to_string());
        // Keys are exactly the lower-case names: `JWT_SECRET` would otherwise pass
        // this check and then never be read.
        if let Some(key) = file.keys().find(|key| {
            !CONFIG_VARS.contains(&var_of(key).as_str()) || **key != key_of(&var_of(key))
        }) {
            return Err(ConfigError::File {
                path: shown,
                problem: format!("unknown key `{key}`"),
            });
        }
        let set = |value: &Option<String>| value.as_ref().is_some_and(|v| !v.trim().is_empty());
        Self::from_lookup(|name| {
            let value = env(name);
            if set(&value) {
                return value;
            }
            file.get(&key_of(name)).cloned()
        })
        .map_err(|err| match err {
            // A bad value from the file is reported by its key and the file.
            ConfigError::Invalid { var, problem }
                if !set(&env(var)) && file.contains_key(&key_of(var)) =>
            {
                ConfigError::Invalid {
                    var,
                    problem: format!("{problem} (set as `{}` in {shown})", key_of(var)),
                }
            }
            other => other,
        })
    }

    /// The effective configuration as `key = value` lines of TOML, with every
    /// key and secret redacted: what `safebox config check` prints.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let quoted = |text: &str| format!("{text:?}");
        // Whole seconds as seconds; anything finer (SAFEBOX_DB_TIMEOUT=500ms) as
        // milliseconds, so that the printed value reads back as the same.
        let secs = |d: Duration| {
            if d.subsec_millis() == 0 {
                format!("\"{}s\"", d.as_secs())
            } else {
                format!("\"{}ms\"", d.as_millis())
            }
        };
        let redacted = |set: bool| {
            if set {
                quoted("<redacted>")
            } else {
                quoted("")
            }
        };
        let ring = self
            .master_keys
            .iter()
            .map(|entry| match &entry.id {
                Some(id) => quoted(&format!("{id}:<redacted>")),
                None => quoted("<redacted>"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        vec![
            ("host", quoted(&self.host)),
            ("port", self.port.to_string()),
            ("data_dir", quoted(&self.data_dir.display().to_string())),
            (
                "database_url",
                quoted(&redacted_database_url(&self.effective_database_url())),
            ),
            ("master_key", redacted(self.master_key.is_some())),
            ("master_keys", format!("[{ring}]")),
            ("jwt_secret", redacted(self.jwt_secret.is_some())),
            ("bcrypt_cost", self.bcrypt_cost.to_string()),
            ("access_token_ttl", secs(self.access_token_ttl)),
            ("session_ttl", secs(self.session_ttl)),
            ("password_min_length", self.password_min_length.to_string()),
            ("log", quoted(&self.log)),
            (
                "log_format",
                quoted(match self.log_format {
                    LogFormat::Text => "text",
                    LogFormat::Json => "json",
                }),
            ),
            (
                "metrics_addr",
                quoted(self.metrics_addr.as_deref().unwrap_or("")),
            ),
            ("db_pool_size", self.db_pool_size.to_string()),
            ("db_timeout", secs(self.db_timeout)),
            ("read_cache_mib", self.read_cache_mib.to_string()),
            (
                "redis_url",
                quoted(&crate::redact_url(self.redis_url.as_deref().unwrap_or(""))),
            ),
            ("redis_pool_size", self.redis_pool_size.to_string()),
            ("redis_timeout", secs(self.redis_timeout)),
            ("redis_prefix", quoted(&self.redis_prefix)),
            ("hash_workers", self.hash_workers.to_string()),
            ("hash_queue", self.hash_queue.to_string()),
            ("workers", self.workers.to_string()),
            ("lockout_threshold", self.lockout_threshold.to_string()),
            ("lockout_window", secs(self.lockout_window)),
            ("lockout_duration", secs(self.lockout_duration)),
            ("ip_rate_burst", self.ip_rate_burst.to_string()),
            ("ip_rate_per_minute", self.ip_rate_per_minute.to_string()),
            (
                "client_ip_source",
                quoted(match self.client_ip_source {
                    ClientIpSource::Peer => "peer",
                    ClientIpSource::XForwardedFor { .. } => "x-forwarded-for",
                }),
            ),
            (
                "trusted_proxy_hops",
                match self.client_ip_source {
                    ClientIpSource::Peer => "1".to_owned(),
                    ClientIpSource::XForwardedFor { hops } => hops.to_string(),
                },
            ),
            (
                "audit_retention_days",
                (self.audit_retention.as_secs() / 86_400).to_string(),
            ),
            (
                "tls_cert",
                quoted(
                    &self
                        .tls
                        .as_ref()
                        .map_or(String::new(), |t| t.cert.display().to_string()),
                ),
            ),
            (
                "tls_key",
                quoted(
                    &self
                        .tls
                        .as_ref()
                        .map_or(String::new(), |t| t.key.display().to_string()),
                ),
            ),
            ("max_versions", self.max_versions.to_string()),
            ("max_secret_bytes", self.max_secret_bytes.to_string()),
            (
                "max_secrets_per_user",
                self.max_secrets_per_user.to_string(),
            ),
        ]
    }

    /// Reads configuration through `lookup` (a variable name to its value), so that
    /// tests need not touch the process environment. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let mut config =
            Self::defaults(get("SAFEBOX_DATA_DIR").unwrap_or_else(|| "./safebox-data".into()));
        if let Some(host) = get("SAFEBOX_HOST") {
            config.host = host;
        }
        if let Some(port) = get("SAFEBOX_PORT") {
            config.port = parse_number("SAFEBOX_PORT", &port)?;
        }
        config.database_url = get("SAFEBOX_DATABASE_URL");
        if let Some(key) = get("SAFEBOX_MASTER_KEY") {
            config.master_key =
                Some(KeyBytes::from_base64(&key).map_err(|p| invalid("SAFEBOX_MASTER_KEY", p))?);
        }
        if let Some(ring) = get("SAFEBOX_MASTER_KEYS") {
            config.master_keys = MasterKeyEntry::parse_ring(&ring)?;
        }
        if let Some(versions) = get("SAFEBOX_MAX_VERSIONS") {
            config.max_versions = parse_number("SAFEBOX_MAX_VERSIONS", &versions)?;
        }
        if let Some(bytes) = get("SAFEBOX_MAX_SECRET_BYTES") {
            config.max_secret_bytes = parse_number("SAFEBOX_MAX_SECRET_BYTES", &bytes)?;
        }
        if let Some(count) = get("SAFEBOX_MAX_SECRETS_PER_USER") {
            config.max_secrets_per_user = parse_number("SAFEBOX_MAX_SECRETS_PER_USER", &count)?;
        }
        if let Some(key) = get("SAFEBOX_JWT_SECRET") {
            config.jwt_secret =
                Some(KeyBytes::from_base64(&key).map_err(|p| invalid("SAFEBOX_JWT_SECRET", p))?);
        }
        if let Some(cost) = get("SAFEBOX_BCRYPT_COST") {
            config.bcrypt_cost = parse_number("SAFEBOX_BCRYPT_COST", &cost)?;
        }
        if let Some(ttl) = get("SAFEBOX_ACCESS_TOKEN_TTL") {
            config.access_token_ttl = parse_duration("SAFEBOX_ACCESS_TOKEN_TTL", &ttl)?;
        }
        if let Some(ttl) = get("SAFEBOX_SESSION_TTL") {
            config.session_ttl = parse_duration("SAFEBOX_SESSION_TTL", &ttl)?;
        }
        if let Some(min) = get("SAFEBOX_PASSWORD_MIN_LENGTH") {
            config.password_min_length = parse_number("SAFEBOX_PASSWORD_MIN_LENGTH", &min)?;
        }
        if let Some(format) = get("SAFEBOX_LOG_FORMAT") {
            config.log_format = match format.trim().to_ascii_lowercase().as_str() {
                "text" | "pretty" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(invalid(
                        "SAFEBOX_LOG_FORMAT",
                        format!("{format:?} is not a log format (use text or json)"),
                    ));
                }
            };
        }
        if let Some(addr) = get("SAFEBOX_METRICS_ADDR") {
            let addr = addr.trim().to_owned();
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(invalid(
                    "SAFEBOX_METRICS_ADDR",
                    format!("{addr:?} is not an address like 127.0.0.1:9100"),
                ));
            }
            config.metrics_addr = Some(addr);
        }
        if let Some(log) = get("SAFEBOX_LOG") {
            config.log = log;
        }
        if let Some(size) = get("SAFEBOX_DB_POOL_SIZE") {
            config.db_pool_size = parse_number("SAFEBOX_DB_POOL_SIZE", &size)?;
        }
        if let Some(timeout) = get("SAFEBOX_DB_TIMEOUT") {
            config.db_timeout = parse_duration("SAFEBOX_DB_TIMEOUT", &timeout)?;
        }
        if let Some(mib) = get("SAFEBOX_READ_CACHE_MIB") {
            config.read_cache_mib = parse_number("SAFEBOX_READ_CACHE_MIB", &mib)?;
        }
        config.redis_url = get("SAFEBOX_REDIS_URL");
        if let Some(size) = get("SAFEBOX_REDIS_POOL_SIZE") {
            config.redis_pool_size = parse_number("SAFEBOX_REDIS_POOL_SIZE", &size)?;
        }
        if let Some(timeout) = get("SAFEBOX_REDIS_TIMEOUT") {
            config.redis_timeout = parse_duration("SAFEBOX_REDIS_TIMEOUT", &timeout)?;
        }
        if let Some(prefix) = get("SAFEBOX_REDIS_PREFIX") {
            config.redis_prefix = prefix;
        }
        if let Some(workers) = get("SAFEBOX_HASH_WORKERS") {
            config.hash_workers = parse_number("SAFEBOX_HASH_WORKERS", &workers)?;
        }
        if let Some(queue) = get("SAFEBOX_HASH_QUEUE") {
            config.hash_queue = parse_number("SAFEBOX_HASH_QUEUE", &queue)?;
        }
        if let Some(workers) = get("SAFEBOX_WORKERS") {
            config.workers = parse_number("SAFEBOX_WORKERS", &workers)?;
        }
        if let Some(threshold) = get("SAFEBOX_LOCKOUT_THRESHOLD") {
            config.lockout_threshold = parse_number("SAFEBOX_LOCKOUT_THRESHOLD", &threshold)?;
        }
        if let Some(window) = get("SAFEBOX_LOCKOUT_WINDOW") {
            config.lockout_window = parse_duration("SAFEBOX_LOCKOUT_WINDOW", &window)?;
        }
        if let Some(duration) = get("SAFEBOX_LOCKOUT_DURATION") {
            config.lockout_duration = parse_duration("SAFEBOX_LOCKOUT_DURATION", &duration)?;
        }
        if let Some(burst) = get("SAFEBOX_IP_RATE_BURST") {
            config.ip_rate_burst = parse_number("SAFEBOX_IP_RATE_BURST", &burst)?;
        }
        if let Some(rate) = get("SAFEBOX_IP_RATE_PER_MINUTE") {
            config.ip_rate_per_minute = parse_number("SAFEBOX_IP_RATE_PER_MINUTE", &rate)?;
        }
        if let Some(days) = get("SAFEBOX_AUDIT_RETENTION_DAYS") {
            let days: u64 = parse_number("SAFEBOX_AUDIT_RETENTION_DAYS", &days)?;
            if days == 0 {
                return Err(invalid(
                    "SAFEBOX_AUDIT_RETENTION_DAYS",
                    "must be at least 1",
                ));
            }
            config.audit_retention = Duration::from_secs(days.saturating_mul(86_400));
        }
        config.tls = match (get("SAFEBOX_TLS_CERT"), get("SAFEBOX_TLS_KEY")) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "SAFEBOX_TLS_KEY",
                    "must be set with SAFEBOX_TLS_CERT",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "SAFEBOX_TLS_CERT",
                    "must be set with SAFEBOX_TLS_KEY",
                ));
            }
        };
        let hops = match get("SAFEBOX_TRUSTED_PROXY_HOPS") {
            Some(hops) => parse_number("SAFEBOX_TRUSTED_PROXY_HOPS", &hops)?,
            None => 1,
        };
        if let Some(source) = get("SAFEBOX_CLIENT_IP_SOURCE") {
            config.client_ip_source = match source.trim().to_ascii_lowercase().as_str() {
                "peer" => ClientIpSource::Peer,
                "x-forwarded-for" => ClientIpSource::XForwardedFor { hops },
                _ => {
                    return Err(invalid(
                        "SAFEBOX_CLIENT_IP_SOURCE",
                        format!("{source:?} is neither \"peer\" nor \"x-forwarded-for\""),
                    ));
                }
            };
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the ranges that parsing alone does not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(invalid("SAFEBOX_BCRYPT_COST", "must be between 4 and 31"));
        }
        if !(1..=72).contains(&self.password_min_length) {
            return Err(invalid(
                "SAFEBOX_PASSWORD_MIN_LENGTH",
                "must be between 1 and 72",
            ));
        }
        if self.access_token_ttl.is_zero() {
            return Err(invalid("SAFEBOX_ACCESS_TOKEN_TTL", "must be positive"));
        }
        if self.session_ttl.is_zero() {
            return Err(invalid("SAFEBOX_SESSION_TTL", "must be positive"));
        }
        if self.db_pool_size == 0 {
            return Err(invalid("SAFEBOX_DB_POOL_SIZE", "must be at least 1"));
        }
        if self.db_timeout.is_zero() {
            return Err(invalid("SAFEBOX_DB_TIMEOUT", "must be positive"));
        }
        if self.read_cache_mib > MAX_READ_CACHE_MIB {
            return Err(invalid(
                "SAFEBOX_READ_CACHE_MIB",
                format!("must be at most {MAX_READ_CACHE_MIB}"),
            ));
        }
        if let Some(url) = &self.database_url {
            crate::db::DatabaseUrl::parse(url).map_err(|err| match err {
                crate::db::DbError::UnsupportedUrl(problem) => {
                    invalid("SAFEBOX_DATABASE_URL", problem)
                }
                other => invalid("SAFEBOX_DATABASE_URL", other.to_string()),
            })?;
        }
        if let Some(url) = &self.redis_url
            && !["redis://", "unix://", "redis+unix://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        {
            return Err(invalid(
                "SAFEBOX_REDIS_URL",
                "must be redis://[USER:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH (rediss:// is not supported: put Redis on a private network or a TLS tunnel)",
            ));
        }
        if self.redis_pool_size == 0 {
            return Err(invalid("SAFEBOX_REDIS_POOL_SIZE", "must be at least 1"));
        }
        if self.redis_timeout.is_zero() {
            return Err(invalid("SAFEBOX_REDIS_TIMEOUT", "must be positive"));
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.len() > 64 {
            return Err(invalid("SAFEBOX_REDIS_PREFIX", "must be 1 to 64 bytes"));
        }
        if self.hash_workers == 0 {
            return Err(invalid("SAFEBOX_HASH_WORKERS", "must be at least 1"));
        }
        if self.workers == 0 {
            return Err(invalid("SAFEBOX_WORKERS", "must be at least 1"));
        }
        if self.lockout_threshold == 0 {
            return Err(invalid("SAFEBOX_LOCKOUT_THRESHOLD", "must be at least 1"));
        }
        if self.lockout_window.is_zero() {
            return Err(invalid("SAFEBOX_LOCKOUT_WINDOW", "must be positive"));
        }
        if self.lockout_duration.is_zero() {
            return Err(invalid("SAFEBOX_LOCKOUT_DURATION", "must be positive"));
        }
        if self.ip_rate_burst == 0 {
            return Err(invalid("SAFEBOX_IP_RATE_BURST", "must be at least 1"));
        }
        if self.master_key.is_some() && !self.master_keys.is_empty() {
            return Err(invalid(
                "SAFEBOX_MASTER_KEYS",
                "set either SAFEBOX_MASTER_KEY or SAFEBOX_MASTER_KEYS, not both",
            ));
        }
        if !(1..=MAX_VERSIONS_LIMIT).contains(&self.max_versions) {
            return Err(invalid(
                "SAFEBOX_MAX_VERSIONS",
                format!("must be 1 to {MAX_VERSIONS_LIMIT}"),
            ));
        }
        if !(1..=MAX_SECRET_BYTES_LIMIT).contains(&self.max_secret_bytes) {
            return Err(invalid(
                "SAFEBOX_MAX_SECRET_BYTES",
                format!("must be 1 to {MAX_SECRET_BYTES_LIMIT}"),
            ));
        }
        if self.max_secrets_per_user == 0 {
            return Err(invalid(
                "SAFEBOX_MAX_SECRETS_PER_USER",
                "must be at least 1",
            ));
        }
        if self.client_ip_source == (ClientIpSource::XForwardedFor { hops: 0 }) {
            return Err(invalid("SAFEBOX_TRUSTED_PROXY_HOPS", "must be at least 1"));
        }
        Ok(())
    }

    /// The database URL in force: the configured one, or the SQLite file in the
    /// data dir.
    pub fn effective_database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("safebox.db").display()))
    }

    /// Creates the data dir (mode 0700 on Unix) if it does not exist.
    pub fn ensure_data_dir(&self) -> Result<(), ConfigError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&self.data_dir)
            .map_err(io_error(&self.data_dir))
    }

    /// The limits of every user's vault.
    pub fn vault_limits(&self) -> VaultLimits {
        VaultLimits {
            max_versions: self.max_versions,
            max_value_bytes: self.max_secret_bytes,
            max_secrets: self.max_secrets_per_user,
        }
    }

    /// The master key ring for the key commands: the configured ring or key, or
    /// the development key file when it exists. Unlike [`Config::resolve_keys`] it
    /// never creates a key file.
    pub fn existing_master_ring(&self) -> Result<MasterKeyRing, ConfigError> {
        let master = match self.configured_master() {
            Some(master) => master,
            None => {
                let path = self.data_dir.join("master.key");
                if !path.is_file() {
                    return Err(invalid(
                        "SAFEBOX_MASTER_KEYS",
                        format!(
                            "is not set, and there is no development key file {}",
                            path.display()
                        ),
                    ));
                }
                vec![MasterKeyEntry::unnamed(self.dev_key(
                    "master.key",
                    "SAFEBOX_MASTER_KEY",
                    &mut Vec::new(),
                )?)]
            }
        };
        master_ring(&master)
    }

    /// The configured master keys: the ring, or the single key as a ring of one;
    /// `None` when neither is set (the development key file is used).
    fn configured_master(&self) -> Option<Vec<MasterKeyEntry>> {
        match (&self.master_key, self.master_keys.is_empty()) {
            (_, false) => Some(self.master_keys.clone()),
            (Some(key), true) => Some(vec![MasterKeyEntry::unnamed(key.clone())]),
            (None, true) => None,
        }
    }

    /// The master and JWT keys: the configured ones, or development keys read from
    /// (or generated once into) `master.key` and `jwt.key` in the data dir.
    pub fn resolve_keys(&self) -> Result<Keys, ConfigError> {
        let mut generated = Vec::new();
        let master = match self.configured_master() {
            Some(master) => master,
            None => vec![MasterKeyEntry::unnamed(self.dev_key(
                "master.key",
                "SAFEBOX_MASTER_KEY",
                &mut generated,
            )?)],
        };
        let jwt = match &self.jwt_secret {
            Some(key) => key.clone(),
            None => self.dev_key("jwt.key", "SAFEBOX_JWT_SECRET", &mut generated)?,
        };
        Ok(Keys {
            master,
            jwt,
            development: generated,
        })
    }

    fn dev_key(
        &self,
        file: &str,
        var: &'static str,
        used: &mut Vec<&'static str>,
    ) -> Result<KeyBytes, ConfigError> {
        self.ensure_data_dir()?;
        let path = self.data_dir.join(file);
        used.push(var);
        match fs::read_to_string(&path) {
            Ok(text) => {
                warn_if_readable_by_others(&path);
                KeyBytes::from_base64(&text).map_err(|problem| {
                    invalid(
                        var,
                        format!("development key file {}: {problem}", path.display()),
                    )
                })
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyBytes::generate()
                    .map_err(|err| invalid(var, format!("cannot generate a key: {err}")))?;
                write_private(&path, key.to_base64().as_bytes())?;
                Ok(key)
            }
            Err(err) => Err(io_error(&path)(err)),
        }
    }
}

/// Key files must be private; a group- or world-readable one is worth a warning.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "key file is readable by other users; chmod 600 it"
                );
            }
        }
    }
}

/// Writes a new file readable only by its owner; fails if it already exists.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io_error(path))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io_error(path))
}

/// Every variable safebox reads; a config file key is one of these without
/// `SAFEBOX_`, in lower case.
pub const CONFIG_VARS: &[&str] = &[
    "SAFEBOX_HOST",
    "SAFEBOX_PORT",
    "SAFEBOX_DATA_DIR",
    "SAFEBOX_DATABASE_URL",
    "SAFEBOX_MASTER_KEY",
    "SAFEBOX_MASTER_KEYS",
    "SAFEBOX_JWT_SECRET",
    "SAFEBOX_BCRYPT_COST",
    "SAFEBOX_ACCESS_TOKEN_TTL",
    "SAFEBOX_SESSION_TTL",
    "SAFEBOX_PASSWORD_MIN_LENGTH",
    "SAFEBOX_LOG",
    "SAFEBOX_LOG_FORMAT",
    "SAFEBOX_METRICS_ADDR",
    "SAFEBOX_DB_POOL_SIZE",
    "SAFEBOX_DB_TIMEOUT",
    "SAFEBOX_READ_CACHE_MIB",
    "SAFEBOX_REDIS_URL",
    "SAFEBOX_REDIS_POOL_SIZE",
    "SAFEBOX_REDIS_TIMEOUT",
    "SAFEBOX_REDIS_PREFIX",
    "SAFEBOX_HASH_WORKERS",
    "SAFEBOX_HASH_QUEUE",
    "SAFEBOX_WORKERS",
    "SAFEBOX_LOCKOUT_THRESHOLD",
    "SAFEBOX_LOCKOUT_WINDOW",
    "SAFEBOX_LOCKOUT_DURATION",
    "SAFEBOX_IP_RATE_BURST",
    "SAFEBOX_IP_RATE_PER_MINUTE",
    "SAFEBOX_CLIENT_IP_SOURCE",
    "SAFEBOX_TRUSTED_PROXY_HOPS",
    "SAFEBOX_AUDIT_RETENTION_DAYS",
    "SAFEBOX_TLS_CERT",
    "SAFEBOX_TLS_KEY",
    "SAFEBOX_MAX_VERSIONS",
    "SAFEBOX_MAX_SECRET_BYTES",
    "SAFEBOX_MAX_SECRETS_PER_USER",
];

/// The config file key of the variable `var`: `SAFEBOX_PORT` is `port`.
fn key_of(var: &str) -> String {
    var.strip_prefix("SAFEBOX_")
        .unwrap_or(var)
        .to_ascii_lowercase()
}

/// The variable of the config file key `key`: `port` is `SAFEBOX_PORT`.
fn var_of(key: &str) -> String {
    format!("SAFEBOX_{}", key.to_ascii_uppercase())
}

/// `url` as `config check` shows it: as the database layer prints it when it
/// parses, else with any password replaced.
fn redacted_database_url(url: &str) -> String {
    crate::db::DatabaseUrl::parse(url).map_or_else(|_| crate::redact_url(url), |url| url.redacted())
}

/// Reads a TOML config file into key-value text, as the environment would hold
/// it: numbers and booleans as written, strings as they are, and an array of
/// strings joined with commas (`master_keys = ["a:…", "b:…"]`).
fn read_config_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    use figment::Figment;
    use figment::providers::{Format as _, Toml};
    use figment::value::Value;

    let shown = path.display().to_string();
    let file_error = |problem: String| ConfigError::File {
        path: shown.clone(),
        problem,
    };
    if !path.is_file() {
        return Err(file_error("no such file".to_owned()));
    }
    warn_if_readable_by_others(path);
    let table: BTreeMap<String, Value> = Figment::from(Toml::file_exact(path))
        .extract()
        .map_err(|err| file_error(without_source_lines(&err.to_string())))?;
    let scalar = |key: &str, value: &Value| -> Result<String, ConfigError> {
        match value {
            Value::String(_, text) => Ok(text.clone()),
            Value::Num(_, number) => number
                .to_u128()
                .map(|n| n.to_string())
                .or_else(|| number.to_i128().map(|n| n.to_string()))
                .ok_or_else(|| file_error(format!("`{key}` must be a whole number"))),
            Value::Bool(_, flag) => Ok(flag.to_string()),
            _ => Err(file_error(format!(
                "`{key}` must be a string, a number or a boolean"
            ))),
        }
    };
    table
        .iter()
        .map(|(key, value)| {
            let text = match value {
                Value::Array(_, items) => items
                    .iter()
                    .map(|item| scalar(key, item))
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
                other => scalar(key, other)?,
            };
            Ok((key.clone(), text))
        })
        .collect()
}

/// A TOML parse error without the lines of the file it quotes (`3 | key = …`),
/// which may hold a key: only where the error is and what is wrong remain.
fn without_source_lines(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| {
            let quoted = line.starts_with('|')
                || line
                    .split_once(" |")
                    .is_some_and(|(number, _)| number.chars().all(|c| c.is_ascii_digit()));
            !line.is_empty() && !quoted
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The most versions `SAFEBOX_MAX_VERSIONS` may keep.
const MAX_VERSIONS_LIMIT: u64 = 1_000;
/// The largest `SAFEBOX_READ_CACHE_MIB`: 64 GiB.
const MAX_READ_CACHE_MIB: u64 = 64 * 1024;

/// The largest `SAFEBOX_MAX_SECRET_BYTES`: 1 MiB.
const MAX_SECRET_BYTES_LIMIT: usize = 1024 * 1024;

/// One master key of the ring: its material, and the id the operator gave it
/// (`None`: the fingerprint derived from the material).
#[derive(Debug, Clone)]
pub struct MasterKeyEntry {
    /// The operator's id, 1–64 characters of `[A-Za-z0-9._-]`.
    pub id: Option<String>,
    /// The key material.
    pub material: KeyBytes,
}

impl MasterKeyEntry {
    /// A key known by its fingerprint.
    pub fn unnamed(material: KeyBytes) -> Self {
        Self { id: None, material }
    }

    /// Whether `id` is a valid key id: 1–64 characters of `[A-Za-z0-9._-]`.
    pub fn is_valid_id(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }

    /// Parses `SAFEBOX_MASTER_KEYS`: comma-separated `id:base64` or bare `base64`
    /// entries, oldest first.
    pub fn parse_ring(text: &str) -> Result<Vec<Self>, ConfigError> {
        const VAR: &str = "SAFEBOX_MASTER_KEYS";
        let mut ring: Vec<Self> = Vec::new();
        for (at, entry) in text.split(',').map(str::trim).enumerate() {
            let position = at + 1;
            if entry.is_empty() {
                return Err(invalid(VAR, format!("entry {position} is empty")));
            }
            let (id, key) = match entry.split_once(':') {
                Some((id, key)) => (Some(id.trim()), key),
                None => (None, entry),
            };
            if let Some(id) = id
                && !Self::is_valid_id(id)
            {
                return Err(invalid(
                    VAR,
                    format!(
                        "entry {position}: a key id must be 1 to 64 characters of letters, digits, '.', '_' and '-'"
                    ),
                ));
            }
            if let Some(id) = id
                && ring.iter().any(|earlier| earlier.id.as_deref() == Some(id))
            {
                return Err(invalid(VAR, format!("the key id {id:?} is used twice")));
            }
            let material = KeyBytes::from_base64(key)
                .map_err(|problem| invalid(VAR, format!("entry {position}: {problem}")))?;
            ring.push(Self {
                id: id.map(str::to_owned),
                material,
            });
        }
        Ok(ring)
    }
}

/// The resolved key material.
#[derive(Debug, Clone)]
pub struct Keys {
    /// The master key ring, oldest first (wraps data keys).
    pub master: Vec<MasterKeyEntry>,
    /// JWT signing key.
    pub jwt: KeyBytes,
    /// The variables that fell back to development key files.
    pub development: Vec<&'static str>,
}

impl Keys {
    /// The master key ring, ready for the cipher.
    pub fn master_ring(&self) -> Result<MasterKeyRing, ConfigError> {
        master_ring(&self.master)
    }
}

/// The ring of `entries`, oldest first: operator ids where given, fingerprints
/// otherwise.
fn master_ring(entries: &[MasterKeyEntry]) -> Result<MasterKeyRing, ConfigError> {
    let keys = entries
        .iter()
        .map(|entry| match &entry.id {
            Some(id) => MasterKey::with_id(KeyId(id.clone()), &entry.material),
            None => MasterKey::derive(&entry.material),
        })
        .collect();
    MasterKeyRing::new(keys).map_err(|err| invalid("SAFEBOX_MASTER_KEYS", err.to_string()))
}

fn parse_number<T: std::str::FromStr>(var: &'static str, text: &str) -> Result<T, ConfigError> {
    text.trim()
        .parse()
        .map_err(|_| invalid(var, format!("{text:?} is not a valid number")))
}

/// Parses `900`, `900s`, `15m`, `1h` or `1d`.
pub fn parse_duration(var: &'static str, text: &str) -> Result<Duration, ConfigError> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = digits.parse().map_err(|_| {
        invalid(
            var,
            format!("{text:?} is not a duration like 900, 500ms, 90s, 15m, 1h or 1d"),
        )
    })?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(invalid(
                var,
                format!("{text:?} has an unknown unit (use ms, s, m, h or d)"),
            ));
        }
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| invalid(var, "is too large"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_documentation() {
        let config = from(&[]).unwrap();
        assert_eq!(config.host, "127.0.0.1");
        assert_eq!(config.port, 49999);
        assert_eq!(config.data_dir, PathBuf::from("./safebox-data"));
        assert_eq!(
            config.effective_database_url(),
            "sqlite://./safebox-data/safebox.db"
        );
        assert_eq!(config.bcrypt_cost, 12);
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert_eq!(config.password_min_length, 12);
        assert_eq!(config.log, "info");
        assert!(config.master_key.is_none() && config.jwt_secret.is_none());
        assert_eq!(config.lockout_threshold, 5);
        assert_eq!(config.lockout_window, Duration::from_secs(900));
        assert_eq!(config.lockout_duration, Duration::from_secs(900));
        assert_eq!(config.client_ip_source, ClientIpSource::Peer);
        assert_eq!(config.audit_retention, Duration::from_secs(90 * 86_400));
    }

    #[test]
    fn reads_every_variable() {
        let key = STANDARD.encode([9_u8; 40]);
        let config = from(&[
            ("SAFEBOX_HOST", "0.0.0.0"),
            ("SAFEBOX_PORT", "8080"),
            ("SAFEBOX_DATA_DIR", "/var/lib/safebox"),
            ("SAFEBOX_DATABASE_URL", "sqlite:///tmp/x.db"),
            ("SAFEBOX_MASTER_KEY", &key),
            ("SAFEBOX_JWT_SECRET", &key),
            ("SAFEBOX_BCRYPT_COST", "4"),
            ("SAFEBOX_ACCESS_TOKEN_TTL", "1h"),
            ("SAFEBOX_SESSION_TTL", "2d"),
            ("SAFEBOX_PASSWORD_MIN_LENGTH", "16"),
            ("SAFEBOX_LOG", "debug"),
            ("SAFEBOX_DB_POOL_SIZE", "3"),
            ("SAFEBOX_DB_TIMEOUT", "500"),
            ("SAFEBOX_READ_CACHE_MIB", "0"),
            ("SAFEBOX_HASH_WORKERS", "5"),
            ("SAFEBOX_HASH_QUEUE", "0"),
            ("SAFEBOX_WORKERS", "7"),
            ("SAFEBOX_LOCKOUT_THRESHOLD", "3"),
            ("SAFEBOX_LOCKOUT_WINDOW", "1m"),
            ("SAFEBOX_LOCKOUT_DURATION", "2h"),
            ("SAFEBOX_IP_RATE_BURST", "4"),
            ("SAFEBOX_IP_RATE_PER_MINUTE", "0"),
            ("SAFEBOX_CLIENT_IP_SOURCE", "X-Forwarded-For"),
            ("SAFEBOX_TRUSTED_PROXY_HOPS", "2"),
            ("SAFEBOX_AUDIT_RETENTION_DAYS", "30"),
            ("SAFEBOX_TLS_CERT", "/etc/safebox/cert.pem"),
            ("SAFEBOX_TLS_KEY", "/etc/safebox/key.pem"),
            ("SAFEBOX_REDIS_URL", "redis://:pw@10.0.0.5:6380/2"),
            ("SAFEBOX_REDIS_POOL_SIZE", "16"),
            ("SAFEBOX_REDIS_TIMEOUT", "250ms"),
            ("SAFEBOX_REDIS_PREFIX", "team-a:"),
        ])
        .unwrap();
        assert_eq!(
            config.redis_url.as_deref(),
            Some("redis://:pw@10.0.0.5:6380/2")
        );
        assert_eq!(config.redis_pool_size, 16);
        assert_eq!(config.redis_timeout, Duration::from_millis(250));
        assert_eq!(config.redis_prefix, "team-a:");
        assert_eq!(config.host, "0.0.0.0");
        assert_eq!(config.port, 8080);
        assert_eq!(config.effective_database_url(), "sqlite:///tmp/x.db");
        assert_eq!(config.master_key.unwrap().expose(), &[9_u8; 40]);
        assert_eq!(config.bcrypt_cost, 4);
        assert_eq!(config.access_token_ttl, Duration::from_secs(3600));
        assert_eq!(config.session_ttl, Duration::from_secs(2 * 86_400));
        assert_eq!(config.password_min_length, 16);
        assert_eq!(config.log, "debug");
        assert_eq!(config.db_pool_size, 3);
        assert_eq!(config.db_timeout, Duration::from_secs(500));
        assert_eq!(config.read_cache_mib, 0);
        assert_eq!(
            (config.hash_workers, config.hash_queue, config.workers),
            (5, 0, 7)
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_never_echo_a_key() {
        let short = STANDARD.encode([1_u8; 31]);
        let err = from(&[("SAFEBOX_MASTER_KEY", &short)])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("SAFEBOX_MASTER_KEY: must be base64 of at least 32 bytes"),
            "{err}"
        );
        assert!(!err.contains(&short));
        let err = from(&[("SAFEBOX_JWT_SECRET", "not base64!!")])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "SAFEBOX_JWT_SECRET: is not valid base64");
        for (var, value) in [
            ("SAFEBOX_PORT", "70000"),
            ("SAFEBOX_BCRYPT_COST", "3"),
            ("SAFEBOX_BCRYPT_COST", "32"),
            ("SAFEBOX_ACCESS_TOKEN_TTL", "15 minutes"),
            ("SAFEBOX_ACCESS_TOKEN_TTL", "0"),
            ("SAFEBOX_SESSION_TTL", "0"),
            ("SAFEBOX_PASSWORD_MIN_LENGTH", "73"),
            ("SAFEBOX_DB_POOL_SIZE", "0"),
            ("SAFEBOX_READ_CACHE_MIB", "65537"),
            ("SAFEBOX_READ_CACHE_MIB", "-1"),
            ("SAFEBOX_WORKERS", "-1"),
            ("SAFEBOX_LOCKOUT_THRESHOLD", "0"),
            ("SAFEBOX_LOCKOUT_WINDOW", "0s"),
            ("SAFEBOX_IP_RATE_BURST", "0"),
            ("SAFEBOX_CLIENT_IP_SOURCE", "header"),
            ("SAFEBOX_AUDIT_RETENTION_DAYS", "0"),
            ("SAFEBOX_DATABASE_URL", "postgres://db/safebox"),
            ("SAFEBOX_DATABASE_URL", "sqlite://:memory:"),
            ("SAFEBOX_REDIS_URL", "rediss://cache:6379"),
            ("SAFEBOX_REDIS_URL", "http://cache"),
            ("SAFEBOX_REDIS_POOL_SIZE", "0"),
            ("SAFEBOX_REDIS_TIMEOUT", "0ms"),
            ("SAFEBOX_DB_TIMEOUT", "5 ms"),
        ] {
            let err = from(&[(var, value)]).unwrap_err().to_string();
            assert!(err.starts_with(var), "{var}={value} gave {err}");
        }
    }

    #[test]
    fn tls_needs_both_files() {
        let err = from(&[("SAFEBOX_TLS_CERT", "/cert.pem")])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "SAFEBOX_TLS_KEY: must be set with SAFEBOX_TLS_CERT");
        let err = from(&[("SAFEBOX_TLS_KEY", "/key.pem")])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "SAFEBOX_TLS_CERT: must be set with SAFEBOX_TLS_KEY");
    }

    #[test]
    fn development_keys_are_generated_once_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::defaults(dir.path().join("data"));
        let first = config.resolve_keys().unwrap();
        assert_eq!(
            first.development,
            ["SAFEBOX_MASTER_KEY", "SAFEBOX_JWT_SECRET"]
        );
        let master = |keys: &Keys| {
            assert_eq!(keys.master.len(), 1);
            assert!(keys.master[0].id.is_none());
            keys.master[0].material.expose().to_vec()
        };
        assert_ne!(master(&first), first.jwt.expose());
        let second = config.resolve_keys().unwrap();
        assert_eq!(master(&first), master(&second));
        assert_eq!(first.jwt.expose(), second.jwt.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for file in ["master.key", "jwt.key"] {
                let mode = fs::metadata(config.data_dir.join(file))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{file}");
            }
            let mode = fs::metadata(&config.data_dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let mut explicit = config.clone();
        explicit.master_key = Some(KeyBytes::new(vec![3; 32]).unwrap());
        explicit.jwt_secret = Some(KeyBytes::new(vec![4; 32]).unwrap());
        assert!(explicit.resolve_keys().unwrap().development.is_empty());
    }

    #[test]
    fn a_corrupt_key_file_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("master.key"), "c2hvcnQ=").unwrap();
        let err = Config::defaults(dir.path())
            .resolve_keys()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("SAFEBOX_MASTER_KEY: development key file"),
            "{err}"
        );
    }

    #[test]
    fn key_debug_is_redacted() {
        let key = KeyBytes::new(vec![0xAB; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "KeyBytes(<redacted>)");
        let mut config = Config::defaults("x");
        config.master_key = Some(key);
        assert!(!format!("{config:?}").contains("171"));
    }

    #[test]
    fn the_master_key_ring_is_parsed_and_checked() {
        let a = KeyBytes::new(vec![1; 32]).unwrap().to_base64();
        let b = KeyBytes::new(vec![2; 32]).unwrap().to_base64();
        // With a JWT secret set, resolving the keys never writes a development key.
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().display().to_string();
        let from = |vars: &[(&str, &str)]| {
            let mut all = vars.to_vec();
            all.extend([
                ("SAFEBOX_JWT_SECRET", b.as_str()),
                ("SAFEBOX_DATA_DIR", &dir),
            ]);
            from(&all)
        };
        let ring = format!("2026-q3:{}, 2026-q4:{}", a.as_str(), b.as_str());
        let config = from(&[("SAFEBOX_MASTER_KEYS", &ring)]).unwrap();
        let ids: Vec<_> = config.master_keys.iter().map(|k| k.id.clone()).collect();
        assert_eq!(ids, [Some("2026-q3".into()), Some("2026-q4".into())]);
        let keys = config.resolve_keys().unwrap();
        assert!(keys.development.is_empty());
        assert_eq!(keys.master_ring().unwrap().sealing().id().0, "2026-q4");

        // A bare entry is known by the fingerprint SAFEBOX_MASTER_KEY gives it.
        let bare = from(&[("SAFEBOX_MASTER_KEYS", a.as_str())]).unwrap();
        let single = from(&[("SAFEBOX_MASTER_KEY", a.as_str())]).unwrap();
        assert_eq!(
            bare.resolve_keys()
                .unwrap()
                .master_ring()
                .unwrap()
                .sealing()
                .id(),
            single
                .resolve_keys()
                .unwrap()
                .master_ring()
                .unwrap()
                .sealing()
                .id()
        );

        let err = |value: &str| {
            from(&[("SAFEBOX_MASTER_KEYS", value)])
                .unwrap_err()
                .to_string()
        };
        assert!(err(&format!("bad id:{}", a.as_str())).contains("entry 1: a key id"));
        assert!(err(&format!("k:{},k:{}", a.as_str(), b.as_str())).contains("\"k\" is used twice"));
        assert!(err(&format!("{},", a.as_str())).contains("entry 2 is empty"));
        assert!(err("k:c2hvcnQ=").contains("entry 1: must be base64 of at least 32 bytes"));
        // Never the key in a message.
        assert!(!err(&format!("bad id:{}", a.as_str())).contains(a.as_str()));
        let both = from(&[
            ("SAFEBOX_MASTER_KEY", a.as_str()),
            ("SAFEBOX_MASTER_KEYS", b.as_str()),
        ])
        .unwrap_err()
        .to_string();
        assert!(both.contains("not both"), "{both}");
        // The same material twice, unnamed, has one fingerprint twice.
        let twice = from(&[(
            "SAFEBOX_MASTER_KEYS",
            &format!("{},{}", a.as_str(), a.as_str()),
        )])
        .unwrap();
        assert!(twice.resolve_keys().unwrap().master_ring().is_err());
    }

    #[test]
    fn the_vault_limits_are_read_and_bounded() {
        let config = from(&[]).unwrap();
        assert_eq!(config.vault_limits(), VaultLimits::default());
        let config = from(&[
            ("SAFEBOX_MAX_VERSIONS", "3"),
            ("SAFEBOX_MAX_SECRET_BYTES", "100"),
            ("SAFEBOX_MAX_SECRETS_PER_USER", "2"),
        ])
        .unwrap();
        assert_eq!(
            config.vault_limits(),
            VaultLimits {
                max_versions: 3,
                max_value_bytes: 100,
                max_secrets: 2
            }
        );
        for (var, value) in [
            ("SAFEBOX_MAX_VERSIONS", "0"),
            ("SAFEBOX_MAX_VERSIONS", "1001"),
            ("SAFEBOX_MAX_SECRET_BYTES", "0"),
            ("SAFEBOX_MAX_SECRET_BYTES", "1048577"),
            ("SAFEBOX_MAX_SECRETS_PER_USER", "0"),
            ("SAFEBOX_MAX_SECRETS_PER_USER", "many"),
        ] {
            let err = from(&[(var, value)]).unwrap_err().to_string();
            assert!(err.starts_with(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn log_format_and_metrics_address_are_checked() {
        assert_eq!(from(&[]).unwrap().log_format, LogFormat::Text);
        assert_eq!(
            from(&[("SAFEBOX_LOG_FORMAT", "JSON")]).unwrap().log_format,
            LogFormat::Json
        );
        assert!(
            from(&[("SAFEBOX_LOG_FORMAT", "xml")])
                .unwrap_err()
                .to_string()
                .starts_with("SAFEBOX_LOG_FORMAT:")
        );
        assert_eq!(
            from(&[("SAFEBOX_METRICS_ADDR", "127.0.0.1:9100")])
                .unwrap()
                .metrics_addr
                .as_deref(),
            Some("127.0.0.1:9100")
        );
        assert!(
            from(&[("SAFEBOX_METRICS_ADDR", "localhost")])
                .unwrap_err()
                .to_string()
                .starts_with("SAFEBOX_METRICS_ADDR:")
        );
    }

    #[test]
    fn every_variable_read_is_a_known_config_key() {
        let source = include_str!("config.rs");
        let read: std::collections::BTreeSet<&str> = source
            .match_indices("get(\"SAFEBOX_")
            .map(|(at, _)| {
                let name = &source[at + 5..];
                &name[..name.find('"').unwrap()]
            })
            .collect();
        let known: std::collections::BTreeSet<&str> = CONFIG_VARS.iter().copied().collect();
        assert_eq!(read, known);
    }

    fn file(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_environment_wins_over_the_file_which_wins_over_the_defaults() {
        let env = |name: &str| (name == "SAFEBOX_PORT").then(|| "8300".to_owned());
        let config = Config::layered(
            env,
            &file(&[("port", "8200"), ("bcrypt_cost", "11")]),
            Some(Path::new("/etc/safebox.toml")),
        )
        .unwrap();
        assert_eq!(config.port, 8300);
        assert_eq!(config.bcrypt_cost, 11);
        assert_eq!(config.workers, Config::defaults("x").workers);
        // An empty environment value counts as unset: the file's value stands.
        let config = Config::layered(
            |name| (name == "SAFEBOX_BCRYPT_COST").then(String::new),
            &file(&[("bcrypt_cost", "11")]),
            None,
        )
        .unwrap();
        assert_eq!(config.bcrypt_cost, 11);
    }

    #[test]
    fn a_bad_file_value_names_its_key_and_file_and_unknown_keys_are_refused() {
        let err = Config::layered(
            |_| None,
            &file(&[("bcrypt_cost", "99")]),
            Some(Path::new("/etc/safebox.toml")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("SAFEBOX_BCRYPT_COST:"), "{err}");
        assert!(
            err.ends_with("(set as `bcrypt_cost` in /etc/safebox.toml)"),
            "{err}"
        );
        let err = Config::layered(|_| None, &file(&[("prot", "1")]), Some(Path::new("s.toml")))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "s.toml: unknown key `prot`");
    }

    #[test]
    fn config_files_are_toml_with_arrays_for_the_key_ring() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("safebox.toml");
        let a = KeyBytes::new(vec![1; 32]).unwrap().to_base64();
        fs::write(
            &path,
            format!(
                "port = 8200\nlog_format = \"json\"\nmaster_keys = [\"k1:{}\"]\n",
                a.as_str()
            ),
        )
        .unwrap();
        let read = read_config_file(&path).unwrap();
        assert_eq!(read["port"], "8200");
        assert_eq!(read["master_keys"], format!("k1:{}", a.as_str()));
        let config = Config::layered(|_| None, &read, Some(&path)).unwrap();
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.master_keys[0].id.as_deref(), Some("k1"));

        fs::write(&path, "port = [").unwrap();
        assert!(
            read_config_file(&path)
                .unwrap_err()
                .to_string()
                .starts_with(&path.display().to_string())
        );
        fs::write(&path, "port = { a = 1 }").unwrap();
        assert!(
            read_config_file(&path)
                .unwrap_err()
                .to_string()
                .contains("`port` must be")
        );
        assert_eq!(
            read_config_file(&dir.path().join("missing.toml"))
                .unwrap_err()
                .to_string(),
            format!(
                "{}: no such file",
                dir.path().join("missing.toml").display()
            )
        );
    }

    #[test]
    fn describe_redacts_every_key_and_password() {
        let a = KeyBytes::new(vec![1; 32]).unwrap().to_base64();
        let b = KeyBytes::new(vec![2; 32]).unwrap().to_base64();
        let ring = format!("k1:{},{}", a.as_str(), b.as_str());
        let config = from(&[
            ("SAFEBOX_MASTER_KEYS", &ring),
            ("SAFEBOX_JWT_SECRET", a.as_str()),
            (
                "SAFEBOX_DATABASE_URL",
                "mysql://app:hunter2@127.0.0.1/safebox",
            ),
            ("SAFEBOX_REDIS_URL", "redis://default:s3cret@cache:6379/0"),
            ("SAFEBOX_DB_TIMEOUT", "1500ms"),
        ])
        .unwrap();
        let debug = format!("{config:?}");
        for secret in [a.as_str(), b.as_str(), "hunter2", "s3cret"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(
            debug.contains("redis://default:<redacted>@cache:6379/0"),
            "{debug}"
        );
        let lines: Vec<String> = config
            .describe()
            .into_iter()
            .map(|(key, value)| format!("{key} = {value}"))
            .collect();
        let text = lines.join("\n");
        assert!(
            !text.contains(a.as_str()) && !text.contains(b.as_str()),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("master_keys = [\"k1:<redacted>\", \"<redacted>\"]"),
            "{text}"
        );
        assert!(text.contains("jwt_secret = \"<redacted>\""), "{text}");
        assert!(
            text.contains("database_url = \"mysql://app:<redacted>@127.0.0.1/safebox\""),
            "{text}"
        );
        assert!(
            text.contains("redis_url = \"redis://default:<redacted>@cache:6379/0\""),
            "{text}"
        );
        assert!(text.contains("db_timeout = \"1500ms\""), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        // Every line names a key the file accepts.
        for (key, _) in config.describe() {
            assert!(CONFIG_VARS.contains(&var_of(key).as_str()), "{key}");
        }
    }

    #[test]
    fn toml_errors_never_quote_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("safebox.toml");
        let key = KeyBytes::new(vec![7; 32]).unwrap().to_base64();
        fs::write(
            &path,
            format!("port = 1\njwt_secret = \"{}\n", key.as_str()),
        )
        .unwrap();
        let err = read_config_file(&path).unwrap_err().to_string();
        assert!(!err.contains(key.as_str()), "{err}");
        assert!(err.contains("line 2"), "{err}");
        fs::write(
            &path,
            format!("jwt_secret = \"{}\"\njwt_secret = \"x\"\n", key.as_str()),
        )
        .unwrap();
        let err = read_config_file(&path).unwrap_err().to_string();
        assert!(!err.contains(key.as_str()), "{err}");
    }

    #[test]
    fn config_keys_must_be_lower_case() {
        let err = Config::layered(
            |_| None,
            &file(&[("JWT_SECRET", "x")]),
            Some(Path::new("s.toml")),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "s.toml: unknown key `JWT_SECRET`");
    }

    #[test]
    fn the_key_commands_never_create_a_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::defaults(dir.path());
        let err = config.existing_master_ring().unwrap_err().to_string();
        assert!(err.starts_with("SAFEBOX_MASTER_KEYS: is not set"), "{err}");
        assert!(!dir.path().join("master.key").exists());
        // Once the server has made the development key, the commands use it.
        let made = config.resolve_keys().unwrap().master_ring().unwrap();
        assert_eq!(
            config.existing_master_ring().unwrap().sealing().id(),
            made.sealing().id()
        );
    }
}
