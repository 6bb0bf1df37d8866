//! The `[mqtt]` section: optional MQTT features the broker offers. Each one turned off is
//! advertised to MQTT 5 clients in CONNACK (section 3.2.2.3) and enforced for every client
//! with the reason code the spec gives for it (section 4.13); v3.1.1 clients, who cannot be
//! told, get the v3 equivalent (SUBACK 0x80, CONNACK return code 3, or a closed
//! connection). Also Response Information, server redirection (section 4.11), the Server
//! Reference sent at shutdown, optional UTF-8 payload validation, and Reason Strings only
//! where the client allows them.
//!
//! Every test here sets ringmq configuration keys, so all are `ringmq_only`.

pub mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use ringmq::protocol::{
    decode, Ack, ConnAck, Connect, Decoded, MqttString, Packet, ProtocolVersion, Publish, QoS,
    ReasonCode, SubscriptionId, MAX_PACKET_BYTES,
};

/// How long a test waits to be sure nothing (more) arrives.
const QUIET: Duration = Duration::from_millis(300);

/// How long the server may take to close a connection it refused.
const CLOSE: Duration = Duration::from_secs(5);

/// A ringmq broker with these keys in its `[mqtt]` table.
fn broker_with(mqtt_keys: &str) -> Broker {
    Broker::start(BrokerOptions::default().config(&format!("[mqtt]\n{mqtt_keys}"), ""))
}

/// Sends `connect` on a new connection; returns it and the bytes of the first packet back.
fn connect_raw(broker: &Broker, connect: Connect) -> (RawClient, Vec<u8>) {
    let v = connect.protocol;
    let mut raw = broker.raw();
    raw.send_packet(&Packet::Connect(Box::new(connect)), v);
    let reply = raw.recv_raw();
    (raw, reply)
}

/// One whole packet's bytes, decoded as `v`.
fn decoded(bytes: &[u8], v: ProtocolVersion) -> Packet {
    let mut b = BytesMut::from(bytes);
    match decode(&mut b, Some(v), MAX_PACKET_BYTES) {
        Ok(Decoded::Packet(p)) if b.is_empty() => p,
        other => panic!("{} is not one {v} packet: {other:?}", to_hex(bytes)),
    }
}

/// A string property as `&str`.
fn str_of(s: &Option<MqttString>) -> Option<&str> {
    s.as_ref().map(MqttString::as_str)
}

/// The CONNACK of an accepted CONNECT.
fn accepted(broker: &Broker, connect: Connect) -> (Client, ConnAck) {
    let c = Client::connect(broker.addr(), connect);
    let connack = c.connack.clone();
    (c, connack)
}

/// A v5 CONNECT with Request Problem Information set to `allowed`.
fn connect_problem_info(client_id: &str, allowed: bool) -> Connect {
    let mut c = connect(V5, client_id);
    c.properties.request_problem_information = Some(allowed);
    c
}

/// A v5 CONNECT with this Maximum Packet Size.
fn connect_packet_max(client_id: &str, max: u32) -> Connect {
    let mut c = connect(V5, client_id);
    c.properties.maximum_packet_size = std::num::NonZeroU32::new(max);
    c
}

/// A PUBLISH with a Payload Format Indicator.
fn formatted(topic_name: &str, payload: &[u8], qos: QoS, id: u16, utf8: bool) -> Publish {
    let mut p = publish(topic_name, payload, qos, id);
    p.properties.payload_format_indicator = Some(utf8);
    p
}

/// Not UTF-8: 0xC3 starts a two-byte sequence that 0x28 does not continue.
const NOT_UTF8: &[u8] = b"\xc3\x28 not text";

/// The next packet, which must be a PUBACK (or PUBREC with `rec`) for `id`.
fn recv_ack(c: &mut Client, rec: bool, id: u16) -> Ack {
    let (what, a) = match c.recv() {
        Packet::PubAck(a) if !rec => ("PUBACK", a),
        Packet::PubRec(a) if rec => ("PUBREC", a),
        other => panic!(
            "expected {}, got {other:?}",
            if rec { "PUBREC" } else { "PUBACK" }
        ),
    };
    assert_eq!(a.packet_id.get(), id, "{what} for another PUBLISH");
    a
}

/// Publishes a marker to `topic_name`, which `sub` subscribes to: the marker must be the
/// next (and only) thing `sub` gets, so nothing refused before it was delivered.
fn expect_only_marker(publisher: &mut Client, sub: &mut Client, topic_name: &str) {
    publisher.publish(topic_name, b"marker", QoS::AtLeastOnce);
    let p = sub.recv_message();
    assert_eq!(
        message(&p),
        (topic_name.to_owned(), "marker".to_owned()),
        "a refused message was delivered"
    );
    sub.expect_nothing(QUIET);
}

// ---------------------------------------------------------------------------------------
// maximum_qos
// ---------------------------------------------------------------------------------------

// [MQTT-3.2.2-9]: a server without QoS 2 sends Maximum QoS (0x24) in CONNACK, the highest
// QoS it supports: 1.
#[test]
fn maximum_qos_1_advertised_in_connack_ringmq_only_v5_mqtt_3_2_2_9() {
    if skip_unless_ringmq("mqtt.maximum_qos") {
        return;
    }
    let broker = broker_with("maximum_qos = 1");
    let (_c, connack) = accepted(&broker, connect(V5, "maxqos-adv"));
    assert_eq!(connack.properties.maximum_qos, Some(QoS::AtLeastOnce));
}

// Section 3.2.2.3: with the default configuration every optional feature is available,
// which CONNACK says by leaving the properties out (absent Maximum QoS means 2, absent
// Retain / Wildcard / Subscription Identifier / Shared Subscription Available mean 1), and
// there is no Response Information or Server Reference.
#[test]
fn default_config_advertises_every_capability_by_absence_ringmq_only_v5() {
    if skip_unless_ringmq("ringmq's default [mqtt] section") {
        return;
    }
    let broker = Broker::start_default();
    let mut c = connect(V5, "defaults");
    c.properties.request_response_information = Some(true);
    let (_c, connack) = accepted(&broker, c);
    let p = &connack.properties;
    assert_eq!(p.maximum_qos, None, "{p:?}");
    assert_eq!(p.retain_available, None, "{p:?}");
    assert_eq!(p.wildcard_subscription_available, None, "{p:?}");
    assert_eq!(p.subscription_identifiers_available, None, "{p:?}");
    assert_eq!(p.shared_subscription_available, None, "{p:?}");
    assert_eq!(p.server_reference, None, "{p:?}");
    // Requested, but response_information is empty by default: none is sent.
    assert_eq!(p.response_information, None, "{p:?}");
}

// [MQTT-3.2.2-10] [MQTT-3.8.4-7] (5.0) / [MQTT-3.8.4-5] (3.1.1): a server without QoS 2
// still accepts a SUBSCRIBE asking for QoS 2 and grants the highest QoS it has, 1.
fn check_subscribe_qos2_granted_1(v: ProtocolVersion) {
    if skip_unless_ringmq("mqtt.maximum_qos") {
        return;
    }
    let broker = broker_with("maximum_qos = 1");
    let mut sub = broker.client(v, "maxqos-sub");
    let s = subscribe(
        1,
        &[("q/two", QoS::ExactlyOnce), ("q/one", QoS::AtLeastOnce)],
    );
    sub.send_mqtt(&Packet::Subscribe(s));
    // SUBACK: packet id 1, (v5: no properties,) granted 1 and 1.
    sub.expect_bytes(if v.is_v5() {
        "90 05 00 01 00 01 01"
    } else {
        "90 04 00 01 01 01"
    });
    // The subscription works at the granted QoS.
    let mut publisher = broker.client(v, "maxqos-pub");
    publisher.publish("q/two", b"m", QoS::AtLeastOnce);
    let p = sub.recv_message();
    assert_eq!((p.topic.as_str(), p.qos), ("q/two", QoS::AtLeastOnce));
}

test_versions!(check_subscribe_qos2_granted_1 =>
    maximum_qos_1_grants_qos1_to_a_qos2_subscribe_ringmq_only_v311_mqtt_3_8_4_5,
    maximum_qos_1_grants_qos1_to_a_qos2_subscribe_ringmq_only_v5_mqtt_3_2_2_10);

// [MQTT-4.13.2-1] (5.0), [MQTT-3.2.2-11] (5.0), the client's rule the server enforces: a
// QoS 2 PUBLISH to a server whose Maximum QoS is 1 gets DISCONNECT 0x9B (QoS not supported,
// section 4.13) and the connection closes; a v3.1.1 client cannot be told and its
// connection is closed. Either way the message goes nowhere.
fn check_qos2_publish_refused(v: ProtocolVersion) {
    if skip_unless_ringmq("mqtt.maximum_qos") {
        return;
    }
    let broker = broker_with("maximum_qos = 1");
    let mut sub = broker.client(V5, "maxqos-watch");
    sub.subscribe_one("q/#", QoS::AtLeastOnce);
    let mut c = broker.client(v, "maxqos-qos2").into_raw();
    c.send_packet(
        &Packet::Publish(publish("q/t", b"too high", QoS::ExactlyOnce, 1)),
        v,
    );
    if v.is_v5() {
        c.expect_disconnect(0x9b);
    }
    c.expect_closed(CLOSE);
    let mut publisher = broker.client(v, "maxqos-qos1");
    expect_only_marker(&mut publisher, &mut sub, "q/t");
}

test_versions!(check_qos2_publish_refused =>
    maximum_qos_1_closes_on_a_qos2_publish_ringmq_only_v311,
    maximum_qos_1_refuses_a_qos2_publish_with_disconnect_0x9b_ringmq_only_v5_mqtt_4_13_2_1);

// [MQTT-3.2.2-12] [MQTT-3.2.2-6] [MQTT-3.2.2-7] (5.0) / [MQTT-3.2.2-4] [MQTT-3.2.2-5]
// (3.1.1): a CONNECT whose Will QoS is above the server's maximum is refused: v5 CONNACK
// 0x9B (with the Maximum QoS), v3.1.1 return code 3 (Server unavailable, the nearest it
// has), Session Present 0, then the connection closes. A will at the maximum is accepted.
fn check_will_qos_refused(v: ProtocolVersion) {
    if skip_unless_ringmq("mqtt.maximum_qos") {
        return;
    }
    let broker = broker_with("maximum_qos = 1");
    let mut c = connect(v, "maxqos-will");
    c.will = Some(will("w/t", b"bye", QoS::ExactlyOnce, false));
    let (mut raw, connack) = connect_raw(&broker, c);
    let want = if v.is_v5() {
        "20 05 00 9b 02 24 01"
    } else {
        "20 02 00 03"
    };
    assert_eq!(to_hex(&connack), to_hex(&hex(want)), "refusing CONNACK");
    raw.expect_closed(CLOSE);
    let mut c = connect(v, "maxqos-will");
    c.will = Some(will("w/t", b"bye", QoS::AtLeastOnce, false));
    accepted(&broker, c);
}

test_versions!(check_will_qos_refused =>
    maximum_qos_1_refuses_a_will_at_qos2_with_return_code_3_ringmq_only_v311_mqtt_3_2_2_5,
    maximum_qos_1_refuses_a_will_at_qos2_with_connack_0x9b_ringmq_only_v5_mqtt_3_2_2_12);

// [MQTT-3.2.2-9] [MQTT-3.2.2-10] [MQTT-3.2.2-12]: with maximum_qos = 0, CONNACK says
// Maximum QoS 0; SUBSCRIBE at QoS 1 and 2 is accepted and granted 0; a will at QoS 1 is
// refused with CONNACK 0x9B; a QoS 1 PUBLISH gets DISCONNECT 0x9B; QoS 0 works.
#[test]
fn maximum_qos_0_advertised_granted_and_enforced_ringmq_only_v5_mqtt_3_2_2_9() {
    if skip_unless_ringmq("mqtt.maximum_qos") {
        return;
    }
    let broker = broker_with("maximum_qos = 0");
    let mut c = connect(V5, "qos0-will");
    c.will = Some(will("w/t", b"bye", QoS::AtLeastOnce, false));
    let (mut raw, connack) = connect_raw(&broker, c);
    assert_eq!(to_hex(&connack), to_hex(&hex("20 05 00 9b 02 24 00")));
    raw.expect_closed(CLOSE);

    let (mut sub, connack) = accepted(&broker, connect(V5, "qos0-sub"));
    assert_eq!(connack.properties.maximum_qos, Some(QoS::AtMostOnce));
    let ack = sub.subscribe(&[("z/one", QoS::AtLeastOnce), ("z/two", QoS::ExactlyOnce)]);
    assert_eq!(ack.reasons, [ReasonCode::GRANTED_QOS_0; 2]);
    let mut publisher = broker.client(V5, "qos0-pub");
    publisher.publish("z/two", b"zero", QoS::AtMostOnce);
    let p = sub.recv_publish();
    assert_eq!(
        (message(&p), p.qos),
        (("z/two".into(), "zero".into()), QoS::AtMostOnce)
    );
    publisher.send_mqtt(&Packet::Publish(publish(
        "z/one",
        b"one",
        QoS::AtLeastOnce,
        1,
    )));
    publisher.expect_disconnect(0x9b);
    publisher.expect_closed(CLOSE);
    sub.expect_nothing(QUIET);
}

// ---------------------------------------------------------------------------------------
// retain_available
// ---------------------------------------------------------------------------------------

// Section 3.2.2.3.5 / [MQTT-4.13.2-1] (5.0), [MQTT-3.2.2-14] (5.0), the client's rule the
// server enforces: without retained messages CONNACK says Retain Available 0 (0x25), and a
// PUBLISH with RETAIN set gets DISCONNECT 0x9A (Retain not supported), then the connection
// closes; a v3.1.1 client's connection is closed. The message is neither delivered nor
// retained; PUBLISHes without RETAIN work.
fn check_retain_refused(v: ProtocolVersion) {
    if skip_unless_ringmq("mqtt.retain_available") {
        return;
    }
    let broker = broker_with("retain_available = false");
    let (_c, connack) = accepted(&broker, connect(V5, "noretain-adv"));
    assert_eq!(connack.properties.retain_available, Some(false));
    let mut sub = broker.client(V5, "noretain-watch");
    sub.subscribe_one("r/#", QoS::AtLeastOnce);
    let mut c = broker.client(v, "noretain-pub").into_raw();
    let mut p = publish("r/t", b"keep me", QoS::AtLeastOnce, 1);
    p.retain = true;
    c.send_packet(&Packet::Publish(p), v);
    if v.is_v5() {
        c.expect_disconnect(0x9a);
    }
    c.expect_closed(CLOSE);
    let mut publisher = broker.client(v, "noretain-pub2");
    expect_only_marker(&mut publisher, &mut sub, "r/t");
    let mut late = broker.client(v, "noretain-late");
    late.subscribe_one("r/#", QoS::AtLeastOnce);
    late.expect_nothing(QUIET);
}

test_versions!(check_retain_refused =>
    retain_unavailable_closes_on_a_retained_publish_ringmq_only_v311,
    retain_unavailable_refuses_a_retained_publish_with_disconnect_0x9a_ringmq_only_v5_mqtt_4_13_2_1);

// [MQTT-3.2.2-13] [MQTT-3.2.2-6] (5.0) / [MQTT-3.2.2-4] [MQTT-3.2.2-5] (3.1.1): a CONNECT
// with Will Retain set, to a server without retained messages, is refused: v5 CONNACK 0x9A
// (with Retain Available 0), v3.1.1 return code 3; then the connection closes. A will
// without RETAIN is accepted.
fn check_will_retain_refused(v: ProtocolVersion) {
    if skip_unless_ringmq("mqtt.retain_available") {
        return;
    }
    let broker = broker_with("retain_available = false");
    let mut c = connect(v, "noretain-will");
    c.will = Some(will("w/t", b"bye", QoS::AtMostOnce, true));
    let (mut raw, connack) = connect_raw(&broker, c);
    let want = if v.is_v5() {
        "20 05 00 9a 02 25 00"
    } else {
        "20 02 00 03"
    };
    assert_eq!(to_hex(&connack), to_hex(&hex(want)), "refusing CONNACK");
    raw.expect_closed(CLOSE);
    let mut c = connect(v, "noretain-will");
    c.will = Some(will("w/t", b"bye", QoS::AtMostOnce, false));
    accepted(&broker, c);
}

test_versions!(check_will_retain_refused =>
    retain_unavailable_refuses_a_retained_will_with_return_code_3_ringmq_only_v311_mqtt_3_2_2_5,
    retain_unavailable_refuses_a_retained_will_with_connack_0x9a_ringmq_only_v5_mqtt_3_2_2_13);

// ---------------------------------------------------------------------------------------
// wildcard_subscriptions
// ---------------------------------------------------------------------------------------

// [MQTT-3.8.4-6] [MQTT-3.9.3-1] (5.0): without wildcard subscriptions CONNACK says
// Wildcard Subscription Available 0 (0x28); a SUBSCRIBE gets one reason code per filter, in
// order: 0xA2 (Wildcard Subscriptions not supported) for `a/+` and `#`, the granted QoS for
// `a/b`, which then works. A client that allows problem information (Request Problem
// Information absent or 1) gets a Reason String on that SUBACK.
#[test]
fn wildcards_off_suback_0xa2_beside_granted_filters_ringmq_only_v5_mqtt_3_8_4_6() {
    if skip_unless_ringmq("mqtt.wildcard_subscriptions") {
        return;
    }
    let broker = broker_with("wildcard_subscriptions = false");
    for (id, c) in [
        ("nowild-absent", connect(V5, "nowild-absent")),
        ("nowild-rpi1", connect_problem_info("nowild-rpi1", true)),
    ] {
        let (mut sub, connack) = accepted(&broker, c);
        assert_eq!(
            connack.properties.wildcard_subscription_available,
            Some(false)
        );
        let ack = sub.subscribe(&[
            ("a/+", QoS::AtLeastOnce),
            ("a/b", QoS::AtLeastOnce),
            ("#", QoS::AtMostOnce),
        ]);
        assert_eq!(
            ack.reasons,
            [
                ReasonCode::WildcardSubscriptionsNotSupported,
                ReasonCode::GrantedQoS1,
                ReasonCode::WildcardSubscriptionsNotSupported
            ],
            "{id}"
        );
        assert!(ack.properties.reason_string.is_some(), "{id}: {ack:?}");
        let mut publisher = broker.client(V5, "nowild-pub");
        publisher.publish("a/c", b"no subscription", QoS::AtLeastOnce);
        expect_only_marker(&mut publisher, &mut sub, "a/b");
    }
}

// [MQTT-3.8.4-5] [MQTT-3.9.3-1] [MQTT-3.9.3-2] [MQTT-3.8.3-2] (3.1.1): a v3.1.1 client's
// wildcard filters are rejected with 0x80, the plain one beside them is granted, in order.
#[test]
fn wildcards_off_suback_0x80_beside_granted_filters_ringmq_only_v311_mqtt_3_8_4_5() {
    if skip_unless_ringmq("mqtt.wildcard_subscriptions") {
        return;
    }
    let broker = broker_with("wildcard_subscriptions = false");
    let mut sub = broker.client(V311, "nowild-311");
    sub.send_mqtt(&Packet::Subscribe(subscribe(
        7,
        &[
            ("a/+", QoS::AtLeastOnce),
            ("a/b", QoS::AtLeastOnce),
            ("#", QoS::AtMostOnce),
        ],
    )));
    sub.expect_bytes("90 05 00 07 80 01 80");
    let mut publisher = broker.client(V311, "nowild-pub");
    publisher.publish("a/c", b"no subscription", QoS::AtLeastOnce);
    expect_only_marker(&mut publisher, &mut sub, "a/b");
}

// [MQTT-3.1.2-29]: a client that set Request Problem Information to 0 gets no Reason String
// on a SUBACK, failing or not: exactly `90 06 <id> 00 a2 01 a2`. A DISCONNECT may still
// carry one, and ringmq's does (here 0xA1 for a Subscription Identifier, turned off).
#[test]
fn no_reason_string_on_suback_when_problem_information_is_0_ringmq_only_v5_mqtt_3_1_2_29() {
    if skip_unless_ringmq("mqtt.wildcard_subscriptions, mqtt.subscription_identifiers") {
        return;
    }
    let broker = broker_with("wildcard_subscriptions = false\nsubscription_identifiers = false");
    let (mut c, _) = accepted(&broker, connect_problem_info("nowild-rpi0", false));
    c.send_mqtt(&Packet::Subscribe(subscribe(
        3,
        &[
            ("a/+", QoS::AtLeastOnce),
            ("a/b", QoS::AtLeastOnce),
            ("a/#", QoS::AtLeastOnce),
        ],
    )));
    c.expect_bytes("90 06 00 03 00 a2 01 a2");
    let mut s = subscribe(4, &[("a/c", QoS::AtLeastOnce)]);
    s.properties.subscription_identifier = SubscriptionId::new(9);
    c.send_mqtt(&Packet::Subscribe(s));
    let raw = c.recv_raw();
    match decoded(&raw, V5) {
        Packet::Disconnect(d) => {
            assert_eq!(d.reason, ReasonCode::SubscriptionIdentifiersNotSupported);
            assert!(
                d.properties.reason_string.is_some(),
                "ringmq explains a DISCONNECT even to such a client: {d:?}"
            );
        }
        other => panic!("expected DISCONNECT 0xA1, got {other:?}"),
    }
    c.expect_closed(CLOSE);
}

// [MQTT-3.9.2-1]: no Reason String that would take the SUBACK past the client's Maximum
// Packet Size: with 40 bytes the SUBACK comes without one (and CONNACK fits), and without a
// User Property [MQTT-3.9.2-2]: exactly `90 04 00 05 00 a2`.
#[test]
fn no_reason_string_on_suback_beyond_client_maximum_packet_size_ringmq_only_v5_mqtt_3_9_2_1() {
    if skip_unless_ringmq("mqtt.wildcard_subscriptions") {
        return;
    }
    let broker = broker_with("wildcard_subscriptions = false");
    let (mut c, _) = accepted(&broker, connect_packet_max("nowild-small", 40));
    c.send_mqtt(&Packet::Subscribe(subscribe(
        5,
        &[("a/+", QoS::AtLeastOnce)],
    )));
    c.expect_bytes("90 04 00 05 00 a2");
}

// ---------------------------------------------------------------------------------------
// subscription_identifiers
// ---------------------------------------------------------------------------------------

// Section 3.2.2.3.12 / [MQTT-4.13.2-1]: without Subscription Identifiers CONNACK says
// Subscription Identifiers Available 0 (0x29); a SUBSCRIBE without one works, a SUBSCRIBE
// with one gets DISCONNECT 0xA1 (Subscription Identifiers not supported) and the
// connection closes.
#[test]
fn subscription_identifiers_off_disconnect_0xa1_ringmq_only_v5_mqtt_4_13_2_1() {
    if skip_unless_ringmq("mqtt.subscription_identifiers") {
        return;
    }
    let broker = broker_with("subscription_identifiers = false");
    let (mut c, connack) = accepted(&broker, connect(V5, "nosubid"));
    assert_eq!(
        connack.properties.subscription_identifiers_available,
        Some(false)
    );
    c.subscribe_one("s/plain", QoS::AtLeastOnce);
    let mut s = subscribe(2, &[("s/with-id", QoS::AtLeastOnce)]);
    s.properties.subscription_identifier = SubscriptionId::new(1);
    c.send_mqtt(&Packet::Subscribe(s));
    c.expect_disconnect(0xa1);
    c.expect_closed(CLOSE);
}

// ---------------------------------------------------------------------------------------
// response_information
// ---------------------------------------------------------------------------------------

// [MQTT-3.1.2-28]: Response Information only for a client that asked for it (Request
// Response Information 1): the configured prefix, the client id and `/` (also for an
// assigned client id); none when the request is absent or 0.
#[test]
fn response_information_only_when_requested_ringmq_only_v5_mqtt_3_1_2_28() {
    if skip_unless_ringmq("mqtt.response_information") {
        return;
    }
    let broker = broker_with("response_information = \"resp/\"");
    let mut c = connect(V5, "asker");
    c.properties.request_response_information = Some(true);
    let (_a, connack) = accepted(&broker, c);
    assert_eq!(
        str_of(&connack.properties.response_information),
        Some("resp/asker/")
    );

    let mut c = connect(V5, "");
    c.properties.request_response_information = Some(true);
    let (_b, connack) = accepted(&broker, c);
    let assigned = connack
        .properties
        .assigned_client_identifier
        .clone()
        .expect("an assigned client id");
    assert_eq!(
        str_of(&connack.properties.response_information),
        Some(format!("resp/{}/", assigned.as_str()).as_str())
    );

    for (id, request) in [("silent", None), ("declines", Some(false))] {
        let mut c = connect(V5, id);
        c.properties.request_response_information = request;
        let (_c, connack) = accepted(&broker, c);
        assert_eq!(
            connack.properties.response_information, None,
            "{id}: request {request:?}"
        );
    }
}

// [MQTT-3.1.2-24]: Response Information is left out rather than take the CONNACK past the
// client's Maximum Packet Size: a client whose limit is one byte more than the CONNACK
// without it gets that CONNACK.
#[test]
fn response_information_left_out_beyond_client_maximum_packet_size_ringmq_only_v5_mqtt_3_1_2_24() {
    if skip_unless_ringmq("mqtt.response_information") {
        return;
    }
    let broker = broker_with("response_information = \"resp/\"");
    let (_plain, plain) = connect_raw(&broker, connect(V5, "asker-small"));
    let max = u32::try_from(plain.len() + 1).expect("a small CONNACK");
    let mut c = connect_packet_max("asker-small", max);
    c.properties.request_response_information = Some(true);
    let (_c, connack) = connect_raw(&broker, c);
    assert!(
        connack.len() <= max as usize,
        "CONNACK of {} bytes to a client that takes {max}: {}",
        connack.len(),
        to_hex(&connack)
    );
    match decoded(&connack, V5) {
        Packet::ConnAck(c) => {
            assert_eq!(c.reason, ReasonCode::Success);
            assert_eq!(c.properties.response_information, None);
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// redirect and server_reference
// ---------------------------------------------------------------------------------------

// [MQTT-3.2.2-6] [MQTT-3.2.2-7] (5.0) / [MQTT-3.2.2-4] [MQTT-3.2.2-5] (3.1.1), section
// 4.11: with redirect = "use_another_server" every CONNECT is refused: v5 CONNACK 0x9C
// (Use another server) with Server Reference (0x1C) "other:1883", v3.1.1 return code 3
// (Server unavailable); Session Present 0; then the connection closes.
fn check_use_another_server(v: ProtocolVersion) {
    if skip_unless_ringmq("mqtt.redirect") {
        return;
    }
    let broker =
        broker_with("redirect = \"use_another_server\"\nserver_reference = \"other:1883\"");
    let (mut raw, connack) = connect_raw(&broker, connect(v, "redirected"));
    let want = if v.is_v5() {
        // 0d: property length; 1c 00 0a: Server Reference, 10 bytes "other:1883".
        "20 10 00 9c 0d 1c 00 0a 6f 74 68 65 72 3a 31 38 38 33"
    } else {
        "20 02 00 03"
    };
    assert_eq!(to_hex(&connack), to_hex(&hex(want)), "refusing CONNACK");
    raw.expect_closed(CLOSE);
}

test_versions!(check_use_another_server =>
    redirect_use_another_server_refuses_with_return_code_3_ringmq_only_v311_mqtt_3_2_2_5,
    redirect_use_another_server_refuses_with_connack_0x9c_ringmq_only_v5_mqtt_3_2_2_7);

// [MQTT-3.2.2-6] [MQTT-3.2.2-7], section 4.11: redirect = "server_moved": CONNACK 0x9D
// (Server moved) with the Server Reference, then the connection closes.
#[test]
fn redirect_server_moved_refuses_with_connack_0x9d_ringmq_only_v5_mqtt_3_2_2_7() {
    if skip_unless_ringmq("mqtt.redirect") {
        return;
    }
    let broker = broker_with("redirect = \"server_moved\"\nserver_reference = \"other:1883\"");
    let (mut raw, connack) = connect_raw(&broker, connect(V5, "moved"));
    assert_eq!(
        to_hex(&connack),
        to_hex(&hex(
            "20 10 00 9d 0d 1c 00 0a 6f 74 68 65 72 3a 31 38 38 33"
        ))
    );
    raw.expect_closed(CLOSE);
}

// [MQTT-3.1.2-24] [MQTT-3.2.2-7]: the redirecting CONNACK leaves the Server Reference out
// rather than exceed the client's Maximum Packet Size (here 16 bytes, 18 with it): `20 03
// 00 9c 00`, then the connection closes.
#[test]
fn redirect_connack_fits_client_maximum_packet_size_ringmq_only_v5_mqtt_3_1_2_24() {
    if skip_unless_ringmq("mqtt.redirect") {
        return;
    }
    let broker =
        broker_with("redirect = \"use_another_server\"\nserver_reference = \"other:1883\"");
    let (mut raw, connack) = connect_raw(&broker, connect_packet_max("redirected-small", 16));
    assert_eq!(to_hex(&connack), to_hex(&hex("20 03 00 9c 00")));
    raw.expect_closed(CLOSE);
}

// Section 3.14.2.2.5: with server_reference set (and no redirect), clients are served, and
// at shutdown a v5 client gets DISCONNECT 0x8B (Server shutting down) carrying the Server
// Reference, then the connection closes [MQTT-3.14.4-2]; a v3.1.1 client's connection just
// closes.
#[test]
fn shutdown_disconnect_0x8b_carries_server_reference_ringmq_only_v5_mqtt_3_14_4_2() {
    if skip_unless_ringmq("mqtt.server_reference") {
        return;
    }
    let mut broker = broker_with("server_reference = \"other:1883\"");
    let (mut c5, connack) = accepted(&broker, connect(V5, "stay-5"));
    assert_eq!(connack.properties.server_reference, None, "no redirect");
    let mut c3 = broker.client(V311, "stay-3");
    c5.ping();
    c3.ping();
    broker.stop();
    match c5.recv() {
        Packet::Disconnect(d) => {
            assert_eq!(d.reason, ReasonCode::ServerShuttingDown);
            assert_eq!(str_of(&d.properties.server_reference), Some("other:1883"));
        }
        other => panic!("expected DISCONNECT 0x8B, got {other:?}"),
    }
    c5.expect_closed(CLOSE);
    c3.expect_closed(CLOSE);
}

// Section 3.14.2.2.5: without server_reference the shutdown DISCONNECT 0x8B has no Server
// Reference.
#[test]
fn shutdown_disconnect_0x8b_without_server_reference_by_default_ringmq_only_v5() {
    if skip_unless_ringmq("ringmq's shutdown DISCONNECT") {
        return;
    }
    let mut broker = Broker::start_default();
    let mut c = broker.client(V5, "stay");
    c.ping();
    broker.stop();
    match c.recv() {
        Packet::Disconnect(d) => {
            assert_eq!(d.reason, ReasonCode::ServerShuttingDown);
            assert_eq!(d.properties.server_reference, None);
        }
        other => panic!("expected DISCONNECT 0x8B, got {other:?}"),
    }
    c.expect_closed(CLOSE);
}

// [MQTT-3.1.2-24]: the server sends no packet larger than the client's Maximum Packet Size,
// the shutdown DISCONNECT included: with 16 bytes, the Server Reference (17 bytes of
// DISCONNECT with it) is left out.
#[test]
fn shutdown_disconnect_fits_client_maximum_packet_size_ringmq_only_v5_mqtt_3_1_2_24() {
    if skip_unless_ringmq("mqtt.server_reference") {
        return;
    }
    let mut broker = broker_with("server_reference = \"other:1883\"");
    let (mut c, _) = accepted(&broker, connect_packet_max("stay-small", 16));
    c.ping();
    broker.stop();
    let raw = c.recv_raw();
    assert!(
        raw.len() <= 16,
        "DISCONNECT of {} bytes: {}",
        raw.len(),
        to_hex(&raw)
    );
    match decoded(&raw, V5) {
        Packet::Disconnect(d) => assert_eq!(d.reason, ReasonCode::ServerShuttingDown),
        other => panic!("expected DISCONNECT 0x8B, got {other:?}"),
    }
    c.expect_closed(CLOSE);
}

// ---------------------------------------------------------------------------------------
// validate_utf8_payloads
// ---------------------------------------------------------------------------------------

const VALIDATE: &str = "validate_utf8_payloads = true";

// Section 3.3.2.3.2: with validation on, a QoS 1 PUBLISH whose Payload Format Indicator
// says UTF-8 and whose payload is not gets PUBACK 0x99 (Payload format invalid), with a
// Reason String, and is not delivered; the connection goes on.
#[test]
fn invalid_utf8_payload_qos1_gets_puback_0x99_ringmq_only_v5() {
    if skip_unless_ringmq("mqtt.validate_utf8_payloads") {
        return;
    }
    let broker = broker_with(VALIDATE);
    let mut sub = broker.client(V5, "utf8-sub");
    sub.subscribe_one("u/#", QoS::ExactlyOnce);
    let mut publisher = broker.client(V5, "utf8-pub");
    publisher.send_mqtt(&Packet::Publish(formatted(
        "u/t",
        NOT_UTF8,
        QoS::AtLeastOnce,
        1,
        true,
    )));
    let ack = recv_ack(&mut publisher, false, 1);
    assert_eq!(ack.reason, ReasonCode::PayloadFormatInvalid);
    assert!(ack.properties.reason_string.is_some(), "{ack:?}");
    expect_only_marker(&mut publisher, &mut sub, "u/t");
}

// Section 3.3.2.3.2 / [MQTT-4.3.3-9]: a QoS 2 one gets PUBREC 0x99 and is not delivered;
// the flow ends there, so the same packet identifier then starts a new message, which is
// delivered once.
#[test]
fn invalid_utf8_payload_qos2_gets_pubrec_0x99_ringmq_only_v5_mqtt_4_3_3_9() {
    if skip_unless_ringmq("mqtt.validate_utf8_payloads") {
        return;
    }
    let broker = broker_with(VALIDATE);
    let mut sub = broker.client(V5, "utf8-sub");
    sub.subscribe_one("u/#", QoS::ExactlyOnce);
    let mut publisher = broker.client(V5, "utf8-pub");
    publisher.send_mqtt(&Packet::Publish(formatted(
        "u/t",
        NOT_UTF8,
        QoS::ExactlyOnce,
        1,
        true,
    )));
    let rec = recv_ack(&mut publisher, true, 1);
    assert_eq!(rec.reason, ReasonCode::PayloadFormatInvalid);
    sub.expect_nothing(QUIET);
    publisher.publish_packet(formatted(
        "u/t",
        "é valid".as_bytes(),
        QoS::ExactlyOnce,
        1,
        true,
    ));
    let p = sub.recv_message();
    assert_eq!(message(&p), ("u/t".to_owned(), "é valid".to_owned()));
    sub.expect_nothing(QUIET);
}

// [MQTT-4.13.2-1]: a QoS 0 one, which has no acknowledgement to carry 0x99, gets
// DISCONNECT 0x99 and the connection closes; nothing is delivered.
#[test]
fn invalid_utf8_payload_qos0_gets_disconnect_0x99_ringmq_only_v5_mqtt_4_13_2_1() {
    if skip_unless_ringmq("mqtt.validate_utf8_payloads") {
        return;
    }
    let broker = broker_with(VALIDATE);
    let mut sub = broker.client(V5, "utf8-sub");
    sub.subscribe_one("u/#", QoS::ExactlyOnce);
    let mut publisher = broker.client(V5, "utf8-pub");
    publisher.send_mqtt(&Packet::Publish(formatted(
        "u/t",
        NOT_UTF8,
        QoS::AtMostOnce,
        0,
        true,
    )));
    publisher.expect_disconnect(0x99);
    publisher.expect_closed(CLOSE);
    let mut other = broker.client(V5, "utf8-pub2");
    expect_only_marker(&mut other, &mut sub, "u/t");
}

// [MQTT-3.3.2-4]: with validation on, what passes is delivered with its Payload Format
// Indicator unaltered: valid UTF-8 with indicator 1, and any bytes with indicator 0 (not
// checked).
#[test]
fn validation_passes_valid_utf8_and_unformatted_bytes_ringmq_only_v5_mqtt_3_3_2_4() {
    if skip_unless_ringmq("mqtt.validate_utf8_payloads") {
        return;
    }
    let broker = broker_with(VALIDATE);
    let mut sub = broker.client(V5, "utf8-sub");
    sub.subscribe_one("u/#", QoS::AtLeastOnce);
    let mut publisher = broker.client(V5, "utf8-pub");
    publisher.publish_packet(formatted(
        "u/text",
        "grüße".as_bytes(),
        QoS::AtLeastOnce,
        1,
        true,
    ));
    publisher.publish_packet(formatted("u/bytes", NOT_UTF8, QoS::AtLeastOnce, 2, false));
    let p = sub.recv_message();
    assert_eq!(
        (
            p.topic.as_str(),
            &p.payload[..],
            p.properties.payload_format_indicator
        ),
        ("u/text", "grüße".as_bytes(), Some(true))
    );
    let p = sub.recv_message();
    assert_eq!(
        (
            p.topic.as_str(),
            &p.payload[..],
            p.properties.payload_format_indicator
        ),
        ("u/bytes", NOT_UTF8, Some(false))
    );
}

// [MQTT-3.3.2-4]: by default payloads are not checked (the spec lets a receiver check or
// not): a payload that is not UTF-8 despite indicator 1 is delivered unchanged, indicator
// included.
#[test]
fn invalid_utf8_payload_delivered_unchanged_by_default_ringmq_only_v5_mqtt_3_3_2_4() {
    if skip_unless_ringmq("mqtt.validate_utf8_payloads default") {
        return;
    }
    let broker = Broker::start_default();
    let mut sub = broker.client(V5, "utf8-sub");
    sub.subscribe_one("u/#", QoS::AtLeastOnce);
    let mut publisher = broker.client(V5, "utf8-pub");
    publisher.publish_packet(formatted("u/t", NOT_UTF8, QoS::AtLeastOnce, 1, true));
    let p = sub.recv_message();
    assert_eq!(
        (&p.payload, p.properties.payload_format_indicator),
        (&Bytes::from_static(NOT_UTF8), Some(true))
    );
}

// [MQTT-3.1.2-29]: a client that set Request Problem Information to 0 gets PUBACK 0x99
// without a Reason String.
#[test]
fn no_reason_string_on_puback_0x99_when_problem_information_is_0_ringmq_only_v5_mqtt_3_1_2_29() {
    if skip_unless_ringmq("mqtt.validate_utf8_payloads") {
        return;
    }
    let broker = broker_with(VALIDATE);
    let (mut c, _) = accepted(&broker, connect_problem_info("utf8-rpi0", false));
    c.send_mqtt(&Packet::Publish(formatted(
        "u/t",
        NOT_UTF8,
        QoS::AtLeastOnce,
        4,
        true,
    )));
    let ack = recv_ack(&mut c, false, 4);
    assert_eq!(ack.reason, ReasonCode::PayloadFormatInvalid);
    assert_eq!(ack.properties.reason_string, None, "{ack:?}");
}

// [MQTT-3.4.2-2]: nor one that would take the PUBACK past the client's Maximum Packet Size;
// nor a User Property [MQTT-3.4.2-3].
#[test]
fn no_reason_string_on_puback_beyond_client_maximum_packet_size_ringmq_only_v5_mqtt_3_4_2_2() {
    if skip_unless_ringmq("mqtt.validate_utf8_payloads") {
        return;
    }
    let broker = broker_with(VALIDATE);
    let (mut c, _) = accepted(&broker, connect_packet_max("utf8-small", 40));
    c.send_mqtt(&Packet::Publish(formatted(
        "u/t",
        NOT_UTF8,
        QoS::AtLeastOnce,
        4,
        true,
    )));
    let raw = c.recv_raw();
    assert!(raw.len() <= 40, "PUBACK of {} bytes", raw.len());
    match decoded(&raw, V5) {
        Packet::PubAck(a) => {
            assert_eq!(a.reason, ReasonCode::PayloadFormatInvalid);
            assert_eq!(a.properties.reason_string, None, "{a:?}");
            assert!(a.properties.user_properties.is_empty(), "{a:?}");
        }
        other => panic!("expected PUBACK 0x99, got {other:?}"),
    }
}

// [MQTT-3.5.2-2] [MQTT-3.5.2-3]: the same for QoS 2: PUBREC 0x99 says why in a Reason String
// when the client can take it, and carries neither a Reason String nor a User Property
// that would take it past the client's Maximum Packet Size (40 bytes).
#[test]
fn pubrec_0x99_properties_fit_client_maximum_packet_size_ringmq_only_v5_mqtt_3_5_2_2() {
    if skip_unless_ringmq("mqtt.validate_utf8_payloads") {
        return;
    }
    let broker = broker_with(VALIDATE);
    let bad = || Packet::Publish(formatted("u/t", NOT_UTF8, QoS::ExactlyOnce, 6, true));
    let mut roomy = broker.client(V5, "utf8-rec");
    roomy.send_mqtt(&bad());
    let ack = recv_ack(&mut roomy, true, 6);
    assert_eq!(ack.reason, ReasonCode::PayloadFormatInvalid);
    assert!(ack.properties.reason_string.is_some(), "{ack:?}");

    let (mut c, _) = accepted(&broker, connect_packet_max("utf8-rec-small", 40));
    c.send_mqtt(&bad());
    let raw = c.recv_raw();
    assert!(raw.len() <= 40, "PUBREC of {} bytes", raw.len());
    match decoded(&raw, V5) {
        Packet::PubRec(a) => {
            assert_eq!(a.reason, ReasonCode::PayloadFormatInvalid);
            assert_eq!(a.properties.reason_string, None, "{a:?}");
            assert!(a.properties.user_properties.is_empty(), "{a:?}");
        }
        other => panic!("expected PUBREC 0x99, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The configuration itself
// ---------------------------------------------------------------------------------------

/// `ringmq <args>` with a configuration file holding `text`; returns the exit code and
/// stderr.
fn ringmq_with_config(name: &str, text: &str, args: &[&str]) -> (Option<i32>, String) {
    let path = std::env::temp_dir().join(format!(
        "ringmq-capabilities-{}-{name}.toml",
        std::process::id()
    ));
    std::fs::write(&path, text).expect("write config");
    let path_text = path.to_str().expect("utf-8 temp path").to_owned();
    let args: Vec<&str> = args
        .iter()
        .map(|a| {
            if *a == "CONFIG" {
                path_text.as_str()
            } else {
                a
            }
        })
        .collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(&args)
        .output()
        .expect("run ringmq");
    let _ = std::fs::remove_file(&path);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// An unknown key in [mqtt] is refused, named.
#[test]
fn unknown_mqtt_key_is_refused_naming_it_ringmq_only() {
    if skip_unless_ringmq("ringmq's configuration") {
        return;
    }
    let (code, err) = ringmq_with_config(
        "unknown",
        "[mqtt]\nmaximum_qoss = 1\n",
        &["check-config", "CONFIG"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("mqtt.maximum_qoss: unknown field"), "{err}");
}

// maximum_qos is 0, 1 or 2.
#[test]
fn maximum_qos_3_is_refused_naming_the_key_ringmq_only() {
    if skip_unless_ringmq("ringmq's configuration") {
        return;
    }
    let (code, err) = ringmq_with_config(
        "qos3",
        "[mqtt]\nmaximum_qos = 3\n",
        &["check-config", "CONFIG"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("mqtt.maximum_qos: must be 0, 1 or 2; got 3"),
        "{err}"
    );
}

// A redirect needs somewhere to send clients: the broker does not start, and says which key
// is missing.
#[test]
fn redirect_without_server_reference_fails_to_start_ringmq_only() {
    if skip_unless_ringmq("ringmq's configuration") {
        return;
    }
    let data =
        std::env::temp_dir().join(format!("ringmq-capabilities-{}-redir", std::process::id()));
    let text = format!(
        "[[listener]]\nbind = \"127.0.0.1:0\"\n\n[storage]\ndata_dir = \"{}\"\n\n\
         [mqtt]\nredirect = \"server_moved\"\n",
        data.display()
    );
    let (code, err) = ringmq_with_config("redir", &text, &["--config", "CONFIG"]);
    let _ = std::fs::remove_dir_all(&data);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("mqtt.server_reference"), "{err}");
    let (code, err) = ringmq_with_config("redir-check", &text, &["check-config", "CONFIG"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("mqtt.server_reference"), "{err}");
}
