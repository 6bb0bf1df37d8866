//! The storage layer's errors. Every one names the file, and the offset where there is one.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::record::{FrameError, TornCause};
use super::LogOffset;

/// The hint every "this segment cannot be read" error ends with.
const MOVE_ASIDE: &str = "to start without this segment, rename it to *.seg.corrupt \
                          (see ringmq::persist, \"Moving a segment aside\")";

/// A failure of the storage layer. Variants other than `Io` mean the data on disk is not
/// what ringmq wrote, or not a format this build reads: the broker must not start over it.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{}: {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: bad magic {found:02x?}: not a ringmq segment; {MOVE_ASIDE}", path.display())]
    BadMagic { path: PathBuf, found: [u8; 8] },
    #[error(
        "{}: segment format version {found}, this build reads version {supported}; \
         {MOVE_ASIDE}",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u16,
        supported: u16,
    },
    #[error("{}: bad segment header: {reason}; {MOVE_ASIDE}", path.display())]
    BadHeader { path: PathBuf, reason: String },
    #[error(
        "{}: corrupt record at log offset {offset} (byte {position} of the file): {cause}; \
         {MOVE_ASIDE}",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        offset: LogOffset,
        position: u64,
        cause: Corruption,
    },
    #[error(
        "{}: segment starts at log offset {found}, but the one before it ends at {expected}: \
         a segment is missing (only a segment renamed to *.seg.corrupt may leave a gap)",
        path.display()
    )]
    Gap {
        path: PathBuf,
        expected: LogOffset,
        found: LogOffset,
    },
}

impl PersistError {
    pub(crate) fn io(path: &Path, op: &'static str, source: io::Error) -> PersistError {
        PersistError::Io {
            path: path.to_owned(),
            op,
            source,
        }
    }

    pub(crate) fn bad_header(path: &Path, reason: impl Into<String>) -> PersistError {
        PersistError::BadHeader {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    /// Whether the error is about the contents of a file (not an I/O failure).
    pub fn is_corruption(&self) -> bool {
        !matches!(self, PersistError::Io { .. })
    }
}

/// What is wrong with a corrupt record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// A bad frame that a torn write cannot explain (a valid frame follows it).
    Frame(FrameError),
    /// Damage a torn write could explain, but in a segment that later segments follow: a
    /// segment is flushed before the log writes into the next one, so it cannot be torn.
    NotLastSegment(TornCause),
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::Frame(error) => write!(f, "{error}"),
            Corruption::NotLastSegment(cause) => {
                write!(f, "{cause}, in a segment that is not the last one written")
            }
        }
    }
}

/// Why [`Log::append`](super::Log::append) did not append. None of these lose data; the
/// last two say which blocking call to run off the shard's loop before appending again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("record of {frame_bytes} bytes exceeds the {max_frame_bytes} bytes a segment holds")]
    TooLarge {
        frame_bytes: usize,
        max_frame_bytes: usize,
    },
    #[error("the segment is full and not flushed: run a flush job before rolling")]
    NeedsFlush,
    #[error("the segment is full and the next one is not prepared: run a prepare job")]
    NeedsNextSegment,
}

/// Why [`Log::read`](super::Log::read) found no record at an offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("log offset {0} is outside the log")]
    OutOfRange(LogOffset),
    #[error("{}: no valid record at log offset {offset}", path.display())]
    NotARecord { path: PathBuf, offset: LogOffset },
}
