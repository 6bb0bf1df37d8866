//! Conformance: SUBSCRIBE and UNSUBSCRIBE statements of MQTT 3.1.1 and 5.0 that the other
//! suites do not cover: a SUBSCRIBE of several filters handled as several SUBSCRIBEs, the
//! order of UNSUBACK reason codes, deliveries already started when a subscription goes, and
//! the 5.0 subscription options (No Local, Retain As Published, Retain Handling) and
//! Subscription Identifiers.
//!
//! "Not delivered" is shown with a fence: after the message that must not arrive, the same
//! publisher sends one the subscriber does match; it arriving next (and nothing after it)
//! means the other was not delivered.

pub mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use ringmq::protocol::{
    Ack, Packet, ProtocolVersion, Publish, QoS, RetainHandling, SubAck, SubscriptionId,
    SubscriptionOptions,
};

const QUIET: Duration = Duration::from_millis(200);

/// SUBSCRIBE to one filter with `options` and, when given, a Subscription Identifier; the
/// SUBACK must grant the requested QoS.
fn subscribe_with(
    c: &mut Client,
    filter_text: &str,
    options: SubscriptionOptions,
    id: Option<u32>,
) {
    let packet_id = c.next_packet_id();
    let mut s = subscribe(packet_id, &[(filter_text, options.qos)]);
    s.subscriptions[0].options = options;
    s.properties.subscription_identifier = id.map(|n| SubscriptionId::new(n).expect("id > 0"));
    c.send_mqtt(&Packet::Subscribe(s));
    let ack = suback(c);
    assert_eq!(ack.packet_id.get(), packet_id);
    assert_eq!(
        ack.reasons.iter().map(|r| *r as u8).collect::<Vec<_>>(),
        [options.qos as u8],
        "SUBACK for {filter_text:?}"
    );
}

fn suback(c: &mut Client) -> SubAck {
    match c.recv_matching("SUBACK", |p| matches!(p, Packet::SubAck(_))) {
        Packet::SubAck(s) => s,
        _ => unreachable!(),
    }
}

fn options(q: u8) -> SubscriptionOptions {
    SubscriptionOptions {
        qos: qos(q),
        ..Default::default()
    }
}

/// The publisher sends the fence on `fence_topic`; the subscriber must get exactly
/// `expected` payloads (in order) before it, then nothing.
fn expect_then_fence(
    sub: &mut Client,
    publisher: &mut Client,
    fence_topic: &str,
    expected: &[&str],
) {
    publisher.publish(fence_topic, b"fence", qos(1));
    for want in expected {
        let p = sub.recv_message();
        assert_eq!(text(&p), *want, "{p:?}");
    }
    let p = sub.recv_message();
    assert_eq!(text(&p), "fence", "expected the fence, got {p:?}");
    sub.expect_nothing(QUIET);
}

// [MQTT-3.8.3-3] (5.0) With No Local 1, a client's own messages are not sent back to it (a
// connection with the same client id), while other clients' messages on the same topic are;
// without No Local its own messages come back.
#[test]
fn no_local_suppresses_own_messages_v5_mqtt_3_8_3_3() {
    let broker = Broker::start_default();
    let mut me = broker.client(V5, "nl-me");
    subscribe_with(
        &mut me,
        "nl/quiet",
        SubscriptionOptions {
            no_local: true,
            ..options(1)
        },
        None,
    );
    me.subscribe_one("nl/loud", qos(1));
    me.publish("nl/quiet", b"mine, quiet", qos(1));
    me.publish("nl/loud", b"mine, loud", qos(1));
    let mut other = broker.client(V5, "nl-other");
    other.publish("nl/quiet", b"theirs", qos(1));
    // Order across the two publishers is not fixed; gather until both expected ones came.
    let mut got = BTreeSet::new();
    for _ in 0..2 {
        got.insert(text(&me.recv_message()));
    }
    assert_eq!(
        got,
        BTreeSet::from(["mine, loud".to_owned(), "theirs".to_owned()])
    );
    me.expect_nothing(QUIET);
    // A later connection with the same client id is the same "ClientID" for No Local.
    me.disconnect();
    let mut me = Client::connect(broker.addr(), connect_persistent(V5, "nl-kept"));
    subscribe_with(
        &mut me,
        "nl/kept",
        SubscriptionOptions {
            no_local: true,
            ..options(1)
        },
        None,
    );
    me.disconnect();
    let mut me = Client::connect(broker.addr(), connect_persistent(V5, "nl-kept"));
    me.publish("nl/kept", b"mine again", qos(1));
    me.subscribe_one("nl/fence", qos(1));
    let mut other = broker.client(V5, "nl-other");
    other.publish("nl/kept", b"theirs again", qos(1));
    expect_then_fence(&mut me, &mut other, "nl/fence", &["theirs again"]);
}

// [MQTT-3.3.1-13] (5.0) With Retain As Published 1, a message sent to an existing
// subscription keeps the RETAIN flag it was published with (`31` for a retained one, `30`
// for another); with Retain As Published 0 it is always 0 [MQTT-3.3.1-12] (5.0).
#[test]
fn retain_as_published_keeps_retain_flag_v5_mqtt_3_3_1_13() {
    let broker = Broker::start_default();
    let mut rap = broker.client(V5, "rap-1");
    subscribe_with(
        &mut rap,
        "rap/t",
        SubscriptionOptions {
            retain_as_published: true,
            ..options(0)
        },
        None,
    );
    let mut plain = broker.client(V5, "rap-0");
    plain.subscribe_one("rap/t", qos(0));
    let mut publisher = broker.client(V5, "rap-pub");
    publisher.publish_retained("rap/t", b"kept", qos(1));
    publisher.publish("rap/t", b"not kept", qos(1));
    rap.expect_publish(0x31, "rap/t", b"kept");
    rap.expect_publish(0x30, "rap/t", b"not kept");
    plain.expect_publish(0x30, "rap/t", b"kept");
    plain.expect_publish(0x30, "rap/t", b"not kept");
}

/// A subscriber `id` on `filter_text` with Retain Handling `rh`; it must get the retained
/// messages `expected` (RETAIN 1) and then the fence.
fn subscribe_expecting_retained(
    c: &mut Client,
    publisher: &mut Client,
    rh: RetainHandling,
    expected: &[&str],
) {
    subscribe_with(
        c,
        "rh/t",
        SubscriptionOptions {
            retain_handling: rh,
            ..options(1)
        },
        None,
    );
    for want in expected {
        let p = c.recv_message();
        assert_eq!((text(&p).as_str(), p.retain), (*want, true), "{p:?}");
    }
    expect_then_fence(c, publisher, "rh/t", &[]);
}

// [MQTT-3.3.1-10] (5.0) Retain Handling 1: the retained message is sent when the
// subscription is new, not when it replaces an existing one. [MQTT-3.3.1-11] (5.0) Retain
// Handling 2: it is never sent at subscribe.
#[test]
fn retain_handling_1_and_2_v5_mqtt_3_3_1_10() {
    let broker = Broker::start_default();
    let mut publisher = broker.client(V5, "rh-pub");
    publisher.publish_retained("rh/t", b"retained", qos(1));
    let mut c = broker.client(V5, "rh-1");
    subscribe_expecting_retained(
        &mut c,
        &mut publisher,
        RetainHandling::SendIfNew,
        &["retained"],
    );
    subscribe_expecting_retained(&mut c, &mut publisher, RetainHandling::SendIfNew, &[]);
    let mut c = broker.client(V5, "rh-2");
    subscribe_expecting_retained(&mut c, &mut publisher, RetainHandling::DoNotSend, &[]);
    subscribe_expecting_retained(&mut c, &mut publisher, RetainHandling::DoNotSend, &[]);
}

// [MQTT-3.8.4-4] (5.0) Retain Handling 0: subscribing again to a filter the session has
// sends the retained messages again, and messages are not lost to the replacement: a QoS 1
// message in flight when the subscription is replaced is still completed, and the new
// subscription delivers.
#[test]
fn resubscribe_with_retain_handling_0_resends_retained_v5_mqtt_3_8_4_4() {
    let broker = Broker::start_default();
    let mut publisher = broker.client(V5, "rh0-pub");
    publisher.publish_retained("rh/t", b"retained", qos(1));
    let mut c = broker.client(V5, "rh0");
    subscribe_expecting_retained(
        &mut c,
        &mut publisher,
        RetainHandling::SendAtSubscribe,
        &["retained"],
    );
    publisher.publish("rh/t", b"in flight", qos(1));
    let in_flight = c.recv_publish();
    assert_eq!(text(&in_flight), "in flight");
    subscribe_expecting_retained(
        &mut c,
        &mut publisher,
        RetainHandling::SendAtSubscribe,
        &["retained"],
    );
    c.send_mqtt(&Packet::PubAck(Ack::new(
        in_flight.packet_id.expect("QoS 1"),
    )));
    publisher.publish("rh/t", b"after", qos(1));
    assert_eq!(text(&c.recv_message()), "after");
    c.expect_nothing(QUIET);
}

/// The Subscription Identifiers of a PUBLISH, sorted.
fn ids(p: &Publish) -> Vec<u32> {
    let mut v: Vec<u32> = p
        .properties
        .subscription_identifiers
        .iter()
        .map(|i| i.get())
        .collect();
    v.sort_unstable();
    v
}

// A message matching several subscriptions of a client that gave them Subscription
// Identifiers carries those identifiers [MQTT-3.3.4-3] (5.0): one copy carries all of them
// [MQTT-3.3.4-4] (5.0), or each copy (one per subscription) carries its own
// [MQTT-3.3.4-5] (5.0). A subscription without an identifier adds none. A retained message
// sent for a new subscription carries that subscription's identifier.
#[test]
fn subscription_identifiers_of_matching_subscriptions_sent_v5_mqtt_3_3_4_3() {
    let broker = Broker::start_default();
    let mut c = broker.client(V5, "sid");
    subscribe_with(&mut c, "sid/+", options(1), Some(7));
    subscribe_with(&mut c, "sid/x", options(1), Some(268_435_455));
    subscribe_with(&mut c, "sido/t", options(1), Some(42));
    c.subscribe_one("fence/end", qos(1));
    let mut publisher = broker.client(V5, "sid-pub");
    publisher.publish("sid/x", b"both", qos(1));
    publisher.publish("sido/t", b"one", qos(1));
    publisher.publish("fence/end", b"fence", qos(1));
    let mut copies = Vec::new();
    loop {
        let p = c.recv_message();
        if p.topic.as_str() == "fence/end" {
            assert_eq!(ids(&p), Vec::<u32>::new(), "no identifier on that one");
            break;
        }
        copies.push(p);
    }
    let (both, rest): (Vec<_>, Vec<_>) = copies.iter().partition(|p| text(p) == "both");
    match both.as_slice() {
        [one] => assert_eq!(ids(one), [7, 268_435_455], "one copy: all identifiers"),
        [a, b] => {
            let mut each: Vec<Vec<u32>> = vec![ids(a), ids(b)];
            each.sort();
            assert_eq!(each, [vec![7], vec![268_435_455]], "a copy each: its own");
        }
        other => panic!("expected one or two copies, got {other:?}"),
    }
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(ids(rest[0]), [42]);

    publisher.publish_retained("sidr/t", b"retained", qos(1));
    subscribe_with(&mut c, "sidr/+", options(1), Some(99));
    let p = c.recv_message();
    assert_eq!(
        (text(&p).as_str(), p.retain, ids(&p)),
        ("retained", true, vec![99])
    );
}

// A SUBSCRIBE of several filters is handled as that many SUBSCRIBEs in a row, with one
// SUBACK ([MQTT-3.8.4-4] (3.1.1), [MQTT-3.8.4-5] (5.0)): the second of two identical filters
// replaces the first (the message comes once, at the second's QoS 0), and each filter gets
// its retained messages. The SUBACK [MQTT-3.8.4-1] has the SUBSCRIBE's packet identifier
// [MQTT-3.8.4-2] and one code per filter in the filters' order [MQTT-3.9.3-1].
fn check_subscribe_as_sequence(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut publisher = broker.client(v, "seq-pub");
    publisher.publish_retained("seq/a", b"retained a", qos(1));
    publisher.publish_retained("seq/b", b"retained b", qos(1));
    let mut c = broker.client(v, "seq");
    let ack = c.subscribe(&[
        ("seq/t", qos(2)),
        ("seq/a", qos(1)),
        ("seq/t", qos(0)),
        ("seq/b", qos(1)),
    ]);
    assert_eq!(
        ack.reasons.iter().map(|r| *r as u8).collect::<Vec<_>>(),
        [2, 1, 0, 1]
    );
    let mut retained = BTreeSet::new();
    for _ in 0..2 {
        let p = c.recv_message();
        assert!(p.retain, "{p:?}");
        retained.insert(text(&p));
    }
    assert_eq!(
        retained,
        BTreeSet::from(["retained a".to_owned(), "retained b".to_owned()])
    );
    publisher.publish("seq/t", b"once", qos(2));
    let p = c.recv_message();
    assert_eq!((text(&p).as_str(), p.qos), ("once", QoS::AtMostOnce));
    c.expect_nothing(QUIET);
}
test_versions!(check_subscribe_as_sequence => subscribe_of_many_filters_is_a_sequence_v311_mqtt_3_8_4_4,
    subscribe_of_many_filters_is_a_sequence_v5_mqtt_3_8_4_5);

// [MQTT-3.11.3-1] (5.0) The UNSUBACK's reason codes follow the order of the filters: for
// an existing, a never-subscribed and another existing filter, 0x00, 0x11 (No subscription
// existed), 0x00: exactly `b0 06 00 05 00 00 11 00`.
#[test]
fn unsuback_reason_codes_in_filter_order_v5_mqtt_3_11_3_1() {
    let broker = Broker::start_default();
    let mut c = broker.client(V5, "unsub-order");
    c.subscribe(&[("uo/a", qos(0)), ("uo/c", qos(0))]);
    let mut c = c.into_raw();
    c.send_packet(
        &Packet::Unsubscribe(unsubscribe(5, &["uo/a", "uo/b", "uo/c"])),
        V5,
    );
    c.expect_bytes("b0 06 00 05 00 00 11 00");
}

// [MQTT-3.10.4-3] When a subscription is deleted, the server completes the QoS 1 and QoS 2
// deliveries it has started for it: after UNSUBSCRIBE, the subscriber's PUBREC for a QoS 2
// message still gets its PUBREL, and a QoS 1 message left unacknowledged is sent again
// (DUP 1) when the persistent session resumes.
fn check_delivery_completed_after_unsubscribe(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut c = Client::connect(broker.addr(), connect_persistent(v, "unsub-done"));
    c.subscribe(&[("ud/2", qos(2)), ("ud/1", qos(1))]);
    let mut publisher = broker.client(v, "ud-pub");
    publisher.publish("ud/2", b"two", qos(2));
    publisher.publish("ud/1", b"one", qos(1));
    let two = c.expect_publish(0x34, "ud/2", b"two").expect("QoS 2 id");
    let one = c.expect_publish(0x32, "ud/1", b"one");
    c.unsubscribe(&["ud/2", "ud/1"]);
    c.send(&hex(&format!("50 02 {}", id_hex(two))));
    c.expect_bytes(&format!("62 02 {}", id_hex(two)));
    c.send(&hex(&format!("70 02 {}", id_hex(two))));
    c.expect_nothing(QUIET);
    c.into_raw().drop_connection();

    let mut c = Client::connect(broker.addr(), connect_persistent(v, "unsub-done"));
    assert!(c.session_present());
    let raw = c.recv_raw();
    assert_eq!(
        to_hex(&raw),
        to_hex(&publish_bytes(v, 0x3a, "ud/1", one, b"one")),
        "the unacknowledged QoS 1 message, again with DUP 1"
    );
    c.ack_id(qos(1), one);
    publisher.publish("ud/1", b"unsubscribed", qos(1));
    c.expect_nothing(QUIET);
}
test_versions!(check_delivery_completed_after_unsubscribe => started_deliveries_completed_after_unsubscribe_v311_mqtt_3_10_4_3,
    started_deliveries_completed_after_unsubscribe_v5_mqtt_3_10_4_3);

/// A persistent v5 session "opts" subscribed to `opts/t` with No Local, Retain As Published
/// and Subscription Identifier 9, then disconnected.
fn park_subscription_with_options(broker: &Broker) {
    let mut c = Client::connect(broker.addr(), connect_persistent(V5, "opts"));
    subscribe_with(
        &mut c,
        "opts/t",
        SubscriptionOptions {
            no_local: true,
            retain_as_published: true,
            ..options(1)
        },
        Some(9),
    );
    c.disconnect();
}

/// The resumed session "opts" still applies its options: its own message is not sent back
/// [MQTT-3.8.3-3] (5.0), another client's retained message keeps RETAIN 1
/// [MQTT-3.3.1-13] (5.0), and carries Subscription Identifier 9 [MQTT-3.3.4-3] (5.0).
fn expect_options_applied(broker: &Broker) {
    let mut c = Client::connect(broker.addr(), connect_persistent(V5, "opts"));
    assert!(c.session_present());
    c.publish("opts/t", b"own", qos(1));
    let mut other = broker.client(V5, "opts-other");
    other.publish_retained("opts/t", b"theirs", qos(1));
    let p = c.recv_message();
    assert_eq!(
        (text(&p).as_str(), p.retain, ids(&p)),
        ("theirs", true, vec![9]),
        "{p:?}"
    );
    c.expect_nothing(QUIET);
}

// The subscription options and the Subscription Identifier are part of the session: they
// apply after the session resumes ([MQTT-3.8.3-3] (5.0), [MQTT-3.3.1-13] (5.0),
// [MQTT-3.3.4-3] (5.0)).
#[test]
fn subscription_options_kept_in_session_v5_mqtt_3_3_4_3() {
    let broker = Broker::start_default();
    park_subscription_with_options(&broker);
    expect_options_applied(&broker);
}

// The same after ringmq restarts: the stored session keeps the options and the
// identifier ([MQTT-3.8.3-3] (5.0), [MQTT-3.3.1-13] (5.0), [MQTT-3.3.4-3] (5.0)).
#[test]
fn subscription_options_kept_across_restart_v5_mqtt_3_3_4_3_ringmq_only() {
    if skip_unless_ringmq("the harness runs Mosquitto without persistence") {
        return;
    }
    let mut broker = Broker::start_default();
    park_subscription_with_options(&broker);
    broker.stop();
    broker.restart();
    expect_options_applied(&broker);
}

// A SUBSCRIBE that replaces a subscription replaces its Subscription Identifier too
// ([MQTT-3.8.4-3] (5.0)): messages then carry the new identifier [MQTT-3.3.4-3] (5.0), and
// none once a replacement comes without one.
#[test]
fn resubscribe_replaces_subscription_identifier_v5_mqtt_3_8_4_3() {
    let broker = Broker::start_default();
    let mut c = broker.client(V5, "sid-re");
    let mut publisher = broker.client(V5, "sid-re-pub");
    for (id, want) in [(Some(3), vec![3]), (Some(4), vec![4]), (None, vec![])] {
        subscribe_with(&mut c, "sre/t", options(1), id);
        publisher.publish("sre/t", b"x", qos(1));
        let p = c.recv_message();
        assert_eq!(ids(&p), want, "after SUBSCRIBE with identifier {id:?}");
        c.expect_nothing(QUIET);
    }
}

/// The retained messages a new client gets right after subscribing to `filter_text` (their
/// topics, sorted), shown complete by a fence on `fence/end` published afterwards.
fn retained_for(broker: &Broker, v: ProtocolVersion, filter_text: &str) -> Vec<String> {
    let mut sub = broker.client(v, "rm-sub");
    sub.subscribe(&[("fence/end", qos(1)), (filter_text, qos(1))]);
    let mut fence = broker.client(v, "fencer");
    fence.publish("fence/end", b"fence", qos(1));
    let mut got = Vec::new();
    loop {
        let p = sub.recv_message();
        if p.topic.as_str() == "fence/end" {
            break;
        }
        assert!(p.retain, "{p:?}");
        got.push(p.topic.as_str().to_owned());
    }
    got.sort();
    got
}

// Retained messages sent for a new subscription are those of every matching topic
// ([MQTT-3.3.1-6] (3.1.1), [MQTT-3.3.1-9] (5.0)) by the same matching rules as live ones: a
// filter starting with a wildcard matches no `$` topic [MQTT-4.7.2-1]; `#` matches its
// parent level ([MQTT-4.7.1-2] (3.1.1), [MQTT-4.7.1-1] (5.0)); `+` matches an empty level
// ([MQTT-4.7.1-3] (3.1.1), [MQTT-4.7.1-2] (5.0)).
fn check_retained_matching(v: ProtocolVersion) {
    let broker = Broker::with_shards(4);
    let mut publisher = broker.client(v, "rm-pub");
    for t in ["$rm/t", "rm", "rm/a", "rm/a/b", "/x", "rmx"] {
        publisher.publish_retained(t, t.as_bytes(), qos(1));
    }
    let all_but_dollar = retained_for(&broker, v, "#");
    assert!(
        all_but_dollar.iter().all(|t| !t.starts_with('$')),
        "`#` got a `$` topic: {all_but_dollar:?}"
    );
    for t in ["rm", "rm/a", "rm/a/b", "/x", "rmx"] {
        assert!(all_but_dollar.contains(&t.to_owned()), "`#` missed {t}");
    }
    assert_eq!(retained_for(&broker, v, "+/t"), Vec::<String>::new());
    assert_eq!(retained_for(&broker, v, "$rm/#"), ["$rm/t"]);
    assert_eq!(retained_for(&broker, v, "rm/#"), ["rm", "rm/a", "rm/a/b"]);
    assert_eq!(retained_for(&broker, v, "+/x"), ["/x"]);
    assert_eq!(retained_for(&broker, v, "rm/+"), ["rm/a"]);
}
test_versions!(check_retained_matching => retained_messages_follow_matching_rules_v311_mqtt_4_7_2_1,
    retained_messages_follow_matching_rules_v5_mqtt_4_7_2_1);
