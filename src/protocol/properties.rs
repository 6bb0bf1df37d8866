//! MQTT 5.0 properties (section 2.2.2): identifiers, wire types, and one struct per packet
//! holding exactly the properties that packet may carry.
//!
//! | id   | property                          | type        | packets                              |
//! |------|-----------------------------------|-------------|--------------------------------------|
//! | 0x01 | Payload Format Indicator          | byte (0/1)  | PUBLISH, Will                        |
//! | 0x02 | Message Expiry Interval           | u32         | PUBLISH, Will                        |
//! | 0x03 | Content Type                      | string      | PUBLISH, Will                        |
//! | 0x08 | Response Topic                    | topic name  | PUBLISH, Will                        |
//! | 0x09 | Correlation Data                  | binary      | PUBLISH, Will                        |
//! | 0x0B | Subscription Identifier           | varint > 0  | PUBLISH (repeatable), SUBSCRIBE      |
//! | 0x11 | Session Expiry Interval           | u32         | CONNECT, CONNACK, DISCONNECT         |
//! | 0x12 | Assigned Client Identifier        | string      | CONNACK                              |
//! | 0x13 | Server Keep Alive                 | u16         | CONNACK                              |
//! | 0x15 | Authentication Method             | string      | CONNECT, CONNACK, AUTH               |
//! | 0x16 | Authentication Data               | binary      | CONNECT, CONNACK, AUTH               |
//! | 0x17 | Request Problem Information       | byte (0/1)  | CONNECT                              |
//! | 0x18 | Will Delay Interval               | u32         | Will                                 |
//! | 0x19 | Request Response Information      | byte (0/1)  | CONNECT                              |
//! | 0x1A | Response Information              | string      | CONNACK                              |
//! | 0x1C | Server Reference                  | string      | CONNACK, DISCONNECT                  |
//! | 0x1F | Reason String                     | string      | CONNACK, PUBACK..PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH |
//! | 0x21 | Receive Maximum                   | u16 > 0     | CONNECT, CONNACK                     |
//! | 0x22 | Topic Alias Maximum               | u16         | CONNECT, CONNACK                     |
//! | 0x23 | Topic Alias                       | u16 > 0     | PUBLISH                              |
//! | 0x24 | Maximum QoS                       | byte (0/1)  | CONNACK                              |
//! | 0x25 | Retain Available                  | byte (0/1)  | CONNACK                              |
//! | 0x26 | User Property                     | string pair | all but PINGREQ/PINGRESP (repeatable)|
//! | 0x27 | Maximum Packet Size               | u32 > 0     | CONNECT, CONNACK                     |
//! | 0x28 | Wildcard Subscription Available   | byte (0/1)  | CONNACK                              |
//! | 0x29 | Subscription Identifier Available | byte (0/1)  | CONNACK                              |
//! | 0x2A | Shared Subscription Available     | byte (0/1)  | CONNACK                              |
//!
//! A property not in a packet's struct is refused as malformed; one given twice (other than
//! User Property and PUBLISH's Subscription Identifier) is a protocol error; a value outside
//! its range is a protocol error (a Topic Alias of 0 is 0x94). Properties are written in the
//! struct's field order; User Properties keep their order [MQTT-3.3.2-18].
//! The fields of each struct are in increasing identifier order, which is therefore the
//! order the encoder writes (the same canonical order paho-mqtt uses).

use std::fmt;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{binary_len, put_binary, put_string, put_varint, varint_len, Reader};
use super::topic::{MqttString, TopicName};
use super::{PacketType, QoS};

macro_rules! property_ids {
    ($( $name:ident = $value:literal ),* $(,)?) => {
        /// A property identifier.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum PropertyId {
            $( $name = $value, )*
        }

        impl PropertyId {
            pub const fn from_u32(value: u32) -> Option<Self> {
                match value {
                    $( $value => Some(PropertyId::$name), )*
                    _ => None,
                }
            }
        }
    };
}

property_ids! {
    PayloadFormatIndicator = 0x01,
    MessageExpiryInterval = 0x02,
    ContentType = 0x03,
    ResponseTopic = 0x08,
    CorrelationData = 0x09,
    SubscriptionIdentifier = 0x0B,
    SessionExpiryInterval = 0x11,
    AssignedClientIdentifier = 0x12,
    ServerKeepAlive = 0x13,
    AuthenticationMethod = 0x15,
    AuthenticationData = 0x16,
    RequestProblemInformation = 0x17,
    WillDelayInterval = 0x18,
    RequestResponseInformation = 0x19,
    ResponseInformation = 0x1A,
    ServerReference = 0x1C,
    ReasonString = 0x1F,
    ReceiveMaximum = 0x21,
    TopicAliasMaximum = 0x22,
    TopicAlias = 0x23,
    MaximumQoS = 0x24,
    RetainAvailable = 0x25,
    UserProperty = 0x26,
    MaximumPacketSize = 0x27,
    WildcardSubscriptionAvailable = 0x28,
    SubscriptionIdentifierAvailable = 0x29,
    SharedSubscriptionAvailable = 0x2A,
}

impl fmt::Display for PropertyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} (0x{:02X})", self, *self as u8)
    }
}

/// A User Property: a name-value pair of strings. Names may repeat [MQTT-1.5.7-1].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserProperty {
    pub name: MqttString,
    pub value: MqttString,
}

/// A Subscription Identifier: 1 to 268,435,455.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(NonZeroU32);

impl SubscriptionId {
    pub const MAX: u32 = super::primitives::VARINT_MAX;

    pub fn new(value: u32) -> Option<Self> {
        if value > Self::MAX {
            return None;
        }
        NonZeroU32::new(value).map(SubscriptionId)
    }

    pub fn get(self) -> u32 {
        self.0.get()
    }
}

/// How one property value is read and written.
trait Value: Sized {
    fn read(r: &mut Reader, id: PropertyId) -> Result<Self, DecodeError>;
    fn len(&self) -> Result<usize, EncodeError>;
    fn write(&self, buf: &mut BytesMut);
}

fn invalid(property: PropertyId, value: u32) -> DecodeError {
    DecodeError::InvalidPropertyValue { property, value }
}

/// Byte properties are all flags whose only values are 0 and 1.
impl Value for bool {
    fn read(r: &mut Reader, id: PropertyId) -> Result<Self, DecodeError> {
        match r.u8("property value")? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(invalid(id, u32::from(v))),
        }
    }
    fn len(&self) -> Result<usize, EncodeError> {
        Ok(1)
    }
    fn write(&self, buf: &mut BytesMut) {
        buf.put_u8(u8::from(*self));
    }
}

/// Maximum QoS: 0 or 1 (a server supporting QoS 2 leaves the property out).
impl Value for QoS {
    fn read(r: &mut Reader, id: PropertyId) -> Result<Self, DecodeError> {
        match r.u8("property value")? {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            v => Err(invalid(id, u32::from(v))),
        }
    }
    fn len(&self) -> Result<usize, EncodeError> {
        Ok(1)
    }
    fn write(&self, buf: &mut BytesMut) {
        buf.put_u8(*self as u8);
    }
}

impl Value for u16 {
    fn read(r: &mut Reader, _: PropertyId) -> Result<Self, DecodeError> {
        r.u16("property value")
    }
    fn len(&self) -> Result<usize, EncodeError> {
        Ok(2)
    }
    fn write(&self, buf: &mut BytesMut) {
        buf.put_u16(*self);
    }
}

impl Value for NonZeroU16 {
    fn read(r: &mut Reader, id: PropertyId) -> Result<Self, DecodeError> {
        let v = r.u16("property value")?;
        NonZeroU16::new(v).ok_or(match id {
            PropertyId::TopicAlias => DecodeError::TopicAliasZero,
            _ => invalid(id, 0),
        })
    }
    fn len(&self) -> Result<usize, EncodeError> {
        Ok(2)
    }
    fn write(&self, buf: &mut BytesMut) {
        buf.put_u16(self.get());
    }
}

impl Value for u32 {
    fn read(r: &mut Reader, _: PropertyId) -> Result<Self, DecodeError> {
        r.u32("property value")
    }
    fn len(&self) -> Result<usize, EncodeError> {
        Ok(4)
    }
    fn write(&self, buf: &mut BytesMut) {
        buf.put_u32(*self);
    }
}

impl Value for NonZeroU32 {
    fn read(r: &mut Reader, id: PropertyId) -> Result<Self, DecodeError> {
        NonZeroU32::new(r.u32("property value")?).ok_or(invalid(id, 0))
    }
    fn len(&self) -> Result<usize, EncodeError> {
        Ok(4)
    }
    fn write(&self, buf: &mut BytesMut) {
        buf.put_u32(self.get());
    }
}

impl Value for SubscriptionId {
    fn read(r: &mut Reader, id: PropertyId) -> Result<Self, DecodeError> {
        let v = r.varint("property value")?;
        SubscriptionId::new(v).ok_or(invalid(id, v))
    }
    fn len(&self) -> Result<usize, EncodeError> {
        Ok(varint_len(self.get() as usize))
    }
    fn write(&self, buf: &mut BytesMut) {
        put_varint(buf, self.get() as usize);
    }
}

impl Value for MqttString {
    fn read(r: &mut Reader, _: PropertyId) -> Result<Self, DecodeError> {
        r.string("property value")
    }
    fn len(&self) -> Result<usize, EncodeError> {
        Ok(2 + MqttString::len(self))
    }
    fn write(&self, buf: &mut BytesMut) {
        put_string(buf, self);
    }
}

/// Response Topic: a topic name, so no wildcards [MQTT-3.3.2-14].
impl Value for TopicName {
    fn read(r: &mut Reader, _: PropertyId) -> Result<Self, DecodeError> {
        Ok(TopicName::new(r.string("property value")?)?)
    }
    fn len(&self) -> Result<usize, EncodeError> {
        Ok(2 + TopicName::len(self))
    }
    fn write(&self, buf: &mut BytesMut) {
        put_string(buf, self.as_mqtt_str());
    }
}

impl Value for Bytes {
    fn read(r: &mut Reader, _: PropertyId) -> Result<Self, DecodeError> {
        r.binary("property value")
    }
    fn len(&self) -> Result<usize, EncodeError> {
        binary_len(self).ok_or(EncodeError::FieldTooLong("binary property"))
    }
    fn write(&self, buf: &mut BytesMut) {
        put_binary(buf, self);
    }
}

impl Value for UserProperty {
    fn read(r: &mut Reader, _: PropertyId) -> Result<Self, DecodeError> {
        Ok(UserProperty {
            name: r.string("user property name")?,
            value: r.string("user property value")?,
        })
    }
    fn len(&self) -> Result<usize, EncodeError> {
        Ok(4 + self.name.len() + self.value.len())
    }
    fn write(&self, buf: &mut BytesMut) {
        put_string(buf, &self.name);
        put_string(buf, &self.value);
    }
}

/// Where a property's values go in its struct: `Option` holds one (a second is a duplicate),
/// `Vec` holds any number in order.
trait Slot {
    fn store(&mut self, r: &mut Reader, id: PropertyId) -> Result<(), DecodeError>;
    /// Encoded size with the identifier byte(s).
    fn len(&self) -> Result<usize, EncodeError>;
    fn write(&self, id: PropertyId, buf: &mut BytesMut);
    fn is_unset(&self) -> bool;
}

impl<T: Value> Slot for Option<T> {
    fn store(&mut self, r: &mut Reader, id: PropertyId) -> Result<(), DecodeError> {
        if self.is_some() {
            return Err(DecodeError::DuplicateProperty(id));
        }
        *self = Some(T::read(r, id)?);
        Ok(())
    }
    fn len(&self) -> Result<usize, EncodeError> {
        self.as_ref().map_or(Ok(0), |v| Ok(1 + v.len()?))
    }
    fn write(&self, id: PropertyId, buf: &mut BytesMut) {
        if let Some(v) = self {
            buf.put_u8(id as u8);
            v.write(buf);
        }
    }
    fn is_unset(&self) -> bool {
        self.is_none()
    }
}

impl<T: Value> Slot for Vec<T> {
    fn store(&mut self, r: &mut Reader, id: PropertyId) -> Result<(), DecodeError> {
        self.push(T::read(r, id)?);
        Ok(())
    }
    fn len(&self) -> Result<usize, EncodeError> {
        self.iter().try_fold(0, |n, v| Ok(n + 1 + v.len()?))
    }
    fn write(&self, id: PropertyId, buf: &mut BytesMut) {
        for v in self {
            buf.put_u8(id as u8);
            v.write(buf);
        }
    }
    fn is_unset(&self) -> bool {
        self.is_empty()
    }
}

/// Defines a properties struct; each field names the property it holds.
macro_rules! properties {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $id:ident, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            /// True when no property is set (the packet then carries a Property Length of 0
            /// [MQTT-2.2.2-1], or may leave the properties out where the packet allows).
            pub fn is_empty(&self) -> bool {
                true $( && Slot::is_unset(&self.$field) )*
            }

            /// Reads a Property Length and the properties it covers.
            pub(crate) fn decode(r: &mut Reader, packet: PacketType) -> Result<Self, DecodeError> {
                let len = r.varint("property length")?;
                let mut r = r.sub(len as usize, "properties")?;
                let mut props = Self::default();
                while !r.is_empty() {
                    let id = r.varint("property identifier")?;
                    match PropertyId::from_u32(id) {
                        $( Some(PropertyId::$id) => {
                            Slot::store(&mut props.$field, &mut r, PropertyId::$id)?
                        } )*
                        Some(property) => {
                            return Err(DecodeError::PropertyNotAllowed {
                                property,
                                packet,
                            })
                        }
                        None => return Err(DecodeError::UnknownProperty(id)),
                    }
                }
                Ok(props)
            }

            /// Size of the properties without their length prefix.
            fn body_len(&self) -> Result<usize, EncodeError> {
                Ok(0 $( + Slot::len(&self.$field)? )*)
            }

            /// Size with the Property Length prefix.
            pub(crate) fn encoded_len(&self) -> Result<usize, EncodeError> {
                let n = self.body_len()?;
                Ok(varint_len(n) + n)
            }

            pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
                put_varint(buf, self.body_len()?);
                $( Slot::write(&self.$field, PropertyId::$id, buf); )*
                Ok(())
            }
        }
    };
}

properties! {
    /// CONNECT properties (section 3.1.2.11).
    pub struct ConnectProperties {
        /// Seconds the session outlives the connection; absent = 0.
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        authentication_method: Option<MqttString> = AuthenticationMethod,
        authentication_data: Option<Bytes> = AuthenticationData,
        request_problem_information: Option<bool> = RequestProblemInformation,
        request_response_information: Option<bool> = RequestResponseInformation,
        /// QoS 1/2 PUBLISHes the client will process at once; absent = 65,535.
        receive_maximum: Option<NonZeroU16> = ReceiveMaximum,
        /// Highest topic alias the client accepts from the server; absent = 0.
        topic_alias_maximum: Option<u16> = TopicAliasMaximum,
        user_properties: Vec<UserProperty> = UserProperty,
        /// Largest packet the client accepts; absent = no limit.
        maximum_packet_size: Option<NonZeroU32> = MaximumPacketSize,
    }
}

properties! {
    /// Will properties, inside the CONNECT payload (section 3.1.3.2).
    pub struct WillProperties {
        payload_format_indicator: Option<bool> = PayloadFormatIndicator,
        message_expiry_interval: Option<u32> = MessageExpiryInterval,
        content_type: Option<MqttString> = ContentType,
        response_topic: Option<TopicName> = ResponseTopic,
        correlation_data: Option<Bytes> = CorrelationData,
        will_delay_interval: Option<u32> = WillDelayInterval,
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

properties! {
    /// CONNACK properties (section 3.2.2.3).
    pub struct ConnAckProperties {
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        assigned_client_identifier: Option<MqttString> = AssignedClientIdentifier,
        server_keep_alive: Option<u16> = ServerKeepAlive,
        authentication_method: Option<MqttString> = AuthenticationMethod,
        authentication_data: Option<Bytes> = AuthenticationData,
        response_information: Option<MqttString> = ResponseInformation,
        server_reference: Option<MqttString> = ServerReference,
        reason_string: Option<MqttString> = ReasonString,
        receive_maximum: Option<NonZeroU16> = ReceiveMaximum,
        topic_alias_maximum: Option<u16> = TopicAliasMaximum,
        /// 0 or 1; absent means QoS 2 is supported.
        maximum_qos: Option<QoS> = MaximumQoS,
        retain_available: Option<bool> = RetainAvailable,
        user_properties: Vec<UserProperty> = UserProperty,
        maximum_packet_size: Option<NonZeroU32> = MaximumPacketSize,
        wildcard_subscription_available: Option<bool> = WildcardSubscriptionAvailable,
        subscription_identifiers_available: Option<bool> = SubscriptionIdentifierAvailable,
        shared_subscription_available: Option<bool> = SharedSubscriptionAvailable,
    }
}

properties! {
    /// PUBLISH properties (section 3.3.2.3): the Application Message's metadata.
    pub struct PublishProperties {
        /// true: the payload is UTF-8 text.
        payload_format_indicator: Option<bool> = PayloadFormatIndicator,
        message_expiry_interval: Option<u32> = MessageExpiryInterval,
        content_type: Option<MqttString> = ContentType,
        response_topic: Option<TopicName> = ResponseTopic,
        correlation_data: Option<Bytes> = CorrelationData,
        /// One per matching subscription, server to client only [MQTT-3.3.4-6].
        subscription_identifiers: Vec<SubscriptionId> = SubscriptionIdentifier,
        topic_alias: Option<NonZeroU16> = TopicAlias,
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

impl PublishProperties {
    /// A copy whose strings and binary data are in allocations of their own (see
    /// [`MqttString::detached`]).
    pub fn detached(&self) -> Self {
        PublishProperties {
            payload_format_indicator: self.payload_format_indicator,
            message_expiry_interval: self.message_expiry_interval,
            content_type: self.content_type.as_ref().map(MqttString::detached),
            response_topic: self.response_topic.as_ref().map(TopicName::detached),
            correlation_data: self
                .correlation_data
                .as_ref()
                .map(|d| Bytes::copy_from_slice(d)),
            user_properties: self
                .user_properties
                .iter()
                .map(|u| UserProperty {
                    name: u.name.detached(),
                    value: u.value.detached(),
                })
                .collect(),
            subscription_identifiers: self.subscription_identifiers.clone(),
            topic_alias: self.topic_alias,
        }
    }
}

properties! {
    /// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
    pub struct AckProperties {
        reason_string: Option<MqttString> = ReasonString,
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

properties! {
    /// SUBSCRIBE properties (section 3.8.2.1).
    pub struct SubscribeProperties {
        subscription_identifier: Option<SubscriptionId> = SubscriptionIdentifier,
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

properties! {
    /// UNSUBSCRIBE properties (section 3.10.2.1).
    pub struct UnsubscribeProperties {
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

properties! {
    /// DISCONNECT properties (section 3.14.2.2).
    pub struct DisconnectProperties {
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        server_reference: Option<MqttString> = ServerReference,
        reason_string: Option<MqttString> = ReasonString,
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

properties! {
    /// AUTH properties (section 3.15.2.2).
    pub struct AuthProperties {
        authentication_method: Option<MqttString> = AuthenticationMethod,
        authentication_data: Option<Bytes> = AuthenticationData,
        reason_string: Option<MqttString> = ReasonString,
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode<T>(
        bytes: &'static [u8],
        f: fn(&mut Reader, PacketType) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        f(
            &mut Reader::new(Bytes::from_static(bytes)),
            PacketType::Connect,
        )
    }

    #[test]
    fn duplicate_property_is_protocol_error() {
        // Two Message Expiry Intervals.
        let r = decode(
            &[10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2],
            PublishProperties::decode,
        );
        assert_eq!(
            r,
            Err(DecodeError::DuplicateProperty(
                PropertyId::MessageExpiryInterval
            ))
        );
    }

    #[test]
    fn repeated_user_properties_keep_order_mqtt_3_3_2_18() {
        let p = decode(
            &[
                14, 0x26, 0, 1, b'k', 0, 1, b'2', 0x26, 0, 1, b'k', 0, 1, b'1',
            ],
            PublishProperties::decode,
        )
        .unwrap();
        let values: Vec<_> = p.user_properties.iter().map(|u| u.value.as_str()).collect();
        assert_eq!(values, ["2", "1"]);
    }

    #[test]
    fn property_not_allowed_in_packet_is_malformed() {
        // Topic Alias in CONNECT.
        let r = decode(&[3, 0x23, 0, 1], ConnectProperties::decode);
        assert_eq!(
            r,
            Err(DecodeError::PropertyNotAllowed {
                property: PropertyId::TopicAlias,
                packet: PacketType::Connect
            })
        );
        assert_eq!(
            r.unwrap_err().reason_code(),
            super::super::ReasonCode::MalformedPacket
        );
    }

    #[test]
    fn unknown_property_is_malformed() {
        assert_eq!(
            decode(&[2, 0x7F, 0], AckProperties::decode),
            Err(DecodeError::UnknownProperty(0x7F))
        );
    }

    #[test]
    fn flag_property_other_than_0_or_1_is_protocol_error() {
        assert_eq!(
            decode(&[2, 0x17, 2], ConnectProperties::decode),
            Err(DecodeError::InvalidPropertyValue {
                property: PropertyId::RequestProblemInformation,
                value: 2
            })
        );
    }

    #[test]
    fn zero_receive_maximum_and_topic_alias_are_refused() {
        assert!(matches!(
            decode(&[3, 0x21, 0, 0], ConnectProperties::decode),
            Err(DecodeError::InvalidPropertyValue { .. })
        ));
        assert_eq!(
            decode(&[3, 0x23, 0, 0], PublishProperties::decode),
            Err(DecodeError::TopicAliasZero)
        );
    }

    #[test]
    fn property_length_past_the_packet_is_truncated() {
        assert_eq!(
            decode(&[5, 0x02, 0, 0], PublishProperties::decode),
            Err(DecodeError::Truncated("properties"))
        );
    }

    #[test]
    fn encode_writes_length_then_fields_in_order() {
        let p = PublishProperties {
            topic_alias: NonZeroU16::new(7),
            message_expiry_interval: Some(60),
            content_type: Some(MqttString::from_static("t").unwrap()),
            ..Default::default()
        };
        let mut b = BytesMut::new();
        p.encode(&mut b).unwrap();
        assert_eq!(
            &b[..],
            &[12, 0x02, 0, 0, 0, 60, 0x03, 0, 1, b't', 0x23, 0, 7]
        );
        assert_eq!(p.encoded_len().unwrap(), b.len());
    }
}
