//! Bad input against a running broker: malformed packets, protocol violations and oversized
//! packets close the offending connection only (v5: after DISCONNECT with the reason code);
//! other clients, and the broker, carry on.

pub mod common;

use std::time::Duration;

use common::*;
use ringmq::protocol::ProtocolVersion;

const CLOSE: Duration = Duration::from_secs(5);

/// One bad packet: what it breaks, its bytes for 3.1.1 and for 5.0, and the reason code a
/// v5 DISCONNECT must carry.
struct Bad {
    what: &'static str,
    v311: &'static str,
    v5: &'static str,
    reason: u8,
    /// Mosquitto 2.0.11 closes without the DISCONNECT for this one (its fixed-header checks
    /// do not send one); under Mosquitto only the close is checked.
    mosquitto_closes_silently: bool,
}

/// Malformed packets (section 4.13 of 5.0: reason 0x81), each after a good CONNECT.
const MALFORMED: &[Bad] = &[
    // [MQTT-3.3.1-4] QoS 3 in a PUBLISH.
    Bad {
        what: "PUBLISH with QoS 3",
        v311: "36 06 00 01 61 00 01 78",
        v5: "36 07 00 01 61 00 01 00 78",
        reason: 0x81,
        mosquitto_closes_silently: false,
    },
    // Section 2.2.3 / 1.5.4: the topic length runs past the remaining length.
    Bad {
        what: "topic length past the packet",
        v311: "30 03 00 09 61",
        v5: "30 03 00 09 61",
        reason: 0x81,
        mosquitto_closes_silently: false,
    },
    // [MQTT-1.5.3-1] (3.1.1) / [MQTT-1.5.4-1] (5.0): ill-formed UTF-8 in a topic.
    Bad {
        what: "invalid UTF-8 topic",
        v311: "30 05 00 02 61 ff 78",
        v5: "30 06 00 02 61 ff 00 78",
        reason: 0x81,
        mosquitto_closes_silently: false,
    },
    // [MQTT-1.5.3-2] (3.1.1) / [MQTT-1.5.4-2] (5.0): U+0000 in a topic.
    Bad {
        what: "U+0000 in a topic",
        v311: "30 05 00 02 61 00 78",
        v5: "30 06 00 02 61 00 00 78",
        reason: 0x81,
        mosquitto_closes_silently: false,
    },
    // [MQTT-3.8.1-1]: SUBSCRIBE fixed-header flags must be 0010.
    Bad {
        what: "SUBSCRIBE with flags 0000",
        v311: "80 06 00 01 00 01 61 00",
        v5: "80 07 00 01 00 00 01 61 00",
        reason: 0x81,
        mosquitto_closes_silently: false,
    },
    // [MQTT-3.6.1-1]: PUBREL fixed-header flags must be 0010.
    Bad {
        what: "PUBREL with flags 0000",
        v311: "60 02 00 01",
        v5: "60 02 00 01",
        reason: 0x81,
        mosquitto_closes_silently: true,
    },
    // [MQTT-3.8.3-4] (3.1.1) / [MQTT-3.8.3-5] (5.0): reserved bits of subscription options.
    Bad {
        what: "SUBSCRIBE with reserved option bits",
        v311: "82 06 00 01 00 01 61 c1",
        v5: "82 07 00 01 00 00 01 61 c1",
        reason: 0x81,
        mosquitto_closes_silently: false,
    },
    // Section 2.2.3 / [MQTT-1.5.5-1] (5.0): a remaining length of five bytes.
    Bad {
        what: "five-byte remaining length",
        v311: "30 ff ff ff ff 01",
        v5: "30 ff ff ff ff 01",
        reason: 0x81,
        mosquitto_closes_silently: true,
    },
    // [MQTT-3.14.1-1]: DISCONNECT reserved flags.
    Bad {
        what: "DISCONNECT with flags 0001",
        v311: "e1 00",
        v5: "e1 00",
        reason: 0x81,
        mosquitto_closes_silently: true,
    },
];

/// Protocol violations whose v5 reason code the spec leaves between 0x81 and 0x82 (or 0x90
/// for a bad topic): the connection must close, and a DISCONNECT, if sent, must say error.
const VIOLATIONS: &[(&str, &str, &str)] = &[
    // [MQTT-3.3.2-2] wildcard in a PUBLISH topic name.
    (
        "wildcard in topic name",
        "30 05 00 03 61 2f 2b",
        "30 06 00 03 61 2f 2b 00",
    ),
    // [MQTT-2.3.1-1] (3.1.1) / [MQTT-2.2.1-3] (5.0): QoS 1 PUBLISH with packet id 0.
    (
        "QoS 1 PUBLISH with packet id 0",
        "32 05 00 01 61 00 00",
        "32 06 00 01 61 00 00 00",
    ),
    // [MQTT-3.8.3-3] (3.1.1) / [MQTT-3.8.3-2] (5.0): SUBSCRIBE without a topic filter.
    ("SUBSCRIBE without filters", "82 02 00 01", "82 03 00 01 00"),
    // [MQTT-4.7.1-2] (3.1.1) / [MQTT-4.7.1-1] (5.0): `#` not last in a topic filter.
    (
        "`#` inside a filter",
        "82 08 00 01 00 03 61 23 62 00",
        "82 09 00 01 00 00 03 61 23 62 00",
    ),
    // Reserved packet type 0.
    ("packet type 0", "00 00", "00 00"),
];

/// A subscriber that must keep working while other connections misbehave.
fn bystander(broker: &Broker, v: ProtocolVersion) -> Client {
    let mut c = broker.client(v, "bystander");
    c.subscribe_one("ok/t", qos(1));
    c
}

/// The bystander still gets messages, from a client connected after the trouble.
fn bystander_unaffected(broker: &Broker, v: ProtocolVersion, bystander: &mut Client, n: usize) {
    let mut p = broker.client(v, "after");
    let payload = format!("after {n}");
    p.publish("ok/t", payload.as_bytes(), qos(1));
    assert_eq!(text(&bystander.recv_message()), payload);
}

// [MQTT-4.8.0-1] (3.1.1) A malformed packet closes that connection, with nothing sent back,
// and only that one. The rows of MALFORMED check [MQTT-3.3.1-4], [MQTT-1.5.3-1],
// [MQTT-1.5.3-2], [MQTT-3.8.1-1], [MQTT-3.6.1-1], [MQTT-3.8.3-4], [MQTT-3.14.1-1], and for
// the fixed-header flags [MQTT-2.2.2-2].
#[test]
fn malformed_packet_closes_only_that_connection_v311_mqtt_4_8_0_1() {
    let broker = Broker::start_default();
    let mut watcher = bystander(&broker, V311);
    for (n, bad) in MALFORMED.iter().enumerate() {
        let mut c = broker.client(V311, "culprit").into_raw();
        c.send(&hex(bad.v311));
        eprintln!("3.1.1: {}", bad.what);
        c.expect_closed(CLOSE);
        bystander_unaffected(&broker, V311, &mut watcher, n);
    }
}

// [MQTT-4.13.1-1] (5.0) A malformed packet closes that connection after DISCONNECT 0x81
// (`e0 01 81`, properties allowed), and only that one. The DISCONNECT is a SHOULD in
// section 4.13.2 (a MUST for DISCONNECT's own flags, [MQTT-3.14.1-1]) that issue 3 makes a
// requirement; Mosquitto sends it except for the rows marked `mosquitto_closes_silently`.
// The rows of MALFORMED check [MQTT-3.3.1-4], [MQTT-1.5.4-1], [MQTT-1.5.4-2],
// [MQTT-3.8.1-1], [MQTT-3.6.1-1], [MQTT-3.8.3-5], [MQTT-1.5.5-1], and for the fixed-header
// flags [MQTT-2.1.3-1].
#[test]
fn malformed_packet_gets_disconnect_0x81_then_close_v5_mqtt_4_13_1_1() {
    let broker = Broker::start_default();
    let mut watcher = bystander(&broker, V5);
    for (n, bad) in MALFORMED.iter().enumerate() {
        let mut c = broker.client(V5, "culprit").into_raw();
        c.send(&hex(bad.v5));
        eprintln!("5.0: {}", bad.what);
        if bad.mosquitto_closes_silently && is_mosquitto() {
            eprintln!("  mosquitto 2.0.11 sends no DISCONNECT here: checking the close only");
            c.expect_closed_allowing_disconnect(bad.reason, CLOSE);
        } else {
            c.expect_disconnect(bad.reason);
            c.expect_closed(CLOSE);
        }
        bystander_unaffected(&broker, V5, &mut watcher, n);
    }
}

// [MQTT-4.8.0-1] (3.1.1) / [MQTT-4.13.1-1] (5.0) Protocol violations close the connection
// (5.0: a DISCONNECT first, if any, with a code of 0x80 or more), and only that one. The
// rows of VIOLATIONS check [MQTT-3.3.2-2] (3.1.1) (5.0), [MQTT-2.3.1-1] (3.1.1) /
// [MQTT-2.2.1-3] (5.0), [MQTT-3.8.3-3] (3.1.1) / [MQTT-3.8.3-2] (5.0), [MQTT-4.7.1-2] (3.1.1)
// / [MQTT-4.7.1-1] (5.0).
fn check_violations(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut watcher = bystander(&broker, v);
    for (n, (what, v311, v5)) in VIOLATIONS.iter().enumerate() {
        let mut c = broker.client(v, "culprit").into_raw();
        c.send(&hex(if v.is_v5() { v5 } else { v311 }));
        eprintln!("{v}: {what}");
        match c.try_recv_packet(v, CLOSE) {
            Err(RecvError::Closed) => {}
            Ok(ringmq::protocol::Packet::Disconnect(d)) if v.is_v5() => {
                assert!(d.reason as u8 >= 0x80, "{what}: DISCONNECT {:?}", d.reason);
                c.expect_closed(CLOSE);
            }
            other => panic!("{what}: expected the connection to close, got {other:?}"),
        }
        bystander_unaffected(&broker, v, &mut watcher, n);
    }
}
test_versions!(check_violations => protocol_violation_closes_only_that_connection_v311_mqtt_4_8_0_1,
    protocol_violation_closes_only_that_connection_v5_mqtt_4_13_1_1);

// [MQTT-3.1.0-1] (3.1.1) (5.0) Bytes that are not MQTT at all, before any CONNECT (an HTTP
// request, a TLS ClientHello, a five-byte remaining length, a truncated CONNECT): the
// connection closes and the broker keeps serving.
#[test]
fn garbage_before_connect_closes_connection_mqtt_3_1_0_1() {
    let broker = Broker::start_default();
    let mut watcher = bystander(&broker, V311);
    let garbage = [
        "47 45 54 20 2f 20 48 54 54 50 2f 31 2e 31 0d 0a 0d 0a",
        "16 03 01 00 05 01 00 00 01 00",
        "10 ff ff ff ff 01",
        "ff ff ff ff",
    ];
    for (n, bytes) in garbage.iter().enumerate() {
        let mut c = broker.raw();
        c.send(&hex(bytes));
        match c.try_recv_packet(V311, CLOSE) {
            Err(RecvError::Closed) => {}
            other => panic!("{bytes}: expected the connection to close, got {other:?}"),
        }
        bystander_unaffected(&broker, V311, &mut watcher, n);
    }
    // A client that sends half a CONNECT and hangs up.
    let mut c = broker.raw();
    c.send(&hex("10 10 00 04 4d 51"));
    c.drop_connection();
    bystander_unaffected(&broker, V311, &mut watcher, garbage.len());
}

/// A broker whose packet size limit is 1024 bytes.
fn small_packets_broker() -> Broker {
    Broker::start(
        BrokerOptions::default()
            .config("[limits]\npacket_bytes_max = 1024", "max_packet_size 1024"),
    )
}

/// The fixed header of a PUBLISH of `total` bytes to topic `t` plus its first bytes (the
/// server is to refuse it from the header, before the rest arrives).
fn oversized_publish_start(v: ProtocolVersion, total: usize) -> Vec<u8> {
    let mut body = string_field(b"t");
    if v.is_v5() {
        body.push(0x00);
    }
    body.resize(total - 3, b'x');
    let whole = frame(0x30, &body);
    assert_eq!(whole.len(), total);
    whole[..16].to_vec()
}

// Section 3.2.2.3.6 / 4.13 (5.0): the server advertises its Maximum Packet Size in CONNACK;
// a larger packet gets DISCONNECT 0x95 (Packet too large) and the connection is closed
// [MQTT-3.2.2-15]. A packet within the limit passes. Others are not affected.
#[test]
fn packet_too_large_gets_disconnect_0x95_v5_mqtt_3_2_2_15() {
    let broker = small_packets_broker();
    let mut watcher = bystander(&broker, V5);
    let mut c = broker.client(V5, "big");
    assert_eq!(
        c.connack.properties.maximum_packet_size.map(|m| m.get()),
        Some(1024),
        "CONNACK Maximum Packet Size"
    );
    c.publish("ok/t", &[b'y'; 900], qos(1));
    assert_eq!(watcher.recv_message().payload.len(), 900);
    let mut c = c.into_raw();
    c.send(&oversized_publish_start(V5, 4000));
    c.expect_disconnect(0x95);
    c.expect_closed(CLOSE);
    bystander_unaffected(&broker, V5, &mut watcher, 0);
}

// Section 6 of the design: (3.1.1) a packet above the limit closes the connection, with
// nothing sent back; one within the limit passes; others are not affected.
#[test]
fn packet_too_large_closes_connection_v311() {
    let broker = small_packets_broker();
    let mut watcher = bystander(&broker, V311);
    let mut c = broker.client(V311, "big");
    c.publish("ok/t", &[b'y'; 900], qos(1));
    assert_eq!(watcher.recv_message().payload.len(), 900);
    let mut c = c.into_raw();
    c.send(&oversized_publish_start(V311, 4000));
    c.expect_closed(CLOSE);
    bystander_unaffected(&broker, V311, &mut watcher, 0);
}

// [MQTT-3.1.2-24] (5.0) The server does not send a client a packet above the client's own
// Maximum Packet Size: a subscriber that allows 128 bytes does not get a 500-byte message
// (but gets the small one after it).
#[test]
fn server_respects_client_maximum_packet_size_v5_mqtt_3_1_2_24() {
    let broker = Broker::start_default();
    let mut c = connect(V5, "small");
    c.properties.maximum_packet_size = std::num::NonZeroU32::new(128);
    let mut sub = Client::connect(broker.addr(), c);
    sub.subscribe_one("mp/t", qos(1));
    let mut p = broker.client(V5, "pub");
    p.publish("mp/t", &[b'z'; 500], qos(1));
    p.publish("mp/t", b"small", qos(1));
    assert_eq!(text(&sub.recv_message()), "small");
}
