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
