//! CONNECT (section 3.1): protocol name and level, flags, keep alive, v5 properties, then
//! client id, will, user name and password in that order [MQTT-3.1.3-1].

use bytes::{BufMut, Bytes, BytesMut};

use super::super::error::{DecodeError, EncodeError};
use super::super::primitives::{binary_len, put_binary, put_string, Reader};
use super::super::properties::{ConnectProperties, WillProperties};
use super::super::topic::{MqttString, TopicName};
use super::super::{PacketType, ProtocolVersion, QoS};

const RESERVED: u8 = 0x01;
const CLEAN_START: u8 = 0x02;
const WILL: u8 = 0x04;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USERNAME: u8 = 0x80;

/// A client's request to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The version the client speaks; every later packet on the connection uses it.
    pub protocol: ProtocolVersion,
    /// Clean Session (v3) / Clean Start (v5).
    pub clean_start: bool,
    /// Seconds; 0 turns keep-alive off.
    pub keep_alive: u16,
    /// May be empty: the server then assigns one (v5) or requires clean session (v3).
    pub client_id: MqttString,
    pub will: Option<Will>,
    pub username: Option<MqttString>,
    pub password: Option<Bytes>,
    pub properties: ConnectProperties,
}

/// The Will Message a client leaves with its CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: TopicName,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: WillProperties,
}

impl Connect {
    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        let name = r.binary("protocol name")?;
        let level = r.u8("protocol level")?;
        let protocol = match (&name[..], level) {
            (b"MQIsdp", 3) => ProtocolVersion::V3_1,
            (b"MQTT", 4) => ProtocolVersion::V3_1_1,
            (b"MQTT", 5) => ProtocolVersion::V5,
            (b"MQTT" | b"MQIsdp", other) => {
                return Err(DecodeError::UnsupportedProtocolVersion(other))
            }
            _ => return Err(DecodeError::InvalidProtocolName),
        };
        let v5 = protocol.is_v5();
        let flags = r.u8("connect flags")?;
        if flags & RESERVED != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let will_qos = (flags >> 3) & 0b11;
        let has_will = flags & WILL != 0;
        if !has_will && (will_qos != 0 || flags & WILL_RETAIN != 0) {
            return Err(DecodeError::WillFlagsWithoutWill);
        }
        let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidQoS)?;
        if !v5 && flags & PASSWORD != 0 && flags & USERNAME == 0 {
            return Err(DecodeError::PasswordWithoutUsername);
        }
        let keep_alive = r.u16("keep alive")?;
        let properties = if v5 {
            let p = ConnectProperties::decode(&mut r, PacketType::Connect)?;
            if p.authentication_data.is_some() && p.authentication_method.is_none() {
                return Err(DecodeError::AuthDataWithoutMethod);
            }
            p
        } else {
            ConnectProperties::default()
        };
        let client_id = r.string("client identifier")?;
        let will = if has_will {
            let properties = if v5 {
                WillProperties::decode(&mut r, PacketType::Connect)?
            } else {
                WillProperties::default()
            };
            Some(Will {
                topic: TopicName::new(r.string("will topic")?)?,
                payload: r.binary("will payload")?,
                qos: will_qos,
                retain: flags & WILL_RETAIN != 0,
                properties,
            })
        } else {
            None
        };
        let username = match flags & USERNAME {
            0 => None,
            _ => Some(r.string("user name")?),
        };
        let password = match flags & PASSWORD {
            0 => None,
            _ => Some(r.binary("password")?),
        };
        r.finish()?;
        Ok(Connect {
            protocol,
            clean_start: flags & CLEAN_START != 0,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }

    pub(crate) fn body_len(&self) -> Result<usize, EncodeError> {
        let v5 = self.protocol.is_v5();
        let mut n = 2 + self.protocol.protocol_name().len() + 1 + 1 + 2;
        if v5 {
            n += self.properties.encoded_len()?;
        }
        n += 2 + self.client_id.len();
        if let Some(w) = &self.will {
            if v5 {
                n += w.properties.encoded_len()?;
            }
            n += 2 + w.topic.len();
            n += binary_len(&w.payload).ok_or(EncodeError::FieldTooLong("will payload"))?;
        }
        if let Some(u) = &self.username {
            n += 2 + u.len();
        }
        if let Some(p) = &self.password {
            n += binary_len(p).ok_or(EncodeError::FieldTooLong("password"))?;
        }
        Ok(n)
    }

    pub(crate) fn write(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let v5 = self.protocol.is_v5();
        put_binary(buf, self.protocol.protocol_name().as_bytes());
        buf.put_u8(self.protocol.level());
        let mut flags = 0;
        if self.clean_start {
            flags |= CLEAN_START;
        }
        if let Some(w) = &self.will {
            flags |= WILL | ((w.qos as u8) << 3);
            if w.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= USERNAME;
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        buf.put_u8(flags);
        buf.put_u16(self.keep_alive);
        if v5 {
            self.properties.encode(buf)?;
        }
        put_string(buf, &self.client_id);
        if let Some(w) = &self.will {
            if v5 {
                w.properties.encode(buf)?;
            }
            put_string(buf, w.topic.as_mqtt_str());
            put_binary(buf, &w.payload);
        }
        if let Some(u) = &self.username {
            put_string(buf, u);
        }
        if let Some(p) = &self.password {
            put_binary(buf, p);
        }
        Ok(())
    }
}
