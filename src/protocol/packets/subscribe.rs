//! SUBSCRIBE and SUBACK (sections 3.8, 3.9): topic filters with subscription options, and
//! one result per filter.

use bytes::{BufMut, BytesMut};

use super::super::error::{DecodeError, EncodeError};
use super::super::primitives::{put_string, Reader};
use super::super::properties::{AckProperties, SubscribeProperties};
use super::super::reason::ReasonCode;
use super::super::topic::TopicFilter;
use super::super::{PacketId, PacketType, ProtocolVersion, QoS};
use super::{read_packet_id, read_reason};

/// A request for one or more subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: PacketId,
    pub properties: SubscribeProperties,
    /// At least one [MQTT-3.8.3-2].
    pub subscriptions: Vec<Subscription>,
}

/// One topic filter of a SUBSCRIBE and how to deliver what matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub filter: TopicFilter,
    pub options: SubscriptionOptions,
}

/// The subscription options byte. Only `qos` exists before v5; the other fields are then
/// at their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    /// The maximum QoS the subscriber wants.
    pub qos: QoS,
    /// Do not send the client its own publications [MQTT-3.8.3-3].
    pub no_local: bool,
    /// Keep the RETAIN flag as published instead of clearing it.
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

/// When retained messages are sent for a new subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// Send retained messages at every subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// Send them only if the subscription did not exist before.
    SendIfNew = 1,
    /// Never send them at subscribe.
    DoNotSend = 2,
}

const NO_LOCAL: u8 = 0x04;
const RETAIN_AS_PUBLISHED: u8 = 0x08;

impl SubscriptionOptions {
    fn decode(byte: u8, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let reserved = if v.is_v5() { 0xC0 } else { 0xFC };
        if byte & reserved != 0 {
            return Err(DecodeError::SubscriptionOptionsReserved);
        }
        // QoS 3 is malformed in 3.1.1 [MQTT-3.8.3-4] but a protocol error in 5.0.
        let qos = QoS::from_u8(byte & 0b11).ok_or(if v.is_v5() {
            DecodeError::InvalidMaximumQoS
        } else {
            DecodeError::InvalidQoS
        })?;
        let retain_handling = match (byte >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::InvalidRetainHandling),
        };
        Ok(SubscriptionOptions {
            qos,
            no_local: byte & NO_LOCAL != 0,
            retain_as_published: byte & RETAIN_AS_PUBLISHED != 0,
            retain_handling,
        })
    }

    fn encode(&self, v: ProtocolVersion) -> u8 {
        let mut byte = self.qos as u8;
        if v.is_v5() {
            if self.no_local {
                byte |= NO_LOCAL;
            }
            if self.retain_as_published {
                byte |= RETAIN_AS_PUBLISHED;
            }
            byte |= (self.retain_handling as u8) << 4;
        }
        byte
    }
}

impl Subscribe {
    pub(crate) fn decode(mut r: Reader, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(&mut r)?;
        let properties = match v {
            ProtocolVersion::V5 => SubscribeProperties::decode(&mut r, PacketType::Subscribe)?,
            _ => SubscribeProperties::default(),
        };
        let mut subscriptions = Vec::new();
        while !r.is_empty() {
            let filter = TopicFilter::new(r.string("topic filter")?)?;
            let options = SubscriptionOptions::decode(r.u8("subscription options")?, v)?;
            if options.no_local && filter.shared().is_some() {
                return Err(DecodeError::NoLocalOnSharedSubscription);
            }
            subscriptions.push(Subscription { filter, options });
        }
        if subscriptions.is_empty() {
            return Err(DecodeError::NoTopicFilters(PacketType::Subscribe));
        }
        Ok(Subscribe {
            packet_id,
            properties,
            subscriptions,
        })
    }

    pub(crate) fn body_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        if self.subscriptions.is_empty() {
            return Err(EncodeError::Empty("SUBSCRIBE topic filters"));
        }
        let mut n = 2;
        if v.is_v5() {
            n += self.properties.encoded_len()?;
        }
        Ok(n + self
            .subscriptions
            .iter()
            .map(|s| 2 + s.filter.len() + 1)
            .sum::<usize>())
    }

    pub(crate) fn write(&self, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u16(self.packet_id.get());
        if v.is_v5() {
            self.properties.encode(buf)?;
        }
        for s in &self.subscriptions {
            put_string(buf, s.filter.as_mqtt_str());
            buf.put_u8(s.options.encode(v));
        }
        Ok(())
    }
}

/// The answer to SUBSCRIBE: one reason code per filter, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: PacketId,
    pub properties: AckProperties,
    /// Granted QoS 0/1/2 or a failure. v3 peers see failures as 0x80.
    pub reasons: Vec<ReasonCode>,
}

impl SubAck {
    pub(crate) fn decode(mut r: Reader, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(&mut r)?;
        let properties = match v {
            ProtocolVersion::V5 => AckProperties::decode(&mut r, PacketType::SubAck)?,
            _ => AckProperties::default(),
        };
        let mut reasons = Vec::with_capacity(r.remaining());
        while !r.is_empty() {
            reasons.push(match v {
                ProtocolVersion::V5 => read_reason(&mut r, PacketType::SubAck)?,
                _ => {
                    let code = r.u8("return code")?;
                    ReasonCode::from_v3_suback(code).ok_or(DecodeError::InvalidReasonCode {
                        packet: PacketType::SubAck,
                        code,
                    })?
                }
            });
        }
        Ok(SubAck {
            packet_id,
            properties,
            reasons,
        })
    }

    pub(crate) fn body_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        let props = match v {
            ProtocolVersion::V5 => self.properties.encoded_len()?,
            _ => 0,
        };
        Ok(2 + props + self.reasons.len())
    }

    pub(crate) fn write(&self, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u16(self.packet_id.get());
        if v.is_v5() {
            self.properties.encode(buf)?;
            for r in &self.reasons {
                buf.put_u8(r.value());
            }
        } else {
            for r in &self.reasons {
                buf.put_u8(r.to_v3_suback());
            }
        }
        Ok(())
    }
}
