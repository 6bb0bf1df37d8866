//! `[limits]` against a running broker: each limit triggered over TCP, what the client sees
//! (raw bytes where the bytes matter, reason codes per version), what keeps working, and
//! that the hit is counted in the shard's `limits` line logged at shutdown.
//!
//! Mosquitto has none of these settings (or not under these names), so every test here is
//! ringmq-only.

pub mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ringmq::protocol::{Packet, ProtocolVersion, ReasonCode};

const CLOSE: Duration = Duration::from_secs(5);

fn limits_broker(shards: usize, limits: &str) -> Broker {
    Broker::start(
        BrokerOptions::default()
            .shards(shards)
            .config(&format!("[limits]\n{limits}"), ""),
    )
}

/// Stops the broker and sums the counters of every shard's `limits` line (logged at
/// shutdown), with the queued-memory gauge (`queued_bytes`) as each shard left it.
fn limit_counts(broker: &mut Broker) -> HashMap<String, u64> {
    broker.stop();
    let log = broker.log_of_this_run();
    let mut counts = HashMap::new();
    let mut lines = 0;
    for line in log.lines().filter(|l| l.contains(": limits ")) {
        lines += 1;
        for (key, value) in line.split_whitespace().filter_map(|w| w.split_once('=')) {
            if let Ok(n) = value.parse::<u64>() {
                *counts.entry(key.to_owned()).or_insert(0) += n;
            }
        }
    }
    assert_eq!(
        lines,
        broker.shards(),
        "one `limits` line per shard at shutdown:\n{log}"
    );
    counts
}

fn count(counts: &HashMap<String, u64>, key: &str) -> u64 {
    *counts
        .get(key)
        .unwrap_or_else(|| panic!("no counter {key} in {counts:?}"))
}

/// A CONNECT on a fresh socket: the CONNACK's reason, or `None` if the server closed
/// without one.
fn try_connect(addr: SocketAddr, v: ProtocolVersion, client_id: &str) -> Option<(RawClient, u8)> {
    let mut raw = RawClient::connect(addr);
    // The server may have closed already; the read below says so.
    let _ = raw.try_send(&encode(
        &Packet::Connect(Box::new(connect(v, client_id))),
        v,
    ));
    match raw.try_recv_packet(v, TIMEOUT) {
        Ok(Packet::ConnAck(c)) => {
            let code = match v {
                ProtocolVersion::V5 => c.reason as u8,
                _ => c.reason.to_v3_connack(),
            };
            Some((raw, code))
        }
        Ok(other) => panic!("expected CONNACK, got {other:?}"),
        Err(RecvError::Closed) => None,
        Err(e) => panic!("expected CONNACK or a close, got {e:?}"),
    }
}

/// Tries `connect` until it is accepted (a freed slot is seen once the server has ended
/// the connection that held it, which takes a moment after the client closes).
fn connect_eventually(addr: SocketAddr, v: ProtocolVersion, client_id: &str) -> RawClient {
    let deadline = Instant::now() + CLOSE;
    loop {
        match try_connect(addr, v, client_id) {
            Some((raw, 0)) => return raw,
            _ if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            other => panic!(
                "{client_id}: still refused after {CLOSE:?}: {:?}",
                other.map(|o| o.1)
            ),
        }
    }
}

fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

// ---------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------

// `listener.max_connections` counts the listener's connections across all shards, those
// handed to another shard after CONNECT included: with 3 allowed on a second listener of a
// 4-shard broker, a fourth is closed at once (no CONNACK); once one of the three ends, a
// new one is accepted. The first listener is not affected.
#[test]
fn listener_max_connections_is_across_shards_ringmq_only() {
    if skip_unless_ringmq("listener.max_connections is ringmq's") {
        return;
    }
    let port = unused_port();
    let second = SocketAddr::from(([127, 0, 0, 1], port));
    let mut broker = Broker::start(BrokerOptions::default().shards(4).config(
        &format!("[[listener]]\nbind = \"{second}\"\nmax_connections = 3\n"),
        "",
    ));
    // Homed on different shards, so that some are handed off after CONNECT.
    let ids: Vec<String> = (0..3).map(|s| client_id_on_shard("lim", s, 4)).collect();
    let mut held: Vec<RawClient> = ids
        .iter()
        .map(|id| connect_eventually(second, V311, id))
        .collect();
    assert!(
        try_connect(second, V311, "fourth").is_none(),
        "a fourth connection on the listener is closed without CONNACK"
    );
    let mut other = broker.client(V311, "other-listener");
    other.ping();
    held.pop().expect("three held").drop_connection();
    let mut again = connect_eventually(second, V311, "again");
    again.send(&hex("c0 00"));
    again.expect_bytes("d0 00");
    drop((held, again, other));
    let counts = limit_counts(&mut broker);
    assert!(count(&counts, "refused_listener_connections") >= 1);
}

// `limits.connections_per_shard_max` is enforced where a connection is served: a
// connection accepted by a full shard is closed at once; one accepted by another shard and
// handed to its full home shard is refused there with CONNACK 0x97 Quota exceeded (v5) or
// 0x03 Server unavailable (v3), since its CONNECT has been read. (The kernel picks the
// accepting shard, so the test tries until it has seen both.)
#[test]
fn connections_per_shard_max_holds_for_handed_off_connections_ringmq_only() {
    if skip_unless_ringmq("limits.connections_per_shard_max is ringmq's") {
        return;
    }
    let mut broker = limits_broker(2, "connections_per_shard_max = 2");
    let addr = broker.addr();
    let mut home0 = (0..)
        .map(|n| format!("full-{n}"))
        .filter(|id| ringmq::shard::mesh::stable_hash(id.as_bytes()) % 2 == 0);
    let _a = connect_eventually(addr, V311, &home0.next().expect("ids"));
    let _b = connect_eventually(addr, V311, &home0.next().expect("ids"));
    let (mut closed, mut refused_v5, mut refused_v311) = (0, 0, 0);
    for i in 0..200 {
        if closed > 0 && refused_v5 > 0 && refused_v311 > 0 {
            break;
        }
        let v = if i % 2 == 0 { V5 } else { V311 };
        let id = home0.next().expect("ids");
        match try_connect(addr, v, &id) {
            None => closed += 1,
            Some((_, 0x97)) if v == V5 => refused_v5 += 1,
            Some((_, 0x03)) if v == V311 => refused_v311 += 1,
            Some((_, code)) => panic!("{v}: shard 0 is full, yet CONNACK {code:#04x}"),
        }
    }
    assert!(
        closed > 0 && refused_v5 > 0 && refused_v311 > 0,
        "closed at accept {closed}, CONNACK 0x97 {refused_v5}, CONNACK 0x03 {refused_v311}"
    );
    // Shard 1 still serves its own clients.
    let mut c = connect_eventually(addr, V311, &client_id_on_shard("free", 1, 2));
    c.send(&hex("c0 00"));
    c.expect_bytes("d0 00");
    drop(c);
    let counts = limit_counts(&mut broker);
    assert!(count(&counts, "refused_shard_connections") >= closed + refused_v5 + refused_v311);
}

// `limits.connects_per_sec_max`: a token bucket of one second's worth per shard. Past it,
// connections are closed at once, before anything is read; after a second there is room
// again. (The number accepted is bounded by the burst plus what the rate refills while
// the test runs.)
#[test]
fn connect_rate_closes_connections_over_the_rate_ringmq_only() {
    if skip_unless_ringmq("limits.connects_per_sec_max is ringmq's") {
        return;
    }
    let mut broker = limits_broker(1, "connects_per_sec_max = 5");
    let addr = broker.addr();
    let started = Instant::now();
    let mut accepted = Vec::new();
    let mut closed = 0u64;
    for n in 0..20 {
        match try_connect(addr, V5, &format!("rate-{n}")) {
            Some((raw, 0)) => accepted.push(raw),
            Some((_, code)) => panic!("CONNACK {code:#04x}"),
            None => closed += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let bound = 5 + (5.0 * elapsed).ceil() as usize;
    // The harness's readiness probe (a bare TCP connect) took one token.
    assert!(
        accepted.len() >= 4 && accepted.len() <= bound,
        "{} accepted in {elapsed:.2} s with a burst of 5 at 5/s",
        accepted.len()
    );
    assert!(closed > 0);
    thread::sleep(Duration::from_millis(1100));
    let mut c = connect_eventually(addr, V5, "after-a-second");
    c.send(&hex("c0 00"));
    c.expect_bytes("d0 00");
    drop((accepted, c));
    let counts = limit_counts(&mut broker);
    assert_eq!(count(&counts, "refused_connect_rate"), closed);
}

// ---------------------------------------------------------------------------------------
// Timeouts: CONNECT and slowloris
// ---------------------------------------------------------------------------------------

// `limits.connect_timeout_secs` closes a socket that sends nothing and one that sends half
// a CONNECT, and counts both; a client that connects in time is not affected.
#[test]
fn connect_timeouts_are_counted_ringmq_only() {
    if skip_unless_ringmq("limits.connect_timeout_secs is ringmq's") {
        return;
    }
    let mut broker = limits_broker(1, "connect_timeout_secs = 1");
    let mut silent = broker.raw();
    let mut half = broker.raw();
    let whole = encode(&Packet::Connect(Box::new(connect(V5, "half"))), V5);
    half.send(&whole[..whole.len() / 2]);
    let mut good = broker.client(V5, "good");
    silent.expect_closed(Duration::from_secs(4));
    half.expect_closed(Duration::from_secs(4));
    good.ping();
    drop(good);
    let counts = limit_counts(&mut broker);
    assert_eq!(count(&counts, "connect_timeouts"), 2);
}

/// The first `n` bytes of a QoS 0 PUBLISH to `t` with a 100-byte payload.
fn publish_start(v: ProtocolVersion, n: usize) -> Vec<u8> {
    let whole = publish_bytes(v, 0x30, "t", None, &[b'x'; 100]);
    whole[..n].to_vec()
}

// `limits.packet_timeout_secs` (slowloris): a connection without keep-alive that starts a
// packet and does not finish it in time is closed, v5 with DISCONNECT 0x8D; so is one that
// trickles a packet a byte at a time. A packet completed within the time passes, and an
// idle connection with nothing begun stays open.
fn packet_timeout_closes_half_packets(v: ProtocolVersion) {
    if skip_unless_ringmq("limits.packet_timeout_secs is ringmq's") {
        return;
    }
    let mut broker = limits_broker(1, "packet_timeout_secs = 1");
    let no_keep_alive = |id: &str| {
        let mut c = connect(v, id);
        c.keep_alive = 0;
        Client::connect(broker.addr(), c)
    };
    let mut sub = no_keep_alive("sub");
    sub.subscribe_one("t", qos(0));
    let mut stuck = no_keep_alive("stuck").into_raw();
    stuck.send(&publish_start(v, 3));
    let mut trickle = no_keep_alive("trickle").into_raw();
    let mut slow = no_keep_alive("slow").into_raw();
    let whole = publish_bytes(v, 0x30, "t", None, &[b'x'; 100]);
    slow.send(&whole[..50]);
    let started = Instant::now();
    // A byte every 300 ms: each one is progress, but the packet is not done in 1 s.
    let mut sent = 0;
    while started.elapsed() < Duration::from_millis(1600) {
        if trickle.try_send(&whole[sent..sent + 1]).is_err() {
            break;
        }
        sent += 1;
        if sent == 2 {
            slow.send(&whole[50..]);
        }
        thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(sub.recv_message().payload.len(), 100, "the slow packet");
    for c in [&mut stuck, &mut trickle] {
        if v.is_v5() {
            c.expect_closed_allowing_disconnect(0x8D, CLOSE);
        } else {
            c.expect_closed(CLOSE);
        }
    }
    // Idle for longer than the packet timeout, with nothing begun: still served.
    thread::sleep(Duration::from_millis(1200));
    slow.send(&hex("c0 00"));
    slow.expect_bytes("d0 00");
    drop((sub, slow));
    let counts = limit_counts(&mut broker);
    assert_eq!(count(&counts, "packet_timeouts"), 2);
}

test_versions!(packet_timeout_closes_half_packets =>
    packet_timeout_closes_half_packets_v311_ringmq_only,
    packet_timeout_closes_half_packets_v5_ringmq_only);

// The v5 DISCONNECT of a packet timeout, byte for byte: 0x8D with a Reason String is not
// sent (the sweep closes as for keep-alive), so exactly `e0 01 8d`.
#[test]
fn packet_timeout_disconnect_bytes_v5_ringmq_only() {
    if skip_unless_ringmq("limits.packet_timeout_secs is ringmq's") {
        return;
    }
    let broker = limits_broker(1, "packet_timeout_secs = 1");
    let mut c = connect(V5, "stuck");
    c.keep_alive = 0;
    let mut c = Client::connect(broker.addr(), c).into_raw();
    c.send(&publish_start(V5, 10));
    c.expect_bytes("e0 01 8d");
    c.expect_closed(CLOSE);
}

// ---------------------------------------------------------------------------------------
// Publish rates
// ---------------------------------------------------------------------------------------

// `publish_rate_action = "disconnect"`: the PUBLISH over `publish_messages_per_sec` is not
// processed and the client gets DISCONNECT 0x96 Message rate too high (v3: the connection
// closes); the messages within the rate were delivered.
fn publish_rate_disconnect(v: ProtocolVersion) {
    if skip_unless_ringmq("limits.publish_messages_per_sec is ringmq's") {
        return;
    }
    let mut broker = limits_broker(
        1,
        "publish_messages_per_sec = 5\npublish_rate_action = \"disconnect\"",
    );
    let mut sub = broker.client(v, "sub");
    sub.subscribe_one("rate/t", qos(1));
    let mut publ = broker.client(v, "pub").into_raw();
    for n in 0..6 {
        publ.send(&publish_bytes(
            v,
            0x30,
            "rate/t",
            None,
            format!("m{n}").as_bytes(),
        ));
    }
    if v.is_v5() {
        publ.expect_disconnect(0x96);
    }
    publ.expect_closed(CLOSE);
    for n in 0..5 {
        assert_eq!(text(&sub.recv_message()), format!("m{n}"));
    }
    sub.expect_nothing(Duration::from_millis(300));
    drop(sub);
    let counts = limit_counts(&mut broker);
    assert_eq!(count(&counts, "publish_rate_disconnects"), 1);
}

test_versions!(publish_rate_disconnect =>
    publish_rate_over_the_limit_closes_v311_ringmq_only,
    publish_rate_over_the_limit_gets_disconnect_0x96_v5_ringmq_only);

/// Sends `count` QoS 1 PUBLISHes of `payload_len` bytes to `topic` without waiting, then
/// reads every PUBACK; returns how long that took.
fn pipeline_qos1(publ: &mut Client, topic: &str, count: u16, payload_len: usize) -> Duration {
    let started = Instant::now();
    let mut bytes = Vec::new();
    for id in 1..=count {
        let payload = format!("{id:0width$}", width = payload_len);
        bytes.extend(encode(
            &Packet::Publish(publish(topic, payload.as_bytes(), qos(1), id)),
            publ.version,
        ));
    }
    publ.send(&bytes);
    for id in 1..=count {
        match publ.recv() {
            Packet::PubAck(a) => assert_eq!(a.packet_id.get(), id, "PUBACKs in order"),
            other => panic!("expected PUBACK {id}, got {other:?}"),
        }
    }
    started.elapsed()
}

// `publish_rate_action = "throttle"` (the default): a client publishing faster than
// `publish_messages_per_sec` is slowed down, not cut off: 60 QoS 1 messages at 20 a second
// (a burst of 20) take at least (60 - 20) / 20 = 2 s, every one is acknowledged and
// delivered in order, and the client's connection stays up.
#[test]
fn publish_rate_throttle_slows_a_publisher_and_loses_nothing_ringmq_only() {
    if skip_unless_ringmq("limits.publish_messages_per_sec is ringmq's") {
        return;
    }
    let mut broker = limits_broker(1, "publish_messages_per_sec = 20");
    let mut sub = broker.client(V5, "sub");
    sub.subscribe_one("rate/t", qos(1));
    let mut publ = broker.client(V5, "pub");
    let took = pipeline_qos1(&mut publ, "rate/t", 60, 4);
    assert!(
        took >= Duration::from_millis(1800),
        "60 messages at 20/s took {took:?}"
    );
    for id in 1..=60 {
        assert_eq!(text(&sub.recv_message()), format!("{id:04}"));
    }
    publ.ping();
    drop((sub, publ));
    let counts = limit_counts(&mut broker);
    assert!(count(&counts, "publish_throttles") >= 1);
    assert_eq!(count(&counts, "publish_rate_disconnects"), 0);
}

// `publish_bytes_per_sec` counts whole PUBLISH packets: 12 messages of about 1 KB at
// 4000 bytes a second (a bucket of 4096 bytes: at least one largest packet) take at least
// (12 * 1030 - 4096) / 4000 s, about 2 s; nothing is lost.
#[test]
fn publish_bandwidth_throttle_slows_a_publisher_ringmq_only() {
    if skip_unless_ringmq("limits.publish_bytes_per_sec is ringmq's") {
        return;
    }
    let mut broker = limits_broker(
        1,
        "publish_bytes_per_sec = 4000\npacket_bytes_max = 4096\nqueued_bytes_max = 4096",
    );
    let mut sub = broker.client(V311, "sub");
    sub.subscribe_one("bw/t", qos(1));
    let mut publ = broker.client(V311, "pub");
    let took = pipeline_qos1(&mut publ, "bw/t", 12, 1024);
    assert!(
        took >= Duration::from_millis(1700),
        "12 KB at 4 KB/s took {took:?}"
    );
    for id in 1..=12 {
        assert_eq!(text(&sub.recv_message()), format!("{id:01024}"));
    }
    drop((sub, publ));
    let counts = limit_counts(&mut broker);
    assert!(count(&counts, "publish_throttles") >= 1);
}

// ---------------------------------------------------------------------------------------
// Packets, topics, subscriptions
// ---------------------------------------------------------------------------------------

// `limits.packet_bytes_max` is advertised as the v5 Maximum Packet Size and counted when
// hit: a PUBLISH whose fixed header announces more gets DISCONNECT 0x95 (v5) or a close
// (v3), and so does a CONNECT announcing more (closed without CONNACK).
#[test]
fn packets_too_large_are_refused_and_counted_ringmq_only() {
    if skip_unless_ringmq("the count is ringmq's; the behaviour is in broker_bad_input") {
        return;
    }
    let mut broker = limits_broker(1, "packet_bytes_max = 1024");
    let c5 = broker.client(V5, "big5");
    assert_eq!(
        c5.connack.properties.maximum_packet_size.map(|m| m.get()),
        Some(1024)
    );
    let mut c5 = c5.into_raw();
    // Fixed header of a 2000-byte PUBLISH: 30 cd 0f (remaining length 1997).
    c5.send(&hex("30 cd 0f 00 01 74"));
    c5.expect_bytes("e0");
    let len = c5.recv_bytes_exact(1)[0] as usize;
    let rest = c5.recv_bytes_exact(len);
    assert_eq!(rest[0], 0x95, "DISCONNECT 0x95 Packet too large");
    c5.expect_closed(CLOSE);
    let mut c3 = broker.client(V311, "big3").into_raw();
    c3.send(&hex("30 cd 0f 00 01 74"));
    c3.expect_closed(CLOSE);
    let mut raw = broker.raw();
    raw.send(&hex("10 cd 0f 00 04 4d 51 54 54 04 02"));
    raw.expect_closed(CLOSE);
    let counts = limit_counts(&mut broker);
    assert_eq!(count(&counts, "packets_too_large"), 3);
}

// `limits.topic_bytes_max` / `topic_levels_max` on PUBLISH: a topic name over either gets
// DISCONNECT 0x90 Topic Name invalid (v5) or a close (v3), and is not delivered; one at
// the limits passes.
fn publish_topic_limits(v: ProtocolVersion) {
    if skip_unless_ringmq("limits.topic_bytes_max / topic_levels_max are ringmq's") {
        return;
    }
    let mut broker = limits_broker(1, "topic_bytes_max = 16\ntopic_levels_max = 4");
    let mut sub = broker.client(v, "sub");
    sub.subscribe_one("#", qos(0));
    let mut publ = broker.client(v, "ok");
    publ.publish("a/b/c/0123456789", b"at the limits", qos(0));
    assert_eq!(text(&sub.recv_message()), "at the limits");
    for bad in ["a/b/c/01234567890", "a/b/c/d/e"] {
        let mut publ = broker.client(v, "bad").into_raw();
        publ.send(&publish_bytes(v, 0x30, bad, None, b"refused"));
        if v.is_v5() {
            publ.expect_disconnect(0x90);
        }
        publ.expect_closed(CLOSE);
    }
    sub.expect_nothing(Duration::from_millis(300));
    drop(sub);
    let counts = limit_counts(&mut broker);
    assert_eq!(count(&counts, "topics_too_long"), 2);
}

test_versions!(publish_topic_limits =>
    publish_topic_over_the_limits_closes_v311_ringmq_only,
    publish_topic_over_the_limits_gets_disconnect_0x90_v5_ringmq_only);

// A will is published like any PUBLISH, so its topic is held to the same limits: a CONNECT
// whose will topic is over `topic_bytes_max` or `topic_levels_max` is refused with CONNACK
// 0x90 Topic Name invalid (v5) / 0x03 Server unavailable (v3). Raw bytes for v3.
fn will_topic_limits(v: ProtocolVersion) {
    if skip_unless_ringmq("limits.topic_bytes_max / topic_levels_max are ringmq's") {
        return;
    }
    let mut broker = limits_broker(1, "topic_bytes_max = 16\ntopic_levels_max = 4");
    for (n, topic_name) in ["a/b/c/01234567890", "a/b/c/d/e"].into_iter().enumerate() {
        let mut c = connect(v, &format!("will-{n}"));
        c.will = Some(will(topic_name, b"bye", qos(0), false));
        let mut raw = broker.raw();
        raw.send_packet(&Packet::Connect(Box::new(c)), v);
        if v.is_v5() {
            match raw.recv_packet(v) {
                Packet::ConnAck(c) => assert_eq!(c.reason, ReasonCode::TopicNameInvalid),
                other => panic!("expected CONNACK, got {other:?}"),
            }
        } else {
            raw.expect_bytes("20 02 00 03");
        }
        raw.expect_closed(CLOSE);
    }
    let mut c = connect(v, "will-ok");
    c.will = Some(will("a/b/c/0123456789", b"bye", qos(0), false));
    Client::connect(broker.addr(), c).ping();
    let counts = limit_counts(&mut broker);
    assert_eq!(count(&counts, "topics_too_long"), 2);
}

test_versions!(will_topic_limits =>
    will_topic_over_the_limits_gets_connack_0x03_v311_ringmq_only,
    will_topic_over_the_limits_gets_connack_0x90_v5_ringmq_only);

// On SUBSCRIBE, a filter over `topic_bytes_max` / `topic_levels_max` gets its own SUBACK
// failure: 0x8F Topic Filter invalid (v5), 0x80 (v3); the connection and the other filters
// of the packet are served. Raw bytes for v3 (`90 05 00 01 00 80 80`).
#[test]
fn subscribe_filter_over_the_limits_gets_0x80_v311_ringmq_only() {
    if skip_unless_ringmq("limits.topic_bytes_max / topic_levels_max are ringmq's") {
        return;
    }
    let mut broker = limits_broker(1, "topic_bytes_max = 16\ntopic_levels_max = 4");
    let mut c = broker.client(V311, "sub").into_raw();
    let mut body = hex("00 01");
    for (f, q) in [("a/+/c/#", 0u8), ("a/b/c/01234567890", 0), ("a/b/c/d/e", 0)] {
        body.extend(string_field(f.as_bytes()));
        body.push(q);
    }
    c.send(&frame(0x82, &body));
    c.expect_bytes("90 05 00 01 00 80 80");
    c.send(&hex("c0 00"));
    c.expect_bytes("d0 00");
    drop(c);
    let counts = limit_counts(&mut broker);
    assert_eq!(count(&counts, "filters_too_long"), 2);
}

#[test]
fn subscribe_filter_over_the_limits_gets_0x8f_v5_ringmq_only() {
    if skip_unless_ringmq("limits.topic_bytes_max / topic_levels_max are ringmq's") {
        return;
    }
    let broker = limits_broker(1, "topic_bytes_max = 16\ntopic_levels_max = 4");
    let mut c = broker.client(V5, "sub");
    let ack = c.subscribe(&[
        ("a/+/c/#", qos(1)),
        ("a/b/c/01234567890", qos(1)),
        ("a/b/c/d/e", qos(1)),
    ]);
    assert_eq!(
        ack.reasons,
        [
            ReasonCode::GrantedQoS1,
            ReasonCode::TopicFilterInvalid,
            ReasonCode::TopicFilterInvalid
        ]
    );
    c.ping();
}

// `limits.subscriptions_per_client_max`: a subscription past it gets 0x97 Quota exceeded
// (v5) / 0x80 (v3) in the SUBACK; subscribing again to a filter the client holds is not a
// new subscription and is granted; after an UNSUBSCRIBE there is room again.
fn subscription_quota(v: ProtocolVersion) {
    if skip_unless_ringmq("limits.subscriptions_per_client_max is ringmq's") {
        return;
    }
    let mut broker = limits_broker(1, "subscriptions_per_client_max = 2");
    let mut c = broker.client(v, "subs");
    let refused = if v.is_v5() { 0x97 } else { 0x80 };
    let codes = |ack: ringmq::protocol::SubAck| -> Vec<u8> {
        ack.reasons
            .iter()
            .map(|r| {
                if v.is_v5() {
                    *r as u8
                } else {
                    r.to_v3_suback()
                }
            })
            .collect()
    };
    let ack = c.subscribe(&[("q/1", qos(1)), ("q/2", qos(1)), ("q/3", qos(1))]);
    assert_eq!(codes(ack), [1, 1, refused]);
    let ack = c.subscribe(&[("q/2", qos(0)), ("q/4", qos(0))]);
    assert_eq!(codes(ack), [0, refused]);
    c.unsubscribe(&["q/1"]);
    let ack = c.subscribe(&[("q/4", qos(0))]);
    assert_eq!(codes(ack), [0]);
    drop(c);
    let counts = limit_counts(&mut broker);
    assert_eq!(count(&counts, "subscriptions_over_quota"), 2);
}

test_versions!(subscription_quota =>
    subscriptions_past_the_quota_get_0x80_v311_ringmq_only,
    subscriptions_past_the_quota_get_0x97_v5_ringmq_only);

// ---------------------------------------------------------------------------------------
// Queues and memory
// ---------------------------------------------------------------------------------------

// `limits.inflight_count_max` and `queued_messages_max` towards a subscriber that does not
// acknowledge: it gets `inflight_count_max` messages, `queued_messages_max` more wait, the
// rest are dropped for it (counted); acknowledging releases the queued ones in order.
fn queue_bounds(v: ProtocolVersion) {
    if skip_unless_ringmq("limits.queued_messages_max is ringmq's") {
        return;
    }
    let mut broker = limits_broker(
        1,
        "inflight_count_max = 2\nqueued_messages_max = 3\nqueued_messages_pushback = 0",
    );
    let mut sub = broker.client(v, "slow");
    sub.subscribe_one("q/t", qos(1));
    let mut publ = broker.client(v, "pub");
    for n in 0..10 {
        publ.publish("q/t", format!("m{n}").as_bytes(), qos(1));
    }
    let first: Vec<_> = (0..2).map(|_| sub.recv_publish()).collect();
    sub.expect_nothing(Duration::from_millis(200));
    let mut got: Vec<String> = first.iter().map(text).collect();
    for p in &first {
        sub.ack(p);
    }
    for _ in 0..3 {
        got.push(text(&sub.recv_message()));
    }
    sub.expect_nothing(Duration::from_millis(300));
    assert_eq!(got, ["m0", "m1", "m2", "m3", "m4"]);
    drop((sub, publ));
    let counts = limit_counts(&mut broker);
    assert_eq!(count(&counts, "queue_full_drops"), 5);
    assert_eq!(count(&counts, "queued_bytes"), 0, "nothing left queued");
}

test_versions!(queue_bounds =>
    inflight_and_queue_bounds_drop_the_overflow_v311_ringmq_only,
    inflight_and_queue_bounds_drop_the_overflow_v5_ringmq_only);

// `limits.queued_bytes_max` bounds a session's queue by payload and topic bytes: with
// 2048 bytes, two messages of 1,000 bytes wait behind the one in flight, the others are
// dropped for that subscriber (counted).
#[test]
fn queued_bytes_bound_drops_the_overflow_ringmq_only() {
    if skip_unless_ringmq("limits.queued_bytes_max is ringmq's") {
        return;
    }
    let mut broker = limits_broker(
        1,
        "packet_bytes_max = 1024\nqueued_bytes_max = 2048\ninflight_count_max = 1\n\
         queued_messages_pushback = 0",
    );
    let mut sub = broker.client(V5, "slow");
    sub.subscribe_one("qb/t", qos(1));
    let mut publ = broker.client(V5, "pub");
    for n in 0..6u8 {
        publ.publish("qb/t", &[b'0' + n; 1000], qos(1));
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(sub.recv_message().payload[0]);
    }
    sub.expect_nothing(Duration::from_millis(300));
    assert_eq!(got, b"012");
    drop((sub, publ));
    let counts = limit_counts(&mut broker);
    assert_eq!(count(&counts, "queue_full_drops"), 3);
}

// `limits.memory_high_water_bytes`: once the shard holds more queued bytes than its share
// (here: a subscriber that does not acknowledge, with 20 messages of 1 KB queued), QoS 0
// deliveries are shed, to every subscriber, while QoS 1 ones are still delivered. When the
// queued bytes go (the slow subscriber leaves), QoS 0 flows again.
#[test]
fn memory_high_water_sheds_qos0_first_ringmq_only() {
    if skip_unless_ringmq("limits.memory_high_water_bytes is ringmq's") {
        return;
    }
    let mut broker = limits_broker(
        1,
        "memory_high_water_bytes = 16384\ninflight_count_max = 1\nqueued_messages_pushback = 0",
    );
    let mut slow = broker.client(V5, "slow");
    slow.subscribe_one("big/t", qos(1));
    let mut fast = broker.client(V5, "fast");
    fast.subscribe_one("small/#", qos(1));
    let mut publ = broker.client(V5, "pub");
    publ.publish("small/t", b"qos0 before", qos(0));
    assert_eq!(text(&fast.recv_message()), "qos0 before");
    for _ in 0..21 {
        publ.publish("big/t", &[b'x'; 1000], qos(1));
    }
    publ.publish("small/t", b"qos0 shed", qos(0));
    publ.publish("small/t", b"qos1 kept", qos(1));
    assert_eq!(text(&fast.recv_message()), "qos1 kept");
    drop(slow);
    // Its session ends with its connection (clean start, no expiry): its queue is freed.
    let deadline = Instant::now() + CLOSE;
    loop {
        publ.publish("small/t", b"qos0 again", qos(0));
        if let Some(p) = fast.try_recv(Duration::from_millis(100)) {
            match p {
                Packet::Publish(p) => assert_eq!(text(&p), "qos0 again"),
                other => panic!("expected PUBLISH, got {other:?}"),
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "QoS 0 still shed after the queue went"
        );
    }
    drop((fast, publ));
    let counts = limit_counts(&mut broker);
    assert!(count(&counts, "qos0_memory_sheds") >= 1);
    assert!(count(&counts, "queued_bytes_peak") > 16384);
    assert_eq!(count(&counts, "queued_bytes"), 0);
}

// A slow reader does not hold the broker's memory: a client that subscribes and never
// reads has QoS 0 messages dropped once its outgoing buffer is past
// `write_buffer_bytes` (counted), while other subscribers get everything.
#[test]
fn qos0_to_a_client_that_does_not_read_is_dropped_not_buffered_ringmq_only() {
    if skip_unless_ringmq("limits.write_buffer_bytes is ringmq's") {
        return;
    }
    let mut broker = limits_broker(1, "write_buffer_bytes = 16384");
    let stuck = TcpStream::connect(broker.addr()).expect("connect");
    stuck.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    let mut stuck = stuck;
    stuck
        .write_all(&encode(
            &Packet::Connect(Box::new(connect(V311, "stuck"))),
            V311,
        ))
        .expect("CONNECT");
    let mut connack = [0u8; 4];
    stuck.read_exact(&mut connack).expect("CONNACK");
    stuck
        .write_all(&frame(
            0x82,
            &[&hex("00 01")[..], &string_field(b"flood")[..], &[0]].concat(),
        ))
        .expect("SUBSCRIBE");
    let mut suback = [0u8; 5];
    stuck.read_exact(&mut suback).expect("SUBACK");
    let mut watcher = broker.client(V311, "watcher");
    watcher.subscribe_one("flood", qos(0));
    let mut publ = broker.client(V311, "pub").into_raw();
    // 32 MiB: far more than the socket buffers and the stuck client's outbox hold.
    let packet = publish_bytes(V311, 0x30, "flood", None, &[b'f'; 8192]);
    for _ in 0..4096 {
        publ.send(&packet);
        watcher.recv_publish();
    }
    drop((stuck, watcher, publ));
    let counts = limit_counts(&mut broker);
    assert!(count(&counts, "qos0_slow_client_drops") > 0);
}
