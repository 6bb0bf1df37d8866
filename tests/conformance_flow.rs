//! Conformance: flow control and the QoS 1 / QoS 2 flows that the other suites do not
//! cover: (5.0) the client's Receive Maximum as the server's send quota, the packets the
//! server keeps answering while its quota is used up, negative acknowledgements from the
//! client, message expiry inside a QoS 2 flow, and messages too large for the client; (both
//! versions) a PUBREL sent again after a reconnection.
//!
//! The sleeps here let a Message Expiry Interval of 1 s pass: time is what is under test.

pub mod common;

use std::num::{NonZeroU16, NonZeroU32};
use std::thread;
use std::time::Duration;

use common::*;
use ringmq::protocol::{Ack, Connect, Packet, ProtocolVersion, Publish, QoS, ReasonCode};

const QUIET: Duration = Duration::from_millis(300);

/// A v5 CONNECT with Receive Maximum `max` (and, with `persistent`, a session that outlives
/// the connection).
fn with_receive_maximum(client_id: &str, max: u16, persistent: bool) -> Connect {
    let mut c = if persistent {
        connect_persistent(V5, client_id)
    } else {
        connect(V5, client_id)
    };
    c.properties.receive_maximum = NonZeroU16::new(max);
    c
}

/// An acknowledgement with a reason code.
fn ack_with(id: ringmq::protocol::PacketId, reason: ReasonCode) -> Ack {
    let mut a = Ack::new(id);
    a.reason = reason;
    a
}

fn payloads(ps: &[Publish]) -> Vec<String> {
    ps.iter().map(text).collect()
}

// [MQTT-3.3.4-9] (5.0) The server sends at most Receive Maximum unacknowledged QoS 1 and 2
// PUBLISHes: its send quota starts at the client's Receive Maximum [MQTT-4.9.0-1] (5.0),
// and at 0 no more QoS > 0 PUBLISHes go out [MQTT-4.9.0-2] (5.0). A PUBACK frees one slot,
// a PUBREC does not (a QoS 2 message is unacknowledged until PUBCOMP), a PUBCOMP does.
#[test]
fn server_sends_at_most_receive_maximum_unacknowledged_v5_mqtt_3_3_4_9_ringmq_only() {
    if skip_unless_ringmq(
        "Mosquitto 2.0.11 sends three more messages on the first PUBACK, five unacknowledged \
         against a Receive Maximum of 3",
    ) {
        return;
    }
    let broker = Broker::start_default();
    let mut sub = Client::connect(broker.addr(), with_receive_maximum("rm-sub", 3, false));
    sub.subscribe(&[("rm/1", qos(1)), ("rm/2", qos(2))]);
    let mut publisher = broker.client(V5, "rm-pub");
    for i in 0..6 {
        publisher.publish("rm/1", format!("one {i}").as_bytes(), qos(1));
    }
    let first: Vec<Publish> = (0..3).map(|_| sub.recv_publish()).collect();
    assert_eq!(payloads(&first), ["one 0", "one 1", "one 2"]);
    sub.expect_nothing(QUIET);
    sub.ack(&first[0]);
    let next = sub.recv_publish();
    assert_eq!(text(&next), "one 3");
    sub.expect_nothing(QUIET);
    for p in first[1..].iter().chain([&next]) {
        sub.ack(p);
    }
    let rest: Vec<Publish> = (0..2).map(|_| sub.recv_message()).collect();
    assert_eq!(payloads(&rest), ["one 4", "one 5"]);

    for i in 0..4 {
        publisher.publish("rm/2", format!("two {i}").as_bytes(), qos(2));
    }
    let first: Vec<Publish> = (0..3).map(|_| sub.recv_publish()).collect();
    assert_eq!(payloads(&first), ["two 0", "two 1", "two 2"]);
    let id = first[0].packet_id.expect("QoS 2 id");
    sub.send_mqtt(&Packet::PubRec(Ack::new(id)));
    sub.recv_matching(
        "PUBREL",
        |p| matches!(p, Packet::PubRel(a) if a.packet_id == id),
    );
    sub.expect_nothing(QUIET);
    sub.send_mqtt(&Packet::PubComp(Ack::new(id)));
    assert_eq!(text(&sub.recv_publish()), "two 3");
}

// [MQTT-3.3.4-10] (5.0) While its quota is used up, the server does not hold back packets
// other than PUBLISH [MQTT-4.9.0-3] (5.0): PINGRESP, SUBACK, UNSUBACK, and the PUBACK,
// PUBREC and PUBCOMP of the client's own publications all come at once.
#[test]
fn other_packets_flow_while_quota_is_zero_v5_mqtt_3_3_4_10() {
    let broker = Broker::start_default();
    let mut sub = Client::connect(broker.addr(), with_receive_maximum("q0-sub", 1, false));
    sub.subscribe_one("q0/t", qos(1));
    let mut publisher = broker.client(V5, "q0-pub");
    publisher.publish("q0/t", b"held", qos(1));
    publisher.publish("q0/t", b"waiting", qos(1));
    let held = sub.recv_publish();
    assert_eq!(text(&held), "held");
    sub.expect_nothing(QUIET);
    sub.ping();
    sub.subscribe_one("q0/other", qos(1));
    sub.unsubscribe(&["q0/other"]);
    sub.publish("elsewhere/t", b"own qos 1", qos(1));
    sub.publish("elsewhere/t", b"own qos 2", qos(2));
    sub.expect_nothing(QUIET);
    sub.ack(&held);
    assert_eq!(text(&sub.recv_message()), "waiting");
}

// [MQTT-4.4.0-2] (5.0) A PUBACK or PUBREC with a reason code of 0x80 or more acknowledges
// the PUBLISH: no PUBREL follows such a PUBREC ([MQTT-4.3.3-4] (5.0): PUBREL answers a
// PUBREC below 0x80), it frees its slot of the Receive Maximum [MQTT-3.3.4-9] (5.0), and
// neither message is sent again when the session resumes.
#[test]
fn negative_acknowledgements_end_delivery_v5_mqtt_4_4_0_2() {
    let broker = Broker::start_default();
    let mut sub = Client::connect(broker.addr(), with_receive_maximum("nack", 1, true));
    sub.subscribe(&[("nack/1", qos(1)), ("nack/2", qos(2))]);
    let mut publisher = broker.client(V5, "nack-pub");
    publisher.publish("nack/2", b"refused two", qos(2));
    publisher.publish("nack/1", b"refused one", qos(1));
    publisher.publish("nack/1", b"accepted", qos(1));
    let two = sub.recv_publish();
    assert_eq!(text(&two), "refused two");
    let id = two.packet_id.expect("QoS 2 id");
    sub.send_mqtt(&Packet::PubRec(ack_with(id, ReasonCode::UnspecifiedError)));
    let one = sub.recv_publish();
    assert_eq!(
        text(&one),
        "refused one",
        "expected the next message, not PUBREL"
    );
    sub.send_mqtt(&Packet::PubAck(ack_with(
        one.packet_id.expect("QoS 1 id"),
        ReasonCode::ImplementationSpecificError,
    )));
    let last = sub.recv_publish();
    assert_eq!(text(&last), "accepted");
    sub.into_raw().drop_connection();

    let mut sub = Client::connect(broker.addr(), with_receive_maximum("nack", 1, true));
    assert!(sub.session_present());
    let again = sub.recv_publish();
    assert_eq!(
        (text(&again).as_str(), again.dup),
        ("accepted", true),
        "only the unacknowledged message comes again"
    );
    sub.ack(&again);
    sub.expect_nothing(QUIET);
}

// [MQTT-4.3.3-13] (5.0) The server, receiving a QoS 2 message, finishes the acknowledgement
// sequence even after the message's expiry interval has passed: a PUBREL sent 1.2 s after a
// PUBLISH with a Message Expiry Interval of 1 s gets its PUBCOMP.
#[test]
fn qos2_flow_completed_after_expiry_v5_mqtt_4_3_3_13() {
    let broker = Broker::start_default();
    let mut c = broker.client(V5, "exp-in").into_raw();
    let mut p = publish("exp/in", b"short-lived", qos(2), 0x0102);
    p.properties.message_expiry_interval = Some(1);
    c.send_packet(&Packet::Publish(p), V5);
    c.expect_bytes("50 02 01 02");
    thread::sleep(Duration::from_millis(1200));
    c.send(&hex("62 02 01 02"));
    c.expect_bytes("70 02 01 02");
}

// [MQTT-4.3.3-7] (5.0) Once the server has sent a QoS 2 PUBLISH it does not expire it: the
// subscriber that never answered gets it again (DUP 1) when its session resumes after the
// message's 1 s expiry interval has passed (2 s later), and the flow completes.
#[test]
fn sent_qos2_message_not_expired_v5_mqtt_4_3_3_7_ringmq_only() {
    if skip_unless_ringmq(
        "Mosquitto 2.0.11 drops a sent QoS 2 message once its expiry interval has passed",
    ) {
        return;
    }
    let broker = Broker::start_default();
    let mut sub = Client::connect(broker.addr(), connect_persistent(V5, "exp-out"));
    sub.subscribe_one("exp/out", qos(2));
    let mut publisher = broker.client(V5, "exp-pub");
    let mut p = publish("exp/out", b"in flight", qos(2), 1);
    p.properties.message_expiry_interval = Some(1);
    publisher.publish_packet(p);
    let first = sub.recv_publish();
    assert_eq!(text(&first), "in flight");
    sub.into_raw().drop_connection();
    thread::sleep(Duration::from_millis(2000));
    let mut sub = Client::connect(broker.addr(), connect_persistent(V5, "exp-out"));
    let again = sub.recv_publish();
    assert_eq!(
        (text(&again).as_str(), again.dup, again.packet_id),
        ("in flight", true, first.packet_id),
        "the sent QoS 2 PUBLISH, again"
    );
    sub.ack(&again);
    sub.expect_nothing(QUIET);
}

// [MQTT-3.1.2-25] (5.0) A message too large for the client's Maximum Packet Size is
// discarded and counted as sent: with Receive Maximum 1 the next message still comes (the
// discarded one holds no slot), and nothing is sent again when the session resumes. The
// server never sends the large one [MQTT-3.1.2-24] (5.0).
#[test]
fn too_large_message_discarded_as_if_sent_v5_mqtt_3_1_2_25_ringmq_only() {
    if skip_unless_ringmq(
        "Mosquitto 2.0.11 keeps the discarded message's Receive Maximum slot: the next one \
         never comes",
    ) {
        return;
    }
    let broker = Broker::start_default();
    let small = |id: &str| {
        let mut c = with_receive_maximum(id, 1, true);
        c.properties.maximum_packet_size = NonZeroU32::new(128);
        c
    };
    let mut sub = Client::connect(broker.addr(), small("mps"));
    sub.subscribe_one("mps/t", qos(1));
    let mut publisher = broker.client(V5, "mps-pub");
    publisher.publish("mps/t", &[b'L'; 300], qos(1));
    publisher.publish("mps/t", b"small", qos(1));
    let p = sub.recv_publish();
    assert_eq!(text(&p), "small");
    sub.expect_nothing(QUIET);
    sub.into_raw().drop_connection();
    let mut sub = Client::connect(broker.addr(), small("mps"));
    let p = sub.recv_publish();
    assert_eq!((text(&p).as_str(), p.dup), ("small", true));
    sub.ack(&p);
    sub.expect_nothing(QUIET);
    assert_eq!(p.qos, QoS::AtLeastOnce);
}

// [MQTT-3.1.2-24] (5.0) The server sends no packet above the client's Maximum Packet Size
// whatever the path: not a retained message sent for a new subscription, not a message
// queued while the session was offline; such a message is discarded [MQTT-3.1.2-25] (5.0)
// and the ones that fit still come.
#[test]
fn too_large_retained_and_queued_messages_not_sent_v5_mqtt_3_1_2_24() {
    let broker = Broker::start_default();
    let small = || {
        let mut c = connect_persistent(V5, "mps-q");
        c.properties.maximum_packet_size = NonZeroU32::new(128);
        c
    };
    let mut sub = Client::connect(broker.addr(), small());
    sub.subscribe_one("mpq/t", qos(1));
    sub.disconnect();
    let mut publisher = broker.client(V5, "mpq-pub");
    publisher.publish("mpq/t", &[b'L'; 300], qos(1));
    publisher.publish("mpq/t", b"queued small", qos(1));
    publisher.publish_retained("mpq/big", &[b'R'; 300], qos(1));
    publisher.publish_retained("mpq/small", b"retained small", qos(1));
    let mut sub = Client::connect(broker.addr(), small());
    assert!(sub.session_present());
    assert_eq!(text(&sub.recv_message()), "queued small");
    sub.expect_nothing(QUIET);
    sub.subscribe_one("mpq/big", qos(1));
    sub.subscribe_one("mpq/small", qos(1));
    let p = sub.recv_message();
    assert_eq!((text(&p).as_str(), p.retain), ("retained small", true));
    sub.expect_nothing(QUIET);
}

// The server answers every PUBREL with a PUBCOMP of the same packet identifier
// ([MQTT-4.3.3-2] (3.1.1), [MQTT-4.3.3-11] (5.0)), also a PUBREL a client sends again after
// reconnecting because it never saw the PUBCOMP [MQTT-4.4.0-1] (the server has already
// forgotten the id; 5.0 may say so with 0x92, Packet Identifier not found). The message is
// delivered once.
fn check_pubrel_resent_after_reconnect(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = broker.client(v, "prr-sub");
    sub.subscribe_one("prr/t", qos(2));
    let mut c = Client::connect(broker.addr(), connect_persistent(v, "prr")).into_raw();
    c.send_packet(
        &Packet::Publish(publish("prr/t", b"once", qos(2), 0x0a0b)),
        v,
    );
    c.expect_bytes("50 02 0a 0b");
    c.send(&hex("62 02 0a 0b"));
    c.expect_bytes("70 02 0a 0b");
    c.drop_connection();
    let mut c = Client::connect(broker.addr(), connect_persistent(v, "prr")).into_raw();
    c.send(&hex("62 02 0a 0b"));
    let raw = c.recv_raw();
    let got = to_hex(&raw);
    // v5: 0x92 may come with a Reason String (`70 <len> 0a 0b 92 <properties>`).
    let not_found =
        v.is_v5() && raw.len() >= 5 && raw[0] == 0x70 && raw[2..5] == [0x0a, 0x0b, 0x92];
    assert!(
        got == "70 02 0a 0b" || not_found,
        "PUBCOMP for the resent PUBREL: {got}"
    );
    assert_eq!(text(&sub.recv_message()), "once");
    sub.expect_nothing(QUIET);
}
test_versions!(check_pubrel_resent_after_reconnect => resent_pubrel_gets_pubcomp_v311_mqtt_4_3_3_2,
    resent_pubrel_gets_pubcomp_v5_mqtt_4_3_3_11);

// ---------------------------------------------------------------------------------------
// Optional properties and the client's Maximum Packet Size
// ---------------------------------------------------------------------------------------

/// A v5 CONNECT with Maximum Packet Size `max`.
fn with_packet_max(client_id: &str, max: u32) -> Connect {
    let mut c = connect(V5, client_id);
    c.properties.maximum_packet_size = NonZeroU32::new(max);
    c
}

/// Sends `packet` on a connection with no Maximum Packet Size and on one with 40 bytes;
/// returns the raw answer of each (the second checked to be within 40 bytes).
fn answers_roomy_and_tight(broker: &Broker, name: &str, packet: &Packet) -> (Packet, Packet) {
    let mut roomy = broker.client(V5, &format!("{name}-roomy"));
    roomy.send_mqtt(packet);
    let roomy = roomy.recv();
    let mut tight = Client::connect(broker.addr(), with_packet_max(&format!("{name}-tight"), 40));
    tight.send_mqtt(packet);
    let raw = tight.recv_raw();
    assert!(raw.len() <= 40, "{} bytes: {}", raw.len(), to_hex(&raw));
    (roomy, ringmq_decode(&raw))
}

// [MQTT-3.6.2-2] [MQTT-3.6.2-3] (5.0) A PUBREC for an id with no QoS 2 message in flight
// gets PUBREL 0x92 (Packet Identifier not found); it says why in a Reason String when the
// client can take it, and carries neither a Reason String nor a User Property that would
// take it past the client's Maximum Packet Size (here 40 bytes).
#[test]
fn pubrel_properties_fit_client_maximum_packet_size_ringmq_only_v5_mqtt_3_6_2_2() {
    if skip_unless_ringmq("ringmq's Reason String on PUBREL 0x92") {
        return;
    }
    let broker = Broker::start_default();
    let rec = Packet::PubRec(Ack::new(packet_id(9)));
    match answers_roomy_and_tight(&broker, "rel", &rec) {
        (Packet::PubRel(roomy), Packet::PubRel(tight)) => {
            assert_eq!(roomy.reason, ReasonCode::PacketIdentifierNotFound);
            assert!(roomy.properties.reason_string.is_some(), "{roomy:?}");
            assert_eq!(tight.reason, ReasonCode::PacketIdentifierNotFound);
            assert_eq!(tight.properties.reason_string, None, "{tight:?}");
            assert!(tight.properties.user_properties.is_empty(), "{tight:?}");
        }
        other => panic!("expected PUBREL 0x92 twice, got {other:?}"),
    }
}

// [MQTT-3.7.2-2] [MQTT-3.7.2-3] (5.0) A PUBREL for an id the server holds no QoS 2 message
// for gets PUBCOMP 0x92, with a Reason String only where it fits the client's Maximum
// Packet Size, and no User Property beyond it.
#[test]
fn pubcomp_properties_fit_client_maximum_packet_size_ringmq_only_v5_mqtt_3_7_2_2() {
    if skip_unless_ringmq("ringmq's Reason String on PUBCOMP 0x92") {
        return;
    }
    let broker = Broker::start_default();
    let rel = Packet::PubRel(Ack::new(packet_id(9)));
    match answers_roomy_and_tight(&broker, "comp", &rel) {
        (Packet::PubComp(roomy), Packet::PubComp(tight)) => {
            assert_eq!(roomy.reason, ReasonCode::PacketIdentifierNotFound);
            assert!(roomy.properties.reason_string.is_some(), "{roomy:?}");
            assert_eq!(tight.reason, ReasonCode::PacketIdentifierNotFound);
            assert_eq!(tight.properties.reason_string, None, "{tight:?}");
            assert!(tight.properties.user_properties.is_empty(), "{tight:?}");
        }
        other => panic!("expected PUBCOMP 0x92 twice, got {other:?}"),
    }
}

// [MQTT-3.11.2-1] [MQTT-3.11.2-2] (5.0) An UNSUBACK to a client with a Maximum Packet Size
// of 40 bytes carries no Reason String or User Property past it: one reason code per
// filter, 0x00 for the removed subscription and 0x11 for the one that did not exist,
// exactly `b0 05 00 0d 00 00 11`.
#[test]
fn unsuback_fits_client_maximum_packet_size_v5_mqtt_3_11_2_1() {
    let broker = Broker::start_default();
    let mut c = Client::connect(broker.addr(), with_packet_max("unsub-tight", 40));
    c.subscribe_one("un/a", qos(1));
    c.send_mqtt(&Packet::Unsubscribe(unsubscribe(13, &["un/a", "un/none"])));
    let raw = c.recv_raw();
    assert_eq!(to_hex(&raw), "b0 05 00 0d 00 00 11");
}

// [MQTT-3.14.2-3] [MQTT-3.14.2-4] (5.0) The DISCONNECT that ends a connection over a PUBLISH
// whose topic name has a wildcard (0x90, Topic Name invalid) says why in a Reason String,
// except where that would take it past the client's Maximum Packet Size (40 bytes here):
// then it goes without, and without any User Property.
#[test]
fn disconnect_properties_fit_client_maximum_packet_size_ringmq_only_v5_mqtt_3_14_2_3() {
    if skip_unless_ringmq("ringmq's Reason String on DISCONNECT") {
        return;
    }
    let broker = Broker::start_default();
    // Encoded by hand: the codec refuses to build a topic name with a wildcard.
    let mut body = string_field(b"bad/+/name");
    body.extend_from_slice(&hex("00"));
    let bad = frame(0x30, &body);

    let mut roomy = broker.client(V5, "disc-roomy").into_raw();
    roomy.send(&bad);
    let raw = roomy.recv_raw();
    match ringmq_decode(&raw) {
        Packet::Disconnect(d) => {
            assert_eq!(d.reason, ReasonCode::TopicNameInvalid);
            assert!(d.properties.reason_string.is_some(), "{d:?}");
            assert!(raw.len() > 40, "the Reason String would not fit 40 bytes");
        }
        other => panic!("expected DISCONNECT 0x90, got {other:?}"),
    }

    let mut tight = Client::connect(broker.addr(), with_packet_max("disc-tight", 40)).into_raw();
    tight.send(&bad);
    let raw = tight.recv_raw();
    assert!(raw.len() <= 40, "{} bytes: {}", raw.len(), to_hex(&raw));
    match ringmq_decode(&raw) {
        Packet::Disconnect(d) => {
            assert_eq!(d.reason, ReasonCode::TopicNameInvalid);
            assert_eq!(d.properties.reason_string, None, "{d:?}");
            assert!(d.properties.user_properties.is_empty(), "{d:?}");
        }
        other => panic!("expected DISCONNECT 0x90, got {other:?}"),
    }
    tight.expect_closed(Duration::from_secs(5));
}

fn ringmq_decode(raw: &[u8]) -> Packet {
    let mut buf = bytes::BytesMut::from(raw);
    match ringmq::protocol::decode(&mut buf, Some(V5), 1 << 20) {
        Ok(ringmq::protocol::Decoded::Packet(p)) => p,
        other => panic!("{} does not decode: {other:?}", to_hex(raw)),
    }
}

// [MQTT-3.3.4-9] (5.0) The Receive Maximum holds when one message reaches a persistent
// session twice, through a plain and a shared subscription: the second copy waits for the
// first to complete, then comes (found by tests/broker_handler_fuzz.rs: both copies were
// planned against the same open window and sent together; and one log record naming the
// session twice would have hidden the second copy from the queue reader).
#[test]
fn receive_maximum_holds_for_two_copies_of_one_message_v5_mqtt_3_3_4_9() {
    let broker = Broker::with_shards(2);
    let mut sub = Client::connect(broker.addr(), with_receive_maximum("rm-twice", 1, true));
    sub.subscribe(&[("twice/#", qos(2)), ("$share/h/twice/#", qos(2))]);
    let mut publisher = broker.client(V5, "rm-twice-pub");
    publisher.publish("twice/t", b"one message", qos(2));
    let first = sub.recv_publish();
    assert_eq!(text(&first), "one message");
    // Nothing more while the first copy is unacknowledged.
    sub.expect_nothing(QUIET);
    let id = first.packet_id.expect("QoS 2 has an id");
    sub.send_mqtt(&Packet::PubRec(Ack::new(id)));
    match sub.recv() {
        Packet::PubRel(r) => assert_eq!(r.packet_id, id),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    sub.expect_nothing(QUIET);
    sub.send_mqtt(&Packet::PubComp(Ack::new(id)));
    let second = sub.recv_publish();
    assert_eq!(text(&second), "one message");
    sub.ack(&second);
}
