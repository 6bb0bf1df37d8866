//! Conformance: PUBLISH statements of MQTT 3.1.1 and 5.0 that the other suites do not
//! cover: the 5.0 message properties a server forwards unaltered (PUBLISH and will), a
//! message reaching every matching session (online and offline), and a byte order mark in a
//! topic name kept as it is, and Topic Aliases beyond the Topic Alias Maximum refused.

pub mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use ringmq::protocol::{ProtocolVersion, Publish, PublishProperties, UserProperty};

const QUIET: Duration = Duration::from_millis(200);

fn user(name: &str, value: &str) -> UserProperty {
    UserProperty {
        name: mqtt_str(name),
        value: mqtt_str(value),
    }
}

/// Every property a publisher may give an Application Message, with user properties whose
/// names repeat and whose order matters, and correlation data that is not text.
fn message_properties() -> PublishProperties {
    PublishProperties {
        payload_format_indicator: Some(true),
        content_type: Some(mqtt_str("text/plain; charset=utf-8")),
        response_topic: Some(topic("reply/to/me")),
        correlation_data: Some(Bytes::from_static(b"\x00\x01\xfe\xff corr")),
        user_properties: vec![
            user("b", "2"),
            user("a", "1"),
            user("b", "1"),
            user("", ""),
            user("k\u{e9}y", "v\u{e4}lue"),
        ],
        ..Default::default()
    }
}

/// `p` carries exactly `want`'s message properties (no alias or identifiers on these).
fn assert_properties(p: &Publish, want: &PublishProperties, who: &str) {
    let got = &p.properties;
    assert_eq!(
        got.payload_format_indicator, want.payload_format_indicator,
        "{who}: Payload Format Indicator"
    );
    assert_eq!(got.content_type, want.content_type, "{who}: Content Type");
    assert_eq!(
        got.response_topic, want.response_topic,
        "{who}: Response Topic"
    );
    assert_eq!(
        got.correlation_data, want.correlation_data,
        "{who}: Correlation Data"
    );
    assert_eq!(
        got.user_properties, want.user_properties,
        "{who}: User Properties (all, in order)"
    );
}

// (5.0) The server forwards the message's properties unaltered to every subscriber: the
// Payload Format Indicator [MQTT-3.3.2-4], the Response Topic [MQTT-3.3.2-15], the
// Correlation Data [MQTT-3.3.2-16], the Content Type [MQTT-3.3.2-20], and all User
// Properties [MQTT-3.3.2-17] in their order [MQTT-3.3.2-18]; whatever QoS each subscriber
// gets it at, and to a later subscriber of the retained message too.
#[test]
fn message_properties_forwarded_unaltered_v5_mqtt_3_3_2_17() {
    let broker = Broker::start_default();
    let mut at0 = broker.client(V5, "props-0");
    at0.subscribe_one("props/t", qos(0));
    let mut at2 = broker.client(V5, "props-2");
    at2.subscribe_one("props/+", qos(2));
    let mut publisher = broker.client(V5, "props-pub");
    let want = message_properties();
    let mut p = publish("props/t", b"with properties", qos(1), 1);
    p.properties = want.clone();
    p.retain = true;
    publisher.publish_packet(p);
    for (who, c) in [
        ("QoS 0 subscriber", &mut at0),
        ("QoS 2 subscriber", &mut at2),
    ] {
        let got = c.recv_message();
        assert_eq!(text(&got), "with properties");
        assert_properties(&got, &want, who);
    }
    let mut late = broker.client(V5, "props-late");
    late.subscribe_one("props/t", qos(1));
    let got = late.recv_message();
    assert!(got.retain);
    assert_properties(&got, &want, "retained message");
}

// [MQTT-3.1.3-10] (5.0) The server keeps the order of the will's User Properties when it
// publishes the will; the will's other properties (Payload Format Indicator, Content Type,
// Response Topic, Correlation Data) go with it too.
#[test]
fn will_properties_forwarded_in_order_v5_mqtt_3_1_3_10() {
    let broker = Broker::start_default();
    let mut watcher = broker.client(V5, "will-watch");
    watcher.subscribe_one("will/props", qos(1));
    let want = message_properties();
    let mut c = connect(V5, "will-props");
    let mut w = will("will/props", b"gone", qos(1), false);
    w.properties.payload_format_indicator = want.payload_format_indicator;
    w.properties.content_type = want.content_type.clone();
    w.properties.response_topic = want.response_topic.clone();
    w.properties.correlation_data = want.correlation_data.clone();
    w.properties.user_properties = want.user_properties.clone();
    c.will = Some(w);
    Client::connect(broker.addr(), c)
        .into_raw()
        .drop_connection();
    let got = watcher.recv_message();
    assert_eq!(message(&got), ("will/props".to_owned(), "gone".to_owned()));
    assert_properties(&got, &want, "will");
}

// [MQTT-4.5.0-1] A message the server takes ownership of is added to the session of every
// client with a matching subscription: a connected one, one whose persistent session is
// offline (it gets the message when it resumes), and one matching through a wildcard; a
// session without a matching subscription gets nothing.
fn check_added_to_matching_sessions(v: ProtocolVersion) {
    let broker = Broker::with_shards(4);
    let mut offline = Client::connect(broker.addr(), connect_persistent(v, "own-offline"));
    offline.subscribe_one("own/t", qos(1));
    offline.disconnect();
    let mut online = broker.client(v, "own-online");
    online.subscribe_one("own/t", qos(1));
    let mut wild = broker.client(v, "own-wild");
    wild.subscribe_one("own/#", qos(1));
    let mut other = broker.client(v, "own-other");
    other.subscribe(&[("own/u", qos(1)), ("fence/end", qos(1))]);
    let mut publisher = broker.client(v, "own-pub");
    publisher.publish("own/t", b"owned", qos(1));
    publisher.publish("fence/end", b"fence", qos(1));
    for (who, c) in [("online", &mut online), ("wildcard", &mut wild)] {
        assert_eq!(text(&c.recv_message()), "owned", "{who}");
    }
    assert_eq!(text(&other.recv_message()), "fence", "no match, no message");
    other.expect_nothing(QUIET);
    let mut offline = Client::connect(broker.addr(), connect_persistent(v, "own-offline"));
    assert_eq!(text(&offline.recv_message()), "owned", "offline session");
}
test_versions!(check_added_to_matching_sessions => message_added_to_every_matching_session_v311_mqtt_4_5_0_1,
    message_added_to_every_matching_session_v5_mqtt_4_5_0_1);

// A UTF-8 byte order mark (EF BB BF) in a topic is U+FEFF and is neither skipped nor
// stripped ([MQTT-1.5.3-3] (3.1.1), [MQTT-1.5.4-3] (5.0)): a message to "\u{feff}bom/t"
// reaches the filter with the BOM, byte for byte, and not the filter without it.
fn check_bom_kept(v: ProtocolVersion) {
    let broker = Broker::start_default();
    let mut with = broker.client(v, "bom-with");
    with.subscribe_one("\u{feff}bom/t", qos(0));
    let mut without = broker.client(v, "bom-without");
    without.subscribe(&[("bom/t", qos(0)), ("fence/end", qos(0))]);
    let mut publisher = broker.client(v, "bom-pub");
    publisher.publish("\u{feff}bom/t", b"marked", qos(1));
    publisher.publish("fence/end", b"fence", qos(1));
    with.expect_publish(0x30, "\u{feff}bom/t", b"marked");
    without.expect_publish(0x30, "fence/end", b"fence");
    without.expect_nothing(QUIET);
}
test_versions!(check_bom_kept => byte_order_mark_in_topic_kept_v311_mqtt_1_5_3_3,
    byte_order_mark_in_topic_kept_v5_mqtt_1_5_4_3);

/// A broker that lets a v5 client set `max` topic aliases.
fn alias_broker(max: u16) -> Broker {
    Broker::start(BrokerOptions::default().config(
        &format!("[limits]\ntopic_alias_max = {max}"),
        &format!("max_topic_alias {max}"),
    ))
}

/// A QoS 0 PUBLISH to `topic_name` with Topic Alias `alias`.
fn aliased(topic_name: &str, alias: u16) -> Publish {
    let mut p = publish(topic_name, b"aliased", qos(0), 0);
    p.properties.topic_alias = std::num::NonZeroU16::new(alias);
    p
}

// [MQTT-3.2.2-17] (5.0) A client must not send a Topic Alias above the Topic Alias Maximum
// in the CONNACK: the server advertises 4, accepts 4, and answers 5 with DISCONNECT 0x94
// (Topic Alias invalid) and the close.
#[test]
fn topic_alias_above_connack_maximum_refused_v5_mqtt_3_2_2_17() {
    let broker = alias_broker(4);
    let mut c = broker.client(V5, "alias-4");
    assert_eq!(c.connack.properties.topic_alias_maximum, Some(4));
    c.send_mqtt(&ringmq::protocol::Packet::Publish(aliased("al/t", 4)));
    c.ping();
    c.send_mqtt(&ringmq::protocol::Packet::Publish(aliased("al/t", 5)));
    let mut raw = c.into_raw();
    raw.expect_disconnect(0x94);
    raw.expect_closed(Duration::from_secs(5));
}

// [MQTT-3.2.2-18] (5.0) With Topic Alias Maximum absent or 0 in the CONNACK, a client must
// send no Topic Alias: a server configured for no aliases says so and answers a PUBLISH with
// Topic Alias 1 with DISCONNECT 0x94 and the close.
#[test]
fn topic_alias_refused_when_maximum_is_zero_v5_mqtt_3_2_2_18() {
    let broker = alias_broker(0);
    let mut c = broker.client(V5, "alias-0");
    assert!(
        matches!(c.connack.properties.topic_alias_maximum, None | Some(0)),
        "CONNACK Topic Alias Maximum: {:?}",
        c.connack.properties.topic_alias_maximum
    );
    c.send_mqtt(&ringmq::protocol::Packet::Publish(aliased("al/t", 1)));
    let mut raw = c.into_raw();
    raw.expect_disconnect(0x94);
    raw.expect_closed(Duration::from_secs(5));
}

// [MQTT-3.3.2-5] (5.0) A retained message whose Message Expiry Interval has passed is not
// sent to a new subscription; [MQTT-3.3.2-6] (5.0) one still alive is sent with its
// interval less the time it waited (2 s here).
#[test]
fn retained_messages_expire_v5_mqtt_3_3_2_5() {
    let broker = Broker::start_default();
    let mut publisher = broker.client(V5, "rexp-pub");
    for (topic_name, secs) in [("rexp/short", 1), ("rexp/long", 100)] {
        let mut p = publish(topic_name, topic_name.as_bytes(), qos(1), 1);
        p.retain = true;
        p.properties.message_expiry_interval = Some(secs);
        publisher.publish_packet(p);
    }
    std::thread::sleep(Duration::from_millis(2000));
    let mut sub = broker.client(V5, "rexp-sub");
    sub.subscribe_one("rexp/+", qos(1));
    let p = sub.recv_message();
    assert_eq!((text(&p).as_str(), p.retain), ("rexp/long", true));
    let left = p.properties.message_expiry_interval;
    assert!(
        left.is_some_and(|s| (96..=98).contains(&s)),
        "Message Expiry Interval left after 2 s of 100: {left:?}"
    );
    sub.expect_nothing(QUIET);
}

// [MQTT-4.7.3-3] A topic name and a topic filter may take up to 65,535 bytes, the most a
// two-byte length can say: with `limits.topic_bytes_max` at its top, a subscription to a
// filter of 65,535 bytes gets the message published to the topic of the same 65,535 bytes,
// delivered with the whole name.
fn check_longest_topic(v: ProtocolVersion) {
    let broker =
        Broker::start(BrokerOptions::default().config("[limits]\ntopic_bytes_max = 65535", ""));
    let name = "t".repeat(65_535);
    let mut sub = broker.client(v, "long-topic-sub");
    sub.subscribe_one(&name, qos(1));
    let mut publisher = broker.client(v, "long-topic-pub");
    publisher.publish(&name, b"at the limit", qos(1));
    let p = sub.recv_message();
    assert_eq!(p.topic.as_str().len(), 65_535);
    assert_eq!(p.topic.as_str(), name);
    assert_eq!(text(&p), "at the limit");
    sub.expect_nothing(QUIET);
}
test_versions!(check_longest_topic => longest_topic_name_and_filter_v311_mqtt_4_7_3_3,
    longest_topic_name_and_filter_v5_mqtt_4_7_3_3);
