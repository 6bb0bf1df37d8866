//! AUTH (section 3.15, MQTT 5.0 only): a step of enhanced authentication.

use bytes::{BufMut, BytesMut};

use super::super::error::{DecodeError, EncodeError};
use super::super::primitives::Reader;
use super::super::properties::AuthProperties;
use super::super::reason::ReasonCode;
use super::super::PacketType;
use super::read_reason;

/// One step of an enhanced authentication exchange.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// Success, Continue authentication or Re-authenticate.
    pub reason: ReasonCode,
    pub properties: AuthProperties,
}

impl Auth {
    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        let mut a = Auth::default();
        if !r.is_empty() {
            a.reason = read_reason(&mut r, PacketType::Auth)?;
            if !r.is_empty() {
                a.properties = AuthProperties::decode(&mut r, PacketType::Auth)?;
            }
        }
        r.finish()?;
        let no_method = a.properties.authentication_method.is_none();
        if no_method && a.reason != ReasonCode::Success {
            // Continue / Re-authenticate must name the method [MQTT-4.12.0-5], [MQTT-4.12.1-1].
            return Err(DecodeError::AuthMethodMissing);
        }
        if no_method && a.properties.authentication_data.is_some() {
            return Err(DecodeError::AuthDataWithoutMethod);
        }
        Ok(a)
    }

    pub(crate) fn body_len(&self) -> Result<usize, EncodeError> {
        Ok(if !self.properties.is_empty() {
            1 + self.properties.encoded_len()?
        } else {
            usize::from(self.reason != ReasonCode::Success)
        })
    }

    pub(crate) fn write(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let with_props = !self.properties.is_empty();
        if with_props || self.reason != ReasonCode::Success {
            buf.put_u8(self.reason.value());
        }
        if with_props {
            self.properties.encode(buf)?;
        }
        Ok(())
    }
}
