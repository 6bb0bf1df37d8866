//! SIGHUP: the password and ACL files are read again without dropping connections;
//! connected clients are checked against the new files.
//!
//! Mosquitto reloads both files too, but keeps clients connected whatever changed: the
//! tests of disconnection are ringmq-only.

pub mod common;
pub mod security;

use std::time::Duration;

use common::*;
use ringmq::protocol::{Packet, ProtocolVersion};
use security::*;

const CLOSE: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

fn refused(broker: &Broker, v: ProtocolVersion, user: &str, password: &str) {
    let mut c = send_connect(broker, connect_as(v, "probe", Some(user), Some(password)));
    match c.recv_packet(v) {
        Packet::ConnAck(a) => assert!(!a.reason.is_success(), "{user} let in: {a:?}"),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    c.expect_closed(CLOSE);
}

// A user added to the password file can log in after SIGHUP; connected clients stay.
fn added_user_can_log_in(v: ProtocolVersion) {
    let files = SecurityFiles::new();
    files.passwords(&[("alice", "wonderland")]);
    let broker = Broker::start(files.options(true, false, "failed_login_delay_ms = 0\n", ""));
    let mut alice = login(&broker, v, "alice-1", "alice", "wonderland");
    alice.subscribe_one("t", qos(0));
    refused(&broker, v, "bob", "builder");
    files.add_user("bob", "builder");
    sighup(&broker);
    let mut bob = login(&broker, v, "bob-1", "bob", "builder");
    bob.publish("t", b"hello", qos(0));
    let got = alice.recv_message();
    assert_eq!(message(&got), ("t".to_owned(), "hello".to_owned()));
}

test_versions!(added_user_can_log_in => reload_adds_a_user_v311, reload_adds_a_user_v5);

// A user deleted from the password file is disconnected at the reload (v5: DISCONNECT
// 0x87 Not authorized), its will is not published, and it can no longer log in; the
// other users stay connected.
fn deleted_user_is_disconnected(v: ProtocolVersion) {
    if skip_unless_ringmq("Mosquitto keeps connected clients at a reload") {
        return;
    }
    let files = SecurityFiles::new();
    files.passwords(&[("alice", "wonderland"), ("bob", "builder")]);
    let broker = Broker::start(files.options(true, false, "failed_login_delay_ms = 0\n", ""));
    let mut alice = login(&broker, v, "alice-1", "alice", "wonderland");
    alice.subscribe_one("wills/#", qos(0));
    let mut c = connect_as(v, "bob-1", Some("bob"), Some("builder"));
    c.will = Some(will("wills/bob", b"bob gone", qos(0), false));
    let bob = Client::connect(broker.addr(), c);
    let (code, err) = passwd(&files.passwd_path(), &["-D"], "bob", None);
    assert_eq!(code, 0, "{err}");
    sighup(&broker);
    let mut bob = bob.into_raw();
    if v == V5 {
        bob.expect_disconnect(0x87);
    } else {
        bob.expect_closed(CLOSE);
    }
    alice.expect_nothing(QUIET);
    alice.ping();
    refused(&broker, v, "bob", "builder");
}

test_versions!(deleted_user_is_disconnected => reload_deleted_user_is_disconnected_v311_ringmq_only, reload_deleted_user_is_disconnected_v5_ringmq_only);

// A changed password ends the connections made with the old one; the new one logs in.
#[test]
fn reload_changed_password_disconnects_v5_ringmq_only() {
    if skip_unless_ringmq("Mosquitto keeps connected clients at a reload") {
        return;
    }
    let files = SecurityFiles::new();
    files.passwords(&[("alice", "wonderland"), ("bob", "builder")]);
    let broker = Broker::start(files.options(true, false, "failed_login_delay_ms = 0\n", ""));
    let alice = login(&broker, V5, "alice-1", "alice", "wonderland");
    let mut bob = login(&broker, V5, "bob-1", "bob", "builder");
    files.add_user("alice", "looking-glass");
    sighup(&broker);
    alice.into_raw().expect_disconnect(0x87);
    bob.ping();
    refused(&broker, V5, "alice", "wonderland");
    let mut again = login(&broker, V5, "alice-1", "alice", "looking-glass");
    again.ping();
}

// An ACL change applies to connected clients at once: a subscription made under the old
// file delivers what the new one allows.
fn acl_change_changes_delivery(v: ProtocolVersion) {
    let files = SecurityFiles::new();
    files.acl("user alice\ntopic read sensors/#\nuser bob\ntopic write sensors/#\n");
    let broker = Broker::start(files.options(false, true, "", ""));
    let mut alice = Client::connect(broker.addr(), connect_as(v, "alice-1", Some("alice"), None));
    alice.subscribe_one("sensors/#", qos(0));
    let mut bob = Client::connect(broker.addr(), connect_as(v, "bob-1", Some("bob"), None));
    bob.publish("sensors/secret/a", b"before", qos(0));
    let got = alice.recv_message();
    assert_eq!(
        message(&got),
        ("sensors/secret/a".to_owned(), "before".to_owned())
    );
    files.acl(
        "user alice\ntopic read sensors/#\ntopic deny sensors/secret/#\n\
         user bob\ntopic write sensors/#\n",
    );
    sighup(&broker);
    bob.publish("sensors/secret/a", b"after", qos(0));
    bob.publish("sensors/b", b"still", qos(0));
    let got = alice.recv_message();
    assert_eq!(message(&got), ("sensors/b".to_owned(), "still".to_owned()));
    alice.expect_nothing(QUIET);
}

test_versions!(acl_change_changes_delivery => reload_acl_change_changes_delivery_v311, reload_acl_change_changes_delivery_v5);

// A file that does not read keeps the previous version, and the log names the file, the
// line and what is wrong.
#[test]
fn reload_bad_file_keeps_the_previous_one_v311_ringmq_only() {
    if skip_unless_ringmq("ringmq's reload log lines") {
        return;
    }
    let files = SecurityFiles::new();
    files.acl("topic read a/#\ntopic write a/#\n");
    let broker = Broker::start(files.options(false, true, "", ""));
    let mut sub = Client::connect(broker.addr(), connect(V311, "sub"));
    sub.subscribe_one("a/#", qos(0));
    files.acl("topic read a/#\ntopic sometimes a/#\n");
    sighup(&broker);
    let log = broker.log_of_this_run();
    let expected = format!(
        "ACL file {} line 2: \"sometimes\" is not an access",
        files.acl_path().display()
    );
    assert!(log.contains(&expected), "{log}");
    let mut publisher = Client::connect(broker.addr(), connect(V311, "pub"));
    publisher.publish("a/x", b"old rules hold", qos(0));
    let got = sub.recv_message();
    assert_eq!(
        message(&got),
        ("a/x".to_owned(), "old rules hold".to_owned())
    );
}
