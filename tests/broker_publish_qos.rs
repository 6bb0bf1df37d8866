//! PUBLISH at QoS 0, 1 and 2 through a running broker: the acks the publisher gets, byte for
//! byte; what the subscriber gets, byte for byte; exactly-once for QoS 2; the QoS a message
//! is delivered with; and ordering.

pub mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use ringmq::protocol::{Ack, Packet, ProtocolVersion, QoS};

/// A subscriber on `filter` at `granted` and a publisher, both `v`.
fn pair(broker: &Broker, v: ProtocolVersion, filter: &str, granted: QoS) -> (Client, Client) {
    let mut sub = broker.client(v, "sub");
    sub.subscribe_one(filter, granted);
    let publisher = broker.client(v, "pub");
    (sub, publisher)
}

// [MQTT-4.3.1-1] QoS 0: the server sends PUBLISH with QoS 0 and DUP 0, exactly
// `30 <len> <topic> [00] <payload>`, and the publisher gets no reply: the response Table 3.4
// (3.1.1) / section 3.3.4 (5.0) gives for QoS 0 [MQTT-3.3.4-1].
fn check_qos0(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let (mut sub, mut publisher) = pair(&broker, v, "q/0", qos(2));
    publisher.send_mqtt(&Packet::Publish(publish("q/0", b"zero", qos(0), 0)));
    sub.expect_publish(0x30, "q/0", b"zero");
    // Nothing was sent back for the QoS 0 PUBLISH: the next bytes answer the ping.
    publisher.ping();
}
test_versions!(check_qos0 => qos0_delivered_once_with_dup_0_v311_mqtt_4_3_1_1,
    qos0_delivered_once_with_dup_0_v5_mqtt_4_3_1_1);

// [MQTT-4.3.2-2] (3.1.1) / [MQTT-4.3.2-4] (5.0) QoS 1: PUBACK with the PUBLISH's packet id,
// exactly `40 02 12 34`; the subscriber gets `32 ...` with an id of the server's choosing.
// [MQTT-4.3.2-5] (5.0) After PUBACK, the same id starts a new message. PUBACK is the
// response QoS 1 requires [MQTT-3.3.4-1]; the server sends its copy with QoS 1 and DUP 0
// [MQTT-4.3.2-2] (5.0).
fn check_qos1(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let (mut sub, mut publisher) = pair(&broker, v, "q/1", qos(1));
    for payload in [&b"one"[..], b"two"] {
        publisher.send_mqtt(&Packet::Publish(publish("q/1", payload, qos(1), 0x1234)));
        publisher.expect_bytes("40 02 12 34");
        let id = sub.expect_publish(0x32, "q/1", payload);
        sub.ack_id(qos(1), id);
    }
    sub.ping();
}
test_versions!(check_qos1 => qos1_puback_and_delivery_bytes_v311_mqtt_4_3_2_2,
    qos1_puback_and_delivery_bytes_v5_mqtt_4_3_2_4);

// [MQTT-4.3.3-2] (3.1.1) / [MQTT-4.3.3-8] (5.0) and [MQTT-4.3.3-11] (5.0) QoS 2 inbound:
// PUBREC `50 02 00 07`, and PUBREL `62 02 00 07` gets PUBCOMP `70 02 00 07`.
// [MQTT-4.3.3-1] (3.1.1) / [MQTT-4.3.3-2] (5.0) and [MQTT-4.3.3-4] (5.0) QoS 2 outbound: the
// server sends `34 ...` (QoS 2, DUP 0), and answers the subscriber's PUBREC with PUBREL
// `62 02 <id>`. PUBREC is the response QoS 2 requires [MQTT-3.3.4-1]; the outbound copy has
// a packet id [MQTT-4.3.3-1] (5.0).
fn check_qos2(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let (mut sub, mut publisher) = pair(&broker, v, "q/2", qos(2));
    publisher.send_mqtt(&Packet::Publish(publish("q/2", b"two", qos(2), 7)));
    publisher.expect_bytes("50 02 00 07");
    publisher.send(&hex("62 02 00 07"));
    publisher.expect_bytes("70 02 00 07");

    let id = sub
        .expect_publish(0x34, "q/2", b"two")
        .expect("QoS 2 has an id");
    sub.send(&hex(&format!("50 02 {}", id_hex(id))));
    sub.expect_bytes(&format!("62 02 {}", id_hex(id)));
    sub.send(&hex(&format!("70 02 {}", id_hex(id))));
    sub.expect_nothing(Duration::from_millis(200));
}
test_versions!(check_qos2 => qos2_four_packet_flow_bytes_v311_mqtt_4_3_3_2,
    qos2_four_packet_flow_bytes_v5_mqtt_4_3_3_8);

// [MQTT-4.3.3-2] (3.1.1) / [MQTT-4.3.3-10] (5.0) A QoS 2 PUBLISH sent again (DUP 1) with
// the same id before PUBREL is acknowledged again with PUBREC and not delivered twice.
// [MQTT-4.3.3-12] (5.0) After PUBCOMP the id starts a new message.
fn check_qos2_resend(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let (mut sub, mut publisher) = pair(&broker, v, "q/2", qos(2));
    let first = publish("q/2", b"once", qos(2), 9);
    publisher.send_mqtt(&Packet::Publish(first.clone()));
    publisher.expect_bytes("50 02 00 09");
    let mut again = first;
    again.dup = true;
    publisher.send_mqtt(&Packet::Publish(again));
    publisher.expect_bytes("50 02 00 09");
    publisher.send(&hex("62 02 00 09"));
    publisher.expect_bytes("70 02 00 09");

    publisher.send_mqtt(&Packet::Publish(publish("q/2", b"new", qos(2), 9)));
    publisher.expect_bytes("50 02 00 09");
    publisher.send(&hex("62 02 00 09"));
    publisher.expect_bytes("70 02 00 09");

    // Both messages once each, in order; nothing else.
    assert_eq!(text(&sub.recv_message()), "once");
    assert_eq!(text(&sub.recv_message()), "new");
    sub.expect_nothing(Duration::from_millis(300));
}
test_versions!(check_qos2_resend => qos2_resent_publish_delivered_once_v311_mqtt_4_3_3_2,
    qos2_resent_publish_delivered_once_v5_mqtt_4_3_3_10);

// [MQTT-4.3.2-2] (3.1.1) / [MQTT-4.3.2-4] (5.0) A QoS 1 PUBLISH nobody subscribed to is
// still acknowledged: `40 02 00 05`;
// a v5 server may say 0x10 (No matching subscribers): `40 03 00 05 10`.
fn check_ack_without_subscribers(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut publisher = broker.client(v, "lonely");
    publisher.send_mqtt(&Packet::Publish(publish("nobody/here", b"x", qos(1), 5)));
    let raw = publisher.recv_raw();
    let got = to_hex(&raw);
    let ok =
        got == "40 02 00 05" || (v.is_v5() && (got == "40 03 00 05 10" || got == "40 03 00 05 00"));
    assert!(ok, "PUBACK: {got}");
    publisher.send_mqtt(&Packet::Publish(publish("nobody/here", b"x", qos(2), 6)));
    let raw = publisher.recv_raw();
    let got = to_hex(&raw);
    let ok =
        got == "50 02 00 06" || (v.is_v5() && (got == "50 03 00 06 10" || got == "50 03 00 06 00"));
    assert!(ok, "PUBREC: {got}");
    publisher.send(&hex("62 02 00 06"));
    publisher.expect_bytes("70 02 00 06");
}
test_versions!(check_ack_without_subscribers =>
    publish_without_subscribers_still_acknowledged_v311_mqtt_4_3_2_2,
    publish_without_subscribers_still_acknowledged_v5_mqtt_4_3_2_4);

// [MQTT-3.8.4-6] (3.1.1) / [MQTT-3.8.4-8] (5.0) The QoS of a delivered message is the
// minimum of the published QoS and the granted QoS, for every pair.
fn check_min_qos(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = broker.client(v, "sub");
    let ack = sub.subscribe(&[("g/0", qos(0)), ("g/1", qos(1)), ("g/2", qos(2))]);
    assert_eq!(
        ack.reasons.iter().map(|r| *r as u8).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let mut publisher = broker.client(v, "pub");
    for granted in 0..=2u8 {
        for published in 0..=2u8 {
            let t = format!("g/{granted}");
            let payload = format!("p{published}");
            publisher.publish(&t, payload.as_bytes(), qos(published));
            let got = sub.recv_message();
            assert_eq!(message(&got), (t, payload));
            assert_eq!(
                got.qos as u8,
                granted.min(published),
                "granted {granted}, published {published}"
            );
            assert!(!got.dup && !got.retain, "DUP and RETAIN must be 0: {got:?}");
        }
    }
}
test_versions!(check_min_qos => delivered_qos_is_min_of_published_and_granted_v311_mqtt_3_8_4_6,
    delivered_qos_is_min_of_published_and_granted_v5_mqtt_3_8_4_8);

// [MQTT-3.3.1-3] The DUP flag of an incoming PUBLISH is not propagated: a first delivery
// to the subscriber has DUP 0.
fn check_dup_not_propagated(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let (mut sub, mut publisher) = pair(&broker, v, "d/t", qos(1));
    let mut p = publish("d/t", b"dup", qos(1), 3);
    p.dup = true;
    publisher.publish_packet(p);
    let id = sub.expect_publish(0x32, "d/t", b"dup");
    sub.ack_id(qos(1), id);
}
test_versions!(check_dup_not_propagated => dup_flag_not_propagated_v311_mqtt_3_3_1_3,
    dup_flag_not_propagated_v5_mqtt_3_3_1_3);

// [MQTT-2.3.1-4] (3.1.1) / [MQTT-2.2.1-4] (5.0) The server gives each unacknowledged QoS 1
// PUBLISH it sends a non-zero packet id no other unacknowledged one has: an unused one for
// each new message [MQTT-4.3.2-1] (5.0).
fn check_outbound_ids_unique(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let (mut sub, mut publisher) = pair(&broker, v, "ids/t", qos(1));
    for i in 0..10 {
        publisher.publish("ids/t", format!("{i}").as_bytes(), qos(1));
    }
    let mut ids = HashSet::new();
    let mut held = Vec::new();
    for i in 0..10 {
        let p = sub.recv_publish();
        assert_eq!(text(&p), format!("{i}"));
        let id = p.packet_id.expect("QoS 1 has an id");
        assert!(
            ids.insert(id.get()),
            "packet id {} reused while unacknowledged",
            id.get()
        );
        held.push(p);
    }
    for p in &held {
        sub.ack(p);
    }
    sub.ping();
}
test_versions!(check_outbound_ids_unique =>
    outbound_packet_ids_unique_while_unacknowledged_v311_mqtt_2_3_1_4,
    outbound_packet_ids_unique_while_unacknowledged_v5_mqtt_2_2_1_4);

// [MQTT-4.6.0-5] Messages of one publisher on one topic at one QoS reach a subscriber in the
// order they were published; QoS 1 sent pipelined (ten unacknowledged at a time, within any
// v5 Receive Maximum), QoS 0 and QoS 2 back to back. Every topic is an Ordered Topic
// [MQTT-4.6.0-6] (5.0).
fn check_order(v: ProtocolVersion) {
    const N: usize = 200;
    const WINDOW: usize = 10;
    let broker = Broker::start_default();
    let mut sub = broker.client(v, "sub");
    sub.subscribe(&[("o/0", qos(0)), ("o/1", qos(1)), ("o/2", qos(2))]);
    let mut publisher = broker.client(v, "pub");

    for i in 0..N {
        publisher.send_mqtt(&Packet::Publish(publish(
            "o/0",
            format!("{i}").as_bytes(),
            qos(0),
            0,
        )));
    }
    let mut unacked = std::collections::VecDeque::new();
    for i in 0..N {
        if unacked.len() == WINDOW {
            let id = unacked.pop_front().expect("non-empty window");
            publisher.recv_matching(
                "PUBACK",
                |p| matches!(p, Packet::PubAck(a) if a.packet_id == id),
            );
        }
        let id = publisher.next_packet_id();
        publisher.send_mqtt(&Packet::Publish(publish(
            "o/1",
            format!("{i}").as_bytes(),
            qos(1),
            id,
        )));
        unacked.push_back(packet_id(id));
    }
    for id in unacked {
        publisher.recv_matching(
            "PUBACK",
            |p| matches!(p, Packet::PubAck(a) if a.packet_id == id),
        );
    }
    for i in 0..N {
        publisher.publish("o/2", format!("{i}").as_bytes(), qos(2));
    }

    let mut next = [0usize; 3];
    while next.iter().any(|&n| n < N) {
        let p = sub.recv_message();
        let q = p.qos as usize;
        assert_eq!(
            p.topic.as_str(),
            format!("o/{q}"),
            "delivered QoS follows the topic"
        );
        assert_eq!(
            text(&p),
            next[q].to_string(),
            "QoS {q} message out of order"
        );
        next[q] += 1;
    }
    sub.expect_nothing(Duration::from_millis(200));
}
test_versions!(check_order => messages_of_one_publisher_delivered_in_order_v311_mqtt_4_6_0_5,
    messages_of_one_publisher_delivered_in_order_v5_mqtt_4_6_0_5);

// [MQTT-4.3.2-1] (3.1.1) / [MQTT-4.3.2-3] (5.0) An unacknowledged QoS 1 message stays
// unacknowledged: while the subscriber holds back its PUBACK, the server neither drops the
// connection nor sends the message on as new; after the PUBACK the flow goes on.
fn check_qos1_held_ack(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let (mut sub, mut publisher) = pair(&broker, v, "h/t", qos(1));
    publisher.publish("h/t", b"first", qos(1));
    let held = sub.recv_publish();
    assert_eq!(text(&held), "first");
    sub.expect_nothing(Duration::from_millis(300));
    sub.send_mqtt(&Packet::PubAck(Ack::new(held.packet_id.expect("QoS 1 id"))));
    publisher.publish("h/t", b"second", qos(1));
    assert_eq!(text(&sub.recv_message()), "second");
}
test_versions!(check_qos1_held_ack => qos1_unacknowledged_message_not_sent_again_as_new_v311_mqtt_4_3_2_1,
    qos1_unacknowledged_message_not_sent_again_as_new_v5_mqtt_4_3_2_3);
