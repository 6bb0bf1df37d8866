//! ringmq-loadgen: the load generator for MQTT brokers (ringmq or any other).
//!
//! # Layout
//! - `cli`: the command line (clap): scenarios, options, checks (exit 2 on bad input).
//! - `settings`: the resolved settings every worker reads.
//! - `runtime`: worker threads, one glommio executor each, pinned or unbound.
//! - `watchdog`: interrupts a worker executor that sleeps through ready work.
//! - `shared`: phase, windows and counters shared between the main thread and workers.
//! - `local`: a worker thread's state: wake-ups, histograms, connect limiter.
//! - `socket`: TCP connect from a chosen source address, handed to glommio.
//! - `conn`: one MQTT connection over ringmq's codec, with a coalescing write buffer.
//! - `publisher`, `subscriber`: the two roles of the traffic scenarios.
//! - `scenario/`: pairs, fan-in, fan-out (`traffic`), `idle`, `storm`, `persistent`.
//! - `payload`: the stamp at the front of every payload; `clock`: the common clock.
//! - `stats`: latency histograms and sequence tracking; `progress`: the progress line;
//!   `report`: the JSON document and the summary.

mod cli;
mod clock;
mod conn;
mod local;
mod payload;
mod progress;
mod publisher;
mod report;
mod runtime;
mod scenario;
mod settings;
mod shared;
mod socket;
mod stats;
mod subscriber;
mod watchdog;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    clock::init();
    if let Err(e) = runtime::prepare() {
        eprintln!("ringmq-loadgen: {e}");
        return ExitCode::from(1);
    }
    let (report, json) = scenario::run(cli.scenario);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(doc) => println!("{doc}"),
            Err(e) => {
                eprintln!("ringmq-loadgen: cannot write the JSON report: {e}");
                return ExitCode::from(1);
            }
        }
        eprint!("{}", report.human());
    } else {
        print!("{}", report.human());
    }
    if report.connections.established == 0 {
        eprintln!(
            "ringmq-loadgen: no connection to {} succeeded",
            report.broker
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
