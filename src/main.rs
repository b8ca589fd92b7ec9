//! The `gateway` binary: `serve` (the default), `check-config`, `migrate`, `user create`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::cli;
use gateway::config::Config;
use gateway::master_key::{self, MasterKeySource};
use gateway::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(name = "gateway", version, about = "A fast, self-hostable LLM gateway")]
struct Cli {
    /// Path of the configuration file.
    #[arg(
        long,
        global = true,
        default_value = "gateway.toml",
        env = "GATEWAY_CONFIG"
    )]
    config: PathBuf,
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "GATEWAY_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway (the default).
    Serve {
        /// Listen address, overriding `server.listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Check a configuration file and exit: 0 when valid, 1 with every problem listed.
    CheckConfig,
    /// Database migrations (`serve` applies pending ones unless database.auto_migrate = false).
    Migrate {
        #[command(subcommand)]
        action: MigrateCommand,
    },
    /// User administration.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
}

#[derive(Subcommand)]
enum MigrateCommand {
    /// Apply every pending migration.
    Up,
    /// Revert the most recent migration(s).
    Down {
        #[arg(long, default_value_t = 1)]
        steps: usize,
        /// Also revert 0001, which drops the user, session, account and verification tables
        /// a better-auth app may share.
        #[arg(long)]
        force: bool,
    },
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password comes from stdin (--password-stdin) or GATEWAY_USER_PASSWORD.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Give the user the admin role.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn main() -> ExitCode {
    gateway::allocator::return_large_blocks();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve { listen: None }) {
        Command::CheckConfig => match Config::load(&cli.config) {
            Ok(config) => {
                println!(
                    "{}: ok ({} providers, {} models)",
                    cli.config.display(),
                    config.providers.len(),
                    config.models.len()
                );
                for p in config
                    .providers
                    .iter()
                    .filter(|p| p.disabled_reason.is_some())
                {
                    println!(
                        "  note: provider {} will be skipped: {}",
                        p.name,
                        p.disabled_reason.as_deref().unwrap_or_default()
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Migrate { action } => {
            let action = match action {
                MigrateCommand::Up => cli::MigrateAction::Up,
                MigrateCommand::Down { steps, force } => cli::MigrateAction::Down { steps, force },
                MigrateCommand::Status => cli::MigrateAction::Status,
            };
            run_command(&cli.config, |config| async move {
                cli::migrate(&config, action).await
            })
        }
        Command::User {
            action:
                UserCommand::Create {
                    email,
                    username,
                    name,
                    admin,
                    password_stdin,
                },
        } => run_command(&cli.config, |config| async move {
            let args = cli::NewUserArgs {
                email,
                username,
                name,
                admin,
                password_stdin,
            };
            cli::create_user(&config, args).await
        }),
        Command::Serve { listen } => {
            telemetry::init(cli.log_format);
            let mut config = match Config::load(&cli.config) {
                Ok(config) => config,
                Err(e) => {
                    eprint!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            match serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Loads the config and runs one administrative command on a small runtime.
fn run_command<F, Fut>(path: &std::path::Path, command: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(command(config)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(mut config: Config) -> anyhow::Result<()> {
    master_key::ensure_jwt_secret(&mut config)?;
    match master_key::ensure(&mut config)? {
        MasterKeySource::Configured => {}
        MasterKeySource::Stored(path) => {
            tracing::info!("using the master key stored in {}", path.display())
        }
        MasterKeySource::Generated(path, key) => {
            // Printed once, on the terminal only: it is the bootstrap admin credential.
            println!(
                "\nGenerated a master key (kept in {}):\n\n    {}\n\nUse it as `Authorization: Bearer <key>`. It is not shown again.\n",
                path.display(),
                key.expose()
            );
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Handlers first: a SIGTERM that arrives just after "listening" must drain, not kill.
        let shutdown = shutdown_signal();
        let state = gateway::build_state(&config).await?;
        let listener = tokio::net::TcpListener::bind(config.server.listen).await?;
        tracing::info!(
            listen = %listener.local_addr()?,
            version = gateway::app::VERSION,
            "gateway listening"
        );
        gateway::serve_state(state, listener, shutdown, config.server.drain_timeout).await;
        Ok(())
    })
}

/// Ctrl-C or SIGTERM. The SIGTERM handler is installed when this is called, not when the
/// returned future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async move {
            match term {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutdown signal received");
    }
}
