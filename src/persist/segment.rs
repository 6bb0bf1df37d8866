//! One segment: a fixed-size file, memory-mapped, with a 64-byte header and frames after it.
//! The memory map lives here, and with it the only `unsafe` code of the storage layer.
//!
//! Header (all integers little-endian):
//!
//! | bytes  | field         | value                                                     |
//! |--------|---------------|-----------------------------------------------------------|
//! | 0..8   | magic         | [`MAGIC`]: `89 52 49 4E 47 4D 51 0A` (`\x89RINGMQ\n`)     |
//! | 8..10  | version       | u16: [`FORMAT_VERSION`] (1)                               |
//! | 10..12 | header length | u16: [`HEADER_LEN`] (64)                                  |
//! | 12..16 | flags         | u32: 0 (no flag is defined in version 1)                  |
//! | 16..24 | base offset   | u64: log offset of the first byte after the header        |
//! | 24..32 | segment size  | u64: file length in bytes, header included                |
//! | 32..60 | reserved      | zero                                                      |
//! | 60..64 | header CRC    | u32: CRC-32C of bytes 0..60                               |
//!
//! Bytes 64.. hold frames back to back (see [`super::record`]), then zeroes to the end of
//! the file. A record at byte `64 + p` has log offset `base + p`.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use super::error::PersistError;
use super::record::{self, EncodeError, RecordType};
use super::LogOffset;

/// First bytes of every segment file. The high first byte and the trailing newline catch
/// files mangled by 7-bit or newline-translating copies.
pub const MAGIC: [u8; 8] = *b"\x89RINGMQ\n";
/// The segment format this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the segment header; frames start here.
pub const HEADER_LEN: usize = 64;
/// Segment sizes are multiples of this (the page size), and at least this.
pub const SEGMENT_ALIGN_BYTES: u64 = 4096;
/// Suffix of segment file names: `{base offset, 20 digits}.seg`.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// Suffix an operator appends to move a segment aside (`….seg.corrupt`); recovery skips it.
pub const QUARANTINE_SUFFIX: &str = ".seg.corrupt";
/// Suffix of a segment being created; a leftover one is removed on recovery.
pub const TEMP_SUFFIX: &str = ".seg.tmp";

const PAGE_BYTES: usize = 4096;

/// The file name of the segment whose base offset is `base`: 20 digits, so names sort in
/// offset order.
pub fn file_name(base: LogOffset) -> String {
    format!("{:020}{SEGMENT_SUFFIX}", base.get())
}

/// The base offset a segment file name says, `None` if it is not `{20 digits}{suffix}`.
pub fn parse_file_name(name: &str, suffix: &str) -> Option<LogOffset> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogOffset::new)
}

/// A segment header as decoded from (or encoded to) its first [`HEADER_LEN`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub base: LogOffset,
    pub segment_bytes: u64,
}

impl SegmentHeader {
    /// The header as it is written, version [`FORMAT_VERSION`].
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let fields: [(usize, &[u8]); 5] = [
            (0, &MAGIC),
            (8, &FORMAT_VERSION.to_le_bytes()),
            (10, &(HEADER_LEN as u16).to_le_bytes()),
            (16, &self.base.get().to_le_bytes()),
            (24, &self.segment_bytes.to_le_bytes()),
        ];
        for (at, bytes) in fields {
            if let Some(dst) = out.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        }
        let crc = crc32c::crc32c(out.get(..60).unwrap_or_default());
        if let Some(dst) = out.get_mut(60..) {
            dst.copy_from_slice(&crc.to_le_bytes());
        }
        out
    }

    /// Checks, in this order: magic, version, header length, CRC, flags, size.
    pub fn decode(path: &Path, bytes: &[u8; HEADER_LEN]) -> Result<SegmentHeader, PersistError> {
        let (magic, rest) = bytes.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
        if *magic != MAGIC {
            return Err(PersistError::BadMagic {
                path: path.to_owned(),
                found: *magic,
            });
        }
        let version = u16::from_le_bytes(field(rest, 0));
        if version != FORMAT_VERSION {
            return Err(PersistError::UnsupportedVersion {
                path: path.to_owned(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let header_len = u16::from_le_bytes(field(rest, 2));
        if usize::from(header_len) != HEADER_LEN {
            return Err(PersistError::bad_header(
                path,
                format!("header length {header_len}, expected {HEADER_LEN}"),
            ));
        }
        let stored = u32::from_le_bytes(field(bytes, 60));
        let computed = crc32c::crc32c(bytes.get(..60).unwrap_or_default());
        if stored != computed {
            return Err(PersistError::bad_header(
                path,
                format!("header CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"),
            ));
        }
        let flags = u32::from_le_bytes(field(bytes, 12));
        if flags != 0 {
            return Err(PersistError::bad_header(
                path,
                format!("unknown flags {flags:#010x}"),
            ));
        }
        let header = SegmentHeader {
            base: LogOffset::new(u64::from_le_bytes(field(bytes, 16))),
            segment_bytes: u64::from_le_bytes(field(bytes, 24)),
        };
        check_segment_bytes(header.segment_bytes).map_err(|r| PersistError::bad_header(path, r))?;
        if header.base.checked_add(header.segment_bytes).is_none() {
            return Err(PersistError::bad_header(path, "base offset overflows"));
        }
        Ok(header)
    }
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes
        .get(at..)
        .and_then(|rest| rest.first_chunk::<N>())
        .copied()
        .unwrap_or([0; N])
}

/// Whether a segment size is allowed: a multiple of [`SEGMENT_ALIGN_BYTES`], at least that,
/// and mappable on this machine.
pub fn check_segment_bytes(segment_bytes: u64) -> Result<(), String> {
    if segment_bytes < SEGMENT_ALIGN_BYTES || segment_bytes % SEGMENT_ALIGN_BYTES != 0 {
        return Err(format!(
            "segment size {segment_bytes} is not a positive multiple of {SEGMENT_ALIGN_BYTES}"
        ));
    }
    if usize::try_from(segment_bytes).is_err() {
        return Err(format!("segment size {segment_bytes} cannot be mapped"));
    }
    Ok(())
}

/// One memory-mapped segment file.
///
/// # Invariants
///
/// - `map` covers the whole file, `header.segment_bytes` long; the file length was checked
///   before mapping and nothing truncates it while mapped (the broker's `data_dir/LOCK`
///   keeps other ringmq processes out; anything else that truncates it gets us SIGBUS).
/// - All writes to the mapped bytes go through `&mut self` ([`Segment::append`],
///   [`Segment::zero`]); readers borrow `&self`. Other threads only msync
///   ([`FlushRange`]), which neither reads nor writes through Rust references.
/// - Bytes of the data region before `written` are complete, valid frames.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    header: SegmentHeader,
    map: Arc<MmapRaw>,
    written: usize,
}

impl Segment {
    /// Creates, allocates, maps and pre-faults a new empty segment in `dir`. Blocking (it
    /// allocates disk space, touches every page and fsyncs): run it off the shard's loop.
    ///
    /// The file is built as `….seg.tmp` and renamed when complete, so a crash never leaves
    /// a half-made segment under a segment name. An existing segment is never replaced.
    pub fn create(
        dir: &Path,
        base: LogOffset,
        segment_bytes: u64,
    ) -> Result<Segment, PersistError> {
        let path = dir.join(file_name(base));
        check_segment_bytes(segment_bytes).map_err(|r| PersistError::bad_header(&path, r))?;
        let len = usize::try_from(segment_bytes)
            .map_err(|_| PersistError::bad_header(&path, "segment size cannot be mapped"))?;
        if path.exists() {
            return Err(PersistError::io(
                &path,
                "create segment",
                std::io::ErrorKind::AlreadyExists.into(),
            ));
        }
        let temp = dir.join(format!("{}.tmp", file_name(base)));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(|e| PersistError::io(&temp, "create", e))?;
        allocate(&file, segment_bytes).map_err(|e| PersistError::io(&temp, "fallocate", e))?;
        file.sync_all()
            .map_err(|e| PersistError::io(&temp, "fsync", e))?;
        let map = map(&file, len).map_err(|e| PersistError::io(&temp, "mmap", e))?;
        let header = SegmentHeader {
            base,
            segment_bytes,
        };
        let mut segment = Segment {
            path: temp,
            header,
            map: Arc::new(map),
            written: 0,
        };
        segment.write_at(0, &header.encode());
        segment
            .map
            .flush_range(0, HEADER_LEN)
            .map_err(|e| PersistError::io(&segment.path, "msync header", e))?;
        segment.prefault();
        fs::rename(&segment.path, &path)
            .map_err(|e| PersistError::io(&segment.path, "rename", e))?;
        segment.path = path;
        sync_dir(dir)?;
        Ok(segment)
    }

    /// Opens an existing segment and checks its header against its name and length. The
    /// written length is unknown (0) until recovery has scanned it.
    pub fn open(path: &Path) -> Result<Segment, PersistError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| PersistError::io(path, "open", e))?;
        let file_len = file
            .metadata()
            .map_err(|e| PersistError::io(path, "stat", e))?
            .len();
        let mut bytes = [0u8; HEADER_LEN];
        if file_len < HEADER_LEN as u64 {
            return Err(PersistError::bad_header(
                path,
                format!("file is {file_len} bytes, shorter than the {HEADER_LEN}-byte header"),
            ));
        }
        file.read_exact(&mut bytes)
            .map_err(|e| PersistError::io(path, "read header", e))?;
        let header = SegmentHeader::decode(path, &bytes)?;
        if header.segment_bytes != file_len {
            return Err(PersistError::bad_header(
                path,
                format!(
                    "file is {file_len} bytes, the header says {}",
                    header.segment_bytes
                ),
            ));
        }
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| parse_file_name(n, SEGMENT_SUFFIX));
        if named != Some(header.base) {
            return Err(PersistError::bad_header(
                path,
                format!(
                    "header says base offset {}, the file name differs",
                    header.base
                ),
            ));
        }
        let len = usize::try_from(file_len)
            .map_err(|_| PersistError::bad_header(path, "segment size cannot be mapped"))?;
        let map = map(&file, len).map_err(|e| PersistError::io(path, "mmap", e))?;
        Ok(Segment {
            path: path.to_owned(),
            header,
            map: Arc::new(map),
            written: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> SegmentHeader {
        self.header
    }

    /// Log offset of the first byte of the data region.
    pub fn base(&self) -> LogOffset {
        self.header.base
    }

    /// Bytes the data region holds.
    pub fn capacity(&self) -> usize {
        self.map.len().saturating_sub(HEADER_LEN)
    }

    /// Bytes of valid frames in the data region.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Log offset where the next record goes.
    pub fn end_offset(&self) -> LogOffset {
        self.base().add_bytes(self.written)
    }

    /// Log offset just past the data region: the base of the segment after this one.
    pub fn limit_offset(&self) -> LogOffset {
        self.base().add_bytes(self.capacity())
    }

    /// The data region: frames, then zeroes.
    pub fn data(&self) -> &[u8] {
        let ptr = self.map.as_ptr().wrapping_add(HEADER_LEN);
        // SAFETY: the map is valid for `map.len()` bytes for as long as `self` (and so the
        // Arc) lives, and `capacity()` = `map.len() - HEADER_LEN`. Writes need `&mut self`,
        // so none happen while this borrow lives (see the type's invariants).
        unsafe { std::slice::from_raw_parts(ptr, self.capacity()) }
    }

    /// Appends one frame; returns the record's log offset. Never blocks on I/O: a memcpy
    /// into pages that [`Segment::create`] pre-faulted. `NoRoom` means: roll.
    pub fn append(
        &mut self,
        record_type: RecordType,
        body: &[u8],
    ) -> Result<LogOffset, EncodeError> {
        let needed =
            record::frame_len(body.len()).ok_or(EncodeError::BodyTooLong { len: body.len() })?;
        let available = self.capacity().saturating_sub(self.written);
        if needed > available {
            return Err(EncodeError::NoRoom { needed, available });
        }
        let at = self.written;
        let header = record::encode_header(record_type, body)?;
        self.write_at(HEADER_LEN + at, &header);
        self.write_at(HEADER_LEN + at + header.len(), body);
        self.written = at + needed;
        Ok(self.base().add_bytes(at))
    }

    /// Zeroes data-region bytes `from..to` (clamped) and sets the written length to `from`:
    /// how recovery cuts a torn tail.
    pub(super) fn zero(&mut self, from: usize, to: usize) {
        let to = to.min(self.capacity());
        if from < to {
            let ptr = self.map.as_mut_ptr().wrapping_add(HEADER_LEN + from);
            // SAFETY: `HEADER_LEN + to <= map.len()` (clamped above); `&mut self` excludes
            // every other access through this segment.
            unsafe { std::ptr::write_bytes(ptr, 0, to - from) };
        }
        self.written = from.min(self.capacity());
    }

    /// Sets the written length found by recovery's scan.
    pub(super) fn set_written(&mut self, written: usize) {
        self.written = written.min(self.capacity());
    }

    /// Drops this process's mapping of the segment's pages (`MADV_DONTNEED`): they stay in
    /// the page cache and on disk, and a later read maps them again. For a sealed,
    /// flushed segment: its pages stop counting in the broker's RSS.
    pub fn release_pages(&mut self) {
        // SAFETY: the segment is a shared file mapping: after MADV_DONTNEED, reads see the
        // file's contents (the page cache, dirty pages included), so no data changes.
        // `&mut self` means no `&[u8]` into the map is alive meanwhile.
        let _ = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
    }

    /// An msync of data-region bytes `from..to`, to run on any thread.
    pub fn flush_range(&self, from: usize, to: usize) -> FlushRange {
        let to = to.min(self.capacity());
        let from = from.min(to);
        FlushRange {
            map: Arc::clone(&self.map),
            path: self.path.clone(),
            start: HEADER_LEN + from,
            len: to - from,
        }
    }

    fn write_at(&mut self, at: usize, bytes: &[u8]) {
        let Some(end) = at.checked_add(bytes.len()) else {
            return;
        };
        if end > self.map.len() {
            return;
        }
        // SAFETY: `at + bytes.len() <= map.len()` (checked above), the map is alive, and
        // `bytes` cannot overlap it (no `&[u8]` into the map can coexist with `&mut self`).
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.map.as_mut_ptr().wrapping_add(at),
                bytes.len(),
            );
        }
    }

    /// Writes a zero into every page of the data region (which is all zeroes already), so
    /// the first appends take no page faults: the page is in the page cache, mapped, and
    /// its block allocated.
    fn prefault(&mut self) {
        let base = self.map.as_mut_ptr();
        for at in (HEADER_LEN..self.map.len()).step_by(PAGE_BYTES) {
            // SAFETY: `at < map.len()`; the segment is new, so the byte is 0 and nobody
            // reads it yet. Volatile, so the store is not optimised away.
            unsafe { std::ptr::write_volatile(base.wrapping_add(at), 0) };
        }
    }
}

/// A blocking msync of one range of one segment. `Send`: hand it to `spawn_blocking` or a
/// flusher thread; it holds the mapping alive even if the log drops the segment meanwhile.
#[derive(Debug, Clone)]
pub struct FlushRange {
    map: Arc<MmapRaw>,
    path: PathBuf,
    start: usize,
    len: usize,
}

impl FlushRange {
    /// `msync(MS_SYNC)` of the range: when it returns `Ok`, the bytes are on disk.
    pub fn run(&self) -> Result<(), PersistError> {
        if self.len == 0 {
            return Ok(());
        }
        self.map
            .flush_range(self.start, self.len)
            .map_err(|e| PersistError::io(&self.path, "msync", e))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn map(file: &File, len: usize) -> std::io::Result<MmapRaw> {
    MmapOptions::new().len(len).populate().map_raw(file)
}

/// Reserves the file's blocks, so writes through the map never hit ENOSPC (which would be
/// SIGBUS).
fn allocate(file: &File, len: u64) -> std::io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: plain syscall on a file descriptor we own.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

/// fsyncs a directory, making file creations, renames and removals in it durable.
pub fn sync_dir(dir: &Path) -> Result<(), PersistError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PersistError::io(dir, "fsync directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(value: u8) -> RecordType {
        RecordType::new(value).unwrap()
    }

    #[test]
    fn file_names_sort_by_offset() {
        assert_eq!(file_name(LogOffset::new(4032)), "00000000000000004032.seg");
        assert_eq!(
            parse_file_name("00000000000000004032.seg", SEGMENT_SUFFIX),
            Some(LogOffset::new(4032))
        );
        assert_eq!(parse_file_name("4032.seg", SEGMENT_SUFFIX), None);
        assert_eq!(
            parse_file_name("0000000000000000403x.seg", SEGMENT_SUFFIX),
            None
        );
        assert_eq!(
            parse_file_name("99999999999999999999.seg", SEGMENT_SUFFIX),
            None
        );
    }

    #[test]
    fn header_roundtrips_and_has_the_documented_layout() {
        let header = SegmentHeader {
            base: LogOffset::new(0x0102),
            segment_bytes: 8192,
        };
        let bytes = header.encode();
        assert_eq!(&bytes[..8], b"\x89RINGMQ\n");
        assert_eq!(&bytes[8..10], &[1, 0]);
        assert_eq!(&bytes[10..12], &[64, 0]);
        assert_eq!(&bytes[16..24], &0x0102u64.to_le_bytes());
        assert_eq!(&bytes[24..32], &8192u64.to_le_bytes());
        assert!(bytes[32..60].iter().all(|&b| b == 0));
        assert_eq!(
            SegmentHeader::decode(Path::new("x"), &bytes).unwrap(),
            header
        );
    }

    #[test]
    fn header_checks_name_the_problem() {
        let good = SegmentHeader {
            base: LogOffset::new(0),
            segment_bytes: 4096,
        }
        .encode();
        let mut bad = good;
        bad[0] = b'X';
        assert!(matches!(
            SegmentHeader::decode(Path::new("x"), &bad),
            Err(PersistError::BadMagic { .. })
        ));
        let mut bad = good;
        bad[8] = 2;
        assert!(matches!(
            SegmentHeader::decode(Path::new("x"), &bad),
            Err(PersistError::UnsupportedVersion { found: 2, .. })
        ));
        let mut bad = good;
        bad[20] ^= 1;
        let err = SegmentHeader::decode(Path::new("dir/x.seg"), &bad).unwrap_err();
        assert!(err
            .to_string()
            .contains("dir/x.seg: bad segment header: header CRC"));
    }

    #[test]
    fn create_append_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), LogOffset::new(100), 4096).unwrap();
        assert_eq!(seg.path(), dir.path().join("00000000000000000100.seg"));
        assert_eq!(seg.capacity(), 4096 - 64);
        assert_eq!(seg.append(ty(1), b"abc").unwrap(), LogOffset::new(100));
        assert_eq!(seg.append(ty(2), &[7; 2000]).unwrap(), LogOffset::new(112));
        assert_eq!(seg.end_offset(), LogOffset::new(100 + 12 + 2009));
        assert!(matches!(
            seg.append(ty(1), &[0; 2100]),
            Err(EncodeError::NoRoom { .. })
        ));
        seg.flush_range(0, seg.written()).run().unwrap();
        let path = seg.path().to_owned();
        drop(seg);
        assert!(!dir.path().join("00000000000000000100.seg.tmp").exists());
        let seg = Segment::open(&path).unwrap();
        let records: Vec<_> = record::Frames::new(seg.data())
            .map(|(at, r)| (at, r.record_type.get(), r.body.len()))
            .collect();
        assert_eq!(records, vec![(0, 1, 3), (12, 2, 2000)]);
    }

    #[test]
    fn create_never_replaces_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        Segment::create(dir.path(), LogOffset::new(0), 4096).unwrap();
        assert!(Segment::create(dir.path(), LogOffset::new(0), 4096).is_err());
    }

    #[test]
    fn open_refuses_a_short_file_and_a_misnamed_one() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(dir.path(), LogOffset::new(0), 4096).unwrap();
        let renamed = dir.path().join(file_name(LogOffset::new(64)));
        fs::rename(seg.path(), &renamed).unwrap();
        let err = Segment::open(&renamed).unwrap_err();
        assert!(err.to_string().contains("file name differs"), "{err}");
        let file = OpenOptions::new().write(true).open(&renamed).unwrap();
        file.set_len(2048).unwrap();
        let err = Segment::open(&renamed).unwrap_err();
        assert!(err.to_string().contains("file is 2048 bytes"), "{err}");
    }
}
