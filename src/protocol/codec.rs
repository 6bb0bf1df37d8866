//! Framing and dispatch: the fixed header, the packet size check, then the packet family's
//! decoder; and the reverse for encoding.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::packets::Packet;
use super::primitives::{decode_varint, put_varint, varint_len, Reader, VARINT_MAX};
use super::{PacketType, ProtocolVersion};

/// The largest packet MQTT can frame: one type byte, four length bytes, and the largest
/// remaining length.
pub const MAX_PACKET_BYTES: usize = 1 + 4 + VARINT_MAX as usize;

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    pub packet_type: PacketType,
    /// The low nibble of the first byte.
    pub flags: u8,
    /// Bytes after the fixed header.
    pub remaining_len: usize,
    /// Bytes of the fixed header itself (2 to 5).
    pub header_len: usize,
}

impl FixedHeader {
    /// The whole packet's size in bytes.
    pub fn packet_len(&self) -> usize {
        self.header_len + self.remaining_len
    }
}

/// How far the bytes at the front of a buffer get towards a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// The fixed header is complete; the body may still be arriving.
    Header(FixedHeader),
    /// At least `needed` more bytes are needed to finish the fixed header.
    Incomplete { needed: usize },
}

/// Parses the fixed header at the front of `buf` and checks, before any body is buffered,
/// that the type is defined, that reserved flags hold their required values [MQTT-2.1.3-1],
/// and that the whole packet fits in `max_packet_bytes`.
pub fn parse_fixed_header(buf: &[u8], max_packet_bytes: usize) -> Result<Frame, DecodeError> {
    let Some((&first, rest)) = buf.split_first() else {
        return Ok(Frame::Incomplete { needed: 2 });
    };
    let packet_type = PacketType::from_u8(first >> 4).ok_or(DecodeError::ReservedPacketType)?;
    let flags = first & 0x0F;
    match packet_type.required_flags() {
        Some(required) if flags != required => {
            return Err(DecodeError::InvalidFlags {
                packet: packet_type,
                flags,
            })
        }
        Some(_) => {}
        None => check_publish_flags(flags)?,
    }
    let Some((remaining, used)) = decode_varint(rest)? else {
        return Ok(Frame::Incomplete { needed: 1 });
    };
    let header = FixedHeader {
        packet_type,
        flags,
        remaining_len: remaining as usize,
        header_len: 1 + used,
    };
    if header.packet_len() > max_packet_bytes {
        return Err(DecodeError::PacketTooLarge {
            size: header.packet_len(),
            max: max_packet_bytes,
        });
    }
    Ok(Frame::Header(header))
}

fn check_publish_flags(flags: u8) -> Result<(), DecodeError> {
    let qos = (flags >> 1) & 0b11;
    if qos == 3 {
        return Err(DecodeError::InvalidQoS);
    }
    if qos == 0 && flags & 0b1000 != 0 {
        return Err(DecodeError::DupOnQoS0);
    }
    Ok(())
}

/// The outcome of [`decode`] when the bytes are not wrong.
// Not boxed: a packet is the common outcome, and boxing it would cost an allocation per
// PUBLISH on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole packet, removed from the front of the buffer.
    Packet(Packet),
    /// The buffer holds the start of a packet; at least `needed` more bytes are needed.
    /// Nothing was consumed. An expected outcome, not an error.
    Incomplete { needed: usize },
}

/// Decodes one packet from the front of `buf`.
///
/// `version` is the connection's protocol version, `None` until its CONNECT is decoded:
/// then only CONNECT is accepted [MQTT-3.1.0-1]. A CONNECT always decodes by its own
/// protocol level. On success the packet's bytes are split off `buf` without copying; on
/// `Incomplete` or an error, `buf` is left as it was.
pub fn decode(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_bytes: usize,
) -> Result<Decoded, DecodeError> {
    let header = match parse_fixed_header(buf, max_packet_bytes)? {
        Frame::Header(h) => h,
        Frame::Incomplete { needed } => return Ok(Decoded::Incomplete { needed }),
    };
    let version = match (version, header.packet_type) {
        (_, PacketType::Connect) => None,
        (Some(v), _) => Some(v),
        (None, other) => return Err(DecodeError::ExpectedConnect(other)),
    };
    if buf.len() < header.packet_len() {
        return Ok(Decoded::Incomplete {
            needed: header.packet_len() - buf.len(),
        });
    }
    let packet = buf.split_to(header.packet_len()).freeze();
    let mut body = packet.clone();
    body.advance(header.header_len);
    match decode_body(header, body, version) {
        Ok(p) => Ok(Decoded::Packet(p)),
        Err(e) => {
            // Put the bytes back, as documented. A copy, but only on the error path, where
            // the connection is about to close anyway.
            let mut restored = BytesMut::with_capacity(packet.len() + buf.len());
            restored.extend_from_slice(&packet);
            restored.extend_from_slice(buf);
            *buf = restored;
            Err(e)
        }
    }
}

fn decode_body(
    header: FixedHeader,
    body: Bytes,
    version: Option<ProtocolVersion>,
) -> Result<Packet, DecodeError> {
    use super::packets as p;
    let r = Reader::new(body);
    let t = header.packet_type;
    let v = || version.ok_or(DecodeError::ExpectedConnect(t));
    Ok(match t {
        PacketType::Connect => Packet::Connect(Box::new(p::Connect::decode(r)?)),
        PacketType::ConnAck => Packet::ConnAck(Box::new(p::ConnAck::decode(r, v()?)?)),
        PacketType::Publish => Packet::Publish(p::Publish::decode(r, header.flags, v()?)?),
        PacketType::PubAck => Packet::PubAck(p::Ack::decode(r, t, v()?)?),
        PacketType::PubRec => Packet::PubRec(p::Ack::decode(r, t, v()?)?),
        PacketType::PubRel => Packet::PubRel(p::Ack::decode(r, t, v()?)?),
        PacketType::PubComp => Packet::PubComp(p::Ack::decode(r, t, v()?)?),
        PacketType::Subscribe => Packet::Subscribe(p::Subscribe::decode(r, v()?)?),
        PacketType::SubAck => Packet::SubAck(p::SubAck::decode(r, v()?)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(p::Unsubscribe::decode(r, v()?)?),
        PacketType::UnsubAck => Packet::UnsubAck(p::UnsubAck::decode(r, v()?)?),
        PacketType::PingReq => r.finish().map(|()| Packet::PingReq)?,
        PacketType::PingResp => r.finish().map(|()| Packet::PingResp)?,
        PacketType::Disconnect => Packet::Disconnect(p::Disconnect::decode(r, v()?)?),
        PacketType::Auth => match v()? {
            ProtocolVersion::V5 => Packet::Auth(p::Auth::decode(r)?),
            version => return Err(DecodeError::PacketNotInVersion { packet: t, version }),
        },
    })
}

impl Packet {
    /// Encoded size of this packet for a `version` peer, fixed header included.
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        let body = self.body_len(version)?;
        if body > VARINT_MAX as usize {
            return Err(EncodeError::TooLarge(body));
        }
        Ok(1 + varint_len(body) + body)
    }

    /// Appends this packet, encoded for a `version` peer, to `buf`.
    ///
    /// Fields `version` cannot carry (v5 properties, reason codes a v3 packet has no room
    /// for) are left out. A CONNECT is written in its own `protocol` version. On error
    /// nothing is appended.
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let body = self.body_len(version)?;
        if body > VARINT_MAX as usize {
            return Err(EncodeError::TooLarge(body));
        }
        let start = buf.len();
        buf.reserve(1 + varint_len(body) + body);
        buf.put_u8(((self.packet_type() as u8) << 4) | self.flags());
        put_varint(buf, body);
        let written = self.write_body(version, buf);
        if written.is_err() {
            buf.truncate(start);
        }
        written
    }

    /// The encoded packet as a new buffer.
    pub fn to_bytes(&self, version: ProtocolVersion) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::new();
        self.encode(version, &mut buf)?;
        Ok(buf.freeze())
    }
}
