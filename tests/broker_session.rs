//! Sessions against a running broker: a persistent session keeps its subscriptions and
//! collects QoS 1/2 messages while its client is away, resends what was unacknowledged with
//! DUP 1, and a clean session (v5: clean start, or expiry 0) throws all of that away.
//!
//! The session tests run with four shards: the publisher and the resumed client are often
//! on different shards from each other and from the shard that accepted the connection.

pub mod common;

use std::time::Duration;

use common::*;
use ringmq::protocol::{Ack, Packet, ProtocolVersion};

const QUIET: Duration = Duration::from_millis(200);

fn broker() -> Broker {
    Broker::with_shards(4)
}

/// A persistent session subscribed to `filter` at QoS `granted`, then disconnected.
fn park_session(broker: &Broker, v: ProtocolVersion, id: &str, filter: &str, granted: u8) {
    let mut c = Client::connect(broker.addr(), connect_persistent(v, id));
    assert!(!c.session_present(), "fresh session: Session Present 0");
    c.subscribe_one(filter, qos(granted));
    c.disconnect();
}

// [MQTT-3.1.2-5] (3.1.1) / [MQTT-3.1.2-23] (5.0) (Session Expiry Interval > 0): after a
// CleanSession 0 client disconnects, the server stores QoS 1 and 2 messages for its
// subscriptions; on reconnection Session Present is 1 ([MQTT-3.2.2-2] (3.1.1) /
// [MQTT-3.2.2-3] (5.0)) and they are delivered, in order [MQTT-4.6.0-5].
fn check_queued_delivered(v: ProtocolVersion) {
    const N: usize = 100;
    let broker = broker();
    park_session(&broker, v, "parked", "s/t", 2);
    let mut publisher = broker.client(v, "pub");
    for i in 0..N {
        publisher.publish("s/t", format!("{i}").as_bytes(), qos(1 + (i % 2) as u8));
    }
    let mut c = Client::connect(broker.addr(), connect_persistent(v, "parked"));
    assert!(c.session_present(), "stored session: Session Present 1");
    for i in 0..N {
        let p = c.recv_message();
        assert_eq!(
            (text(&p), p.qos as usize),
            (format!("{i}"), 1 + i % 2),
            "queued message {i}"
        );
    }
    c.expect_nothing(QUIET);
    // The subscription is part of the session too: live messages flow.
    publisher.publish("s/t", b"live", qos(1));
    assert_eq!(text(&c.recv_message()), "live");
}
test_versions!(check_queued_delivered => queued_messages_delivered_on_resume_v311_mqtt_3_1_2_5,
    queued_messages_delivered_on_resume_v5_mqtt_3_1_2_23);

// [MQTT-4.4.0-1] with [MQTT-3.3.1-1]: a QoS 1 PUBLISH the client had not acknowledged when
// its connection dropped is sent again on resumption, with the same packet id and DUP 1:
// exactly `3a <len> <topic> <id> [00] <payload>`.
fn check_qos1_resent_with_dup(v: ProtocolVersion) {
    let broker = broker();
    park_session(&broker, v, "forgetful", "s/t", 1);
    let mut publisher = broker.client(v, "pub");
    let mut c = Client::connect(broker.addr(), connect_persistent(v, "forgetful"));
    publisher.publish("s/t", b"unacked", qos(1));
    let first = c.expect_publish(0x32, "s/t", b"unacked");
    c.into_raw().drop_connection();

    let mut c = Client::connect(broker.addr(), connect_persistent(v, "forgetful"));
    assert!(c.session_present());
    let raw = c.recv_raw();
    assert_eq!(
        to_hex(&raw),
        to_hex(&publish_bytes(v, 0x3a, "s/t", first, b"unacked")),
        "resent PUBLISH: same id, DUP 1"
    );
    c.ack_id(qos(1), first);
    c.expect_nothing(QUIET);
}
test_versions!(check_qos1_resent_with_dup => unacknowledged_qos1_resent_with_dup_on_resume_v311_mqtt_4_4_0_1,
    unacknowledged_qos1_resent_with_dup_on_resume_v5_mqtt_4_4_0_1);

// [MQTT-4.4.0-1] A QoS 2 PUBLISH not yet answered with PUBREC is resent with DUP 1 (`3c`),
// and a PUBREL not yet answered with PUBCOMP is resent as `62 02 <id>`, both with their
// original packet ids; the message is delivered once. The server treats the PUBLISH as
// unacknowledged until PUBREC [MQTT-4.3.3-3] (5.0) and the PUBREL until PUBCOMP
// [MQTT-4.3.3-5] (5.0).
fn check_qos2_resume(v: ProtocolVersion) {
    let broker = broker();
    park_session(&broker, v, "slow", "s/#", 2);
    let mut publisher = broker.client(v, "pub");
    let mut c = Client::connect(broker.addr(), connect_persistent(v, "slow"));
    publisher.publish("s/a", b"no pubrec", qos(2));
    let a = c.expect_publish(0x34, "s/a", b"no pubrec");
    c.into_raw().drop_connection();

    let mut c = Client::connect(broker.addr(), connect_persistent(v, "slow"));
    assert_eq!(
        to_hex(&c.recv_raw()),
        to_hex(&publish_bytes(v, 0x3c, "s/a", a, b"no pubrec"))
    );
    let a = a.expect("QoS 2 id");
    c.send_mqtt(&Packet::PubRec(Ack::new(packet_id(a))));
    c.expect_bytes(&format!("62 02 {}", id_hex(a)));
    c.into_raw().drop_connection();

    let mut c = Client::connect(broker.addr(), connect_persistent(v, "slow"));
    c.expect_bytes(&format!("62 02 {}", id_hex(a)));
    c.send_mqtt(&Packet::PubComp(Ack::new(packet_id(a))));
    c.expect_nothing(QUIET);
}
test_versions!(check_qos2_resume => unacknowledged_qos2_and_pubrel_resent_on_resume_v311_mqtt_4_4_0_1,
    unacknowledged_qos2_and_pubrel_resent_on_resume_v5_mqtt_4_4_0_1);

// [MQTT-3.1.2-6] (3.1.1) CleanSession 1 discards the stored session: Session Present 0, the
// old subscription is gone, nothing queued is delivered, and the session is not reused by a
// later CleanSession 0 connection (Session Present 0 again).
#[test]
fn clean_session_discards_stored_session_v311_mqtt_3_1_2_6() {
    let broker = broker();
    park_session(&broker, V311, "reset", "s/t", 1);
    let mut publisher = broker.client(V311, "pub");
    publisher.publish("s/t", b"queued", qos(1));
    let mut c = broker.client(V311, "reset");
    assert!(!c.session_present());
    c.subscribe_one("fence/end", qos(1));
    publisher.publish("s/t", b"after", qos(1));
    publisher.publish("fence/end", b"fence", qos(1));
    assert_eq!(
        message(&c.recv_message()),
        ("fence/end".to_owned(), "fence".to_owned()),
        "the discarded session's subscription or queue delivered a message"
    );
    c.expect_nothing(QUIET);
    c.disconnect();
    let c = Client::connect(broker.addr(), connect_persistent(V311, "reset"));
    assert!(!c.session_present(), "a clean session must not be reused");
}

// [MQTT-3.1.2-4] (5.0) Clean Start 1 discards the existing session: Session Present 0 and
// the old subscription is gone.
#[test]
fn clean_start_discards_stored_session_v5_mqtt_3_1_2_4() {
    let broker = broker();
    park_session(&broker, V5, "reset", "s/t", 1);
    let mut publisher = broker.client(V5, "pub");
    publisher.publish("s/t", b"queued", qos(1));
    let mut c = broker.client(V5, "reset");
    assert!(!c.session_present());
    c.subscribe_one("fence/end", qos(1));
    publisher.publish("s/t", b"after", qos(1));
    publisher.publish("fence/end", b"fence", qos(1));
    assert_eq!(message(&c.recv_message()).0, "fence/end");
    c.expect_nothing(QUIET);
}

// [MQTT-3.1.2-23] (5.0) A session is kept after the connection closes only if its Session
// Expiry Interval is above 0: with none (0), Clean Start 0 later finds no session.
#[test]
fn session_expiry_0_ends_session_with_connection_v5_mqtt_3_1_2_23() {
    let broker = broker();
    let mut c = connect_persistent(V5, "brief");
    c.properties.session_expiry_interval = None;
    let mut c = Client::connect(broker.addr(), c);
    c.subscribe_one("s/t", qos(1));
    c.disconnect();
    let c = Client::connect(broker.addr(), connect_persistent(V5, "brief"));
    assert!(
        !c.session_present(),
        "expiry 0: the session ended with the connection"
    );
}

// [MQTT-3.1.2-4] (3.1.1) / [MQTT-3.1.2-5] (5.0) Resuming a session does not need a new
// SUBSCRIBE, and a session stays resumable across several connections.
fn check_resume_twice(v: ProtocolVersion) {
    let broker = broker();
    park_session(&broker, v, "again", "s/t", 1);
    let mut publisher = broker.client(v, "pub");
    for round in 0..3 {
        publisher.publish("s/t", format!("offline {round}").as_bytes(), qos(1));
        let mut c = Client::connect(broker.addr(), connect_persistent(v, "again"));
        assert!(c.session_present(), "round {round}");
        assert_eq!(text(&c.recv_message()), format!("offline {round}"));
        publisher.publish("s/t", format!("online {round}").as_bytes(), qos(1));
        assert_eq!(text(&c.recv_message()), format!("online {round}"));
        c.disconnect();
    }
}
test_versions!(check_resume_twice => session_resumed_repeatedly_v311_mqtt_3_1_2_4,
    session_resumed_repeatedly_v5_mqtt_3_1_2_5);

// [MQTT-3.1.2-5] (3.1.1) / [MQTT-3.1.2-23] (5.0) QoS 0 messages may or may not be stored
// for an offline session, but QoS 1 ones must: with both published while away, every QoS 1
// message arrives, in order, and any QoS 0 ones that do arrive are in order too.
fn check_mixed_qos_offline(v: ProtocolVersion) {
    let broker = broker();
    park_session(&broker, v, "mixed", "s/t", 1);
    let mut publisher = broker.client(v, "pub");
    for i in 0..20 {
        publisher.publish("s/t", format!("q1 {i}").as_bytes(), qos(1));
        publisher.publish("s/t", format!("q0 {i}").as_bytes(), qos(0));
    }
    publisher.ping();
    let mut c = Client::connect(broker.addr(), connect_persistent(v, "mixed"));
    c.subscribe_one("fence/end", qos(1));
    publisher.publish("fence/end", b"fence", qos(1));
    let (mut q1, mut q0) = (Vec::new(), Vec::new());
    loop {
        let p = c.recv_message();
        if p.topic.as_str() == "fence/end" {
            break;
        }
        let t = text(&p);
        let (kind, n) = t.split_once(' ').expect("kind and number");
        let n: u32 = n.parse().expect("number");
        if kind == "q1" {
            q1.push(n)
        } else {
            q0.push(n)
        }
    }
    assert_eq!(
        q1,
        (0..20).collect::<Vec<_>>(),
        "QoS 1 messages stored for the session"
    );
    assert!(
        q0.windows(2).all(|w| w[0] < w[1]),
        "QoS 0 out of order: {q0:?}"
    );
}
test_versions!(check_mixed_qos_offline => offline_session_stores_every_qos1_message_v311_mqtt_3_1_2_5,
    offline_session_stores_every_qos1_message_v5_mqtt_3_1_2_23);

// [MQTT-3.3.2-5]: a message that waited behind the client's window past its Message Expiry
// Interval is deleted, not sent; [MQTT-3.3.2-6]: the one sent carries what is left.
#[test]
fn messages_expire_while_waiting_behind_the_window_v5_ringmq_only_mqtt_3_3_2_5() {
    if skip_unless_ringmq("Mosquitto 2.0.11 sends a message that expired behind the window") {
        return;
    }
    let v = ProtocolVersion::V5;
    let broker = broker();
    let mut sub_connect = connect(v, "exp-window");
    sub_connect.properties.receive_maximum = std::num::NonZeroU16::new(1);
    let mut c = Client::connect(broker.addr(), sub_connect);
    c.subscribe_one("w/t", qos(1));
    let mut publisher = broker.client(v, "exp-window-pub");
    for (payload, secs) in [("first", 0), ("short", 1), ("long", 600)] {
        let mut p = publish("w/t", payload.as_bytes(), qos(1), 1);
        p.properties.message_expiry_interval = (secs > 0).then_some(secs);
        publisher.publish_packet(p);
    }
    let first = c.recv_publish();
    assert_eq!(text(&first), "first");
    std::thread::sleep(Duration::from_millis(1500));
    c.ack(&first);
    let long = c.recv_message();
    assert_eq!(
        text(&long),
        "long",
        "the 1 s message expired behind the window"
    );
    let left = long.properties.message_expiry_interval;
    assert!(left.is_some_and(|s| (597..600).contains(&s)), "{left:?}");
    c.expect_nothing(QUIET);
}
