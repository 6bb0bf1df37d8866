//! CONNECT, CONNACK, PINGREQ and DISCONNECT against a running broker, over TCP, with the
//! server's replies compared byte for byte where the spec fixes them.

pub mod common;

use std::time::Duration;

use common::*;
use ringmq::protocol::{Packet, ProtocolVersion};

const CLOSE: Duration = Duration::from_secs(5);

/// A CONNECT written by hand: protocol name, level, flags, keep-alive 60, client id; a v5
/// one carries an empty property block.
fn connect_bytes(name: &[u8], level: u8, flags: u8, client_id: &[u8]) -> Vec<u8> {
    let mut body = string_field(name);
    body.extend_from_slice(&[level, flags, 0x00, 0x3c]);
    if level == 5 {
        body.push(0x00);
    }
    body.extend_from_slice(&string_field(client_id));
    frame(0x10, &body)
}

/// The broker still serves a new client normally.
fn broker_still_serves(broker: &Broker, v: ProtocolVersion) {
    let mut c = broker.client(v, "still-alive");
    c.ping();
}

// [MQTT-3.1.0-1] (3.1.1) (5.0) The first packet from the client must be CONNECT; anything
// else is a protocol violation and the server closes the connection [MQTT-4.8.0-1] (3.1.1)
// without a reply.
#[test]
fn first_packet_other_than_connect_closes_connection_mqtt_3_1_0_1() {
    let broker = Broker::start_default();
    let firsts = [
        ("PINGREQ", hex("c0 00")),
        ("SUBSCRIBE", hex("82 06 00 01 00 01 61 00")),
        ("PUBLISH", hex("30 04 00 01 61 78")),
        ("DISCONNECT", hex("e0 00")),
    ];
    for (name, bytes) in firsts {
        let mut c = broker.raw();
        c.send(&bytes);
        c.expect_closed(CLOSE);
        eprintln!("{name} as first packet: closed");
    }
    broker_still_serves(&broker, V311);
}

// [MQTT-3.1.0-2] (3.1.1) A second CONNECT is a protocol violation: the server disconnects.
#[test]
fn second_connect_closes_connection_v311_mqtt_3_1_0_2() {
    let broker = Broker::start_default();
    let mut c = broker.client(V311, "twice").into_raw();
    c.send_packet(&Packet::Connect(Box::new(connect(V311, "twice"))), V311);
    c.expect_closed(CLOSE);
    broker_still_serves(&broker, V311);
}

// [MQTT-3.1.0-2] (5.0) A second CONNECT is a Protocol Error: the server closes the
// connection; a DISCONNECT before the close, if any, carries 0x82.
#[test]
fn second_connect_closes_connection_v5_mqtt_3_1_0_2() {
    let broker = Broker::start_default();
    let mut c = broker.client(V5, "twice").into_raw();
    c.send_packet(&Packet::Connect(Box::new(connect(V5, "twice"))), V5);
    c.expect_closed_allowing_disconnect(0x82, CLOSE);
    broker_still_serves(&broker, V5);
}

// [MQTT-3.1.0-2] with section 4.13: ringmq sends DISCONNECT 0x82 (Protocol Error) before
// closing, as the spec recommends ("SHOULD") and issue 3 requires.
#[test]
fn second_connect_gets_disconnect_0x82_v5_mqtt_3_1_0_2_ringmq_only() {
    if skip_unless_ringmq("mosquitto 2.0.11 closes without sending DISCONNECT 0x82") {
        return;
    }
    let broker = Broker::start_default();
    let mut c = broker.client(V5, "twice").into_raw();
    c.send_packet(&Packet::Connect(Box::new(connect(V5, "twice"))), V5);
    c.expect_disconnect(0x82);
    c.expect_closed(CLOSE);
}

// [MQTT-3.1.2-2] (3.1.1) (5.0) An unsupported protocol level is refused with CONNACK 0x01 (3.1.1:
// "unacceptable protocol level") and the connection closed. The 5.0 spec names the same
// answer 0x84 (Unsupported Protocol Version); a server cannot know which format a client of
// an unknown level reads, so either exact encoding passes: `20 02 00 01` or `20 03 00 84 00`.
#[test]
fn unsupported_protocol_level_refused_with_connack_0x01_mqtt_3_1_2_2() {
    let broker = Broker::start_default();
    for level in [0u8, 2, 6, 7, 0x7f] {
        let mut c = broker.raw();
        c.send(&connect_bytes(b"MQTT", level, 0x02, b"lvl"));
        let raw = c.recv_raw();
        let got = to_hex(&raw);
        assert!(
            got == "20 02 00 01" || got == "20 03 00 84 00",
            "level {level}: expected CONNACK 0x01 (or 0x84), got {got}"
        );
        c.expect_closed(CLOSE);
    }
    broker_still_serves(&broker, V311);
}

// [MQTT-3.1.2-1] (3.1.1) (5.0) A wrong protocol name: the server may disconnect (ringmq and
// mosquitto do), and must not go on as if it were MQTT; no CONNACK [MQTT-3.1.4-1] (3.1.1)
// (5.0).
#[test]
fn unknown_protocol_name_closes_connection_mqtt_3_1_2_1() {
    let broker = Broker::start_default();
    let mut c = broker.raw();
    c.send(&connect_bytes(b"MQTX", 4, 0x02, b"name"));
    c.expect_closed(CLOSE);
    broker_still_serves(&broker, V311);
}

// [MQTT-3.1.2-3] (3.1.1) The reserved CONNECT flag must be 0; otherwise the server
// disconnects without CONNACK [MQTT-3.1.4-1].
#[test]
fn connect_reserved_flag_closes_without_connack_v311_mqtt_3_1_2_3() {
    let broker = Broker::start_default();
    let mut c = broker.raw();
    c.send(&connect_bytes(b"MQTT", 4, 0x03, b"reserved"));
    c.expect_closed(CLOSE);
    broker_still_serves(&broker, V311);
}

// [MQTT-3.1.2-3] (5.0) A set reserved flag is a Malformed Packet: the connection is closed;
// a CONNACK before the close, if any, carries 0x81 (section 4.13).
#[test]
fn connect_reserved_flag_closes_connection_v5_mqtt_3_1_2_3() {
    let broker = Broker::start_default();
    let mut c = broker.raw();
    c.send(&connect_bytes(b"MQTT", 5, 0x03, b"reserved"));
    match c.try_recv_packet(V5, CLOSE) {
        Err(RecvError::Closed) => {}
        Ok(Packet::ConnAck(ack)) => {
            assert_eq!(ack.reason as u8, 0x81, "CONNACK for a malformed CONNECT");
            c.expect_closed(CLOSE);
        }
        other => panic!("expected the connection to close, got {other:?}"),
    }
    broker_still_serves(&broker, V5);
}

// [MQTT-3.1.4-4] (3.1.1) An acceptable CONNECT is answered with CONNACK return code 0,
// exactly `20 02 00 00`, the first packet the server sends [MQTT-3.2.0-1].
#[test]
fn connect_accepted_with_connack_0_v311_mqtt_3_1_4_4() {
    let broker = Broker::start_default();
    let mut c = broker.raw();
    c.send(&connect_bytes(b"MQTT", 4, 0x02, b"ok311"));
    c.expect_bytes("20 02 00 00");
    c.send(&hex("c0 00"));
    c.expect_bytes("d0 00");
}

// [MQTT-3.2.0-1] (5.0) The first packet is a CONNACK with 0x00 (Success): `20 <len> 00 00`
// followed by the server's properties, which the spec leaves to the server.
#[test]
fn connect_accepted_with_connack_success_v5_mqtt_3_2_0_1() {
    let broker = Broker::start_default();
    let mut c = broker.raw();
    c.send(&connect_bytes(b"MQTT", 5, 0x02, b"ok5"));
    let raw = c.recv_raw();
    assert_eq!(to_hex(&raw[..1]), "20", "CONNACK: {}", to_hex(&raw));
    assert_eq!(to_hex(&raw[2..4]), "00 00", "CONNACK: {}", to_hex(&raw));
    c.send(&hex("c0 00"));
    c.expect_bytes("d0 00");
}

// [MQTT-3.1.3-5] (3.1.1) (5.0) Client ids of 1 to 23 bytes of [0-9a-zA-Z] must be allowed.
#[test]
fn client_id_of_23_alphanumerics_accepted_mqtt_3_1_3_5() {
    let broker = Broker::start_default();
    for v in [V311, V5] {
        for id in [
            "a",
            "Z9",
            "0123456789abcdefghijklm",
            "ABCDEFGHIJKLMNOPQRSTUVW",
        ] {
            let mut c = broker.client(v, id);
            c.ping();
        }
    }
}

// [MQTT-3.1.3-8] (3.1.1) A zero-byte client id with CleanSession 0 is refused with CONNACK
// 0x02 (identifier rejected) and the connection closed: so the server enforces the client's
// side, [MQTT-3.1.3-7].
#[test]
fn empty_client_id_with_clean_session_0_refused_v311_mqtt_3_1_3_8() {
    let broker = Broker::start_default();
    let mut c = broker.raw();
    c.send(&connect_bytes(b"MQTT", 4, 0x00, b""));
    c.expect_bytes("20 02 00 02");
    c.expect_closed(CLOSE);
}

// [MQTT-3.1.3-6] (3.1.1) A zero-byte client id with CleanSession 1 is accepted and given a
// unique id: two such clients live side by side (the same id would take one over).
#[test]
fn empty_client_id_with_clean_session_1_gets_unique_id_v311_mqtt_3_1_3_6() {
    let broker = Broker::start_default();
    let mut first = broker.raw();
    first.send(&connect_bytes(b"MQTT", 4, 0x02, b""));
    first.expect_bytes("20 02 00 00");
    let mut second = broker.raw();
    second.send(&connect_bytes(b"MQTT", 4, 0x02, b""));
    second.expect_bytes("20 02 00 00");
    for c in [&mut first, &mut second] {
        c.send(&hex("c0 00"));
        c.expect_bytes("d0 00");
    }
}

// [MQTT-3.1.3-7] (5.0) and [MQTT-3.2.2-16]: a zero-length client id gets an Assigned Client
// Identifier in CONNACK, unique per client [MQTT-3.1.3-6].
#[test]
fn empty_client_id_gets_assigned_client_identifier_v5_mqtt_3_1_3_7() {
    let broker = Broker::start_default();
    let mut first = broker.client(V5, "");
    let mut second = broker.client(V5, "");
    let a = first
        .connack
        .properties
        .assigned_client_identifier
        .clone()
        .expect("CONNACK without Assigned Client Identifier");
    let b = second
        .connack
        .properties
        .assigned_client_identifier
        .clone()
        .expect("CONNACK without Assigned Client Identifier");
    assert!(!a.is_empty(), "empty Assigned Client Identifier");
    assert_ne!(
        a.as_str(),
        b.as_str(),
        "two clients were assigned the same id"
    );
    first.ping();
    second.ping();
}

// [MQTT-3.2.2-1] (3.1.1) CleanSession 1: Session Present is 0, even when a session was
// stored for the client id: `20 02 00 00`.
#[test]
fn session_present_0_with_clean_session_v311_mqtt_3_2_2_1() {
    let broker = Broker::start_default();
    let mut c = Client::connect(broker.addr(), connect_persistent(V311, "sp-clean"));
    c.subscribe_one("sp/t", qos(1));
    c.disconnect();
    let mut c = broker.raw();
    c.send(&connect_bytes(b"MQTT", 4, 0x02, b"sp-clean"));
    c.expect_bytes("20 02 00 00");
}

// [MQTT-3.2.2-2] / [MQTT-3.2.2-3] (3.1.1) CleanSession 0: Session Present is 1 when the
// server has a session for the id (`20 02 01 00`), 0 when it has none (`20 02 00 00`).
#[test]
fn session_present_reflects_stored_session_v311_mqtt_3_2_2_2_and_3() {
    let broker = Broker::start_default();
    let mut c = broker.raw();
    c.send(&connect_bytes(b"MQTT", 4, 0x00, b"sp-kept"));
    c.expect_bytes("20 02 00 00");
    c.send_packet(&Packet::Subscribe(subscribe(1, &[("sp/t", qos(1))])), V311);
    c.expect_bytes("90 03 00 01 01");
    c.send(&hex("e0 00"));
    c.expect_closed(CLOSE);
    let mut c = broker.raw();
    c.send(&connect_bytes(b"MQTT", 4, 0x00, b"sp-kept"));
    c.expect_bytes("20 02 01 00");
}

// [MQTT-3.2.2-2] (5.0) Clean Start 1 gives Session Present 0; [MQTT-3.2.2-3] Clean Start 0
// gives 1 when a session exists and 0 otherwise. The flags byte is the CONNACK's third byte,
// its bits 7-1 zero [MQTT-3.2.2-1] (5.0).
#[test]
fn session_present_reflects_stored_session_v5_mqtt_3_2_2_2_and_3() {
    let broker = Broker::start_default();
    let flags = |c: &mut RawClient| {
        let raw = c.recv_raw();
        assert_eq!(raw[0], 0x20, "expected CONNACK, got {}", to_hex(&raw));
        assert_eq!(raw[3], 0x00, "CONNACK refused: {}", to_hex(&raw));
        raw[2]
    };
    let mut c = broker.raw();
    c.send_packet(
        &Packet::Connect(Box::new(connect_persistent(V5, "sp5"))),
        V5,
    );
    assert_eq!(flags(&mut c), 0x00, "new session: Session Present 0");
    c.send_packet(&Packet::Subscribe(subscribe(1, &[("sp/t", qos(1))])), V5);
    c.expect_bytes("90 04 00 01 00 01");
    c.send(&hex("e0 00"));
    c.expect_closed(CLOSE);

    let mut c = broker.raw();
    c.send_packet(
        &Packet::Connect(Box::new(connect_persistent(V5, "sp5"))),
        V5,
    );
    assert_eq!(flags(&mut c), 0x01, "stored session: Session Present 1");
    c.send(&hex("e0 00"));
    c.expect_closed(CLOSE);

    let mut clean = connect_persistent(V5, "sp5");
    clean.clean_start = true;
    let mut c = broker.raw();
    c.send_packet(&Packet::Connect(Box::new(clean)), V5);
    assert_eq!(flags(&mut c), 0x00, "Clean Start 1: Session Present 0");
}

// [MQTT-3.12.4-1] PINGREQ `c0 00` is answered with PINGRESP `d0 00`.
#[test]
fn pingreq_gets_pingresp_v311_mqtt_3_12_4_1() {
    let broker = Broker::start_default();
    let mut c = broker.client(V311, "pinger");
    for _ in 0..3 {
        c.ping();
    }
}

// [MQTT-3.12.4-1] (5.0) The same for MQTT 5.
#[test]
fn pingreq_gets_pingresp_v5_mqtt_3_12_4_1() {
    let broker = Broker::start_default();
    let mut c = broker.client(V5, "pinger");
    for _ in 0..3 {
        c.ping();
    }
}

// Section 3.14.4 (3.1.1): on DISCONNECT the server closes the connection if the client has
// not; it sends nothing back.
#[test]
fn server_closes_connection_after_disconnect_v311() {
    let broker = Broker::start_default();
    let mut c = broker.client(V311, "bye").into_raw();
    c.send(&hex("e0 00"));
    c.expect_closed(CLOSE);
}

// Section 3.14.4 (5.0): the same after DISCONNECT 0x00 with no properties (`e0 00`).
#[test]
fn server_closes_connection_after_disconnect_v5() {
    let broker = Broker::start_default();
    let mut c = broker.client(V5, "bye").into_raw();
    c.send(&hex("e0 00"));
    c.expect_closed(CLOSE);
}

// Issue 3, "a CONNECT timeout for sockets that never send CONNECT": with
// `connect_timeout_secs = 1`, a silent socket and one that sent half a CONNECT are closed.
#[test]
fn connect_timeout_closes_sockets_without_connect_ringmq_only() {
    if skip_unless_ringmq("mosquitto 2.0.11 has no CONNECT timeout setting") {
        return;
    }
    let broker =
        Broker::start(BrokerOptions::default().config("[limits]\nconnect_timeout_secs = 1", ""));
    let mut silent = broker.raw();
    let mut half = broker.raw();
    let whole = connect_bytes(b"MQTT", 4, 0x02, b"half");
    half.send(&whole[..whole.len() / 2]);
    silent.expect_closed(Duration::from_secs(4));
    half.expect_closed(Duration::from_secs(4));
    broker_still_serves(&broker, V311);
}
