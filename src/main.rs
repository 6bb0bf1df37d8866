//! `ringmq`: command line, configuration, then the broker (not yet implemented).
//!
//! Exit codes: 0 success (`check-config` ok), 1 bad configuration, 2 usage error or the
//! broker core is missing from this build.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringmq::config::{Config, Overrides};

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
                Ok(config) => {
                    eprintln!(
                        "ringmq {}: the broker core is not implemented yet in this version; \
                         it would have served {}",
                        env!("CARGO_PKG_VERSION"),
                        config.listener_summary()
                    );
                    ExitCode::from(2)
                }
                Err(err) => {
                    eprintln!("ringmq: {err}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
