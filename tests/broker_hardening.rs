//! Hardening: 200 hostile connections (random bytes, half CONNECTs and half packets left
//! hanging, oversized, malformed and out-of-order packets, floods, subscription floods,
//! random scripts of valid and invalid packets) against a two-shard broker while 10
//! well-behaved clients exchange QoS 1 messages. The good clients must lose nothing (every
//! message of every publisher, in order), each hostile connection must end the way the
//! limits say, and the broker must stay up and serve afterwards. The figures are printed
//! (`cargo test --test broker_hardening -- --nocapture`).

pub mod common;
pub mod hostile;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ringmq::protocol::{Ack, Packet, ProtocolVersion, QoS};

const GOOD_CLIENTS: usize = 10;
/// QoS 1 messages each good client publishes at least (it goes on while hostile
/// connections are at work); each receives what all of them publish.
const GOOD_MESSAGES: usize = 200;
/// How often a good client publishes.
const GOOD_PACE: Duration = Duration::from_millis(5);
/// Unacknowledged QoS 1 PUBLISHes a good client keeps in flight.
const GOOD_WINDOW: usize = 8;
const HOSTILE_CONNECTIONS: usize = 200;
const HOSTILE_THREADS: usize = 4;
/// How the hostile connections are split: connection `k` is of kind `k % KINDS`.
const KINDS: usize = 10;

const CONFIG: &str = "[limits]\n\
    packet_bytes_max = 65536\n\
    queued_bytes_max = 1048576\n\
    connect_timeout_secs = 2\n\
    packet_timeout_secs = 2\n\
    publish_messages_per_sec = 2000\n\
    subscriptions_per_client_max = 64\n\
    memory_high_water_bytes = 8388608\n";

/// A deterministic pseudo-random sequence (xorshift64*), so that a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What the hostile side did, summed over its threads.
#[derive(Default)]
struct Figures {
    connections: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
    closed_by_broker: AtomicU64,
    oversized: AtomicU64,
    half_connects: AtomicU64,
    half_packets: AtomicU64,
}

impl Figures {
    fn sent(&self, packets: u64, bytes: usize) {
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

fn open(addr: SocketAddr, figures: &Figures) -> TcpStream {
    figures.connections.fetch_add(1, Ordering::Relaxed);
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("the broker accepts connections");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn send(s: &mut TcpStream, bytes: &[u8], packets: u64, figures: &Figures) {
    // The broker may have closed already (that is what most of these provoke).
    if s.write_all(bytes).is_ok() {
        figures.sent(packets, bytes.len());
    }
}

/// Reads until the broker closes the connection, at most `limit`; returns what it sent.
/// A connection still open after `limit` fails the test.
fn until_closed(s: &mut TcpStream, limit: Duration, what: &str) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{what}: still open after {limit:?}");
        s.set_read_timeout(Some(left)).expect("read timeout");
        match s.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{what}: still open after {limit:?}")
            }
            Err(_) => return got,
        }
    }
}

fn connect_bytes(v: ProtocolVersion, id: &str, keep_alive: u16) -> Vec<u8> {
    let mut c = connect(v, id);
    c.keep_alive = keep_alive;
    encode(&Packet::Connect(Box::new(c)), v)
}

/// CONNECT and read its CONNACK (accepted).
fn connected(addr: SocketAddr, v: ProtocolVersion, id: &str, figures: &Figures) -> TcpStream {
    let mut s = open(addr, figures);
    send(&mut s, &connect_bytes(v, id, 0), 1, figures);
    s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    let mut head = [0u8; 2];
    s.read_exact(&mut head).expect("CONNACK");
    let mut rest = vec![0u8; usize::from(head[1])];
    s.read_exact(&mut rest).expect("CONNACK");
    assert_eq!(
        (head[0], rest.get(1)),
        (0x20, Some(&0)),
        "{id}: CONNACK accepted"
    );
    s
}

/// Malformed packets after a good CONNECT (each closes the connection).
const MALFORMED: [&str; 6] = [
    "36 06 00 01 61 00 01 78", // PUBLISH with QoS 3
    "30 03 00 09 61",          // topic length past the packet
    "30 05 00 02 61 ff 78",    // invalid UTF-8 in the topic
    "80 06 00 01 00 01 61 00", // SUBSCRIBE with flags 0000
    "82 06 00 01 00 01 61 c1", // reserved subscription option bits
    "30 ff ff ff ff 01",       // five-byte remaining length
];

/// Connections that must be closed by the broker later: (stream, opened at, limit, what).
type Hanging = Vec<(TcpStream, Instant, Duration, String)>;

/// One hostile connection of kind `k % KINDS`.
fn hostile(addr: SocketAddr, k: usize, rng: &mut Rng, figures: &Figures, hanging: &mut Hanging) {
    let v = if k % 3 == 0 { V5 } else { V311 };
    let id = format!("hostile-{k}");
    let close = Duration::from_secs(5);
    match k % KINDS {
        // Random bytes instead of a CONNECT: closed (at once, or at the CONNECT timeout
        // if they happen to look like the start of one).
        0 => {
            let mut s = open(addr, figures);
            send(&mut s, &rng.bytes(64), 1, figures);
            hanging.push((s, Instant::now(), close, format!("{id}: random bytes")));
        }
        // Half a CONNECT, left hanging: closed at limits.connect_timeout_secs.
        1 => {
            let mut s = open(addr, figures);
            let c = connect_bytes(v, &id, 0);
            send(&mut s, &c[..c.len() / 2], 1, figures);
            figures.half_connects.fetch_add(1, Ordering::Relaxed);
            hanging.push((s, Instant::now(), close, format!("{id}: half CONNECT")));
        }
        // Half a PUBLISH, left hanging (no keep-alive): closed at packet_timeout_secs.
        2 => {
            let mut s = connected(addr, v, &id, figures);
            let p = publish_bytes(v, 0x30, "slow/loris", None, &[b's'; 200]);
            send(&mut s, &p[..p.len() / 3], 1, figures);
            figures.half_packets.fetch_add(1, Ordering::Relaxed);
            hanging.push((s, Instant::now(), close, format!("{id}: half PUBLISH")));
        }
        // A fixed header announcing 100 MB: v5 DISCONNECT 0x95, v3 close.
        3 => {
            let mut s = connected(addr, v, &id, figures);
            send(&mut s, &hex("30 80 80 80 30 00 01 61"), 1, figures);
            figures.oversized.fetch_add(1, Ordering::Relaxed);
            let got = until_closed(&mut s, close, &id);
            figures.closed_by_broker.fetch_add(1, Ordering::Relaxed);
            if v.is_v5() {
                assert!(
                    got.len() >= 3 && got[0] == 0xe0 && got[2] == 0x95,
                    "{id}: DISCONNECT 0x95, got {got:02x?}"
                );
            } else {
                assert!(got.is_empty(), "{id}: v3 closes without a word: {got:02x?}");
            }
        }
        // A malformed packet: closed.
        4 => {
            let mut s = connected(addr, v, &id, figures);
            let bad = hex(MALFORMED[k / KINDS % MALFORMED.len()]);
            send(&mut s, &bad, 1, figures);
            until_closed(&mut s, close, &id);
            figures.closed_by_broker.fetch_add(1, Ordering::Relaxed);
        }
        // Out of order: acknowledgements of nothing, a SUBACK from the client, a second
        // CONNECT (closed at the latest there); or a PUBLISH before CONNECT.
        5 => {
            if k / KINDS % 2 == 0 {
                let mut s = connected(addr, v, &id, figures);
                let junk = hex("40 02 00 07 62 02 00 08 70 02 00 09 50 02 00 0a 90 03 00 01 00");
                send(&mut s, &junk, 5, figures);
                send(&mut s, &connect_bytes(v, &id, 0), 1, figures);
                until_closed(&mut s, close, &id);
            } else {
                let mut s = open(addr, figures);
                send(
                    &mut s,
                    &publish_bytes(v, 0x30, "early", None, b"x"),
                    1,
                    figures,
                );
                until_closed(&mut s, close, &id);
            }
            figures.closed_by_broker.fetch_add(1, Ordering::Relaxed);
        }
        // A flood of 2,500 QoS 0 messages of 1 KB (past the burst of
        // publish_messages_per_sec: throttled), to a subscriber that never reads (its
        // outgoing buffer fills, then QoS 0 is dropped for it).
        6 => {
            let topic = format!("flood/{k}");
            let mut sink = connected(addr, v, &format!("{id}-sink"), figures);
            let mut body = hex("00 01");
            if v.is_v5() {
                body.push(0);
            }
            body.extend(string_field(topic.as_bytes()));
            body.push(0);
            send(&mut sink, &frame(0x82, &body), 1, figures);
            let mut s = connected(addr, v, &id, figures);
            let one = publish_bytes(v, 0x30, &topic, None, &[b'f'; 1024]);
            let burst: Vec<u8> = one.iter().copied().cycle().take(one.len() * 100).collect();
            for _ in 0..25 {
                send(&mut s, &burst, 100, figures);
            }
            drop(sink);
        }
        // A subscription flood: 200 filters in one SUBSCRIBE (past the quota of 64).
        7 => {
            let mut s = connected(addr, v, &id, figures);
            let mut body = hex("00 01");
            if v.is_v5() {
                body.push(0);
            }
            for n in 0..200 {
                body.extend(string_field(format!("sub/{k}/{n}").as_bytes()));
                body.push(1);
            }
            send(&mut s, &frame(0x82, &body), 1, figures);
            s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
            let mut head = [0u8; 1];
            s.read_exact(&mut head).expect("SUBACK");
            assert_eq!(head[0], 0x90, "{id}: SUBACK");
        }
        // Random scripts of valid and invalid packets, with the handler fuzz invariants.
        _ => {
            let script = hostile::Script::from_bytes(&rng.bytes(300));
            match hostile::run_script(addr, &script, &format!("hardening-{k}")) {
                Ok(o) => {
                    figures
                        .connections
                        .fetch_add(o.connections, Ordering::Relaxed);
                    figures.sent(o.packets_sent, o.bytes_sent as usize);
                    figures
                        .closed_by_broker
                        .fetch_add(o.closed_by_server, Ordering::Relaxed);
                }
                Err(v) => panic!("{v}\nscript: {script:#?}"),
            }
        }
    }
}

/// A well-behaved client: subscribes to everything the good clients publish; publishes
/// QoS 1 messages (one every GOOD_PACE, at most GOOD_WINDOW unacknowledged) for as long as
/// the hostile connections are at work and at least GOOD_MESSAGES, then says how many in
/// `finals`; acknowledges everything, and returns once it has every message of every good
/// client: per publisher, the sequence numbers it received, in order, and when it was done.
fn good_client(addr: SocketAddr, me: usize, shared: &Good) -> (Vec<Vec<usize>>, Instant) {
    let v = if me % 2 == 0 { V5 } else { V311 };
    let mut c = Client::connect(addr, connect(v, &format!("good-{me}")));
    c.subscribe_one("good/+", qos(1));
    shared.start.wait();
    let began = Instant::now();
    let mut received = vec![Vec::new(); GOOD_CLIENTS];
    let mut unique = [0usize; GOOD_CLIENTS];
    let (mut sent, mut acked) = (0usize, 0usize);
    let deadline = began + Duration::from_secs(60);
    loop {
        let finals: Vec<usize> = shared
            .finals
            .iter()
            .map(|f| f.load(Ordering::Acquire))
            .collect();
        if finals[me] == usize::MAX {
            let due = (began.elapsed().as_micros() / GOOD_PACE.as_micros()) as usize + 1;
            while sent < due && sent - acked < GOOD_WINDOW {
                let id = (sent % 60_000 + 1) as u16;
                let payload = format!("{me}:{sent}");
                let p = publish(&format!("good/{me}"), payload.as_bytes(), qos(1), id);
                c.send_mqtt(&Packet::Publish(p));
                sent += 1;
            }
            let hostile_done = shared.hostile_done.load(Ordering::Acquire);
            if hostile_done && sent >= GOOD_MESSAGES && acked == sent {
                shared.finals[me].store(sent, Ordering::Release);
            }
        } else if finals.iter().zip(&unique).all(|(f, u)| f == u) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "good-{me}: {acked} of {sent} acknowledged, received {unique:?} of {finals:?}"
        );
        match c.try_recv(Duration::from_millis(2)) {
            None => {}
            Some(Packet::PubAck(a)) => {
                assert_eq!(
                    usize::from(a.packet_id.get()),
                    acked % 60_000 + 1,
                    "good-{me}: PUBACKs in order"
                );
                acked += 1;
            }
            Some(Packet::Publish(p)) => {
                let text = text(&p);
                let (from, seq) = text.split_once(':').expect("from:seq");
                let (from, seq): (usize, usize) =
                    (from.parse().expect("from"), seq.parse().expect("seq"));
                // A resend (DUP) of the last one is not a new delivery.
                if received[from].last() != Some(&seq) {
                    unique[from] += 1;
                }
                received[from].push(seq);
                if let (QoS::AtLeastOnce, Some(id)) = (p.qos, p.packet_id) {
                    c.send_mqtt(&Packet::PubAck(Ack::new(id)));
                }
            }
            Some(other) => panic!("good-{me}: unexpected {other:?}"),
        }
    }
    c.disconnect();
    (received, Instant::now())
}

/// What the good clients share.
struct Good {
    start: Barrier,
    hostile_done: AtomicBool,
    /// How many messages each good client published in all (`usize::MAX` until it stops).
    finals: Vec<AtomicUsize>,
}

#[test]
fn hostile_connections_do_not_hurt_good_clients_ringmq_only() {
    if skip_unless_ringmq("the limits that end hostile connections are ringmq's") {
        return;
    }
    let mut broker = Broker::start(
        BrokerOptions::default()
            .shards(2)
            .storage("fsync = \"never\"\nsegment_bytes = 4194304")
            .config(&format!("{CONFIG}{}", hostile::TOPIC_LIMITS_TOML), ""),
    );
    let addr = broker.addr();
    let started = Instant::now();
    let figures = Arc::new(Figures::default());
    let shared = Arc::new(Good {
        start: Barrier::new(GOOD_CLIENTS + HOSTILE_THREADS),
        hostile_done: AtomicBool::new(false),
        finals: (0..GOOD_CLIENTS)
            .map(|_| AtomicUsize::new(usize::MAX))
            .collect(),
    });
    let good: Vec<_> = (0..GOOD_CLIENTS)
        .map(|me| {
            let shared = shared.clone();
            thread::spawn(move || good_client(addr, me, &shared))
        })
        .collect();
    let bad: Vec<_> = (0..HOSTILE_THREADS)
        .map(|t| {
            let (shared, figures) = (shared.clone(), figures.clone());
            thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1));
                let mut hanging = Hanging::new();
                shared.start.wait();
                for k in (t..HOSTILE_CONNECTIONS).step_by(HOSTILE_THREADS) {
                    hostile(addr, k, &mut rng, &figures, &mut hanging);
                }
                for (mut s, opened, limit, what) in hanging {
                    let left = limit.saturating_sub(opened.elapsed());
                    until_closed(&mut s, left.max(Duration::from_millis(1)), &what);
                    figures.closed_by_broker.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let hostile_done = {
        for t in bad {
            t.join().expect("a hostile thread failed");
        }
        shared.hostile_done.store(true, Ordering::Release);
        started.elapsed()
    };
    let mut exchanged = 0;
    let mut good_done = Duration::ZERO;
    for (me, t) in good.into_iter().enumerate() {
        let (received, done) = t.join().expect("a good client failed");
        good_done = good_done.max(done - started);
        for (from, seqs) in received.iter().enumerate() {
            // QoS 1 allows a duplicate (a resend); none is lost, and order is kept.
            let mut unique = seqs.clone();
            unique.dedup();
            let published = shared.finals[from].load(Ordering::Acquire);
            assert_eq!(
                unique,
                (0..published).collect::<Vec<_>>(),
                "good-{me} from good-{from}: every message once, in order"
            );
            exchanged += seqs.len();
        }
    }
    // Still up, and serving.
    let mut sub = broker.client(V5, "after-sub");
    sub.subscribe_one("after/t", qos(1));
    let mut publ = broker.client(V311, "after-pub");
    publ.publish("after/t", b"still serving", qos(1));
    assert_eq!(text(&sub.recv_message()), "still serving");
    drop((sub, publ));
    broker.stop();
    let log = broker.log_of_this_run();
    assert!(!log.contains("panicked"), "the broker panicked:\n{log}");
    let mut counts = std::collections::BTreeMap::new();
    for line in log.lines().filter(|l| l.contains(": limits ")) {
        for (k, v) in line.split_whitespace().filter_map(|w| w.split_once('=')) {
            if let Ok(n) = v.parse::<u64>() {
                *counts.entry(k.to_owned()).or_insert(0u64) += n;
            }
        }
    }
    let f = &*figures;
    let published: usize = shared
        .finals
        .iter()
        .map(|f| f.load(Ordering::Acquire))
        .sum();
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    println!(
        "hardening: {} hostile connections ({} closed by the broker), {} hostile packets \
         ({} bytes), done in {:.1} s; {GOOD_CLIENTS} good clients exchanged {exchanged} QoS 1 \
         messages ({published} published) in {:.1} s, none lost\nbroker counters: {counts:?}",
        f.connections.load(Ordering::Relaxed),
        f.closed_by_broker.load(Ordering::Relaxed),
        f.packets.load(Ordering::Relaxed),
        f.bytes.load(Ordering::Relaxed),
        hostile_done.as_secs_f64(),
        good_done.as_secs_f64(),
    );
    assert!(f.connections.load(Ordering::Relaxed) >= HOSTILE_CONNECTIONS as u64);
    assert!(get("packets_too_large") >= f.oversized.load(Ordering::Relaxed));
    assert!(get("connect_timeouts") >= f.half_connects.load(Ordering::Relaxed));
    assert!(get("packet_timeouts") >= f.half_packets.load(Ordering::Relaxed));
    assert!(get("subscriptions_over_quota") > 0);
    assert_eq!(
        get("queued_bytes"),
        0,
        "nothing left queued once everyone is gone"
    );
}
