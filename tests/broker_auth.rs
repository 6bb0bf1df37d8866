//! Authentication: the password file, anonymous clients, the failed-login delay and the
//! per-address limit, over raw TCP and with the Mosquitto clients.
//!
//! ringmq answers a wrong password with CONNACK 0x86 / 0x04 (Bad User Name or Password),
//! Mosquitto 2.0 with 0x87 / 0x05: the tests of those bytes are ringmq-only; the others
//! run against both.

pub mod common;
pub mod security;

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ringmq::protocol::{Packet, ReasonCode};
use security::*;

const CLOSE: Duration = Duration::from_secs(5);

/// A broker whose password file has alice and bob, with `auth` in its `[auth]` table.
fn broker_with_users(files: &SecurityFiles, auth: &str, mosquitto: &str) -> Broker {
    files.passwords(&[("alice", "wonderland"), ("bob", "builder")]);
    Broker::start(files.options(true, false, auth, mosquitto))
}

// [MQTT-3.1.4-2] (5.0): the server authenticates the CONNECT; the right password connects.
fn right_password_connects(v: ringmq::protocol::ProtocolVersion) {
    let files = SecurityFiles::new();
    let broker = broker_with_users(&files, "", "");
    let mut alice = login(&broker, v, "alice-1", "alice", "wonderland");
    alice.subscribe_one("t", qos(1));
    let mut bob = login(&broker, v, "bob-1", "bob", "builder");
    bob.publish("t", b"hello", qos(1));
    let got = alice.recv_message();
    assert_eq!(message(&got), ("t".to_owned(), "hello".to_owned()));
}

test_versions!(right_password_connects => right_password_connects_v311, right_password_connects_v5_mqtt_3_1_4_2);

/// The refusals of a wrong password, an unknown user, and a user without a password.
fn refusals() -> [(Option<&'static str>, Option<&'static str>); 3] {
    [
        (Some("alice"), Some("Wonderland")),
        (Some("mallory"), Some("wonderland")),
        (Some("alice"), None),
    ]
}

// MQTT 3.1.1 CONNACK 0x04 Bad user name or password, then the connection closes.
#[test]
fn wrong_password_gets_connack_0x04_v311_ringmq_only() {
    if skip_unless_ringmq("Mosquitto 2.0 answers 0x05") {
        return;
    }
    let files = SecurityFiles::new();
    let broker = broker_with_users(&files, "failed_login_delay_ms = 0\n", "");
    for (user, password) in refusals() {
        let mut c = send_connect(&broker, connect_as(V311, "c", user, password));
        c.expect_bytes("20 02 00 04");
        c.expect_closed(CLOSE);
    }
}

// MQTT 5.0 CONNACK 0x86 Bad User Name or Password, then the connection closes
// [MQTT-3.1.4-2] [MQTT-3.2.2-7] (5.0).
#[test]
fn wrong_password_gets_connack_0x86_v5_ringmq_only() {
    if skip_unless_ringmq("Mosquitto 2.0 answers 0x87") {
        return;
    }
    let files = SecurityFiles::new();
    let broker = broker_with_users(&files, "failed_login_delay_ms = 0\n", "");
    for (user, password) in refusals() {
        let mut c = send_connect(&broker, connect_as(V5, "c", user, password));
        c.expect_bytes("20 03 00 86 00");
        c.expect_closed(CLOSE);
    }
}

// With a password file, anonymous clients are refused by default: 0x05 / 0x87 Not
// authorized [MQTT-3.1.4-2] [MQTT-3.2.2-7] (5.0).
fn anonymous_refused_by_default(v: ringmq::protocol::ProtocolVersion) {
    let files = SecurityFiles::new();
    let broker = broker_with_users(&files, "", "");
    let mut c = send_connect(&broker, connect(v, "anon"));
    c.expect_bytes(if v == V5 {
        "20 03 00 87 00"
    } else {
        "20 02 00 05"
    });
    c.expect_closed(CLOSE);
}

test_versions!(anonymous_refused_by_default => anonymous_refused_with_a_password_file_v311, anonymous_refused_with_a_password_file_v5_mqtt_3_2_2_7);

// allow_anonymous = true beside a password file: anonymous clients connect, users still
// need their password.
fn anonymous_allowed_when_configured(v: ringmq::protocol::ProtocolVersion) {
    let files = SecurityFiles::new();
    let broker = broker_with_users(
        &files,
        "allow_anonymous = true\nfailed_login_delay_ms = 0\n",
        "allow_anonymous true\n",
    );
    let mut anon = Client::connect(broker.addr(), connect(v, "anon"));
    anon.ping();
    let mut c = send_connect(&broker, connect_as(v, "c", Some("alice"), Some("nope")));
    let refused = match c.recv_packet(v) {
        Packet::ConnAck(a) => a.reason,
        other => panic!("expected CONNACK, got {other:?}"),
    };
    let expected = if is_mosquitto() {
        ReasonCode::NotAuthorized
    } else {
        ReasonCode::BadUserNameOrPassword
    };
    assert_eq!(refused, expected);
    c.expect_closed(CLOSE);
}

test_versions!(anonymous_allowed_when_configured => anonymous_allowed_beside_a_password_file_v311, anonymous_allowed_beside_a_password_file_v5);

// Without a password file a User Name is taken as given (and its password not checked).
fn no_password_file_takes_names_as_given(v: ringmq::protocol::ProtocolVersion) {
    let broker = Broker::start_default();
    let mut c = Client::connect(
        broker.addr(),
        connect_as(v, "c", Some("whoever"), Some("anything")),
    );
    c.ping();
}

test_versions!(no_password_file_takes_names_as_given => no_password_file_accepts_any_user_v311, no_password_file_accepts_any_user_v5);

// A failed login is answered only after failed_login_delay_ms: the delay is the behaviour
// under test, checked with a lower bound only.
#[test]
fn failed_login_is_answered_after_the_delay_v5_ringmq_only() {
    if skip_unless_ringmq("ringmq's failed_login_delay_ms") {
        return;
    }
    let files = SecurityFiles::new();
    let broker = broker_with_users(&files, "failed_login_delay_ms = 700\n", "");
    let started = Instant::now();
    let mut c = send_connect(&broker, connect_as(V5, "c", Some("alice"), Some("wrong")));
    c.expect_bytes("20 03 00 86 00");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(650),
        "refused after {waited:?}, before the 700 ms delay"
    );
}

// Password checks run off the shard: while one client's failed login waits out its delay
// (and its check runs), a client already connected to the same (only) shard is served.
#[test]
fn a_failing_login_does_not_stall_the_shard_v311_ringmq_only() {
    if skip_unless_ringmq("ringmq's failed_login_delay_ms") {
        return;
    }
    let files = SecurityFiles::new();
    let broker = broker_with_users(&files, "failed_login_delay_ms = 3000\n", "");
    let mut alice = login(&broker, V311, "alice-1", "alice", "wonderland");
    alice.subscribe_one("t", qos(0));
    let mut failing = send_connect(&broker, connect_as(V311, "c", Some("bob"), Some("wrong")));
    let mut bob = login(&broker, V311, "bob-1", "bob", "builder");
    bob.publish("t", b"while waiting", qos(0));
    alice.expect_publish(0x30, "t", b"while waiting");
    // Only now, seconds later, does the failed login get its answer.
    failing.timeout = Duration::from_secs(10);
    failing.expect_bytes("20 02 00 04");
}

// After failed_logins_per_address_max failures, an address is refused at once without a
// check, even with the right password: v5 0x9F Connection rate exceeded, v3 0x03 Server
// unavailable. Another address is not affected.
#[test]
fn repeated_failures_block_the_address_v311_v5_ringmq_only() {
    if skip_unless_ringmq("ringmq's failed_logins_per_address_max") {
        return;
    }
    let files = SecurityFiles::new();
    let broker = broker_with_users(
        &files,
        "failed_login_delay_ms = 0\nfailed_logins_per_address_max = 3\n",
        "",
    );
    for _ in 0..3 {
        let mut c = send_connect(&broker, connect_as(V5, "c", Some("alice"), Some("guess")));
        c.expect_bytes("20 03 00 86 00");
    }
    let mut c = send_connect(
        &broker,
        connect_as(V5, "c", Some("alice"), Some("wonderland")),
    );
    c.expect_bytes("20 03 00 9F 00");
    c.expect_closed(CLOSE);
    let mut c = send_connect(
        &broker,
        connect_as(V311, "c", Some("alice"), Some("wonderland")),
    );
    c.expect_bytes("20 02 00 03");
    c.expect_closed(CLOSE);
    // 127.0.0.2 is another address (the whole of 127.0.0.0/8 is local).
    let other: IpAddr = "127.0.0.2".parse().expect("address");
    let mut c = RawClient::connect_from(broker.addr(), other);
    c.send_packet(
        &Packet::Connect(Box::new(connect_as(
            V311,
            "c",
            Some("alice"),
            Some("wonderland"),
        ))),
        V311,
    );
    c.expect_bytes("20 02 00 00");
}

/// Runs a Mosquitto command-line client; returns its exit code and output.
fn mosquitto_client(program: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program} (tests/run.sh installs mosquitto-clients): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

// The Mosquitto clients log in with -u / -P: the right password publishes and subscribes,
// a wrong one is refused with the CONNACK code as exit status (ringmq 4 / 0x86 = 134,
// Mosquitto 5 / 0x87 = 135).
#[test]
fn mosquitto_clients_log_in_with_user_and_password_v311_v5() {
    let files = SecurityFiles::new();
    let broker = broker_with_users(&files, "failed_login_delay_ms = 0\n", "");
    let port = broker.addr().port().to_string();
    let mut raw = login(&broker, V311, "watcher", "bob", "builder");
    raw.subscribe_one("cli/#", qos(1));
    for version in ["mqttv311", "mqttv5"] {
        let topic = format!("cli/{version}");
        let (code, out) = mosquitto_client(
            "mosquitto_pub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                version,
                "-u",
                "alice",
                "-P",
                "wonderland",
                "-t",
                &topic,
                "-m",
                "hi",
                "-q",
                "1",
            ],
        );
        assert_eq!(code, 0, "{version}: {out}");
        let got = raw.recv_message();
        assert_eq!(message(&got), (topic.clone(), "hi".to_owned()));
        let (code, out) = mosquitto_client(
            "mosquitto_pub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                version,
                "-u",
                "alice",
                "-P",
                "nope",
                "-t",
                &topic,
                "-m",
                "no",
                "-q",
                "1",
            ],
        );
        let expected = match (is_mosquitto(), version) {
            (false, "mqttv311") => 4,
            (false, _) => 0x86,
            (true, "mqttv311") => 5,
            (true, _) => 0x87,
        };
        assert_eq!(code, expected, "{version}: {out}");
    }
    raw.expect_nothing(Duration::from_millis(300));
    // mosquitto_sub with credentials gets the retained message; with a wrong password it
    // is refused.
    raw.publish_retained("cli/retained", b"kept", qos(1));
    let sub = |password: &str| {
        mosquitto_client(
            "mosquitto_sub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-u",
                "alice",
                "-P",
                password,
                "-t",
                "cli/retained",
                "-C",
                "1",
                "-W",
                "5",
            ],
        )
    };
    let (code, out) = sub("wonderland");
    assert_eq!((code, out.trim()), (0, "kept"));
    let (code, out) = sub("nope");
    assert_eq!(code, if is_mosquitto() { 5 } else { 4 }, "{out}");
}
