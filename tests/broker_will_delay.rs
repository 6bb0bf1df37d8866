//! The Will Delay Interval (MQTT 5.0 section 3.1.3.2.2) against a running broker: a will is
//! published when its delay has passed after the connection ended without a normal
//! DISCONNECT, or when the session ends, whichever comes first [MQTT-3.1.2-8]; not at all
//! when a new connection resumes the session within the delay [MQTT-3.1.3-9]. The session
//! ends at once with a Session Expiry Interval of 0, at its expiry, or when a connection
//! with Clean Start 1 takes its client id.
//!
//! ringmq publishes delayed wills from a once-a-second sweep, so a will may come up to about
//! a second after its delay; the bounds below allow for that. Mosquitto 2.0.11 passes the
//! tests that are not `ringmq_only`; where the session ends before the delay has passed
//! (Session Expiry Interval 0, a Clean Start connection taking the client id) it holds the
//! will for the whole delay or drops it, so those tests are `ringmq_only`. The restart tests
//! (`ringmq_only`: the harness runs Mosquitto without persistence) check that a pending
//! will survives `kill -9` and SIGTERM with its due time, and that the delay of a will whose
//! client was connected at a crash counts from the restart.

pub mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ringmq::protocol::QoS;

/// How late a will may come after its delay (the sweep's second, plus scheduling).
const LATE: Duration = Duration::from_millis(2500);

/// Lets the broker see a dropped connection before the test goes on.
const SETTLE: Duration = Duration::from_millis(300);

/// Two shards, so that the will crosses the mesh to the watcher (Mosquitto has one thread).
const SHARDS: usize = 2;

fn broker() -> Broker {
    Broker::with_shards(SHARDS)
}

/// The client id `prefix-N` whose home is the shard after the watcher's.
fn willer_id(prefix: &str) -> String {
    client_id_on_shard(prefix, 1, SHARDS)
}

/// CONNECT (v5) with a QoS 1 will on `wd/<id>`, `delay` seconds of Will Delay Interval and
/// `expiry` seconds of Session Expiry Interval.
fn willer_connect(
    id: &str,
    delay: u32,
    expiry: u32,
    clean_start: bool,
) -> ringmq::protocol::Connect {
    let mut c = connect(V5, id);
    c.clean_start = clean_start;
    c.properties.session_expiry_interval = Some(expiry);
    let mut w = will(&format!("wd/{id}"), b"gone", QoS::AtLeastOnce, false);
    w.properties.will_delay_interval = Some(delay);
    c.will = Some(w);
    c
}

fn willer(broker: &Broker, id: &str, delay: u32, expiry: u32) -> Client {
    Client::connect(broker.addr(), willer_connect(id, delay, expiry, true))
}

/// A clean v5 session subscribed to `wd/#` at QoS 1, on shard 0.
fn watcher(broker: &Broker) -> Client {
    let mut w = broker.client(V5, &client_id_on_shard("watcher", 0, SHARDS));
    w.subscribe_one("wd/#", QoS::AtLeastOnce);
    w
}

/// Receives the will of `id` and returns when it came, measured from `since`.
fn expect_will(watcher: &mut Client, id: &str, since: Instant) -> Duration {
    let p = watcher.recv_message();
    assert_eq!(
        message(&p),
        (format!("wd/{id}"), "gone".to_owned()),
        "expected the will of {id}"
    );
    since.elapsed()
}

/// Nothing arrives until `until` (if that is still ahead).
fn expect_nothing_until(watcher: &mut Client, until: Instant) {
    let left = until.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        watcher.expect_nothing(left);
    }
}

// [MQTT-3.1.2-8] A connection with a Will Delay Interval of 2 s ends without DISCONNECT: its
// will is published once the 2 s have passed, not before.
#[test]
fn will_published_after_will_delay_v5_mqtt_3_1_2_8() {
    let broker = broker();
    let mut w = watcher(&broker);
    let id = willer_id("wd-late");
    let c = willer(&broker, &id, 2, 60);
    let gone = Instant::now();
    c.into_raw().drop_connection();
    expect_nothing_until(&mut w, gone + Duration::from_millis(1800));
    w.timeout = LATE + Duration::from_secs(1);
    let after = expect_will(&mut w, &id, gone);
    assert!(
        after >= Duration::from_secs(2) && after < Duration::from_secs(2) + LATE,
        "will published {after:?} after the connection ended; its delay is 2 s"
    );
}

// [MQTT-3.1.2-8] A Will Delay Interval of 0 (or none) publishes the will as soon as the
// connection ends, also in a session that outlives it.
#[test]
fn will_delay_zero_published_at_once_v5_mqtt_3_1_2_8() {
    let broker = broker();
    let mut w = watcher(&broker);
    let id = willer_id("wd-zero");
    let c = willer(&broker, &id, 0, 60);
    let gone = Instant::now();
    c.into_raw().drop_connection();
    let after = expect_will(&mut w, &id, gone);
    assert!(
        after < Duration::from_secs(1),
        "will published after {after:?}"
    );
}

// [MQTT-3.1.3-9] A new connection resumes the session (Clean Start 0) before the Will Delay
// Interval has passed: the will is never sent. [MQTT-3.1.2-10] The new connection ends with
// a normal DISCONNECT, which deletes its own will.
#[test]
fn will_delay_cancelled_by_resume_v5_mqtt_3_1_3_9() {
    let broker = broker();
    let mut w = watcher(&broker);
    let id = willer_id("wd-back");
    let c = willer(&broker, &id, 2, 60);
    let gone = Instant::now();
    c.into_raw().drop_connection();
    thread::sleep(SETTLE);
    let back = Client::connect(broker.addr(), willer_connect(&id, 2, 60, false));
    assert!(back.session_present(), "the session was resumed");
    expect_nothing_until(&mut w, gone + Duration::from_secs(2) + LATE);
    back.disconnect();
    w.expect_nothing(Duration::from_secs(1));
}

// [MQTT-3.1.3-9] with [MQTT-3.1.4-3] A second connection with the same client id and Clean
// Start 0 takes the session over while the first is still connected: the first connection is
// closed by the server, and its will (delay 2 s) is not sent, because a new connection to
// the session exists before the delay has passed.
#[test]
fn will_delay_cancelled_by_takeover_with_resume_v5_mqtt_3_1_3_9() {
    let broker = broker();
    let mut w = watcher(&broker);
    let id = willer_id("wd-over");
    let mut first = willer(&broker, &id, 2, 60);
    let taken = Instant::now();
    let second = Client::connect(broker.addr(), willer_connect(&id, 2, 60, false));
    assert!(second.session_present());
    first.expect_closed_allowing_disconnect(0x8E, TIMEOUT);
    expect_nothing_until(&mut w, taken + Duration::from_secs(2) + LATE);
    second.disconnect();
}

// [MQTT-3.1.2-8] The session ends before the Will Delay Interval has passed: with a Session
// Expiry Interval of 0 it ends with the connection, so the will (delay 30 s) goes at once.
#[test]
fn will_delay_cut_short_by_session_expiry_zero_v5_ringmq_only_mqtt_3_1_2_8() {
    if skip_unless_ringmq(
        "Mosquitto 2.0.11 holds a delayed will for its whole delay though the session ended",
    ) {
        return;
    }
    let broker = broker();
    let mut w = watcher(&broker);
    let id = willer_id("wd-noexp");
    let c = willer(&broker, &id, 30, 0);
    let gone = Instant::now();
    c.into_raw().drop_connection();
    let after = expect_will(&mut w, &id, gone);
    assert!(
        after < Duration::from_secs(2),
        "will published after {after:?}"
    );
}

// [MQTT-3.1.2-8] The session ends before the Will Delay Interval has passed: it expires after
// 1 s, so the will (delay 30 s) is published then.
#[test]
fn will_delay_cut_short_by_session_expiry_v5_mqtt_3_1_2_8() {
    let broker = broker();
    let mut w = watcher(&broker);
    let id = willer_id("wd-exp");
    let c = willer(&broker, &id, 30, 1);
    let gone = Instant::now();
    c.into_raw().drop_connection();
    expect_nothing_until(&mut w, gone + Duration::from_millis(800));
    w.timeout = Duration::from_secs(1) + LATE + Duration::from_secs(1);
    let after = expect_will(&mut w, &id, gone);
    assert!(
        after >= Duration::from_secs(1) && after < Duration::from_secs(1) + LATE,
        "will published {after:?} after the connection ended; the session expires after 1 s"
    );
}

// [MQTT-3.1.2-8] with [MQTT-3.1.2-4] A new connection with Clean Start 1 discards the
// session whose will is waiting (delay 30 s): the session has ended, so the will is
// published at once.
#[test]
fn will_delay_cut_short_by_clean_start_v5_ringmq_only_mqtt_3_1_2_8() {
    if skip_unless_ringmq(
        "Mosquitto 2.0.11 drops a delayed will when a clean start takes the client id",
    ) {
        return;
    }
    let broker = broker();
    let mut w = watcher(&broker);
    let id = willer_id("wd-clean");
    let c = willer(&broker, &id, 30, 60);
    c.into_raw().drop_connection();
    thread::sleep(SETTLE);
    let start = Instant::now();
    let fresh = Client::connect(broker.addr(), willer_connect(&id, 30, 60, true));
    assert!(!fresh.session_present());
    let after = expect_will(&mut w, &id, start);
    assert!(
        after < Duration::from_secs(2),
        "will published after {after:?}"
    );
    fresh.disconnect();
    w.expect_nothing(Duration::from_millis(500));
}

// [MQTT-3.1.2-8] with [MQTT-3.1.4-3] A connection with Clean Start 1 takes over a connected
// client's session: the old session ends, so the old connection's will (delay 30 s) is
// published at once.
#[test]
fn will_delay_cut_short_by_takeover_with_clean_start_v5_ringmq_only_mqtt_3_1_2_8() {
    if skip_unless_ringmq(
        "Mosquitto 2.0.11 drops a delayed will when a clean start takes the client id",
    ) {
        return;
    }
    let broker = broker();
    let mut w = watcher(&broker);
    let id = willer_id("wd-cleanover");
    let mut first = willer(&broker, &id, 30, 60);
    let start = Instant::now();
    let second = Client::connect(broker.addr(), willer_connect(&id, 30, 60, true));
    assert!(!second.session_present());
    first.expect_closed_allowing_disconnect(0x8E, TIMEOUT);
    let after = expect_will(&mut w, &id, start);
    assert!(
        after < Duration::from_secs(2),
        "will published after {after:?}"
    );
    second.disconnect();
}

// [MQTT-3.1.2-10] [MQTT-3.14.4-3] A normal DISCONNECT deletes a will that has a delay: it is not published
// when the delay would have passed.
#[test]
fn will_with_delay_deleted_by_normal_disconnect_v5_mqtt_3_1_2_10() {
    let broker = broker();
    let mut w = watcher(&broker);
    let id = willer_id("wd-bye");
    let gone = Instant::now();
    willer(&broker, &id, 1, 60).disconnect();
    expect_nothing_until(&mut w, gone + Duration::from_secs(1) + LATE);
}

// [MQTT-3.1.2-8] DISCONNECT with reason 0x04 (Disconnect with Will Message)
// asks for the will, which still waits for its Will Delay Interval (2 s).
#[test]
fn disconnect_with_will_message_waits_for_will_delay_v5_mqtt_3_1_2_8() {
    let broker = broker();
    let mut w = watcher(&broker);
    let id = willer_id("wd-04");
    let mut c = willer(&broker, &id, 2, 60).into_raw();
    let gone = Instant::now();
    c.send(&hex("e0 01 04"));
    c.expect_closed(TIMEOUT);
    expect_nothing_until(&mut w, gone + Duration::from_millis(1800));
    w.timeout = LATE + Duration::from_secs(1);
    let after = expect_will(&mut w, &id, gone);
    assert!(
        after >= Duration::from_secs(2) && after < Duration::from_secs(2) + LATE,
        "will published {after:?} after DISCONNECT 0x04; its delay is 2 s"
    );
}

// ---------------------------------------------------------------------------------------
// Across restarts (ringmq only)
// ---------------------------------------------------------------------------------------

/// How the broker goes down between two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Down {
    Stop,
    Kill9,
}

fn bounce(broker: &mut Broker, down: Down) {
    match down {
        Down::Stop => broker.stop(),
        Down::Kill9 => broker.kill9(),
    }
    broker.restart();
}

/// The persistent watcher's client id (shard 0).
fn durable_watcher_id() -> String {
    client_id_on_shard("dwatcher", 0, SHARDS)
}

/// A persistent session subscribed to `wd/#` at QoS 1, then disconnected: it collects the
/// wills while it is away, also across restarts.
fn park_watcher(broker: &Broker) {
    let mut w = Client::connect(broker.addr(), connect_persistent(V5, &durable_watcher_id()));
    w.subscribe_one("wd/#", QoS::AtLeastOnce);
    w.disconnect();
}

fn resume_watcher(broker: &Broker) -> Client {
    let w = Client::connect(broker.addr(), connect_persistent(V5, &durable_watcher_id()));
    assert!(w.session_present(), "the watcher's session survived");
    w
}

// [MQTT-3.1.2-8] A will waiting for its Will Delay Interval (3 s) when the broker goes down
// (kill -9 or SIGTERM) is still pending after the restart, with the same due time: it is
// published when the delay has passed, not at the restart, and only once.
fn check_pending_will_survives(down: Down) {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = broker();
    park_watcher(&broker);
    let id = willer_id("wd-kept");
    let c = willer(&broker, &id, 3, 60);
    let gone = Instant::now();
    c.into_raw().drop_connection();
    thread::sleep(SETTLE);
    bounce(&mut broker, down);
    let mut w = resume_watcher(&broker);
    expect_nothing_until(&mut w, gone + Duration::from_millis(2700));
    w.timeout = Duration::from_secs(3) + LATE;
    let after = expect_will(&mut w, &id, gone);
    assert!(
        after >= Duration::from_secs(3),
        "will published {after:?} after the connection ended; its delay is 3 s"
    );
    w.expect_nothing(Duration::from_secs(1));
    w.disconnect();
    bounce(&mut broker, Down::Kill9);
    let mut w = resume_watcher(&broker);
    w.expect_nothing(Duration::from_millis(1500));
}

// [MQTT-3.1.2-7] The will is stored with the session: it outlives the broker's process.
#[test]
fn pending_will_survives_kill9_v5_ringmq_only_mqtt_3_1_2_8() {
    check_pending_will_survives(Down::Kill9);
}

#[test]
fn pending_will_survives_stop_v5_ringmq_only_mqtt_3_1_2_8() {
    check_pending_will_survives(Down::Stop);
}

// [MQTT-3.1.2-8] A pending will whose Will Delay Interval (1 s) passes while the broker is
// down is published when the broker starts again (the persistent watcher has it queued
// when it comes back), and not again after a further restart.
#[test]
fn pending_will_due_while_down_published_at_restart_v5_ringmq_only_mqtt_3_1_2_8() {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = broker();
    park_watcher(&broker);
    let id = willer_id("wd-overdue");
    willer(&broker, &id, 1, 60).into_raw().drop_connection();
    thread::sleep(SETTLE);
    broker.kill9();
    thread::sleep(Duration::from_millis(1500));
    broker.restart();
    let mut w = resume_watcher(&broker);
    w.timeout = Duration::from_secs(2);
    expect_will(&mut w, &id, Instant::now());
    w.disconnect();
    bounce(&mut broker, Down::Kill9);
    let mut w = resume_watcher(&broker);
    w.expect_nothing(Duration::from_millis(1500));
}

// [MQTT-3.1.2-8] A client connected when the broker is killed lost its connection then; the
// delay (3 s) of its will counts from the restart (the client could not come back while
// the broker was down), so the will comes about 3 s after the restart, not at it.
#[test]
fn will_of_client_connected_at_kill9_waits_its_delay_after_restart_v5_ringmq_only_mqtt_3_1_2_8() {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = broker();
    park_watcher(&broker);
    let id = willer_id("wd-crash");
    let c = willer(&broker, &id, 3, 60);
    broker.kill9();
    drop(c);
    let restarting = Instant::now();
    broker.restart();
    let mut w = resume_watcher(&broker);
    expect_nothing_until(&mut w, restarting + Duration::from_millis(2700));
    w.timeout = Duration::from_secs(3) + LATE;
    let after = expect_will(&mut w, &id, restarting);
    assert!(
        after >= Duration::from_secs(3),
        "will published {after:?} after the restart began; its delay is 3 s"
    );
}

// [MQTT-3.1.3-9] The client connected when the broker was killed resumes its session within
// the Will Delay Interval after the restart: its will is never sent.
#[test]
fn will_of_client_connected_at_kill9_cancelled_by_resume_after_restart_v5_ringmq_only_mqtt_3_1_3_9()
{
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = broker();
    park_watcher(&broker);
    let id = willer_id("wd-crash-back");
    let c = willer(&broker, &id, 3, 60);
    broker.kill9();
    drop(c);
    broker.restart();
    let restarted = Instant::now();
    let back = Client::connect(broker.addr(), willer_connect(&id, 3, 60, false));
    assert!(back.session_present());
    let mut w = resume_watcher(&broker);
    expect_nothing_until(&mut w, restarted + Duration::from_secs(3) + LATE);
    back.disconnect();
    w.expect_nothing(Duration::from_millis(500));
}

// [MQTT-3.1.2-8] A pending will moves with its session when the broker restarts with another
// shard count (the session's home shard changes): it is still published when its Will Delay
// Interval (3 s) has passed, not at the restart.
#[test]
fn pending_will_moves_with_its_session_to_a_new_home_shard_v5_ringmq_only_mqtt_3_1_2_8() {
    if skip_unless_ringmq("Mosquitto runs without persistence here") {
        return;
    }
    let mut broker = broker();
    park_watcher(&broker);
    // Home shard 1 of 2, then shard 0 of 3.
    let id = (0..)
        .map(|n| format!("wd-moved-{n}"))
        .find(|id| {
            let h = ringmq::shard::mesh::stable_hash(id.as_bytes());
            h % 2 == 1 && h % 3 == 0
        })
        .expect("some id moves");
    let c = willer(&broker, &id, 3, 60);
    let gone = Instant::now();
    c.into_raw().drop_connection();
    thread::sleep(SETTLE);
    broker.kill9();
    broker.restart_with_shards(3);
    let mut w = resume_watcher(&broker);
    expect_nothing_until(&mut w, gone + Duration::from_millis(2700));
    w.timeout = Duration::from_secs(3) + LATE;
    let after = expect_will(&mut w, &id, gone);
    assert!(
        after >= Duration::from_secs(3),
        "will published {after:?} after the connection ended; its delay is 3 s"
    );
    w.expect_nothing(Duration::from_secs(1));
}
