//! The `safebox` command line: `serve`, `migrate`, `keygen`, `admin` and `keys`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use safebox_api::Application;
use safebox_api::logging::{JsonLines, TextLines};
use std::sync::Arc;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};

use safebox_domain::ports::{Clock, SecretCipher as _};
use safebox_domain::usecases::{MasterKeyStatus, RotateKeys, SetRole, SetRoleError};
use safebox_domain::{Origin, Role, Username};
use safebox_infra::db::DbPool;
use safebox_infra::{
    AesGcmSecretCipher, Config, DieselAuditLog, DieselUserRepository, KeyBytes, LogFormat,
    MasterKeyEntry, SystemClock, db,
};
use tracing_subscriber::EnvFilter;

/// safebox: a self-hosted store for passwords, API keys and notes that nobody else
/// can read. Configured with SAFEBOX_* environment variables over an optional
/// TOML file (see docs/configuration.md).
#[derive(Debug, Parser)]
#[command(name = "safebox", version, about)]
pub struct Cli {
    /// A TOML config file; SAFEBOX_* environment variables override its keys.
    #[arg(long, global = true, env = "SAFEBOX_CONFIG", value_name = "PATH")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate the database and serve the API (default 127.0.0.1:49999).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Print a fresh random 32-byte key as base64, for SAFEBOX_MASTER_KEY or
    /// SAFEBOX_JWT_SECRET.
    Keygen,
    /// Manage the admin role. Works against the configured database while the
    /// server runs; the change applies to the account's next request.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Check the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Manage the master key ring (SAFEBOX_MASTER_KEYS). See docs/vault.md for the
    /// rotation runbook.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Move data between databases.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
}

#[derive(Debug, Subcommand)]
enum DbAction {
    /// Copy every row of one database into a new, empty one: SQLite to MySQL or
    /// back. Ciphertexts and wrapped keys are copied as they are, so no key is
    /// needed. The target is migrated first and must then be empty; the copy is
    /// one transaction, and row counts and contents are verified at the end.
    /// Pass URLs with passwords through the environment, not the command line,
    /// where other users can read them.
    Copy {
        /// The database to read (sqlite://PATH, a path, or mysql://…).
        #[arg(
            long,
            env = "SAFEBOX_COPY_FROM",
            hide_env_values = true,
            value_name = "URL"
        )]
        from: String,
        /// The database to write (sqlite://PATH, a path, or mysql://…).
        #[arg(
            long,
            env = "SAFEBOX_COPY_TO",
            hide_env_values = true,
            value_name = "URL"
        )]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (environment over the config file over
    /// the defaults) with every key and password redacted; exit 1, naming the
    /// setting, when it is invalid. Reads nothing else and writes nothing.
    Check,
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Print a fresh ring entry `ID:base64` to append to SAFEBOX_MASTER_KEYS.
    Generate {
        /// The new key's id: 1-64 characters of letters, digits, '.', '_' and '-'.
        /// Default: mk-YYYYMMDD-<8 random hex digits>.
        #[arg(long)]
        id: Option<String>,
    },
    /// Re-wrap every user's data key under the newest master key of the ring.
    /// Safe while servers serve (every server must already hold the new key);
    /// interrupt it and run it again to finish.
    Rotate {
        /// Data keys re-wrapped per batch.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch: u32,
    },
    /// Show how many data keys each master key wraps, and which keys can be
    /// removed from the ring. Exits 1 if a data key is wrapped by a key the ring
    /// does not hold.
    Status,
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// Make USERNAME an admin.
    Grant {
        /// The account's username.
        username: String,
    },
    /// Make USERNAME an ordinary user again.
    Revoke {
        /// The account's username.
        username: String,
    },
}

/// Parses the command line, runs the command and turns failure into a message on
/// stderr and a non-zero exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("safebox: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    let config_file = cli.config.as_deref();
    match cli.command {
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let config = Config::load(config_file)?;
            println!("# safebox: the configuration is valid. Secrets are redacted.");
            if config.master_key.is_none() && config.master_keys.is_empty() {
                println!("# No master key is set: a development key file in data_dir is used.");
            }
            if config.jwt_secret.is_none() {
                println!("# No JWT secret is set: a development key file in data_dir is used.");
            }
            for (key, value) in config.describe() {
                println!("{key} = {value}");
            }
            Ok(())
        }
        Command::Keygen => {
            let key = KeyBytes::generate().context("the operating system's RNG failed")?;
            println!("{}", key.to_base64().as_str());
            Ok(())
        }
        Command::Admin { action } => {
            let (username, role) = match action {
                AdminAction::Grant { username } => (username, Role::Admin),
                AdminAction::Revoke { username } => (username, Role::User),
            };
            let username = Username::parse(&username)?;
            let config = Config::load(config_file)?;
            let _logs = init_logging(&config)?;
            let pool = open_database(&config)?;
            db::migrate(&pool)?;
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let audit = Arc::new(DieselAuditLog::start(
                pool.clone(),
                config.audit_retention,
                clock.clone(),
            ));
            let set_role = SetRole::new(
                Arc::new(DieselUserRepository::new(pool)),
                audit.clone(),
                clock,
            );
            let result = set_role.execute(&username, role, &Origin::operator());
            // Dropping the last handle writes the queued audit event.
            drop(set_role);
            drop(audit);
            match result {
                Ok(_) => {
                    println!("{username} is now {}", role.as_str());
                    Ok(())
                }
                Err(SetRoleError::NoSuchUser) => anyhow::bail!("no account is named {username}"),
                Err(err) => Err(err.into()),
            }
        }
        Command::Keys { action } => keys(action, config_file),
        Command::Db {
            action: DbAction::Copy { from, to },
        } => copy_database(&from, &to),
        Command::Migrate => {
            let config = Config::load(config_file)?;
            let _logs = init_logging(&config)?;
            let pool = open_database(&config)?;
            let applied = db::migrate(&pool)?;
            if applied.is_empty() {
                println!("database is up to date");
            } else {
                println!("applied migrations: {}", applied.join(", "));
            }
            Ok(())
        }
        Command::Serve => {
            let config = Config::load(config_file)?;
            let _logs = init_logging(&config)?;
            actix_web::rt::System::new().block_on(async move {
                let app = Application::build(config).await?;
                app.run_until_stopped().await.context("server failed")
            })
        }
    }
}

fn keys(action: KeysAction, config_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    if let KeysAction::Generate { id } = action {
        let id = match id {
            Some(id) => id,
            None => {
                let random = KeyBytes::generate().context("the operating system's RNG failed")?;
                let suffix = &random.expose()[..4];
                let days = SystemClock.now().as_secs().div_euclid(86_400);
                format!("mk-{}-{}", civil_date(days), hex_lower(suffix))
            }
        };
        if !MasterKeyEntry::is_valid_id(&id) {
            anyhow::bail!("--id must be 1 to 64 characters of letters, digits, '.', '_' and '-'");
        }
        let key = KeyBytes::generate().context("the operating system's RNG failed")?;
        let entry = format!("{id}:{}", key.to_base64().as_str());
        println!("{entry}");
        return Ok(());
    }
    let config = Config::load(config_file)?;
    let _logs = init_logging(&config)?;
    // The servers own the schema: a key command run with a newer binary must not
    // migrate a database that older servers still use, nor make a key.
    let cipher = Arc::new(AesGcmSecretCipher::new(config.existing_master_ring()?));
    let pool = open_database(&config)?;
    let pending = db::pending_migrations(&pool)?;
    if !pending.is_empty() {
        anyhow::bail!(
            "the database needs migrations {} first: run `safebox migrate` (or start the servers) with this version",
            pending.join(", ")
        );
    }
    let rotate = RotateKeys::new(Arc::new(DieselUserRepository::new(pool)), cipher.clone());
    match action {
        KeysAction::Generate { .. } => unreachable!("handled above"),
        KeysAction::Rotate { batch } => {
            let sealing = cipher.sealing_key();
            eprintln!("re-wrapping data keys under master key {sealing}");
            let rewrapped = rotate.rotate(batch as usize, &mut |progress| {
                eprintln!(
                    "rewrapped {}/{} data keys",
                    progress.rewrapped, progress.total
                );
            })?;
            println!("rotation complete: {rewrapped} data keys re-wrapped under {sealing}");
            print_status(&rotate.status()?);
            Ok(())
        }
        KeysAction::Status => {
            let status = rotate.status()?;
            print_status(&status);
            if let Some(missing) = status.iter().find(|key| !key.in_ring && key.data_keys > 0) {
                anyhow::bail!(
                    "master key {} wraps {} data keys but is not in the ring: those users' secrets cannot be read",
                    missing.id,
                    missing.data_keys
                );
            }
            Ok(())
        }
    }
}

fn copy_database(from: &str, to: &str) -> anyhow::Result<()> {
    use std::time::{Duration, Instant};

    let (source, target) = (db::DatabaseUrl::parse(from)?, db::DatabaseUrl::parse(to)?);
    if source == target {
        anyhow::bail!("--from and --to are the same database");
    }
    let open = |url: &str| db::connect(url, 1, Duration::from_secs(10));
    let (from_pool, to_pool) = (open(from)?, open(to)?);
    eprintln!(
        "copying {} ({}) into {} ({})",
        source.redacted(),
        from_pool.backend().as_str(),
        target.redacted(),
        to_pool.backend().as_str()
    );
    // Progress at most once a second, and at the end of every table.
    let mut last = Instant::now();
    let mut shown = |progress: db::copy::CopyProgress| {
        let finished = progress.copied == progress.total;
        if finished || last.elapsed() >= Duration::from_secs(1) {
            if progress.total > 0 || finished {
                eprintln!(
                    "{:<16} {:>10}/{} rows",
                    progress.table, progress.copied, progress.total
                );
            }
            last = Instant::now();
        }
    };
    let tables = db::copy::copy(&from_pool, &to_pool, &mut shown)?;
    println!("{:<16} {:>10}  sha256 of the rows", "table", "rows");
    for table in &tables {
        println!("{:<16} {:>10}  {}", table.table, table.rows, table.digest);
    }
    let rows: u64 = tables.iter().map(|table| table.rows).sum();
    println!(
        "copy verified: {rows} rows in {} tables, identical in both databases",
        tables.len()
    );
    Ok(())
}

fn print_status(status: &[MasterKeyStatus]) {
    println!("{:<40} {:>10}  state", "master key", "data keys");
    for key in status {
        let state = match (key.in_ring, key.sealing, key.removable()) {
            (false, _, _) => "NOT IN RING",
            (true, true, _) => "in ring, seals new data keys",
            (true, false, true) => "in ring, unused: can be removed",
            (true, false, false) => "in ring, still needed: run `safebox keys rotate`",
        };
        println!("{:<40} {:>10}  {state}", key.id.0, key.data_keys);
    }
}

/// `YYYYMMDD` of the day `days` after 1970-01-01 (proleptic Gregorian).
fn civil_date(days: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}")
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens the configured database and brings its schema up to date.
fn open_database(config: &Config) -> anyhow::Result<DbPool> {
    config.ensure_data_dir()?;
    let pool = db::connect(
        &config.effective_database_url(),
        config.db_pool_size,
        config.db_timeout,
    )?;
    Ok(pool)
}

/// Logs to stderr, filtered by `SAFEBOX_LOG`, as text or (with
/// `SAFEBOX_LOG_FORMAT=json`) one JSON object per line, each naming the request
/// it was written for (safebox_api::logging). Lines are written by a thread of
/// their own: a request worker never waits for the log's disk (a write to a
/// file can stall for tens of milliseconds while the kernel writes back dirty
/// pages). Nothing is dropped; the lines still queued are written when the
/// returned guard drops, so the caller holds it until it returns.
fn init_logging(config: &Config) -> anyhow::Result<WorkerGuard> {
    let filter = &config.log;
    let filter = EnvFilter::try_new(filter)
        .map_err(|err| anyhow::anyhow!("SAFEBOX_LOG: {filter:?} is not a valid filter ({err})"))?;
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("safebox-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(writer);
    let _ = match config.log_format {
        LogFormat::Text => builder.event_format(TextLines).try_init(),
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
    };
    Ok(guard)
}
