//! Record framing: encode and decode one `len | crc32c | type | body` frame, and classify how
//! a region of frames ends (clean, torn by a crash, or corrupt). Pure: no I/O.
//!
//! | bytes      | field  | meaning                                                       |
//! |------------|--------|---------------------------------------------------------------|
//! | 0..4       | len    | u32 LE: length of `body` in bytes                             |
//! | 4..8       | crc32c | u32 LE: CRC-32C (Castagnoli) of bytes 0..4, 8 and the body   |
//! | 8          | type   | u8: [`RecordType`], never 0 (0 is reserved: see below)        |
//! | 9..9+len   | body   | opaque to this layer                                          |
//!
//! A frame whose first [`FRAME_HEADER_LEN`] bytes are all zero marks the end of the written
//! region: segments are zero-filled when created, and a real frame always has a non-zero
//! type byte. Frames are packed back to back without padding.

use std::fmt;
use std::num::NonZeroU8;

/// Length of a frame's header (`len`, `crc32c`, `type`): 9 bytes.
pub const FRAME_HEADER_LEN: usize = 9;

/// A run of at least this many zero bytes inside a damaged frame means a sector that was
/// never written (a torn write), not a flipped bit: disks write whole 512-byte sectors.
pub const TORN_ZERO_RUN_BYTES: usize = 512;

/// What a record is, as the layer above defines it. 0 is reserved (the end marker), so a
/// zeroed header can never be mistaken for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordType(NonZeroU8);

impl RecordType {
    /// `None` for 0, which is reserved.
    pub const fn new(value: u8) -> Option<RecordType> {
        match NonZeroU8::new(value) {
            Some(value) => Some(RecordType(value)),
            None => None,
        }
    }

    /// The type byte as written on disk.
    pub const fn get(self) -> u8 {
        self.0.get()
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x}", self.get())
    }
}

/// One decoded record, borrowing its body from the buffer it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub record_type: RecordType,
    pub body: &'a [u8],
}

/// The outcome of decoding the bytes at one position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A complete record whose CRC matches; the frame is `frame_len` bytes long.
    Record {
        record: Record<'a>,
        frame_len: usize,
    },
    /// The frame header is all zeroes: nothing was written here.
    End,
    /// The buffer ends inside the frame (its header, or the body its `len` announces):
    /// at least `needed` more bytes would be required.
    Incomplete { needed: usize },
}

/// A frame that is all there but is not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record type 0 is reserved")]
    ReservedType,
}

/// A record that cannot be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("record body of {len} bytes exceeds the u32 length field")]
    BodyTooLong { len: usize },
    #[error("frame of {needed} bytes does not fit in the {available} bytes left")]
    NoRoom { needed: usize, available: usize },
}

/// Bytes a frame with a body of `body_len` bytes takes; `None` if `len` cannot say it.
pub fn frame_len(body_len: usize) -> Option<usize> {
    u32::try_from(body_len).ok()?;
    body_len.checked_add(FRAME_HEADER_LEN)
}

fn checksum(len_bytes: [u8; 4], record_type: u8, body: &[u8]) -> u32 {
    let head = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), &[record_type]);
    crc32c::crc32c_append(head, body)
}

/// Writes one frame at the start of `out`; returns its length.
pub fn encode(record_type: RecordType, body: &[u8], out: &mut [u8]) -> Result<usize, EncodeError> {
    let header = encode_header(record_type, body)?;
    let needed = FRAME_HEADER_LEN + body.len();
    let available = out.len();
    let frame = out
        .get_mut(..needed)
        .ok_or(EncodeError::NoRoom { needed, available })?;
    let (head, rest) = frame.split_at_mut(FRAME_HEADER_LEN);
    head.copy_from_slice(&header);
    rest.copy_from_slice(body);
    Ok(needed)
}

/// The header of the frame holding `body`: the body follows it unchanged, so a writer can
/// copy both straight to their place.
pub fn encode_header(
    record_type: RecordType,
    body: &[u8],
) -> Result<[u8; FRAME_HEADER_LEN], EncodeError> {
    let len =
        u32::try_from(body.len()).map_err(|_| EncodeError::BodyTooLong { len: body.len() })?;
    let len_bytes = len.to_le_bytes();
    let [l0, l1, l2, l3] = len_bytes;
    let [c0, c1, c2, c3] = checksum(len_bytes, record_type.get(), body).to_le_bytes();
    Ok([l0, l1, l2, l3, c0, c1, c2, c3, record_type.get()])
}

/// One frame as a new vector (tests, tools).
pub fn encode_to_vec(record_type: RecordType, body: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let len = frame_len(body.len()).ok_or(EncodeError::BodyTooLong { len: body.len() })?;
    let mut out = vec![0; len];
    encode(record_type, body, &mut out)?;
    Ok(out)
}

/// Decodes the frame at the start of `buf`. Never panics, whatever the bytes.
pub fn decode(buf: &[u8]) -> Result<Decoded<'_>, FrameError> {
    let Some((header, rest)) = buf.split_first_chunk::<FRAME_HEADER_LEN>() else {
        if buf.iter().all(|&b| b == 0) {
            return Ok(Decoded::End);
        }
        return Ok(Decoded::Incomplete {
            needed: FRAME_HEADER_LEN - buf.len(),
        });
    };
    if header.iter().all(|&b| b == 0) {
        return Ok(Decoded::End);
    }
    let [l0, l1, l2, l3, c0, c1, c2, c3, record_type] = *header;
    let len_bytes = [l0, l1, l2, l3];
    // A u32 always fits in usize on the 64-bit targets ringmq runs on; saturate otherwise.
    let len = usize::try_from(u32::from_le_bytes(len_bytes)).unwrap_or(usize::MAX);
    let Some(body) = rest.get(..len) else {
        return Ok(Decoded::Incomplete {
            needed: len - rest.len(),
        });
    };
    let stored = u32::from_le_bytes([c0, c1, c2, c3]);
    let computed = checksum(len_bytes, record_type, body);
    if stored != computed {
        return Err(FrameError::CrcMismatch { stored, computed });
    }
    let record_type = RecordType::new(record_type).ok_or(FrameError::ReservedType)?;
    Ok(Decoded::Record {
        record: Record { record_type, body },
        frame_len: FRAME_HEADER_LEN + len,
    })
}

/// Why a region's tail is taken for a crash's torn write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TornCause {
    /// The region ends inside a frame.
    Incomplete,
    /// A bad frame with nothing valid after it, or with a zeroed (unwritten) sector inside.
    Frame(FrameError),
    /// An end marker (zeroed header) with non-zero bytes after it.
    DataAfterEnd,
}

impl fmt::Display for TornCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TornCause::Incomplete => f.write_str("the last frame is incomplete"),
            TornCause::Frame(error) => write!(f, "{error}"),
            TornCause::DataAfterEnd => f.write_str("non-zero bytes after the end marker"),
        }
    }
}

/// How a region of frames ends, once [`Frames`] has yielded every valid record.
///
/// Positions are byte positions in the region. Everything before `len` (or `at`) was
/// yielded as records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionEnd {
    /// Valid frames, then zeroes to the end of the region.
    Clean { len: usize },
    /// Valid frames up to `len`, then damage a crash can leave: a partial frame, a bad frame
    /// with nothing valid after it or with an unwritten (zeroed) sector inside it, or stray
    /// bytes after the end marker. The last non-zero byte is at `dirty_end - 1`.
    Torn {
        len: usize,
        dirty_end: usize,
        cause: TornCause,
    },
    /// A bad frame at `at` followed by a valid frame, with no zeroed sector inside: not a
    /// torn write but corruption.
    Corrupt { at: usize, error: FrameError },
}

impl RegionEnd {
    /// Length of the valid prefix.
    pub fn valid_len(&self) -> usize {
        match *self {
            RegionEnd::Clean { len } | RegionEnd::Torn { len, .. } => len,
            RegionEnd::Corrupt { at, .. } => at,
        }
    }
}

/// Iterates over the valid records of a region of back-to-back frames, yielding each with
/// its position; afterwards [`Frames::end`] says how the region ended.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    data: &'a [u8],
    pos: usize,
    end: Option<RegionEnd>,
}

impl<'a> Frames<'a> {
    pub fn new(data: &'a [u8]) -> Frames<'a> {
        Frames {
            data,
            pos: 0,
            end: None,
        }
    }

    /// How the region ended; `None` until the iterator has returned `None`.
    pub fn end(&self) -> Option<RegionEnd> {
        self.end
    }

    /// Runs the iterator to its end and returns how the region ended.
    pub fn finish(mut self) -> RegionEnd {
        for _ in self.by_ref() {}
        self.end.unwrap_or(RegionEnd::Clean { len: self.pos })
    }

    fn classify(
        &self,
        at: usize,
        rest: &[u8],
        outcome: Result<Decoded<'_>, FrameError>,
    ) -> RegionEnd {
        let dirty_end = || at + last_nonzero(rest).map_or(0, |i| i + 1);
        match outcome {
            Ok(Decoded::Record { .. }) => RegionEnd::Clean { len: at },
            Ok(Decoded::End) => match last_nonzero(rest) {
                None => RegionEnd::Clean { len: at },
                Some(_) => RegionEnd::Torn {
                    len: at,
                    dirty_end: dirty_end(),
                    cause: TornCause::DataAfterEnd,
                },
            },
            Ok(Decoded::Incomplete { .. }) => RegionEnd::Torn {
                len: at,
                dirty_end: dirty_end(),
                cause: TornCause::Incomplete,
            },
            Err(error) => {
                let frame = frame_extent(rest);
                let followed_by_record = frame.is_some_and(|frame| {
                    matches!(
                        rest.get(frame.len()..).map(decode),
                        Some(Ok(Decoded::Record { .. }))
                    )
                });
                if followed_by_record && !frame.is_some_and(has_zero_run) {
                    RegionEnd::Corrupt { at, error }
                } else {
                    RegionEnd::Torn {
                        len: at,
                        dirty_end: dirty_end(),
                        cause: TornCause::Frame(error),
                    }
                }
            }
        }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = (usize, Record<'a>);

    fn next(&mut self) -> Option<(usize, Record<'a>)> {
        if self.end.is_some() {
            return None;
        }
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let outcome = decode(rest);
        if let Ok(Decoded::Record { record, frame_len }) = outcome {
            let at = self.pos;
            self.pos += frame_len;
            return Some((at, record));
        }
        self.end = Some(self.classify(self.pos, rest, outcome));
        None
    }
}

/// The bytes of the frame at the start of `buf` as its header announces them, if they are
/// all in `buf`.
fn frame_extent(buf: &[u8]) -> Option<&[u8]> {
    let len_bytes = buf.first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len_bytes)).ok()?;
    buf.get(..frame_len(len)?)
}

fn has_zero_run(buf: &[u8]) -> bool {
    let mut run = 0;
    for &b in buf {
        run = if b == 0 { run + 1 } else { 0 };
        if run >= TORN_ZERO_RUN_BYTES {
            return true;
        }
    }
    false
}

/// Index of the last non-zero byte. Checks 64-byte blocks first, since it runs over the
/// whole free space of a segment on recovery.
pub fn last_nonzero(buf: &[u8]) -> Option<usize> {
    let mut end = buf.len();
    for block in buf.rchunks(64) {
        let start = end - block.len();
        if block.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            return block.iter().rposition(|&b| b != 0).map(|i| start + i);
        }
        end = start;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(value: u8) -> RecordType {
        RecordType::new(value).unwrap()
    }

    #[test]
    fn encodes_the_documented_layout() {
        let frame = encode_to_vec(ty(7), b"abc").unwrap();
        assert_eq!(&frame[0..4], &3u32.to_le_bytes());
        let mut crc_input = vec![3, 0, 0, 0, 7];
        crc_input.extend_from_slice(b"abc");
        assert_eq!(&frame[4..8], &crc32c::crc32c(&crc_input).to_le_bytes());
        assert_eq!(frame[8], 7);
        assert_eq!(&frame[9..], b"abc");
    }

    #[test]
    fn decodes_what_it_encodes() {
        let frame = encode_to_vec(ty(1), b"hello").unwrap();
        let decoded = decode(&frame).unwrap();
        assert_eq!(
            decoded,
            Decoded::Record {
                record: Record {
                    record_type: ty(1),
                    body: b"hello"
                },
                frame_len: 14
            }
        );
    }

    #[test]
    fn zero_header_is_the_end_marker() {
        assert_eq!(decode(&[0; 32]).unwrap(), Decoded::End);
        assert_eq!(decode(&[0; 3]).unwrap(), Decoded::End);
        assert_eq!(decode(&[]).unwrap(), Decoded::End);
    }

    #[test]
    fn partial_frames_are_incomplete() {
        let frame = encode_to_vec(ty(1), b"hello").unwrap();
        assert_eq!(
            decode(&frame[..4]).unwrap(),
            Decoded::Incomplete { needed: 5 }
        );
        assert_eq!(
            decode(&frame[..10]).unwrap(),
            Decoded::Incomplete { needed: 4 }
        );
    }

    #[test]
    fn flipped_body_byte_is_a_crc_mismatch() {
        let mut frame = encode_to_vec(ty(1), b"hello").unwrap();
        frame[10] ^= 0x20;
        assert!(matches!(
            decode(&frame),
            Err(FrameError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn type_zero_with_valid_crc_is_reserved() {
        let mut frame = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, b'x'];
        frame[0] = 1;
        let crc = checksum([1, 0, 0, 0], 0, b"x");
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&frame), Err(FrameError::ReservedType));
    }

    #[test]
    fn no_room_is_an_error() {
        let mut out = [0u8; 10];
        assert_eq!(
            encode(ty(1), b"ab", &mut out),
            Err(EncodeError::NoRoom {
                needed: 11,
                available: 10
            })
        );
    }

    fn region(bodies: &[&[u8]], size: usize) -> Vec<u8> {
        let mut data = Vec::new();
        for body in bodies {
            data.extend(encode_to_vec(ty(2), body).unwrap());
        }
        data.resize(size, 0);
        data
    }

    #[test]
    fn clean_region_yields_every_record() {
        let data = region(&[b"one", b"two", b""], 100);
        let mut frames = Frames::new(&data);
        let got: Vec<_> = frames.by_ref().map(|(at, r)| (at, r.body)).collect();
        assert_eq!(got, vec![(0, &b"one"[..]), (12, b"two"), (24, b"")]);
        assert_eq!(frames.end(), Some(RegionEnd::Clean { len: 33 }));
    }

    #[test]
    fn partial_last_frame_is_torn() {
        let full = region(&[b"one", b"two"], 24);
        let mut cut = full[..20].to_vec();
        cut.resize(100, 0);
        assert_eq!(
            Frames::new(&cut).finish(),
            RegionEnd::Torn {
                len: 12,
                dirty_end: 20,
                cause: TornCause::Frame(FrameError::CrcMismatch {
                    stored: u32::from_le_bytes(full[16..20].try_into().unwrap()),
                    computed: checksum([3, 0, 0, 0], 0, &[0, 0, 0]),
                })
            }
        );
        assert!(matches!(
            Frames::new(&full[..20]).finish(),
            RegionEnd::Torn {
                len: 12,
                cause: TornCause::Incomplete,
                ..
            }
        ));
    }

    #[test]
    fn bytes_after_the_end_marker_are_torn() {
        let mut data = region(&[b"one"], 100);
        data[50] = 9;
        assert_eq!(
            Frames::new(&data).finish(),
            RegionEnd::Torn {
                len: 12,
                dirty_end: 51,
                cause: TornCause::DataAfterEnd
            }
        );
    }

    #[test]
    fn bad_frame_followed_by_a_valid_one_is_corrupt() {
        let mut data = region(&[b"one", b"two", b"six"], 100);
        data[21] ^= 1;
        assert!(matches!(
            Frames::new(&data).finish(),
            RegionEnd::Corrupt {
                at: 12,
                error: FrameError::CrcMismatch { .. }
            }
        ));
    }

    #[test]
    fn bad_frame_with_a_zeroed_sector_is_torn() {
        let big = vec![0xAB; 3000];
        let mut data = region(&[b"one", &big, b"two"], 4000);
        // A sector in the middle of the big record never reached the disk.
        data[1000..1512].fill(0);
        assert!(matches!(
            Frames::new(&data).finish(),
            RegionEnd::Torn {
                len: 12,
                cause: TornCause::Frame(FrameError::CrcMismatch { .. }),
                ..
            }
        ));
    }

    #[test]
    fn last_nonzero_finds_the_last_byte() {
        let mut buf = vec![0u8; 1000];
        assert_eq!(last_nonzero(&buf), None);
        buf[0] = 1;
        assert_eq!(last_nonzero(&buf), Some(0));
        buf[999] = 1;
        assert_eq!(last_nonzero(&buf), Some(999));
        buf[999] = 0;
        buf[700] = 3;
        assert_eq!(last_nonzero(&buf), Some(700));
    }
}
