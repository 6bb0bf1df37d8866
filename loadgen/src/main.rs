//! ringmq-loadgen: the bundled MQTT load generator.
//!
//! Placeholder: the scenarios (pairs, fan-in, fan-out, idle, connect-storm, persistent) are
//! built on the broker core and land with the load-generator issue. Until then this binary
//! says so and exits with status 2, so no script mistakes it for a working tool.

use std::process::ExitCode;

use ringmq::protocol::ProtocolVersion;

fn main() -> ExitCode {
    let versions: Vec<String> = ProtocolVersion::ALL.iter().map(|v| v.to_string()).collect();
    eprintln!(
        "ringmq-loadgen: not implemented yet; it will drive MQTT {} brokers with the ringmq codec",
        versions.join(" / ")
    );
    ExitCode::from(2)
}
