//! Shared subscriptions (`$share/{group}/{filter}`, MQTT 5.0 section 4.8.2) on a broker with
//! four shards, members homed on different shards (ringmq homes a client on hash(client
//! id) mod shards; [`client_id_on_shard`] picks ids for each shard). Under Mosquitto (one
//! thread) the same tests pass with the members all in one place.

pub mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use ringmq::protocol::{Packet, ProtocolVersion, Publish, QoS, SubscriptionOptions};

const SHARDS: usize = 4;
const QUIET: Duration = Duration::from_millis(300);

fn broker() -> Broker {
    Broker::start(BrokerOptions::default().shards(SHARDS))
}

fn member(broker: &Broker, v: ProtocolVersion, name: &str, shard: usize) -> Client {
    broker.client(v, &client_id_on_shard(name, shard, SHARDS))
}

/// Receives every PUBLISH that arrives at each client until all are quiet; returns the
/// payloads per client, acknowledging each.
fn drain(clients: &mut [Client]) -> Vec<Vec<String>> {
    clients
        .iter_mut()
        .map(|c| {
            let mut got = Vec::new();
            while let Some(p) = try_recv_publish(c, QUIET) {
                c.ack(&p);
                got.push(String::from_utf8_lossy(&p.payload).into_owned());
            }
            got
        })
        .collect()
}

/// The next PUBLISH if one arrives within `quiet`.
fn try_recv_publish(c: &mut Client, quiet: Duration) -> Option<Publish> {
    match c.try_recv(quiet)? {
        Packet::Publish(p) => Some(p),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

fn payloads(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i:03}")).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Four members, one per shard, and a publisher: each of 40 QoS 1 messages reaches exactly
/// one member, at the member's granted QoS [MQTT-4.8.2-3] (5.0), and round robin gives each
/// member 10.
fn each_message_reaches_one_member(v: ProtocolVersion) {
    let broker = broker();
    let mut members: Vec<Client> = (0..SHARDS)
        .map(|s| {
            let mut m = member(&broker, v, "share-m", s);
            // Granted QoS 1; the messages are published at QoS 2.
            m.subscribe(&[("$share/workers/jobs/+", qos(1))]);
            m
        })
        .collect();
    let mut publisher = member(&broker, v, "share-p", 0);
    let sent = payloads(40);
    for p in &sent {
        publisher.publish("jobs/a", p.as_bytes(), qos(2));
    }
    let got = drain_checking_qos(&mut members, QoS::AtLeastOnce);
    let all: Vec<String> = got.iter().flatten().cloned().collect();
    assert_eq!(
        sorted(all),
        sent,
        "every message exactly once across the group"
    );
    if !is_mosquitto() {
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g.len(), 10, "member {i}: round robin gives each a quarter");
        }
    }
}

fn drain_checking_qos(clients: &mut [Client], want: QoS) -> Vec<Vec<String>> {
    clients
        .iter_mut()
        .map(|c| {
            let mut got = Vec::new();
            while let Some(p) = try_recv_publish(c, QUIET) {
                assert_eq!(p.qos, want, "delivered at the subscription's granted QoS");
                c.ack(&p);
                got.push(String::from_utf8_lossy(&p.payload).into_owned());
            }
            got
        })
        .collect()
}

test_versions!(each_message_reaches_one_member =>
    shared_members_on_every_shard_get_each_message_once_v311,
    shared_members_on_every_shard_get_each_message_once_v5_mqtt_4_8_2_3);

// Two groups on one filter and a plain subscriber: each group gets every message once,
// the plain subscriber gets every message.
#[test]
fn groups_are_independent_of_each_other_and_of_plain_subscriptions_v5() {
    let broker = broker();
    let mut a: Vec<Client> = (0..2)
        .map(|s| {
            let mut m = member(&broker, V5, "grp-a", s);
            m.subscribe(&[("$share/a/t/#", qos(1))]);
            m
        })
        .collect();
    let mut b: Vec<Client> = (2..4)
        .map(|s| {
            let mut m = member(&broker, V5, "grp-b", s);
            m.subscribe(&[("$share/b/t/#", qos(1))]);
            m
        })
        .collect();
    let mut plain = member(&broker, V5, "plain", 1);
    plain.subscribe(&[("t/#", qos(1))]);
    let mut publisher = member(&broker, V5, "grp-p", 3);
    let sent = payloads(20);
    for p in &sent {
        publisher.publish("t/x", p.as_bytes(), qos(1));
    }
    let got_a: Vec<String> = drain(&mut a).into_iter().flatten().collect();
    let got_b: Vec<String> = drain(&mut b).into_iter().flatten().collect();
    let got_plain: Vec<String> = drain(std::slice::from_mut(&mut plain))
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(sorted(got_a), sent, "group a: each message once");
    assert_eq!(sorted(got_b), sent, "group b: each message once");
    assert_eq!(got_plain, sent, "the plain subscriber: all, in order");
}

// [MQTT-3.8.3-4] (5.0) No Local on a shared subscription is a Protocol Error: DISCONNECT
// 0x82 (Mosquitto 2.0.11 accepts it).
#[test]
fn no_local_on_a_shared_subscription_is_a_protocol_error_ringmq_only_v5_mqtt_3_8_3_4() {
    if skip_unless_ringmq("No Local on a shared subscription") {
        return;
    }
    let broker = broker();
    let mut c = broker.client(V5, "share-nolocal");
    let mut s = subscribe(1, &[("$share/g/t", qos(1))]);
    s.subscriptions[0].options = SubscriptionOptions {
        no_local: true,
        ..s.subscriptions[0].options
    };
    c.send_mqtt(&Packet::Subscribe(s));
    c.expect_disconnect(0x82);
}

// Retained messages are not sent when a shared subscription is made (section 4.8.2;
// Mosquitto 2.0.11 sends them).
fn retained_not_sent_to_shared(v: ProtocolVersion) {
    if skip_unless_ringmq("no retained messages for shared subscriptions") {
        return;
    }
    let broker = broker();
    let mut p = broker.client(v, "share-ret-p");
    p.publish_retained("ret/x", b"kept", qos(1));
    let mut m = broker.client(v, "share-ret-m");
    m.subscribe(&[("$share/g/ret/#", qos(1))]);
    m.expect_nothing(QUIET);
    // The message itself is still retained: a plain subscriber gets it.
    let mut plain = broker.client(v, "share-ret-plain");
    plain.subscribe(&[("ret/#", qos(1))]);
    let got = plain.recv_message();
    assert!(got.retain && &got.payload[..] == b"kept");
}

test_versions!(retained_not_sent_to_shared =>
    shared_subscription_gets_no_retained_messages_ringmq_only_v311,
    shared_subscription_gets_no_retained_messages_ringmq_only_v5);

// A member whose connection ends with QoS 1 messages it has not acknowledged: they go to
// another member of the group (ringmq's promise; the spec allows waiting for the member
// instead).
#[test]
fn unacknowledged_messages_of_a_leaving_member_go_to_another_ringmq_only_v5() {
    if skip_unless_ringmq("redelivery to another member on disconnect") {
        return;
    }
    let broker = broker();
    let mut quitter = member(&broker, V5, "quit", 1);
    quitter.subscribe(&[("$share/g/q/+", qos(1))]);
    let mut stayer = member(&broker, V5, "stay", 2);
    stayer.subscribe(&[("$share/g/q/+", qos(1))]);
    let mut publisher = member(&broker, V5, "quit-p", 3);
    let sent = payloads(10);
    for p in &sent {
        publisher.publish("q/1", p.as_bytes(), qos(1));
    }
    // The quitter reads its half and acknowledges none of it.
    let mut unacked = Vec::new();
    while let Some(p) = try_recv_publish(&mut quitter, QUIET) {
        unacked.push(String::from_utf8_lossy(&p.payload).into_owned());
    }
    assert_eq!(unacked.len(), 5, "round robin gave the quitter half");
    let mut got = drain(std::slice::from_mut(&mut stayer)).remove(0);
    assert_eq!(got.len(), 5);
    quitter.into_raw().drop_connection();
    let again = drain(std::slice::from_mut(&mut stayer)).remove(0);
    assert_eq!(
        sorted(again),
        sorted(unacked),
        "the quitter's messages, redelivered"
    );
    got.extend(drain(std::slice::from_mut(&mut stayer)).remove(0));
    assert_eq!(got.len(), 5, "nothing else");
}

// [MQTT-4.8.2-4] (5.0) A QoS 2 message whose PUBLISH went to a member that then lost its
// connection is not given to another member: the member gets it again (DUP) when it
// comes back, and completes it.
#[test]
fn a_qos2_message_in_flight_stays_with_its_member_v5_mqtt_4_8_2_4() {
    let broker = broker();
    let id = client_id_on_shard("q2m", 1, SHARDS);
    let mut first = Client::connect(broker.addr(), connect_persistent(V5, &id));
    first.subscribe(&[("$share/g/q2", qos(2))]);
    let mut other = member(&broker, V5, "q2-other", 2);
    other.subscribe(&[("$share/g/q2", qos(2))]);
    let mut publisher = member(&broker, V5, "q2-p", 3);
    publisher.publish("q2", b"one", qos(2));
    publisher.publish("q2", b"two", qos(2));
    // Round robin: one each. Whoever got "one" or "two", the first member does not answer.
    let held = try_recv_publish(&mut first, QUIET).expect("the first member's message");
    let others = drain(std::slice::from_mut(&mut other)).remove(0);
    assert_eq!(others.len(), 1);
    first.into_raw().drop_connection();
    other.expect_nothing(Duration::from_millis(800));
    let mut again = Client::connect(broker.addr(), connect_persistent(V5, &id));
    assert!(again.session_present());
    let p = again.recv_publish();
    assert!(p.dup, "resent with DUP");
    assert_eq!(p.payload, held.payload);
    again.ack(&p);
}

// Members that are offline (persistent sessions without a connection) get nothing while
// another member is online.
#[test]
fn online_members_are_preferred_to_offline_ones_ringmq_only_v5() {
    if skip_unless_ringmq("online members preferred") {
        return;
    }
    let broker = broker();
    let away_id = client_id_on_shard("away", 0, SHARDS);
    let mut away = Client::connect(broker.addr(), connect_persistent(V5, &away_id));
    away.subscribe(&[("$share/g/o", qos(1))]);
    away.disconnect();
    let mut here = member(&broker, V5, "here", 2);
    here.subscribe(&[("$share/g/o", qos(1))]);
    let mut publisher = member(&broker, V5, "o-p", 1);
    let sent = payloads(8);
    for p in &sent {
        publisher.publish("o", p.as_bytes(), qos(1));
    }
    assert_eq!(drain(std::slice::from_mut(&mut here)).remove(0), sent);
    let mut back = Client::connect(broker.addr(), connect_persistent(V5, &away_id));
    assert!(back.session_present());
    back.expect_nothing(QUIET);
}

// An unsubscribed member gets no more of the group's messages.
#[test]
fn an_unsubscribed_member_leaves_the_group_v5() {
    let broker = broker();
    let mut a = member(&broker, V5, "uns-a", 1);
    a.subscribe(&[("$share/g/u", qos(1))]);
    let mut b = member(&broker, V5, "uns-b", 2);
    b.subscribe(&[("$share/g/u", qos(1))]);
    a.unsubscribe(&["$share/g/u"]);
    let mut publisher = member(&broker, V5, "uns-p", 3);
    let sent = payloads(6);
    for p in &sent {
        publisher.publish("u", p.as_bytes(), qos(1));
    }
    assert_eq!(drain(std::slice::from_mut(&mut b)).remove(0), sent);
    a.expect_nothing(QUIET);
}

// `mqtt.shared_strategy = "sticky"`: one publisher's messages all go to one member, in
// order; two publishers may go to different members.
#[test]
fn sticky_strategy_keeps_a_publisher_on_one_member_ringmq_only_v5() {
    if skip_unless_ringmq("share strategies") {
        return;
    }
    let broker = Broker::start(
        BrokerOptions::default()
            .shards(SHARDS)
            .config("[mqtt]\nshared_strategy = \"sticky\"", ""),
    );
    let mut members: Vec<Client> = (0..SHARDS)
        .map(|s| {
            let mut m = member(&broker, V5, "sticky-m", s);
            m.subscribe(&[("$share/g/s", qos(1))]);
            m
        })
        .collect();
    let mut publisher = member(&broker, V5, "sticky-p", 2);
    let sent = payloads(12);
    for p in &sent {
        publisher.publish("s", p.as_bytes(), qos(1));
    }
    let got = drain(&mut members);
    let receivers: Vec<&Vec<String>> = got.iter().filter(|g| !g.is_empty()).collect();
    assert_eq!(receivers.len(), 1, "one member got them all: {got:?}");
    assert_eq!(receivers[0], &sent, "in order");
}

// `mqtt.shared_strategy = "random"`: still each message exactly once.
#[test]
fn random_strategy_delivers_each_message_once_ringmq_only_v5() {
    if skip_unless_ringmq("share strategies") {
        return;
    }
    let broker = Broker::start(
        BrokerOptions::default()
            .shards(SHARDS)
            .config("[mqtt]\nshared_strategy = \"random\"", ""),
    );
    let mut members: Vec<Client> = (0..SHARDS)
        .map(|s| {
            let mut m = member(&broker, V5, "rnd-m", s);
            m.subscribe(&[("$share/g/r", qos(1))]);
            m
        })
        .collect();
    let mut publisher = member(&broker, V5, "rnd-p", 0);
    let sent = payloads(40);
    for p in &sent {
        publisher.publish("r", p.as_bytes(), qos(1));
    }
    let got = drain(&mut members);
    let counts: BTreeMap<usize, usize> = got.iter().map(Vec::len).enumerate().collect();
    let all: Vec<String> = got.into_iter().flatten().collect();
    assert_eq!(sorted(all), sent, "each once; per member: {counts:?}");
}

// Shared subscriptions turned off: CONNACK says so (Shared Subscription Available 0,
// property 0x2A) and SUBSCRIBE gets 0x9E (v5) / 0x80 (3.1.1).
fn shared_off(v: ProtocolVersion) {
    if skip_unless_ringmq("mqtt.shared_subscriptions") {
        return;
    }
    let broker =
        Broker::start(BrokerOptions::default().config("[mqtt]\nshared_subscriptions = false", ""));
    let mut raw = broker.raw();
    raw.send_packet(&Packet::Connect(Box::new(connect(v, "share-off"))), v);
    let Packet::ConnAck(ack) = raw.recv_packet(v) else {
        panic!("expected CONNACK")
    };
    if v.is_v5() {
        assert_eq!(ack.properties.shared_subscription_available, Some(false));
    }
    raw.send_packet(
        &Packet::Subscribe(subscribe(1, &[("$share/g/t", qos(1)), ("t", qos(1))])),
        v,
    );
    let Packet::SubAck(s) = raw.recv_packet(v) else {
        panic!("expected SUBACK")
    };
    let codes: Vec<u8> = s.reasons.iter().map(|r| *r as u8).collect();
    let refused = if v.is_v5() { 0x9E } else { 0x80 };
    assert_eq!(codes, [refused, 0x01]);
}

test_versions!(shared_off =>
    shared_subscriptions_off_are_refused_ringmq_only_v311,
    shared_subscriptions_off_are_refused_ringmq_only_v5);

// [MQTT-4.8.2-5] (5.0) A QoS 2 message sent to a member whose session then ends (Session
// Expiry Interval 0, the connection dropped before PUBREC) is not sent to any other member
// of the group.
#[test]
fn a_qos2_message_of_an_ended_session_goes_to_nobody_else_v5_mqtt_4_8_2_5() {
    let broker = broker();
    let mut ending = member(&broker, V5, "q2-end", 1);
    ending.subscribe(&[("$share/g/q2e", qos(2))]);
    let mut other = member(&broker, V5, "q2e-other", 2);
    other.subscribe(&[("$share/g/q2e", qos(2))]);
    let mut publisher = member(&broker, V5, "q2e-p", 3);
    publisher.publish("q2e", b"one", qos(2));
    publisher.publish("q2e", b"two", qos(2));
    let held = try_recv_publish(&mut ending, QUIET).expect("the ending member's message");
    let others = drain(std::slice::from_mut(&mut other)).remove(0);
    assert_eq!(others.len(), 1, "round robin: one each");
    assert_ne!(others[0].as_bytes(), &held.payload[..]);
    ending.into_raw().drop_connection();
    other.expect_nothing(Duration::from_millis(800));
    // The group still works: the next message reaches the member left.
    publisher.publish("q2e", b"three", qos(2));
    let p = other.recv_publish();
    assert_eq!(text(&p), "three");
    other.ack(&p);
}

// [MQTT-4.8.2-6] (5.0) A member that answers PUBACK or PUBREC with a reason code of 0x80 or
// above ends the message: it is discarded, not sent to another member, not even when that
// member then disconnects.
#[test]
fn a_negatively_acknowledged_message_goes_to_nobody_else_v5_mqtt_4_8_2_6() {
    let broker = broker();
    let mut refuser = member(&broker, V5, "nack", 1);
    refuser.subscribe(&[("$share/g/n/+", qos(2))]);
    let mut other = member(&broker, V5, "nack-other", 2);
    other.subscribe(&[("$share/g/n/+", qos(2))]);
    let mut publisher = member(&broker, V5, "nack-p", 3);
    // Round robin: two each, a QoS 1 and a QoS 2 message for the refuser.
    publisher.publish("n/1", b"one-a", qos(1));
    publisher.publish("n/1", b"one-b", qos(1));
    publisher.publish("n/2", b"two-a", qos(2));
    publisher.publish("n/2", b"two-b", qos(2));
    let mut refused = Vec::new();
    while let Some(p) = try_recv_publish(&mut refuser, QUIET) {
        let id = packet_id(p.packet_id.expect("QoS > 0 has an id").get());
        let mut ack = ringmq::protocol::Ack::new(id);
        ack.reason = ringmq::protocol::ReasonCode::UnspecifiedError;
        refuser.send_mqtt(&if p.qos == QoS::AtLeastOnce {
            Packet::PubAck(ack)
        } else {
            Packet::PubRec(ack)
        });
        refused.push(text(&p));
    }
    assert_eq!(
        refused.len(),
        2,
        "round robin gave the refuser two: {refused:?}"
    );
    let got = drain(std::slice::from_mut(&mut other)).remove(0);
    assert_eq!(got.len(), 2, "{got:?}");
    refuser.ping();
    refuser.into_raw().drop_connection();
    other.expect_nothing(Duration::from_millis(800));
}
