//! The `safebox` command line: `serve`, `migrate` and `keygen`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use safebox_api::Application;
use safebox_infra::{Config, KeyBytes, db};
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
        Command::Migrate => {
            let config = Config::from_env()?;
            init_logging(&config.log)?;
            config.ensure_data_dir()?;
            let pool = db::connect(
                &config.effective_database_url(),
                config.db_pool_size,
                config.db_timeout,
            )?;
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

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|err| anyhow::anyhow!("SAFEBOX_LOG: {filter:?} is not a valid filter ({err})"))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}
