//! The `athena` binary: parses the command line, loads configuration, and hands over to
//! `athena-server` (serving, doctor, backends) or `athena-app` (admin). `anyhow` lives only here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use athena_config::Config;
use athena_server::{Application, Role};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "athena", version, about = "Athena: self-hosted ebook library and reading platform")]
struct Cli {
    /// Configuration file (default: ./athena.toml if present, or ATHENA_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: API + web on 48000; with no --role it also hosts the worker (and sync) roles.
    Serve {
        /// Run only these roles (repeatable): api, sync, worker.
        #[arg(long = "role", value_parser = parse_role)]
        roles: Vec<Role>,
    },
    /// Create the hot/cold data dirs and the backup dir (seed: init-data-dirs.sh).
    Init,
    /// Apply database migrations.
    Migrate,
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Object storage.
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Check every component and print a report; exits non-zero if unhealthy.
    Doctor {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account, or make an existing user admin (seed: create_admin).
    Create {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration, secrets redacted.
    Show,
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Write, read and delete a probe object (seed: test_s3).
    Check,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("athena: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("athena: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("athena: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, mut config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { roles } => {
            athena_server::init_tracing(&config);
            let app = Application::build(config, &roles).await?;
            app.run_until_stopped(athena_server::shutdown_signal()).await?;
        }
        Command::Init => {
            for dir in athena_server::backends::ensure_dirs(&config)? {
                println!("{}", dir.display());
            }
        }
        Command::Migrate => {
            let store = athena_server::backends::open_store(&config).await?;
            store.migrate().await.context("migrations")?;
            println!("migrations applied ({})", store.backend());
            store.close().await;
        }
        Command::Admin { command: AdminCommand::Create { email } } => {
            let email: athena_domain::Email = email.parse().map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            config.ensure_dev_secret()?;
            athena_server::backends::ensure_dirs(&config)?;
            let app = athena_server::backends::open_app(config).await?;
            let user = app.ensure_admin(&email).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("admin: {} ({})", user.email, user.id);
            app.store.close().await;
        }
        Command::Config { command: ConfigCommand::Show } => {
            println!("{}", serde_json::to_string_pretty(&config)?);
        }
        Command::Storage { command: StorageCommand::Check } => {
            config.ensure_dev_secret()?;
            let (blobs, _) = athena_server::backends::open_blobs(&config, "http://127.0.0.1").await?;
            let detail = blobs.probe().await.map_err(|e| anyhow::anyhow!("storage check failed ({}): {e}", blobs.backend()))?;
            println!("storage ok ({}): {detail}", blobs.backend());
        }
        Command::Doctor { json } => {
            let report = athena_server::doctor(config).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for c in &report.checks {
                    println!("{:<5} {:<15} {:>5} ms  {}", c.status.to_uppercase(), c.name, c.ms, c.detail);
                }
                println!("{}", if report.healthy { "healthy" } else { "UNHEALTHY" });
            }
            if !report.healthy {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
