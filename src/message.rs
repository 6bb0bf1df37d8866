//! The Application Message as the broker routes it: what a PUBLISH carried, without the
//! fields that belong to one hop (packet id, DUP, topic alias, subscription identifiers).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::protocol::{Publish, PublishProperties, QoS, TopicName};

/// A message on its way to subscribers. Crosses shards by value (it is `Send`); within a
/// shard it is shared as `Rc<Message>` so fan-out copies nothing.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: TopicName,
    pub payload: Bytes,
    /// The QoS it was published with; each subscriber gets min(this, granted).
    pub qos: QoS,
    /// The RETAIN flag as published.
    pub retain: bool,
    /// v5 properties forwarded to subscribers (topic alias and subscription ids removed).
    pub properties: MessageProperties,
    /// The publishing client's id, for No Local.
    pub origin: Arc<str>,
    pub received_at: Instant,
}

impl Message {
    /// Takes the message out of a client's PUBLISH, whose topic alias is already resolved.
    pub fn from_publish(publish: Publish, origin: Arc<str>) -> Self {
        let mut properties = publish.properties;
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        Message {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties: properties.into(),
            origin,
            received_at: Instant::now(),
        }
    }

    /// A copy that owns its bytes, for messages kept long (retained, logged QoS 2): its
    /// topic, payload and properties decoded from a PUBLISH are views of the connection's
    /// read buffer, and one view kept would keep the whole buffer.
    pub fn detached(&self) -> Self {
        Message {
            topic: self.topic.detached(),
            payload: Bytes::copy_from_slice(&self.payload),
            properties: MessageProperties(
                self.properties.0.as_ref().map(|p| Box::new(p.detached())),
            ),
            origin: self.origin.clone(),
            ..*self
        }
    }

    /// Whether its v5 Message Expiry Interval has passed since it was received.
    pub fn is_expired(&self) -> bool {
        self.properties
            .message_expiry_interval
            .is_some_and(|secs| self.received_at.elapsed().as_secs() >= u64::from(secs))
    }

    /// Payload plus topic: what the byte quotas count.
    pub fn size_bytes(&self) -> usize {
        self.payload.len() + self.topic.len()
    }
}

impl crate::router::retained::Named for std::rc::Rc<Message> {
    fn name(&self) -> &str {
        self.topic.as_str()
    }
}

/// A message's v5 properties, boxed and only when it has some: most messages carry none,
/// and inline they would make every retained, queued and inflight message 150 bytes larger.
/// Reads as a [`PublishProperties`] (all unset when there are none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageProperties(Option<Box<PublishProperties>>);

/// What a message without properties reads as.
static NO_PROPERTIES: PublishProperties = PublishProperties {
    payload_format_indicator: None,
    message_expiry_interval: None,
    content_type: None,
    response_topic: None,
    correlation_data: None,
    subscription_identifiers: Vec::new(),
    topic_alias: None,
    user_properties: Vec::new(),
};

impl MessageProperties {
    /// An owned copy, to put in a PUBLISH.
    pub fn to_publish(&self) -> PublishProperties {
        self.0.as_deref().cloned().unwrap_or_default()
    }
}

impl From<PublishProperties> for MessageProperties {
    fn from(p: PublishProperties) -> Self {
        MessageProperties((!p.is_empty()).then(|| Box::new(p)))
    }
}

impl std::ops::Deref for MessageProperties {
    type Target = PublishProperties;
    fn deref(&self) -> &PublishProperties {
        self.0.as_deref().unwrap_or(&NO_PROPERTIES)
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use bytes::BytesMut;

    use super::*;
    use crate::protocol::{
        decode, Decoded, MqttString, Packet, PacketId, ProtocolVersion, UserProperty,
    };

    fn text(s: &str) -> MqttString {
        MqttString::try_from(s).expect("valid string")
    }

    /// The byte views a message holds: topic, payload and every string or binary property.
    fn views(m: &Message) -> Vec<(&'static str, *const u8)> {
        let p: &PublishProperties = &m.properties;
        let mut v = vec![
            ("topic", m.topic.as_bytes().as_ptr()),
            ("payload", m.payload.as_ptr()),
        ];
        v.extend(
            p.content_type
                .as_ref()
                .map(|c| ("content type", c.as_bytes().as_ptr())),
        );
        v.extend(
            p.response_topic
                .as_ref()
                .map(|t| ("response topic", t.as_bytes().as_ptr())),
        );
        v.extend(
            p.correlation_data
                .as_ref()
                .map(|d| ("correlation data", d.as_ptr())),
        );
        for u in &p.user_properties {
            v.push(("user property name", u.name.as_bytes().as_ptr()));
            v.push(("user property value", u.value.as_bytes().as_ptr()));
        }
        v
    }

    fn inside(range: &Range<*const u8>) -> impl Fn(&(&'static str, *const u8)) -> bool + '_ {
        move |(_, ptr)| range.contains(ptr)
    }

    /// A retained or logged message must not keep the connection's read buffer alive: a
    /// view of any part of it would keep every byte read with it.
    #[test]
    fn a_detached_message_holds_nothing_of_the_read_buffer() {
        let v5 = ProtocolVersion::V5;
        let mut publish = Publish::new(
            TopicName::try_from("sensors/kitchen/temp").expect("topic"),
            Bytes::from_static(b"21.5"),
        );
        publish.qos = QoS::AtLeastOnce;
        publish.packet_id = PacketId::new(7);
        publish.properties = PublishProperties {
            content_type: Some(text("text/plain")),
            response_topic: Some(TopicName::try_from("reply/here").expect("topic")),
            correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
            user_properties: vec![UserProperty {
                name: text("unit"),
                value: text("celsius"),
            }],
            ..Default::default()
        };
        let mut wire = BytesMut::new();
        Packet::Publish(publish)
            .encode(v5, &mut wire)
            .expect("encodes");
        let range = wire.as_ptr_range();
        let Ok(Decoded::Packet(Packet::Publish(decoded))) = decode(&mut wire, Some(v5), 1 << 20)
        else {
            panic!("the PUBLISH decodes");
        };
        let received = Message::from_publish(decoded, Arc::from("sensor-1"));
        // The control: as decoded, every view lies in the buffer.
        let decoded_views = views(&received);
        assert_eq!(decoded_views.len(), 7);
        assert!(
            decoded_views.iter().all(inside(&range)),
            "{decoded_views:?}"
        );

        let kept = received.detached();
        let held: Vec<_> = views(&kept).into_iter().filter(inside(&range)).collect();
        assert!(held.is_empty(), "still views of the read buffer: {held:?}");
        assert_eq!(kept.topic, received.topic);
        assert_eq!(kept.payload, received.payload);
        assert_eq!(kept.properties, received.properties);
        assert_eq!((kept.qos, kept.retain), (received.qos, received.retain));
    }

    #[test]
    fn properties_take_room_only_when_a_message_has_some() {
        let none = MessageProperties::from(PublishProperties::default());
        assert!(none.0.is_none());
        assert_eq!(*none, PublishProperties::default());
        assert_eq!(none.to_publish(), PublishProperties::default());
        let set = PublishProperties {
            message_expiry_interval: Some(60),
            content_type: Some(text("application/json")),
            ..Default::default()
        };
        let some = MessageProperties::from(set.clone());
        assert_eq!(some.message_expiry_interval, Some(60));
        assert_eq!(some.to_publish(), set);
        // Retained, queued and inflight messages are many: the properties stay out of line.
        assert!(
            std::mem::size_of::<Message>() <= 128,
            "Message is {} bytes",
            std::mem::size_of::<Message>()
        );
    }
}
