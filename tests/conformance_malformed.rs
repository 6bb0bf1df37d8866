//! Conformance: malformed packets and protocol errors after a successful CONNECT that the
//! other suites do not cover: reserved fixed-header flags of more packet types, packet
//! identifiers of 0, empty or ill-formed topic filters and names, invalid subscription
//! options, and (5.0) properties a client must not send or must send well-formed.
//!
//! The server closes the offending connection (3.1.1 [MQTT-4.8.0-1], sending nothing; 5.0
//! [MQTT-4.13.1-1], after a DISCONNECT with a reason code of 0x80 or more, which ringmq always
//! sends), and the broker goes on serving others.

pub mod common;

use std::time::Duration;

use common::*;
use ringmq::protocol::{Packet, ProtocolVersion};

const CLOSE: Duration = Duration::from_secs(5);

/// One bad packet, and the v5 DISCONNECT reason codes that fit it.
struct Case {
    what: &'static str,
    bytes: Vec<u8>,
    reasons: &'static [u8],
    /// Mosquitto 2.0.11 lets this one pass (checked under ringmq only).
    mosquitto_accepts: bool,
}

const MALFORMED: &[u8] = &[0x81];
const ERROR: &[u8] = &[0x81, 0x82];
/// A topic name or filter the server does not accept may also be 0x90 / 0x8F.
const BAD_TOPIC: &[u8] = &[0x81, 0x82, 0x90];

/// `(id, properties, rest)` as a packet body: a v5 packet gets an empty property block.
fn body(v: ProtocolVersion, id: u16, rest: &[u8]) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    if v.is_v5() {
        out.push(0x00);
    }
    out.extend_from_slice(rest);
    out
}

/// A SUBSCRIBE body for one filter (given as raw bytes) with `options`.
fn subscribe_body(v: ProtocolVersion, id: u16, filter_bytes: &[u8], options: u8) -> Vec<u8> {
    let mut rest = string_field(filter_bytes);
    rest.push(options);
    body(v, id, &rest)
}

/// A QoS 0 PUBLISH (first byte `first`) to topic bytes `topic_name` with the v5 property
/// block `properties` (ignored for 3.1.1).
fn publish_raw(v: ProtocolVersion, first: u8, topic_name: &[u8], properties: &[u8]) -> Vec<u8> {
    let mut b = string_field(topic_name);
    if v.is_v5() {
        b.push(u8::try_from(properties.len()).expect("short properties"));
        b.extend_from_slice(properties);
    }
    b.extend_from_slice(b"payload");
    frame(first, &b)
}

/// Sends each case on its own new connection and checks that the server closes it, after a
/// DISCONNECT with one of the case's reason codes (v5, ringmq; Mosquitto may close without
/// one). Each connection first shows it works (PINGREQ), and the broker serves a new client
/// at the end.
fn run_cases(v: ProtocolVersion, cases: Vec<Case>) {
    let broker = Broker::start_default();
    for case in cases {
        eprintln!("{v}: {}", case.what);
        if case.mosquitto_accepts && is_mosquitto() {
            eprintln!("  skipped: Mosquitto 2.0.11 accepts it");
            continue;
        }
        let mut c = broker.client(v, "culprit").into_raw();
        c.send(&hex("c0 00"));
        c.expect_bytes("d0 00");
        c.send(&case.bytes);
        match c.try_recv_packet(v, CLOSE) {
            Err(RecvError::Closed) if !v.is_v5() || is_mosquitto() => {}
            Ok(Packet::Disconnect(d)) if v.is_v5() => {
                assert!(
                    case.reasons.contains(&(d.reason as u8)),
                    "{}: DISCONNECT {:#04x}, expected one of {:02x?}",
                    case.what,
                    d.reason as u8,
                    case.reasons
                );
                c.expect_closed(CLOSE);
            }
            other => panic!(
                "{}: expected the connection to close, got {other:?}",
                case.what
            ),
        }
    }
    broker.client(v, "after").ping();
}

/// The same builders with valid values are accepted: each of `controls` is answered (if at
/// all) with anything but a DISCONNECT, and the connection stays open (a PINGREQ after it
/// is answered).
fn run_controls(v: ProtocolVersion, controls: Vec<(&str, Vec<u8>)>) {
    let broker = Broker::start_default();
    let mut c = broker.client(v, "control").into_raw();
    for (what, bytes) in controls {
        c.send(&bytes);
        c.send(&hex("c0 00"));
        loop {
            let raw = c.recv_raw();
            if raw == hex("d0 00") {
                break;
            }
            assert_ne!(raw[0], 0xe0, "control {what}: DISCONNECT {}", to_hex(&raw));
        }
    }
}

// Reserved fixed-header flags must have the values the spec lists ([MQTT-2.2.2-1] (3.1.1),
// [MQTT-2.1.3-1] (5.0)) and a receiver that gets others closes the connection
// ([MQTT-2.2.2-2] (3.1.1)): UNSUBSCRIBE must have 0010 [MQTT-3.10.1-1]; PUBACK, PUBREC,
// PUBCOMP and PINGREQ 0000 (Mosquitto 2.0.11 does not check those four: checked under
// ringmq only).
fn check_reserved_flags(v: ProtocolVersion) {
    let unsubscribe = body(v, 1, &string_field(b"a"));
    run_controls(
        v,
        vec![("UNSUBSCRIBE with flags 0010", frame(0xa2, &unsubscribe))],
    );
    run_cases(
        v,
        vec![
            Case {
                what: "UNSUBSCRIBE with flags 0000",
                bytes: frame(0xa0, &unsubscribe),
                reasons: MALFORMED,
                mosquitto_accepts: false,
            },
            Case {
                what: "UNSUBSCRIBE with flags 0011",
                bytes: frame(0xa3, &unsubscribe),
                reasons: MALFORMED,
                mosquitto_accepts: false,
            },
            Case {
                what: "PUBACK with flags 0001",
                bytes: hex("41 02 00 01"),
                reasons: MALFORMED,
                mosquitto_accepts: true,
            },
            Case {
                what: "PUBREC with flags 0010",
                bytes: hex("52 02 00 01"),
                reasons: MALFORMED,
                mosquitto_accepts: true,
            },
            Case {
                what: "PUBCOMP with flags 1000",
                bytes: hex("78 02 00 01"),
                reasons: MALFORMED,
                mosquitto_accepts: true,
            },
            Case {
                what: "PINGREQ with flags 0001",
                bytes: hex("c1 00"),
                reasons: MALFORMED,
                mosquitto_accepts: true,
            },
        ],
    );
}
test_versions!(check_reserved_flags => reserved_fixed_header_flags_close_connection_v311_mqtt_2_2_2_2,
    reserved_fixed_header_flags_close_connection_v5_mqtt_2_1_3_1);

// SUBSCRIBE and UNSUBSCRIBE carry a non-zero packet identifier ([MQTT-2.3.1-1] (3.1.1),
// [MQTT-2.2.1-3] (5.0)); an UNSUBSCRIBE has at least one topic filter [MQTT-3.10.3-2]; a
// 3.1.1 SUBSCRIBE asking for QoS 3 is malformed [MQTT-3.8.3-4] (3.1.1), as is a 5.0 one
// (a Protocol Error, section 3.8.3.1).
fn check_subscribe_fields(v: ProtocolVersion) {
    run_controls(
        v,
        vec![
            ("SUBSCRIBE", frame(0x82, &subscribe_body(v, 1, b"a", 2))),
            ("UNSUBSCRIBE", frame(0xa2, &body(v, 1, &string_field(b"a")))),
        ],
    );
    run_cases(
        v,
        vec![
            Case {
                what: "SUBSCRIBE with packet id 0",
                bytes: frame(0x82, &subscribe_body(v, 0, b"a", 0)),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
            Case {
                what: "UNSUBSCRIBE with packet id 0",
                bytes: frame(0xa2, &body(v, 0, &string_field(b"a"))),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
            Case {
                what: "UNSUBSCRIBE without a topic filter",
                bytes: frame(0xa2, &body(v, 1, &[])),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
            Case {
                what: "SUBSCRIBE for QoS 3",
                bytes: frame(0x82, &subscribe_body(v, 1, b"a", 3)),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
        ],
    );
}
test_versions!(check_subscribe_fields => bad_subscribe_fields_close_connection_v311_mqtt_2_3_1_1,
    bad_subscribe_fields_close_connection_v5_mqtt_2_2_1_3);

// Topic filters and names are well-formed UTF-8 ([MQTT-1.5.3-1] (3.1.1),
// [MQTT-1.5.4-1] (5.0)) without U+0000 ([MQTT-1.5.3-2] (3.1.1), [MQTT-1.5.4-2] (5.0),
// [MQTT-4.7.3-2]), in
// SUBSCRIBE [MQTT-3.8.3-1] and UNSUBSCRIBE [MQTT-3.10.3-1] alike, and at least one
// character long [MQTT-4.7.3-1]; `+` fills a whole level ([MQTT-4.7.1-3] (3.1.1),
// [MQTT-4.7.1-2] (5.0)). Anything else closes the connection.
fn check_bad_filters(v: ProtocolVersion) {
    let unsubscribe = |filter_bytes: &[u8]| frame(0xa2, &body(v, 1, &string_field(filter_bytes)));
    let subscribe = |filter_bytes: &[u8]| frame(0x82, &subscribe_body(v, 1, filter_bytes, 1));
    run_controls(
        v,
        vec![
            ("SUBSCRIBE a/\u{e9}", subscribe("a/\u{e9}".as_bytes())),
            ("SUBSCRIBE a/+ ", subscribe(b"a/+")),
            ("SUBSCRIBE +/b/#", subscribe(b"+/b/#")),
            ("UNSUBSCRIBE a/\u{e9}", unsubscribe("a/\u{e9}".as_bytes())),
        ],
    );
    run_cases(
        v,
        vec![
            Case {
                what: "SUBSCRIBE filter with a surrogate",
                bytes: subscribe(b"a/\xed\xa0\x80"),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
            Case {
                what: "SUBSCRIBE filter with U+0000",
                bytes: subscribe(b"a/\x00"),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
            Case {
                what: "SUBSCRIBE filter with 0xff",
                bytes: subscribe(b"a\xff"),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
            Case {
                what: "UNSUBSCRIBE filter with a surrogate",
                bytes: unsubscribe(b"a/\xed\xbf\xbf"),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
            Case {
                what: "UNSUBSCRIBE filter with U+0000",
                bytes: unsubscribe(b"\x00"),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
            Case {
                what: "SUBSCRIBE with an empty filter",
                bytes: subscribe(b""),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
            Case {
                what: "UNSUBSCRIBE with an empty filter",
                bytes: unsubscribe(b""),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
            Case {
                what: "SUBSCRIBE filter `a/b+`",
                bytes: subscribe(b"a/b+"),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
            Case {
                what: "SUBSCRIBE filter `+a/b`",
                bytes: subscribe(b"+a/b"),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
        ],
    );
}
test_versions!(check_bad_filters => ill_formed_topic_filters_close_connection_v311_mqtt_3_8_3_1,
    ill_formed_topic_filters_close_connection_v5_mqtt_3_8_3_1);

// A PUBLISH topic name is at least one character long (3.1.1: [MQTT-4.7.3-1]; 5.0: without
// a Topic Alias an empty one is a Protocol Error), has no wildcards ([MQTT-3.3.2-2],
// [MQTT-4.7.1-1] (3.1.1), [MQTT-4.7.0-1] (5.0)); QoS 0 PUBLISH has DUP 0 [MQTT-3.3.1-2]
// (ringmq closes on DUP 1; Mosquitto 2.0.11 lets it pass, so that row is ringmq's only).
fn check_bad_publish(v: ProtocolVersion) {
    run_controls(
        v,
        vec![
            ("PUBLISH a", publish_raw(v, 0x30, b"a", &[])),
            ("PUBLISH a/b", publish_raw(v, 0x30, b"a/b", &[])),
        ],
    );
    run_cases(
        v,
        vec![
            Case {
                what: "PUBLISH with an empty topic name",
                bytes: publish_raw(v, 0x30, b"", &[]),
                reasons: ERROR,
                mosquitto_accepts: false,
            },
            Case {
                what: "PUBLISH topic `#`",
                bytes: publish_raw(v, 0x30, b"#", &[]),
                reasons: BAD_TOPIC,
                mosquitto_accepts: false,
            },
            Case {
                what: "PUBLISH topic `a/+/b`",
                bytes: publish_raw(v, 0x30, b"a/+/b", &[]),
                reasons: BAD_TOPIC,
                mosquitto_accepts: false,
            },
            Case {
                what: "QoS 0 PUBLISH with DUP 1",
                bytes: publish_raw(v, 0x38, b"a", &[]),
                reasons: ERROR,
                mosquitto_accepts: true,
            },
        ],
    );
}
test_versions!(check_bad_publish => bad_publish_topic_or_flags_close_connection_v311_mqtt_4_7_3_1,
    bad_publish_topic_or_flags_close_connection_v5_mqtt_4_7_3_1);

// (5.0) PUBLISH properties a client must get right:
// - a Topic Alias of 0 [MQTT-3.3.2-8];
// - a Response Topic that is a well-formed UTF-8 string [MQTT-3.3.2-13] without wildcards
//   [MQTT-3.3.2-14];
// - a Content Type that is a well-formed UTF-8 string [MQTT-3.3.2-19];
// - User Properties whose name and value are both well-formed UTF-8 strings [MQTT-1.5.7-1];
// - no Subscription Identifier from a client [MQTT-3.3.4-6].
// (Mosquitto 2.0.11 lets the wildcard Response Topics and the Subscription Identifier pass:
// those rows are checked under ringmq only.)
#[test]
fn bad_publish_properties_close_connection_v5_mqtt_3_3_2_8() {
    let v = V5;
    let mut user_bad_name = vec![0x26];
    user_bad_name.extend_from_slice(&string_field(b"k\xff"));
    user_bad_name.extend_from_slice(&string_field(b"v"));
    let mut user_bad_value = vec![0x26];
    user_bad_value.extend_from_slice(&string_field(b"k"));
    user_bad_value.extend_from_slice(&string_field(b"v\xed\xa0\x80"));
    let with = |id: u8, value: &[u8]| {
        let mut p = vec![id];
        p.extend_from_slice(&string_field(value));
        p
    };
    let mut user_ok = vec![0x26];
    user_ok.extend_from_slice(&string_field(b"k"));
    user_ok.extend_from_slice(&string_field(b"v"));
    run_controls(
        v,
        vec![
            (
                "Topic Alias 1",
                publish_raw(v, 0x30, b"a", &[0x23, 0x00, 0x01]),
            ),
            (
                "Response Topic",
                publish_raw(v, 0x30, b"a", &with(0x08, b"r/x")),
            ),
            (
                "Content Type",
                publish_raw(v, 0x30, b"a", &with(0x03, b"t")),
            ),
            ("User Property", publish_raw(v, 0x30, b"a", &user_ok)),
        ],
    );
    run_cases(
        v,
        vec![
            Case {
                what: "Topic Alias 0",
                bytes: publish_raw(v, 0x30, b"a", &[0x23, 0x00, 0x00]),
                reasons: &[0x81, 0x82, 0x94],
                mosquitto_accepts: false,
            },
            Case {
                what: "Response Topic with `#`",
                bytes: publish_raw(v, 0x30, b"a", &with(0x08, b"r/#")),
                reasons: BAD_TOPIC,
                mosquitto_accepts: true,
            },
            Case {
                what: "Response Topic with `+`",
                bytes: publish_raw(v, 0x30, b"a", &with(0x08, b"+/r")),
                reasons: BAD_TOPIC,
                mosquitto_accepts: true,
            },
            Case {
                what: "Response Topic with 0xff",
                bytes: publish_raw(v, 0x30, b"a", &with(0x08, b"r/\xff")),
                reasons: MALFORMED,
                mosquitto_accepts: false,
            },
            Case {
                what: "Content Type with a surrogate",
                bytes: publish_raw(v, 0x30, b"a", &with(0x03, b"t\xed\xa0\x80")),
                reasons: MALFORMED,
                mosquitto_accepts: false,
            },
            Case {
                what: "User Property name with 0xff",
                bytes: publish_raw(v, 0x30, b"a", &user_bad_name),
                reasons: MALFORMED,
                mosquitto_accepts: false,
            },
            Case {
                what: "User Property value with a surrogate",
                bytes: publish_raw(v, 0x30, b"a", &user_bad_value),
                reasons: MALFORMED,
                mosquitto_accepts: false,
            },
            Case {
                what: "Subscription Identifier from the client",
                bytes: publish_raw(v, 0x30, b"a", &[0x0b, 0x01]),
                reasons: ERROR,
                mosquitto_accepts: true,
            },
        ],
    );
}

// (5.0) [MQTT-1.5.5-1] A Variable Byte Integer uses as few bytes as it can: ringmq treats a
// remaining length written in more bytes than needed (0 as `80 00`) as malformed.
#[test]
fn overlong_variable_byte_integer_closes_connection_v5_mqtt_1_5_5_1_ringmq_only() {
    if skip_unless_ringmq("Mosquitto 2.0.11 accepts an over-long remaining length") {
        return;
    }
    run_controls(
        V5,
        vec![(
            "PUBLISH with remaining length 0b",
            hex("30 0b 00 01 61 00 70 61 79 6c 6f 61 64"),
        )],
    );
    run_cases(
        V5,
        vec![
            Case {
                what: "PINGREQ with remaining length 80 00",
                bytes: hex("c0 80 00"),
                reasons: MALFORMED,
                mosquitto_accepts: true,
            },
            Case {
                what: "PUBLISH with remaining length 8b 80 00",
                bytes: hex("30 8b 80 00 00 01 61 00 70 61 79 6c 6f 61 64"),
                reasons: MALFORMED,
                mosquitto_accepts: true,
            },
        ],
    );
}
