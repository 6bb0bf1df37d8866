//! Durability: persistent sessions (3.1.1 CleanSession 0, 5.0 Session Expiry Interval > 0)
//! with their subscriptions, queued and in-flight QoS 1/2 messages, inbound QoS 2 state,
//! expiry and wills, and retained messages, survive a clean restart (SIGTERM, exit 0) and
//! `kill -9` with the same data directory, also when the shard count changes; clean sessions
//! leave nothing behind; each shard logs its recovery. The harness runs Mosquitto with
//! `persistence false`, so every test here is `ringmq_only`.
//!
//! Storage runs with its defaults (`fsync = "always"`). Most tests use four shards and put
//! the publisher and the subscriber on different home shards (`stable_hash(client id) %
//! shards`), so a message crosses the mesh before it is logged on the subscriber's shard.
//!
//! Each check runs once per way down ([`Down`]): after a clean stop everything the broker
//! had must come back; after `kill -9` everything it had acknowledged (PUBACK / PUBREC to a
//! publisher, SUBACK, CONNACK), everything it had sent, and every DISCONNECT it had acted on
//! (closed the connection after).

pub mod common;

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ringmq::protocol::{Ack, Packet, ProtocolVersion, QoS, ReasonCode};
use ringmq::shard::mesh::stable_hash;

const SHARDS: usize = 4;

/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// How the broker goes down between two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Down {
    /// SIGTERM; the broker must exit 0.
    Stop,
    /// SIGKILL: nothing is flushed or closed.
    Kill9,
}

/// Takes the broker down as `down` says and starts it again on the same data directory.
fn bounce(broker: &mut Broker, down: Down) {
    match down {
        Down::Stop => broker.stop(),
        Down::Kill9 => broker.kill9(),
    }
    broker.restart();
}

/// `$check(version, down)` as one test per line: `name: version, down;`.
macro_rules! restart_tests {
    ($check:ident => $($name:ident: $v:expr, $down:expr;)+) => {
        $(
            #[test]
            fn $name() {
                $check($v, $down)
            }
        )+
    };
}

fn durable_broker() -> Broker {
    Broker::with_shards(SHARDS)
}

/// A client id whose home is `shard` of [`SHARDS`].
fn id_on_shard(prefix: &str, shard: usize) -> String {
    client_id_on_shard(prefix, shard, SHARDS)
}

fn other_version(v: ProtocolVersion) -> ProtocolVersion {
    if v.is_v5() {
        V311
    } else {
        V5
    }
}

/// A persistent session subscribed to `topic_filter` at `granted`, then disconnected.
fn park(broker: &Broker, v: ProtocolVersion, id: &str, topic_filter: &str, granted: QoS) {
    let mut c = Client::connect(broker.addr(), connect_persistent(v, id));
    assert!(
        !c.session_present(),
        "{id}: fresh session, Session Present 0"
    );
    c.subscribe_one(topic_filter, granted);
    c.disconnect();
}

/// Reconnects persistent session `id` and requires Session Present 1.
fn resume(broker: &Broker, v: ProtocolVersion, id: &str) -> Client {
    let c = Client::connect(broker.addr(), connect_persistent(v, id));
    assert!(
        c.session_present(),
        "{id}: the persistent session did not survive the restart (Session Present 0)"
    );
    c
}

/// `"<tag> <n>"` split into its parts.
fn tagged(payload: &str) -> (String, usize) {
    let (tag, n) = payload
        .split_once(' ')
        .unwrap_or_else(|| panic!("payload {payload:?} is not \"<tag> <n>\""));
    let n = n
        .parse()
        .unwrap_or_else(|_| panic!("payload {payload:?} has no number"));
    (tag.to_owned(), n)
}

// [MQTT-3.1.2-5] (3.1.1) / [MQTT-3.1.2-23] (5.0): the QoS 1 and 2 messages stored for an
// offline persistent session are session state, so a restart loses none whose PUBACK /
// PUBREC reached the publisher. On reconnection Session Present is 1 ([MQTT-3.2.2-2] (3.1.1),
// [MQTT-3.2.2-3] (5.0)); the messages arrive in publish order per publisher [MQTT-4.6.0-5],
// at their own QoS, with DUP 0 since they were never sent (DUP says only whether the packet
// is a retransmission [MQTT-3.3.1-3]); and the subscription survived too: a message
// published after the restart arrives live.
fn check_queued_survive(v: ProtocolVersion, down: Down) {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    const N: usize = 40;
    let mut broker = durable_broker();
    let sub = id_on_shard("dq-sub", 0);
    park(&broker, v, &sub, "dq/#", QoS::ExactlyOnce);
    let mut a = broker.client(v, &id_on_shard("dq-pub-a", 1));
    let mut b = broker.client(other_version(v), &id_on_shard("dq-pub-b", 2));
    for i in 0..N {
        a.publish("dq/a", format!("a {i}").as_bytes(), qos(1 + (i % 2) as u8));
        b.publish("dq/b", format!("b {i}").as_bytes(), qos(2 - (i % 2) as u8));
    }
    bounce(&mut broker, down);

    let mut c = resume(&broker, v, &sub);
    let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
    for _ in 0..2 * N {
        let p = c.recv_message();
        let (tag, n) = tagged(&text(&p));
        let want_qos = match tag.as_str() {
            "a" => 1 + n % 2,
            _ => 2 - n % 2,
        };
        assert_eq!(p.qos as usize, want_qos, "QoS of {:?}", text(&p));
        assert!(!p.dup, "never sent before, yet DUP 1: {p:?}");
        match tag.as_str() {
            "a" => from_a.push(n),
            "b" => from_b.push(n),
            _ => panic!("unexpected message {p:?}"),
        }
    }
    let all: Vec<usize> = (0..N).collect();
    assert_eq!(from_a, all, "publisher a's messages after the restart");
    assert_eq!(from_b, all, "publisher b's messages after the restart");
    c.expect_nothing(QUIET);

    let mut live = broker.client(v, &id_on_shard("dq-live", 3));
    live.publish("dq/live", b"live", QoS::AtLeastOnce);
    assert_eq!(
        message(&c.recv_message()),
        ("dq/live".to_owned(), "live".to_owned()),
        "the recovered subscription delivers live messages"
    );
}
restart_tests!(check_queued_survive =>
    queued_qos1_qos2_survive_restart_v311_ringmq_only_mqtt_3_1_2_5: V311, Down::Stop;
    queued_qos1_qos2_survive_kill9_v311_ringmq_only_mqtt_3_1_2_5: V311, Down::Kill9;
    queued_qos1_qos2_survive_restart_v5_ringmq_only_mqtt_3_1_2_23: V5, Down::Stop;
    queued_qos1_qos2_survive_kill9_v5_ringmq_only_mqtt_3_1_2_23: V5, Down::Kill9;
);

// [MQTT-4.4.0-1] with [MQTT-3.3.1-1]: QoS 1 messages the server had sent but the subscriber
// had not acknowledged when the broker went down are resent on reconnection with their
// original packet ids and DUP 1 (`3a`), in the order first sent [MQTT-4.6.0-6] (3.1.1).
// After a clean stop, what was acknowledged stays acknowledged: nothing comes back after one
// more restart. (After `kill -9` a QoS 1 message may legally arrive twice, so that last part is
// checked for the clean stop only.)
fn check_inflight_resent(v: ProtocolVersion, down: Down) {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = durable_broker();
    let sub = id_on_shard("di-sub", 0);
    park(&broker, v, &sub, "di/t", QoS::AtLeastOnce);
    let mut c = resume(&broker, v, &sub);
    let mut publisher = broker.client(v, &id_on_shard("di-pub", 1));
    publisher.publish("di/t", b"first", QoS::AtLeastOnce);
    let first = c.expect_publish(0x32, "di/t", b"first");
    publisher.publish("di/t", b"second", QoS::AtLeastOnce);
    let second = c.expect_publish(0x32, "di/t", b"second");
    bounce(&mut broker, down);

    let mut c = resume(&broker, v, &sub);
    for (id, payload) in [(first, &b"first"[..]), (second, b"second")] {
        assert_eq!(
            to_hex(&c.recv_raw()),
            to_hex(&publish_bytes(v, 0x3a, "di/t", id, payload)),
            "unacknowledged PUBLISH resent after the restart: same id, DUP 1"
        );
    }
    c.ack_id(QoS::AtLeastOnce, first);
    c.ack_id(QoS::AtLeastOnce, second);
    c.expect_nothing(QUIET);
    if down == Down::Stop {
        c.disconnect();
        bounce(&mut broker, down);
        let mut c = resume(&broker, v, &sub);
        c.expect_nothing(QUIET);
    }
}
restart_tests!(check_inflight_resent =>
    inflight_qos1_resent_with_dup_after_restart_v311_ringmq_only_mqtt_4_4_0_1: V311, Down::Stop;
    inflight_qos1_resent_with_dup_after_kill9_v311_ringmq_only_mqtt_4_4_0_1: V311, Down::Kill9;
    inflight_qos1_resent_with_dup_after_restart_v5_ringmq_only_mqtt_4_4_0_1: V5, Down::Stop;
    inflight_qos1_resent_with_dup_after_kill9_v5_ringmq_only_mqtt_4_4_0_1: V5, Down::Kill9;
);

// [MQTT-4.4.0-1] Outbound QoS 2 state across a restart: a message whose PUBREC the server
// had received gets its PUBREL resent with the same packet id (`62 02 <id>`), not the
// PUBLISH (no PUBLISH again once PUBREL was sent: [MQTT-4.3.3-6] (5.0), a bullet of
// [MQTT-4.3.3-1] (3.1.1)); a message not yet PUBREC'd is resent as PUBLISH with DUP 1 (`3c`)
// and its id. The two may come in either order. Once both flows are complete nothing more
// arrives.
fn check_pubrel_resent(v: ProtocolVersion, down: Down) {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = durable_broker();
    let sub = id_on_shard("dr-sub", 0);
    park(&broker, v, &sub, "dr/#", QoS::ExactlyOnce);
    let mut c = resume(&broker, v, &sub);
    let mut publisher = broker.client(v, &id_on_shard("dr-pub", 1));
    publisher.publish("dr/a", b"released", QoS::ExactlyOnce);
    let a = c
        .expect_publish(0x34, "dr/a", b"released")
        .expect("QoS 2 id");
    c.send_mqtt(&Packet::PubRec(Ack::new(packet_id(a))));
    c.expect_bytes(&format!("62 02 {}", id_hex(a)));
    publisher.publish("dr/b", b"not received", QoS::ExactlyOnce);
    let b = c
        .expect_publish(0x34, "dr/b", b"not received")
        .expect("QoS 2 id");
    bounce(&mut broker, down);

    let mut c = resume(&broker, v, &sub);
    let mut got = vec![to_hex(&c.recv_raw()), to_hex(&c.recv_raw())];
    let mut want = vec![
        format!("62 02 {}", id_hex(a)),
        to_hex(&publish_bytes(v, 0x3c, "dr/b", Some(b), b"not received")),
    ];
    got.sort();
    want.sort();
    assert_eq!(
        got, want,
        "after the restart: PUBREL for the PUBREC'd message, PUBLISH DUP 1 for the other"
    );
    c.send_mqtt(&Packet::PubComp(Ack::new(packet_id(a))));
    c.send_mqtt(&Packet::PubRec(Ack::new(packet_id(b))));
    c.expect_bytes(&format!("62 02 {}", id_hex(b)));
    c.send_mqtt(&Packet::PubComp(Ack::new(packet_id(b))));
    c.expect_nothing(QUIET);
    if down == Down::Stop {
        c.disconnect();
        bounce(&mut broker, down);
        let mut c = resume(&broker, v, &sub);
        c.expect_nothing(QUIET);
    }
}
restart_tests!(check_pubrel_resent =>
    pubrel_resent_after_pubrec_across_restart_v311_ringmq_only_mqtt_4_4_0_1: V311, Down::Stop;
    pubrel_resent_after_pubrec_across_kill9_v311_ringmq_only_mqtt_4_4_0_1: V311, Down::Kill9;
    pubrel_resent_after_pubrec_across_restart_v5_ringmq_only_mqtt_4_3_3_6: V5, Down::Stop;
    pubrel_resent_after_pubrec_across_kill9_v5_ringmq_only_mqtt_4_3_3_6: V5, Down::Kill9;
);

// Exactly once for outbound QoS 2 across restarts ([MQTT-4.3.3-1] (3.1.1), the sender's
// side): a queue half drained before the restart, with more sent but not
// acknowledged when the broker went down, yields every message once, in order, and none of
// those completed before. PUBREL for a completed one may come again (its PUBCOMP may not
// have been read before the broker went down) and is answered with PUBCOMP.
fn check_partial_drain_qos2(v: ProtocolVersion, down: Down) {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = durable_broker();
    let sub = id_on_shard("dp-sub", 0);
    park(&broker, v, &sub, "dp/t", QoS::ExactlyOnce);
    let mut publisher = broker.client(v, &id_on_shard("dp-pub", 1));
    for i in 0..20 {
        publisher.publish("dp/t", format!("m {i}").as_bytes(), QoS::ExactlyOnce);
    }
    bounce(&mut broker, down);

    let mut c = resume(&broker, v, &sub);
    for i in 0..10 {
        assert_eq!(text(&c.recv_message()), format!("m {i}"));
    }
    // 10..20 go out now and stay unacknowledged; 20..30 join them.
    let mut publisher = broker.client(v, &id_on_shard("dp-pub", 1));
    for i in 20..30 {
        publisher.publish("dp/t", format!("m {i}").as_bytes(), QoS::ExactlyOnce);
    }
    let p = c.recv_publish();
    assert_eq!(text(&p), "m 10");
    bounce(&mut broker, down);

    let mut c = resume(&broker, v, &sub);
    let mut next = 10;
    let mut late_pubrels = 0;
    while next < 30 {
        match c.recv() {
            Packet::PubRel(r) => {
                late_pubrels += 1;
                c.send_mqtt(&Packet::PubComp(Ack::new(r.packet_id)));
            }
            Packet::Publish(p) => {
                assert_eq!(p.qos, QoS::ExactlyOnce, "{p:?}");
                assert_eq!(
                    text(&p),
                    format!("m {next}"),
                    "each message once, in order, after the restart"
                );
                c.ack(&p);
                next += 1;
            }
            other => panic!("expected PUBLISH or PUBREL, got {other:?}"),
        }
    }
    c.expect_nothing(QUIET);
    eprintln!("PUBRELs resent for messages completed before the restart: {late_pubrels}");
}
restart_tests!(check_partial_drain_qos2 =>
    qos2_queue_drained_across_restarts_exactly_once_v311_ringmq_only_mqtt_4_3_3_2: V311, Down::Stop;
    qos2_queue_drained_across_kill9_exactly_once_v311_ringmq_only_mqtt_4_3_3_2: V311, Down::Kill9;
    qos2_queue_drained_across_restarts_exactly_once_v5_ringmq_only_mqtt_4_3_3_2: V5, Down::Stop;
    qos2_queue_drained_across_kill9_exactly_once_v5_ringmq_only_mqtt_4_3_3_2: V5, Down::Kill9;
);

/// A new client subscribes to `topic_filter` and must receive exactly the retained
/// `(topic, payload)` pairs (RETAIN 1, any order), then a fence message, then nothing.
fn expect_retained(broker: &Broker, v: ProtocolVersion, topic_filter: &str, want: &[(&str, &str)]) {
    let mut sub = broker.client(v, "dret-late");
    sub.subscribe_one(topic_filter, QoS::AtLeastOnce);
    let mut got = BTreeSet::new();
    for _ in want {
        let p = sub.recv_message();
        assert!(p.retain, "retained message sent without RETAIN 1: {p:?}");
        got.insert(message(&p));
    }
    let want: BTreeSet<(String, String)> = want
        .iter()
        .map(|(t, p)| (t.to_string(), p.to_string()))
        .collect();
    assert_eq!(got, want, "retained messages after the restart");
    let mut fence = broker.client(v, "dret-fence");
    fence.publish("dret/fence", b"fence", QoS::AtLeastOnce);
    let p = sub.recv_message();
    assert_eq!(
        message(&p),
        ("dret/fence".to_owned(), "fence".to_owned()),
        "a retained message that should be gone arrived"
    );
    sub.expect_nothing(QUIET);
    sub.disconnect();
}

// [MQTT-3.3.1-5] A retained message is stored for future subscribers, a newer one replaces
// it, and an empty one clears it ([MQTT-3.3.1-10] (3.1.1), [MQTT-3.3.1-11] (3.1.1) /
// [MQTT-3.3.1-6] (5.0), [MQTT-3.3.1-7] (5.0)); the store outlives restarts: after each, a new
// subscription gets exactly what survived ([MQTT-3.3.1-6] (3.1.1) / [MQTT-3.3.1-9] (5.0)),
// also when a message recovered from the log is cleared or replaced later.
// Published at QoS 1 so that each change is acknowledged. The topics hash to several
// shards.
fn check_retained(v: ProtocolVersion, down: Down) {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = durable_broker();
    let mut p = broker.client(v, "dret-pub");
    for (topic_name, payload) in [
        ("dret/kept", "kept"),
        ("dret/cleared", "soon gone"),
        ("dret/replaced", "old"),
        ("dret/replaced", "new"),
        ("dret/cleared", ""),
    ] {
        p.publish_retained(topic_name, payload.as_bytes(), QoS::AtLeastOnce);
    }
    bounce(&mut broker, down);
    expect_retained(
        &broker,
        v,
        "dret/#",
        &[("dret/kept", "kept"), ("dret/replaced", "new")],
    );

    let mut p = broker.client(v, "dret-pub");
    p.publish_retained("dret/kept", b"", QoS::AtLeastOnce);
    p.publish_retained("dret/replaced", b"newer", QoS::AtLeastOnce);
    p.publish_retained("dret/late", b"late", QoS::AtLeastOnce);
    bounce(&mut broker, down);
    expect_retained(
        &broker,
        v,
        "dret/#",
        &[("dret/replaced", "newer"), ("dret/late", "late")],
    );
}
restart_tests!(check_retained =>
    retained_set_and_cleared_survive_restart_v311_ringmq_only_mqtt_3_3_1_5: V311, Down::Stop;
    retained_set_and_cleared_survive_kill9_v311_ringmq_only_mqtt_3_3_1_5: V311, Down::Kill9;
    retained_set_and_cleared_survive_restart_v5_ringmq_only_mqtt_3_3_1_5: V5, Down::Stop;
    retained_set_and_cleared_survive_kill9_v5_ringmq_only_mqtt_3_3_1_5: V5, Down::Kill9;
);

// [MQTT-4.3.3-2] (3.1.1) / [MQTT-4.3.3-10] (5.0): until it has received PUBREL, the receiver
// of a QoS 2 PUBLISH answers a PUBLISH with the same packet id with PUBREC and must not
// deliver the message onward again. PUBREC promised that across restarts too: the
// publisher's session comes back with the packet id, its resent PUBLISH (DUP 1, as
// MQTT-4.4.0-1 has the client do) gets PUBREC and is not routed, and PUBREL gets PUBCOMP
// (Success) [MQTT-4.3.3-11] (5.0). The persistent subscriber gets the message exactly once. A subscriber
// that subscribed after the restart gets it at most once: ringmq routes a QoS 2 message when
// it first receives it, and recovery may finish routing one it cannot prove had reached
// every shard, which a new subscription can catch; but never twice.
fn check_inbound_qos2(v: ProtocolVersion, down: Down) {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    const ID: u16 = 7;
    let mut broker = durable_broker();
    let sub = id_on_shard("dx-sub", 0);
    park(&broker, v, &sub, "dx/t", QoS::ExactlyOnce);
    let publisher = id_on_shard("dx-pub", 1);
    let mut p = Client::connect(broker.addr(), connect_persistent(v, &publisher));
    p.send_mqtt(&Packet::Publish(publish(
        "dx/t",
        b"once",
        QoS::ExactlyOnce,
        ID,
    )));
    match p.recv() {
        Packet::PubRec(a) if a.packet_id.get() == ID && a.reason.is_success() => {}
        other => panic!("expected PUBREC {ID} (success), got {other:?}"),
    }
    bounce(&mut broker, down);

    let mut late = broker.client(v, &id_on_shard("dx-late", 2));
    late.subscribe_one("dx/t", QoS::ExactlyOnce);
    let mut p = resume(&broker, v, &publisher);
    let mut again = publish("dx/t", b"once", QoS::ExactlyOnce, ID);
    again.dup = true;
    p.send_mqtt(&Packet::Publish(again));
    match p.recv() {
        Packet::PubRec(a) if a.packet_id.get() == ID && a.reason.is_success() => {}
        other => panic!("resent PUBLISH {ID} (DUP 1): expected PUBREC (success), got {other:?}"),
    }
    p.send_mqtt(&Packet::PubRel(Ack::new(packet_id(ID))));
    match p.recv() {
        Packet::PubComp(a) if a.packet_id.get() == ID => {
            assert_eq!(a.reason, ReasonCode::Success, "PUBCOMP {ID}: {a:?}");
        }
        other => panic!("PUBREL {ID}: expected PUBCOMP, got {other:?}"),
    }
    p.publish("dx/t", b"fence", QoS::AtLeastOnce);

    let mut before_fence = Vec::new();
    loop {
        match text(&late.recv_message()).as_str() {
            "fence" => break,
            other => before_fence.push(other.to_owned()),
        }
    }
    eprintln!("subscribed after the restart, received before the fence: {before_fence:?}");
    assert!(
        before_fence.len() <= 1,
        "a subscriber that subscribed after the restart got the QoS 2 message twice: \
         {before_fence:?}"
    );
    late.expect_nothing(QUIET);
    let mut s = resume(&broker, v, &sub);
    assert_eq!(text(&s.recv_message()), "once");
    assert_eq!(
        text(&s.recv_message()),
        "fence",
        "the QoS 2 message was delivered twice"
    );
    s.expect_nothing(QUIET);
}
restart_tests!(check_inbound_qos2 =>
    inbound_qos2_exactly_once_across_restart_v311_ringmq_only_mqtt_4_3_3_2: V311, Down::Stop;
    inbound_qos2_exactly_once_across_kill9_v311_ringmq_only_mqtt_4_3_3_2: V311, Down::Kill9;
    inbound_qos2_exactly_once_across_restart_v5_ringmq_only_mqtt_4_3_3_10: V5, Down::Stop;
    inbound_qos2_exactly_once_across_kill9_v5_ringmq_only_mqtt_4_3_3_10: V5, Down::Kill9;
);

/// A v5 persistent session with Session Expiry Interval `secs`, subscribed, disconnected.
fn park_expiring(broker: &Broker, id: &str, secs: u32) {
    let mut c = connect_persistent(V5, id);
    c.properties.session_expiry_interval = Some(secs);
    let mut c = Client::connect(broker.addr(), c);
    c.subscribe_one("de/t", QoS::AtLeastOnce);
    c.disconnect();
}

/// Sleeps until `deadline`.
fn sleep_until(deadline: Instant) {
    thread::sleep(deadline.saturating_duration_since(Instant::now()));
}

/// Takes the broker down, keeps it down until `up_at`, and starts it again.
fn down_until(broker: &mut Broker, down: Down, up_at: Instant) {
    match down {
        Down::Stop => broker.stop(),
        Down::Kill9 => broker.kill9(),
    }
    sleep_until(up_at);
    broker.restart();
}

/// Session Present of a Clean Start 0 reconnection of `id` (which ends the connection).
fn present_after_restart(broker: &Broker, id: &str) -> bool {
    let c = Client::connect(broker.addr(), connect_persistent(V5, id));
    let present = c.session_present();
    c.disconnect();
    present
}

// [MQTT-4.1.0-2] (5.0): the server discards a session once its connection is closed and its
// Session Expiry Interval has passed, and keeps it until then [MQTT-3.1.2-23]. The interval
// runs in wall-clock time from the disconnection, also while the broker is down: "de-down"
// (3 s) expires while the broker is down for 4 s, so the first reconnection after the
// restart finds no session, while "de-long" (300 s), which shows that sessions do survive
// the restart, is still there. The check comes 1 s or more after the deadline.
fn check_expired_while_down(down: Down) {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = durable_broker();
    park_expiring(&broker, "de-long", 300);
    park_expiring(&broker, "de-down", 3);
    let disconnected = Instant::now();
    down_until(&mut broker, down, disconnected + Duration::from_secs(4));
    let down_present = present_after_restart(&broker, "de-down");
    eprintln!(
        "de-down reconnected {:?} after its disconnection: Session Present {}",
        disconnected.elapsed(),
        u8::from(down_present)
    );
    assert!(
        !down_present,
        "de-down: its Session Expiry Interval (3 s) passed while the broker was down, yet \
         Session Present 1 {:?} after the disconnection",
        disconnected.elapsed()
    );
    assert!(
        present_after_restart(&broker, "de-long"),
        "de-long: the session did not survive the restart"
    );
}

// [MQTT-4.1.0-2], [MQTT-3.1.2-23]: see `check_expired_while_down`.
#[test]
fn session_expired_while_broker_down_is_gone_after_restart_v5_ringmq_only_mqtt_4_1_0_2() {
    check_expired_while_down(Down::Stop);
}

// [MQTT-4.1.0-2], [MQTT-3.1.2-23]: see `check_expired_while_down`.
#[test]
fn session_expired_while_broker_killed_is_gone_after_restart_v5_ringmq_only_mqtt_4_1_0_2() {
    check_expired_while_down(Down::Kill9);
}

// [MQTT-4.1.0-2] (5.0), the count goes on after a restart: "de-up" (8 s) is still there when
// the broker comes back 4 s after the disconnection, and must be gone 9.5 s after it. A
// broker that started the count again at recovery (4 s or later) would keep it until 12 s
// or later. "de-long" (300 s) shows that sessions do survive the restart.
fn check_expiry_counts_on_after_restart(down: Down) {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = durable_broker();
    park_expiring(&broker, "de-long", 300);
    park_expiring(&broker, "de-up", 8);
    let disconnected = Instant::now();
    down_until(&mut broker, down, disconnected + Duration::from_secs(4));
    sleep_until(disconnected + Duration::from_millis(9500));
    assert!(
        !present_after_restart(&broker, "de-up"),
        "de-up: its Session Expiry Interval (8 s) passed {:?} after the disconnection, yet \
         Session Present 1 (did the count start again at the restart?)",
        disconnected.elapsed()
    );
    assert!(
        present_after_restart(&broker, "de-long"),
        "de-long: the session did not survive the restart"
    );
}

// [MQTT-4.1.0-2]: see `check_expiry_counts_on_after_restart`.
#[test]
fn session_expiry_counts_on_after_restart_v5_ringmq_only_mqtt_4_1_0_2() {
    check_expiry_counts_on_after_restart(Down::Stop);
}

// [MQTT-4.1.0-2]: see `check_expiry_counts_on_after_restart`.
#[test]
fn session_expiry_counts_on_after_kill9_v5_ringmq_only_mqtt_4_1_0_2() {
    check_expiry_counts_on_after_restart(Down::Kill9);
}

/// Messages `c` receives until it has received `fence` and everything in `expected`, then
/// nothing more for [`QUIET`]; returns the payloads other than the fence, sorted.
fn receive_through_fence(c: &mut Client, fence: &str, expected: &[&str]) -> Vec<String> {
    let mut got = Vec::new();
    let mut fenced = false;
    while !fenced || !expected.iter().all(|e| got.iter().any(|g| g == e)) {
        let p = c.recv_message();
        match text(&p) {
            t if t == fence => fenced = true,
            t => got.push(t),
        }
    }
    c.expect_nothing(QUIET);
    got.sort();
    got
}

// Wills across a restart. [MQTT-3.1.2-10] and [MQTT-3.14.4-3] (both versions): the Will
// Message is removed from the session once the server has received a normal DISCONNECT, so
// the will of "dw-gone", which disconnected normally just before the broker went down, is
// never published. ringmq also logs the will of a persistent session while its client is
// connected: after `kill -9` the connection of "dw-held" ended without DISCONNECT, and its
// will is published once at the restart (and not again after a further restart). A
// persistent subscriber collects the wills while it is away.
fn check_wills(v: ProtocolVersion, down: Down) {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = durable_broker();
    let watcher = id_on_shard("dw-watch", 0);
    park(&broker, v, &watcher, "dw/#", QoS::AtLeastOnce);
    let with_will = |id: &str, topic_name: &str, payload: &[u8]| {
        let mut c = connect_persistent(v, id);
        c.will = Some(will(topic_name, payload, QoS::AtLeastOnce, false));
        Client::connect(broker.addr(), c)
    };
    let held = (down == Down::Kill9)
        .then(|| with_will(&id_on_shard("dw-held", 2), "dw/held", b"held will"));
    // The normal DISCONNECT is the last thing before the broker goes down.
    with_will(&id_on_shard("dw-gone", 1), "dw/gone", b"gone will").disconnect();
    bounce(&mut broker, down);
    drop(held);

    let expected: &[&str] = match down {
        Down::Stop => &[],
        Down::Kill9 => &["held will"],
    };
    let mut w = resume(&broker, v, &watcher);
    let mut fence = broker.client(v, &id_on_shard("dw-fence", 3));
    fence.publish("dw/fence", b"fence", QoS::AtLeastOnce);
    assert_eq!(
        receive_through_fence(&mut w, "fence", expected),
        expected,
        "wills published after the restart"
    );
    w.disconnect();

    bounce(&mut broker, Down::Stop);
    let mut w = resume(&broker, v, &watcher);
    let mut fence = broker.client(v, &id_on_shard("dw-fence", 3));
    fence.publish("dw/fence", b"fence", QoS::AtLeastOnce);
    assert_eq!(
        receive_through_fence(&mut w, "fence", &[]),
        Vec::<String>::new(),
        "wills published after a second restart"
    );
}
restart_tests!(check_wills =>
    will_removed_by_disconnect_stays_removed_after_restart_v311_ringmq_only_mqtt_3_1_2_10: V311, Down::Stop;
    will_after_kill9_published_once_not_after_disconnect_v311_ringmq_only_mqtt_3_1_2_10: V311, Down::Kill9;
    will_removed_by_disconnect_stays_removed_after_restart_v5_ringmq_only_mqtt_3_14_4_3: V5, Down::Stop;
    will_after_kill9_published_once_not_after_disconnect_v5_ringmq_only_mqtt_3_14_4_3: V5, Down::Kill9;
);

// Subscriptions are session state ([MQTT-3.1.2-4] (3.1.1), [MQTT-3.1.2-5] (5.0)): after a
// restart, resuming without SUBSCRIBE gets live messages for every filter the session held
// (exact, `+`, `#`), each at the QoS granted (the lower of the publish and subscription
// QoS), and none for a filter it unsubscribed before the restart.
fn check_subscriptions_survive(v: ProtocolVersion, down: Down) {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = durable_broker();
    let sub = id_on_shard("ds-sub", 0);
    let mut c = Client::connect(broker.addr(), connect_persistent(v, &sub));
    let ack = c.subscribe(&[
        ("ds/exact", QoS::AtLeastOnce),
        ("ds/+/plus", QoS::ExactlyOnce),
        ("ds/hash/#", QoS::AtMostOnce),
        ("ds/dropped", QoS::AtLeastOnce),
    ]);
    assert_eq!(
        ack.reasons.iter().map(|r| *r as u8).collect::<Vec<_>>(),
        [1, 2, 0, 1]
    );
    c.unsubscribe(&["ds/dropped"]);
    c.disconnect();
    bounce(&mut broker, down);

    let mut c = resume(&broker, v, &sub);
    let mut p = broker.client(other_version(v), &id_on_shard("ds-pub", 1));
    p.publish("ds/dropped", b"dropped", QoS::AtLeastOnce);
    p.publish("ds/exact", b"exact", QoS::ExactlyOnce);
    p.publish("ds/x/plus", b"plus", QoS::ExactlyOnce);
    p.publish("ds/hash/a/b", b"hash", QoS::AtLeastOnce);
    let mut got = BTreeSet::new();
    for _ in 0..3 {
        let m = c.recv_message();
        got.insert((m.topic.as_str().to_owned(), text(&m), m.qos as u8));
    }
    let want: BTreeSet<(String, String, u8)> = [
        ("ds/exact", "exact", 1),
        ("ds/x/plus", "plus", 2),
        ("ds/hash/a/b", "hash", 0),
    ]
    .into_iter()
    .map(|(t, m, q)| (t.to_owned(), m.to_owned(), q))
    .collect();
    assert_eq!(got, want, "(topic, payload, QoS) after the restart");
    c.expect_nothing(QUIET);
}
restart_tests!(check_subscriptions_survive =>
    subscriptions_survive_restart_v311_ringmq_only_mqtt_3_1_2_4: V311, Down::Stop;
    subscriptions_survive_kill9_v311_ringmq_only_mqtt_3_1_2_4: V311, Down::Kill9;
    subscriptions_survive_restart_v5_ringmq_only_mqtt_3_1_2_5: V5, Down::Stop;
    subscriptions_survive_kill9_v5_ringmq_only_mqtt_3_1_2_5: V5, Down::Kill9;
);

// A session's home shard is hash(client id) % shards, so a different shard count moves
// sessions between shards. Across 4 -> 2 -> 3 shards, with a batch of messages queued in
// each run, every session comes back with every message in order and its subscription,
// and retained messages (placed by hash(topic)) are all still there.
fn check_shard_count_change(down: Down) {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    const SESSIONS: usize = 8;
    const PER_BATCH: usize = 3;
    let runs = [4, 2, 3];
    let mut broker = Broker::with_shards(runs[0]);
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("rh-{i}")).collect();
    let version = |i: usize| if i % 2 == 0 { V311 } else { V5 };
    let granted = |i: usize| qos(1 + (i % 2) as u8);
    let moved = ids
        .iter()
        .filter(|id| {
            let homes: BTreeSet<u64> = runs
                .iter()
                .map(|&n| stable_hash(id.as_bytes()) % n as u64)
                .collect();
            homes.len() > 1
        })
        .count();
    eprintln!("{moved} of {SESSIONS} sessions change home shard across {runs:?} shards");
    assert!(moved > SESSIONS / 2, "the ids should exercise re-homing");
    for (i, id) in ids.iter().enumerate() {
        park(&broker, version(i), id, &format!("rh/{i}"), granted(i));
    }

    for (batch, &shards) in runs.iter().enumerate() {
        if batch > 0 {
            match down {
                Down::Stop => broker.stop(),
                Down::Kill9 => broker.kill9(),
            }
            broker.restart_with_shards(shards);
        }
        let mut p = broker.client(V5, "rh-pub");
        for i in 0..SESSIONS {
            for n in 0..PER_BATCH {
                let payload = format!("b{batch} {n}");
                p.publish(&format!("rh/{i}"), payload.as_bytes(), granted(i));
            }
        }
        p.publish_retained(
            &format!("rh-ret/{batch}"),
            format!("retained {batch}").as_bytes(),
            QoS::AtLeastOnce,
        );
    }

    let mut p = broker.client(V5, "rh-pub");
    for (i, id) in ids.iter().enumerate() {
        let mut c = resume(&broker, version(i), id);
        for batch in 0..runs.len() {
            for n in 0..PER_BATCH {
                let m = c.recv_message();
                assert_eq!(
                    text(&m),
                    format!("b{batch} {n}"),
                    "{id} (home shard {} of 4, then {} of 2, then {} of 3)",
                    stable_hash(id.as_bytes()) % 4,
                    stable_hash(id.as_bytes()) % 2,
                    stable_hash(id.as_bytes()) % 3
                );
                assert_eq!(m.qos, granted(i));
            }
        }
        c.expect_nothing(Duration::from_millis(50));
        p.publish(&format!("rh/{i}"), b"live", QoS::ExactlyOnce);
        assert_eq!(text(&c.recv_message()), "live", "{id}: subscription");
    }

    let mut r = broker.client(V311, "rh-ret-sub");
    r.subscribe_one("rh-ret/#", QoS::AtLeastOnce);
    let got: BTreeSet<String> = runs.iter().map(|_| text(&r.recv_message())).collect();
    let want: BTreeSet<String> = (0..runs.len()).map(|b| format!("retained {b}")).collect();
    assert_eq!(got, want, "retained messages after the shard-count changes");
}

#[test]
fn shard_count_change_rehomes_sessions_restart_ringmq_only() {
    check_shard_count_change(Down::Stop);
}

#[test]
fn shard_count_change_rehomes_sessions_kill9_ringmq_only() {
    check_shard_count_change(Down::Kill9);
}

// [MQTT-3.1.2-6] (3.1.1): a CleanSession 1 session lasts as long as its connection and its
// state must not be reused; in 5.0 a session with Clean Start 1 discards the old one
// [MQTT-3.1.2-4] (5.0) and one with Session Expiry Interval 0 ends with its connection
// [MQTT-3.1.2-23] (5.0). None of them may come back from the disk: after the restart a Clean
// Start 0 reconnection gets Session Present 0 ([MQTT-3.2.2-3]) and no old subscription
// delivers. Covered: a clean session still connected (with a message in flight) when the
// broker goes down, one that had ended, a persistent session that a clean one replaced, and
// (5.0) Clean Start 0 with no Session Expiry Interval.
fn check_clean_leaves_nothing(v: ProtocolVersion, down: Down) {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = durable_broker();
    let mut ids = vec![
        id_on_shard("dc-online", 0),
        id_on_shard("dc-ended", 1),
        id_on_shard("dc-replaced", 2),
    ];
    let mut online = broker.client(v, &ids[0]);
    online.subscribe_one("dc/t", QoS::AtLeastOnce);
    let mut ended = broker.client(v, &ids[1]);
    ended.subscribe_one("dc/t", QoS::AtLeastOnce);
    ended.disconnect();
    park(&broker, v, &ids[2], "dc/t", QoS::AtLeastOnce);
    let replaced = broker.client(v, &ids[2]);
    assert!(!replaced.session_present());
    replaced.disconnect();
    if v.is_v5() {
        let id = id_on_shard("dc-no-expiry", 3);
        let mut c = connect(V5, &id);
        c.clean_start = false;
        let mut c = Client::connect(broker.addr(), c);
        c.subscribe_one("dc/t", QoS::AtLeastOnce);
        c.disconnect();
        ids.push(id);
    }
    let mut p = broker.client(v, "dc-pub");
    p.publish("dc/t", b"in flight", QoS::AtLeastOnce);
    online.expect_publish(0x32, "dc/t", b"in flight");
    bounce(&mut broker, down);

    let mut clients: Vec<Client> = ids
        .iter()
        .map(|id| {
            let c = Client::connect(broker.addr(), connect_persistent(v, id));
            assert!(
                !c.session_present(),
                "{id}: a clean session came back from the disk"
            );
            c
        })
        .collect();
    let mut p = broker.client(v, "dc-pub");
    p.publish("dc/t", b"after", QoS::AtLeastOnce);
    for c in &mut clients {
        c.expect_nothing(QUIET);
    }
}
restart_tests!(check_clean_leaves_nothing =>
    clean_session_not_recovered_after_restart_v311_ringmq_only_mqtt_3_1_2_6: V311, Down::Stop;
    clean_session_not_recovered_after_kill9_v311_ringmq_only_mqtt_3_1_2_6: V311, Down::Kill9;
    clean_session_not_recovered_after_restart_v5_ringmq_only_mqtt_3_1_2_4: V5, Down::Stop;
    clean_session_not_recovered_after_kill9_v5_ringmq_only_mqtt_3_1_2_4: V5, Down::Kill9;
);

/// The lines of the current run's log that contain `recovered`, once there are `count` of
/// them (the log may lag the listening port a little).
fn recovery_lines(broker: &Broker, count: usize) -> Vec<String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let log = broker.log_of_this_run();
        let lines: Vec<String> = log
            .lines()
            .filter(|l| l.contains("recovered"))
            .map(str::to_owned)
            .collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// Each shard logs its recovery once per start, with what it read and how long it took.
fn check_recovery_logged(down: Down) {
    if skip_unless_ringmq("ringmq's log") {
        return;
    }
    let mut broker = durable_broker();
    park(&broker, V5, "dl-sub", "dl/t", QoS::AtLeastOnce);
    let mut p = broker.client(V311, "dl-pub");
    for i in 0..10 {
        p.publish("dl/t", format!("{i}").as_bytes(), QoS::AtLeastOnce);
    }
    bounce(&mut broker, down);
    let lines = recovery_lines(&broker, SHARDS);
    for line in &lines {
        eprintln!("{line}");
    }
    assert_eq!(
        lines.len(),
        SHARDS,
        "one `recovered` line per shard\n--- log of this run ---\n{}",
        broker.log_of_this_run()
    );
    assert_eq!(text(&resume(&broker, V5, "dl-sub").recv_message()), "0");
}

#[test]
fn recovery_logged_once_per_shard_after_restart_ringmq_only() {
    check_recovery_logged(Down::Stop);
}

#[test]
fn recovery_logged_once_per_shard_after_kill9_ringmq_only() {
    check_recovery_logged(Down::Kill9);
}

// [MQTT-3.3.2-5] (5.0): a queued message whose Message Expiry Interval has passed is not
// delivered; [MQTT-3.3.2-6] (5.0): one that is delivered carries what is left of its
// interval.
// The offline queue is on disk, and the clock keeps counting across a restart.
#[test]
fn queued_messages_expire_and_carry_the_time_left_ringmq_only_mqtt_3_3_2_5() {
    if skip_unless_ringmq("expiry of messages in the on-disk queue") {
        return;
    }
    let v = ProtocolVersion::V5;
    let mut broker = Broker::start(BrokerOptions::default().shards(SHARDS));
    let mut c = Client::connect(broker.addr(), connect_persistent(v, "expiring"));
    c.subscribe_one("exp/t", QoS::AtLeastOnce);
    c.disconnect();
    let mut publisher = broker.client(v, "exp-pub");
    for (payload, secs) in [("short", 1), ("long", 600), ("forever", 0)] {
        let mut p = publish("exp/t", payload.as_bytes(), QoS::AtLeastOnce, 1);
        p.properties.message_expiry_interval = (secs > 0).then_some(secs);
        publisher.publish_packet(p);
    }
    drop(publisher);
    broker.kill9();
    thread::sleep(Duration::from_millis(2100));
    broker.restart();
    let mut c = Client::connect(broker.addr(), connect_persistent(v, "expiring"));
    assert!(c.session_present());
    let long = c.recv_message();
    assert_eq!(text(&long), "long", "the 1 s message expired while queued");
    let left = long.properties.message_expiry_interval;
    assert!(
        left.is_some_and(|s| (590..600).contains(&s)),
        "the 600 s message carries what is left of it: {left:?}"
    );
    let forever = c.recv_message();
    assert_eq!(text(&forever), "forever");
    assert_eq!(forever.properties.message_expiry_interval, None);
    c.expect_nothing(QUIET);
}

// Retained messages sent to a persistent session at SUBSCRIBE are queued like any other
// delivery: those behind its window, and the one in flight, survive a kill -9.
#[test]
fn retained_messages_queued_at_subscribe_survive_kill9_v5_ringmq_only() {
    if skip_unless_ringmq("ringmq logs retained deliveries to persistent sessions") {
        return;
    }
    let v = ProtocolVersion::V5;
    let mut broker = Broker::start(BrokerOptions::default().shards(SHARDS));
    let mut publisher = broker.client(v, "ret-pub");
    for n in 0..3 {
        let topic_name = format!("rq/{n}");
        publisher.publish_retained(&topic_name, format!("r{n}").as_bytes(), QoS::AtLeastOnce);
    }
    let mut narrow = connect_persistent(v, "ret-sub");
    narrow.properties.receive_maximum = std::num::NonZeroU16::new(1);
    let mut c = Client::connect(broker.addr(), narrow);
    c.subscribe_one("rq/+", QoS::AtLeastOnce);
    let first = c.recv_publish();
    assert!(first.retain, "sent as retained (MQTT-3.3.1-8 of 3.1.1)");
    c.expect_nothing(QUIET);
    drop(c);
    broker.kill9();
    broker.restart();
    let mut c = Client::connect(broker.addr(), connect_persistent(v, "ret-sub"));
    assert!(c.session_present());
    let resent = c.recv_message();
    assert_eq!((text(&resent), resent.dup), (text(&first), true));
    let mut rest: Vec<String> = (0..2).map(|_| text(&c.recv_message())).collect();
    rest.push(text(&first));
    rest.sort();
    assert_eq!(rest, ["r0", "r1", "r2"]);
    c.expect_nothing(QUIET);
}
