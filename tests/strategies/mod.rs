//! Proptest strategies for the MQTT codec: valid packets of every type for every protocol
//! version, and the strings, topic names, topic filters and properties they are built from.
//!
//! "Valid" means valid for the version the packet is generated for: what a conforming peer
//! of that version may send. So v3 packets carry no properties and only v3 reason codes, a v3
//! CONNECT with a password also has a user name, no SUBSCRIBE sets No Local on a shared
//! filter, strings never hold U+0000, and topics and filters follow section 4.7.
//!
//! Used from test files with `mod strategies;`.

// Each test file uses only some of these.
#![allow(dead_code)]

use std::fmt::Debug;
use std::num::{NonZeroU16, NonZeroU32};
use std::ops::RangeInclusive;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use ringmq::protocol::{
    Ack, AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect,
    ConnectProperties, Disconnect, DisconnectProperties, MqttString, Packet, PacketId, PacketType,
    ProtocolVersion, Publish, PublishProperties, QoS, ReasonCode, RetainHandling, SubAck,
    Subscribe, SubscribeProperties, Subscription, SubscriptionId, SubscriptionOptions, TopicFilter,
    TopicName, UnsubAck, Unsubscribe, UnsubscribeProperties, UserProperty, Will, WillProperties,
};

/// The largest PUBLISH payload [`packet`] generates.
pub const MAX_PAYLOAD: usize = 2048;

pub fn version() -> impl Strategy<Value = ProtocolVersion> {
    select(ProtocolVersion::ALL.to_vec())
}

// ---------------------------------------------------------------------------------------
// Numbers, with the boundaries the wire formats care about.

fn u16_edges() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => any::<u16>(),
        1 => select(vec![0, 1, 127, 128, 255, 256, u16::MAX - 1, u16::MAX]),
    ]
}

fn u32_edges() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => any::<u32>(),
        1 => select(vec![0, 1, 127, 128, 16_383, 16_384, 65_535, 65_536, u32::MAX]),
    ]
}

fn nonzero_u16() -> impl Strategy<Value = NonZeroU16> {
    u16_edges().prop_map(|v| NonZeroU16::new(v.max(1)).expect("max(1) is non-zero"))
}

fn nonzero_u32() -> impl Strategy<Value = NonZeroU32> {
    u32_edges().prop_map(|v| NonZeroU32::new(v.max(1)).expect("max(1) is non-zero"))
}

pub fn packet_id() -> impl Strategy<Value = PacketId> {
    u16_edges().prop_map(|v| PacketId::new(v.max(1)).expect("max(1) is non-zero"))
}

/// 1 to 268,435,455, with every Variable Byte Integer length boundary.
pub fn subscription_id() -> impl Strategy<Value = SubscriptionId> {
    prop_oneof![
        1 => select(vec![
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            SubscriptionId::MAX,
        ]),
        2 => 1..=SubscriptionId::MAX,
    ]
    .prop_map(|v| SubscriptionId::new(v).expect("in 1..=MAX"))
}

pub fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn retain_handling() -> impl Strategy<Value = RetainHandling> {
    select(vec![
        RetainHandling::SendAtSubscribe,
        RetainHandling::SendIfNew,
        RetainHandling::DoNotSend,
    ])
}

// ---------------------------------------------------------------------------------------
// Strings, topic names and topic filters.

/// Any Unicode scalar value but U+0000 (surrogates are not `char`s), mostly ASCII, often at
/// the edges of the UTF-8 lengths, sometimes a BOM.
pub fn mqtt_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range('\u{1}', '\u{7F}'),
        2 => any::<char>().prop_map(|c| if c == '\0' { '\u{1}' } else { c }),
        1 => select(vec![
            '\u{1}', '\u{7F}', '\u{80}', '\u{7FF}', '\u{800}', '\u{D7FF}', '\u{E000}',
            '\u{FEFF}', '\u{FFFF}', '\u{10000}', '\u{10FFFF}', 'é', 'ü', '日', '🦀',
        ]),
    ]
}

fn text(
    chars: impl Strategy<Value = char> + 'static,
    len: RangeInclusive<usize>,
) -> BoxedStrategy<String> {
    vec(chars, len)
        .prop_map(|cs| cs.into_iter().collect::<String>())
        .boxed()
}

fn mqtt(s: impl AsRef<str>) -> MqttString {
    MqttString::try_from(s.as_ref()).expect("generated string is a valid MQTT string")
}

/// A UTF-8 Encoded String of up to `max_chars` characters.
pub fn mqtt_string(max_chars: usize) -> impl Strategy<Value = MqttString> {
    text(mqtt_char(), 0..=max_chars).prop_map(mqtt)
}

/// A character allowed inside one topic level: anything but `/`, `+`, `#` and U+0000.
fn level_char() -> impl Strategy<Value = char> {
    mqtt_char().prop_map(|c| match c {
        '/' | '+' | '#' => '_',
        c => c,
    })
}

fn level(len: RangeInclusive<usize>) -> BoxedStrategy<String> {
    text(level_char(), len)
}

/// A Topic Name: 1 to 6 levels, any of them empty, unicode, sometimes under a `$` prefix
/// (which includes names that merely look like shared subscriptions).
pub fn topic_name() -> impl Strategy<Value = TopicName> {
    let prefix = prop_oneof![
        6 => Just(""),
        1 => select(vec!["$SYS/", "$", "$share/g/", "$aws/things/", "$ünï/"]),
    ];
    let built = (prefix, vec(level(0..=8), 1..=6)).prop_map(|(prefix, levels)| {
        let s = format!("{prefix}{}", levels.join("/"));
        if s.is_empty() {
            "/".to_owned()
        } else {
            s
        }
    });
    let fixed = select(vec![
        "a",
        "/",
        "//",
        "a/b/c",
        "$SYS/broker/uptime",
        "日本/🦀",
    ])
    .prop_map(str::to_owned);
    prop_oneof![8 => built, 1 => fixed]
        .prop_map(|s| TopicName::try_from(s.as_str()).expect("generated topic name is valid"))
}

/// A non-shared filter: literal levels and `+` levels, maybe a final `#`.
fn plain_filter() -> impl Strategy<Value = String> {
    let lvl = prop_oneof![3 => level(0..=6), 1 => Just("+".to_owned())];
    let prefix = prop_oneof![6 => Just(""), 1 => select(vec!["$SYS/", "$/", "$ünï/"])];
    let built = (prefix, vec(lvl, 1..=5), proptest::bool::weighted(0.3)).prop_map(
        |(prefix, levels, hash)| {
            let mut s = format!("{prefix}{}", levels.join("/"));
            if hash {
                s.push_str(if s.is_empty() { "#" } else { "/#" });
            }
            if s.is_empty() {
                s.push('/');
            }
            // A first level that happens to read "$share" would make this a shared filter.
            if let Some(rest) = s.strip_prefix("$share/") {
                s = format!("$sharE/{rest}");
            }
            s
        },
    );
    let fixed = select(vec![
        "#",
        "+",
        "+/+",
        "+/#",
        "/#",
        "$SYS/#",
        "a/+/c",
        "sport/tennis/#",
    ])
    .prop_map(str::to_owned);
    prop_oneof![8 => built, 1 => fixed]
}

/// `$share/{name}/{filter}`.
fn shared_filter() -> impl Strategy<Value = String> {
    (level(1..=8), plain_filter()).prop_map(|(name, filter)| format!("$share/{name}/{filter}"))
}

/// A Topic Filter valid per section 4.7, a quarter of them shared subscriptions.
pub fn topic_filter() -> impl Strategy<Value = TopicFilter> {
    prop_oneof![3 => plain_filter(), 1 => shared_filter()]
        .prop_map(|s| TopicFilter::try_from(s.as_str()).expect("generated topic filter is valid"))
}

/// Binary data of up to `max` bytes, often empty or short.
pub fn binary(max: usize) -> impl Strategy<Value = Bytes> {
    prop_oneof![
        1 => Just(Bytes::new()),
        1 => vec(any::<u8>(), 0..=max.min(16)).prop_map(Bytes::from),
        2 => vec(any::<u8>(), 0..=max).prop_map(Bytes::from),
    ]
}

// ---------------------------------------------------------------------------------------
// Properties (MQTT 5.0 only).

/// A User Property; names come often from a small pool so that they repeat.
fn user_property() -> impl Strategy<Value = UserProperty> {
    let name = prop_oneof![
        2 => select(vec!["k", "key", "ünï", ""]).prop_map(mqtt),
        1 => mqtt_string(12),
    ];
    (name, mqtt_string(16)).prop_map(|(name, value)| UserProperty { name, value })
}

pub fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    vec(user_property(), 0..=4)
}

/// `Some` three times out of four.
fn maybe<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
    proptest::option::weighted(0.75, s)
}

/// Authentication Method and Data; Data only with a Method.
fn auth_method_and_data() -> impl Strategy<Value = (Option<MqttString>, Option<Bytes>)> {
    (maybe(mqtt_string(12)), maybe(binary(32))).prop_map(|(method, data)| {
        let data = if method.is_some() { data } else { None };
        (method, data)
    })
}

/// The empty property set a quarter of the time, `full` otherwise.
fn or_empty<T, S>(full: S) -> BoxedStrategy<T>
where
    T: Default + Clone + Debug + 'static,
    S: Strategy<Value = T> + 'static,
{
    prop_oneof![1 => Just(T::default()), 3 => full].boxed()
}

/// `props` on a v5 connection, the (only representable) empty set before.
fn v5_only<T, S>(v: ProtocolVersion, props: S) -> BoxedStrategy<T>
where
    T: Default + Clone + Debug + 'static,
    S: Strategy<Value = T> + 'static,
{
    if v.is_v5() {
        or_empty(props)
    } else {
        Just(T::default()).boxed()
    }
}

pub fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        maybe(u32_edges()),
        maybe(nonzero_u16()),
        maybe(nonzero_u32()),
        maybe(u16_edges()),
        maybe(any::<bool>()),
        maybe(any::<bool>()),
        user_properties(),
        auth_method_and_data(),
    )
        .prop_map(
            |(
                session_expiry_interval,
                receive_maximum,
                maximum_packet_size,
                topic_alias_maximum,
                request_response_information,
                request_problem_information,
                user_properties,
                (authentication_method, authentication_data),
            )| ConnectProperties {
                session_expiry_interval,
                receive_maximum,
                maximum_packet_size,
                topic_alias_maximum,
                request_response_information,
                request_problem_information,
                user_properties,
                authentication_method,
                authentication_data,
            },
        )
}

pub fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        maybe(u32_edges()),
        maybe(any::<bool>()),
        maybe(u32_edges()),
        maybe(mqtt_string(12)),
        maybe(topic_name()),
        maybe(binary(32)),
        user_properties(),
    )
        .prop_map(
            |(
                will_delay_interval,
                payload_format_indicator,
                message_expiry_interval,
                content_type,
                response_topic,
                correlation_data,
                user_properties,
            )| WillProperties {
                will_delay_interval,
                payload_format_indicator,
                message_expiry_interval,
                content_type,
                response_topic,
                correlation_data,
                user_properties,
            },
        )
}

pub fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let first = (
        maybe(u32_edges()),
        maybe(nonzero_u16()),
        // Maximum QoS is 0 or 1: a server with QoS 2 leaves the property out.
        maybe(select(vec![QoS::AtMostOnce, QoS::AtLeastOnce])),
        maybe(any::<bool>()),
        maybe(nonzero_u32()),
        maybe(mqtt_string(23)),
        maybe(u16_edges()),
        maybe(mqtt_string(16)),
    );
    let second = (
        user_properties(),
        maybe(any::<bool>()),
        maybe(any::<bool>()),
        maybe(any::<bool>()),
        maybe(u16_edges()),
        maybe(mqtt_string(16)),
        maybe(mqtt_string(16)),
        auth_method_and_data(),
    );
    (first, second).prop_map(
        |(
            (
                session_expiry_interval,
                receive_maximum,
                maximum_qos,
                retain_available,
                maximum_packet_size,
                assigned_client_identifier,
                topic_alias_maximum,
                reason_string,
            ),
            (
                user_properties,
                wildcard_subscription_available,
                subscription_identifiers_available,
                shared_subscription_available,
                server_keep_alive,
                response_information,
                server_reference,
                (authentication_method, authentication_data),
            ),
        )| ConnAckProperties {
            session_expiry_interval,
            receive_maximum,
            maximum_qos,
            retain_available,
            maximum_packet_size,
            assigned_client_identifier,
            topic_alias_maximum,
            reason_string,
            user_properties,
            wildcard_subscription_available,
            subscription_identifiers_available,
            shared_subscription_available,
            server_keep_alive,
            response_information,
            server_reference,
            authentication_method,
            authentication_data,
        },
    )
}

pub fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        maybe(any::<bool>()),
        maybe(u32_edges()),
        maybe(nonzero_u16()),
        maybe(topic_name()),
        maybe(binary(32)),
        user_properties(),
        vec(subscription_id(), 0..=3),
        maybe(mqtt_string(12)),
    )
        .prop_map(
            |(
                payload_format_indicator,
                message_expiry_interval,
                topic_alias,
                response_topic,
                correlation_data,
                user_properties,
                subscription_identifiers,
                content_type,
            )| PublishProperties {
                payload_format_indicator,
                message_expiry_interval,
                topic_alias,
                response_topic,
                correlation_data,
                user_properties,
                subscription_identifiers,
                content_type,
            },
        )
}

pub fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (maybe(mqtt_string(16)), user_properties()).prop_map(|(reason_string, user_properties)| {
        AckProperties {
            reason_string,
            user_properties,
        }
    })
}

pub fn subscribe_properties() -> impl Strategy<Value = SubscribeProperties> {
    (maybe(subscription_id()), user_properties()).prop_map(
        |(subscription_identifier, user_properties)| SubscribeProperties {
            subscription_identifier,
            user_properties,
        },
    )
}

pub fn unsubscribe_properties() -> impl Strategy<Value = UnsubscribeProperties> {
    user_properties().prop_map(|user_properties| UnsubscribeProperties { user_properties })
}

pub fn disconnect_properties() -> impl Strategy<Value = DisconnectProperties> {
    (
        maybe(u32_edges()),
        maybe(mqtt_string(16)),
        user_properties(),
        maybe(mqtt_string(16)),
    )
        .prop_map(
            |(session_expiry_interval, reason_string, user_properties, server_reference)| {
                DisconnectProperties {
                    session_expiry_interval,
                    reason_string,
                    user_properties,
                    server_reference,
                }
            },
        )
}

pub fn auth_properties() -> impl Strategy<Value = AuthProperties> {
    (
        auth_method_and_data(),
        maybe(mqtt_string(16)),
        user_properties(),
    )
        .prop_map(
            |((authentication_method, authentication_data), reason_string, user_properties)| {
                AuthProperties {
                    authentication_method,
                    authentication_data,
                    reason_string,
                    user_properties,
                }
            },
        )
}

// ---------------------------------------------------------------------------------------
// Reason codes.

/// A v5 reason code `packet` may carry.
pub fn reason_in(packet: PacketType) -> impl Strategy<Value = ReasonCode> {
    select(ReasonCode::allowed_in(packet).to_vec())
}

/// The six codes a v3 CONNACK return code (0 to 5) decodes to.
pub fn v3_connack_reason() -> impl Strategy<Value = ReasonCode> {
    (0u8..=5).prop_map(|c| ReasonCode::from_v3_connack(c).expect("0 to 5 are v3 return codes"))
}

/// The four results a v3 SUBACK can carry.
pub fn v3_suback_reason() -> impl Strategy<Value = ReasonCode> {
    select(vec![
        ReasonCode::Success,
        ReasonCode::GrantedQoS1,
        ReasonCode::GrantedQoS2,
        ReasonCode::UnspecifiedError,
    ])
}

// ---------------------------------------------------------------------------------------
// Packets.

fn will(v: ProtocolVersion, max_payload: usize) -> impl Strategy<Value = Will> {
    (
        topic_name(),
        binary(max_payload.min(256)),
        qos(),
        any::<bool>(),
        v5_only(v, will_properties()),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        })
}

/// A CONNECT in version `v`; in v3 a password always comes with a user name.
pub fn connect(v: ProtocolVersion, max_payload: usize) -> impl Strategy<Value = Connect> {
    (
        any::<bool>(),
        u16_edges(),
        mqtt_string(23),
        proptest::option::of(will(v, max_payload)),
        proptest::option::of(mqtt_string(16)),
        proptest::option::of(binary(64)),
        mqtt_string(16),
        v5_only(v, connect_properties()),
    )
        .prop_map(
            move |(
                clean_start,
                keep_alive,
                client_id,
                will,
                username,
                password,
                fallback_username,
                properties,
            )| {
                let username = match (&username, &password) {
                    (None, Some(_)) if !v.is_v5() => Some(fallback_username),
                    _ => username,
                };
                Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }
            },
        )
}

/// A CONNACK: v3 with a v3 return code (Session Present only on 3.1.1, only on success);
/// v5 with any CONNACK reason code and properties.
pub fn connack(v: ProtocolVersion) -> impl Strategy<Value = ConnAck> {
    let reason = if v.is_v5() {
        reason_in(PacketType::ConnAck).boxed()
    } else {
        v3_connack_reason().boxed()
    };
    (any::<bool>(), reason, v5_only(v, connack_properties())).prop_map(
        move |(session_present, reason, properties)| ConnAck {
            session_present: session_present
                && reason == ReasonCode::Success
                && v != ProtocolVersion::V3_1,
            reason,
            properties,
        },
    )
}

/// A PUBLISH: packet id iff QoS > 0, DUP only with QoS > 0; in v5 sometimes with an empty
/// topic and a Topic Alias.
pub fn publish(v: ProtocolVersion, max_payload: usize) -> impl Strategy<Value = Publish> {
    (
        (qos(), any::<bool>(), any::<bool>(), packet_id()),
        topic_name(),
        v5_only(v, publish_properties()),
        binary(max_payload),
        (proptest::bool::weighted(0.2), nonzero_u16()),
    )
        .prop_map(
            move |((qos, dup, retain, id), topic, mut properties, payload, (alias_only, alias))| {
                let packet_id = (qos != QoS::AtMostOnce).then_some(id);
                let topic = if alias_only && v.is_v5() {
                    properties.topic_alias.get_or_insert(alias);
                    TopicName::EMPTY
                } else {
                    topic
                };
                Publish {
                    dup: dup && packet_id.is_some(),
                    qos,
                    retain,
                    topic,
                    packet_id,
                    properties,
                    payload,
                }
            },
        )
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP (`packet`) in version `v`.
pub fn ack(packet: PacketType, v: ProtocolVersion) -> impl Strategy<Value = Ack> {
    let reason = if v.is_v5() {
        reason_in(packet).boxed()
    } else {
        Just(ReasonCode::Success).boxed()
    };
    (packet_id(), reason, v5_only(v, ack_properties())).prop_map(
        |(packet_id, reason, properties)| Ack {
            packet_id,
            reason,
            properties,
        },
    )
}

/// One filter with options: only the QoS before v5; in v5 every option, but never No Local
/// on a shared subscription [MQTT-3.8.3-4].
pub fn subscription(v: ProtocolVersion) -> impl Strategy<Value = Subscription> {
    (
        topic_filter(),
        qos(),
        any::<bool>(),
        any::<bool>(),
        retain_handling(),
    )
        .prop_map(
            move |(filter, qos, no_local, retain_as_published, retain_handling)| {
                let options = if v.is_v5() {
                    SubscriptionOptions {
                        qos,
                        no_local: no_local && filter.shared().is_none(),
                        retain_as_published,
                        retain_handling,
                    }
                } else {
                    SubscriptionOptions {
                        qos,
                        ..SubscriptionOptions::default()
                    }
                };
                Subscription { filter, options }
            },
        )
}

pub fn subscribe(v: ProtocolVersion) -> impl Strategy<Value = Subscribe> {
    (
        packet_id(),
        v5_only(v, subscribe_properties()),
        vec(subscription(v), 1..=8),
    )
        .prop_map(|(packet_id, properties, subscriptions)| Subscribe {
            packet_id,
            properties,
            subscriptions,
        })
}

pub fn suback(v: ProtocolVersion) -> impl Strategy<Value = SubAck> {
    let reason = if v.is_v5() {
        reason_in(PacketType::SubAck).boxed()
    } else {
        v3_suback_reason().boxed()
    };
    (
        packet_id(),
        v5_only(v, ack_properties()),
        vec(reason, 1..=8),
    )
        .prop_map(|(packet_id, properties, reasons)| SubAck {
            packet_id,
            properties,
            reasons,
        })
}

pub fn unsubscribe(v: ProtocolVersion) -> impl Strategy<Value = Unsubscribe> {
    (
        packet_id(),
        v5_only(v, unsubscribe_properties()),
        vec(topic_filter(), 1..=8),
    )
        .prop_map(|(packet_id, properties, filters)| Unsubscribe {
            packet_id,
            properties,
            filters,
        })
}

/// An UNSUBACK: v3 has only the packet id; v5 one reason code per filter and properties.
pub fn unsuback(v: ProtocolVersion) -> impl Strategy<Value = UnsubAck> {
    let reasons = if v.is_v5() {
        vec(reason_in(PacketType::UnsubAck), 1..=8).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (packet_id(), v5_only(v, ack_properties()), reasons).prop_map(
        |(packet_id, properties, reasons)| UnsubAck {
            packet_id,
            properties,
            reasons,
        },
    )
}

/// A DISCONNECT: the default in v3; any DISCONNECT reason code and properties in v5.
pub fn disconnect(v: ProtocolVersion) -> BoxedStrategy<Disconnect> {
    if !v.is_v5() {
        return Just(Disconnect::default()).boxed();
    }
    (
        reason_in(PacketType::Disconnect),
        or_empty(disconnect_properties()),
    )
        .prop_map(|(reason, properties)| Disconnect { reason, properties })
        .boxed()
}

/// An AUTH (MQTT 5.0 only).
pub fn auth() -> impl Strategy<Value = Auth> {
    (reason_in(PacketType::Auth), or_empty(auth_properties())).prop_map(
        |(reason, mut properties)| {
            // Continue / Re-authenticate must carry a method [MQTT-4.12.0-5].
            if reason != ReasonCode::Success && properties.authentication_method.is_none() {
                properties.authentication_method =
                    Some(MqttString::from_static("SCRAM-SHA-256").unwrap());
            }
            Auth { reason, properties }
        },
    )
}

/// Any packet valid in version `v`, PUBLISH payloads up to [`MAX_PAYLOAD`] bytes.
pub fn packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    packet_with_payload(v, MAX_PAYLOAD)
}

/// Any packet valid in version `v`, PUBLISH payloads up to `max_payload` bytes.
pub fn packet_with_payload(v: ProtocolVersion, max_payload: usize) -> BoxedStrategy<Packet> {
    let ack_of = |t: PacketType, wrap: fn(Ack) -> Packet| ack(t, v).prop_map(wrap).boxed();
    let mut choices: Vec<(u32, BoxedStrategy<Packet>)> = vec![
        (
            2,
            connect(v, max_payload)
                .prop_map(|c| Packet::Connect(Box::new(c)))
                .boxed(),
        ),
        (
            1,
            connack(v)
                .prop_map(|c| Packet::ConnAck(Box::new(c)))
                .boxed(),
        ),
        (4, publish(v, max_payload).prop_map(Packet::Publish).boxed()),
        (1, ack_of(PacketType::PubAck, Packet::PubAck)),
        (1, ack_of(PacketType::PubRec, Packet::PubRec)),
        (1, ack_of(PacketType::PubRel, Packet::PubRel)),
        (1, ack_of(PacketType::PubComp, Packet::PubComp)),
        (2, subscribe(v).prop_map(Packet::Subscribe).boxed()),
        (1, suback(v).prop_map(Packet::SubAck).boxed()),
        (1, unsubscribe(v).prop_map(Packet::Unsubscribe).boxed()),
        (1, unsuback(v).prop_map(Packet::UnsubAck).boxed()),
        (1, Just(Packet::PingReq).boxed()),
        (1, Just(Packet::PingResp).boxed()),
        (1, disconnect(v).prop_map(Packet::Disconnect).boxed()),
    ];
    if v.is_v5() {
        choices.push((1, auth().prop_map(Packet::Auth).boxed()));
    }
    Union::new_weighted(choices).boxed()
}

/// A version and a packet valid in it.
pub fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    versioned_packet_with_payload(MAX_PAYLOAD)
}

/// A version and a packet valid in it, PUBLISH payloads up to `max_payload` bytes.
pub fn versioned_packet_with_payload(
    max_payload: usize,
) -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    let per_version: Vec<_> = ProtocolVersion::ALL
        .iter()
        .map(|&v| {
            packet_with_payload(v, max_payload)
                .prop_map(move |p| (v, p))
                .boxed()
        })
        .collect();
    Union::new(per_version)
}
