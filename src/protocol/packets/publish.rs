//! PUBLISH (section 3.3): DUP, QoS and RETAIN in the fixed header; topic name, packet id
//! (QoS 1 and 2 only [MQTT-2.2.1-2]), v5 properties, then the payload to the end.

use bytes::{BufMut, Bytes, BytesMut};

use super::super::error::{DecodeError, EncodeError};
use super::super::primitives::{put_string, Reader};
use super::super::properties::PublishProperties;
use super::super::topic::TopicName;
use super::super::{PacketId, PacketType, ProtocolVersion, QoS};
use super::read_packet_id;

/// An Application Message on its way.
///
/// # Invariants
/// `packet_id` is `Some` exactly when `qos` is 1 or 2; `topic` is empty only in a v5
/// PUBLISH that names its topic by `properties.topic_alias`. The decoder guarantees both;
/// the encoder refuses a packet that breaks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: TopicName,
    pub packet_id: Option<PacketId>,
    pub properties: PublishProperties,
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0 message with no properties.
    pub fn new(topic: TopicName, payload: Bytes) -> Self {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: None,
            properties: PublishProperties::default(),
            payload,
        }
    }

    pub(crate) fn decode(
        mut r: Reader,
        flags: u8,
        v: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQoS)?;
        let topic = r.string("topic name")?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            _ => Some(read_packet_id(&mut r)?),
        };
        let properties = match v {
            ProtocolVersion::V5 => PublishProperties::decode(&mut r, PacketType::Publish)?,
            _ => PublishProperties::default(),
        };
        let topic = if !topic.is_empty() {
            TopicName::new(topic)?
        } else if properties.topic_alias.is_some() {
            TopicName::EMPTY
        } else {
            return Err(DecodeError::MissingTopic);
        };
        Ok(Publish {
            dup: flags & 0b1000 != 0,
            qos,
            retain: flags & 0b0001 != 0,
            topic,
            packet_id,
            properties,
            payload: r.rest(),
        })
    }

    pub(crate) fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | ((self.qos as u8) << 1) | u8::from(self.retain)
    }

    pub(crate) fn body_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        if (self.qos == QoS::AtMostOnce) != self.packet_id.is_none() {
            return Err(EncodeError::PacketIdMismatch);
        }
        let v5 = v.is_v5();
        if self.topic.is_empty() && !(v5 && self.properties.topic_alias.is_some()) {
            return Err(EncodeError::MissingTopic);
        }
        let mut n = 2 + self.topic.len() + self.payload.len();
        if self.packet_id.is_some() {
            n += 2;
        }
        if v5 {
            n += self.properties.encoded_len()?;
        }
        Ok(n)
    }

    pub(crate) fn write(&self, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        put_string(buf, self.topic.as_mqtt_str());
        if let Some(id) = self.packet_id {
            buf.put_u16(id.get());
        }
        if v.is_v5() {
            self.properties.encode(buf)?;
        }
        buf.put_slice(&self.payload);
        Ok(())
    }
}
