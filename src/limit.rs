//! Enforcing `[limits]` at run time: token buckets for rates, the slots that count open
//! connections, and [`LimitStats`], each shard's counters of every limit hit.
//!
//! The counters live in one place per shard so that logs (one `limits` line per shard at
//! shutdown) and metrics read the same numbers. Everything here is shard-local (`Cell`s
//! behind an `Rc`), except [`ListenerSlot`], which counts a listener's connections across
//! all shards and travels with a connection handed to another shard.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Limits, RateAction};

/// A token bucket: `rate` tokens a second, holding at most `capacity`; starts full.
///
/// [`TokenBucket::try_take`] refuses what is not there (for limits that refuse);
/// [`TokenBucket::take`] always takes and may leave a debt, which [`TokenBucket::ready_at`]
/// turns into the instant the balance is back at zero (for limits that slow a client down
/// instead: nothing is lost, the client waits).
///
/// # Invariants
/// `tokens <= capacity`; `rate > 0`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens refilled at `rate_per_sec` (both at least 1).
    pub fn new(rate_per_sec: u64, capacity: u64, now: Instant) -> Self {
        let rate = rate_per_sec.max(1) as f64;
        let capacity = capacity.max(1) as f64;
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.at = now;
    }

    /// Takes `n` tokens if there are that many; otherwise takes nothing.
    pub fn try_take(&mut self, n: u64, now: Instant) -> bool {
        self.refill(now);
        let n = n as f64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Whether `n` tokens are there (nothing is taken).
    pub fn has(&mut self, n: u64, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= n as f64
    }

    /// Takes `n` tokens, going into debt if there are fewer.
    pub fn take(&mut self, n: u64, now: Instant) {
        self.refill(now);
        self.tokens -= n as f64;
    }

    /// When the balance is back at zero, if it is in debt at `now`.
    pub fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        (self.tokens < 0.0).then(|| now + Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

/// What a client's PUBLISH does to its publish rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// Within the rate.
    Pass,
    /// Processed, and it put the client in debt: stop reading until [`PublishRate::resume_at`].
    Pause,
    /// Over the rate, with `publish_rate_action = "disconnect"`: not processed; the client is
    /// disconnected.
    Refuse,
}

/// One client's `limits.publish_messages_per_sec` and `publish_bytes_per_sec`, each a
/// token bucket holding one second's worth (the byte bucket at least one largest packet, so
/// that any accepted packet can pass).
#[derive(Debug, Clone)]
pub struct PublishRate {
    messages: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
    action: RateAction,
}

impl PublishRate {
    /// The rates `limits` sets for a client; `None` when both are off.
    pub fn new(limits: &Limits, now: Instant) -> Option<Box<Self>> {
        let per_sec = u64::from(limits.publish_messages_per_sec);
        let bytes_per_sec = limits.publish_bytes_per_sec;
        let messages = (per_sec > 0).then(|| TokenBucket::new(per_sec, per_sec, now));
        let bytes = (bytes_per_sec > 0).then(|| {
            let capacity = bytes_per_sec.max(u64::from(limits.packet_bytes_max));
            TokenBucket::new(bytes_per_sec, capacity, now)
        });
        (messages.is_some() || bytes.is_some()).then(|| {
            Box::new(PublishRate {
                messages,
                bytes,
                action: limits.publish_rate_action,
            })
        })
    }

    /// Accounts for a PUBLISH packet of `len` bytes.
    pub fn on_publish(&mut self, len: usize, now: Instant) -> RateVerdict {
        let len = len as u64;
        match self.action {
            RateAction::Disconnect => {
                let room = self.messages.as_mut().map_or(true, |b| b.has(1, now))
                    && self.bytes.as_mut().map_or(true, |b| b.has(len, now));
                if !room {
                    return RateVerdict::Refuse;
                }
                self.take(len, now);
                RateVerdict::Pass
            }
            RateAction::Throttle => {
                self.take(len, now);
                if self.resume_at(now).is_some() {
                    RateVerdict::Pause
                } else {
                    RateVerdict::Pass
                }
            }
        }
    }

    fn take(&mut self, len: u64, now: Instant) {
        if let Some(b) = &mut self.messages {
            b.take(1, now);
        }
        if let Some(b) = &mut self.bytes {
            b.take(len, now);
        }
    }

    /// When a throttled client may be read again; `None` if it is not in debt.
    pub fn resume_at(&mut self, now: Instant) -> Option<Instant> {
        let m = self.messages.as_mut().and_then(|b| b.ready_at(now));
        let b = self.bytes.as_mut().and_then(|b| b.ready_at(now));
        m.max(b)
    }
}

/// Each limit whose hits are counted. The names are what the `limits` log line (and later
/// the metrics) call them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A connection closed at accept: its listener had `max_connections` open.
    ListenerConnections,
    /// A connection closed at accept (or refused after hand-off with CONNACK 0x97 / 0x03):
    /// the shard had `limits.connections_per_shard_max` open.
    ShardConnections,
    /// A connection closed at accept: over `limits.connects_per_sec_max`.
    ConnectRate,
    /// A socket closed without a complete CONNECT within `limits.connect_timeout_secs`.
    ConnectTimeout,
    /// A connection closed with a packet begun and not completed within
    /// `limits.packet_timeout_secs`.
    PacketTimeout,
    /// A packet larger than `limits.packet_bytes_max` (v5 DISCONNECT 0x95).
    PacketTooLarge,
    /// A client disconnected (0x96) for publishing faster than
    /// `limits.publish_messages_per_sec` / `publish_bytes_per_sec`.
    PublishRateDisconnect,
    /// A client's reading paused because it published faster than the limits allow
    /// (`publish_rate_action = "throttle"`).
    PublishThrottle,
    /// A PUBLISH topic over `limits.topic_bytes_max` / `topic_levels_max` (0x90).
    TopicTooLong,
    /// A SUBSCRIBE filter over `limits.topic_bytes_max` / `topic_levels_max` (0x8F).
    FilterTooLong,
    /// A subscription refused at `limits.subscriptions_per_client_max` (0x97).
    SubscriptionQuota,
    /// A client with more QoS 1/2 PUBLISHes unacknowledged than `limits.inflight_count_max`
    /// (0x93).
    ReceiveMaximum,
    /// A client id longer than `limits.client_id_bytes_max` (CONNACK 0x85 / 0x02).
    ClientIdTooLong,
    /// A QoS 1/2 delivery not queued: the session's queue was at `limits.queued_messages_max`
    /// or `queued_bytes_max`.
    QueueFull,
    /// A QoS 0 delivery dropped: the client's write buffer was past `write_buffer_bytes`.
    Qos0SlowClient,
    /// A QoS 0 delivery shed: the shard's queued bytes were above its share of
    /// `limits.memory_high_water_bytes`.
    Qos0Shed,
    /// A connection closed on a `proxy_protocol` listener: no valid PROXY header first.
    BadProxyHeader,
}

impl Limit {
    /// Every counted limit, in the order of the log line.
    pub const ALL: [Limit; 17] = [
        Limit::ListenerConnections,
        Limit::ShardConnections,
        Limit::ConnectRate,
        Limit::ConnectTimeout,
        Limit::PacketTimeout,
        Limit::PacketTooLarge,
        Limit::PublishRateDisconnect,
        Limit::PublishThrottle,
        Limit::TopicTooLong,
        Limit::FilterTooLong,
        Limit::SubscriptionQuota,
        Limit::ReceiveMaximum,
        Limit::ClientIdTooLong,
        Limit::QueueFull,
        Limit::Qos0SlowClient,
        Limit::Qos0Shed,
        Limit::BadProxyHeader,
    ];

    /// The counter's name.
    pub const fn name(self) -> &'static str {
        match self {
            Limit::ListenerConnections => "refused_listener_connections",
            Limit::ShardConnections => "refused_shard_connections",
            Limit::ConnectRate => "refused_connect_rate",
            Limit::ConnectTimeout => "connect_timeouts",
            Limit::PacketTimeout => "packet_timeouts",
            Limit::PacketTooLarge => "packets_too_large",
            Limit::PublishRateDisconnect => "publish_rate_disconnects",
            Limit::PublishThrottle => "publish_throttles",
            Limit::TopicTooLong => "topics_too_long",
            Limit::FilterTooLong => "filters_too_long",
            Limit::SubscriptionQuota => "subscriptions_over_quota",
            Limit::ReceiveMaximum => "receive_maximum_exceeded",
            Limit::ClientIdTooLong => "client_ids_too_long",
            Limit::QueueFull => "queue_full_drops",
            Limit::Qos0SlowClient => "qos0_slow_client_drops",
            Limit::Qos0Shed => "qos0_memory_sheds",
            Limit::BadProxyHeader => "bad_proxy_headers",
        }
    }
}

/// One shard's counters of limits hit, its open connections, and the bytes of messages it
/// holds queued in memory (the gauge the memory high-water mark is checked against).
///
/// **What `queued_bytes` counts**: the payload and topic bytes of every QoS 1/2 delivery
/// waiting in a session's in-memory queue (once per session, so a message queued for N
/// sessions counts N times although its bytes are shared), and the encoded bytes waiting in
/// every connection's outbox (any packet, any QoS). **What it does not count**: messages in
/// flight (sent, not yet acknowledged; at most `inflight_count_max` per session), a batch
/// being written to a socket, read buffers, retained messages, queues of persistent
/// sessions (on disk), the mesh channels, and the sessions' own structures.
///
/// # Invariants
/// `queued_bytes` is the sum over this shard's sessions and outboxes of what they hold
/// (each adds what it takes in and subtracts what it lets go, and its `Drop` subtracts the
/// rest); `connections` is the number of live [`ShardSlot`]s.
#[derive(Debug, Default)]
pub struct LimitStats {
    hits: [Cell<u64>; Limit::ALL.len()],
    connections: Cell<usize>,
    queued_bytes: Cell<usize>,
    queued_bytes_peak: Cell<usize>,
    /// This shard's share of `limits.memory_high_water_bytes`; 0: no mark.
    high_water_bytes: usize,
    /// The shard's traffic counters (metrics), here because every session and outbox
    /// already holds this `Rc`.
    pub traffic: crate::metrics::Traffic,
}

impl LimitStats {
    /// Counters for a shard whose queued memory above `high_water_bytes` sheds QoS 0
    /// deliveries (0: never).
    pub fn new(high_water_bytes: usize) -> Self {
        LimitStats {
            high_water_bytes,
            ..LimitStats::default()
        }
    }

    /// Counts one hit of `limit`; returns the count so far.
    pub fn hit(&self, limit: Limit) -> u64 {
        let cell = &self.hits[limit as usize];
        let n = cell.get() + 1;
        cell.set(n);
        n
    }

    /// Hits of `limit` so far.
    pub fn hits(&self, limit: Limit) -> u64 {
        self.hits[limit as usize].get()
    }

    /// Every counter with its name, in [`Limit::ALL`] order.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Limit::ALL.iter().map(|l| (l.name(), self.hits(*l)))
    }

    /// Connections open on this shard (CONNECT phase included).
    pub fn connections(&self) -> usize {
        self.connections.get()
    }

    /// A slot for one more connection, unless `max` are open.
    pub fn connection_slot(self: &Rc<Self>, max: usize) -> Option<ShardSlot> {
        if self.connections.get() >= max {
            return None;
        }
        self.connections.set(self.connections.get() + 1);
        Some(ShardSlot(self.clone()))
    }

    /// `bytes` more are queued in memory.
    pub fn queued_add(&self, bytes: usize) {
        let now = self.queued_bytes.get() + bytes;
        self.queued_bytes.set(now);
        if now > self.queued_bytes_peak.get() {
            self.queued_bytes_peak.set(now);
        }
    }

    /// `bytes` that were queued are gone (sent or dropped).
    pub fn queued_sub(&self, bytes: usize) {
        self.queued_bytes
            .set(self.queued_bytes.get().saturating_sub(bytes));
    }

    /// Bytes queued in memory on this shard now (see the type's doc for what counts).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.get()
    }

    /// The most bytes queued at once since start.
    pub fn queued_bytes_peak(&self) -> usize {
        self.queued_bytes_peak.get()
    }

    /// Whether queued memory is above the high-water mark: QoS 0 deliveries are shed.
    pub fn over_high_water(&self) -> bool {
        self.high_water_bytes > 0 && self.queued_bytes.get() > self.high_water_bytes
    }
}

/// Whether the `n`th hit of a limit is worth a log line: the first, then every 10,000th,
/// so a flood is seen without drowning the log.
pub fn worth_logging(n: u64) -> bool {
    n == 1 || n % 10_000 == 0
}

/// One open connection of a shard; dropping it frees the slot.
#[derive(Debug)]
pub struct ShardSlot(Rc<LimitStats>);

impl Drop for ShardSlot {
    fn drop(&mut self) {
        let c = &self.0.connections;
        c.set(c.get().saturating_sub(1));
    }
}

/// Open connections of one listener, across every shard.
#[derive(Debug, Default)]
pub struct ListenerCount(AtomicUsize);

impl ListenerCount {
    /// A slot for one more connection, unless `max` are open.
    pub fn slot(self: &Arc<Self>, max: usize) -> Option<ListenerSlot> {
        // Taken first, then checked: two shards racing for the last slot cannot both win.
        if self.0.fetch_add(1, Ordering::AcqRel) >= max {
            self.0.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ListenerSlot(self.clone()))
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// One open connection of a listener; dropping it frees the slot. `Send`: it goes with a
/// connection handed to its home shard.
#[derive(Debug)]
pub struct ListenerSlot(Arc<ListenerCount>);

impl Drop for ListenerSlot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_starts_full_and_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        for _ in 0..5 {
            assert!(b.try_take(1, t0));
        }
        assert!(!b.try_take(1, t0), "empty after its capacity");
        assert!(!b.try_take(1, t0 + Duration::from_millis(50)));
        assert!(
            b.try_take(1, t0 + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        // Never more than its capacity, however long it waits.
        let later = t0 + Duration::from_secs(60);
        assert!(b.try_take(5, later));
        assert!(!b.try_take(1, later));
    }

    #[test]
    fn a_refused_take_takes_nothing() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 100, t0);
        assert!(!b.try_take(101, t0));
        assert!(b.try_take(100, t0));
    }

    #[test]
    fn a_debt_says_when_it_is_paid() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 1000, t0);
        b.take(1500, t0);
        let ready = b.ready_at(t0).expect("in debt");
        assert_eq!(ready - t0, Duration::from_millis(500));
        assert_eq!(b.ready_at(ready), None, "paid at the instant it said");
        b.take(1, t0);
        assert!(b.try_take(0, ready));
    }

    fn rate(messages: u32, bytes: u64, action: RateAction) -> Box<PublishRate> {
        let limits = Limits {
            publish_messages_per_sec: messages,
            publish_bytes_per_sec: bytes,
            publish_rate_action: action,
            packet_bytes_max: 100,
            ..Limits::default()
        };
        PublishRate::new(&limits, Instant::now()).expect("a rate is on")
    }

    #[test]
    fn no_rate_means_no_bucket() {
        assert!(PublishRate::new(&Limits::default(), Instant::now()).is_none());
    }

    #[test]
    fn disconnect_refuses_the_publish_over_the_rate_and_takes_nothing() {
        let t0 = Instant::now();
        let mut r = rate(2, 0, RateAction::Disconnect);
        assert_eq!(r.on_publish(10, t0), RateVerdict::Pass);
        assert_eq!(r.on_publish(10, t0), RateVerdict::Pass);
        assert_eq!(r.on_publish(10, t0), RateVerdict::Refuse);
        assert_eq!(r.resume_at(t0), None, "a refusal leaves no debt");
        assert_eq!(
            r.on_publish(10, t0 + Duration::from_millis(500)),
            RateVerdict::Pass
        );
    }

    #[test]
    fn the_byte_bucket_holds_at_least_one_largest_packet() {
        let t0 = Instant::now();
        // 10 bytes a second, but a 100-byte packet (packet_bytes_max) still passes once.
        let mut r = rate(0, 10, RateAction::Disconnect);
        assert_eq!(r.on_publish(100, t0), RateVerdict::Pass);
        assert_eq!(r.on_publish(1, t0), RateVerdict::Refuse);
        assert_eq!(
            r.on_publish(10, t0 + Duration::from_secs(1)),
            RateVerdict::Pass
        );
    }

    #[test]
    fn throttle_processes_everything_and_pauses_until_the_debt_is_paid() {
        let t0 = Instant::now();
        let mut r = rate(10, 0, RateAction::Throttle);
        for _ in 0..9 {
            assert_eq!(r.on_publish(1, t0), RateVerdict::Pass);
        }
        assert_eq!(
            r.on_publish(1, t0),
            RateVerdict::Pass,
            "the tenth empties it"
        );
        assert_eq!(r.on_publish(1, t0), RateVerdict::Pause);
        assert_eq!(r.on_publish(1, t0), RateVerdict::Pause);
        let resume = r.resume_at(t0).expect("in debt");
        assert_eq!(resume - t0, Duration::from_millis(200));
        assert_eq!(r.resume_at(resume), None);
    }

    #[test]
    fn stats_count_each_limit_under_its_name() {
        let s = LimitStats::default();
        assert_eq!(s.hit(Limit::PacketTooLarge), 1);
        assert_eq!(s.hit(Limit::PacketTooLarge), 2);
        s.hit(Limit::Qos0Shed);
        let counts: Vec<_> = s.counts().filter(|(_, n)| *n > 0).collect();
        assert_eq!(counts, [("packets_too_large", 2), ("qos0_memory_sheds", 1)]);
        assert_eq!(s.counts().count(), Limit::ALL.len());
        for (i, l) in Limit::ALL.iter().enumerate() {
            assert_eq!(*l as usize, i, "ALL is in declaration order");
        }
    }

    #[test]
    fn the_high_water_mark_is_crossed_above_it_and_off_at_zero() {
        let s = LimitStats::new(100);
        s.queued_add(100);
        assert!(!s.over_high_water());
        s.queued_add(1);
        assert!(s.over_high_water());
        s.queued_sub(50);
        assert!(!s.over_high_water());
        assert_eq!((s.queued_bytes(), s.queued_bytes_peak()), (51, 101));
        let off = LimitStats::new(0);
        off.queued_add(usize::MAX / 2);
        assert!(!off.over_high_water());
    }

    #[test]
    fn shard_slots_count_open_connections_up_to_the_maximum() {
        let s = Rc::new(LimitStats::default());
        let a = s.connection_slot(2).expect("first");
        let b = s.connection_slot(2).expect("second");
        assert!(s.connection_slot(2).is_none(), "third refused");
        drop(a);
        assert_eq!(s.connections(), 1);
        let _c = s.connection_slot(2).expect("room again");
        drop(b);
        assert_eq!(s.connections(), 1);
    }

    #[test]
    fn listener_slots_are_shared_across_threads_up_to_the_maximum() {
        let count = Arc::new(ListenerCount::default());
        let slots: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..10).filter_map(|_| count.slot(25)).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("thread"))
                .collect()
        });
        assert_eq!(slots.len(), 25, "exactly the maximum granted");
        assert_eq!(count.open(), 25);
        drop(slots);
        assert_eq!(count.open(), 0);
    }
}
