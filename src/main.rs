//! `ringmq`: command line, configuration, logging, then the shards until SIGINT/SIGTERM.
//!
//! Exit codes: 0 clean shutdown (or `check-config` ok), 1 bad configuration or a failure to
//! start, 2 usage error.

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => match Config::load(Some(&file)) {
            Ok(_) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("ringmq: {err}");
                ExitCode::from(1)
            }
        },
        None => {
            let overrides = Overrides {
                listen: cli.listen,
                data_dir: cli.data_dir,
                cores: cli.cores,
                log_level: cli.log_level,
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
    match shard::run(config, shutdown) {
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
