//! Topic aliases from client to server (MQTT 5.0 section 3.3.2.3.4): the broker advertises
//! `limits.topic_alias_max` as Topic Alias Maximum; a client sets an alias by sending a
//! topic name with it and then sends the alias alone; aliases belong to one connection.

pub mod common;

use std::num::NonZeroU16;
use std::time::Duration;

use common::*;
use ringmq::protocol::{Publish, QoS, TopicName};

const QUIET: Duration = Duration::from_millis(200);

/// A QoS 1 PUBLISH with `alias`, and the topic name or (empty) none.
fn aliased(topic_name: &str, alias: u16, payload: &str, id: u16) -> Publish {
    let mut p = if topic_name.is_empty() {
        let mut p = publish("x", payload.as_bytes(), QoS::AtLeastOnce, id);
        p.topic = TopicName::EMPTY;
        p
    } else {
        publish(topic_name, payload.as_bytes(), QoS::AtLeastOnce, id)
    };
    p.properties.topic_alias = NonZeroU16::new(alias);
    p
}

// [MQTT-3.3.2-12] (5.0): the server accepts every alias from 1 to the Topic Alias Maximum it
// sent in CONNACK: set with a topic name, then used alone; the subscriber sees the topic,
// and no alias (an alias belongs to one hop).
#[test]
fn an_alias_set_with_a_topic_name_stands_for_it_afterwards_mqtt_3_3_2_12() {
    let broker = Broker::start_default();
    let mut sub = broker.client(V5, "alias-sub");
    sub.subscribe_one("al/#", QoS::AtLeastOnce);
    let mut publisher = broker.client(V5, "alias-pub");
    let max = publisher.connack.properties.topic_alias_maximum;
    assert!(
        max.is_some_and(|m| m >= 2),
        "CONNACK advertises aliases: {max:?}"
    );
    publisher.publish_packet(aliased("al/one", 1, "set", 1));
    publisher.publish_packet(aliased("", 1, "used", 2));
    // Set again to another topic: the alias now stands for that one.
    publisher.publish_packet(aliased("al/two", 1, "moved", 3));
    publisher.publish_packet(aliased("", 1, "used again", 4));
    for (topic_name, payload) in [
        ("al/one", "set"),
        ("al/one", "used"),
        ("al/two", "moved"),
        ("al/two", "used again"),
    ] {
        let p = sub.recv_message();
        assert_eq!((p.topic.as_str(), text(&p).as_str()), (topic_name, payload));
        assert_eq!(
            p.properties.topic_alias, None,
            "an inbound alias is not forwarded"
        );
    }
    sub.expect_nothing(QUIET);
}

// [MQTT-3.3.2-9] (5.0), [MQTT-3.2.2-17] (5.0): an alias above the Topic Alias Maximum the
// server sent is a Topic Alias invalid error: DISCONNECT 0x94.
#[test]
fn an_alias_above_the_maximum_is_0x94_mqtt_3_3_2_9() {
    if skip_unless_ringmq("the limit is ringmq's configured maximum") {
        return;
    }
    let broker =
        Broker::start(BrokerOptions::default().config("[limits]\ntopic_alias_max = 4", ""));
    let mut c = broker.client(V5, "alias-over");
    assert_eq!(c.connack.properties.topic_alias_maximum, Some(4));
    c.send_mqtt(&ringmq::protocol::Packet::Publish(aliased(
        "al/t", 5, "x", 1,
    )));
    c.expect_disconnect(0x94);
}

// [MQTT-3.3.2-7] (5.0): aliases are not carried from one network connection to another: one set
// by another connection does not count here, and an alias used before this connection set
// it is a protocol error (0x82), not a guess.
#[test]
fn an_alias_never_set_on_this_connection_is_a_protocol_error_mqtt_3_3_2_7() {
    let broker = Broker::start_default();
    let mut first = broker.client(V5, "alias-a");
    first.publish_packet(aliased("al/t", 1, "set here", 1));
    let mut second = broker.client(V5, "alias-b");
    second.send_mqtt(&ringmq::protocol::Packet::Publish(aliased("", 1, "?", 1)));
    second.expect_disconnect(0x82);
}

/// A v5 subscriber that accepts `max` topic aliases from the server, subscribed to `ta/#`.
fn alias_accepting_subscriber(broker: &Broker, id: &str, max: u16) -> Client {
    let mut c = connect(V5, id);
    c.properties.topic_alias_maximum = Some(max);
    let mut sub = Client::connect(broker.addr(), c);
    sub.subscribe_one("ta/#", QoS::AtMostOnce);
    sub
}

// [MQTT-3.3.2-11] [MQTT-3.1.2-26] (5.0) Server to client: the broker names a topic it
// sends again by an alias, never one above the Topic Alias Maximum the client sent in
// CONNECT; once all are taken, other topics go by name (aliases are not reassigned). Exact
// bytes: QoS 0 PUBLISH, topic "ta/1" with Topic Alias (0x23) 1, then the alias alone
// with an empty topic name.
#[test]
fn the_server_names_repeated_topics_by_alias_within_the_clients_maximum_ringmq_only_v5_mqtt_3_3_2_11(
) {
    if skip_unless_ringmq("server-to-client topic aliases") {
        return;
    }
    let broker = Broker::start_default();
    let mut sub = alias_accepting_subscriber(&broker, "ta-sub", 2);
    let mut publisher = broker.client(V5, "ta-pub");
    publisher.publish("ta/1", b"a", QoS::AtMostOnce);
    publisher.publish("ta/1", b"b", QoS::AtMostOnce);
    sub.expect_bytes("30 0b 00 04 74 61 2f 31 03 23 00 01 61");
    sub.expect_bytes("30 07 00 00 03 23 00 01 62");
    for (t, payload) in [("ta/2", "c"), ("ta/1", "d"), ("ta/3", "e"), ("ta/3", "f")] {
        publisher.publish(t, payload.as_bytes(), QoS::AtMostOnce);
    }
    // (topic name sent, alias) for each.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let p = sub.recv_publish();
        let alias = p.properties.topic_alias.map_or(0, |a| a.get());
        assert!(alias <= 2, "alias {alias} within the client's maximum 2");
        seen.push((p.topic.as_str().to_owned(), alias, text(&p)));
    }
    assert_eq!(
        seen,
        [
            ("ta/2".to_owned(), 2, "c".to_owned()),
            (String::new(), 1, "d".to_owned()),
            // Both aliases taken: ta/3 goes by name, every time.
            ("ta/3".to_owned(), 0, "e".to_owned()),
            ("ta/3".to_owned(), 0, "f".to_owned()),
        ]
    );
    sub.expect_nothing(QUIET);
}

// Aliases belong to a connection: a resumed session's new connection gets the topic name
// again before any alias. And a client that accepts none gets none [MQTT-3.1.2-27] (5.0).
#[test]
fn server_aliases_start_afresh_on_each_connection_ringmq_only_v5() {
    if skip_unless_ringmq("server-to-client topic aliases") {
        return;
    }
    let broker = Broker::start_default();
    let mut sub = alias_accepting_subscriber(&broker, "ta-again", 4);
    let mut publisher = broker.client(V5, "ta-again-pub");
    publisher.publish("ta/x", b"1", QoS::AtMostOnce);
    let p = sub.recv_publish();
    assert_eq!(
        (p.topic.as_str(), p.properties.topic_alias.map(|a| a.get())),
        ("ta/x", Some(1))
    );
    sub.disconnect();
    let mut sub = alias_accepting_subscriber(&broker, "ta-again", 4);
    publisher.publish("ta/x", b"2", QoS::AtMostOnce);
    let p = sub.recv_publish();
    assert_eq!(
        (p.topic.as_str(), p.properties.topic_alias.map(|a| a.get())),
        ("ta/x", Some(1)),
        "the new connection learns the alias again"
    );
    let mut plain = broker.client(V5, "ta-none");
    plain.subscribe_one("ta/#", QoS::AtMostOnce);
    for _ in 0..3 {
        publisher.publish("ta/y", b"3", QoS::AtMostOnce);
        let p = plain.recv_publish();
        assert_eq!((p.topic.as_str(), p.properties.topic_alias), ("ta/y", None));
    }
}
