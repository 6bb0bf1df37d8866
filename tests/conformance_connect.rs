//! Conformance: CONNECT, CONNACK and DISCONNECT statements of MQTT 3.1.1 and 5.0 that the
//! other suites do not cover: CONNECTs whose flags and payload disagree, ill-formed strings
//! in a CONNECT, refused CONNECTs (Session Present 0, the close, nothing after it processed),
//! the first packet the server sends, client ids naming sessions, and the DISCONNECTs a v5
//! server sends.

pub mod common;

use std::time::Duration;

use common::*;
use ringmq::protocol::{Packet, ProtocolVersion};

const CLOSE: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(200);

/// The protocol level byte of `v`.
fn level(v: ProtocolVersion) -> u8 {
    if v.is_v5() {
        5
    } else {
        4
    }
}

/// A CONNECT written by hand: "MQTT", `level`, `flags`, keep-alive 60, an empty property
/// block when `level` is 5, then `payload` as given (client id and the rest, already
/// encoded).
fn connect_with_payload(level: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = string_field(b"MQTT");
    body.extend_from_slice(&[level, flags, 0x00, 0x3c]);
    if level == 5 {
        body.push(0x00);
    }
    body.extend_from_slice(payload);
    frame(0x10, &body)
}

/// Payload fields in order; `will` adds the (v5) will property block before the topic.
fn fields(v: ProtocolVersion, client_id: &[u8], will: Option<(&[u8], &[u8])>) -> Vec<u8> {
    let mut out = string_field(client_id);
    if let Some((topic_name, payload)) = will {
        if v.is_v5() {
            out.push(0x00);
        }
        out.extend_from_slice(&string_field(topic_name));
        out.extend_from_slice(&string_field(payload));
    }
    out
}

/// The server refuses a CONNECT: it closes the connection. A 3.1.1 server sends nothing
/// first [MQTT-3.1.4-1]; a 5.0 server may send a CONNACK with a reason code of 0x80 or more,
/// but never a DISCONNECT before a successful CONNACK.
fn expect_refused(c: &mut RawClient, v: ProtocolVersion, what: &str) {
    match c.try_recv_raw(CLOSE) {
        Err(RecvError::Closed) => {}
        Ok(raw) if v.is_v5() => {
            assert_eq!(
                raw[0],
                0x20,
                "{what}: expected a CONNACK or the close, got {}",
                to_hex(&raw)
            );
            assert!(
                raw.len() >= 4 && raw[3] >= 0x80,
                "{what}: CONNACK does not refuse: {}",
                to_hex(&raw)
            );
            c.expect_closed(CLOSE);
        }
        other => panic!("{what}: expected the connection to close, got {other:?}"),
    }
}

/// The server accepts the CONNECT: CONNACK with return / reason code 0.
fn expect_accepted(c: &mut RawClient, what: &str) {
    let raw = c.recv_raw();
    assert!(
        raw[0] == 0x20 && raw.len() >= 4 && raw[3] == 0x00,
        "{what}: expected a successful CONNACK, got {}",
        to_hex(&raw)
    );
}

/// The broker still accepts a new client of `v`.
fn still_serves(broker: &Broker, v: ProtocolVersion) {
    broker.client(v, "still-serves").ping();
}

// CONNECT flags that contradict the payload, or values the spec forbids, make the CONNECT
// malformed: the server closes the connection without accepting it [MQTT-3.1.4-1] (3.1.1),
// and a 3.1.1 server sends no CONNACK because no return code applies [MQTT-3.2.2-6] (3.1.1);
// a 5.0 server sends no DISCONNECT before a CONNACK [MQTT-3.14.0-1] (5.0).
// - Will Flag 0 with Will QoS 1: [MQTT-3.1.2-13] (3.1.1), [MQTT-3.1.2-11] (5.0).
// - Will Flag 0 with Will Retain 1: [MQTT-3.1.2-15] (3.1.1), [MQTT-3.1.2-13] (5.0).
// - Will Flag 0 but will fields in the payload: [MQTT-3.1.2-11] (3.1.1).
// - Will Flag 1 with Will QoS 3: [MQTT-3.1.2-14] (3.1.1), [MQTT-3.1.2-12] (5.0).
// - Will Flag 1 without will fields: [MQTT-3.1.2-9].
// - User Name Flag 1 without a user name: [MQTT-3.1.2-19] (3.1.1), [MQTT-3.1.2-17] (5.0).
// - User Name Flag 0 with a user name: [MQTT-3.1.2-18] (3.1.1), [MQTT-3.1.2-16] (5.0).
// - Password Flag 1 without a password: [MQTT-3.1.2-21] (3.1.1), [MQTT-3.1.2-19] (5.0).
// - Password Flag 0 with a password: [MQTT-3.1.2-20] (3.1.1), [MQTT-3.1.2-18] (5.0).
// - No client id at all: [MQTT-3.1.3-3], with the fields' order [MQTT-3.1.3-1].
fn check_inconsistent_connect(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let id = fields(v, b"flags", None);
    let with_will = fields(v, b"flags", Some((b"w/t", b"bye")));
    let mut with_user = id.clone();
    with_user.extend_from_slice(&string_field(b"user"));
    let mut with_user_and_password = with_user.clone();
    with_user_and_password.extend_from_slice(&string_field(b"secret"));
    let cases: Vec<(&str, u8, Vec<u8>)> = vec![
        ("will flag 0, will QoS 1", 0x0a, id.clone()),
        ("will flag 0, will retain 1", 0x22, id.clone()),
        ("will flag 0, will fields present", 0x02, with_will.clone()),
        ("will QoS 3", 0x1e, with_will.clone()),
        ("will flag 1, no will fields", 0x06, id.clone()),
        ("user name flag 1, no user name", 0x82, id.clone()),
        (
            "user name flag 0, user name present",
            0x02,
            with_user.clone(),
        ),
        ("password flag 1, no password", 0xc2, with_user.clone()),
        (
            "password flag 0, password present",
            0x82,
            with_user_and_password.clone(),
        ),
        ("no client id", 0x02, Vec::new()),
    ];
    // The same builder with flags that agree with the payload is accepted.
    let controls = [
        ("will", 0x06, with_will),
        (
            "user name and password",
            0xc2,
            with_user_and_password.clone(),
        ),
    ];
    for (what, flags, payload) in controls {
        let mut c = broker.raw();
        c.send(&connect_with_payload(level(v), flags, &payload));
        expect_accepted(&mut c, what);
    }
    for (what, flags, payload) in cases {
        let mut c = broker.raw();
        c.send(&connect_with_payload(level(v), flags, &payload));
        eprintln!("{v}: {what}");
        expect_refused(&mut c, v, what);
    }
    still_serves(&broker, v);
}
test_versions!(check_inconsistent_connect => inconsistent_connect_flags_refused_v311_mqtt_3_1_2_13,
    inconsistent_connect_flags_refused_v5_mqtt_3_1_2_11);

// [MQTT-3.1.2-22] (3.1.1) A Password Flag of 1 with a User Name Flag of 0 is refused (5.0
// allows a password alone).
#[test]
fn password_without_user_name_refused_v311_mqtt_3_1_2_22() {
    let broker = Broker::start_default();
    let mut payload = fields(V311, b"pw-only", None);
    payload.extend_from_slice(&string_field(b"secret"));
    let mut c = broker.raw();
    c.send(&connect_with_payload(4, 0x42, &payload));
    expect_refused(&mut c, V311, "password without user name");
    still_serves(&broker, V311);
}

// Strings in a CONNECT must be well-formed UTF-8 without U+0000 ([MQTT-1.5.3-1] (3.1.1),
// [MQTT-1.5.3-2] (3.1.1); [MQTT-1.5.4-1] (5.0), [MQTT-1.5.4-2] (5.0)); a server that
// receives one that is not closes the connection. Covered fields: the client id [MQTT-3.1.3-4], the will
// topic ([MQTT-3.1.3-10] (3.1.1), [MQTT-3.1.3-11] (5.0)) and the user name
// ([MQTT-3.1.3-11] (3.1.1), [MQTT-3.1.3-12] (5.0)).
fn check_bad_strings_in_connect(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let surrogate: &[u8] = b"id\xed\xa0\x80";
    let cases: Vec<(&str, u8, Vec<u8>)> = vec![
        (
            "client id with a surrogate",
            0x02,
            fields(v, surrogate, None),
        ),
        ("client id with U+0000", 0x02, fields(v, b"i\x00d", None)),
        ("client id with 0xff", 0x02, fields(v, b"i\xffd", None)),
        (
            "will topic with U+0000",
            0x06,
            fields(v, b"ok", Some((b"w/\x00", b"bye"))),
        ),
        (
            "will topic with a surrogate",
            0x06,
            fields(v, b"ok", Some((b"w/\xed\xbf\xbf", b"bye"))),
        ),
        ("user name with 0xc0 0x80", 0x82, {
            let mut p = fields(v, b"ok", None);
            p.extend_from_slice(&string_field(b"u\xc0\x80"));
            p
        }),
    ];
    let mut control = fields(v, b"ok", Some((b"w/\xc3\xa9", b"bye")));
    control.extend_from_slice(&string_field(b"u\xc3\xa9"));
    let mut c = broker.raw();
    c.send(&connect_with_payload(level(v), 0x86, &control));
    expect_accepted(&mut c, "well-formed strings");
    for (what, flags, payload) in cases {
        let mut c = broker.raw();
        c.send(&connect_with_payload(level(v), flags, &payload));
        eprintln!("{v}: {what}");
        expect_refused(&mut c, v, what);
    }
    still_serves(&broker, v);
}
test_versions!(check_bad_strings_in_connect => ill_formed_utf8_in_connect_refused_v311_mqtt_1_5_3_1,
    ill_formed_utf8_in_connect_refused_v5_mqtt_1_5_4_1);

// A will topic is a topic name: it must not contain wildcards ([MQTT-4.7.1-1] (3.1.1),
// [MQTT-4.7.0-1] (5.0)) and must be at least one character long [MQTT-4.7.3-1]; a CONNECT
// with such a will is refused.
fn check_bad_will_topic(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut c = broker.raw();
    c.send(&connect_with_payload(
        level(v),
        0x06,
        &fields(v, b"willer", Some((b"w/t", b"bye"))),
    ));
    expect_accepted(&mut c, "will topic \"w/t\"");
    for topic_name in [&b"w/#"[..], b"w/+/x", b""] {
        let mut c = broker.raw();
        c.send(&connect_with_payload(
            level(v),
            0x06,
            &fields(v, b"willer", Some((topic_name, b"bye"))),
        ));
        let what = format!("will topic {:?}", String::from_utf8_lossy(topic_name));
        eprintln!("{v}: {what}");
        expect_refused(&mut c, v, &what);
    }
    still_serves(&broker, v);
}
test_versions!(check_bad_will_topic => invalid_will_topic_refused_v311_mqtt_4_7_1_1,
    invalid_will_topic_refused_v5_mqtt_4_7_0_1);

/// A broker that accepts client ids of at most 23 bytes.
fn short_ids_broker() -> Broker {
    Broker::start(BrokerOptions::default().config("[limits]\nclient_id_bytes_max = 23", ""))
}

// [MQTT-3.1.3-9] (3.1.1) A client id the server rejects (ringmq: longer than
// `limits.client_id_bytes_max`) is answered with CONNACK 0x02 (Identifier rejected) and
// Session Present 0, exactly `20 02 00 02` [MQTT-3.2.2-4] (3.1.1), and the connection is
// then closed [MQTT-3.2.2-5] (3.1.1).
#[test]
fn rejected_client_id_gets_connack_0x02_then_close_v311_mqtt_3_1_3_9_ringmq_only() {
    if skip_unless_ringmq("the client id limit is ringmq's limits.client_id_bytes_max") {
        return;
    }
    let broker = short_ids_broker();
    let mut c = broker.raw();
    c.send(&connect_with_payload(
        4,
        0x02,
        &fields(V311, &[b'a'; 24], None),
    ));
    c.expect_bytes("20 02 00 02");
    c.expect_closed(CLOSE);
    still_serves(&broker, V311);
}

// [MQTT-3.1.3-8] (5.0) A client id the server rejects may get CONNACK 0x85 (Client
// Identifier not valid), and then the connection is closed ([MQTT-3.2.2-7] (5.0),
// [MQTT-4.13.2-1] (5.0)); that CONNACK has Session Present 0 [MQTT-3.2.2-6] (5.0), and its
// reason code is one of the Connect Reason Codes [MQTT-3.2.2-8] (5.0).
#[test]
fn rejected_client_id_gets_connack_0x85_then_close_v5_mqtt_3_1_3_8_ringmq_only() {
    if skip_unless_ringmq("the client id limit is ringmq's limits.client_id_bytes_max") {
        return;
    }
    let broker = short_ids_broker();
    let mut c = broker.raw();
    c.send(&connect_with_payload(
        5,
        0x02,
        &fields(V5, &[b'a'; 24], None),
    ));
    let raw = c.recv_raw();
    assert_eq!(to_hex(&raw[..4]), to_hex(&[0x20, raw[1], 0x00, 0x85]));
    c.expect_closed(CLOSE);
    // 23 bytes are fine [MQTT-3.1.3-5].
    let mut c = broker.raw();
    c.send(&connect_with_payload(
        5,
        0x02,
        &fields(V5, &[b'a'; 23], None),
    ));
    expect_accepted(&mut c, "23-byte client id");
}

/// A retained QoS 0 PUBLISH to `topic_name` and a SUBSCRIBE, to be written right behind a
/// CONNECT.
fn publish_and_subscribe_bytes(v: ProtocolVersion, topic_name: &str) -> Vec<u8> {
    let mut p = publish(topic_name, b"processed", qos(0), 0);
    p.retain = true;
    let mut bytes = encode(&Packet::Publish(p), v);
    bytes.extend_from_slice(&encode(
        &Packet::Subscribe(subscribe(1, &[("r/#", qos(0))])),
        v,
    ));
    bytes
}

/// The same bytes behind an accepted CONNECT are processed: SUBACK, and the message is
/// retained (so the refusal, not the bytes, is what the test shows).
fn control_accepted_then_processed(broker: &Broker, v: ProtocolVersion) {
    let mut bytes = connect_with_payload(level(v), 0x02, &fields(v, b"ctl", None));
    bytes.extend_from_slice(&publish_and_subscribe_bytes(v, "r/ctl"));
    let mut c = broker.raw();
    c.send(&bytes);
    expect_accepted(&mut c, "control CONNECT");
    let raw = c.recv_raw();
    assert_eq!(raw[0], 0x90, "expected SUBACK, got {}", to_hex(&raw));
    let mut sub = broker.client(v, "ctl-probe");
    sub.subscribe_one("r/ctl", qos(0));
    let p = sub.recv_message();
    assert_eq!((text(&p).as_str(), p.retain), ("processed", true));
}

// [MQTT-3.1.4-5] (3.1.1) When the server rejects a CONNECT it processes nothing the client
// sent after it: a retained PUBLISH and a SUBSCRIBE written right behind a CONNECT refused
// with 0x02 (empty client id, CleanSession 0) leave no retained message and get no SUBACK.
#[test]
fn nothing_after_a_refused_connect_is_processed_v311_mqtt_3_1_4_5() {
    let broker = Broker::start_default();
    control_accepted_then_processed(&broker, V311);
    let mut bytes = connect_with_payload(4, 0x00, &fields(V311, b"", None));
    bytes.extend_from_slice(&publish_and_subscribe_bytes(V311, "r/rej"));
    let mut c = broker.raw();
    c.send(&bytes);
    c.expect_bytes("20 02 00 02");
    c.expect_closed(CLOSE);
    expect_no_retained(&broker, V311, "r/rej");
}

// [MQTT-3.1.4-6] (5.0) The same for a 5.0 CONNECT refused with 0x85 (a client id above
// ringmq's limit): the retained PUBLISH behind it is not processed.
#[test]
fn nothing_after_a_refused_connect_is_processed_v5_mqtt_3_1_4_6_ringmq_only() {
    if skip_unless_ringmq("the client id limit is ringmq's limits.client_id_bytes_max") {
        return;
    }
    let broker = short_ids_broker();
    control_accepted_then_processed(&broker, V5);
    let mut bytes = connect_with_payload(5, 0x02, &fields(V5, &[b'z'; 30], None));
    bytes.extend_from_slice(&publish_and_subscribe_bytes(V5, "r/rej"));
    let mut c = broker.raw();
    c.send(&bytes);
    let raw = c.recv_raw();
    assert_eq!((raw[0], raw[3]), (0x20, 0x85), "CONNACK {}", to_hex(&raw));
    c.expect_closed(CLOSE);
    expect_no_retained(&broker, V5, "r/rej");
}

/// A new subscriber to `topic_name` gets no retained message: the first message it gets is
/// a fence published after its SUBSCRIBE.
fn expect_no_retained(broker: &Broker, v: ProtocolVersion, topic_name: &str) {
    let mut sub = broker.client(v, "retained-probe");
    sub.subscribe_one(topic_name, qos(1));
    let mut fence = broker.client(v, "fence");
    fence.publish(topic_name, b"fence", qos(1));
    let p = sub.recv_message();
    assert_eq!(
        (text(&p).as_str(), p.retain),
        ("fence", false),
        "a retained message was stored: {p:?}"
    );
    sub.expect_nothing(QUIET);
}

// A CONNACK that refuses a connection has Session Present 0 even when the server holds a
// session for the client id ([MQTT-3.2.2-4] (3.1.1), [MQTT-3.2.2-6] (5.0)), and the
// connection is then closed ([MQTT-3.2.2-5] (3.1.1), [MQTT-3.2.2-7] (5.0)). The refusal
// here is an unsupported protocol level (3.1.1: 2; 5.0: 6) for an id that has a stored
// session; the session itself is still there afterwards.
fn check_refusal_session_present_0(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut c = Client::connect(broker.addr(), connect_persistent(v, "sp-refused"));
    c.subscribe_one("sp/t", qos(1));
    c.disconnect();
    let unsupported = if v.is_v5() { 6 } else { 2 };
    let mut c = broker.raw();
    c.send(&connect_with_payload(
        unsupported,
        0x00,
        &string_field(b"sp-refused"),
    ));
    let raw = c.recv_raw();
    assert_eq!(raw[0], 0x20, "expected CONNACK, got {}", to_hex(&raw));
    assert!(
        raw.len() >= 4 && raw[3] != 0x00,
        "level {unsupported} accepted: {}",
        to_hex(&raw)
    );
    assert_eq!(
        raw[2],
        0x00,
        "refusing CONNACK with Session Present set: {}",
        to_hex(&raw)
    );
    c.expect_closed(CLOSE);
    let c = Client::connect(broker.addr(), connect_persistent(v, "sp-refused"));
    assert!(c.session_present(), "the stored session was lost");
}
test_versions!(check_refusal_session_present_0 => refusing_connack_has_session_present_0_v311_mqtt_3_2_2_4,
    refusing_connack_has_session_present_0_v5_mqtt_3_2_2_6);

// [MQTT-3.2.0-1] The first packet the server sends is the CONNACK, a successful one
// ([MQTT-3.1.4-4] (3.1.1), [MQTT-3.1.4-5] (5.0)), even when a resumed session has messages
// waiting (with four shards they come from elsewhere); and the server sends one CONNACK only
// [MQTT-3.2.0-2] (5.0): none follows among the queued messages.
fn check_connack_first(v: ProtocolVersion) {
    let broker = Broker::with_shards(4);
    let mut c = Client::connect(broker.addr(), connect_persistent(v, "queued-up"));
    c.subscribe_one("cf/t", qos(1));
    c.disconnect();
    let mut publisher = broker.client(v, "cf-pub");
    for i in 0..20 {
        publisher.publish("cf/t", format!("{i}").as_bytes(), qos(1));
    }
    for round in 0..3 {
        let mut c = broker.raw();
        c.send_packet(
            &Packet::Connect(Box::new(connect_persistent(v, "queued-up"))),
            v,
        );
        let raw = c.recv_raw();
        assert_eq!(
            to_hex(&raw[..1]),
            "20",
            "round {round}: first packet is not CONNACK: {}",
            to_hex(&raw)
        );
        assert_eq!(raw[3], 0x00, "CONNACK refused: {}", to_hex(&raw));
        for i in 0..20 {
            match c.recv_packet(v) {
                Packet::Publish(p) => {
                    assert_eq!(text(&p), format!("{i}"), "round {round}");
                    // Acknowledge only in the last round: before, all 20 come again.
                    if round == 2 {
                        c.send_packet(
                            &Packet::PubAck(ringmq::protocol::Ack::new(
                                p.packet_id.expect("QoS 1 id"),
                            )),
                            v,
                        );
                    }
                }
                other => panic!("round {round}: expected PUBLISH {i}, got {other:?}"),
            }
        }
        c.send(&hex("c0 00"));
        c.expect_bytes("d0 00");
        c.drop_connection();
    }
}
test_versions!(check_connack_first => connack_is_first_and_only_once_v311_mqtt_3_2_0_1,
    connack_is_first_and_only_once_v5_mqtt_3_2_0_2);

// [MQTT-3.1.3-2] The client id names the session state: two persistent sessions held side
// by side each get back their own subscriptions and their own queued messages, and nothing
// of the other's.
fn check_client_id_names_state(v: ProtocolVersion) {
    let broker = Broker::with_shards(4);
    for (id, filter) in [("state-a", "st/a"), ("state-b", "st/b")] {
        let mut c = Client::connect(broker.addr(), connect_persistent(v, id));
        c.subscribe_one(filter, qos(1));
        c.disconnect();
    }
    let mut publisher = broker.client(v, "st-pub");
    publisher.publish("st/a", b"for a", qos(1));
    publisher.publish("st/b", b"for b", qos(1));
    for (id, filter, payload) in [("state-b", "st/b", "for b"), ("state-a", "st/a", "for a")] {
        let mut c = Client::connect(broker.addr(), connect_persistent(v, id));
        assert!(c.session_present(), "{id}: session present");
        let p = c.recv_message();
        assert_eq!(message(&p), (filter.to_owned(), payload.to_owned()), "{id}");
        c.expect_nothing(QUIET);
    }
}
test_versions!(check_client_id_names_state => client_id_names_the_session_v311_mqtt_3_1_3_2,
    client_id_names_the_session_v5_mqtt_3_1_3_2);

// [MQTT-3.1.2-6] (5.0) Clean Start 0 with no session for the client id creates a new one:
// Session Present 0, and the session then outlives the connection (Session Expiry Interval
// 300 s) with the subscription made on it and the messages for it.
#[test]
fn clean_start_0_without_session_creates_one_v5_mqtt_3_1_2_6() {
    let broker = Broker::start_default();
    let mut c = Client::connect(broker.addr(), connect_persistent(V5, "brand-new"));
    assert!(!c.session_present(), "no session existed");
    c.subscribe_one("new/t", qos(1));
    c.disconnect();
    let mut publisher = broker.client(V5, "new-pub");
    publisher.publish("new/t", b"kept for you", qos(1));
    let mut c = Client::connect(broker.addr(), connect_persistent(V5, "brand-new"));
    assert!(c.session_present(), "the session created was not kept");
    assert_eq!(text(&c.recv_message()), "kept for you");
}

// [MQTT-3.14.2-2] (5.0) A DISCONNECT the server sends carries no Session Expiry Interval:
// the DISCONNECT 0x81 a malformed packet earns a client whose session has an expiry.
#[test]
fn server_disconnect_has_no_session_expiry_interval_v5_mqtt_3_14_2_2() {
    let broker = Broker::start_default();
    let mut c = Client::connect(broker.addr(), connect_persistent(V5, "sei")).into_raw();
    // PUBLISH with QoS 3: malformed.
    c.send(&hex("36 07 00 01 61 00 01 00 78"));
    match c.recv_packet(V5) {
        Packet::Disconnect(d) => {
            assert_eq!(d.reason as u8, 0x81, "{d:?}");
            assert_eq!(
                d.properties.session_expiry_interval, None,
                "server DISCONNECT with a Session Expiry Interval: {d:?}"
            );
        }
        other => panic!("expected DISCONNECT 0x81, got {other:?}"),
    }
    c.expect_closed(CLOSE);
}

// [MQTT-3.14.4-1] (5.0) After its DISCONNECT the server sends nothing more, even with
// messages waiting for the client, and [MQTT-3.14.4-2] (5.0) closes the connection. The
// client (Receive Maximum 1) has one message in flight and more queued; it acknowledges
// the first and sends a malformed packet in the same write.
#[test]
fn nothing_after_server_disconnect_v5_mqtt_3_14_4_1() {
    let broker = Broker::start_default();
    let mut sub = connect(V5, "dis-sub");
    sub.properties.receive_maximum = std::num::NonZeroU16::new(1);
    let mut sub = Client::connect(broker.addr(), sub);
    sub.subscribe_one("dis/t", qos(1));
    let mut publisher = broker.client(V5, "dis-pub");
    for i in 0..10 {
        publisher.publish("dis/t", format!("{i}").as_bytes(), qos(1));
    }
    let first = sub.recv_publish();
    let id = first.packet_id.expect("QoS 1 id");
    let mut bytes = encode(&Packet::PubAck(ringmq::protocol::Ack::new(id)), V5);
    bytes.extend_from_slice(&hex("36 07 00 01 61 00 01 00 78"));
    let mut raw = sub.into_raw();
    raw.send(&bytes);
    // At most the next message (the PUBACK opened the window) comes before the DISCONNECT.
    loop {
        match raw.recv_packet(V5) {
            Packet::Publish(p) => assert_eq!(text(&p), "1", "{p:?}"),
            Packet::Disconnect(d) => {
                assert_eq!(d.reason as u8, 0x81, "{d:?}");
                break;
            }
            other => panic!("expected DISCONNECT 0x81, got {other:?}"),
        }
    }
    raw.expect_closed(CLOSE);
}

/// A v5 CONNECT (clean start, keep-alive 60, client id "props") with the property block
/// `properties` and, when `will_properties` is given, a will on `w/t` with that block.
fn v5_connect_with_properties(properties: &[u8], will_properties: Option<&[u8]>) -> Vec<u8> {
    let flags = if will_properties.is_some() {
        0x06
    } else {
        0x02
    };
    let mut body = string_field(b"MQTT");
    body.extend_from_slice(&[5, flags, 0x00, 0x3c]);
    body.push(u8::try_from(properties.len()).expect("short properties"));
    body.extend_from_slice(properties);
    body.extend_from_slice(&string_field(b"props"));
    if let Some(w) = will_properties {
        body.push(u8::try_from(w.len()).expect("short properties"));
        body.extend_from_slice(w);
        body.extend_from_slice(&string_field(b"w/t"));
        body.extend_from_slice(&string_field(b"bye"));
    }
    frame(0x10, &body)
}

// [MQTT-3.1.4-1] (5.0) The server validates the CONNECT against section 3.1 and closes the
// connection when it does not match (a CONNACK 0x81 or 0x82 first is allowed; never a
// DISCONNECT [MQTT-3.14.0-1] (5.0)): properties out of range (Receive Maximum 0, Maximum
// Packet Size 0, Request Problem Information 2), a property given twice, a property CONNECT
// does not have (Payload Format Indicator, Topic Alias), and will properties a will does not
// have (Subscription Identifier) or given twice. The same builder with valid properties is
// accepted.
#[test]
fn invalid_connect_properties_refused_v5_mqtt_3_1_4_1() {
    let broker = Broker::start_default();
    let mut c = broker.raw();
    c.send(&v5_connect_with_properties(
        &hex("11 00 00 00 0a 21 00 05 27 00 00 10 00 17 01"),
        Some(&hex("01 01 02 00 00 00 3c")),
    ));
    expect_accepted(&mut c, "valid properties");
    let cases: [(&str, &str, Option<&str>); 8] = [
        ("Receive Maximum 0", "21 00 00", None),
        ("Maximum Packet Size 0", "27 00 00 00 00", None),
        ("Request Problem Information 2", "17 02", None),
        (
            "Session Expiry Interval twice",
            "11 00 00 00 0a 11 00 00 00 0a",
            None,
        ),
        ("Payload Format Indicator in CONNECT", "01 01", None),
        ("Topic Alias in CONNECT", "23 00 01", None),
        ("Subscription Identifier in a will", "", Some("0b 01")),
        (
            "Message Expiry Interval twice in a will",
            "",
            Some("02 00 00 00 3c 02 00 00 00 3c"),
        ),
    ];
    for (what, properties, will_properties) in cases {
        let will_bytes = will_properties.map(hex);
        let mut c = broker.raw();
        c.send(&v5_connect_with_properties(
            &hex(properties),
            will_bytes.as_deref(),
        ));
        eprintln!("{what}");
        expect_refused(&mut c, V5, what);
    }
    still_serves(&broker, V5);
}
