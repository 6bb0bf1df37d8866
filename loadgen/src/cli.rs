//! The command line: scenarios as subcommands, each with the options that apply to it.
//! Parsing errors and impossible combinations exit with status 2 and say why.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use ringmq::protocol::{ProtocolVersion, QoS};

use crate::payload::HEADER_BYTES;
use crate::settings::Settings;

const ABOUT: &str = "Load generator for MQTT brokers: ringmq or any other";

const LONG_ABOUT: &str = "\
Load generator for MQTT brokers: ringmq or any other (Mosquitto, EMQX, ...).

It runs thread-per-core (one glommio executor per --threads, pinned to a CPU unless
--unbound) with thousands of MQTT connections per thread, each one task with its own read
buffer and one coalesced write per round. Packets are encoded and decoded by ringmq's codec.

Every payload starts with a send timestamp (nanoseconds, CLOCK_MONOTONIC of this process)
and the publisher's id and sequence number, so subscribers measure publish-to-deliver
latency, loss, duplicates and order. A run connects and subscribes everything first, then
publishes for --warmup (not counted) plus --duration seconds, then drains for up to
--drain-timeout seconds, then disconnects every client cleanly.

A progress line goes to stderr every second; a summary follows at the end (on stdout, or
on stderr with --json, which prints one JSON document on stdout instead).";

const AFTER_HELP: &str = "\
Examples:
  ringmq-loadgen pairs --clients 16 --qos 0 --payload 64 --duration 10
  ringmq-loadgen fan-in --publishers 32 --subscribers 1 --qos 1
  ringmq-loadgen fan-in --publishers 32 --subscribers 1 --qos 1 --persistent-subscribers
  ringmq-loadgen fan-out --subscribers 100 --rate 1000 --json
  ringmq-loadgen idle --clients 15000 --broker-pid $(pidof ringmq) --source-ips 127.0.0.2-127.0.0.9
  ringmq-loadgen connect-storm --clients 32 --duration 5
  ringmq-loadgen persistent --messages 10000 --qos 1
  ringmq-loadgen persistent --messages 10000 --client-prefix r- --keep-offline   # then restart the broker
  ringmq-loadgen persistent --messages 10000 --client-prefix r- --resume

Run `ringmq-loadgen <SCENARIO> --help` for a scenario's options.";

#[derive(Debug, Parser)]
#[command(name = "ringmq-loadgen", version, about = ABOUT, long_about = LONG_ABOUT,
          after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// N publisher/subscriber pairs, each pair on its own topic (peak or fixed-rate load)
    #[command(long_about = "\
N publisher/subscriber pairs (--clients N). Publisher i publishes to topic i mod T and
subscriber i subscribes to topic i mod T (--topics T, default N: every pair on its own
topic, so each subscriber receives exactly its publisher's messages). The classic
throughput test: delivered msgs/s grows with the broker's cores when it scales.")]
    Pairs {
        /// Number of publisher/subscriber pairs
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        clients: u32,
        /// Distinct topics (default: one per pair)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        topics: Option<u32>,
        /// Subscribers keep persistent sessions (clean session 0 / v5 session expiry), so
        /// that a broker with persistence stores every QoS 1/2 delivery; ended after the run
        #[arg(long)]
        persistent_subscribers: bool,
        #[command(flatten)]
        traffic: TrafficArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// P publishers -> S subscribers on one topic (or T topics), optionally shared
    #[command(long_about = "\
P publishers (--publishers) publish to T topics (--topics, default 1; publisher i uses
topic i mod T) and S subscribers (--subscribers) each subscribe to all T topics, so every
subscriber receives every message. With --shared GROUP the subscribers subscribe through
$share/GROUP/<topic> instead and each message goes to one member of the group; loss and
duplicates are then counted over the whole group.")]
    FanIn {
        /// Number of publishers
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        publishers: u32,
        /// Number of subscribers
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        subscribers: u32,
        /// Distinct topics the publishers spread over (each subscriber subscribes to all)
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
        topics: u32,
        /// Subscribe via the shared subscription $share/GROUP/<topic>
        #[arg(long, value_name = "GROUP")]
        shared: Option<String>,
        /// Subscribers keep persistent sessions (clean session 0 / v5 session expiry), so
        /// that a broker with persistence stores every QoS 1/2 delivery; ended after the run
        #[arg(long)]
        persistent_subscribers: bool,
        #[command(flatten)]
        traffic: TrafficArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// 1 publisher -> S subscribers on one topic (broadcast)
    #[command(long_about = "\
One publisher publishes to one topic that S subscribers (--subscribers) subscribe to:
each message is delivered S times. Measures the broker's fan-out cost; --rate sets the
publisher's rate (deliveries per second = rate x S).")]
    FanOut {
        /// Number of subscribers
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        subscribers: u32,
        #[command(flatten)]
        traffic: TrafficArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// C idle connections with keep-alive; broker memory per connection
    #[command(long_about = "\
Opens C connections (--clients) that only keep themselves alive (PINGREQ every half
--keep-alive) for --duration seconds. With --broker-pid PID it reads the broker's resident
memory (VmRSS in /proc/PID/status) before connecting, once all are connected, and at the end,
and reports the memory per connection. Beyond ~28,000 connections to one port use
--source-ips to spread the connections over several source addresses.")]
    Idle {
        /// Number of connections
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        clients: u32,
        /// The broker's process id, to report its memory (it must run on this machine)
        #[arg(long, value_name = "PID")]
        broker_pid: Option<u32>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Connects per second: CONNECT, CONNACK, DISCONNECT, repeat
    #[command(long_about = "\
C concurrent loops (--clients) each connect, wait for CONNACK, send DISCONNECT, wait for
the broker to close, and start again with a new client id, for --duration seconds. Reports
completed connects per second and the connect latency (TCP connect to CONNACK).")]
    ConnectStorm {
        /// Concurrent connect loops
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        clients: u32,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Offline persistent sessions accumulate M messages, then reconnect and drain
    #[command(long_about = "\
N persistent sessions (--clients, default 1) subscribe to one topic at --qos (1 or 2,
default 1) and disconnect. One publisher then publishes M messages (--messages) at that
QoS and waits for every acknowledgement. The sessions reconnect with clean start off,
must find their session present, and receive the M queued messages. Reports the drain
rate, loss and duplicates. --duration bounds the publishing; --warmup is not used.
The broker must queue M messages per offline session (Mosquitto: max_queued_messages).

Across a broker restart: --keep-offline publishes and ends there, leaving the sessions
offline with their queues; after the restart, --resume with the same --client-prefix,
--clients and --messages reconnects them (session present required) and drains, counting
loss and duplicates. Delivery latencies mean nothing with --resume (the stamps come from
another process's clock).")]
    Persistent {
        /// Number of persistent sessions
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        clients: u32,
        /// Messages published while the sessions are offline
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
        messages: u32,
        /// Publish, then end without reconnecting: the sessions stay offline with their
        /// queues (to fill a broker's log before a restart; drain later with --resume)
        #[arg(long, conflicts_with = "resume")]
        keep_offline: bool,
        /// Neither set up nor publish: reconnect the sessions an earlier --keep-offline run
        /// left (same --client-prefix, --clients, --messages) and drain them
        #[arg(long, requires = "client_prefix")]
        resume: bool,
        #[command(flatten)]
        traffic: TrafficArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
}

/// Options of the scenarios that publish.
#[derive(Debug, Args)]
pub struct TrafficArgs {
    /// QoS of publishes and subscriptions: 0, 1 or 2 [default: 0; persistent: 1]
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: Option<u8>,
    /// Payload size in bytes, at least 16 (timestamp, publisher id, sequence number)
    #[arg(long, default_value_t = 64, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(16..=(256 << 20)))]
    pub payload: u32,
    /// Messages per second per publisher (open loop). Without it: closed loop, as fast as
    /// the --inflight window (QoS 1/2) or the socket (QoS 0) allows
    #[arg(long, value_name = "MSGS_PER_SEC", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Unacknowledged QoS 1/2 publishes per publisher (capped by a v5 broker's Receive
    /// Maximum)
    #[arg(long, default_value_t = 64, value_name = "W",
          value_parser = clap::value_parser!(u32).range(1..=65_535))]
    pub inflight: u32,
}

/// Options every scenario has.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Broker host name or IP address
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// MQTT version: 3.1.1 or 5 (3.1 works too)
    #[arg(long, default_value = "3.1.1", value_name = "VERSION", value_parser = parse_version)]
    pub mqtt: ProtocolVersion,
    /// Worker threads (glommio executors), each pinned to its own CPU unless --unbound
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
    /// Do not pin the worker threads (lets --threads exceed the CPUs)
    #[arg(long)]
    pub unbound: bool,
    /// CPUs to pin the worker threads to, in order, e.g. 2,3 [default: the CPUs this
    /// process may use, from the last one down, so a broker pinned from CPU 0 up keeps its own]
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub cpus: Vec<usize>,
    /// Seconds of measured load
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = parse_secs)]
    pub duration: f64,
    /// Seconds of load before measuring starts (not counted in rates and latencies)
    #[arg(long, default_value = "1", value_name = "SECS", value_parser = parse_secs_or_zero)]
    pub warmup: f64,
    /// Seconds to wait after publishing stops for outstanding deliveries and acks
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = parse_secs)]
    pub drain_timeout: f64,
    /// Seconds one connection may take from TCP connect to CONNACK (and SUBACK)
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = parse_secs)]
    pub connect_timeout: f64,
    /// Seconds all clients together may take to connect and subscribe before the run
    #[arg(long, default_value = "120", value_name = "SECS", value_parser = parse_secs)]
    pub setup_timeout: f64,
    /// Keep-alive in seconds sent in CONNECT (0 = off); clients ping after half of it
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub keep_alive: u16,
    /// Connection attempts in flight at once, per thread
    #[arg(long, default_value_t = 100, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connect_concurrency: u32,
    /// Source addresses for the connections, used round-robin: a range
    /// 127.0.0.2-127.0.0.50 or a list 127.0.0.2,127.0.0.3 (needed beyond ~28k connections)
    #[arg(long, value_name = "RANGE", value_parser = parse_source_ips)]
    pub source_ips: Option<SourceIps>,
    /// Prefix of client ids and topics [default: lg<pid>-]
    #[arg(long, value_name = "PREFIX")]
    pub client_prefix: Option<String>,
    /// Print one JSON document with every figure on stdout at the end
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr
    #[arg(long)]
    pub no_progress: bool,
}

/// A list of source addresses.
#[derive(Debug, Clone)]
pub struct SourceIps(pub Vec<IpAddr>);

/// Source address lists are capped: a longer list is almost certainly a typo.
const SOURCE_IPS_MAX: u128 = 65_536;

fn parse_source_ips(s: &str) -> Result<SourceIps, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            None => out.push(
                part.parse::<IpAddr>()
                    .map_err(|e| format!("{part:?}: {e}"))?,
            ),
            Some((a, b)) => {
                let (a, b) = (
                    a.trim()
                        .parse::<IpAddr>()
                        .map_err(|e| format!("{a:?}: {e}"))?,
                    b.trim()
                        .parse::<IpAddr>()
                        .map_err(|e| format!("{b:?}: {e}"))?,
                );
                let (lo, hi) = match (a, b) {
                    (IpAddr::V4(a), IpAddr::V4(b)) => {
                        (u128::from(u32::from(a)), u128::from(u32::from(b)))
                    }
                    (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b)),
                    _ => return Err(format!("{part:?}: both ends must be IPv4 or both IPv6")),
                };
                if lo > hi {
                    return Err(format!("{part:?}: the range is empty (first > last)"));
                }
                if hi - lo + 1 + out.len() as u128 > SOURCE_IPS_MAX {
                    return Err(format!("{part:?}: more than {SOURCE_IPS_MAX} addresses"));
                }
                for n in lo..=hi {
                    out.push(match a {
                        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
                        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
                    });
                }
            }
        }
    }
    if out.is_empty() {
        return Err("no address given".into());
    }
    Ok(SourceIps(out))
}

fn parse_version(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "3.1.1" | "311" | "4" => Ok(ProtocolVersion::V3_1_1),
        "5" | "5.0" | "50" => Ok(ProtocolVersion::V5),
        "3.1" | "31" | "3" => Ok(ProtocolVersion::V3_1),
        _ => Err("expected 3.1.1 or 5 (or 3.1)".into()),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(v.is_finite() && v > 0.0 && v <= 100_000_000.0) {
        return Err("expected a number of messages per second above 0 (at most 1e8)".into());
    }
    Ok(v)
}

fn parse_secs(s: &str) -> Result<f64, String> {
    let v = parse_secs_or_zero(s)?;
    if v == 0.0 {
        return Err("must be more than 0".into());
    }
    Ok(v)
}

fn parse_secs_or_zero(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
        return Err("expected seconds between 0 and 86400".into());
    }
    Ok(v)
}

/// Exits with status 2 and clap's formatting, naming the problem.
pub fn fail(msg: impl std::fmt::Display) -> ! {
    Cli::command()
        .error(ErrorKind::ValueValidation, msg.to_string())
        .exit()
}

/// Placement of the worker threads.
#[derive(Debug, Clone)]
pub enum Placement {
    Unbound,
    Pinned(Vec<usize>),
}

impl CommonArgs {
    /// Checks what clap cannot and resolves the broker's address (exits 2 on a problem).
    pub fn settings(
        &self,
        traffic: Option<&TrafficArgs>,
        publishers: usize,
        default_qos: u8,
    ) -> Settings {
        let target = match (self.host.as_str(), self.port).to_socket_addrs() {
            Ok(mut addrs) => match addrs.next() {
                Some(a) => a,
                None => fail(format!("--host {}: no address", self.host)),
            },
            Err(e) => fail(format!("--host {}: {e}", self.host)),
        };
        let source_ips = self.source_ips.clone().map(|s| s.0).unwrap_or_default();
        if let Some(ip) = source_ips
            .iter()
            .find(|ip| ip.is_ipv4() != target.is_ipv4())
        {
            fail(format!(
                "--source-ips: {ip} is not of the broker address's family ({target})"
            ));
        }
        let prefix = self
            .client_prefix
            .clone()
            .unwrap_or_else(|| format!("lg{}-", std::process::id()));
        if prefix.is_empty()
            || prefix.len() > 64
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            fail("--client-prefix: 1 to 64 characters among A-Z a-z 0-9 - _ .");
        }
        let qos = traffic.and_then(|t| t.qos).unwrap_or(default_qos);
        Settings {
            target,
            version: self.mqtt,
            qos: QoS::from_u8(qos).unwrap_or(QoS::AtMostOnce),
            payload_bytes: traffic.map_or(HEADER_BYTES, |t| t.payload as usize),
            rate: traffic.and_then(|t| t.rate),
            inflight: traffic.map_or(64, |t| t.inflight as usize),
            keep_alive_secs: self.keep_alive,
            connect_timeout: Duration::from_secs_f64(self.connect_timeout),
            source_ips,
            client_prefix: prefix,
            connect_concurrency: self.connect_concurrency as usize,
            publishers,
        }
    }

    /// Where the threads run: pinned to --cpus, or to the CPUs this process may use
    /// (highest first); unbound with --unbound or when there are more threads than CPUs.
    pub fn placement(&self) -> Placement {
        let threads = self.threads as usize;
        if self.unbound {
            if !self.cpus.is_empty() {
                fail("--cpus and --unbound exclude each other");
            }
            return Placement::Unbound;
        }
        let allowed: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        if !self.cpus.is_empty() {
            if self.cpus.len() < threads {
                fail(format!(
                    "--cpus names {} CPUs for {threads} threads",
                    self.cpus.len()
                ));
            }
            if let Some(c) = self.cpus.iter().find(|c| !allowed.contains(c)) {
                fail(format!(
                    "--cpus: CPU {c} is not available to this process (allowed: {allowed:?})"
                ));
            }
            return Placement::Pinned(self.cpus.iter().take(threads).copied().collect());
        }
        if allowed.len() < threads {
            eprintln!(
                "ringmq-loadgen: {threads} threads on {} CPUs: running them unbound",
                allowed.len()
            );
            return Placement::Unbound;
        }
        Placement::Pinned(allowed.iter().rev().take(threads).copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ip_ranges_and_lists() {
        let r = parse_source_ips("127.0.0.2-127.0.0.4,10.0.0.1").map(|s| s.0);
        assert_eq!(r.map(|v| v.len()), Ok(4));
        assert!(parse_source_ips("127.0.0.5-127.0.0.4").is_err());
        assert!(parse_source_ips("127.0.0.1-::1").is_err());
        assert!(parse_source_ips("nonsense").is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("5"), Ok(ProtocolVersion::V5));
        assert_eq!(parse_version("3.1.1"), Ok(ProtocolVersion::V3_1_1));
        assert!(parse_version("6").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
