//! The `safebox` command line: `serve`, `migrate`, `keygen` and `admin`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use safebox_api::Application;
use std::sync::Arc;

use safebox_domain::ports::Clock;
use safebox_domain::usecases::{SetRole, SetRoleError};
use safebox_domain::{Origin, Role, Username};
use safebox_infra::db::DbPool;
use safebox_infra::{Config, DieselAuditLog, DieselUserRepository, KeyBytes, SystemClock, db};
use tracing_subscriber::EnvFilter;

/// safebox: a self-hosted store for passwords, API keys and notes that nobody else
/// can read. Configured with SAFEBOX_* environment variables (see
/// docs/configuration.md).
#[derive(Debug, Parser)]
#[command(name = "safebox", version, about)]
pub struct Cli {
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
    match cli.command {
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
            let config = Config::from_env()?;
            init_logging(&config.log)?;
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
        Command::Migrate => {
            let config = Config::from_env()?;
            init_logging(&config.log)?;
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
            let config = Config::from_env()?;
            init_logging(&config.log)?;
            actix_web::rt::System::new().block_on(async move {
                let app = Application::build(config).await?;
                app.run_until_stopped().await.context("server failed")
            })
        }
    }
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

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|err| anyhow::anyhow!("SAFEBOX_LOG: {filter:?} is not a valid filter ({err})"))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}
