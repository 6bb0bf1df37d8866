//! Bounds-checked readers and writers for MQTT's data representations (MQTT 5.0 section 1.5).
//!
//! Every read names the field it reads, so a truncated packet reports which field was cut
//! short. Reads never panic and never copy: strings and binary data are `Bytes` slices of
//! the packet's buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::DecodeError;
use super::topic::MqttString;

/// The largest value a Variable Byte Integer can hold (four bytes of seven bits).
pub const VARINT_MAX: u32 = 268_435_455;

/// A cursor over one packet's body.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let [b] = self.array::<1>(field)?;
        Ok(b)
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.array(field).map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_be_bytes)
    }

    /// The next `N` bytes by value; advancing touches no reference count.
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let head = self
            .buf
            .first_chunk::<N>()
            .copied()
            .ok_or(DecodeError::Truncated(field))?;
        self.buf.advance(N);
        Ok(head)
    }

    /// A Variable Byte Integer in its shortest form [MQTT-1.5.5-1].
    pub(crate) fn varint(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        match decode_varint(&self.buf)? {
            Some((value, used)) => {
                self.buf.advance(used);
                Ok(value)
            }
            None => Err(DecodeError::Truncated(field)),
        }
    }

    /// The next `n` bytes, without copying.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated(field));
        }
        Ok(self.buf.split_to(n))
    }

    /// Binary Data: a two-byte length and that many bytes.
    pub(crate) fn binary(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u16(field)?;
        self.take(usize::from(len), field)
    }

    /// A UTF-8 Encoded String [MQTT-1.5.4-1, MQTT-1.5.4-2].
    pub(crate) fn string(&mut self, field: &'static str) -> Result<MqttString, DecodeError> {
        let raw = self.binary(field)?;
        MqttString::from_bytes(raw).map_err(DecodeError::from)
    }

    /// A reader over the next `n` bytes; this reader moves past them.
    pub(crate) fn sub(&mut self, n: usize, field: &'static str) -> Result<Reader, DecodeError> {
        self.take(n, field).map(Reader::new)
    }

    /// Everything left, e.g. a PUBLISH payload.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Fails if any byte is left: a packet must end where its remaining length says.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

/// Decodes a Variable Byte Integer from the front of `buf`.
///
/// `Ok(None)`: `buf` ends before the integer does. A fifth byte, or a value not in its
/// shortest form, is malformed.
pub(crate) fn decode_varint(buf: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for (i, &b) in buf.iter().enumerate().take(4) {
        value |= u32::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            // A last byte of 0 after the first means a longer encoding than needed.
            if i > 0 && b == 0 {
                return Err(DecodeError::VarIntNotMinimal);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(DecodeError::VarIntTooLong)
    } else {
        Ok(None)
    }
}

/// How many bytes `value` takes as a Variable Byte Integer.
pub(crate) const fn varint_len(value: usize) -> usize {
    if value < 128 {
        1
    } else if value < 16_384 {
        2
    } else if value < 2_097_152 {
        3
    } else {
        4
    }
}

/// Writes `value` as a Variable Byte Integer. Callers check `value <= VARINT_MAX` first.
pub(crate) fn put_varint(buf: &mut BytesMut, value: usize) {
    let mut v = value;
    loop {
        let mut b = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            b |= 0x80;
        }
        buf.put_u8(b);
        if v == 0 {
            break;
        }
    }
}

/// Binary Data or a string: two-byte length, then the bytes. Callers guarantee
/// `data.len() <= 65535` (checked by [`binary_len`] before encoding starts).
pub(crate) fn put_binary(buf: &mut BytesMut, data: &[u8]) {
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
}

pub(crate) fn put_string(buf: &mut BytesMut, s: &MqttString) {
    put_binary(buf, s.as_bytes());
}

/// Encoded length of Binary Data; `None` if it is too long for its two-byte length.
pub(crate) fn binary_len(data: &[u8]) -> Option<usize> {
    (data.len() <= usize::from(u16::MAX)).then_some(2 + data.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_boundaries_roundtrip() {
        for v in [
            0usize,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            268_435_455,
        ] {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            assert_eq!(decode_varint(&b), Ok(Some((v as u32, b.len()))));
        }
    }

    #[test]
    fn varint_rejects_fifth_byte_mqtt_1_5_5() {
        assert_eq!(
            decode_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            Err(DecodeError::VarIntTooLong)
        );
    }

    #[test]
    fn varint_rejects_non_minimal_mqtt_1_5_5_1() {
        assert_eq!(
            decode_varint(&[0x80, 0x00]),
            Err(DecodeError::VarIntNotMinimal)
        );
        assert_eq!(
            decode_varint(&[0x81, 0x80, 0x00]),
            Err(DecodeError::VarIntNotMinimal)
        );
    }

    #[test]
    fn varint_incomplete_is_none() {
        assert_eq!(decode_varint(&[]), Ok(None));
        assert_eq!(decode_varint(&[0x80, 0x80]), Ok(None));
    }

    #[test]
    fn reader_names_the_truncated_field() {
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x05, b'a']));
        assert_eq!(
            r.string("topic name"),
            Err(DecodeError::Truncated("topic name"))
        );
    }
}
