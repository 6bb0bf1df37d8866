//! DISCONNECT (section 3.14): empty in v3; in v5 a reason code and properties, either of
//! which may be left out when Normal disconnection and empty.

use bytes::{BufMut, BytesMut};

use super::super::error::{DecodeError, EncodeError};
use super::super::primitives::Reader;
use super::super::properties::DisconnectProperties;
use super::super::reason::ReasonCode;
use super::super::{PacketType, ProtocolVersion};
use super::read_reason;

/// The last packet of a connection, from either side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// Always Normal disconnection (0x00) on v3 connections.
    pub reason: ReasonCode,
    pub properties: DisconnectProperties,
}

impl Disconnect {
    pub fn new(reason: ReasonCode) -> Self {
        Disconnect {
            reason,
            properties: DisconnectProperties::default(),
        }
    }

    pub(crate) fn decode(mut r: Reader, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut d = Disconnect::default();
        if v.is_v5() && !r.is_empty() {
            d.reason = read_reason(&mut r, PacketType::Disconnect)?;
            if !r.is_empty() {
                d.properties = DisconnectProperties::decode(&mut r, PacketType::Disconnect)?;
            }
        }
        r.finish()?;
        Ok(d)
    }

    pub(crate) fn body_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        if !v.is_v5() {
            return Ok(0);
        }
        Ok(if !self.properties.is_empty() {
            1 + self.properties.encoded_len()?
        } else {
            usize::from(self.reason != ReasonCode::Success)
        })
    }

    pub(crate) fn write(&self, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
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
