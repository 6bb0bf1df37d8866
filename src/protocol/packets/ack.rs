//! PUBACK, PUBREC, PUBREL and PUBCOMP (sections 3.4-3.7): a packet id, and in v5 a reason
//! code and properties that may be left out when they are Success and empty.

use bytes::{BufMut, BytesMut};

use super::super::error::{DecodeError, EncodeError};
use super::super::primitives::Reader;
use super::super::properties::AckProperties;
use super::super::reason::ReasonCode;
use super::super::{PacketId, PacketType, ProtocolVersion};
use super::{read_packet_id, read_reason};

/// The body shared by the four QoS acknowledgement packets; `Packet`'s variant says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub packet_id: PacketId,
    /// Always Success on v3 connections.
    pub reason: ReasonCode,
    pub properties: AckProperties,
}

impl Ack {
    /// A successful acknowledgement with no properties.
    pub fn new(packet_id: PacketId) -> Self {
        Ack {
            packet_id,
            reason: ReasonCode::Success,
            properties: AckProperties::default(),
        }
    }

    pub(crate) fn decode(
        mut r: Reader,
        packet: PacketType,
        v: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(&mut r)?;
        let mut ack = Ack::new(packet_id);
        if v.is_v5() && !r.is_empty() {
            ack.reason = read_reason(&mut r, packet)?;
            if !r.is_empty() {
                ack.properties = AckProperties::decode(&mut r, packet)?;
            }
        }
        r.finish()?;
        Ok(ack)
    }

    /// v5 writes the shortest form: no reason code when it is Success with no properties,
    /// no property length when there are none.
    pub(crate) fn body_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        if !v.is_v5() {
            return Ok(2);
        }
        Ok(if !self.properties.is_empty() {
            3 + self.properties.encoded_len()?
        } else if self.reason != ReasonCode::Success {
            3
        } else {
            2
        })
    }

    pub(crate) fn write(&self, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u16(self.packet_id.get());
        if v.is_v5() {
            let with_props = !self.properties.is_empty();
            if with_props || self.reason != ReasonCode::Success {
                buf.put_u8(self.reason.value());
            }
            if with_props {
                self.properties.encode(buf)?;
            }
        }
        Ok(())
    }
}
