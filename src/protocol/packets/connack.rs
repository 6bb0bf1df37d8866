//! CONNACK (section 3.2): acknowledge flags, the connect reason code (a v3 return code 0-5
//! on older versions) and v5 properties.

use bytes::{BufMut, BytesMut};

use super::super::error::{DecodeError, EncodeError};
use super::super::primitives::Reader;
use super::super::properties::ConnAckProperties;
use super::super::reason::ReasonCode;
use super::super::{PacketType, ProtocolVersion};

/// The server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Always false in MQTT 3.1, which has no such flag, and when `reason` is a failure
    /// [MQTT-3.2.2-6].
    pub session_present: bool,
    /// On v3 connections one of the six codes [`ReasonCode::from_v3_connack`] yields.
    pub reason: ReasonCode,
    pub properties: ConnAckProperties,
}

impl ConnAck {
    pub(crate) fn decode(mut r: Reader, v: ProtocolVersion) -> Result<Self, DecodeError> {
        let flags = r.u8("connect acknowledge flags")?;
        if flags & 0xFE != 0 {
            return Err(DecodeError::ConnAckReservedFlags);
        }
        let code = r.u8("connect reason code")?;
        let reason = match v {
            ProtocolVersion::V5 => {
                ReasonCode::from_u8(code).filter(|c| c.is_allowed_in(PacketType::ConnAck))
            }
            _ => ReasonCode::from_v3_connack(code),
        }
        .ok_or(DecodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code,
        })?;
        let properties = match v {
            ProtocolVersion::V5 => {
                let p = ConnAckProperties::decode(&mut r, PacketType::ConnAck)?;
                if p.authentication_data.is_some() && p.authentication_method.is_none() {
                    return Err(DecodeError::AuthDataWithoutMethod);
                }
                p
            }
            _ => ConnAckProperties::default(),
        };
        r.finish()?;
        Ok(ConnAck {
            session_present: flags & 1 != 0 && v != ProtocolVersion::V3_1,
            reason,
            properties,
        })
    }

    pub(crate) fn body_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        Ok(match v {
            ProtocolVersion::V5 => 2 + self.properties.encoded_len()?,
            _ => 2,
        })
    }

    pub(crate) fn write(&self, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u8(u8::from(self.session_present && v != ProtocolVersion::V3_1));
        match v {
            ProtocolVersion::V5 => {
                buf.put_u8(self.reason.value());
                self.properties.encode(buf)
            }
            _ => {
                buf.put_u8(self.reason.to_v3_connack());
                Ok(())
            }
        }
    }
}
