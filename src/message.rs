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
    pub properties: PublishProperties,
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
            properties,
            origin,
            received_at: Instant::now(),
        }
    }

    /// A copy that owns its bytes, for messages kept long (retained, queued): a slice of a
    /// connection's read buffer would otherwise pin the whole buffer.
    pub fn detached(&self) -> Self {
        let mut m = self.clone();
        m.payload = Bytes::copy_from_slice(&self.payload);
        m
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
