//! UNSUBSCRIBE and UNSUBACK (sections 3.10, 3.11). A v3 UNSUBACK is only a packet id; a v5
//! one has properties and a reason code per filter.

use bytes::{BufMut, BytesMut};

use super::super::error::{DecodeError, EncodeError};
use super::super::primitives::{put_string, Reader};
use super::super::properties::{AckProperties, UnsubscribeProperties};
use super::super::reason::ReasonCode;
use super::super::topic::TopicFilter;
use super::super::{PacketId, PacketType, ProtocolVersion};
use super::{read_packet_id, read_reason};

/// A request to remove subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: PacketId,
    pub properties: UnsubscribeProperties,
    /// At least one [MQTT-3.10.3-2].
    pub filters: Vec<TopicFilter>,
}

impl Unsubscribe {
    pub(crate) fn decode(mut r: Reader, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(&mut r)?;
        let properties = match v {
            ProtocolVersion::V5 => UnsubscribeProperties::decode(&mut r, PacketType::Unsubscribe)?,
            _ => UnsubscribeProperties::default(),
        };
        let mut filters = Vec::new();
        while !r.is_empty() {
            filters.push(TopicFilter::new(r.string("topic filter")?)?);
        }
        if filters.is_empty() {
            return Err(DecodeError::NoTopicFilters(PacketType::Unsubscribe));
        }
        Ok(Unsubscribe {
            packet_id,
            properties,
            filters,
        })
    }

    pub(crate) fn body_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::Empty("UNSUBSCRIBE topic filters"));
        }
        let props = match v {
            ProtocolVersion::V5 => self.properties.encoded_len()?,
            _ => 0,
        };
        Ok(2 + props + self.filters.iter().map(|f| 2 + f.len()).sum::<usize>())
    }

    pub(crate) fn write(&self, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u16(self.packet_id.get());
        if v.is_v5() {
            self.properties.encode(buf)?;
        }
        for f in &self.filters {
            put_string(buf, f.as_mqtt_str());
        }
        Ok(())
    }
}

/// The answer to UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: PacketId,
    /// v5 only.
    pub properties: AckProperties,
    /// One per filter in v5; empty on v3 connections, whose UNSUBACK has no payload.
    pub reasons: Vec<ReasonCode>,
}

impl UnsubAck {
    pub(crate) fn decode(mut r: Reader, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(&mut r)?;
        let mut ack = UnsubAck {
            packet_id,
            properties: AckProperties::default(),
            reasons: Vec::new(),
        };
        if v.is_v5() {
            ack.properties = AckProperties::decode(&mut r, PacketType::UnsubAck)?;
            while !r.is_empty() {
                ack.reasons.push(read_reason(&mut r, PacketType::UnsubAck)?);
            }
        }
        r.finish()?;
        Ok(ack)
    }

    pub(crate) fn body_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        Ok(match v {
            ProtocolVersion::V5 => 2 + self.properties.encoded_len()? + self.reasons.len(),
            _ => 2,
        })
    }

    pub(crate) fn write(&self, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u16(self.packet_id.get());
        if v.is_v5() {
            self.properties.encode(buf)?;
            for r in &self.reasons {
                buf.put_u8(r.value());
            }
        }
        Ok(())
    }
}
