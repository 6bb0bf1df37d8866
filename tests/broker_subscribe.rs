//! SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK and topic matching against a running broker.
//!
//! "Not delivered" is shown without sleeping where possible: after the message that must not
//! arrive, the same publisher sends a fence message the subscriber does match; ringmq and
//! Mosquitto both keep one publisher's messages in order on their way to one subscriber, so
//! the fence arriving first (and nothing after it) means the other was not delivered.

pub mod common;

use std::time::Duration;

use common::*;
use ringmq::protocol::{Packet, ProtocolVersion, QoS};

const QUIET: Duration = Duration::from_millis(200);

/// Publishes `topics` then the fence; the subscriber must receive exactly `expected`, in
/// order, then the fence, then nothing.
fn expect_only(sub: &mut Client, publisher: &mut Client, topics: &[&str], expected: &[&str]) {
    for t in topics {
        publisher.publish(t, t.as_bytes(), qos(1));
    }
    publisher.publish("fence/end", b"fence/end", qos(1));
    for want in expected {
        let got = sub.recv_message();
        assert_eq!(got.topic.as_str(), *want, "expected {want:?}, got {got:?}");
    }
    let got = sub.recv_message();
    assert_eq!(
        got.topic.as_str(),
        "fence/end",
        "delivered although it does not match: {got:?}"
    );
    sub.expect_nothing(QUIET);
}

fn subscriber(broker: &Broker, v: ProtocolVersion, filters: &[&str]) -> Client {
    let mut sub = broker.client(v, "sub");
    let mut all: Vec<(&str, QoS)> = filters.iter().map(|f| (*f, qos(1))).collect();
    all.push(("fence/end", qos(1)));
    sub.subscribe(&all);
    sub
}

// [MQTT-3.8.4-1], [MQTT-3.8.4-2], [MQTT-3.8.4-5] (3.1.1): one SUBACK for a SUBSCRIBE of
// three filters, same packet id, the granted QoS per filter in order [MQTT-3.9.3-1]:
// exactly `90 05 00 0a 00 01 02`. The SUBACK carries the SUBSCRIBE's packet id [MQTT-2.3.1-7].
#[test]
fn suback_grants_requested_qos_in_order_v311_mqtt_3_8_4_5() {
    let broker = Broker::start_default();
    let mut c = broker.client(V311, "sub").into_raw();
    c.send_packet(
        &Packet::Subscribe(subscribe(
            10,
            &[("m/0", qos(0)), ("m/1", qos(1)), ("m/2", qos(2))],
        )),
        V311,
    );
    c.expect_bytes("90 05 00 0a 00 01 02");
}

// [MQTT-3.8.4-6] / [MQTT-3.8.4-7] (5.0) The same with a property length of 0: one SUBACK
// [MQTT-3.8.4-1], same packet id [MQTT-3.8.4-2], the granted QoS per filter in order
// [MQTT-3.9.3-1]: exactly `90 06 00 0a 00 00 01 02`. The SUBACK carries the SUBSCRIBE's
// packet id [MQTT-2.2.1-6] and one Subscribe Reason Code (here the granted QoS) per filter
// [MQTT-3.9.3-2].
#[test]
fn suback_grants_requested_qos_in_order_v5_mqtt_3_8_4_7() {
    let broker = Broker::start_default();
    let mut c = broker.client(V5, "sub").into_raw();
    c.send_packet(
        &Packet::Subscribe(subscribe(
            10,
            &[("m/0", qos(0)), ("m/1", qos(1)), ("m/2", qos(2))],
        )),
        V5,
    );
    c.expect_bytes("90 06 00 0a 00 00 01 02");
}

// Section 4.7.1.3: `+` matches exactly one level, an empty one included. Each matching
// message is delivered [MQTT-4.5.0-1], and only those: the topic name sent matches the
// filter [MQTT-3.3.2-3]. (MQTT-4.7.1-3 in 3.1.1, MQTT-4.7.1-2 in 5.0, is the filter syntax
// rule the client must follow, which codec_validation checks.)
fn check_single_level(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = subscriber(&broker, v, &["s/+/x", "+"]);
    let mut publisher = broker.client(v, "pub");
    expect_only(
        &mut sub,
        &mut publisher,
        &["s/a/x", "s//x", "s/a/b/x", "s/x", "s/a/x/y", "top", "/top"],
        &["s/a/x", "s//x", "top"],
    );
}
test_versions!(check_single_level => single_level_wildcard_matches_one_level_v311_mqtt_4_7_1_3,
    single_level_wildcard_matches_one_level_v5_mqtt_4_7_1_2);

// Section 4.7.1.2: `m/#` matches `m` itself and every level below, nothing beside it. Each
// matching message is delivered [MQTT-4.5.0-1], and only those [MQTT-3.3.2-3]. (MQTT-4.7.1-2
// in 3.1.1, MQTT-4.7.1-1 in 5.0, is the filter syntax rule, which codec_validation checks.)
fn check_multi_level(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = subscriber(&broker, v, &["m/#"]);
    let mut publisher = broker.client(v, "pub");
    expect_only(
        &mut sub,
        &mut publisher,
        &["m", "m/a", "m/a/b/c", "m/", "mm/a", "x/m/a"],
        &["m", "m/a", "m/a/b/c", "m/"],
    );
}
test_versions!(check_multi_level => multi_level_wildcard_matches_parent_and_children_v311_mqtt_4_7_1_2,
    multi_level_wildcard_matches_parent_and_children_v5_mqtt_4_7_1_1);

// [MQTT-4.7.2-1] Filters starting with a wildcard do not match topics starting with `$`;
// filters starting with `$` do.
fn check_dollar_topics(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut wild = subscriber(&broker, v, &["#", "+/d"]);
    let mut dollar = broker.client(v, "dollar");
    dollar.subscribe(&[("$x/#", qos(1)), ("$y/+", qos(1))]);
    let mut publisher = broker.client(v, "pub");
    for t in ["$x/d", "$y/d", "x/d"] {
        publisher.publish(t, t.as_bytes(), qos(1));
    }
    publisher.publish("fence/end", b"fence/end", qos(1));
    // `#` matches x/d and the fence; `+/d` matches x/d too, at most one more copy of it.
    let mut got = Vec::new();
    loop {
        let p = wild.recv_message();
        got.push(p.topic.as_str().to_owned());
        if p.topic.as_str() == "fence/end" {
            break;
        }
    }
    assert!(
        got.iter().all(|t| !t.starts_with('$')),
        "a `$` topic matched a filter starting with a wildcard: {got:?}"
    );
    assert!(
        got.contains(&"x/d".to_owned()),
        "x/d not delivered: {got:?}"
    );
    assert_eq!(message(&dollar.recv_message()).0, "$x/d");
    assert_eq!(message(&dollar.recv_message()).0, "$y/d");
    dollar.expect_nothing(QUIET);
}
test_versions!(check_dollar_topics => dollar_topics_not_matched_by_leading_wildcards_v311_mqtt_4_7_2_1,
    dollar_topics_not_matched_by_leading_wildcards_v5_mqtt_4_7_2_1);

// [MQTT-4.7.3-4] Matching is byte for byte: no case folding, no normalisation.
fn check_no_normalisation(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = subscriber(&broker, v, &["Case/T", "caf\u{e9}"]);
    let mut publisher = broker.client(v, "pub");
    expect_only(
        &mut sub,
        &mut publisher,
        &[
            "case/t",
            "CASE/T",
            "Case/T",
            "cafe\u{301}",
            "caf\u{e9}",
            "Case/T/",
        ],
        &["Case/T", "caf\u{e9}"],
    );
}
test_versions!(check_no_normalisation => topic_matching_is_exact_v311_mqtt_4_7_3_4,
    topic_matching_is_exact_v5_mqtt_4_7_3_4);

// [MQTT-3.8.4-3] A SUBSCRIBE with a filter the session already has replaces that
// subscription: the new QoS applies, and a message is still delivered once.
fn check_resubscribe(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = broker.client(v, "sub");
    sub.subscribe_one("r/t", qos(0));
    sub.subscribe_one("r/t", qos(2));
    let mut publisher = broker.client(v, "pub");
    publisher.publish("r/t", b"x", qos(2));
    let got = sub.recv_message();
    assert_eq!(got.qos, qos(2), "the replacing subscription's QoS applies");
    sub.expect_nothing(QUIET);
}
test_versions!(check_resubscribe => resubscribe_replaces_subscription_v311_mqtt_3_8_4_3,
    resubscribe_replaces_subscription_v5_mqtt_3_8_4_3);

// Overlapping subscriptions (3.1.1): one message matching three of a client's filters is
// delivered once. (The spec allows extra copies; ringmq promises one, and Mosquitto 2.0.11
// also sends one to a 3.1.1 client.)
#[test]
fn overlapping_subscriptions_delivered_once_v311() {
    let broker = Broker::start_default();
    let mut sub = broker.client(V311, "sub");
    sub.subscribe(&[
        ("o/#", qos(0)),
        ("o/+", qos(1)),
        ("o/x", qos(1)),
        ("fence/end", qos(1)),
    ]);
    let mut publisher = broker.client(V311, "pub");
    expect_only(&mut sub, &mut publisher, &["o/x"], &["o/x"]);
}

// [MQTT-3.3.5-1] (3.1.1) A message matching several of a client's subscriptions is delivered
// respecting the maximum QoS of them all: once (above), at QoS 2 here.
#[test]
fn overlapping_subscriptions_use_max_qos_v311_mqtt_3_3_5_1_ringmq_only() {
    if skip_unless_ringmq(
        "mosquitto 2.0.11 delivers one copy at the QoS of the first subscription it matches \
         (o/x -> QoS 1 here), not the maximum",
    ) {
        return;
    }
    let broker = Broker::start_default();
    let mut sub = broker.client(V311, "sub");
    sub.subscribe(&[("o/#", qos(0)), ("o/+", qos(2)), ("o/x", qos(1))]);
    let mut publisher = broker.client(V311, "pub");
    publisher.publish("o/x", b"max", qos(2));
    let got = sub.recv_message();
    assert_eq!(got.qos, qos(2), "maximum QoS of the matching subscriptions");
    sub.expect_nothing(QUIET);
}

// [MQTT-3.3.4-2] (5.0) A message matching several subscriptions is delivered respecting the
// maximum QoS: whether one copy or one per subscription, a copy at QoS 2 arrives, and no
// more copies than matching subscriptions.
#[test]
fn overlapping_subscriptions_respect_max_qos_v5_mqtt_3_3_4_2() {
    let broker = Broker::start_default();
    let mut sub = broker.client(V5, "sub");
    sub.subscribe(&[
        ("o/#", qos(0)),
        ("o/+", qos(2)),
        ("o/x", qos(1)),
        ("fence/end", qos(1)),
    ]);
    let mut publisher = broker.client(V5, "pub");
    publisher.publish("o/x", b"max", qos(2));
    publisher.publish("fence/end", b"fence/end", qos(1));
    let mut copies = Vec::new();
    loop {
        let p = sub.recv_message();
        if p.topic.as_str() == "fence/end" {
            break;
        }
        copies.push(p.qos);
    }
    assert!(
        (1..=3).contains(&copies.len()),
        "copies delivered: {copies:?}"
    );
    assert!(copies.contains(&qos(2)), "no copy at QoS 2: {copies:?}");
    sub.expect_nothing(QUIET);
}

// [MQTT-3.10.4-4] (3.1.1) UNSUBSCRIBE gets UNSUBACK with its packet id, exactly
// `b0 02 00 0b`, and [MQTT-3.10.4-2] no more messages for that filter are delivered. The
// UNSUBACK carries the UNSUBSCRIBE's packet id [MQTT-2.3.1-7].
#[test]
fn unsubscribe_gets_unsuback_and_stops_delivery_v311_mqtt_3_10_4_4() {
    let broker = Broker::start_default();
    let mut sub = subscriber(&broker, V311, &["u/t"]);
    let mut publisher = broker.client(V311, "pub");
    expect_only(&mut sub, &mut publisher, &["u/t"], &["u/t"]);
    sub.send_mqtt(&Packet::Unsubscribe(unsubscribe(11, &["u/t"])));
    sub.expect_bytes("b0 02 00 0b");
    expect_only(&mut sub, &mut publisher, &["u/t"], &[]);
}

// [MQTT-3.10.4-4] / [MQTT-3.10.4-5] (5.0) UNSUBACK with the packet id, an empty property
// block and 0x00 for the removed subscription: exactly `b0 04 00 0b 00 00`. The packet id
// is the UNSUBSCRIBE's [MQTT-2.2.1-6] and the payload one Unsubscribe Reason Code per
// filter [MQTT-3.11.3-2].
#[test]
fn unsubscribe_gets_unsuback_and_stops_delivery_v5_mqtt_3_10_4_4() {
    let broker = Broker::start_default();
    let mut sub = subscriber(&broker, V5, &["u/t"]);
    let mut publisher = broker.client(V5, "pub");
    expect_only(&mut sub, &mut publisher, &["u/t"], &["u/t"]);
    sub.send_mqtt(&Packet::Unsubscribe(unsubscribe(11, &["u/t"])));
    sub.expect_bytes("b0 04 00 0b 00 00");
    expect_only(&mut sub, &mut publisher, &["u/t"], &[]);
}

// [MQTT-3.10.4-5] (3.1.1) Even when nothing was unsubscribed, the server answers UNSUBACK:
// exactly `b0 02 00 0c`.
#[test]
fn unsubscribe_of_unknown_filter_still_gets_unsuback_v311_mqtt_3_10_4_5() {
    let broker = Broker::start_default();
    let mut c = broker.client(V311, "sub").into_raw();
    c.send_packet(
        &Packet::Unsubscribe(unsubscribe(12, &["never/subscribed"])),
        V311,
    );
    c.expect_bytes("b0 02 00 0c");
}

// [MQTT-3.10.4-5] (5.0) The same; the reason code is 0x11 (No subscription existed) or 0x00:
// `b0 04 00 0c 00 11` or `b0 04 00 0c 00 00`.
#[test]
fn unsubscribe_of_unknown_filter_still_gets_unsuback_v5_mqtt_3_10_4_5() {
    let broker = Broker::start_default();
    let mut c = broker.client(V5, "sub").into_raw();
    c.send_packet(
        &Packet::Unsubscribe(unsubscribe(12, &["never/subscribed"])),
        V5,
    );
    let got = to_hex(&c.recv_raw());
    assert!(
        got == "b0 04 00 0c 00 11" || got == "b0 04 00 0c 00 00",
        "UNSUBACK: {got}"
    );
}

// [MQTT-3.10.4-1] Filters are compared character by character: unsubscribing `u/+` does not
// remove `u/x`, and unsubscribing `u/x` does not remove `u/+`.
fn check_unsubscribe_literal(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = subscriber(&broker, v, &["a/x", "b/+"]);
    sub.unsubscribe(&["a/+", "b/x"]);
    let mut publisher = broker.client(v, "pub");
    expect_only(&mut sub, &mut publisher, &["a/x", "b/x"], &["a/x", "b/x"]);
}
test_versions!(check_unsubscribe_literal => unsubscribe_compares_filters_literally_v311_mqtt_3_10_4_1,
    unsubscribe_compares_filters_literally_v5_mqtt_3_10_4_1);

// [MQTT-3.10.4-6] An UNSUBSCRIBE of several filters is one UNSUBACK (3.1.1:
// `b0 02 00 0d`; 5.0: one reason code per filter, `b0 05 00 0d 00 00 00`) and removes each.
fn check_unsubscribe_many(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = subscriber(&broker, v, &["x/1", "x/2", "x/3"]);
    sub.send_mqtt(&Packet::Unsubscribe(unsubscribe(13, &["x/1", "x/2"])));
    sub.expect_bytes(if v.is_v5() {
        "b0 05 00 0d 00 00 00"
    } else {
        "b0 02 00 0d"
    });
    let mut publisher = broker.client(v, "pub");
    expect_only(&mut sub, &mut publisher, &["x/1", "x/2", "x/3"], &["x/3"]);
}
test_versions!(check_unsubscribe_many => unsubscribe_many_filters_one_unsuback_v311_mqtt_3_10_4_6,
    unsubscribe_many_filters_one_unsuback_v5_mqtt_3_10_4_6);

// [MQTT-3.3.2-3] The topic name the subscriber receives is the published topic name (which
// matches its filter), not the filter.
fn check_topic_name_delivered(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut sub = broker.client(v, "sub");
    sub.subscribe_one("t/+/z/#", qos(0));
    let mut publisher = broker.client(v, "pub");
    publisher.publish("t/y/z/1/2", b"p", qos(0));
    sub.expect_publish(0x30, "t/y/z/1/2", b"p");
}
test_versions!(check_topic_name_delivered => delivered_topic_name_is_the_published_one_v311_mqtt_3_3_2_3,
    delivered_topic_name_is_the_published_one_v5_mqtt_3_3_2_3);
