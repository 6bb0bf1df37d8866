//! A shard's log: the segments of one directory in offset order. Appends that never block,
//! a roll to a segment prepared ahead of time, flush and prepare jobs that run off the
//! shard's loop, recovery, random reads, and removal of old segments.

use std::collections::VecDeque;
use std::fs;
use std::iter;
use std::path::{Path, PathBuf};

use super::error::{AppendError, Corruption, PersistError, ReadError};
use super::record::{self, Decoded, Frames, RecordType, RegionEnd, TornCause, FRAME_HEADER_LEN};
use super::segment::{
    self, parse_file_name, FlushRange, Segment, HEADER_LEN, QUARANTINE_SUFFIX, SEGMENT_SUFFIX,
    TEMP_SUFFIX,
};
use super::LogOffset;

/// The log directory of shard `shard` under the configured `data_dir`: `data_dir/shard-N`.
pub fn shard_dir(data_dir: &Path, shard: u16) -> PathBuf {
    data_dir.join(format!("shard-{shard}"))
}

/// How a log creates new segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Size of each new segment file (config `storage.segment_bytes`): a multiple of 4096.
    /// Existing segments keep the size they were created with.
    pub segment_bytes: u64,
}

/// One record of the log, borrowed from its segment's mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecord<'a> {
    pub offset: LogOffset,
    pub record_type: RecordType,
    pub body: &'a [u8],
}

/// A shard's segment log.
///
/// Appending is a memcpy into a mapped, pre-faulted page. Everything that may block is a
/// job the shard runs elsewhere (`spawn_blocking` or a flusher thread), then hands back:
///
/// - [`Log::flush_job`] → [`FlushJob::run`] (msync) → [`Log::complete_flush`];
/// - [`Log::prepare_job`] → [`PrepareJob::run`] (create, allocate, pre-fault the next
///   segment) → [`Log::install_next`];
/// - [`Log::remove_below`] → [`RemoveJob::run`] (unlink old segments).
///
/// The `*_blocking` methods do the same inline, for start-up, tests and tools.
///
/// # Invariants
///
/// - Segments are contiguous: each one's base is the previous one's `limit_offset`.
/// - Every record below `flushed` is on disk (msync returned).
/// - The log writes into a new segment only once the active one is entirely flushed
///   ([`AppendError::NeedsFlush`]). So after a crash only the last segment that holds data
///   can have a torn tail, and damage anywhere else is corruption.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    options: LogOptions,
    sealed: VecDeque<Segment>,
    active: Segment,
    next: Option<Segment>,
    flushed: LogOffset,
}

impl Log {
    /// Recovers the log in `dir` (creating the directory and a first segment if there is
    /// none), scanning every record without looking at them. Blocking. To rebuild state
    /// from the records, use [`Recovery`] instead.
    pub fn open(dir: &Path, options: LogOptions) -> Result<(Log, RecoveryReport), PersistError> {
        let recovery = Recovery::open(dir, options)?;
        let scanned = recovery.scan().finish()?;
        recovery.into_log(scanned)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Offset of the oldest byte still in the log.
    pub fn start_offset(&self) -> LogOffset {
        self.sealed.front().unwrap_or(&self.active).base()
    }

    /// Offset the next record gets (if it fits in the active segment).
    pub fn end_offset(&self) -> LogOffset {
        self.active.end_offset()
    }

    /// Every record below this offset is on disk.
    pub fn flushed_offset(&self) -> LogOffset {
        self.flushed
    }

    /// The largest body a record may have in a new segment.
    pub fn max_body_bytes(&self) -> usize {
        new_capacity(&self.options).saturating_sub(FRAME_HEADER_LEN)
    }

    /// Paths of the segments in offset order, the prepared next one included.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments()
            .chain(self.next.iter())
            .map(|s| s.path().to_owned())
            .collect()
    }

    /// Appends one record and returns its offset. Never blocks. When the active segment is
    /// full, rolls to the prepared next one if the active one is entirely flushed;
    /// otherwise says what to run first ([`AppendError::NeedsFlush`],
    /// [`AppendError::NeedsNextSegment`]) and appends nothing.
    pub fn append(
        &mut self,
        record_type: RecordType,
        body: &[u8],
    ) -> Result<LogOffset, AppendError> {
        let max_frame_bytes = new_capacity(&self.options).max(self.active.capacity());
        let frame_bytes = record::frame_len(body.len()).unwrap_or(usize::MAX);
        if frame_bytes > max_frame_bytes {
            return Err(AppendError::TooLarge {
                frame_bytes,
                max_frame_bytes,
            });
        }
        if let Ok(offset) = self.active.append(record_type, body) {
            return Ok(offset);
        }
        if self.flushed < self.active.end_offset() {
            return Err(AppendError::NeedsFlush);
        }
        let Some(next) = self.next.take() else {
            return Err(AppendError::NeedsNextSegment);
        };
        let mut full = std::mem::replace(&mut self.active, next);
        // Sealed and flushed: its pages need not stay in this process's RSS.
        full.release_pages();
        self.sealed.push_back(full);
        self.flushed = self.flushed.max(self.active.base());
        self.active
            .append(record_type, body)
            .map_err(|_| AppendError::TooLarge {
                frame_bytes,
                max_frame_bytes: self.active.capacity(),
            })
    }

    /// An msync of everything appended and not yet flushed; `None` if there is nothing.
    /// Several may be in flight; each covers what was appended when it was made.
    pub fn flush_job(&self) -> Option<FlushJob> {
        let end = self.end_offset();
        if self.flushed >= end {
            return None;
        }
        let mut ranges = Vec::new();
        for segment in self.segments() {
            if segment.end_offset() <= self.flushed {
                continue;
            }
            let from = self.flushed.bytes_since(segment.base()).unwrap_or(0);
            ranges.push(segment.flush_range(from, segment.written()));
        }
        Some(FlushJob { ranges, end })
    }

    /// Records that a flush job succeeded.
    pub fn complete_flush(&mut self, done: Flushed) {
        self.flushed = self.flushed.max(done.end);
    }

    /// Flushes everything appended, on this thread.
    pub fn flush_blocking(&mut self) -> Result<(), PersistError> {
        if let Some(job) = self.flush_job() {
            let done = job.run()?;
            self.complete_flush(done);
        }
        Ok(())
    }

    /// Unmaps the pages of every sealed segment (they stay in the page cache): what
    /// recovery or a queue reader touched stops counting in the process's RSS.
    pub fn release_sealed_pages(&mut self) {
        for s in &mut self.sealed {
            s.release_pages();
        }
    }

    /// Bytes of disk the segments take, the prepared next one included.
    pub fn disk_bytes(&self) -> u64 {
        self.segments()
            .chain(self.next.iter())
            .map(|s| (s.capacity() + HEADER_LEN) as u64)
            .sum()
    }

    /// Whether the active segment is at least half written: time to prepare the next.
    pub fn active_half_full(&self) -> bool {
        self.active.written() * 2 >= self.active.capacity()
    }

    /// Whether a next segment is prepared (the roll will not need one).
    pub fn next_segment_ready(&self) -> bool {
        self.next.is_some()
    }

    /// Creating the next segment, if none is prepared. Run at most one at a time.
    pub fn prepare_job(&self) -> Option<PrepareJob> {
        if self.next.is_some() {
            return None;
        }
        Some(PrepareJob {
            dir: self.dir.clone(),
            base: self.active.limit_offset(),
            segment_bytes: self.options.segment_bytes,
        })
    }

    /// Takes the segment a [`PrepareJob`] made as the next one.
    pub fn install_next(&mut self, prepared: PreparedSegment) -> Result<(), PersistError> {
        let segment = prepared.0;
        if self.next.is_some() || segment.base() != self.active.limit_offset() {
            return Err(PersistError::bad_header(
                segment.path(),
                format!(
                    "prepared for log offset {}, but the log's next segment starts at {}{}",
                    segment.base(),
                    self.active.limit_offset(),
                    if self.next.is_some() {
                        " and is already prepared"
                    } else {
                        ""
                    }
                ),
            ));
        }
        self.next = Some(segment);
        Ok(())
    }

    /// Prepares the next segment on this thread, if none is.
    pub fn prepare_next_blocking(&mut self) -> Result<(), PersistError> {
        match self.prepare_job() {
            Some(job) => self.install_next(job.run()?),
            None => Ok(()),
        }
    }

    /// The record at `offset` (an offset [`Log::append`] returned), CRC checked again.
    pub fn read(&self, offset: LogOffset) -> Result<LogRecord<'_>, ReadError> {
        let segment = self
            .segment_at(offset)
            .ok_or(ReadError::OutOfRange(offset))?;
        let pos = offset
            .bytes_since(segment.base())
            .filter(|&pos| pos < segment.written())
            .ok_or(ReadError::OutOfRange(offset))?;
        let written = segment
            .data()
            .get(pos..segment.written())
            .unwrap_or_default();
        match record::decode(written) {
            Ok(Decoded::Record { record, .. }) => Ok(LogRecord {
                offset,
                record_type: record.record_type,
                body: record.body,
            }),
            _ => Err(ReadError::NotARecord {
                path: segment.path().to_owned(),
                offset,
            }),
        }
    }

    /// Every record in the log, in order (already checked by recovery or written by us).
    pub fn records(&self) -> impl Iterator<Item = LogRecord<'_>> {
        self.segments().flat_map(|segment| {
            let written = segment.data().get(..segment.written()).unwrap_or_default();
            Frames::new(written).map(move |(pos, record)| LogRecord {
                offset: segment.base().add_bytes(pos),
                record_type: record.record_type,
                body: record.body,
            })
        })
    }

    /// Every record at or after `offset`, in order. `offset` must be a record's offset, a
    /// segment's end or base, or the log's end (what a reader that stopped after a record
    /// holds); an offset below the log's start reads from the start.
    pub fn records_from(&self, offset: LogOffset) -> impl Iterator<Item = LogRecord<'_>> {
        let first = self.segment_at(offset.max(self.start_offset()));
        let first_base = first.map(Segment::base);
        self.segments()
            .filter(move |s| first_base.is_some_and(|b| s.base() >= b))
            .flat_map(move |segment| {
                let written = segment.data().get(..segment.written()).unwrap_or_default();
                let skip = offset.bytes_since(segment.base()).unwrap_or(0);
                let rest = written.get(skip.min(written.len())..).unwrap_or_default();
                let base = segment.base().add_bytes(skip.min(written.len()));
                Frames::new(rest).map(move |(pos, record)| LogRecord {
                    offset: base.add_bytes(pos),
                    record_type: record.record_type,
                    body: record.body,
                })
            })
    }

    /// The offset just after the record at `offset` (its frame's end).
    pub fn after(record: &LogRecord<'_>) -> LogOffset {
        record
            .offset
            .add_bytes(record::frame_len(record.body.len()).unwrap_or(0))
    }

    /// Takes out of the log every sealed segment whose records all lie below `offset`
    /// (never the active one); the returned job deletes their files.
    pub fn remove_below(&mut self, offset: LogOffset) -> RemoveJob {
        let mut segments = Vec::new();
        while let Some(front) = self.sealed.front() {
            if front.end_offset() > offset {
                break;
            }
            segments.extend(self.sealed.pop_front());
        }
        RemoveJob {
            dir: self.dir.clone(),
            segments,
        }
    }

    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.sealed.iter().chain(iter::once(&self.active))
    }

    fn segment_at(&self, offset: LogOffset) -> Option<&Segment> {
        if offset >= self.active.base() {
            return Some(&self.active);
        }
        let after = self.sealed.partition_point(|s| s.base() <= offset);
        self.sealed.get(after.checked_sub(1)?)
    }
}

fn new_capacity(options: &LogOptions) -> usize {
    usize::try_from(options.segment_bytes)
        .unwrap_or(0)
        .saturating_sub(HEADER_LEN)
}

/// Blocking msync of a log's unflushed bytes. `Send`.
#[derive(Debug)]
pub struct FlushJob {
    ranges: Vec<FlushRange>,
    end: LogOffset,
}

impl FlushJob {
    /// Every record below this offset is durable once the job succeeds.
    pub fn end(&self) -> LogOffset {
        self.end
    }

    /// Runs the msyncs, oldest range first.
    pub fn run(self) -> Result<Flushed, PersistError> {
        for range in &self.ranges {
            range.run()?;
        }
        Ok(Flushed { end: self.end })
    }
}

/// Proof that a [`FlushJob`] succeeded: hand it to [`Log::complete_flush`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    end: LogOffset,
}

impl Flushed {
    pub fn end(&self) -> LogOffset {
        self.end
    }
}

/// Blocking creation of the log's next segment. `Send`.
#[derive(Debug, Clone)]
pub struct PrepareJob {
    dir: PathBuf,
    base: LogOffset,
    segment_bytes: u64,
}

impl PrepareJob {
    pub fn run(self) -> Result<PreparedSegment, PersistError> {
        Segment::create(&self.dir, self.base, self.segment_bytes).map(PreparedSegment)
    }
}

/// A segment made by a [`PrepareJob`], for [`Log::install_next`].
#[derive(Debug)]
pub struct PreparedSegment(Segment);

/// Blocking removal of segments taken out of the log. `Send`.
#[derive(Debug)]
pub struct RemoveJob {
    dir: PathBuf,
    segments: Vec<Segment>,
}

impl RemoveJob {
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Unlinks the files oldest first, syncing the directory after each, so a crash leaves
    /// a contiguous log. Returns the removed paths.
    pub fn run(self) -> Result<Vec<PathBuf>, PersistError> {
        let mut removed = Vec::with_capacity(self.segments.len());
        for segment in self.segments {
            let path = segment.path().to_owned();
            drop(segment);
            fs::remove_file(&path).map_err(|e| PersistError::io(&path, "remove segment", e))?;
            segment::sync_dir(&self.dir)?;
            removed.push(path);
        }
        Ok(removed)
    }
}

/// A torn tail recovery cut off the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    /// Where the valid records end and the torn bytes begin.
    pub offset: LogOffset,
    /// The same place as a byte position in the file.
    pub position: u64,
    /// Bytes from `offset` to the last non-zero byte, zeroed in the segment.
    pub discarded_bytes: u64,
    pub cause: TornCause,
    /// Where the discarded bytes were saved before they were zeroed.
    pub saved_to: Option<PathBuf>,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments holding the log after recovery (the prepared next one included).
    pub segments: usize,
    /// Valid records found.
    pub records: u64,
    /// Their frame bytes.
    pub record_bytes: u64,
    pub torn_tail: Option<TornTail>,
    /// Segments moved aside by an operator (`*.seg.corrupt`), not read.
    pub quarantined: Vec<PathBuf>,
    /// Files deleted: half-made segments (`*.seg.tmp`) and surplus empty segments.
    pub removed: Vec<PathBuf>,
    /// The segment created because the directory had none.
    pub created: Option<PathBuf>,
}

/// Recovery of a log directory in three steps: [`Recovery::open`] checks every segment's
/// header and that they are contiguous; [`Recovery::scan`] yields every record in order
/// (the broker rebuilds its state from them) and checks every CRC;
/// [`Recovery::into_log`] cuts a torn tail and returns the log, ready to append. Blocking
/// throughout: it runs before the shard serves.
///
/// Rules (see the module doc of `persist` for why):
/// - damage at the end of the last segment holding data is a torn tail: it is saved to
///   `….seg.torn-{offset}`, zeroed, and reported;
/// - any other damage, a bad header, an unknown version or a missing segment is an error
///   naming the file, and the broker must not start.
#[derive(Debug)]
pub struct Recovery {
    dir: PathBuf,
    options: LogOptions,
    segments: Vec<Segment>,
    quarantined: Vec<PathBuf>,
    removed: Vec<PathBuf>,
}

impl Recovery {
    /// Opens every segment of `dir` (created if missing) and checks headers and contiguity.
    pub fn open(dir: &Path, options: LogOptions) -> Result<Recovery, PersistError> {
        segment::check_segment_bytes(options.segment_bytes)
            .map_err(|reason| PersistError::bad_header(dir, reason))?;
        fs::create_dir_all(dir).map_err(|e| PersistError::io(dir, "create directory", e))?;
        let mut found = Vec::new();
        let mut quarantined = Vec::new();
        let mut removed = Vec::new();
        let entries = fs::read_dir(dir).map_err(|e| PersistError::io(dir, "list", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| PersistError::io(dir, "list", e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Some(base) = parse_file_name(&name, SEGMENT_SUFFIX) {
                found.push((base, path));
            } else if let Some(base) = parse_file_name(&name, QUARANTINE_SUFFIX) {
                quarantined.push((base, path));
            } else if parse_file_name(&name, TEMP_SUFFIX).is_some() {
                fs::remove_file(&path).map_err(|e| PersistError::io(&path, "remove", e))?;
                removed.push(path);
            }
        }
        found.sort();
        quarantined.sort();
        let mut segments: Vec<Segment> = Vec::with_capacity(found.len());
        for (_, path) in &found {
            let segment = Segment::open(path)?;
            if let Some(previous) = segments.last() {
                let expected = previous.limit_offset();
                let found = segment.base();
                let skipped = quarantined
                    .iter()
                    .any(|(base, _)| *base >= expected && *base < found);
                if found < expected || (found > expected && !skipped) {
                    return Err(PersistError::Gap {
                        path: path.clone(),
                        expected,
                        found,
                    });
                }
            }
            segments.push(segment);
        }
        Ok(Recovery {
            dir: dir.to_owned(),
            options,
            segments,
            quarantined: quarantined.into_iter().map(|(_, path)| path).collect(),
            removed,
        })
    }

    /// Paths of the segments found, in offset order.
    pub fn segment_paths(&self) -> impl Iterator<Item = &Path> {
        self.segments.iter().map(Segment::path)
    }

    /// Every record of every segment in order. Stops at the first error.
    pub fn scan(&self) -> Scan<'_> {
        Scan {
            segments: &self.segments,
            index: 0,
            frames: None,
            ends: Vec::with_capacity(self.segments.len()),
            torn: None,
            failed: None,
            done: false,
            records: 0,
            record_bytes: 0,
        }
    }

    /// Cuts the torn tail, if any, and returns the log ready to append, with a first
    /// segment if the directory had none. Makes everything recovered durable (msync).
    pub fn into_log(self, scanned: Scanned) -> Result<(Log, RecoveryReport), PersistError> {
        let Recovery {
            dir,
            options,
            mut segments,
            quarantined,
            mut removed,
        } = self;
        if scanned.ends.len() != segments.len() {
            return Err(PersistError::bad_header(
                &dir,
                "recovery was given the scan of another directory",
            ));
        }
        for (segment, &end) in segments.iter_mut().zip(&scanned.ends) {
            segment.set_written(end);
        }
        let mut report = RecoveryReport {
            records: scanned.records,
            record_bytes: scanned.record_bytes,
            quarantined,
            ..RecoveryReport::default()
        };
        let mut last_with_data = segments.iter().rposition(|s| s.written() > 0);
        if let Some(torn) = scanned.torn {
            let segment = segments
                .get_mut(torn.index)
                .ok_or_else(|| PersistError::bad_header(&dir, "torn segment index"))?;
            report.torn_tail = Some(cut_torn_tail(segment, torn)?);
            last_with_data = last_with_data.max(Some(torn.index));
        }
        let active_index = last_with_data.unwrap_or(0);
        let mut spares = segments.split_off((active_index + 1).min(segments.len()));
        let mut spares = spares.drain(..);
        let active = match segments.pop() {
            Some(active) => active,
            None => match spares.next() {
                Some(spare) => spare,
                None => {
                    let created = Segment::create(&dir, LogOffset::new(0), options.segment_bytes)?;
                    report.created = Some(created.path().to_owned());
                    created
                }
            },
        };
        let next = spares.next();
        for surplus in spares {
            let path = surplus.path().to_owned();
            drop(surplus);
            fs::remove_file(&path).map_err(|e| PersistError::io(&path, "remove", e))?;
            removed.push(path);
        }
        if !removed.is_empty() {
            segment::sync_dir(&dir)?;
        }
        report.removed = removed;
        active.flush_range(0, active.written()).run()?;
        report.segments = segments.len() + 1 + usize::from(next.is_some());
        let flushed = active.end_offset();
        let log = Log {
            dir,
            options,
            sealed: segments.into(),
            active,
            next,
            flushed,
        };
        Ok((log, report))
    }
}

/// Saves the torn bytes next to the segment, zeroes them, and makes the zeroes durable.
fn cut_torn_tail(segment: &mut Segment, torn: TornAt) -> Result<TornTail, PersistError> {
    let offset = segment.base().add_bytes(torn.len);
    let saved = segment
        .data()
        .get(torn.len..torn.dirty_end)
        .unwrap_or_default();
    let saved_to = if saved.is_empty() {
        None
    } else {
        let name = format!(
            "{}.torn-{}",
            segment
                .path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("segment"),
            offset
        );
        let path = segment.path().with_file_name(name);
        fs::write(&path, saved).map_err(|e| PersistError::io(&path, "save torn tail", e))?;
        fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| PersistError::io(&path, "fsync", e))?;
        Some(path)
    };
    let discarded_bytes = saved.len() as u64;
    segment.zero(torn.len, torn.dirty_end);
    segment.flush_range(torn.len, torn.dirty_end).run()?;
    if let Some(dir) = segment.path().parent() {
        segment::sync_dir(dir)?;
    }
    Ok(TornTail {
        path: segment.path().to_owned(),
        offset,
        position: (HEADER_LEN + torn.len) as u64,
        discarded_bytes,
        cause: torn.cause,
        saved_to,
    })
}

#[derive(Debug, Clone, Copy)]
struct TornAt {
    index: usize,
    len: usize,
    dirty_end: usize,
    cause: TornCause,
}

/// The result of a complete [`Scan`], for [`Recovery::into_log`].
#[derive(Debug)]
pub struct Scanned {
    ends: Vec<usize>,
    torn: Option<TornAt>,
    records: u64,
    record_bytes: u64,
}

impl Scanned {
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn record_bytes(&self) -> u64 {
        self.record_bytes
    }

    /// Why the last segment's tail is torn, if it is ([`Recovery::into_log`] cuts it).
    pub fn torn_cause(&self) -> Option<TornCause> {
        self.torn.map(|t| t.cause)
    }
}

/// Iterator over every record of a [`Recovery`], checking every CRC. After the last
/// record, [`Scan::finish`] says how it ended.
#[derive(Debug)]
pub struct Scan<'a> {
    segments: &'a [Segment],
    index: usize,
    frames: Option<Frames<'a>>,
    ends: Vec<usize>,
    torn: Option<TornAt>,
    failed: Option<(PathBuf, LogOffset, u64, Corruption)>,
    done: bool,
    records: u64,
    record_bytes: u64,
}

impl<'a> Scan<'a> {
    /// Scans whatever was not iterated yet and returns the outcome: the first corruption
    /// found, or what [`Recovery::into_log`] needs.
    pub fn finish(mut self) -> Result<Scanned, PersistError> {
        for item in self.by_ref() {
            item?;
        }
        if let Some((path, offset, position, cause)) = self.failed {
            return Err(PersistError::Corrupt {
                path,
                offset,
                position,
                cause,
            });
        }
        Ok(Scanned {
            ends: self.ends,
            torn: self.torn,
            records: self.records,
            record_bytes: self.record_bytes,
        })
    }

    fn fail(&mut self, segment: &Segment, at: usize, cause: Corruption) -> PersistError {
        let path = segment.path().to_owned();
        let offset = segment.base().add_bytes(at);
        let position = (HEADER_LEN + at) as u64;
        self.failed = Some((path.clone(), offset, position, cause));
        PersistError::Corrupt {
            path,
            offset,
            position,
            cause,
        }
    }
}

impl<'a> Iterator for Scan<'a> {
    type Item = Result<LogRecord<'a>, PersistError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done || self.failed.is_some() {
                return None;
            }
            let segments = self.segments;
            let Some(segment) = segments.get(self.index) else {
                self.done = true;
                return None;
            };
            let frames = self
                .frames
                .get_or_insert_with(|| Frames::new(segment.data()));
            if let Some((pos, record)) = frames.next() {
                self.records += 1;
                self.record_bytes += (FRAME_HEADER_LEN + record.body.len()) as u64;
                return Some(Ok(LogRecord {
                    offset: segment.base().add_bytes(pos),
                    record_type: record.record_type,
                    body: record.body,
                }));
            }
            let end = frames.end().unwrap_or(RegionEnd::Clean { len: 0 });
            self.frames = None;
            match end {
                RegionEnd::Clean { len } => {
                    self.ends.push(len);
                    self.index += 1;
                }
                RegionEnd::Torn {
                    len,
                    dirty_end,
                    cause,
                } => {
                    let later = segments.get(self.index + 1..).unwrap_or_default();
                    if !later
                        .iter()
                        .all(|s| record::last_nonzero(s.data()).is_none())
                    {
                        let cause = Corruption::NotLastSegment(cause);
                        return Some(Err(self.fail(segment, len, cause)));
                    }
                    self.torn = Some(TornAt {
                        index: self.index,
                        len,
                        dirty_end,
                        cause,
                    });
                    self.ends.push(len);
                    self.ends.extend(later.iter().map(|_| 0));
                    self.done = true;
                }
                RegionEnd::Corrupt { at, error } => {
                    return Some(Err(self.fail(segment, at, Corruption::Frame(error))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEGMENT: u64 = 4096;

    fn ty(value: u8) -> RecordType {
        RecordType::new(value).unwrap()
    }

    fn options() -> LogOptions {
        LogOptions {
            segment_bytes: SEGMENT,
        }
    }

    fn body(i: usize) -> Vec<u8> {
        format!("record number {i:05} {}", "x".repeat(50 + i % 300)).into_bytes()
    }

    /// Appends `count` records, flushing and preparing whenever the log asks.
    fn fill(log: &mut Log, from: usize, count: usize) -> Vec<LogOffset> {
        (from..from + count)
            .map(|i| loop {
                match log.append(ty(1 + (i % 3) as u8), &body(i)) {
                    Ok(offset) => break offset,
                    Err(AppendError::NeedsFlush) => log.flush_blocking().unwrap(),
                    Err(AppendError::NeedsNextSegment) => log.prepare_next_blocking().unwrap(),
                    Err(e) => panic!("{e}"),
                }
            })
            .collect()
    }

    #[test]
    fn empty_directory_gets_a_first_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (log, report) = Log::open(dir.path(), options()).unwrap();
        assert_eq!(
            report.created,
            Some(dir.path().join("00000000000000000000.seg"))
        );
        assert_eq!(log.end_offset(), LogOffset::new(0));
        assert_eq!(log.records().count(), 0);
    }

    #[test]
    fn roll_waits_for_flush_and_next_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), options()).unwrap();
        let big = vec![5u8; 3000];
        log.append(ty(1), &big).unwrap();
        assert_eq!(log.append(ty(1), &big), Err(AppendError::NeedsFlush));
        let job = log.flush_job().unwrap();
        assert_eq!(job.end(), LogOffset::new(3009));
        let done = std::thread::spawn(move || job.run())
            .join()
            .unwrap()
            .unwrap();
        log.complete_flush(done);
        assert_eq!(log.flushed_offset(), LogOffset::new(3009));
        assert_eq!(log.append(ty(1), &big), Err(AppendError::NeedsNextSegment));
        let prepared = std::thread::spawn({
            let job = log.prepare_job().unwrap();
            move || job.run()
        })
        .join()
        .unwrap()
        .unwrap();
        log.install_next(prepared).unwrap();
        assert_eq!(log.append(ty(1), &big), Ok(LogOffset::new(4032)));
        assert!(dir.path().join("00000000000000004032.seg").exists());
        assert_eq!(
            log.append(ty(1), &vec![0; 5000]),
            Err(AppendError::TooLarge {
                frame_bytes: 5009,
                max_frame_bytes: 4032
            })
        );
    }

    #[test]
    fn reopen_yields_every_record_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), options()).unwrap();
        let offsets = fill(&mut log, 0, 100);
        log.flush_blocking().unwrap();
        assert!(log.segment_paths().len() > 3, "{:?}", log.segment_paths());
        for (i, &offset) in offsets.iter().enumerate() {
            assert_eq!(log.read(offset).unwrap().body, body(i));
        }
        drop(log);
        let recovery = Recovery::open(dir.path(), options()).unwrap();
        let mut scan = recovery.scan();
        let got: Vec<_> = scan
            .by_ref()
            .map(|r| r.map(|r| (r.offset, r.body.to_vec())).unwrap())
            .collect();
        let expected: Vec<_> = offsets.iter().copied().zip((0..100).map(body)).collect();
        assert_eq!(got, expected);
        let scanned = scan.finish().unwrap();
        assert_eq!(scanned.records(), 100);
        let (mut log, report) = recovery.into_log(scanned).unwrap();
        assert_eq!(report.torn_tail, None);
        let more = fill(&mut log, 100, 10);
        assert!(more[0] > offsets[99]);
        assert_eq!(log.records().count(), 110);
    }

    #[test]
    fn torn_tail_of_last_segment_is_cut_saved_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), options()).unwrap();
        let offsets = fill(&mut log, 0, 40);
        log.flush_blocking().unwrap();
        let last = *offsets.last().unwrap();
        let path = log.segment_paths().into_iter().rev().find(|p| {
            parse_file_name(p.file_name().unwrap().to_str().unwrap(), SEGMENT_SUFFIX)
                .is_some_and(|base| base <= last)
        });
        let path = path.unwrap();
        log.prepare_next_blocking().unwrap();
        let base =
            parse_file_name(path.file_name().unwrap().to_str().unwrap(), SEGMENT_SUFFIX).unwrap();
        drop(log);
        // Cut the last record in half, as a crash in the middle of its write would.
        let mut bytes = fs::read(&path).unwrap();
        let pos = HEADER_LEN + last.bytes_since(base).unwrap();
        let cut = pos + 12;
        let record_end = pos + FRAME_HEADER_LEN + body(39).len();
        bytes[cut..record_end].fill(0);
        fs::write(&path, &bytes).unwrap();

        let (log, report) = Log::open(dir.path(), options()).unwrap();
        let torn = report.torn_tail.unwrap();
        assert_eq!(torn.path, path);
        assert_eq!(torn.offset, last);
        assert_eq!(torn.discarded_bytes, 12);
        let saved = fs::read(torn.saved_to.unwrap()).unwrap();
        assert_eq!(saved, bytes[pos..cut]);
        assert_eq!(report.records, 39);
        assert_eq!(log.records().count(), 39);
        assert_eq!(log.end_offset(), last);
        assert!(log.next_segment_ready());
        let reread = fs::read(&path).unwrap();
        assert!(reread[pos..].iter().all(|&b| b == 0));
    }

    #[test]
    fn damage_before_the_last_segment_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), options()).unwrap();
        fill(&mut log, 0, 60);
        log.flush_blocking().unwrap();
        let first = log.segment_paths()[0].clone();
        drop(log);
        let mut bytes = fs::read(&first).unwrap();
        // Cut the first segment's last record: torn-like damage, but not in the last segment.
        let end = record::Frames::new(&bytes[HEADER_LEN..])
            .finish()
            .valid_len();
        bytes[HEADER_LEN + end - 3] ^= 0xFF;
        fs::write(&first, &bytes).unwrap();
        let err = Log::open(dir.path(), options()).unwrap_err();
        assert!(
            matches!(
                &err,
                PersistError::Corrupt { path, cause: Corruption::NotLastSegment(_), .. }
                    if *path == first
            ),
            "{err}"
        );
        assert!(err.to_string().contains("00000000000000000000.seg"));
        assert!(err.to_string().contains(".seg.corrupt"));
    }

    #[test]
    fn missing_segment_is_a_gap_unless_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), options()).unwrap();
        let offsets = fill(&mut log, 0, 150);
        log.flush_blocking().unwrap();
        let paths = log.segment_paths();
        drop(log);
        let middle = paths[1].clone();
        let aside = middle.with_extension("seg.corrupt");
        fs::rename(&middle, dir.path().join("elsewhere")).unwrap();
        assert!(matches!(
            Log::open(dir.path(), options()),
            Err(PersistError::Gap { .. })
        ));
        fs::rename(dir.path().join("elsewhere"), &aside).unwrap();
        let (log, report) = Log::open(dir.path(), options()).unwrap();
        assert_eq!(report.quarantined, vec![aside]);
        let first_after = log.records().find(|r| r.offset >= LogOffset::new(4032));
        assert!(first_after.is_some());
        assert!(log.records().count() < offsets.len());
    }

    #[test]
    fn remove_below_drops_whole_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), options()).unwrap();
        let offsets = fill(&mut log, 0, 150);
        log.flush_blocking().unwrap();
        let cut = offsets[75];
        let job = log.remove_below(cut);
        assert!(!job.is_empty());
        let removed = job.run().unwrap();
        for path in &removed {
            assert!(!path.exists());
        }
        assert!(log.start_offset() <= cut);
        assert!(log.records().all(|r| r.offset >= log.start_offset()));
        assert!(matches!(
            log.read(offsets[0]),
            Err(ReadError::OutOfRange(_))
        ));
        assert_eq!(log.read(offsets[149]).unwrap().body, body(149));
        drop(log);
        let (log, _) = Log::open(dir.path(), options()).unwrap();
        assert_eq!(log.read(offsets[149]).unwrap().body, body(149));
    }

    #[test]
    fn leftover_temp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("00000000000000004032.seg.tmp"), b"half").unwrap();
        let (_, report) = Log::open(dir.path(), options()).unwrap();
        assert_eq!(
            report.removed,
            vec![dir.path().join("00000000000000004032.seg.tmp")]
        );
    }

    #[test]
    fn read_of_a_wrong_offset_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), options()).unwrap();
        log.append(ty(1), b"abcdef").unwrap();
        assert!(matches!(
            log.read(LogOffset::new(3)),
            Err(ReadError::NotARecord { .. })
        ));
        assert!(matches!(
            log.read(LogOffset::new(15)),
            Err(ReadError::OutOfRange(_))
        ));
    }
}
