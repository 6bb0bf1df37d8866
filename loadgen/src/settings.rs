//! The resolved settings every worker thread reads (behind an `Arc`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ringmq::protocol::{Connect, ConnectProperties, MqttString, ProtocolVersion, QoS};

/// What the connection tasks need to know, checked and resolved from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub target: SocketAddr,
    pub version: ProtocolVersion,
    pub qos: QoS,
    pub payload_bytes: usize,
    /// Messages per second per publisher (open loop); `None` = closed loop.
    pub rate: Option<f64>,
    /// Unacknowledged QoS 1/2 PUBLISHes per publisher.
    pub inflight: usize,
    pub keep_alive_secs: u16,
    pub connect_timeout: Duration,
    /// Source addresses, used round-robin; empty = the kernel's choice.
    pub source_ips: Vec<IpAddr>,
    pub client_prefix: String,
    /// Connection attempts in flight at once, per thread.
    pub connect_concurrency: usize,
    /// Publishers in the run (payload publisher ids are below it).
    pub publishers: usize,
}

/// Session Expiry Interval given to persistent sessions in MQTT 5 (v3 sessions never
/// expire): long enough for any run.
pub const SESSION_EXPIRY_SECS: u32 = 3600;

impl Settings {
    /// A CONNECT for `client_id` in this run's protocol version and keep-alive.
    pub fn connect_packet(&self, client_id: &str, clean_start: bool) -> Connect {
        let mut properties = ConnectProperties::default();
        if self.version.is_v5() && !clean_start {
            properties.session_expiry_interval = Some(SESSION_EXPIRY_SECS);
        }
        Connect {
            protocol: self.version,
            clean_start,
            keep_alive: self.keep_alive_secs,
            client_id: MqttString::from_bytes(bytes::Bytes::copy_from_slice(client_id.as_bytes()))
                .unwrap_or(MqttString::EMPTY),
            will: None,
            username: None,
            password: None,
            properties,
        }
    }

    /// Nanoseconds after the last write at which an idle connection sends PINGREQ: half the
    /// keep-alive, so that the broker (which allows 1.5 x) never times a client out.
    pub fn ping_after_ns(&self) -> Option<u64> {
        match self.keep_alive_secs {
            0 => None,
            s => Some(u64::from(s) * 500_000_000),
        }
    }
}
