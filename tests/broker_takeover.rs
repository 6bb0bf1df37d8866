//! Session takeover against a running broker: a second connection with a client id already
//! connected closes the first (v5: after DISCONNECT 0x8E) and, without clean session,
//! carries on with its session.
//!
//! Four shards: whichever shard accepts each connection, both must meet on the client id's
//! home shard.

pub mod common;

use std::time::Duration;

use common::*;
use ringmq::protocol::ProtocolVersion;

const CLOSE: Duration = Duration::from_secs(5);

// [MQTT-3.1.4-2] (3.1.1) If the client id is already connected, the server disconnects the
// existing client; the new connection works.
#[test]
fn second_connection_with_same_id_closes_first_v311_mqtt_3_1_4_2() {
    let broker = Broker::with_shards(4);
    let mut first = broker.client(V311, "twin");
    first.ping();
    let mut second = broker.client(V311, "twin");
    first.expect_closed(CLOSE);
    second.ping();
}

// [MQTT-3.1.4-3] (5.0) The same; a DISCONNECT sent to the first connection before it is
// closed, if any, carries 0x8E (Session taken over).
#[test]
fn second_connection_with_same_id_closes_first_v5_mqtt_3_1_4_3() {
    let broker = Broker::with_shards(4);
    let mut first = broker.client(V5, "twin").into_raw();
    let mut second = broker.client(V5, "twin");
    first.expect_closed_allowing_disconnect(0x8e, CLOSE);
    second.ping();
}

// [MQTT-3.1.4-3] (5.0) The server sends the existing client DISCONNECT with reason 0x8E
// (Session taken over) before closing it.
#[test]
fn taken_over_connection_gets_disconnect_0x8e_v5_mqtt_3_1_4_3_ringmq_only() {
    if skip_unless_ringmq("mosquitto 2.0.11 closes the old connection without DISCONNECT 0x8E") {
        return;
    }
    let broker = Broker::with_shards(4);
    let mut first = broker.client(V5, "twin").into_raw();
    let _second = broker.client(V5, "twin");
    first.expect_disconnect(0x8e);
    first.expect_closed(CLOSE);
}

// [MQTT-3.1.4-2] (3.1.1) / [MQTT-3.1.4-3] (5.0) A takeover by a client of the other
// protocol version works the same: the id, not the version, names the session.
#[test]
fn takeover_across_protocol_versions_mqtt_3_1_4_2() {
    let broker = Broker::with_shards(4);
    let mut first = broker.client(V311, "mixed").into_raw();
    let mut second = broker.client(V5, "mixed");
    first.expect_closed(CLOSE);
    let mut third = broker.client(V311, "mixed");
    second.expect_closed_allowing_disconnect(0x8e, CLOSE);
    third.ping();
}

// [MQTT-3.1.4-3] (3.1.1) (CleanSession processing) / [MQTT-3.1.4-4] (5.0): taking over with
// CleanSession 0 / Clean Start 0 continues the session: Session Present 1, the subscription
// still delivers, to the new connection only.
fn check_takeover_keeps_session(v: ProtocolVersion) {
    let broker = Broker::with_shards(4);
    let mut first = Client::connect(broker.addr(), connect_persistent(v, "heir"));
    first.subscribe_one("tk/t", qos(1));
    let mut second = Client::connect(broker.addr(), connect_persistent(v, "heir"));
    assert!(second.session_present(), "the session continues");
    let mut publisher = broker.client(v, "pub");
    publisher.publish("tk/t", b"to the new one", qos(1));
    assert_eq!(text(&second.recv_message()), "to the new one");
    let mut first = first.into_raw();
    if v.is_v5() {
        first.expect_closed_allowing_disconnect(0x8e, CLOSE);
    } else {
        first.expect_closed(CLOSE);
    }
}
test_versions!(check_takeover_keeps_session => takeover_continues_persistent_session_v311_mqtt_3_1_4_3,
    takeover_continues_persistent_session_v5_mqtt_3_1_4_4);

// [MQTT-3.1.2-6] (3.1.1) / [MQTT-3.1.2-4] (5.0) Taking over with a clean session discards
// the old session: Session Present 0 and its subscription no longer delivers.
fn check_takeover_clean(v: ProtocolVersion) {
    let broker = Broker::with_shards(4);
    let mut first = Client::connect(broker.addr(), connect_persistent(v, "fresh"));
    first.subscribe_one("tk/t", qos(1));
    let mut second = broker.client(v, "fresh");
    assert!(!second.session_present());
    second.subscribe_one("fence/end", qos(1));
    let mut publisher = broker.client(v, "pub");
    publisher.publish("tk/t", b"old subscription", qos(1));
    publisher.publish("fence/end", b"fence", qos(1));
    assert_eq!(message(&second.recv_message()).0, "fence/end");
    second.expect_nothing(Duration::from_millis(200));
}
test_versions!(check_takeover_clean => takeover_with_clean_session_discards_old_session_v311_mqtt_3_1_2_6,
    takeover_with_clean_session_discards_old_session_v5_mqtt_3_1_2_4);

// [MQTT-3.1.4-2] (3.1.1) / [MQTT-3.1.4-3] (5.0) Twenty connections with one id in a row: each closes the one before, and
// only the last is left, still serving.
fn check_takeover_chain(v: ProtocolVersion) {
    let broker = Broker::with_shards(4);
    let mut current = broker.client(v, "chain").into_raw();
    for _ in 0..20 {
        let next = broker.client(v, "chain");
        if v.is_v5() {
            current.expect_closed_allowing_disconnect(0x8e, CLOSE);
        } else {
            current.expect_closed(CLOSE);
        }
        current = next.into_raw();
    }
    current.send(&hex("c0 00"));
    current.expect_bytes("d0 00");
}
test_versions!(check_takeover_chain => repeated_takeover_leaves_only_last_connection_v311_mqtt_3_1_4_2,
    repeated_takeover_leaves_only_last_connection_v5_mqtt_3_1_4_3);
