//! Decode and encode errors, each mapped to the MQTT 5.0 reason code a server sends for it.
//!
//! This is the one place that decides whether a bad packet is malformed (0x81), a protocol
//! error (0x82), too large (0x95) or something more specific. The connection layer turns the
//! code into a DISCONNECT (v5), a CONNACK (for CONNECT), or a plain close (v3).

use super::properties::PropertyId;
use super::reason::ReasonCode;
use super::topic::StringError;
use super::{PacketType, ProtocolVersion};

/// Why bytes from the network are not a valid packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge { size: usize, max: usize },
    #[error("variable byte integer has more than 4 bytes")]
    VarIntTooLong,
    #[error("variable byte integer is not in its shortest form")]
    VarIntNotMinimal,
    #[error("packet type 0 is reserved")]
    ReservedPacketType,
    #[error("{packet} is not a packet of MQTT {version}")]
    PacketNotInVersion {
        packet: PacketType,
        version: ProtocolVersion,
    },
    #[error("the first packet must be CONNECT, got {0}")]
    ExpectedConnect(PacketType),
    #[error("fixed header flags {flags:#06b} are invalid for {packet}")]
    InvalidFlags { packet: PacketType, flags: u8 },
    #[error("QoS 3 is not a QoS level")]
    InvalidQoS,
    #[error("DUP is set on a QoS 0 PUBLISH")]
    DupOnQoS0,
    #[error("packet ends inside its {0}")]
    Truncated(&'static str),
    #[error("{0} bytes follow the packet's last field")]
    TrailingBytes(usize),
    #[error("{0}")]
    String(#[from] StringError),
    #[error("packet identifier 0 where a non-zero one is required")]
    PacketIdZero,
    #[error("protocol name is not \"MQTT\" or \"MQIsdp\"")]
    InvalidProtocolName,
    #[error("protocol level {0} is not supported")]
    UnsupportedProtocolVersion(u8),
    #[error("CONNECT reserved flag is set")]
    ConnectReservedFlag,
    #[error("will QoS or will retain is set without the will flag")]
    WillFlagsWithoutWill,
    #[error("password flag is set without the user name flag")]
    PasswordWithoutUsername,
    #[error("CONNACK acknowledge flags have reserved bits set")]
    ConnAckReservedFlags,
    #[error("unknown property identifier {0:#04x}")]
    UnknownProperty(u32),
    #[error("property {property} is not allowed in {packet}")]
    PropertyNotAllowed {
        property: PropertyId,
        packet: PacketType,
    },
    #[error("property {0} appears more than once")]
    DuplicateProperty(PropertyId),
    #[error("property {property} has the invalid value {value}")]
    InvalidPropertyValue { property: PropertyId, value: u32 },
    #[error("authentication data without an authentication method")]
    AuthDataWithoutMethod,
    #[error("topic alias 0 is not allowed")]
    TopicAliasZero,
    #[error("PUBLISH has an empty topic name and no topic alias")]
    MissingTopic,
    #[error("reason code {code:#04x} is not valid in {packet}")]
    InvalidReasonCode { packet: PacketType, code: u8 },
    #[error("{0} carries no topic filter")]
    NoTopicFilters(PacketType),
    #[error("subscription options have reserved bits set")]
    SubscriptionOptionsReserved,
    #[error("retain handling 3 is not defined")]
    InvalidRetainHandling,
    #[error("subscription Maximum QoS 3 (a protocol error in MQTT 5.0, section 3.8.3.1)")]
    InvalidMaximumQoS,
    #[error("AUTH continues or restarts authentication without an authentication method")]
    AuthMethodMissing,
    #[error("no local is set on a shared subscription")]
    NoLocalOnSharedSubscription,
}

impl DecodeError {
    /// The reason code a server reports for this error (MQTT 5.0 sections 2.4 and 4.13).
    pub fn reason_code(&self) -> ReasonCode {
        use DecodeError as E;
        match self {
            E::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            E::UnsupportedProtocolVersion(_) => ReasonCode::UnsupportedProtocolVersion,
            E::TopicAliasZero => ReasonCode::TopicAliasInvalid,
            E::String(StringError::WildcardInTopicName) => ReasonCode::TopicNameInvalid,
            E::ExpectedConnect(_)
            | E::PacketIdZero
            | E::DuplicateProperty(_)
            | E::InvalidPropertyValue { .. }
            | E::AuthDataWithoutMethod
            | E::MissingTopic
            | E::NoTopicFilters(_)
            | E::InvalidRetainHandling
            | E::InvalidMaximumQoS
            | E::AuthMethodMissing
            | E::NoLocalOnSharedSubscription => ReasonCode::ProtocolError,
            E::VarIntTooLong
            | E::VarIntNotMinimal
            | E::ReservedPacketType
            | E::PacketNotInVersion { .. }
            | E::InvalidFlags { .. }
            | E::InvalidQoS
            | E::DupOnQoS0
            | E::Truncated(_)
            | E::TrailingBytes(_)
            | E::String(_)
            | E::InvalidProtocolName
            | E::ConnectReservedFlag
            | E::WillFlagsWithoutWill
            | E::PasswordWithoutUsername
            | E::ConnAckReservedFlags
            | E::UnknownProperty(_)
            | E::PropertyNotAllowed { .. }
            | E::InvalidReasonCode { .. }
            | E::SubscriptionOptionsReserved => ReasonCode::MalformedPacket,
        }
    }
}

/// Why a packet cannot be written in the requested protocol version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{packet} is not a packet of MQTT {version}")]
    PacketNotInVersion {
        packet: PacketType,
        version: ProtocolVersion,
    },
    #[error("packet body of {0} bytes exceeds MQTT's 268,435,455-byte remaining length")]
    TooLarge(usize),
    #[error("{0} is longer than 65,535 bytes")]
    FieldTooLong(&'static str),
    #[error("QoS 0 PUBLISH with a packet identifier, or QoS 1/2 without one")]
    PacketIdMismatch,
    #[error("PUBLISH has an empty topic name and no topic alias")]
    MissingTopic,
    #[error("{0} needs at least one entry")]
    Empty(&'static str),
}
