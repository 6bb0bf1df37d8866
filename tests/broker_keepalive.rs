//! Keep-alive against a running broker: a silent client is disconnected after one and a half
//! keep-alive periods, any control packet keeps it connected, keep-alive 0 turns the timer
//! off, and a v5 server may impose its own Server Keep Alive.
//!
//! The sleeps here space a client's packets in time: timing is the behaviour under test, not
//! a way to wait for the broker.

pub mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ringmq::protocol::{Packet, ProtocolVersion};

/// A connection with keep-alive `secs` that then sends nothing: returns how long after the
/// CONNACK the server closed it (failing if it took longer than allowed).
fn silent_until_closed(broker: &Broker, v: ProtocolVersion, secs: u16) -> Duration {
    let mut c = connect(v, "silent");
    c.keep_alive = secs;
    let mut raw = Client::connect(broker.addr(), c).into_raw();
    let start = Instant::now();
    let bound = keep_alive_close_bound(u64::from(secs));
    if v.is_v5() {
        // 5.0 allows a DISCONNECT 0x8D (Keep Alive timeout) before the close.
        raw.expect_closed_allowing_disconnect(0x8d, bound);
    } else {
        raw.expect_closed(bound);
    }
    start.elapsed()
}

// [MQTT-3.1.2-24] (3.1.1) / [MQTT-3.1.2-22] (5.0) With keep-alive 1 s and no packet from
// the client, the server closes the connection after 1.5 s, and not before the client's
// keep-alive period itself has passed. The server sends no Server Keep Alive here, so it
// uses the client's [MQTT-3.2.2-22] (5.0).
fn check_timeout(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let closed_after = silent_until_closed(&broker, v, 1);
    assert!(
        closed_after >= Duration::from_secs(1),
        "closed {closed_after:?} after CONNACK, within the keep-alive period"
    );
    broker.client(v, "other").ping();
}
test_versions!(check_timeout => keep_alive_timeout_closes_connection_v311_mqtt_3_1_2_24,
    keep_alive_timeout_closes_connection_v5_mqtt_3_1_2_22);

// A client that sends a control packet within each keep-alive period (PINGREQ, or any
// other), as MQTT-3.1.2-23 (3.1.1) / MQTT-3.1.2-20 (5.0) ask of it, stays connected, here
// for three times its 1 s keep-alive; each PINGREQ gets its PINGRESP [MQTT-3.12.4-1].
fn check_kept_alive(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut c = connect(v, "chatty");
    c.keep_alive = 1;
    let mut c = Client::connect(broker.addr(), c);
    let start = Instant::now();
    let mut round = 0;
    while start.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(600));
        if round % 2 == 0 {
            c.ping();
        } else {
            c.send_mqtt(&Packet::Publish(publish("ka/t", b"x", qos(0), 0)));
        }
        round += 1;
    }
    c.ping();
}
test_versions!(check_kept_alive => control_packets_keep_connection_alive_v311_mqtt_3_1_2_23,
    control_packets_keep_connection_alive_v5_mqtt_3_1_2_20);

// Section 3.1.2.10: keep-alive 0 turns the mechanism off; an idle client is not
// disconnected (watched here for 2.5 s, past 1.5 x any keep-alive of 1 s).
fn check_keep_alive_zero(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut c = connect(v, "forever");
    c.keep_alive = 0;
    let mut c = Client::connect(broker.addr(), c);
    c.expect_nothing(Duration::from_millis(2500));
    c.ping();
}
test_versions!(check_keep_alive_zero => keep_alive_zero_never_times_out_v311_mqtt_3_1_2_24,
    keep_alive_zero_never_times_out_v5_mqtt_3_1_2_22);

// Section 3.2.2.3.14 (5.0): a server with a keep-alive cap of 10 s tells a client asking for
// 60 s (or for 0) Server Keep Alive 10, which the client must then use (MQTT-3.2.2-21); a
// client asking for 5 s keeps its own (no Server Keep Alive, or 5).
#[test]
fn server_keep_alive_caps_client_keep_alive_v5_mqtt_3_2_2_21() {
    let broker = Broker::start(
        BrokerOptions::default().config("[limits]\nkeep_alive_secs_max = 10", "max_keepalive 10"),
    );
    for (asked, told) in [(60u16, Some(10u16)), (0, Some(10)), (5, None)] {
        let mut c = connect(V5, "capped");
        c.keep_alive = asked;
        let c = Client::connect(broker.addr(), c);
        let got = c.connack.properties.server_keep_alive;
        match told {
            Some(t) => assert_eq!(got, Some(t), "asked {asked}: Server Keep Alive"),
            None => assert!(
                got.is_none() || got == Some(asked),
                "asked {asked}: Server Keep Alive {got:?}"
            ),
        }
        c.disconnect();
    }
}

// [MQTT-3.1.2-22] (5.0) with the Server Keep Alive in place of the client's keep-alive (as
// MQTT-3.2.2-21 has the client use it): the value the server sends is the one it enforces;
// a cap of 1 s closes a client that asked for 60 s after 1.5 s of silence. (Mosquitto refuses a
// `max_keepalive` below 10, so under it the cap is 10 s and the test takes 15 s or more.)
#[test]
fn server_keep_alive_is_enforced_v5_mqtt_3_2_2_21() {
    let cap: u16 = if is_mosquitto() { 10 } else { 1 };
    let broker = Broker::start(BrokerOptions::default().config(
        &format!("[limits]\nkeep_alive_secs_max = {cap}"),
        &format!("max_keepalive {cap}"),
    ));
    let c = Client::connect(broker.addr(), connect(V5, "capped"));
    assert_eq!(c.connack.properties.server_keep_alive, Some(cap));
    let mut raw = c.into_raw();
    let start = Instant::now();
    raw.expect_closed_allowing_disconnect(0x8d, keep_alive_close_bound(u64::from(cap)));
    assert!(
        start.elapsed() >= Duration::from_secs(u64::from(cap)),
        "closed after {:?}, within the keep-alive period",
        start.elapsed()
    );
}
