//! Conformance: session and will statements of MQTT 3.1.1 and 5.0 that the other suites do
//! not cover: a session outlives its Session Expiry Interval while its connection is open,
//! a v5 DISCONNECT that shortens the interval ends the session, and the will of a v5
//! connection that ends with a DISCONNECT reporting an error.
//!
//! The sleeps here let a Session Expiry Interval of 1 s pass: time is what is under test.

pub mod common;

use std::thread;
use std::time::Duration;

use common::*;
use ringmq::protocol::{Disconnect, Packet, ProtocolVersion, ReasonCode};

const CLOSE: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(200);

// The server keeps the session state as long as the network connection is open: 3.1.1
// stores it for the whole session [MQTT-4.1.0-1] (3.1.1), which lasts at least as long as
// the connection [MQTT-4.1.0-2] (3.1.1); 5.0 does not discard it while the connection is
// open [MQTT-4.1.0-1] (5.0), even past its Session Expiry Interval (here 1 s). After 2 s of
// silence (keep-alive off) the subscription still delivers, and a message received before
// the pause is acknowledged after it, without any resend.
fn check_state_kept_while_connected(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut c = connect(v, "long-lived");
    c.keep_alive = 0;
    if v.is_v5() {
        c.clean_start = false;
        c.properties.session_expiry_interval = Some(1);
    }
    let mut c = Client::connect(broker.addr(), c);
    c.subscribe_one("ll/t", qos(1));
    let mut publisher = broker.client(v, "ll-pub");
    publisher.publish("ll/t", b"before", qos(1));
    let before = c.recv_publish();
    assert_eq!(text(&before), "before");
    thread::sleep(Duration::from_millis(2000));
    c.ack(&before);
    publisher.publish("ll/t", b"after", qos(1));
    let after = c.recv_message();
    assert_eq!((text(&after).as_str(), after.dup), ("after", false));
    c.expect_nothing(QUIET);
}
test_versions!(check_state_kept_while_connected => session_state_kept_while_connected_v311_mqtt_4_1_0_2,
    session_state_kept_while_connected_v5_mqtt_4_1_0_1);

// [MQTT-4.1.0-2] (5.0) A DISCONNECT carrying a Session Expiry Interval of 0 (the CONNECT's
// was 300 s) makes the interval pass as the connection closes: the session is discarded,
// and a later Clean Start 0 connection finds none (Session Present 0) and no queued message.
// Without that property the session is kept (the control).
#[test]
fn disconnect_with_session_expiry_0_ends_session_v5_mqtt_4_1_0_2() {
    let broker = Broker::start_default();
    for (id, shorten) in [("kept-sei", false), ("ended-sei", true)] {
        let mut c = Client::connect(broker.addr(), connect_persistent(V5, id));
        c.subscribe_one("sei/t", qos(1));
        let mut d = Disconnect::new(ReasonCode::Success);
        if shorten {
            d.properties.session_expiry_interval = Some(0);
        }
        let mut raw = c.into_raw();
        raw.send_packet(&Packet::Disconnect(d), V5);
        raw.expect_closed(CLOSE);
    }
    let mut publisher = broker.client(V5, "sei-pub");
    publisher.publish("sei/t", b"queued", qos(1));
    let mut kept = Client::connect(broker.addr(), connect_persistent(V5, "kept-sei"));
    assert!(kept.session_present(), "control: the session was kept");
    assert_eq!(text(&kept.recv_message()), "queued");
    let mut ended = Client::connect(broker.addr(), connect_persistent(V5, "ended-sei"));
    assert!(!ended.session_present(), "the session outlived expiry 0");
    ended.expect_nothing(QUIET);
}

/// A connection with a will on `will_topic` (QoS 1, not retained), and a watcher subscribed
/// to it.
fn will_and_watcher(
    broker: &Broker,
    v: ProtocolVersion,
    client_id: &str,
    will_topic: &str,
) -> (Client, Client) {
    let mut watcher = broker.client(v, "watcher");
    watcher.subscribe_one(will_topic, qos(1));
    let mut c = connect(v, client_id);
    c.will = Some(will(will_topic, b"last words", qos(1), false));
    (Client::connect(broker.addr(), c), watcher)
}

// [MQTT-3.1.2-8] (5.0) Only a DISCONNECT with reason 0x00 deletes the will
// [MQTT-3.14.4-3] (5.0): one with 0x80 (Unspecified error) closes the connection and the
// will is published. (Mosquitto 2.0.11 also discards the will here.)
#[test]
fn will_published_after_disconnect_with_error_v5_mqtt_3_1_2_8() {
    let broker = Broker::start_default();
    let (c, mut watcher) = will_and_watcher(&broker, V5, "erring", "ew/t");
    let mut raw = c.into_raw();
    raw.send(&hex("e0 01 80"));
    let p = watcher.recv_message();
    assert_eq!(message(&p), ("ew/t".to_owned(), "last words".to_owned()));
    raw.expect_closed(CLOSE);
}
