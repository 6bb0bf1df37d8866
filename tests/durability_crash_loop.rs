//! Crash loop: publishers and subscribers keep working, as real clients do, while the broker
//! is killed with `kill -9` at random moments and started again on the same data directory.
//! With `fsync = "always"` the promise is zero loss: every QoS 1/2 message whose PUBACK /
//! PUBREC reached its publisher reaches every persistent subscriber of its topic, and a QoS 2
//! message published at QoS 2 and subscribed at QoS 2 arrives exactly once
//! ([MQTT-4.3.3-2] (3.1.1) / [MQTT-4.3.3-10] (5.0) on the way in, [MQTT-4.4.0-1] on
//! resumption).
//!
//! - 4 shards, 1 MiB segments (so segments fill and roll over between crashes).
//! - Subscribers, persistent, created before anything is published: some stay offline until
//!   the end, some are online throughout and reconnect after each crash; 3.1.1 and 5.0, QoS
//!   1 and QoS 2 subscriptions, exact and wildcard filters.
//! - Publishers, persistent (so that QoS 2 flows can resume), one thread each, pipelined
//!   with a window of [`WINDOW`] unacknowledged PUBLISHes; payload `"<publisher> <seq>"`.
//!   After a crash they reconnect and resend as [MQTT-4.4.0-1] says: PUBLISH with DUP 1
//!   for what was not acknowledged, PUBREL for QoS 2 messages whose PUBREC had come.
//! - A controller kills the broker at moments drawn from a seeded PRNG (the seed is printed;
//!   `RINGMQ_CRASH_SEED` replays a schedule, though thread timing still varies).
//! - At the end publishing stops, the broker is killed and started one last time, and every
//!   subscriber drains its session with full acknowledgements until it has everything
//!   expected and then nothing more comes.
//!
//! Duplicates of QoS 1 messages are legal (a publisher resends what it has no PUBACK for)
//! and only counted. The test is bounded to about a minute in a debug build.

pub mod common;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use common::*;
use ringmq::protocol::{
    decode, Ack, Connect, Decoded, Packet, ProtocolVersion, Publish, QoS, MAX_PACKET_BYTES,
};

const SHARDS: usize = 4;

/// Crashes while clients work: at least [`CRASHES_MIN`], then more while the crash phase is
/// shorter than [`CRASH_PHASE`], at most [`CRASHES_MAX`] (17 crashes, 35 s for the whole
/// test, on a 2-core machine in a debug build). The final crash, after publishing stopped,
/// comes on top.
const CRASHES_MIN: usize = 5;
const CRASHES_MAX: usize = 20;
const CRASH_PHASE: Duration = Duration::from_secs(30);
/// Broker uptime before each crash, drawn uniformly from this range (milliseconds).
const UPTIME_MS: (u64, u64) = (500, 2000);
/// Time the broker stays down, drawn uniformly from this range (milliseconds).
const DOWNTIME_MS: (u64, u64) = (0, 300);

/// Unacknowledged PUBLISHes (and unanswered PUBRELs) one publisher keeps in flight.
const WINDOW: usize = 16;
/// Pace of one publisher, messages per second, so that traffic spans every crash (a
/// publisher that falls behind, e.g. while the broker is down, catches up within its window).
const PUBLISH_RATE: u64 = 400;
/// Messages one publisher sends at most, so the final drain stays short.
const SEQ_MAX: u64 = 20_000;

/// How long a client keeps retrying to reach the broker before the test fails.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(30);
/// After it has everything it expects, a draining subscriber waits this long for anything
/// more (a late duplicate) before it stops.
const DRAIN_QUIET: Duration = Duration::from_secs(1);
/// A draining subscriber still missing messages gives up after this long without a packet.
const DRAIN_GIVE_UP: Duration = Duration::from_secs(8);

const TOPICS: [&str; 2] = ["cl/t0", "cl/t1"];

/// Message `seq` of a publisher goes to `TOPICS[seq % 2]`.
fn topic_of(seq: u64) -> usize {
    (seq % TOPICS.len() as u64) as usize
}

/// splitmix64: small, seedable, good enough to scatter crash moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

// ---------------------------------------------------------------------------------------
// A connection that survives its broker: every failure is `Gone`, never a panic
// ---------------------------------------------------------------------------------------

/// The connection broke (the broker was killed, or is not up yet).
#[derive(Debug)]
struct Gone;

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    v: ProtocolVersion,
}

impl Conn {
    /// TCP connect, CONNECT, CONNACK; returns the connection and Session Present.
    fn open(addr: SocketAddr, connect: &Connect) -> Result<(Conn, bool), Gone> {
        let stream =
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(|_| Gone)?;
        stream.set_nodelay(true).map_err(|_| Gone)?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(|_| Gone)?;
        let mut conn = Conn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            v: connect.protocol,
        };
        conn.send(&Packet::Connect(Box::new(connect.clone())))?;
        match conn.recv(TIMEOUT)? {
            Some(Packet::ConnAck(ack)) if ack.reason.is_success() => {
                Ok((conn, ack.session_present))
            }
            Some(Packet::ConnAck(ack)) => {
                panic!("{:?}: CONNECT refused: {ack:?}", connect.client_id.as_str())
            }
            _ => Err(Gone),
        }
    }

    /// [`Conn::open`] until it works or `stop` is set (then `None`); fails the test after
    /// [`RECONNECT_DEADLINE`].
    fn open_retrying(
        addr: SocketAddr,
        connect: &Connect,
        stop: &AtomicBool,
    ) -> Option<(Conn, bool)> {
        let deadline = Instant::now() + RECONNECT_DEADLINE;
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Ok(opened) = Conn::open(addr, connect) {
                return Some(opened);
            }
            assert!(
                Instant::now() < deadline,
                "{:?} could not reconnect within {RECONNECT_DEADLINE:?}",
                connect.client_id.as_str()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, packet: &Packet) -> Result<(), Gone> {
        let bytes = encode(packet, self.v);
        self.stream.write_all(&bytes).map_err(|_| Gone)
    }

    /// The next packet, `None` when none arrives within `timeout`.
    fn recv(&mut self, timeout: Duration) -> Result<Option<Packet>, Gone> {
        let deadline = Instant::now() + timeout;
        loop {
            match decode(&mut self.buf, Some(self.v), MAX_PACKET_BYTES) {
                Ok(Decoded::Packet(Packet::Disconnect(_))) => return Err(Gone),
                Ok(Decoded::Packet(p)) => return Ok(Some(p)),
                Ok(Decoded::Incomplete { .. }) => {}
                Err(e) => panic!("the broker sent bytes that do not decode: {e}"),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some(deadline - now))
                .map_err(|_| Gone)?;
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(Gone),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(Gone),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Publishers
// ---------------------------------------------------------------------------------------

struct PublisherSpec {
    index: usize,
    client_id: String,
    v: ProtocolVersion,
    qos: QoS,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// PUBLISH sent; waiting for PUBACK / PUBREC.
    Published,
    /// QoS 2: PUBREC received, PUBREL sent; waiting for PUBCOMP.
    Released,
}

/// What a publisher did.
#[derive(Default)]
struct PublisherReport {
    /// Messages sent for the first time.
    published: u64,
    /// Sequence numbers whose PUBACK / PUBREC (success) came, in the order they came.
    acknowledged: Vec<u64>,
    /// PUBACK / PUBREC with a failure reason code (v5).
    refused: u64,
    reconnects: u32,
    /// Reconnections that found no session (Session Present 0).
    sessions_lost: u32,
    /// Acknowledgements for packet ids not in flight in the state they answer.
    unexpected_acks: Vec<String>,
}

fn publish_packet(spec: &PublisherSpec, seq: u64, id: u16, dup: bool) -> Packet {
    let mut p = publish(
        TOPICS[topic_of(seq)],
        format!("{} {seq}", spec.index).as_bytes(),
        spec.qos,
        id,
    );
    p.dup = dup;
    Packet::Publish(p)
}

/// Publishes `0..SEQ_MAX` until `stop`, resuming its session after every crash.
fn run_publisher(spec: PublisherSpec, addr: SocketAddr, stop: Arc<AtomicBool>) -> PublisherReport {
    let connect = connect_persistent(spec.v, &spec.client_id);
    let mut report = PublisherReport::default();
    // In the order first sent: packet id, seq, stage.
    let mut inflight: VecDeque<(u16, u64, Stage)> = VecDeque::new();
    let mut next_seq = 0;
    let mut last_id: u16 = 0;
    let mut first = true;
    let started = Instant::now();
    let due = |seq: u64| started + Duration::from_micros(seq * 1_000_000 / PUBLISH_RATE);
    'session: loop {
        let Some((mut conn, present)) = Conn::open_retrying(addr, &connect, &stop) else {
            return report;
        };
        if !first {
            report.reconnects += 1;
            if !present {
                report.sessions_lost += 1;
            }
        }
        first = false;
        for &(id, seq, stage) in &inflight {
            let resend = match stage {
                Stage::Published => publish_packet(&spec, seq, id, true),
                Stage::Released => Packet::PubRel(Ack::new(packet_id(id))),
            };
            if conn.send(&resend).is_err() {
                continue 'session;
            }
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return report;
            }
            while inflight.len() < WINDOW && next_seq < SEQ_MAX && Instant::now() >= due(next_seq) {
                let id = loop {
                    last_id = last_id.checked_add(1).unwrap_or(1);
                    if inflight.iter().all(|&(used, _, _)| used != last_id) {
                        break last_id;
                    }
                };
                inflight.push_back((id, next_seq, Stage::Published));
                report.published += 1;
                next_seq += 1;
                if conn
                    .send(&publish_packet(&spec, next_seq - 1, id, false))
                    .is_err()
                {
                    continue 'session;
                }
            }
            let packet = match conn.recv(Duration::from_millis(10)) {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(Gone) => continue 'session,
            };
            let (ack, answers) = match &packet {
                Packet::PubAck(a) if spec.qos == QoS::AtLeastOnce => (a, Stage::Published),
                Packet::PubRec(a) if spec.qos == QoS::ExactlyOnce => (a, Stage::Published),
                Packet::PubComp(a) if spec.qos == QoS::ExactlyOnce => (a, Stage::Released),
                other => {
                    report.unexpected_acks.push(format!("{other:?}"));
                    continue;
                }
            };
            let id = ack.packet_id.get();
            let Some(at) = inflight
                .iter()
                .position(|&(used, _, stage)| used == id && stage == answers)
            else {
                report.unexpected_acks.push(format!("{packet:?}"));
                continue;
            };
            let seq = inflight[at].1;
            match (&packet, ack.reason.is_success()) {
                (Packet::PubComp(_), _) => {
                    inflight.remove(at);
                }
                (_, false) => {
                    report.refused += 1;
                    inflight.remove(at);
                }
                (Packet::PubAck(_), true) => {
                    report.acknowledged.push(seq);
                    inflight.remove(at);
                }
                (_, true) => {
                    report.acknowledged.push(seq);
                    inflight[at].2 = Stage::Released;
                    if conn.send(&Packet::PubRel(Ack::new(ack.packet_id))).is_err() {
                        continue 'session;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Subscribers
// ---------------------------------------------------------------------------------------

struct SubscriberSpec {
    client_id: String,
    v: ProtocolVersion,
    granted: QoS,
    topic_filter: &'static str,
    /// Online while the broker crashes (else offline until the final drain).
    online: bool,
}

impl SubscriberSpec {
    fn matches(&self, topic: usize) -> bool {
        self.topic_filter == "cl/#" || self.topic_filter == TOPICS[topic]
    }
}

/// One arrival of a message at a subscriber.
struct Arrival {
    /// Connection number, 1 for the first.
    conn: u32,
    packet_id: u16,
    dup: bool,
}

/// A subscriber's client-side state, kept across connections like a real client's.
struct Subscriber {
    spec: SubscriberSpec,
    /// Messages handed to the application, in order: (publisher, seq).
    delivered: Vec<(usize, u64)>,
    /// How each message arrived each time it was handed over, for the report of duplicates.
    arrivals: HashMap<(usize, u64), Vec<Arrival>>,
    /// QoS 2 packet ids PUBREC'd and not yet released, with the message each carried: a
    /// PUBLISH with one of these ids is a resend, not a new message (method A, 4.3.3).
    awaiting_pubrel: HashMap<u16, (usize, u64)>,
    reconnects: u32,
    sessions_lost: u32,
    /// Resent QoS 2 PUBLISHes for an id awaiting PUBREL that carried another message.
    id_conflicts: Vec<String>,
    /// QoS 2 PUBLISHes resent (id awaiting PUBREL) without DUP 1 [MQTT-3.3.1-1].
    resent_without_dup: u32,
}

/// `"<publisher> <seq>"`.
fn parse_payload(p: &Publish) -> (usize, u64) {
    let text = String::from_utf8_lossy(&p.payload);
    let (who, seq) = text
        .split_once(' ')
        .unwrap_or_else(|| panic!("unexpected payload {text:?}"));
    (
        who.parse().expect("publisher index"),
        seq.parse().expect("sequence number"),
    )
}

impl Subscriber {
    fn new(spec: SubscriberSpec) -> Subscriber {
        Subscriber {
            spec,
            delivered: Vec::new(),
            arrivals: HashMap::new(),
            awaiting_pubrel: HashMap::new(),
            reconnects: 0,
            sessions_lost: 0,
            id_conflicts: Vec::new(),
            resent_without_dup: 0,
        }
    }

    fn connect(&self) -> Connect {
        connect_persistent(self.spec.v, &self.spec.client_id)
    }

    /// Connects and requires a session to resume.
    fn resume(&mut self, addr: SocketAddr, stop: &AtomicBool) -> Option<Conn> {
        let (conn, present) = Conn::open_retrying(addr, &self.connect(), stop)?;
        self.reconnects += 1;
        if !present {
            self.sessions_lost += 1;
        }
        Some(conn)
    }

    /// Hands `message` to the application.
    fn deliver(&mut self, message: (usize, u64), p: &Publish) {
        self.delivered.push(message);
        self.arrivals.entry(message).or_default().push(Arrival {
            conn: self.reconnects,
            packet_id: p.packet_id.map_or(0, |id| id.get()),
            dup: p.dup,
        });
    }

    /// Handles one packet from the broker as a client does, acknowledging it.
    fn handle(&mut self, conn: &mut Conn, packet: Packet) -> Result<(), Gone> {
        match packet {
            Packet::Publish(p) => {
                let message = parse_payload(&p);
                match (p.qos, p.packet_id) {
                    (QoS::AtMostOnce, _) => self.deliver(message, &p),
                    (QoS::AtLeastOnce, Some(id)) => {
                        self.deliver(message, &p);
                        conn.send(&Packet::PubAck(Ack::new(id)))?;
                    }
                    (QoS::ExactlyOnce, Some(id)) => {
                        match self.awaiting_pubrel.get(&id.get()) {
                            Some(&held) => {
                                if held != message {
                                    self.id_conflicts.push(format!(
                                        "id {} held {held:?}, resent PUBLISH carries {message:?}",
                                        id.get()
                                    ));
                                    self.deliver(message, &p);
                                }
                                if !p.dup {
                                    self.resent_without_dup += 1;
                                }
                            }
                            None => {
                                self.awaiting_pubrel.insert(id.get(), message);
                                self.deliver(message, &p);
                            }
                        }
                        conn.send(&Packet::PubRec(Ack::new(id)))?;
                    }
                    (q, None) => panic!("QoS {q:?} PUBLISH without a packet id: {p:?}"),
                }
            }
            Packet::PubRel(r) => {
                self.awaiting_pubrel.remove(&r.packet_id.get());
                conn.send(&Packet::PubComp(Ack::new(r.packet_id)))?;
            }
            Packet::PingResp => {}
            other => panic!("{}: unexpected {other:?}", self.spec.client_id),
        }
        Ok(())
    }

    /// Online while the broker crashes: receive and acknowledge until `stop`.
    fn consume(&mut self, addr: SocketAddr, stop: &AtomicBool) {
        'session: while let Some(mut conn) = self.resume(addr, stop) {
            while !stop.load(Ordering::Relaxed) {
                match conn.recv(Duration::from_millis(100)) {
                    Ok(Some(p)) => {
                        if self.handle(&mut conn, p).is_err() {
                            continue 'session;
                        }
                    }
                    Ok(None) => {}
                    Err(Gone) => continue 'session,
                }
            }
            return;
        }
    }

    /// After the last restart: receive and acknowledge until everything in `expected` has
    /// arrived and [`DRAIN_QUIET`] passes without a packet, or [`DRAIN_GIVE_UP`] passes
    /// without one while something is still missing.
    fn drain(&mut self, addr: SocketAddr, expected: &HashSet<(usize, u64)>) {
        let never = AtomicBool::new(false);
        let mut have: HashSet<(usize, u64)> = self.delivered.iter().copied().collect();
        let mut missing = expected.difference(&have).count();
        'session: while let Some(mut conn) = self.resume(addr, &never) {
            let mut silent_since = Instant::now();
            loop {
                match conn.recv(Duration::from_millis(100)) {
                    Ok(Some(p)) => {
                        let before = self.delivered.len();
                        if self.handle(&mut conn, p).is_err() {
                            continue 'session;
                        }
                        for m in &self.delivered[before..] {
                            if have.insert(*m) && expected.contains(m) {
                                missing -= 1;
                            }
                        }
                        silent_since = Instant::now();
                    }
                    Ok(None) => {
                        let limit = if missing == 0 {
                            DRAIN_QUIET
                        } else {
                            DRAIN_GIVE_UP
                        };
                        if silent_since.elapsed() >= limit {
                            return;
                        }
                    }
                    Err(Gone) => continue 'session,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

/// Sets the flag when dropped, so that client threads end even if the test panics.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn seed() -> u64 {
    match std::env::var("RINGMQ_CRASH_SEED") {
        Ok(s) => s.parse().expect("RINGMQ_CRASH_SEED is a u64"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

fn subscriber_specs() -> Vec<SubscriberSpec> {
    let on = |prefix: &str, shard: usize| client_id_on_shard(prefix, shard, SHARDS);
    let spec = |client_id, v, granted, topic_filter, online| SubscriberSpec {
        client_id,
        v,
        granted,
        topic_filter,
        online,
    };
    vec![
        spec(on("cl-off-a", 0), V311, QoS::AtLeastOnce, "cl/t0", false),
        spec(on("cl-off-b", 1), V5, QoS::ExactlyOnce, "cl/t0", false),
        spec(on("cl-off-c", 2), V311, QoS::ExactlyOnce, "cl/#", false),
        spec(on("cl-off-d", 3), V5, QoS::AtLeastOnce, "cl/t1", false),
        spec(on("cl-on-a", 1), V5, QoS::ExactlyOnce, "cl/#", true),
        spec(on("cl-on-b", 2), V311, QoS::AtLeastOnce, "cl/t1", true),
        spec(on("cl-on-c", 3), V311, QoS::ExactlyOnce, "cl/t1", true),
    ]
}

fn publisher_specs() -> Vec<PublisherSpec> {
    [
        (V311, QoS::AtLeastOnce),
        (V5, QoS::AtLeastOnce),
        (V311, QoS::ExactlyOnce),
        (V5, QoS::ExactlyOnce),
    ]
    .into_iter()
    .enumerate()
    .map(|(index, (v, qos))| PublisherSpec {
        index,
        client_id: client_id_on_shard(&format!("cl-pub{index}"), index % SHARDS, SHARDS),
        v,
        qos,
    })
    .collect()
}

// [MQTT-4.3.3-2] (3.1.1) / [MQTT-4.3.3-10] (5.0), [MQTT-4.4.0-1] (3.1.1) (5.0): see the
// module documentation.
#[test]
fn acknowledged_messages_survive_repeated_kill9_ringmq_only() {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let started = Instant::now();
    let seed = seed();
    eprintln!("crash loop seed {seed} (RINGMQ_CRASH_SEED={seed} replays the schedule)");
    let mut rng = Rng(seed);
    let mut broker = Broker::start(
        BrokerOptions::default()
            .shards(SHARDS)
            .storage("fsync = \"always\"\nsegment_bytes = 1048576")
            .config(
                "[limits]\npacket_bytes_max = 65536\nqueued_messages_max = 1000000\n\
                 queued_bytes_max = 1073741824",
                "",
            ),
    );
    let addr = broker.addr();

    // Every subscription exists before the first message is published.
    let mut subscribers: Vec<Subscriber> = subscriber_specs()
        .into_iter()
        .map(Subscriber::new)
        .collect();
    for s in &subscribers {
        let mut c = Client::connect(addr, s.connect());
        c.subscribe_one(s.spec.topic_filter, s.spec.granted);
        c.disconnect();
    }
    let publishers = publisher_specs();
    let publisher_qos: Vec<QoS> = publishers.iter().map(|p| p.qos).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let (online, mut offline): (Vec<Subscriber>, Vec<Subscriber>) =
        subscribers.drain(..).partition(|s| s.spec.online);
    let consumers: Vec<_> = online
        .into_iter()
        .map(|mut s| {
            let stop = stop.clone();
            thread::spawn(move || {
                s.consume(addr, &stop);
                s
            })
        })
        .collect();
    let producers: Vec<_> = publishers
        .into_iter()
        .map(|spec| {
            let stop = stop.clone();
            thread::spawn(move || run_publisher(spec, addr, stop))
        })
        .collect();

    let mut restart_times = Vec::new();
    for round in 0..CRASHES_MAX {
        if round >= CRASHES_MIN && started.elapsed() > CRASH_PHASE {
            break;
        }
        thread::sleep(Duration::from_millis(rng.between(UPTIME_MS)));
        broker.kill9();
        thread::sleep(Duration::from_millis(rng.between(DOWNTIME_MS)));
        let t = Instant::now();
        broker.restart();
        restart_times.push(t.elapsed());
        eprintln!(
            "crash {} at {:?}: back up in {:?}",
            round + 1,
            started.elapsed(),
            t.elapsed()
        );
    }
    thread::sleep(Duration::from_millis(rng.between(UPTIME_MS)));
    stop.store(true, Ordering::Relaxed);
    let reports: Vec<PublisherReport> = producers
        .into_iter()
        .map(|t| t.join().expect("publisher thread"))
        .collect();
    subscribers.extend(
        consumers
            .into_iter()
            .map(|t| t.join().expect("subscriber thread")),
    );
    subscribers.append(&mut offline);

    // The last crash, with nothing in progress, then the drain.
    broker.kill9();
    let t = Instant::now();
    broker.restart();
    restart_times.push(t.elapsed());
    let publishing_ended = started.elapsed();

    let acknowledged: Vec<HashSet<u64>> = reports
        .iter()
        .map(|r| r.acknowledged.iter().copied().collect())
        .collect();
    let drains: Vec<_> = subscribers
        .into_iter()
        .map(|mut s| {
            let expected: HashSet<(usize, u64)> = acknowledged
                .iter()
                .enumerate()
                .flat_map(|(p, seqs)| seqs.iter().map(move |&seq| (p, seq)))
                .filter(|&(_, seq)| s.spec.matches(topic_of(seq)))
                .collect();
            thread::spawn(move || {
                s.drain(addr, &expected);
                (s, expected)
            })
        })
        .collect();
    let drained: Vec<(Subscriber, HashSet<(usize, u64)>)> = drains
        .into_iter()
        .map(|t| t.join().expect("drain thread"))
        .collect();

    // Figures.
    let in_doubt: u64 = broker
        .log_tail(usize::MAX)
        .lines()
        .filter(|l| l.contains("in-doubt"))
        .filter_map(|l| l.split("messages=").nth(1))
        .filter_map(|n| n.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    eprintln!("broker log: in-doubt QoS 2 messages routed again at recovery: {in_doubt}");
    eprintln!(
        "restarts: {} (kill -9 each), back up in {:?}; publishing for {publishing_ended:?}, \
         total {:?}",
        restart_times.len(),
        restart_times,
        started.elapsed()
    );
    for (i, r) in reports.iter().enumerate() {
        eprintln!(
            "publisher {i} ({:?}): published {}, acknowledged {}, refused {}, reconnects {}, \
             sessions lost {}, unexpected acks {}",
            publisher_qos[i],
            r.published,
            r.acknowledged.len(),
            r.refused,
            r.reconnects,
            r.sessions_lost,
            r.unexpected_acks.len()
        );
    }
    let mut failures = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        if r.sessions_lost > 0 {
            failures.push(format!(
                "publisher {i}: session lost on {} of {} reconnections",
                r.sessions_lost, r.reconnects
            ));
        }
        if !r.unexpected_acks.is_empty() {
            failures.push(format!(
                "publisher {i}: acknowledgements for nothing in flight: {:?}",
                &r.unexpected_acks[..r.unexpected_acks.len().min(5)]
            ));
        }
        if r.refused > 0 {
            failures.push(format!("publisher {i}: {} messages refused", r.refused));
        }
    }
    for (s, expected) in &drained {
        let mut counts: BTreeMap<(usize, u64), u32> = BTreeMap::new();
        for m in &s.delivered {
            *counts.entry(*m).or_default() += 1;
        }
        let mut missing: Vec<(usize, u64)> = expected
            .iter()
            .filter(|m| !counts.contains_key(m))
            .copied()
            .collect();
        missing.sort_unstable();
        let duplicates: Vec<(usize, u64)> = counts
            .iter()
            .filter(|&(_, &n)| n > 1)
            .map(|(&m, _)| m)
            .collect();
        let qos2_duplicates: Vec<(usize, u64)> = duplicates
            .iter()
            .filter(|&&(p, _)| {
                s.spec.granted == QoS::ExactlyOnce && publisher_qos[p] == QoS::ExactlyOnce
            })
            .copied()
            .collect();
        eprintln!(
            "subscriber {} ({}, {:?}, {:?}, {}): expected {}, delivered {} ({} distinct), \
             missing {}, duplicates {} (QoS 2 end to end: {}), reconnects {}, sessions lost {}, \
             QoS 2 resent without DUP {}",
            s.spec.client_id,
            s.spec.v,
            s.spec.granted,
            s.spec.topic_filter,
            if s.spec.online { "online" } else { "offline" },
            expected.len(),
            s.delivered.len(),
            counts.len(),
            missing.len(),
            duplicates.len(),
            qos2_duplicates.len(),
            s.reconnects,
            s.sessions_lost,
            s.resent_without_dup
        );
        let who = &s.spec.client_id;
        if !missing.is_empty() {
            failures.push(format!(
                "{who}: {} acknowledged messages lost, first (publisher, seq): {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            ));
        }
        if !qos2_duplicates.is_empty() {
            let shown: Vec<String> = qos2_duplicates
                .iter()
                .take(8)
                .map(|m| {
                    let how: Vec<String> = s.arrivals[m]
                        .iter()
                        .map(|a| {
                            format!("conn {} id {} dup {}", a.conn, a.packet_id, u8::from(a.dup))
                        })
                        .collect();
                    format!("{m:?} [{}]", how.join("; "))
                })
                .collect();
            failures.push(format!(
                "{who}: {} QoS 2 messages (published and subscribed at QoS 2) delivered more \
                 than once; (publisher, seq) [each arrival]: {}",
                qos2_duplicates.len(),
                shown.join(", ")
            ));
        }
        if s.sessions_lost > 0 {
            failures.push(format!(
                "{who}: session lost on {} of {} reconnections",
                s.sessions_lost, s.reconnects
            ));
        }
        if !s.id_conflicts.is_empty() {
            failures.push(format!("{who}: {:?}", s.id_conflicts));
        }
    }
    assert!(
        failures.is_empty(),
        "crash loop (seed {seed}):\n  {}",
        failures.join("\n  ")
    );
}
