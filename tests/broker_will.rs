//! Will messages against a running broker: published when a connection ends without
//! DISCONNECT (dropped, keep-alive timeout, protocol error), not after DISCONNECT, with their
//! QoS and retain flag.

pub mod common;

use std::time::{Duration, Instant};

use common::*;
use ringmq::protocol::{ProtocolVersion, QoS};

const QUIET: Duration = Duration::from_millis(200);

fn will_client(
    broker: &Broker,
    v: ProtocolVersion,
    topic_name: &str,
    q: QoS,
    retain: bool,
) -> Client {
    let mut c = connect(v, "willer");
    c.will = Some(will(topic_name, b"gone", q, retain));
    Client::connect(broker.addr(), c)
}

fn watcher(broker: &Broker, v: ProtocolVersion) -> Client {
    let mut sub = broker.client(v, "watcher");
    sub.subscribe_one("w/#", qos(2));
    sub
}

/// Another client publishes `w/fence`; it must be the next message the watcher gets.
fn expect_fence_next(broker: &Broker, v: ProtocolVersion, sub: &mut Client) {
    let mut other = broker.client(v, "fencer");
    other.publish("w/fence", b"fence", qos(1));
    let p = sub.recv_message();
    assert_eq!(
        message(&p),
        ("w/fence".to_owned(), "fence".to_owned()),
        "expected no will, got {p:?}"
    );
    sub.expect_nothing(QUIET);
}

// [MQTT-3.1.2-8] The will is published when the connection closes without DISCONNECT, at
// its QoS (section 3.1.2.6) and with RETAIN 0 to the existing subscription.
fn check_will_on_drop(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = watcher(&broker, v);
    for (q, first) in [(0u8, 0x30u8), (1, 0x32), (2, 0x34)] {
        let w = will_client(&broker, v, "w/t", qos(q), false);
        w.into_raw().drop_connection();
        let id = sub.expect_publish(first, "w/t", b"gone");
        sub.ack_id(qos(q), id);
    }
}
test_versions!(check_will_on_drop => will_published_on_ungraceful_close_v311_mqtt_3_1_2_8,
    will_published_on_ungraceful_close_v5_mqtt_3_1_2_8);

// [MQTT-3.1.2-8] with [MQTT-3.1.2-24] (3.1.1) / [MQTT-3.1.2-22] (5.0): a keep-alive timeout
// ends the connection as a network failure would, so the will is published.
fn check_will_on_keep_alive_timeout(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = watcher(&broker, v);
    let mut c = connect(v, "sleepy");
    c.keep_alive = 1;
    c.will = Some(will("w/sleepy", b"timed out", qos(1), false));
    let silent = Client::connect(broker.addr(), c);
    let start = Instant::now();
    sub.timeout = keep_alive_close_bound(1);
    let p = sub.recv_message();
    assert_eq!(message(&p), ("w/sleepy".to_owned(), "timed out".to_owned()));
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "will published {:?} after CONNACK, before the keep-alive of 1 s passed",
        start.elapsed()
    );
    drop(silent);
}
test_versions!(check_will_on_keep_alive_timeout => will_published_on_keep_alive_timeout_v311_mqtt_3_1_2_24,
    will_published_on_keep_alive_timeout_v5_mqtt_3_1_2_22);

// [MQTT-3.1.2-8]: a malformed packet (PUBLISH with QoS 3) ends the connection, and the will
// is published (3.1.1 lists "the server closes the connection because of a protocol error"
// among the cases).
fn check_will_on_protocol_error(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = watcher(&broker, v);
    let mut w = will_client(&broker, v, "w/t", qos(1), false).into_raw();
    w.send(&hex("36 06 00 01 61 00 01 78"));
    let id = sub.expect_publish(0x32, "w/t", b"gone");
    sub.ack_id(qos(1), id);
}
test_versions!(check_will_on_protocol_error => will_published_on_protocol_error_v311_mqtt_3_1_2_8,
    will_published_on_protocol_error_v5_mqtt_3_1_2_8);

// [MQTT-3.1.2-10] (both) / [MQTT-3.14.4-3] After DISCONNECT (5.0: reason 0x00) the will is
// discarded, not published.
fn check_no_will_after_disconnect(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = watcher(&broker, v);
    will_client(&broker, v, "w/t", qos(1), false).disconnect();
    expect_fence_next(&broker, v, &mut sub);
}
test_versions!(check_no_will_after_disconnect => will_not_published_after_disconnect_v311_mqtt_3_1_2_10,
    will_not_published_after_disconnect_v5_mqtt_3_1_2_10);

// [MQTT-3.1.2-12] (3.1.1) Without the Will Flag nothing is published when the connection
// ends.
#[test]
fn no_will_without_will_flag_mqtt_3_1_2_12() {
    let broker = Broker::start_default();
    let mut sub = watcher(&broker, V311);
    broker.client(V311, "plain").into_raw().drop_connection();
    expect_fence_next(&broker, V311, &mut sub);
}

// [MQTT-3.1.2-10] (5.0) DISCONNECT with reason 0x04 (Disconnect with Will Message), `e0 01
// 04`, closes the connection and publishes the will.
#[test]
fn disconnect_with_will_message_publishes_will_v5_mqtt_3_1_2_10() {
    let broker = Broker::start_default();
    let mut sub = watcher(&broker, V5);
    let mut w = will_client(&broker, V5, "w/t", qos(1), false).into_raw();
    w.send(&hex("e0 01 04"));
    let id = sub.expect_publish(0x32, "w/t", b"gone");
    sub.ack_id(qos(1), id);
    w.expect_closed(TIMEOUT);
}

// [MQTT-3.1.2-17] (3.1.1) / [MQTT-3.1.2-15] (5.0) With Will Retain 1 the will is published
// as a retained message: existing subscribers get RETAIN 0 (`32`), a later subscription
// gets it with RETAIN 1 (`33`).
fn check_will_retain(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = watcher(&broker, v);
    will_client(&broker, v, "w/kept", qos(1), true)
        .into_raw()
        .drop_connection();
    let id = sub.expect_publish(0x32, "w/kept", b"gone");
    sub.ack_id(qos(1), id);
    let mut late = broker.client(v, "late");
    late.subscribe_one("w/kept", qos(1));
    let id = late.expect_publish(0x33, "w/kept", b"gone");
    late.ack_id(qos(1), id);
}
test_versions!(check_will_retain => will_retain_publishes_retained_message_v311_mqtt_3_1_2_17,
    will_retain_publishes_retained_message_v5_mqtt_3_1_2_15);

// [MQTT-3.1.2-16] (3.1.1) / [MQTT-3.1.2-14] (5.0) With Will Retain 0 the will is published
// as a non-retained message: a later subscription gets nothing.
fn check_will_not_retained(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = watcher(&broker, v);
    will_client(&broker, v, "w/fleeting", qos(1), false)
        .into_raw()
        .drop_connection();
    let id = sub.expect_publish(0x32, "w/fleeting", b"gone");
    sub.ack_id(qos(1), id);
    let mut late = broker.client(v, "late");
    late.subscribe_one("w/fleeting", qos(1));
    let mut fencer = broker.client(v, "fencer");
    fencer.publish("w/fleeting", b"fence", qos(1));
    let p = late.recv_message();
    assert_eq!(
        (text(&p).as_str(), p.retain),
        ("fence", false),
        "the will was retained: {p:?}"
    );
}
test_versions!(check_will_not_retained => will_without_retain_not_retained_v311_mqtt_3_1_2_16,
    will_without_retain_not_retained_v5_mqtt_3_1_2_14);
