//! The results of a run: one document, printed as JSON (`--json`) or as a summary.

use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::LatencySummary;

/// Everything a run measured.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    /// host:port of the broker.
    pub broker: String,
    pub mqtt: String,
    pub settings: RunSettings,
    /// Wall-clock seconds of the whole run, set-up and drain included.
    pub elapsed_s: f64,
    pub connections: Connections,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_storm: Option<StormFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistent: Option<PersistentFigures>,
    /// Times a worker executor stood still and was interrupted to look at its rings again
    /// (see the loadgen's `watchdog` module); usually 0.
    pub executor_kicks: u64,
    pub errors: Errors,
}

/// The settings the run used, so that a JSON document stands on its own.
#[derive(Debug, Default, Serialize)]
pub struct RunSettings {
    pub qos: u8,
    pub payload_bytes: usize,
    /// Messages per second per publisher; null = closed loop.
    pub rate_per_publisher: Option<f64>,
    pub inflight: usize,
    pub publishers: usize,
    pub subscribers: usize,
    pub topics: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_group: Option<String>,
    /// Subscribers in persistent sessions (`--persistent-subscribers`, and `persistent`).
    pub persistent_subscribers: bool,
    pub clients: usize,
    pub threads: usize,
    /// "unbound" or the CPUs the threads are pinned to.
    pub placement: String,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub drain_timeout_s: f64,
    pub keep_alive_s: u16,
    pub source_ips: usize,
    pub client_prefix: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Connections {
    /// Connections accepted (CONNACK success), reconnects and connect-storm loops included.
    pub established: u64,
    pub failed: u64,
    /// TCP connect to CONNACK: set-up connects, then those inside the measuring window.
    pub connect_latency: LatencySummary,
}

#[derive(Debug, Default, Serialize)]
pub struct PublishFigures {
    pub publishers: usize,
    pub publishers_failed: usize,
    /// PUBLISH packets written during the whole run (warm-up included).
    pub sent: u64,
    /// Written inside the measuring window, and that per second.
    pub sent_in_window: u64,
    pub sent_per_s: f64,
    /// QoS 1/2: PUBACK (QoS 1) or PUBCOMP (QoS 2) received, and those never received.
    pub acked: u64,
    pub unacked: u64,
    /// Acknowledgements (PUBACK / PUBCOMP) received inside the window, and that per second.
    pub acked_in_window: u64,
    pub acked_per_s: f64,
    /// PUBLISH written to its PUBACK/PUBCOMP, inside the window.
    pub ack_latency: LatencySummary,
}

#[derive(Debug, Default, Serialize)]
pub struct DeliveryFigures {
    pub subscribers: usize,
    pub subscribers_failed: usize,
    /// PUBLISH packets received by subscribers during the whole run.
    pub delivered: u64,
    /// Received inside the measuring window, per second, and payload megabytes (10^6) per
    /// second.
    pub delivered_in_window: u64,
    pub delivered_per_s: f64,
    pub mb_per_s: f64,
    /// Payload timestamp to receipt, for deliveries inside the window.
    pub latency: LatencySummary,
    /// pairs, fan-in, fan-out: seconds from the end of publishing to the last new
    /// delivery (0 when everything had arrived by then): how far the subscribers were
    /// behind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_s: Option<f64>,
    /// Deliveries the subscribers should have had (sum over subscribers, or over shared
    /// groups, of the messages their publishers sent), the distinct ones they had, and the
    /// missing ones after the drain.
    pub expected: u64,
    pub received_unique: u64,
    pub lost: u64,
    /// Deliveries of a message the same subscriber (or group) already had.
    pub duplicates: u64,
    /// Deliveries with a lower sequence number than one already received from the same
    /// publisher by the same subscriber.
    pub out_of_order: u64,
    /// Deliveries from a publisher the subscriber did not subscribe to (routing errors).
    pub unexpected: u64,
    /// Messages without a valid stamp of this run (other publishers on the topics).
    pub foreign: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct IdleFigures {
    pub clients: usize,
    pub connected: u64,
    /// Seconds the connections were held after all were up.
    pub hold_s: f64,
    pub pings: u64,
    pub pongs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerMemory>,
}

/// The broker's resident memory (VmRSS), KiB.
#[derive(Debug, Default, Serialize)]
pub struct BrokerMemory {
    pub pid: u32,
    pub rss_before_kib: u64,
    pub rss_connected_kib: u64,
    pub rss_end_kib: u64,
    /// (connected - before) / connections.
    pub rss_per_connection_bytes: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct StormFigures {
    pub concurrency: usize,
    /// Connects completed (CONNACK success) inside the window, and that per second.
    pub connects: u64,
    pub connects_per_s: f64,
    pub failed: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct PersistentFigures {
    pub sessions: usize,
    pub messages: u64,
    /// Seconds to publish every message and have it acknowledged.
    pub publish_s: f64,
    pub publish_per_s: f64,
    /// From the reconnects to the last message received (all sessions), and the
    /// distinct messages received per second over that time.
    pub drain_s: f64,
    pub drain_per_s: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Errors {
    pub count: u64,
    /// The first few, with what and which client.
    pub samples: Vec<String>,
}

fn lat(out: &mut String, name: &str, l: &LatencySummary) {
    if l.count == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "  {name:<18} p50 {:>9.1} us  p90 {:>9.1}  p99 {:>9.1}  p99.9 {:>9.1}  max {:>9.1}  (n={})",
        l.p50_us, l.p90_us, l.p99_us, l.p99_9_us, l.max_us, l.count
    );
}

impl Report {
    /// The summary for people.
    pub fn human(&self) -> String {
        let s = &self.settings;
        let mut o = String::new();
        let _ = write!(
            o,
            "== {} against {} (MQTT {}), {} thread(s) [{}]",
            self.scenario, self.broker, self.mqtt, s.threads, s.placement
        );
        if self.publish.is_some() {
            let rate = s.rate_per_publisher.map_or("closed loop".to_string(), |r| {
                format!("{r} msg/s per publisher")
            });
            let _ = write!(o, ", QoS {}, {} B payload, {rate}", s.qos, s.payload_bytes);
            if s.persistent_subscribers {
                let _ = write!(o, ", persistent subscribers");
            }
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "  connections        {} established, {} failed",
            self.connections.established, self.connections.failed
        );
        lat(&mut o, "connect latency", &self.connections.connect_latency);
        if let Some(p) = &self.publish {
            let _ = writeln!(
                o,
                "  published          {:.0} msg/s ({} in {:.1} s window; {} in all; {} publishers, {} failed)",
                p.sent_per_s, p.sent_in_window, s.duration_s, p.sent, p.publishers, p.publishers_failed
            );
            if s.qos > 0 {
                let _ = writeln!(
                    o,
                    "  acknowledged       {:.0} msg/s ({} in window; {} in all; {} never)",
                    p.acked_per_s, p.acked_in_window, p.acked, p.unacked
                );
                lat(&mut o, "ack latency", &p.ack_latency);
            }
        }
        if let Some(d) = &self.delivery {
            let _ = writeln!(
                o,
                "  delivered          {:.0} msg/s, {:.2} MB/s ({} in window; {} in all; {} subscribers, {} failed)",
                d.delivered_per_s, d.mb_per_s, d.delivered_in_window, d.delivered, d.subscribers, d.subscribers_failed
            );
            lat(&mut o, "latency", &d.latency);
            if let Some(drain) = d.drain_s.filter(|s| *s > 0.0) {
                let _ = writeln!(
                    o,
                    "  drain              last new delivery {drain:.2} s after publishing ended"
                );
            }
            let _ = writeln!(
                o,
                "  loss               {} lost of {} expected, {} duplicates, {} out of order, {} unexpected, {} foreign",
                d.lost, d.expected, d.duplicates, d.out_of_order, d.unexpected, d.foreign
            );
        }
        if let Some(i) = &self.idle {
            let _ = writeln!(
                o,
                "  idle               {} of {} connected, held {:.1} s, {} pings / {} pongs",
                i.connected, i.clients, i.hold_s, i.pings, i.pongs
            );
            if let Some(b) = &i.broker {
                let _ = writeln!(
                    o,
                    "  broker memory      pid {}: {} KiB before, {} KiB connected, {} KiB at the end: {:.0} bytes per connection",
                    b.pid, b.rss_before_kib, b.rss_connected_kib, b.rss_end_kib, b.rss_per_connection_bytes
                );
            }
        }
        if let Some(c) = &self.connect_storm {
            let _ = writeln!(
                o,
                "  connect storm      {:.0} connects/s ({} in window, {} concurrent, {} failed)",
                c.connects_per_s, c.connects, c.concurrency, c.failed
            );
        }
        if let Some(p) = &self.persistent {
            let _ = write!(
                o,
                "  persistent         {} sessions x {} messages",
                p.sessions, p.messages
            );
            if p.publish_s > 0.0 {
                let _ = write!(
                    o,
                    ": published in {:.2} s ({:.0} msg/s)",
                    p.publish_s, p.publish_per_s
                );
            }
            if self.delivery.is_some() {
                let _ = write!(
                    o,
                    ", drained in {:.2} s ({:.0} msg/s)",
                    p.drain_s, p.drain_per_s
                );
            } else {
                let _ = write!(o, ", left offline");
            }
            let _ = writeln!(o);
        }
        if self.executor_kicks > 0 {
            let _ = writeln!(
                o,
                "  executor kicks     {} (a worker stood still for 50 ms and was interrupted)",
                self.executor_kicks
            );
        }
        let _ = writeln!(o, "  errors             {}", self.errors.count);
        for e in &self.errors.samples {
            let _ = writeln!(o, "    {e}");
        }
        let _ = writeln!(o, "  elapsed            {:.1} s", self.elapsed_s);
        o
    }
}
