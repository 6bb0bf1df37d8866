//! Retained messages against a running broker: stored, replaced, deleted by an empty
//! payload, sent with RETAIN 1 to new subscriptions and RETAIN 0 to existing ones.
//!
//! A retained message is delivered right after the SUBACK. To show that nothing else was,
//! the test then publishes a fence message (RETAIN 0) on the same topic: it must be the next
//! PUBLISH.

pub mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use ringmq::protocol::{ProtocolVersion, QoS};

const QUIET: Duration = Duration::from_millis(200);

/// A new client subscribes to `filter` at `granted` and must receive exactly the retained
/// `(topic, payload)` pairs (with RETAIN 1, in any order), then the fence, then nothing.
fn expect_retained(
    broker: &Broker,
    v: ProtocolVersion,
    filter: &str,
    granted: QoS,
    fence_topic: &str,
    expected: &[(&str, &str)],
) {
    let mut sub = broker.client(v, "late");
    sub.subscribe_one(filter, granted);
    let mut got = BTreeSet::new();
    for _ in expected {
        let p = sub.recv_message();
        assert!(p.retain, "retained message sent without RETAIN 1: {p:?}");
        got.insert(message(&p));
    }
    let want: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(t, p)| (t.to_string(), p.to_string()))
        .collect();
    assert_eq!(got, want, "retained messages for {filter:?}");
    let mut fence = broker.client(v, "fence");
    fence.publish(fence_topic, b"fence", qos(1));
    let p = sub.recv_message();
    assert_eq!(
        (text(&p).as_str(), p.retain),
        ("fence", false),
        "expected only the retained messages, then the fence; got {p:?}"
    );
    sub.expect_nothing(QUIET);
}

// [MQTT-3.3.1-5] (3.1.1) (5.0), [MQTT-3.3.1-6] (3.1.1), [MQTT-3.3.1-8] (3.1.1) /
// [MQTT-3.3.1-9] (5.0): a retained message is stored and sent to a later subscription with
// RETAIN 1, exactly `31 <len> <topic> [00] <payload>` at QoS 0. The publisher has gone by
// then: retained messages are not session state [MQTT-3.1.2-7] (3.1.1).
fn check_retained_on_subscribe(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut publisher = broker.client(v, "pub");
    publisher.publish_retained("r/t", b"kept", qos(1));
    publisher.disconnect();
    let mut sub = broker.client(v, "late");
    sub.subscribe_one("r/t", qos(0));
    sub.expect_publish(0x31, "r/t", b"kept");
    // Again for another new subscription, at QoS 1: `33 ...`.
    let mut sub = broker.client(v, "later");
    sub.subscribe_one("r/#", qos(1));
    let id = sub.expect_publish(0x33, "r/t", b"kept");
    sub.ack_id(qos(1), id);
}
test_versions!(check_retained_on_subscribe => retained_message_sent_on_subscribe_with_retain_1_v311_mqtt_3_3_1_6,
    retained_message_sent_on_subscribe_with_retain_1_v5_mqtt_3_3_1_9);

// [MQTT-3.3.1-5] A new retained message on a topic replaces the old one.
fn check_replace(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut publisher = broker.client(v, "pub");
    publisher.publish_retained("r/t", b"one", qos(1));
    publisher.publish_retained("r/t", b"two", qos(1));
    expect_retained(&broker, v, "r/t", qos(1), "r/t", &[("r/t", "two")]);
}
test_versions!(check_replace => retained_message_replaced_v311_mqtt_3_3_1_5,
    retained_message_replaced_v5_mqtt_3_3_1_5);

// [MQTT-3.3.1-10] (3.1.1) / [MQTT-3.3.1-11] (3.1.1), [MQTT-3.3.1-6] (5.0) /
// [MQTT-3.3.1-7] (5.0): a retained PUBLISH with an empty payload is delivered as normal (to
// existing subscribers, RETAIN 0: `30 05 00 03 72 2f 74 [00]`), removes the retained
// message, and is not stored itself.
fn check_delete(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut existing = broker.client(v, "existing");
    existing.subscribe_one("r/t", qos(0));
    let mut publisher = broker.client(v, "pub");
    publisher.publish_retained("r/t", b"doomed", qos(1));
    existing.expect_publish(0x30, "r/t", b"doomed");
    publisher.publish_retained("r/t", b"", qos(1));
    existing.expect_publish(0x30, "r/t", b"");
    expect_retained(&broker, v, "r/#", qos(1), "r/t", &[]);
}
test_versions!(check_delete => retained_message_deleted_by_empty_payload_v311_mqtt_3_3_1_10,
    retained_message_deleted_by_empty_payload_v5_mqtt_3_3_1_6);

// [MQTT-3.3.1-7] (3.1.1) A retained QoS 0 message discards the one retained before it (and
// should itself be kept, which both brokers do).
#[test]
fn retained_qos0_message_replaces_previous_mqtt_3_3_1_7() {
    let broker = Broker::start_default();
    let mut publisher = broker.client(V311, "pub");
    publisher.publish_retained("r/t", b"qos1", qos(1));
    publisher.publish_retained("r/t", b"qos0", qos(0));
    // The QoS 0 PUBLISH has no ack: a ping answered shows the broker has read it.
    publisher.ping();
    expect_retained(&broker, V311, "r/t", qos(1), "r/t", &[("r/t", "qos0")]);
}

// [MQTT-3.3.1-9] (3.1.1) / [MQTT-3.3.1-12] (5.0) (Retain As Published 0): a retained
// message sent to an existing subscription has RETAIN 0: exactly `30 ...`.
fn check_retain_0_for_existing(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = broker.client(v, "sub");
    sub.subscribe_one("r/t", qos(0));
    let mut publisher = broker.client(v, "pub");
    publisher.publish_retained("r/t", b"live", qos(1));
    sub.expect_publish(0x30, "r/t", b"live");
}
test_versions!(check_retain_0_for_existing => retain_flag_0_on_normal_delivery_v311_mqtt_3_3_1_9,
    retain_flag_0_on_normal_delivery_v5_mqtt_3_3_1_12);

// [MQTT-3.3.1-12] (3.1.1) / [MQTT-3.3.1-8] (5.0) A PUBLISH with RETAIN 0 is neither stored
// nor removes or replaces the retained message.
fn check_non_retained_leaves_store(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut publisher = broker.client(v, "pub");
    publisher.publish_retained("r/t", b"keep", qos(1));
    publisher.publish("r/t", b"transient", qos(1));
    publisher.publish("r/t", b"", qos(1));
    publisher.publish("r/other", b"transient", qos(1));
    expect_retained(&broker, v, "r/#", qos(1), "r/t", &[("r/t", "keep")]);
}
test_versions!(check_non_retained_leaves_store => publish_without_retain_leaves_retained_message_v311_mqtt_3_3_1_12,
    publish_without_retain_leaves_retained_message_v5_mqtt_3_3_1_8);

// [MQTT-3.3.1-6] (3.1.1) / [MQTT-3.3.1-9] (5.0) A new subscription gets the last retained
// message of every matching topic. With four shards the retained store is partitioned, so a wildcard
// subscription collects from all of them.
fn check_wildcard_collects(v: ProtocolVersion) {
    let broker = Broker::with_shards(4);
    let topics: Vec<String> = (0..24).map(|i| format!("rw/{i}/leaf")).collect();
    let mut publisher = broker.client(v, "pub");
    for t in &topics {
        publisher.publish_retained(t, t.as_bytes(), qos(1));
    }
    publisher.publish_retained("other/0/leaf", b"other", qos(1));
    publisher.publish_retained("rw/deeper/x/leaf", b"deeper", qos(1));
    let expected: Vec<(&str, &str)> = topics.iter().map(|t| (t.as_str(), t.as_str())).collect();
    expect_retained(&broker, v, "rw/+/leaf", qos(1), "rw/0/leaf", &expected);
}
test_versions!(check_wildcard_collects => wildcard_subscription_gets_every_matching_retained_message_v311_mqtt_3_3_1_6,
    wildcard_subscription_gets_every_matching_retained_message_v5_mqtt_3_3_1_9);

// [MQTT-3.3.1-5] The retained message is stored with its QoS; a new subscription gets it at
// the minimum of that QoS and the granted one [MQTT-3.8.4-6] (3.1.1) / [MQTT-3.8.4-8] (5.0).
fn check_retained_qos(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut publisher = broker.client(v, "pub");
    publisher.publish_retained("r/q1", b"q1", qos(1));
    publisher.publish_retained("r/q2", b"q2", qos(2));
    let mut sub = broker.client(v, "late");
    sub.subscribe_one("r/q2", qos(1));
    let got = sub.recv_message();
    assert_eq!((text(&got).as_str(), got.qos), ("q2", qos(1)));
    sub.subscribe_one("r/q1", qos(2));
    let got = sub.recv_message();
    assert_eq!((text(&got).as_str(), got.qos), ("q1", qos(1)));
}
test_versions!(check_retained_qos => retained_message_keeps_its_qos_v311_mqtt_3_3_1_5,
    retained_message_keeps_its_qos_v5_mqtt_3_3_1_5);

// [MQTT-3.3.1-8] (3.1.1) RETAIN 1 is set because the message is sent for a new
// subscription, whatever the subscriber: a 3.1.1 subscriber gets a v5 client's retained
// message, and the other way round, each in its own version's encoding.
#[test]
fn retained_message_crosses_protocol_versions_mqtt_3_3_1_8() {
    let broker = Broker::start_default();
    let mut v5 = broker.client(V5, "pub5");
    v5.publish_retained("x/from5", b"five", qos(0));
    v5.ping();
    let mut v311 = broker.client(V311, "pub311");
    v311.publish_retained("x/from311", b"three", qos(0));
    v311.ping();
    let mut sub = broker.client(V311, "sub311");
    sub.subscribe_one("x/from5", qos(0));
    sub.expect_publish(0x31, "x/from5", b"five");
    let mut sub = broker.client(V5, "sub5");
    sub.subscribe_one("x/from311", qos(0));
    sub.expect_publish(0x31, "x/from311", b"three");
}
