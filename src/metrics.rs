//! Broker metrics: each shard's traffic counters, the merged snapshot every reader gets,
//! and the load averages and topic names of the `$SYS` tree.
//!
//! Counting is shard-local: [`Traffic`] is plain `Cell`s reached through the shard's
//! `Rc<LimitStats>` that every session and outbox already holds, so an increment is one
//! load and one store on the shard's own core (no atomics, no shared cache lines). A
//! reader asks every shard over the control mesh for its [`MetricsSnapshot`] (plain data,
//! `Send`) and merges the answers ([`MetricsSnapshot::merge`]); gauges (connections,
//! queues, retained messages, subscriptions) are computed by each shard when asked.

use std::cell::Cell;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::limit::Limit;
use crate::protocol::{Packet, ProtocolVersion};

/// Why a message was dropped; the other drop reasons are [`Limit`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Queued past its v5 Message Expiry Interval.
    Expired,
    /// Larger than the subscriber's Maximum Packet Size.
    TooLarge,
    /// A PUBLISH the ACL does not let its client write.
    AclDenied,
}

/// One shard's traffic counters (monotonic, since start).
#[derive(Debug, Default)]
pub struct Traffic {
    /// Connections served (CONNACK accepted), by [`version_index`].
    connects: [Cell<u64>; 3],
    packets_in: Cell<u64>,
    packets_out: Cell<u64>,
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    /// PUBLISH packets and their payload bytes, by QoS.
    publish_in: [Cell<u64>; 3],
    publish_in_bytes: [Cell<u64>; 3],
    publish_out: [Cell<u64>; 3],
    publish_out_bytes: [Cell<u64>; 3],
    expired: Cell<u64>,
    too_large: Cell<u64>,
    acl_denied: Cell<u64>,
    /// Messages this shard forwarded to others over the data mesh, and took from it.
    mesh_forwarded: Cell<u64>,
    mesh_taken: Cell<u64>,
}

fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

/// 0: MQTT 3.1, 1: 3.1.1, 2: 5.0.
pub fn version_index(v: ProtocolVersion) -> usize {
    match v {
        ProtocolVersion::V3_1 => 0,
        ProtocolVersion::V3_1_1 => 1,
        ProtocolVersion::V5 => 2,
    }
}

impl Traffic {
    /// A client's connection was accepted: counted by version, and its CONNECT as a
    /// packet received (it is read before the packet loop, which counts the others).
    pub fn connected(&self, v: ProtocolVersion) {
        bump(&self.connects[version_index(v)], 1);
        bump(&self.packets_in, 1);
    }

    /// A packet decoded from a client.
    pub fn received(&self, packet: &Packet) {
        bump(&self.packets_in, 1);
        if let Packet::Publish(p) = packet {
            let q = p.qos as usize;
            bump(&self.publish_in[q], 1);
            bump(&self.publish_in_bytes[q], p.payload.len() as u64);
        }
    }

    /// A packet encoded for a client.
    pub fn sent(&self, packet: &Packet) {
        bump(&self.packets_out, 1);
        if let Packet::Publish(p) = packet {
            let q = p.qos as usize;
            bump(&self.publish_out[q], 1);
            bump(&self.publish_out_bytes[q], p.payload.len() as u64);
        }
    }

    /// Bytes read from clients' sockets.
    pub fn bytes_received(&self, n: usize) {
        bump(&self.bytes_in, n as u64);
    }

    /// Bytes handed to clients' sockets.
    pub fn bytes_sent(&self, n: usize) {
        bump(&self.bytes_out, n as u64);
    }

    /// A message forwarded to another shard (counted before the send, which may wait).
    pub fn mesh_forwarded(&self) {
        bump(&self.mesh_forwarded, 1);
    }

    /// A forwarded message taken from the data mesh.
    pub fn mesh_taken(&self) {
        bump(&self.mesh_taken, 1);
    }

    pub fn dropped(&self, why: DropReason) {
        bump(
            match why {
                DropReason::Expired => &self.expired,
                DropReason::TooLarge => &self.too_large,
                DropReason::AclDenied => &self.acl_denied,
            },
            1,
        );
    }
}

/// Messages dropped, by reason, across the merged shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops {
    /// QoS 1/2 deliveries refused by a full session queue.
    pub queue_full: u64,
    /// Queued past their Message Expiry Interval.
    pub expired: u64,
    /// Larger than the subscriber's Maximum Packet Size.
    pub too_large: u64,
    /// PUBLISHes the ACL denied.
    pub acl_denied: u64,
    /// PUBLISHes refused for going over the publish rate limits (the one that ends its
    /// connection with 0x96; throttling delays, it does not drop).
    pub rate_limit: u64,
    /// QoS 0 deliveries dropped for a slow client's full write buffer.
    pub qos0_slow_client: u64,
    /// QoS 0 deliveries shed above the memory high-water mark.
    pub qos0_shed: u64,
}

impl Drops {
    pub fn total(&self) -> u64 {
        self.queue_full
            + self.expired
            + self.too_large
            + self.acl_denied
            + self.rate_limit
            + self.qos0_slow_client
            + self.qos0_shed
    }
}

/// Counts by QoS 0, 1, 2.
pub type ByQos = [u64; 3];

/// Every metric of one shard, or the merge of several: plain data that any thread may
/// hold. Counters are monotonic since start; gauges are as each shard saw them when asked.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    /// Shards merged into this snapshot.
    pub shards: u32,
    /// Clients connected now (gauge).
    pub connections: u64,
    /// Connections accepted since start, by protocol version (3.1, 3.1.1, 5.0).
    pub connects_by_version: [u64; 3],
    /// Sessions held, connected or not (gauge; Mosquitto's `clients/total`).
    pub sessions: u64,
    /// Packets and bytes of every kind, from and to clients.
    pub packets_received: u64,
    pub packets_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// PUBLISH packets and their payload bytes, by QoS.
    pub publish_received: ByQos,
    pub publish_received_bytes: ByQos,
    pub publish_sent: ByQos,
    pub publish_sent_bytes: ByQos,
    pub drops: Drops,
    /// Every [`Limit`] counter, in [`Limit::ALL`] order (rate limits, refusals, ...).
    pub limits: [u64; Limit::ALL.len()],
    /// QoS 1/2 messages sent and not yet acknowledged (gauge).
    pub inflight: u64,
    /// QoS 1/2 messages waiting in sessions' in-memory queues (gauge).
    pub queued: u64,
    /// The shards' queued-memory gauges (see `LimitStats`).
    pub queued_bytes: u64,
    pub retained: u64,
    /// Subscriptions of every session (gauge).
    pub subscriptions: u64,
    /// Messages forwarded over the data mesh and taken from it; merged over every shard,
    /// their difference is the mesh's depth ([`MetricsSnapshot::mesh_queued`]).
    pub mesh_forwarded: u64,
    pub mesh_taken: u64,
    /// Log records appended, flushes done, appends that stalled the shard's loop.
    pub storage_records: u64,
    pub storage_flushes: u64,
    pub storage_stalls: u64,
    /// Log flush latency in microseconds.
    pub flush_micros: Histogram<u64>,
    /// Records per flush.
    pub flush_records: Histogram<u64>,
    /// Messages a data-mesh receiver took per wake-up (a run taken without waiting).
    pub mesh_batch: Histogram<u64>,
    /// Each shard's busy ratio (0.0 to 1.0) since the previous snapshot, by shard id.
    pub busy: Vec<(u16, f64)>,
}

/// A shard-local histogram (for counters recorded off the hot path, e.g. per flush).
#[derive(Debug)]
pub struct LocalHistogram(std::cell::RefCell<Histogram<u64>>);

impl Default for LocalHistogram {
    fn default() -> Self {
        LocalHistogram(std::cell::RefCell::new(histogram()))
    }
}

impl LocalHistogram {
    pub fn record(&self, value: u64) {
        self.0.borrow_mut().saturating_record(value);
    }

    /// A copy of the counts so far.
    pub fn get(&self) -> Histogram<u64> {
        self.0.borrow().clone()
    }
}

/// Sizes of the batches a receiver takes from a channel: messages taken one after another
/// without waiting count as one batch, recorded when the receiver next has to wait. One
/// [`Batch`] per receiver, one meter for all of a shard's receivers.
#[derive(Debug, Default)]
pub struct BatchMeter(LocalHistogram);

/// One receiver's batch in progress.
#[derive(Debug, Default)]
pub struct Batch(u64);

impl BatchMeter {
    /// `batch`'s receiver took a message; `waited`: it had to wait for it (the run before
    /// it ended).
    pub fn taken(&self, batch: &mut Batch, waited: bool) {
        if waited && batch.0 > 0 {
            self.0.record(batch.0);
            batch.0 = 0;
        }
        batch.0 += 1;
    }

    /// The batch sizes recorded so far (runs in progress are not among them).
    pub fn get(&self) -> Histogram<u64> {
        self.0.get()
    }
}

/// An empty, auto-resizing histogram (recording never fails).
pub fn histogram() -> Histogram<u64> {
    // Sized for an hour in microseconds up front: adding into an empty histogram that had
    // to grow to the other's range lost a count in the merge test (hdrhistogram 7.6). These
    // bounds and two
    // significant figures are valid: this cannot fail.
    let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 2)
        .unwrap_or_else(|_| unreachable!("valid histogram bounds"));
    h.auto(true);
    h
}

impl Default for MetricsSnapshot {
    fn default() -> Self {
        MetricsSnapshot {
            shards: 0,
            connections: 0,
            connects_by_version: [0; 3],
            sessions: 0,
            packets_received: 0,
            packets_sent: 0,
            bytes_received: 0,
            bytes_sent: 0,
            publish_received: [0; 3],
            publish_received_bytes: [0; 3],
            publish_sent: [0; 3],
            publish_sent_bytes: [0; 3],
            drops: Drops::default(),
            limits: [0; Limit::ALL.len()],
            inflight: 0,
            queued: 0,
            queued_bytes: 0,
            retained: 0,
            subscriptions: 0,
            mesh_forwarded: 0,
            mesh_taken: 0,
            storage_records: 0,
            storage_flushes: 0,
            storage_stalls: 0,
            flush_micros: histogram(),
            flush_records: histogram(),
            mesh_batch: histogram(),
            busy: Vec::new(),
        }
    }
}

fn add3(a: &mut [u64; 3], b: &[u64; 3]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_add(*y);
    }
}

impl MetricsSnapshot {
    /// Reads a shard's counters (the gauges are the caller's to fill in).
    pub fn from_counters(traffic: &Traffic, limits: &crate::limit::LimitStats) -> Self {
        let get3 = |c: &[Cell<u64>; 3]| [c[0].get(), c[1].get(), c[2].get()];
        let mut counts = [0; Limit::ALL.len()];
        for (n, l) in counts.iter_mut().zip(Limit::ALL) {
            *n = limits.hits(l);
        }
        MetricsSnapshot {
            shards: 1,
            connects_by_version: get3(&traffic.connects),
            packets_received: traffic.packets_in.get(),
            packets_sent: traffic.packets_out.get(),
            bytes_received: traffic.bytes_in.get(),
            bytes_sent: traffic.bytes_out.get(),
            publish_received: get3(&traffic.publish_in),
            publish_received_bytes: get3(&traffic.publish_in_bytes),
            publish_sent: get3(&traffic.publish_out),
            publish_sent_bytes: get3(&traffic.publish_out_bytes),
            drops: Drops {
                queue_full: limits.hits(Limit::QueueFull),
                expired: traffic.expired.get(),
                too_large: traffic.too_large.get(),
                acl_denied: traffic.acl_denied.get(),
                rate_limit: limits.hits(Limit::PublishRateDisconnect),
                qos0_slow_client: limits.hits(Limit::Qos0SlowClient),
                qos0_shed: limits.hits(Limit::Qos0Shed),
            },
            limits: counts,
            queued_bytes: limits.queued_bytes() as u64,
            mesh_forwarded: traffic.mesh_forwarded.get(),
            mesh_taken: traffic.mesh_taken.get(),
            ..MetricsSnapshot::default()
        }
    }

    /// Adds `other` (another shard's snapshot, or a merge of several) into this one:
    /// counters and gauges are summed, histograms merged, busy ratios listed.
    pub fn merge(&mut self, other: &MetricsSnapshot) {
        self.shards += other.shards;
        self.connections += other.connections;
        add3(&mut self.connects_by_version, &other.connects_by_version);
        self.sessions += other.sessions;
        self.packets_received += other.packets_received;
        self.packets_sent += other.packets_sent;
        self.bytes_received += other.bytes_received;
        self.bytes_sent += other.bytes_sent;
        add3(&mut self.publish_received, &other.publish_received);
        add3(
            &mut self.publish_received_bytes,
            &other.publish_received_bytes,
        );
        add3(&mut self.publish_sent, &other.publish_sent);
        add3(&mut self.publish_sent_bytes, &other.publish_sent_bytes);
        let (d, o) = (&mut self.drops, &other.drops);
        d.queue_full += o.queue_full;
        d.expired += o.expired;
        d.too_large += o.too_large;
        d.acl_denied += o.acl_denied;
        d.rate_limit += o.rate_limit;
        d.qos0_slow_client += o.qos0_slow_client;
        d.qos0_shed += o.qos0_shed;
        for (x, y) in self.limits.iter_mut().zip(&other.limits) {
            *x += y;
        }
        self.inflight += other.inflight;
        self.queued += other.queued;
        self.queued_bytes += other.queued_bytes;
        self.retained += other.retained;
        self.subscriptions += other.subscriptions;
        self.mesh_forwarded += other.mesh_forwarded;
        self.mesh_taken += other.mesh_taken;
        self.storage_records += other.storage_records;
        self.storage_flushes += other.storage_flushes;
        self.storage_stalls += other.storage_stalls;
        // Both auto-resize, so adding cannot run out of range.
        let _ = self.flush_micros.add(&other.flush_micros);
        let _ = self.flush_records.add(&other.flush_records);
        let _ = self.mesh_batch.add(&other.mesh_batch);
        self.busy.extend_from_slice(&other.busy);
        self.busy.sort_by_key(|(id, _)| *id);
    }

    /// Connections accepted since start, every version.
    pub fn connects(&self) -> u64 {
        self.connects_by_version.iter().sum()
    }

    pub fn publish_received_total(&self) -> u64 {
        self.publish_received.iter().sum()
    }

    pub fn publish_sent_total(&self) -> u64 {
        self.publish_sent.iter().sum()
    }

    /// Forwarded messages in the data mesh (or waiting to enter a full channel) when the
    /// shards were asked; meaningful for a merge of every shard.
    pub fn mesh_queued(&self) -> u64 {
        self.mesh_forwarded.saturating_sub(self.mesh_taken)
    }

    /// The hits of one limit.
    pub fn limit(&self, limit: Limit) -> u64 {
        self.limits[limit as usize]
    }
}

/// One shard's busy ratio: the share of wall time its executor ran tasks or polled for
/// I/O (glommio's `executor_stats`, which resets on each read), measured between reads.
#[derive(Debug)]
pub struct Busy {
    since: Cell<std::time::Instant>,
    ratio: Cell<f64>,
}

impl Default for Busy {
    fn default() -> Self {
        Busy {
            since: Cell::new(std::time::Instant::now()),
            ratio: Cell::new(0.0),
        }
    }
}

impl Busy {
    /// The ratio since the previous call (the previous ratio if that was under 10 ms ago,
    /// too short to mean anything). Must run on the shard's executor thread.
    pub fn sample(&self) -> f64 {
        let now = std::time::Instant::now();
        let wall = now.duration_since(self.since.get());
        if wall < Duration::from_millis(10) {
            return self.ratio.get();
        }
        let ran = glommio::executor().executor_stats().total_runtime();
        self.since.set(now);
        let r = (ran.as_secs_f64() / wall.as_secs_f64()).clamp(0.0, 1.0);
        self.ratio.set(r);
        r
    }
}

/// Exponential moving averages of a per-minute rate over 1, 5 and 15 minutes, as
/// Mosquitto's `$SYS/broker/load/...` topics show them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

impl LoadAverage {
    /// Folds in `delta` events that happened over `elapsed`: each average moves towards
    /// the rate per minute of this interval by `1 - e^(-elapsed/window)`.
    pub fn update(&mut self, delta: u64, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if secs <= 0.0 {
            return;
        }
        let rate = delta as f64 * 60.0 / secs;
        for (avg, window) in [
            (&mut self.one, 60.0),
            (&mut self.five, 300.0),
            (&mut self.fifteen, 900.0),
        ] {
            let keep = (-secs / window).exp();
            *avg = rate + keep * (*avg - rate);
        }
    }
}

/// The `$SYS` publisher's memory between ticks: what the load averages and the maximum
/// need from the previous snapshot.
#[derive(Debug, Default)]
pub struct SysState {
    pub previous: Option<MetricsSnapshot>,
    /// Most clients seen connected at once, sampled at each tick.
    pub clients_maximum: u64,
    /// Load averages, in [`LOADS`] order.
    pub loads: [LoadAverage; LOADS.len()],
}

/// Reads one counter of a snapshot.
pub type Counter = fn(&MetricsSnapshot) -> u64;

/// The `$SYS/broker/load/...` series: topic part and the counter each averages.
pub const LOADS: [(&str, Counter); 8] = [
    ("messages/received", |s| s.packets_received),
    ("messages/sent", |s| s.packets_sent),
    ("publish/received", |s| s.publish_received_total()),
    ("publish/sent", |s| s.publish_sent_total()),
    ("publish/dropped", |s| s.drops.total()),
    ("bytes/received", |s| s.bytes_received),
    ("bytes/sent", |s| s.bytes_sent),
    ("connections", |s| s.connects()),
];

impl SysState {
    /// Folds in the snapshot taken `elapsed` after the previous one and returns every
    /// `$SYS` topic with its payload (text, as Mosquitto sends them).
    pub fn tick(
        &mut self,
        snap: MetricsSnapshot,
        elapsed: Duration,
        uptime: Duration,
    ) -> Vec<(String, String)> {
        self.clients_maximum = self.clients_maximum.max(snap.connections);
        // The first tick counts from the broker's start.
        let zero = MetricsSnapshot::default();
        let (prev, elapsed) = match &self.previous {
            Some(p) => (p, elapsed),
            None => (&zero, uptime),
        };
        for (avg, (_, counter)) in self.loads.iter_mut().zip(LOADS) {
            avg.update(counter(&snap).saturating_sub(counter(prev)), elapsed);
        }
        let topics = sys_topics(&snap, self, uptime);
        self.previous = Some(snap);
        topics
    }
}

/// The `$SYS/broker/...` topics and payloads for a merged snapshot.
fn sys_topics(s: &MetricsSnapshot, state: &SysState, uptime: Duration) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = Vec::new();
    let mut put = |topic: &str, value: String| t.push((format!("$SYS/broker/{topic}"), value));
    put(
        "version",
        format!("ringmq version {}", env!("CARGO_PKG_VERSION")),
    );
    put("uptime", format!("{} seconds", uptime.as_secs()));
    put("clients/connected", s.connections.to_string());
    put("clients/active", s.connections.to_string());
    put(
        "clients/disconnected",
        s.sessions.saturating_sub(s.connections).to_string(),
    );
    put("clients/total", s.sessions.to_string());
    put("clients/maximum", state.clients_maximum.to_string());
    put("messages/received", s.packets_received.to_string());
    put("messages/sent", s.packets_sent.to_string());
    put("messages/stored", (s.retained + s.queued).to_string());
    put("messages/inflight", s.inflight.to_string());
    put("store/messages/count", (s.retained + s.queued).to_string());
    put("bytes/received", s.bytes_received.to_string());
    put("bytes/sent", s.bytes_sent.to_string());
    put(
        "publish/messages/received",
        s.publish_received_total().to_string(),
    );
    put("publish/messages/sent", s.publish_sent_total().to_string());
    put("publish/messages/dropped", s.drops.total().to_string());
    put(
        "publish/bytes/received",
        s.publish_received_bytes.iter().sum::<u64>().to_string(),
    );
    put(
        "publish/bytes/sent",
        s.publish_sent_bytes.iter().sum::<u64>().to_string(),
    );
    put("retained messages/count", s.retained.to_string());
    put("subscriptions/count", s.subscriptions.to_string());
    for (avg, (name, _)) in state.loads.iter().zip(LOADS) {
        put(&format!("load/{name}/1min"), format!("{:.2}", avg.one));
        put(&format!("load/{name}/5min"), format!("{:.2}", avg.five));
        put(&format!("load/{name}/15min"), format!("{:.2}", avg.fifteen));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(n: u64, id: u16) -> MetricsSnapshot {
        let mut s = MetricsSnapshot {
            shards: 1,
            connections: n,
            connects_by_version: [n, 2 * n, 3 * n],
            publish_received: [n, 0, 1],
            retained: n,
            busy: vec![(id, 0.5)],
            ..MetricsSnapshot::default()
        };
        s.drops.expired = n;
        s.limits[Limit::QueueFull as usize] = n;
        s.flush_micros.saturating_record(100 * n);
        s
    }

    #[test]
    fn merge_sums_counters_and_histograms_and_lists_shards() {
        let mut all = MetricsSnapshot::default();
        for (id, n) in [(2, 3), (0, 1), (1, 2)] {
            all.merge(&shard(n, id));
        }
        assert_eq!(all.shards, 3);
        assert_eq!(all.connections, 6);
        assert_eq!(all.connects_by_version, [6, 12, 18]);
        assert_eq!(all.connects(), 36);
        assert_eq!(all.publish_received, [6, 0, 3]);
        assert_eq!(all.publish_received_total(), 9);
        assert_eq!(all.drops.expired, 6);
        assert_eq!(all.limit(Limit::QueueFull), 6);
        assert_eq!(all.retained, 6);
        assert_eq!(all.flush_micros.len(), 3);
        let h = &all.flush_micros;
        for v in [100, 200, 300] {
            assert_eq!(h.count_between(v, v), 1, "{v}");
        }
        assert_eq!(h.value_at_quantile(1.0), h.highest_equivalent(300));
        assert_eq!(all.busy.iter().map(|b| b.0).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn a_batch_is_a_run_of_messages_taken_without_waiting() {
        let b = BatchMeter::default();
        let (mut one, mut other) = (Batch::default(), Batch::default());
        // 3 without a wait, then a wait and 1, then a wait and 2 (still running); another
        // receiver's runs in between are its own.
        for waited in [true, false, false, true, true, false] {
            b.taken(&mut one, waited);
            b.taken(&mut other, true);
        }
        let h = b.get();
        assert_eq!(h.len(), 2 + 5);
        assert_eq!(h.count_between(3, 3), 1);
        assert_eq!(h.count_between(1, 1), 1 + 5);
    }

    #[test]
    fn load_average_converges_to_the_rate_like_an_exponential() {
        let mut l = LoadAverage::default();
        // 10 events every 10 s: 60 a minute.
        l.update(10, Duration::from_secs(10));
        let first = 60.0 * (1.0 - (-10.0f64 / 60.0).exp());
        assert!((l.one - first).abs() < 1e-9, "{}", l.one);
        assert!(l.five < l.one && l.fifteen < l.five);
        // 100 minutes.
        for _ in 0..600 {
            l.update(10, Duration::from_secs(10));
        }
        assert!((l.one - 60.0).abs() < 0.01, "{}", l.one);
        assert!((l.fifteen - 60.0).abs() < 1.0, "{}", l.fifteen);
        // Silence: decays towards 0, the 1-minute average fastest.
        l.update(0, Duration::from_secs(60));
        assert!((l.one - 60.0 * (-1.0f64).exp()).abs() < 0.01, "{}", l.one);
        assert!(l.fifteen > l.one);
        // No time passed: no change.
        let before = l;
        l.update(5, Duration::ZERO);
        assert_eq!(l, before);
    }

    #[test]
    fn sys_tick_publishes_mosquitto_names_and_rates_from_deltas() {
        let mut state = SysState::default();
        let mut a = MetricsSnapshot {
            connections: 4,
            sessions: 5,
            packets_received: 100,
            ..MetricsSnapshot::default()
        };
        a.publish_received = [10, 0, 0];
        let first = state.tick(a.clone(), Duration::from_secs(1), Duration::from_secs(7));
        let get = |t: &[(String, String)], k: &str| {
            t.iter()
                .find(|(n, _)| n == &format!("$SYS/broker/{k}"))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get(&first, "uptime").as_deref(), Some("7 seconds"));
        assert_eq!(get(&first, "clients/connected").as_deref(), Some("4"));
        assert_eq!(get(&first, "clients/disconnected").as_deref(), Some("1"));
        assert_eq!(get(&first, "messages/received").as_deref(), Some("100"));
        // The first tick counts from the start: 100 in 7 s.
        let rate = 100.0 * 60.0 / 7.0;
        let one = rate * (1.0 - (-7.0f64 / 60.0).exp());
        assert_eq!(
            get(&first, "load/messages/received/1min"),
            Some(format!("{one:.2}"))
        );
        assert!(get(&first, "version").is_some_and(|v| v.starts_with("ringmq version ")));
        a.packets_received = 160;
        a.connections = 2;
        let second = state.tick(a, Duration::from_secs(60), Duration::from_secs(67));
        // 60 in one minute: the 1-minute average moves 1 - 1/e of the way to 60.
        let expect = format!("{:.2}", 60.0 + (-1.0f64).exp() * (one - 60.0));
        assert_eq!(get(&second, "load/messages/received/1min"), Some(expect));
        assert_eq!(get(&second, "clients/maximum").as_deref(), Some("4"));
    }
}
