//! Authorization: the ACL file (Mosquitto's syntax and meaning) on SUBSCRIBE, PUBLISH,
//! wills, retained messages and every delivery.
//!
//! No password file here: user names are taken as given, which is what the ACL's `user`
//! sections then match (as with Mosquitto). Mosquitto grants every SUBSCRIBE and checks
//! each message; ringmq also refuses a SUBSCRIBE whose filter can match nothing readable
//! (SUBACK 0x87 / 0x80): those tests are ringmq-only, the delivery tests run on both.

pub mod common;
pub mod security;

use std::time::Duration;

use common::*;
use ringmq::protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use security::*;

const QUIET: Duration = Duration::from_millis(300);

const ACL: &str = "\
# Anonymous clients: the lines before any `user`.
topic read public/#
topic write inbox/anon

user alice
topic read sensors/#
topic deny sensors/secret/#
topic write cmd/alice
topic readwrite shared/#
topic read wills/#
topic read inbox/#

user bob
topic write sensors/#
topic write shared/#
topic write public/#
topic write users/#

# Everyone, anonymous clients included.
pattern readwrite devices/%c/#
pattern read users/%u/#
";

fn broker(shards: usize) -> Broker {
    let files = SecurityFiles::new();
    files.acl(ACL);
    let broker = Broker::start(files.options(false, true, "", "").shards(shards));
    // The broker read the file at start; the directory can go.
    drop(files);
    broker
}

fn user(broker: &Broker, v: ProtocolVersion, client_id: &str, name: &str) -> Client {
    Client::connect(broker.addr(), connect_as(v, client_id, Some(name), None))
}

fn anonymous(broker: &Broker, v: ProtocolVersion, client_id: &str) -> Client {
    Client::connect(broker.addr(), connect(v, client_id))
}

/// Receives one message and checks its topic and payload.
fn expect_message(c: &mut Client, topic: &str, payload: &str) {
    let p = c.recv_message();
    assert_eq!(message(&p), (topic.to_owned(), payload.to_owned()));
}

// `topic read`: the client receives the topic; its own PUBLISH there is not authorized.
// MQTT 3.1.1 cannot say so: the PUBLISH is acknowledged as usual (QoS 2: PUBREC, PUBREL,
// PUBCOMP) and dropped, and the connection goes on [MQTT-3.3.5-2] (3.1.1). (Mosquitto
// 2.0 closes the connection after a refused QoS 1/2 PUBLISH, the other choice the
// statement leaves: the test is ringmq-only.)
#[test]
fn read_only_topic_publish_is_acknowledged_and_dropped_v311_ringmq_only() {
    if skip_unless_ringmq("Mosquitto closes the connection instead") {
        return;
    }
    let broker = broker(1);
    let mut alice = user(&broker, V311, "alice-1", "alice");
    alice.subscribe_one("sensors/#", qos(1));
    // QoS 1 and 2 flows complete normally (publish_packet waits for PUBACK / PUBCOMP).
    alice.publish("sensors/temp", b"from alice", qos(1));
    alice.publish("sensors/temp", b"from alice 2", qos(2));
    alice.publish("sensors/temp", b"from alice 0", qos(0));
    alice.expect_nothing(QUIET);
    let mut bob = user(&broker, V311, "bob-1", "bob");
    bob.publish("sensors/temp", b"21.5", qos(1));
    expect_message(&mut alice, "sensors/temp", "21.5");
}

// MQTT 5.0: a PUBLISH the ACL refuses gets PUBACK / PUBREC 0x87 Not authorized and is
// not delivered; the connection goes on.
#[test]
fn read_only_topic_publish_gets_0x87_v5_ringmq_only() {
    if skip_unless_ringmq("Mosquitto closes the connection instead") {
        return;
    }
    let broker = broker(1);
    let mut alice = user(&broker, V5, "alice-1", "alice");
    alice.subscribe_one("sensors/#", qos(1));
    for (q, id) in [(QoS::AtLeastOnce, 7u16), (QoS::ExactlyOnce, 8)] {
        alice.send_mqtt(&Packet::Publish(publish("sensors/temp", b"x", q, id)));
        let ack = match alice.recv() {
            Packet::PubAck(a) if q == QoS::AtLeastOnce => a,
            Packet::PubRec(a) if q == QoS::ExactlyOnce => a,
            other => panic!("expected the ack of a QoS {q:?} PUBLISH, got {other:?}"),
        };
        assert_eq!(
            (ack.packet_id.get(), ack.reason),
            (id, ReasonCode::NotAuthorized)
        );
    }
    alice.expect_nothing(QUIET);
    alice.ping();
}

// `topic write`: the client publishes; it does not receive the topic, even through a
// wildcard subscription that other grants let it make.
fn write_only_topic(v: ProtocolVersion) {
    let broker = broker(1);
    let mut alice = user(&broker, v, "alice-1", "alice");
    alice.subscribe_one("#", qos(0));
    let mut alice2 = user(&broker, v, "alice-2", "alice");
    alice2.publish("cmd/alice", b"go", qos(1));
    // Refused PUBLISHes come last on their connection in the tests that also run on
    // Mosquitto, which closes a connection whose PUBLISH it refuses.
    alice2.publish("sensors/temp", b"not hers to write", qos(0));
    let mut bob = user(&broker, v, "bob-1", "bob");
    bob.publish("sensors/temp", b"20", qos(0));
    expect_message(&mut alice, "sensors/temp", "20");
    alice.expect_nothing(QUIET);
}

test_versions!(write_only_topic => write_only_topic_is_not_delivered_v311, write_only_topic_is_not_delivered_v5);

// `topic readwrite` (and a `topic` line without an access word): both.
fn readwrite_topic(v: ProtocolVersion) {
    let broker = broker(1);
    let mut alice = user(&broker, v, "alice-1", "alice");
    alice.subscribe_one("shared/+", qos(1));
    alice.publish("shared/notes", b"mine", qos(1));
    expect_message(&mut alice, "shared/notes", "mine");
}

test_versions!(readwrite_topic => readwrite_topic_both_ways_v311, readwrite_topic_both_ways_v5);

// `topic deny` beats a broader grant: a wildcard subscription gets everything it matches
// except what is denied.
fn deny_filters_a_wildcard_subscription(v: ProtocolVersion) {
    let broker = broker(1);
    let mut alice = user(&broker, v, "alice-1", "alice");
    alice.subscribe_one("sensors/#", qos(0));
    let mut bob = user(&broker, v, "bob-1", "bob");
    for t in [
        "sensors/secret/key",
        "sensors/a",
        "sensors/secret",
        "sensors/secret/x/y",
    ] {
        bob.publish(t, t.as_bytes(), qos(0));
    }
    expect_message(&mut alice, "sensors/a", "sensors/a");
    // `sensors/secret/#` also matches `sensors/secret` itself.
    alice.expect_nothing(QUIET);
}

test_versions!(deny_filters_a_wildcard_subscription => deny_beats_a_wider_grant_v311, deny_beats_a_wider_grant_v5);

// `pattern` with %c: each client its own levels, anonymous ones too.
fn pattern_with_client_id(v: ProtocolVersion) {
    let broker = broker(1);
    let mut dev1 = anonymous(&broker, v, "dev1");
    dev1.subscribe_one("devices/#", qos(0));
    let mut dev2 = user(&broker, v, "dev2", "bob");
    dev2.subscribe_one("devices/#", qos(0));
    dev1.publish("devices/dev1/state", b"on", qos(1));
    dev2.publish("devices/dev2/state", b"off", qos(1));
    expect_message(&mut dev1, "devices/dev1/state", "on");
    expect_message(&mut dev2, "devices/dev2/state", "off");
    dev1.expect_nothing(QUIET);
    // dev1 may not write dev2's levels (last: Mosquitto then closes dev1's connection).
    dev1.publish("devices/dev2/state", b"spoofed", qos(0));
    dev2.expect_nothing(QUIET);
}

test_versions!(pattern_with_client_id => pattern_client_id_v311, pattern_client_id_v5);

// `pattern` with %u: applies to named users (here carol, who has no section of her own),
// never to anonymous clients.
fn pattern_with_user_name(v: ProtocolVersion) {
    let broker = broker(1);
    let mut carol = user(&broker, v, "c-1", "carol");
    carol.subscribe_one("users/#", qos(0));
    let mut anon = anonymous(&broker, v, "anon-1");
    // ringmq refuses this subscription (nothing readable); Mosquitto grants it. Either
    // way nothing may arrive.
    anon.subscribe(&[("users/#", qos(0))]);
    let mut bob = user(&broker, v, "bob-1", "bob");
    bob.publish("users/carol/inbox", b"for carol", qos(0));
    bob.publish("users/dave/inbox", b"for dave", qos(0));
    expect_message(&mut carol, "users/carol/inbox", "for carol");
    carol.expect_nothing(QUIET);
    anon.expect_nothing(QUIET);
}

test_versions!(pattern_with_user_name => pattern_user_name_v311, pattern_user_name_v5);

// The lines before the first `user` are the anonymous clients': a named user does not
// get them, and anonymous clients get no user's.
fn anonymous_section(v: ProtocolVersion) {
    let broker = broker(1);
    let mut anon = anonymous(&broker, v, "anon-1");
    anon.subscribe_one("#", qos(0));
    let mut alice = user(&broker, v, "alice-1", "alice");
    alice.subscribe_one("#", qos(0));
    let mut bob = user(&broker, v, "bob-1", "bob");
    bob.publish("public/news", b"news", qos(0));
    bob.publish("sensors/temp", b"22", qos(0));
    expect_message(&mut anon, "public/news", "news");
    expect_message(&mut alice, "sensors/temp", "22");
    anon.expect_nothing(QUIET);
    alice.expect_nothing(QUIET);
    // inbox/anon is anonymous-write (and alice-read): anon may write it, alice may not
    // (from a second connection: Mosquitto closes a connection whose PUBLISH it refuses).
    anon.publish("inbox/anon", b"from anon", qos(1));
    expect_message(&mut alice, "inbox/anon", "from anon");
    let mut alice2 = user(&broker, v, "alice-2", "alice");
    alice2.publish("inbox/anon", b"from alice", qos(0));
    alice.expect_nothing(QUIET);
}

test_versions!(anonymous_section => anonymous_section_is_for_anonymous_clients_v311, anonymous_section_is_for_anonymous_clients_v5);

// A SUBSCRIBE is refused per filter when no topic it matches is readable, or a deny rule
// covers it: SUBACK 0x87 in MQTT 5.0, 0x80 in MQTT 3.1.1; the other filters are granted
// [MQTT-3.8.4-7] [MQTT-3.9.3-1] (5.0) [MQTT-3.8.4-5] [MQTT-3.9.3-2] (3.1.1).
fn refused_filters(v: ProtocolVersion) {
    if skip_unless_ringmq("Mosquitto grants every SUBSCRIBE") {
        return;
    }
    let broker = broker(1);
    let mut alice = user(&broker, v, "alice-1", "alice");
    let ack = alice.subscribe(&[
        ("sensors/#", qos(1)),
        ("cmd/alice", qos(1)),
        ("sensors/secret/#", qos(1)),
        ("#", qos(2)),
        ("elsewhere/+", qos(0)),
        ("$share/g/sensors/+", qos(1)),
    ]);
    let failed = if v == V5 { 0x87 } else { 0x80 };
    let codes: Vec<u8> = ack
        .reasons
        .iter()
        .map(|r| match v {
            ProtocolVersion::V5 => r.value(),
            _ => r.to_v3_suback(),
        })
        .collect();
    assert_eq!(codes, [0x01, failed, failed, 0x02, failed, 0x01]);
    if v == V5 {
        // A reason string says why (Request Problem Information defaults to 1).
        assert!(ack.properties.reason_string.is_some());
    }
}

test_versions!(refused_filters => subscribe_refused_per_filter_v311_ringmq_only_mqtt_3_9_3_2, subscribe_refused_per_filter_v5_ringmq_only_mqtt_3_8_4_7);

// The same, byte for byte: SUBACK `90 03 00 01 80` (3.1.1).
#[test]
fn subscribe_refused_bytes_v311_ringmq_only() {
    if skip_unless_ringmq("Mosquitto grants every SUBSCRIBE") {
        return;
    }
    let broker = broker(1);
    let c = user(&broker, V311, "alice-1", "alice");
    let mut raw = c.into_raw();
    raw.send(&hex("82 0e 00 01 00 09 63 6d 64 2f 61 6c 69 63 65 01"));
    raw.expect_bytes("90 03 00 01 80");
}

// A will is published only to a topic its client may write: a will on a forbidden topic
// is dropped, one on an allowed topic goes.
fn will_needs_write_access(v: ProtocolVersion) {
    let broker = broker(1);
    let mut alice = user(&broker, v, "alice-1", "alice");
    alice.subscribe_one("wills/#", qos(0));
    alice.subscribe_one("inbox/#", qos(0));
    // Anonymous clients may not write wills/...
    let mut denied = connect(v, "dev9");
    denied.will = Some(will("wills/dev9", b"gone", qos(0), false));
    Client::connect(broker.addr(), denied)
        .into_raw()
        .drop_connection();
    alice.expect_nothing(QUIET);
    // ... but may write inbox/anon.
    let mut allowed = connect(v, "dev8");
    allowed.will = Some(will("inbox/anon", b"dev8 gone", qos(0), false));
    Client::connect(broker.addr(), allowed)
        .into_raw()
        .drop_connection();
    expect_message(&mut alice, "inbox/anon", "dev8 gone");
}

test_versions!(will_needs_write_access => will_on_a_forbidden_topic_is_not_published_v311, will_on_a_forbidden_topic_is_not_published_v5);

// Retained messages at SUBSCRIBE: only those on topics the subscriber may read.
fn retained_only_where_readable(v: ProtocolVersion) {
    let broker = broker(1);
    let mut bob = user(&broker, v, "bob-1", "bob");
    bob.publish_retained("sensors/secret/pin", b"1234", qos(1));
    bob.publish_retained("sensors/door", b"open", qos(1));
    let mut alice = user(&broker, v, "alice-1", "alice");
    alice.subscribe_one("sensors/#", qos(1));
    let p = alice.recv_message();
    assert!(p.retain, "a retained message at SUBSCRIBE has RETAIN set");
    assert_eq!(message(&p), ("sensors/door".to_owned(), "open".to_owned()));
    alice.expect_nothing(QUIET);
}

test_versions!(retained_only_where_readable => retained_message_not_readable_is_not_sent_v311, retained_message_not_readable_is_not_sent_v5);

// Messages queued for an offline persistent session are filtered too: what reaches the
// client after it comes back is what it may read.
fn offline_queue_filtered(v: ProtocolVersion) {
    let broker = broker(1);
    let mut alice = Client::connect(broker.addr(), {
        let mut c = connect_persistent(v, "alice-p");
        c.username = Some(mqtt_str("alice"));
        c
    });
    alice.subscribe_one("sensors/#", qos(1));
    alice.disconnect();
    let mut bob = user(&broker, v, "bob-1", "bob");
    bob.publish("sensors/secret/a", b"no", qos(1));
    bob.publish("sensors/b", b"yes", qos(1));
    let mut back = connect_persistent(v, "alice-p");
    back.username = Some(mqtt_str("alice"));
    back.clean_start = false;
    let mut alice = Client::connect(broker.addr(), back);
    expect_message(&mut alice, "sensors/b", "yes");
    alice.expect_nothing(QUIET);
}

test_versions!(offline_queue_filtered => offline_session_gets_only_readable_messages_v311, offline_session_gets_only_readable_messages_v5);

// With 4 shards, publisher and subscribers homed on different shards: the check is made
// where each subscriber lives.
#[test]
fn deliveries_are_filtered_on_every_shard_v5() {
    let broker = broker(4);
    let mut readers = Vec::new();
    for shard in 0..4 {
        let id = client_id_on_shard("alice", shard, 4);
        let mut c = user(&broker, V5, &id, "alice");
        c.subscribe_one("sensors/#", qos(1));
        readers.push(c);
    }
    let id = client_id_on_shard("bob", 1, 4);
    let mut bob = user(&broker, V5, &id, "bob");
    bob.publish("sensors/secret/x", b"hidden", qos(1));
    bob.publish("sensors/x", b"seen", qos(1));
    for c in &mut readers {
        expect_message(c, "sensors/x", "seen");
        c.expect_nothing(QUIET);
    }
}

// `$SYS` topics: `#` does not match them, so only a rule naming `$SYS` grants them; a
// SUBSCRIBE to `$SYS/#` without one is refused. (Mosquitto reserves `$SYS` for itself.)
#[test]
fn dollar_sys_readable_only_where_granted_v5_ringmq_only() {
    if skip_unless_ringmq("Mosquitto refuses client PUBLISHes to $SYS") {
        return;
    }
    let files = SecurityFiles::new();
    files.acl(
        "user admin
topic read $SYS/#
topic read #
               user ops
topic write $SYS/health
topic write #
               user everyone
topic read #
",
    );
    let broker = Broker::start(files.options(false, true, "", ""));
    let mut admin = user(&broker, V5, "admin-1", "admin");
    admin.subscribe_one("$SYS/#", qos(0));
    let mut everyone = user(&broker, V5, "e-1", "everyone");
    let ack = everyone.subscribe(&[("$SYS/#", qos(0)), ("#", qos(0))]);
    assert_eq!(
        ack.reasons,
        [ReasonCode::NotAuthorized, ReasonCode::GRANTED_QOS_0]
    );
    let mut ops = user(&broker, V5, "ops-1", "ops");
    ops.publish("$SYS/health", b"ok", qos(0));
    ops.publish("app/health", b"fine", qos(0));
    expect_message(&mut admin, "$SYS/health", "ok");
    expect_message(&mut everyone, "app/health", "fine");
    admin.expect_nothing(QUIET);
    everyone.expect_nothing(QUIET);
}

// A persistent session keeps the user its client logged in as across a restart: messages
// queued for it while it is away, after the restart, are filtered by that user's rules
// (the user is logged with the session), not by the anonymous section.
fn offline_queue_filtered_after_restart(v: ProtocolVersion) {
    if skip_unless_ringmq("the harness runs Mosquitto without persistence") {
        return;
    }
    let files = SecurityFiles::new();
    files.acl(ACL);
    let mut broker = Broker::start(files.options(false, true, "", ""));
    let mut c = connect_persistent(v, "alice-p");
    c.username = Some(mqtt_str("alice"));
    let mut alice = Client::connect(broker.addr(), c);
    alice.subscribe_one("sensors/#", qos(1));
    alice.disconnect();
    broker.stop();
    broker.restart();
    let mut bob = user(&broker, v, "bob-1", "bob");
    bob.publish("sensors/secret/a", b"no", qos(1));
    bob.publish("sensors/b", b"yes", qos(1));
    let mut back = connect_persistent(v, "alice-p");
    back.username = Some(mqtt_str("alice"));
    let mut alice = Client::connect(broker.addr(), back);
    assert!(alice.session_present());
    expect_message(&mut alice, "sensors/b", "yes");
    alice.expect_nothing(QUIET);
}

test_versions!(offline_queue_filtered_after_restart => restarted_offline_session_keeps_its_user_v311_ringmq_only, restarted_offline_session_keeps_its_user_v5_ringmq_only);
