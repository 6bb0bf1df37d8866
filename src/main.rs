//! `ringmq`: command line, configuration, logging, then the shards until SIGINT/SIGTERM
//! (SIGHUP reloads the password and ACL files); `ringmq passwd` edits password files.
//!
//! Exit codes: 0 clean shutdown (or `check-config` ok, or `passwd` done), 1 bad
//! configuration, a failure to start, or a failed `passwd`, 2 usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringmq::config::{Config, LogFormat, Overrides};
use ringmq::shard::{self, Shutdown};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// MQTT 3.1 / 3.1.1 / 5.0 broker: one shard per core on io_uring.
#[derive(Debug, Parser)]
#[command(
    name = "ringmq",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Configuration file (TOML). Without it the built-in defaults apply (tuning/ringmq.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen on ADDR (IP:port, repeatable); replaces every [[listener]] of the file.
    #[arg(long = "listen", value_name = "ADDR")]
    listen: Vec<String>,
    /// Data directory; replaces storage.data_dir.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// CPUs that get a shard: "all" or a list such as 0,2,4; replaces runtime.cores.
    #[arg(long, value_name = "LIST")]
    cores: Option<String>,
    /// Serve the admin API and dashboard on ADDR (IP:port, or a port alone for
    /// 127.0.0.1); turns [admin] on and replaces admin.listen.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// off, error, warn, info, debug or trace; replaces log.level.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a configuration file: prints "ok", or the error and exits with 1.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Add a user to a password file or change its password (asked twice without echo on
    /// a terminal; otherwise one line is read from standard input), or delete it with -D.
    Passwd {
        /// Create a new file, replacing any file there.
        #[arg(short = 'c', conflicts_with = "delete")]
        create: bool,
        /// Delete the user.
        #[arg(short = 'D')]
        delete: bool,
        /// Also store SCRAM-SHA-256 credentials, for MQTT 5 enhanced authentication.
        /// They are weaker against offline guessing than the argon2id hash: add them only
        /// for users who need SCRAM.
        #[arg(long, conflicts_with = "delete")]
        scram: bool,
        /// PBKDF2 iterations of the SCRAM credentials (4096..=1000000).
        #[arg(long, value_name = "N", default_value_t = 4096, requires = "scram")]
        scram_iterations: u32,
        /// The password file.
        file: PathBuf,
        /// The user name (no ':').
        user: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => {
            // The password and ACL files it names are read too.
            let checked = Config::load(Some(&file))
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    ringmq::auth::Security::load(&c.auth)
                        .map(|_| ())
                        .map_err(|e| format!("[auth]: {e}"))
                });
            match checked {
                Ok(()) => {
                    println!("ok");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("ringmq: {err}");
                    ExitCode::from(1)
                }
            }
        }
        Some(Command::Passwd {
            create,
            delete,
            scram,
            scram_iterations,
            file,
            user,
        }) => {
            let request = ringmq::auth::passwd_cli::PasswdRequest {
                file,
                user,
                create,
                delete,
                scram_iterations: scram.then_some(scram_iterations),
            };
            match ringmq::auth::passwd_cli::run(&request) {
                Ok(done) => {
                    eprintln!("ringmq: {done}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("ringmq: {err}");
                    ExitCode::from(1)
                }
            }
        }
        None => {
            let overrides = Overrides {
                listen: cli.listen,
                data_dir: cli.data_dir,
                cores: cli.cores,
                log_level: cli.log_level,
                admin_listen: cli.admin_listen,
            };
            match Config::load_with(cli.config.as_deref(), &overrides) {
                Ok(config) => serve(config),
                Err(err) => {
                    eprintln!("ringmq: {err}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Runs the broker until a signal stops it.
fn serve(config: Config) -> ExitCode {
    init_logging(&config);
    let shutdown = Shutdown::default();
    if let Err(e) = shutdown.on_signals() {
        eprintln!("ringmq: cannot install signal handlers: {e}");
        return ExitCode::from(1);
    }
    let admin = ringmq::admin::AdminHandle::new();
    // Bound before the shards start, so that a taken port is a start-up error; it answers
    // 503 until the shards are up.
    let _server = if config.admin.enabled {
        match ringmq::admin::AdminServer::start(&config.admin, admin.clone()) {
            Ok(s) => Some(s),
            Err(e) => {
                let msg = format!(
                    "cannot listen on admin.listen {}: {e} (change admin.listen or --admin-listen)",
                    config.admin.listen
                );
                tracing::error!("{msg}");
                eprintln!("ringmq: {msg}");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    match shard::run_with_admin(config, shutdown, &admin) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ringmq: {e}");
            ExitCode::from(1)
        }
    }
}

/// Logs to stderr; `RUST_LOG` overrides `log.level` when set.
fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(config.log.level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
