//! Storage: per-shard segment logs on memory-mapped files. A pure component: no glommio;
//! the calls that block are explicit jobs the shard runs off its loop
//! (`crate::shard::storage`). What the broker writes in the records is [`state`].
//!
//! # Layout on disk
//!
//! ```text
//! data_dir/shard-N/                      one log per shard (see shard_dir)
//!     00000000000000000000.seg           segments, named by base offset (20 digits)
//!     00000000000000065472.seg
//!     00000000000000065472.seg.torn-…    bytes recovery cut off as a torn tail (kept)
//!     00000000000000130944.seg.corrupt   a segment an operator moved aside (skipped)
//! ```
//!
//! A **log offset** ([`LogOffset`]) is a byte address in the shard's log: a record at byte
//! `64 + p` of the segment with base `b` has offset `b + p`, and the next segment's base is
//! `b` plus this segment's data capacity (its size minus the 64-byte header). So offsets
//! grow monotonically, a segment's name is known before it is filled (which is what lets it
//! be created ahead of time), and an offset finds its record without an index. The unused
//! end of a full segment is a gap in the offsets.
//!
//! # Segment file
//!
//! Fixed size (`storage.segment_bytes`, a multiple of 4096), allocated and zero-filled
//! when created. All integers little-endian.
//!
//! | bytes      | field         | value                                                |
//! |------------|---------------|------------------------------------------------------|
//! | 0..8       | magic         | `89 52 49 4E 47 4D 51 0A` (`\x89RINGMQ\n`)           |
//! | 8..10      | version       | u16, 1                                               |
//! | 10..12     | header length | u16, 64                                              |
//! | 12..16     | flags         | u32, 0                                               |
//! | 16..24     | base offset   | u64, log offset of byte 64                           |
//! | 24..32     | segment size  | u64, file length in bytes                            |
//! | 32..60     | reserved      | zero                                                 |
//! | 60..64     | header CRC    | u32, CRC-32C of bytes 0..60                          |
//! | 64..       | frames        | records back to back, then zeroes to the end         |
//!
//! # Record frame
//!
//! | bytes      | field  | value                                                       |
//! |------------|--------|-------------------------------------------------------------|
//! | 0..4       | len    | u32, body length in bytes                                   |
//! | 4..8       | crc32c | u32, CRC-32C of bytes 0..4, byte 8 and the body             |
//! | 8          | type   | u8, [`RecordType`]; 0 is reserved                           |
//! | 9..9+len   | body   | bytes, meaning given by the type (the layer above)          |
//!
//! A frame header of nine zero bytes is the end of the written region.
//!
//! # Durability and recovery
//!
//! - Appends are memcpys into a mapped page that [`Segment::create`] pre-faulted. A record
//!   is durable once a [`FlushJob`] covering it has run (`msync(MS_SYNC)`); the shard runs
//!   it off its loop and acknowledges what it covered ([`Log::complete_flush`]).
//! - The next segment is created, allocated (`posix_fallocate`, so a write through the
//!   map cannot hit ENOSPC) and pre-faulted ahead of time by a [`PrepareJob`]. The log
//!   moves to it only once the full segment is entirely flushed, so after a crash only the
//!   last segment that holds data can have a torn tail.
//! - Recovery ([`Recovery`], or [`Log::open`]) checks every header and that the segments
//!   are contiguous, then every record's CRC. At the end of the last segment holding data,
//!   damage a crash can leave is a **torn tail**: a partial frame, a bad frame with no
//!   valid frame after it, a bad frame containing a zeroed 512-byte run (a sector that
//!   never reached the disk), or bytes after the end marker. It is saved to
//!   `….seg.torn-{offset}`, zeroed, and reported ([`TornTail`]). Anything else — a bad
//!   frame followed by a valid one, damage in an earlier segment, a bad magic, an unknown
//!   version, a bad header, a missing segment — is a [`PersistError`] naming the file: the
//!   broker must not start over it, and nothing is dropped silently.
//!
//! # Moving a segment aside
//!
//! When recovery refuses a segment, stop the broker, copy the file somewhere safe, and
//! rename it in place to `{name}.corrupt` (e.g. `00000000000000065472.seg.corrupt`).
//! Recovery then skips it, accepting the gap in offsets it leaves, and lists it in
//! [`RecoveryReport::quarantined`]; the records in it are lost to the broker. Deleting the
//! file instead makes recovery refuse the gap.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod error;
mod log;
pub mod record;
mod segment;
pub mod state;

use std::fmt;

pub use error::{AppendError, Corruption, PersistError, ReadError};
pub use log::{
    shard_dir, FlushJob, Flushed, Log, LogOptions, LogRecord, PrepareJob, PreparedSegment,
    Recovery, RecoveryReport, RemoveJob, Scan, Scanned, TornTail,
};
pub use record::{RecordType, TornCause};
pub use segment::{
    file_name, FlushRange, Segment, SegmentHeader, FORMAT_VERSION, HEADER_LEN, MAGIC,
    SEGMENT_ALIGN_BYTES,
};

/// A byte address in a shard's log (see the module doc). Offsets from
/// [`Log::append`] address records; others may fall in the gap at a segment's end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogOffset(u64);

impl LogOffset {
    pub const fn new(offset: u64) -> LogOffset {
        LogOffset(offset)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// `self + bytes`, saturating (a log never gets near 2^64 bytes).
    pub fn add_bytes(self, bytes: usize) -> LogOffset {
        LogOffset(
            self.0
                .saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX)),
        )
    }

    pub fn checked_add(self, bytes: u64) -> Option<LogOffset> {
        self.0.checked_add(bytes).map(LogOffset)
    }

    /// Bytes from `earlier` to `self`; `None` if `earlier` is after `self` or the distance
    /// does not fit a `usize`.
    pub fn bytes_since(self, earlier: LogOffset) -> Option<usize> {
        usize::try_from(self.0.checked_sub(earlier.0)?).ok()
    }
}

impl fmt::Display for LogOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
